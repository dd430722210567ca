// Score networks saved as TorchScript (torch.jit.script or torch.jit.trace, then torch.jit.save), run through
// LibTorch. The module's forward takes (x: (n, d), t: (n,)) and returns a tensor shaped like x, in the module's own
// floating type (float32 or float64: the type of its first floating parameter, or float32 for a module without
// parameters). What the output means is the parameterisation (models/mlp.hpp: noise, scaled_score, data, v),
// converted to the score with core/model_output.hpp.
//
// The archive carries a TorchScript extra file scoresde.json, written by save_score_module
// (scripts/scoresde_torch.py):
//   {"dim": d, "parameterization": "noise", "sde": {...as to_json(SdeOptions)...},
//    "scaling": {"mean": [...], "scale": [...]}}
// dim is required; sde, parameterization and scaling are optional (scaling: the identity; the others then come from
// the command line). Opening the file runs the module once on two points to check the shape and type of its output.
//
// Each evaluation is one module call per batch; divergences (d vector-Jacobian products) and Jacobian-vector
// products (two reverse passes) go through autograd. LibTorch's intra-op threads are set to 1 when a module is
// opened: the driver's chunk threads are the parallelism, and results do not depend on --threads.
//
// LibTorch itself runs in the plugin libscoresde_torch.so (models/torchscript_plugin.hpp), loaded with dlopen on the
// first open, so that programs that never open a .pt do not pay LibTorch's second of loading. This file is compiled
// only when the build has LibTorch (SCORESDE_WITH_TORCH); ConfigError when the plugin cannot be loaded.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "models/mlp.hpp"
#include "models/score_factory.hpp"

namespace scoresde {

// The module in `path` with its metadata. parameterization: the command line's, which replaces the archive's.
// InputError naming the file for a file that is missing, truncated or not TorchScript, missing or malformed
// metadata, and a module whose output on a probe batch has the wrong shape or type.
std::shared_ptr<const ScoreSource> open_torchscript(const std::string& path,
                                                    std::optional<Parameterization> parameterization);

}  // namespace scoresde
