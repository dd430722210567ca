// IDX files (LeCun's MNIST format, also Fashion-MNIST's), plain or gzip-compressed, and the Fashion-MNIST data set
// read from them.
//
// An IDX file is a 4-byte magic number 0x00 0x00 TYPE RANK, RANK big-endian 32-bit dimensions, then the elements in
// row-major order. Only unsigned bytes (TYPE 0x08) occur in (Fashion-)MNIST and only they are read here: images are
// rank 3 (n, rows, columns), labels rank 1 (n). zlib's gzread reads a gzip file and passes an uncompressed one
// through unchanged, so both kinds are accepted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace scoresde {

// An unsigned-byte IDX array: its dimensions and its elements in row-major order.
struct IdxArray {
  std::vector<Index> dims;
  std::vector<std::uint8_t> data;
};

// Reads path as an unsigned-byte IDX array of rank `rank`. InputError naming the file and the problem: cannot open,
// gzip error, bad magic number (not 0x00 0x00 0x08 RANK), wrong rank, a zero or oversized dimension, data shorter
// than the dimensions say, or bytes after the data.
IdxArray read_idx(const std::string& path, int rank);

// Images with labels: the images as a d x n batch (d = rows * columns, each image flattened row-major), pixel values
// v in 0..255 scaled to v / 127.5 - 1 in [-1, 1].
struct LabelledImages {
  Matrix images;
  std::vector<int> labels;
  Index rows = 0, columns = 0;
};

// A pixel byte v in 0..255 as the value v / 127.5 - 1 in [-1, 1] that every image here is given in.
inline double scaled_pixel(std::uint8_t v) {
  return v / 127.5 - 1.0;
}

// Reads an images file (rank 3) and a labels file (rank 1) of the same length. InputError naming the file when either
// is unreadable or malformed, or when the counts differ.
LabelledImages read_idx_images(const std::string& images_path, const std::string& labels_path);

// --------------------------------------------------------------------------------------------- Fashion-MNIST

// A selection from Fashion-MNIST, as a data name:
//   fashion_mnist, fashion_mnist:train    the 60,000 training images
//   fashion_mnist:test                    the 10,000 test images
//   fashion_mnist:class=K                 the training images of class K (0..9); fashion_mnist:test:class=K the test
//                                         images of class K
struct FashionMnistSelection {
  bool test = false;
  std::optional<int> label;
};

// The selection a name denotes; nullopt when the name does not start with "fashion_mnist"; ConfigError naming --data
// for a malformed suffix.
std::optional<FashionMnistSelection> parse_fashion_mnist_name(const std::string& name);

// Where the Debian package dataset-fashion-mnist puts the IDX files.
inline constexpr const char* fashion_mnist_package_directory = "/usr/share/datasets/fashion-mnist";
// The directory of the IDX files: $SCORESDE_FASHION_MNIST_DIR when set, else fashion_mnist_package_directory.
std::string fashion_mnist_directory();
// The images file and the labels file of a split: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
std::string fashion_mnist_images_file(bool test);
std::string fashion_mnist_labels_file(bool test);

// The selected images (d = 784, scaled to [-1, 1]) and their labels. InputError naming the missing file and the
// Debian package dataset-fashion-mnist when the files are not there; the errors of read_idx_images otherwise.
LabelledImages load_fashion_mnist(const FashionMnistSelection& selection);
// The dimension of the selected images (rows * columns) with the same checks and errors as load_fashion_mnist, without
// scaling the images: a study's validation asks only this (60,000 scaled training images are 376 MB).
Index fashion_mnist_dimension(const FashionMnistSelection& selection);

}  // namespace scoresde
