// --model, --parameterization and --weights: the options of the commands that evaluate a trained score network
// (sample, likelihood), in one place. Opens MODEL.ckpt, PyTorch WEIGHTS.npz or a TorchScript MODULE.pt through the
// score factory (models/score_factory.hpp), resolves the SDE to use (a checkpoint's own, with any SDE option given on
// the command line replacing that value, and a warning), checks the options that only make sense with a model, and
// builds the network as a ScoreModel.
#pragma once

#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/sde.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/score_factory.hpp"

namespace scoresde {

// Adds --model (described by `model_help`), --parameterization and --weights to `group`.
void add_model_options(po::options_description& group, const std::string& model_help);

struct LoadedModel {
  std::string path;  // as given to --model
  bool npz = false;  // PyTorch weights: identity scaling, the command line's SDE, weights == ema
  // A TorchScript module (FILE.pt): its declared SDE (merged with the command line's, as a checkpoint's) and scaling,
  // weights ignored.
  bool torchscript = false;
  ScoreSpec spec;    // --model, --parameterization (when given) and --weights (ema or raw)
  std::shared_ptr<const ScoreSource> source;  // as opened (open_score)
  SdeOptions sde;                             // the SDE to use, resolved (validated)

  Index dim() const { return source->dim(); }
  // The data scaling the network works in (identity for an .npz).
  const DataScaling& scaling() const { return source->scaling(); }
  // The `scoresde train` command that made the checkpoint, or "" (an .npz, or a checkpoint written by a program).
  std::string training_command() const { return source->training_command(); }
  // The network with the selected weights under `sde`, which the caller keeps alive.
  std::unique_ptr<ScoreModel> make_score(const Sde& sde) const { return source->make(sde); }
  // model, parameterization (for .npz: as given, or the SDE's default) and weights, into a command's resolved options.
  void record(nlohmann::ordered_json& resolved) const;
};

// With --model: loads the file (InputError "--model: FILE: problem") and resolves the rest. cli_sde is the
// command line's SDE (sde_options_from): used as is for .npz and for a .pt that declares none (then --sde must be
// given); for a checkpoint or a .pt declaring one, its own SDE is used and only the SDE
// options given explicitly replace their values, with "scoresde COMMAND: warning: --sde, ... override the SDE the
// model was trained with (vp)" on err naming those whose value differs from the checkpoint's. ConfigError for --data
// given with --model (options with a default count only when given), --parameterization with a checkpoint, --weights
// other than ema or raw, and --dim other than 0 or the model's dimension; for a .pt, no parameterisation (neither
// declared nor given) or no SDE. A .pt's --parameterization differing from the declared one is a warning on err.
// Without --model: std::nullopt, and
// --parameterization is a ConfigError.
std::optional<LoadedModel> load_model_from(const po::variables_map& vm, const SdeOptions& cli_sde,
                                           const std::string& command, std::ostream& err);

// The mixture as seen through a data scaling: the law of y = (x - mean) / scale for x ~ p, i.e. means
// (mu_k - mean) / scale and covariances D^-1 S_k D^-1 with D = diag(scale). What a model trained on standardised
// draws from p learns.
GaussianMixture standardised_mixture(const GaussianMixture& mixture, const DataScaling& scaling);

}  // namespace scoresde
