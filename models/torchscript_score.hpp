// Score networks saved as TorchScript (torch.jit.script or torch.jit.trace, then torch.jit.save), run through
// LibTorch. The module's forward takes (x: (n, d), t: (n,)), or (x: (n, C, H, W), t: (n,)) when the metadata
// declares a point shape, and returns a tensor shaped like x, in the module's own floating type (float32 or
// float64: the type of its first floating parameter, or float32 for a module without parameters). What the output
// means is the parameterisation (models/mlp.hpp: noise, scaled_score, data, v), converted to the score with
// core/model_output.hpp. What its time argument t is, the time input (models/mlp.hpp, TimeInput): the SDE's time
// t (default), log_sigma = log sigma_t, sigma = sigma~_t = sigma_t / alpha_t (EDM), or index = the DDPM step
// (t - 1/N) s of the discrete schedule (core/sde.hpp; s = N, or the declared index-scale; DPM-Solver's
// model_wrapper passes (t - 1/N) 1000, the same for N = 1000).
//
// The archive carries a TorchScript extra file scoresde.json, written by save_score_module
// (scripts/scoresde_torch.py):
//   {"dim": d, "parameterization": "noise", "sde": {...as to_json(SdeOptions)...},
//    "scaling": {"mean": [...], "scale": [...]}, "time-input": "index", "index-scale": 1000, "shape": [C, H, W]}
// dim is required; the rest is optional (scaling: the identity; time-input: t; shape: (d); sde and
// parameterization then come from the command line). A discrete schedule's alphas_cumprod is the sde's
// "alphas-cumprod" array. Opening the file runs the module once on two points to check the shape and type of its
// output.
//
// Each evaluation is one module call per batch: the states (scoresde's d x n, i.e. (n, d) in C order) are copied
// once into a tensor of the module's type and viewed as (n, C, H, W) without a further copy; the output is copied
// once back into the caller's array and turned into the score there in place. Divergences (d vector-Jacobian
// products) and Jacobian-vector products (two reverse passes) go through autograd. LibTorch's intra-op threads are
// set to 1 when a module is opened: the driver's chunk threads are the parallelism, and results do not depend on
// --threads.
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

// The module in `path` with its metadata. parameterization, time_input: the command line's, which replace the
// archive's. InputError naming the file for a file that is missing, truncated or not TorchScript, missing or
// malformed metadata, and a module whose output on a probe batch has the wrong shape or type. Building the model
// (ScoreSource::make) is a ConfigError for v under an SDE other than vp and for the index time input under a
// schedule other than discrete.
std::shared_ptr<const ScoreSource> open_torchscript(const std::string& path,
                                                    std::optional<Parameterization> parameterization,
                                                    std::optional<TimeInput> time_input = std::nullopt);

}  // namespace scoresde
