#include "models/score_factory.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#ifdef SCORESDE_WITH_TORCH
#include "models/torchscript_score.hpp"
#endif

namespace scoresde {

namespace {

// The exact score of a mixture: any SDE, identity scaling.
class MixtureSource final : public ScoreSource {
 public:
  explicit MixtureSource(std::shared_ptr<const GaussianMixture> mixture)
      : ScoreSource(mixture->dim(), std::nullopt, DataScaling::identity(mixture->dim()), nullptr),
        mixture_(std::move(mixture)) {}
  std::shared_ptr<const GaussianMixture> mixture() const override { return mixture_; }
  std::unique_ptr<ScoreModel> make(const Sde& sde) const override {
    return std::make_unique<MixtureScore>(mixture_, sde);
  }

 private:
  std::shared_ptr<const GaussianMixture> mixture_;
};

// The MLP score network of a checkpoint, or of PyTorch weights read into one (records_sde false: the caller's SDE,
// and the parameterisation given or the convention for that SDE).
class MlpSource final : public ScoreSource {
 public:
  MlpSource(std::shared_ptr<const Checkpoint> checkpoint, std::string weights, bool records_sde,
            std::optional<Parameterization> npz_parameterization = std::nullopt)
      : ScoreSource(checkpoint->architecture.dim,
                    records_sde ? std::optional<SdeOptions>(checkpoint->sde) : std::nullopt, checkpoint->scaling,
                    checkpoint->training),
        checkpoint_(std::move(checkpoint)),
        weights_(std::move(weights)),
        npz_(!records_sde),
        npz_parameterization_(npz_parameterization) {}

  std::unique_ptr<ScoreModel> make(const Sde& sde) const override {
    if (weights_ != "ema" && weights_ != "raw")
      throw ConfigError(fmt::format("--weights = {}: choose ema or raw", weights_));
    MlpArchitecture architecture = checkpoint_->architecture;
    if (npz_)
      architecture.parameterization = npz_parameterization_.value_or(default_parameterization(sde.options().kind));
    return std::make_unique<MlpScore>(architecture, checkpoint_->frequencies,
                                      weights_ == "raw" ? checkpoint_->weights : checkpoint_->ema, sde);
  }

 private:
  std::shared_ptr<const Checkpoint> checkpoint_;
  std::string weights_;
  bool npz_;
  std::optional<Parameterization> npz_parameterization_;
};

// PyTorch weights as a checkpoint: identity scaling, weights == ema, no SDE of their own. The parameterisation is
// set when the model is built.
std::shared_ptr<const Checkpoint> read_npz_checkpoint(const std::string& path) {
  ImportedMlp m = import_torch_npz(path, Parameterization::noise);
  auto c = std::make_shared<Checkpoint>();
  c->architecture = m.architecture;
  c->scaling = DataScaling::identity(m.architecture.dim);
  c->training = {{"source", "pytorch npz"}, {"file", path}};
  c->weights = m.weights;
  c->ema = std::move(m.weights);
  return c;
}

}  // namespace

ScoreSpec ScoreSpec::exact(std::string data, Index dim) {
  ScoreSpec s;
  s.data = std::move(data);
  s.dim = dim;
  return s;
}

ScoreSpec ScoreSpec::file(std::string model, std::string weights, std::optional<Parameterization> parameterization) {
  ScoreSpec s;
  s.model = std::move(model);
  s.weights = std::move(weights);
  s.parameterization = parameterization;
  return s;
}

bool ScoreSpec::is_npz() const {
  return model.size() >= 4 && model.substr(model.size() - 4) == ".npz";
}

bool ScoreSpec::is_torchscript() const {
  return model.size() >= 3 && model.substr(model.size() - 3) == ".pt";
}

std::string ScoreSource::training_command() const {
  const auto& t = training_;
  return t.is_object() && t.contains("command") && t["command"].is_string() ? t["command"].get<std::string>() : "";
}

bool torchscript_backend_built() {
#ifdef SCORESDE_WITH_TORCH
  return true;
#else
  return false;
#endif
}

std::shared_ptr<const ScoreSource> open_score(const ScoreSpec& spec) {
  if (spec.is_exact()) return mixture_score(load_data(spec.data, spec.dim));
  if (spec.is_torchscript()) {
#ifdef SCORESDE_WITH_TORCH
    return open_torchscript(spec.model, spec.parameterization, spec.time_input);
#else
    throw ConfigError(
        fmt::format("--model {}: TorchScript models need LibTorch, and this build lacks it (configure with "
                    "-DSCORESDE_WITH_TORCH=ON after installing libtorch-dev)",
                    spec.model));
#endif
  }
  if (spec.time_input)
    throw ConfigError(fmt::format("--time-input: only for TorchScript models (FILE.pt), not {}", spec.model));
  if (spec.is_npz())
    return std::make_shared<const MlpSource>(read_npz_checkpoint(spec.model), spec.weights, false,
                                             spec.parameterization);
  return checkpoint_score(std::make_shared<const Checkpoint>(load_checkpoint(spec.model)), spec.weights);
}

std::shared_ptr<const ScoreSource> mixture_score(std::shared_ptr<const GaussianMixture> mixture) {
  return std::make_shared<const MixtureSource>(std::move(mixture));
}

std::shared_ptr<const ScoreSource> checkpoint_score(std::shared_ptr<const Checkpoint> checkpoint,
                                                    const std::string& weights) {
  return std::make_shared<const MlpSource>(std::move(checkpoint), weights, true);
}

ScaledScoreModel make_score_model(const ScoreSpec& spec, const Sde& sde) {
  const auto source = open_score(spec);
  return {source->make(sde), source->scaling()};
}

}  // namespace scoresde
