// .npy files at the file boundary (xtensor's xnpy), and atomic writes: every output is written to a temporary
// file beside its destination and renamed into place, so a failed or interrupted run leaves nothing half-written.
#pragma once

#include <fstream>
#include <functional>
#include <istream>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace scoresde {

// Writes the d x n batch x as an (n, d) float64 array (C order) to path as it is (see write_atomically).
void dump_samples_npy(const std::string& path, ConstMatrixRef x);
// The same, atomically.
void write_samples_npy(const std::string& path, ConstMatrixRef x);
// Writes an (n, d) float64 array block by block, for output that does not fit in memory at once: the header of
// dump_samples_npy, then append() takes d x m batches of consecutive samples in order. The file is byte for byte
// the one dump_samples_npy writes for the whole d x n batch. finish() checks that all n samples came and reached the
// file. InputError naming the path when the file cannot be written (a full disk included).
class NpySamplesWriter {
 public:
  NpySamplesWriter(const std::string& path, Index n, Index d);
  void append(ConstMatrixRef block);
  void finish();

 private:
  void check_stream() const;
  std::string path_;
  Index n_, d_, written_ = 0;
  std::ofstream out_;
};
// Writes the vector v as a 1-d (n,) float64 array to path as it is (see write_atomically).
void dump_vector_npy(const std::string& path, ConstVectorRef v);
// Reads an (n, d) float64 or float32 array as a d x n batch; image arrays (n, H, W) and (n, C, H, W) are read
// likewise with each image flattened row-major (d = C H W). InputError naming the file and the problem.
Matrix read_samples_npy(const std::string& path);
// Reads a 1-d (n,) float64 or float32 array (n may be 0; values are not checked). InputError naming the file and
// the problem.
Vector read_vector_npy(const std::string& path);
// An array of any shape as float64 values in the order of the file (C order unless fortran_order).
struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<double> data;
  bool fortran_order = false;
};
// Reads a float64 or float32 .npy array of `size` bytes from `in` (an entry of an .npz archive). InputError naming
// `source` for a malformed header, another element type, or a shape larger than the data.
NpyArray read_npy_array(std::istream& in, std::size_t size, const std::string& source);
// True when the file starts with the .npy magic string "\x93NUMPY" (false for a file that cannot be read).
bool has_npy_magic(const std::string& path);

// Calls write(temporary_path), then renames the temporary file to `path`; removes it if write throws.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);
// Writes text to `path` atomically.
void write_text_atomically(const std::string& path, const std::string& text);
// Removes the temporary files of write_atomically in `dir` (not its subdirectories) whose writing process no longer
// runs: what a SIGKILL between a write and its rename leaves. Returns their names.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);
// Writes an array and its record as a pair: dump(temporary) writes the .npy that becomes `path`, and json_text
// becomes path + ".json". Both files are complete before either is renamed into place (the .json first); if
// anything fails, neither remains.
void write_npy_with_json(const std::string& path, const std::function<void(const std::string&)>& dump,
                         const std::string& json_text);
// The same, with the .json text made by json_text() after dump() has returned: for a record that describes how the
// writing went (a sampler streamed into the file reports its NFE and wall time when done).
void write_npy_with_json(const std::string& path, const std::function<void(const std::string&)>& dump,
                         const std::function<std::string()>& json_text);

}  // namespace scoresde
