// Trained score networks on disk: scoresde checkpoints, and PyTorch weights exported as .npz.
//
// Checkpoint format, version 1 (docs/training.md has the full description). All integers little-endian.
//
//   offset 0   8 bytes   magic "SSDECKPT"
//          8   u32       format version (1)
//         12   u64       header length H in bytes
//         20   H bytes   JSON header (UTF-8): architecture, SDE, data scaling, training options and progress,
//                        and the list of arrays that follow: [{"name", "dtype" ("f4" | "f8"), "count"}, ...]
//     20 + H   arrays    raw little-endian values, in the order of the list, no padding
//        end   u64       FNV-1a 64-bit hash of every byte before it
//
// The arrays are "frequencies" (f8, the Fourier frequencies; empty for raw time), "weights" (the raw weights)
// and "ema" (their exponential moving average, used for sampling), the last two in the network's precision,
// laid out as described in models/mlp.hpp. Files are written atomically (temporary file, then rename).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/npy.hpp"
#include "core/sde.hpp"
#include "models/mlp.hpp"
#include "models/training.hpp"

namespace scoresde {

inline constexpr std::uint32_t checkpoint_version = 1;

struct Checkpoint {
  MlpArchitecture architecture;
  Vector frequencies;
  SdeOptions sde;
  DataScaling scaling;
  nlohmann::ordered_json training;  // options, data source, progress and loss history, as recorded by `train`
  Vector weights;                   // raw weights
  Vector ema;                       // EMA of the weights (what sampling uses)
};

// Atomic. InputError naming the file when it cannot be written.
void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// InputError naming the file and the problem for a missing, truncated, corrupted or wrong-version file, or
// one whose header is inconsistent with its arrays.
Checkpoint load_checkpoint(const std::string& path);
// True when the file starts with the checkpoint magic.
bool is_checkpoint_file(const std::string& path);

// ------------------------------------------------------------------------------------------------ .npz

// One array of an .npz archive is an NpyArray (core/npy.hpp): float64 values with their shape, C order.
// Reads every array of an .npz written by numpy.savez (stored, not compressed, entries). InputError naming
// the file and the problem.
std::map<std::string, NpyArray> read_npz(const std::string& path);

// A PyTorch MLP exported as .npz: keys W1, b1, ..., WL, bL, W_l of shape (out, in) as nn.Linear holds it,
// input [x, t] with raw time, SiLU between layers, no activation after the last. Returns the architecture
// (raw time, float32, the given parameterisation) and the weights in this library's layout. InputError naming
// the file, the key and the problem.
struct ImportedMlp {
  MlpArchitecture architecture;
  Vector weights;
};
ImportedMlp import_torch_npz(const std::string& path, Parameterization parameterization);

}  // namespace scoresde
