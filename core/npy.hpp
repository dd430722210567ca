// .npy files at the file boundary (xtensor's xnpy), and atomic writes: every output is written to a temporary
// file beside its destination and renamed into place, so a failed or interrupted run leaves nothing half-written.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace scoresde {

// Writes the d x n batch x as an (n, d) float64 array (C order) to path as it is (see write_atomically).
void dump_samples_npy(const std::string& path, ConstMatrixRef x);
// The same, atomically.
void write_samples_npy(const std::string& path, ConstMatrixRef x);
// Writes the vector v as a 1-d (n,) float64 array to path as it is (see write_atomically).
void dump_vector_npy(const std::string& path, ConstVectorRef v);
// Reads an (n, d) float64 or float32 array as a d x n batch; image arrays (n, H, W) and (n, C, H, W) are read
// likewise with each image flattened row-major (d = C H W). InputError naming the file and the problem.
Matrix read_samples_npy(const std::string& path);
// Reads a 1-d (n,) float64 or float32 array (n may be 0; values are not checked). InputError naming the file and
// the problem.
Vector read_vector_npy(const std::string& path);
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

}  // namespace scoresde
