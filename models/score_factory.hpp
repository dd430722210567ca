// Score models from a description, in one place: the exact score of a mixture (models/datasets.hpp), or a trained
// network in a file, a scoresde checkpoint MODEL.ckpt or PyTorch weights WEIGHTS.npz (models/checkpoint.hpp).
//
// Opening a score (open_score) reads the file or loads the mixture once and tells what the score brings before an
// SDE is chosen: its dimension, the SDE a checkpoint was trained with (which callers use, or override), the data
// scaling the model works in and what `scoresde train` recorded. The model itself is then built under an SDE
// (ScoreSource::make; make_score_model does both steps). A new backend is one file deriving from ScoreSource and one
// branch in open_score (models/score_factory.cpp).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/sde.hpp"
#include "core/types.hpp"
#include "models/data_scaling.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/mlp.hpp"
#include "models/score_model.hpp"

namespace scoresde {

struct Checkpoint;  // models/checkpoint.hpp

// Which score: the exact score of a mixture (model empty) or a trained network in a file.
struct ScoreSpec {
  std::string data;  // exact: eight_gaussians, gaussian or a mixture FILE.json (load_data)
  Index dim = 0;     // exact: the dimension of gaussian; checked against a mixture file (0: not given)
  // a network: MODEL.ckpt from `scoresde train`, PyTorch weights FILE.npz or a TorchScript module FILE.pt (by the
  // extension)
  std::string model;
  // .npz: how to read the network's output; by default the convention for the SDE the model is built under
  // (default_parameterization). .pt: replaces what the archive declares. A checkpoint records its own: ignored.
  std::optional<Parameterization> parameterization;
  // .pt: what the module's time argument is (t, log_sigma, sigma or index); replaces what the archive declares
  // (default t). Other models: must be unset.
  std::optional<TimeInput> time_input;
  std::string weights = "ema";  // a checkpoint's ema (what sampling uses) or raw weights; an .npz has one set

  static ScoreSpec exact(std::string data, Index dim = 0);
  static ScoreSpec file(std::string model, std::string weights = "ema",
                        std::optional<Parameterization> parameterization = std::nullopt);
  bool is_exact() const { return model.empty(); }
  bool is_npz() const;          // a model file whose name ends in .npz
  bool is_torchscript() const;  // a model file whose name ends in .pt (models/torchscript_score.hpp)
  Parameterization resolved_parameterization(SdeKind kind) const {
    return parameterization.value_or(default_parameterization(kind));
  }
};

// An opened score: what it is before an SDE is chosen, and its model under any SDE.
class ScoreSource {
 public:
  virtual ~ScoreSource() = default;

  Index dim() const { return dim_; }
  // The SDE the model was trained with, when the source records it (a checkpoint); std::nullopt when the caller
  // chooses (an exact score works under any SDE; PyTorch weights record none).
  const std::optional<SdeOptions>& trained_sde() const { return trained_sde_; }
  // The data scaling y = (x - mean) / scale the model works in: it takes and gives standardised points. The
  // identity for an exact score and for PyTorch weights.
  const DataScaling& scaling() const { return scaling_; }
  // What `scoresde train` recorded (options, data source, progress); for an .npz {"source", "file"}; null for an
  // exact score and a checkpoint written without a record.
  const nlohmann::ordered_json& training() const { return training_; }
  // The `scoresde train` command that made the model, or "".
  std::string training_command() const;
  // The mixture of an exact score (its closed-form densities); nullptr for a network.
  virtual std::shared_ptr<const GaussianMixture> mixture() const { return nullptr; }
  // The parameterisation the file declares for a network whose reading is chosen at make() (a TorchScript module's
  // metadata); std::nullopt otherwise.
  virtual std::optional<Parameterization> recorded_parameterization() const { return std::nullopt; }
  // The time input a TorchScript module declares (models/mlp.hpp, TimeInput); std::nullopt otherwise.
  virtual std::optional<TimeInput> recorded_time_input() const { return std::nullopt; }

  // The model under `sde`, which the caller keeps alive as long as the model. ConfigError for weights other than
  // ema or raw.
  virtual std::unique_ptr<ScoreModel> make(const Sde& sde) const = 0;

 protected:
  ScoreSource(Index dim, std::optional<SdeOptions> trained_sde, DataScaling scaling, nlohmann::ordered_json training)
      : dim_(dim), trained_sde_(std::move(trained_sde)), scaling_(std::move(scaling)), training_(std::move(training)) {}

 private:
  Index dim_;
  std::optional<SdeOptions> trained_sde_;
  DataScaling scaling_;
  nlohmann::ordered_json training_;
};

// Loads what the spec names: the mixture (load_data; its errors), the checkpoint (load_checkpoint), the .npz
// (import_torch_npz) or the TorchScript .pt (open_torchscript); InputError naming the file and the problem.
// ConfigError for a .pt when the build lacks LibTorch.
std::shared_ptr<const ScoreSource> open_score(const ScoreSpec& spec);
// True when this build has the TorchScript backend (LibTorch found at configure time).
bool torchscript_backend_built();
// The exact score of a mixture already loaded.
std::shared_ptr<const ScoreSource> mixture_score(std::shared_ptr<const GaussianMixture> mixture);
// A network from a checkpoint already in memory, with its ema or raw weights (as ScoreSpec::weights).
std::shared_ptr<const ScoreSource> checkpoint_score(std::shared_ptr<const Checkpoint> checkpoint,
                                                    const std::string& weights = "ema");

// A model together with the data scaling it works in.
struct ScaledScoreModel {
  std::unique_ptr<ScoreModel> model;
  DataScaling scaling;
};
// Opens the spec and builds its model under `sde` (which the caller keeps alive as long as the model), in one step:
// for callers whose SDE does not come from the model (open_score, then ScoreSource::make, for those whose does).
ScaledScoreModel make_score_model(const ScoreSpec& spec, const Sde& sde);

}  // namespace scoresde
