#include "models/idx.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>

#include "core/errors.hpp"
#include "core/input_file.hpp"

namespace scoresde {

namespace {

// The (decompressed) content of a file through zlib, up to `limit` bytes: reading stops there, so that a small
// gzip file that inflates to gigabytes (deflate reaches 1032:1) is not read whole. InputError on an unreadable file
// or corrupt gzip data.
std::vector<std::uint8_t> read_gz(const std::string& path, std::size_t limit) {
  refuse_directory(path, "an IDX file");
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  }
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  std::vector<std::uint8_t> bytes;
  std::uint8_t buffer[1 << 16];
  while (bytes.size() < limit) {
    const auto want = static_cast<unsigned>(std::min<std::size_t>(sizeof buffer, limit - bytes.size()));
    const int got = gzread(file, buffer, want);
    if (got < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw InputError(fmt::format("{}: gzip error: {}", path, message));
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), buffer, buffer + got);
  }
  // A gzip stream cut short reads as a clean end of file with a Z_BUF_ERROR pending.
  int code = 0;
  const std::string message = gzerror(file, &code);
  gzclose(file);
  if (code != Z_OK && code != Z_STREAM_END)
    throw InputError(fmt::format("{}: gzip error: {} (is the file truncated?)", path, message));
  return bytes;
}

std::uint32_t big_endian(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

}  // namespace

IdxArray read_idx(const std::string& path, int rank) {
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  const std::vector<std::uint8_t> head = read_gz(path, header);
  if (head.size() < 4)
    throw InputError(
        fmt::format("{}: not an IDX file: {} bytes, shorter than the 4-byte magic number", path, head.size()));
  if (head[0] != 0 || head[1] != 0 || head[2] != 0x08)
    throw InputError(fmt::format(
        "{}: bad magic number {:02x} {:02x} {:02x} {:02x}: expected 00 00 08 {:02x} (an IDX file of unsigned bytes)",
        path, head[0], head[1], head[2], head[3], rank));
  if (head[3] != rank)
    throw InputError(fmt::format("{}: an IDX array of rank {}; expected rank {} ({})", path, int{head[3]}, rank,
                                 rank == 3 ? "images: count, rows, columns" : "labels: count"));
  if (head.size() < header)
    throw InputError(
        fmt::format("{}: truncated IDX header: {} bytes, expected {} for rank {}", path, head.size(), header, rank));
  IdxArray out;
  std::size_t expected = 1;
  for (int i = 0; i < rank; ++i) {
    const std::uint32_t n = big_endian(head.data() + 4 + 4 * i);
    if (n == 0 || n > (1u << 28))
      throw InputError(fmt::format("{}: dimension {} is {}; expected 1 to 2^28", path, i, n));
    out.dims.push_back(static_cast<Index>(n));
    expected *= n;
    if (expected > (std::size_t{1} << 34))
      throw InputError(fmt::format("{}: the dimensions describe more than 2^34 elements", path));
  }
  // The data, and up to `slack` bytes after it to count what a longer file holds; no more, whatever it inflates to.
  const std::size_t slack = std::size_t{1} << 20;
  const std::vector<std::uint8_t> bytes = read_gz(path, header + expected + slack);
  const std::size_t have = bytes.size() - header;
  if (have < expected)
    throw InputError(fmt::format("{}: truncated IDX data: the dimensions ({}) need {} bytes, the file holds {}", path,
                                 fmt::join(out.dims, " x "), expected, have));
  if (have == expected + slack)
    throw InputError(fmt::format("{}: more than {} bytes after the IDX data of dimensions {} (expected {} bytes)", path,
                                 slack - 1, fmt::join(out.dims, " x "), expected));
  if (have > expected)
    throw InputError(fmt::format("{}: {} bytes after the IDX data of dimensions {} (expected {} bytes)", path,
                                 have - expected, fmt::join(out.dims, " x "), expected));
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

namespace {

struct RawImages {
  IdxArray images, labels;
};

RawImages read_raw_images(const std::string& images_path, const std::string& labels_path) {
  RawImages raw{read_idx(images_path, 3), read_idx(labels_path, 1)};
  if (raw.images.dims[0] != raw.labels.dims[0])
    throw InputError(fmt::format("{}: {} labels for the {} images of {}", labels_path, raw.labels.dims[0],
                                 raw.images.dims[0], images_path));
  return raw;
}

// The images whose label is `label` (all when nullopt), scaled to [-1, 1].
LabelledImages select_images(const RawImages& raw, std::optional<int> label) {
  LabelledImages out;
  out.rows = raw.images.dims[1];
  out.columns = raw.images.dims[2];
  const Index n = raw.images.dims[0], d = out.rows * out.columns;
  Index count = 0;
  for (const std::uint8_t l : raw.labels.data) count += !label || l == *label ? 1 : 0;
  out.images.resize(d, count);
  out.labels.reserve(static_cast<std::size_t>(count));
  // A row-major image is a column of the column-major d x n batch as it is: pixel i of image j is element (i, j).
  for (Index j = 0, c = 0; j < n; ++j) {
    const int l = raw.labels.data[static_cast<std::size_t>(j)];
    if (label && l != *label) continue;
    const std::uint8_t* pixels = raw.images.data.data() + static_cast<std::size_t>(j * d);
    for (Index i = 0; i < d; ++i) out.images(i, c) = scaled_pixel(pixels[i]);
    out.labels.push_back(l);
    ++c;
  }
  return out;
}

}  // namespace

LabelledImages read_idx_images(const std::string& images_path, const std::string& labels_path) {
  return select_images(read_raw_images(images_path, labels_path), std::nullopt);
}

std::optional<FashionMnistSelection> parse_fashion_mnist_name(const std::string& name) {
  const std::string stem = "fashion_mnist";
  if (name.compare(0, stem.size(), stem) != 0) return std::nullopt;
  FashionMnistSelection s;
  std::string rest = name.substr(stem.size());
  const auto bad = [&](const std::string& problem) {
    return ConfigError(
        fmt::format("--data = {}: {}; allowed: fashion_mnist, fashion_mnist:train, fashion_mnist:test, "
                    "fashion_mnist:class=K, fashion_mnist:test:class=K (K in 0..9)",
                    name, problem));
  };
  if (rest.empty()) return s;
  if (rest[0] != ':') return std::nullopt;  // another name that happens to start the same way
  bool split_seen = false;
  while (!rest.empty()) {
    if (rest[0] != ':') throw bad("expected ':' between parts");
    rest.erase(0, 1);
    const auto next = rest.find(':');
    const std::string part = rest.substr(0, next);
    rest = next == std::string::npos ? std::string() : rest.substr(next);
    if (part == "train" || part == "test") {
      if (split_seen || s.label) throw bad("the split (train or test) comes once, before class=K");
      split_seen = true;
      s.test = part == "test";
    } else if (part.rfind("class=", 0) == 0) {
      if (s.label) throw bad("class=K given twice");
      const std::string k = part.substr(6);
      if (k.size() != 1 || k[0] < '0' || k[0] > '9') throw bad(fmt::format("class = '{}': must be 0 to 9", k));
      s.label = k[0] - '0';
    } else {
      throw bad(fmt::format("unknown part '{}'", part));
    }
  }
  return s;
}

std::string fashion_mnist_directory() {
  const char* dir = std::getenv("SCORESDE_FASHION_MNIST_DIR");
  return dir && *dir ? std::string(dir) : std::string(fashion_mnist_package_directory);
}

std::string fashion_mnist_images_file(bool test) {
  return fmt::format("{}/{}-images-idx3-ubyte.gz", fashion_mnist_directory(), test ? "t10k" : "train");
}

std::string fashion_mnist_labels_file(bool test) {
  return fmt::format("{}/{}-labels-idx1-ubyte.gz", fashion_mnist_directory(), test ? "t10k" : "train");
}

namespace {

// The raw bytes of the split a selection draws from, read once per process: decompressing a split takes about half a
// second and a study asks for the same data several times (47 MB for the training split; scaled images are made per
// call). InputError naming the missing file and the Debian package when the files are not there. The class, when
// one is selected, must have images.
const RawImages& fashion_mnist_split(const FashionMnistSelection& selection) {
  const std::string images = fashion_mnist_images_file(selection.test);
  const std::string labels = fashion_mnist_labels_file(selection.test);
  for (const auto& path : {images, labels})
    if (!std::ifstream(path))
      throw InputError(fmt::format(
          "fashion_mnist: {} is missing; install the Debian package dataset-fashion-mnist (apt-get install "
          "dataset-fashion-mnist, or scripts/setup.sh), or point SCORESDE_FASHION_MNIST_DIR at a directory holding "
          "{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte.gz",
          path));
  static std::mutex mutex;
  static std::map<std::pair<std::string, std::string>, RawImages> cache;  // std::map: references stay valid
  std::unique_lock lock(mutex);
  auto it = cache.find({images, labels});
  if (it == cache.end()) it = cache.emplace(std::pair{images, labels}, read_raw_images(images, labels)).first;
  lock.unlock();
  const RawImages& raw = it->second;
  if (selection.label &&
      std::find(raw.labels.data.begin(), raw.labels.data.end(), *selection.label) == raw.labels.data.end())
    throw InputError(fmt::format("fashion_mnist: no image of class {} in {}", *selection.label, labels));
  return raw;
}

}  // namespace

LabelledImages load_fashion_mnist(const FashionMnistSelection& selection) {
  return select_images(fashion_mnist_split(selection), selection.label);
}

Index fashion_mnist_dimension(const FashionMnistSelection& selection) {
  const RawImages& raw = fashion_mnist_split(selection);
  return raw.images.dims[1] * raw.images.dims[2];
}

}  // namespace scoresde
