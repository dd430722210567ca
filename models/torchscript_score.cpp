#include "models/torchscript_score.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/errors.hpp"
#include "core/model_output.hpp"
#include "core/sde.hpp"
#include "models/torchscript_plugin.hpp"

namespace scoresde {

namespace {

constexpr const char* kMetadataFile = "scoresde.json";

// The LibTorch plugin (models/torchscript_plugin.hpp), loaded once: $SCORESDE_TORCH_PLUGIN, else the one this
// build made, else the installed one.
torch_plugin::LoadFn plugin_loader() {
  static std::mutex mutex;
  static torch_plugin::LoadFn loader = nullptr;
  const std::lock_guard lock(mutex);
  if (loader) return loader;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("SCORESDE_TORCH_PLUGIN"); env && *env) candidates.emplace_back(env);
  candidates.emplace_back(SCORESDE_TORCH_PLUGIN_BUILD);
  candidates.emplace_back(SCORESDE_TORCH_PLUGIN_INSTALL);
  std::string tried;
  for (const auto& path : candidates) {
    if (!std::filesystem::is_regular_file(path)) {
      tried += fmt::format("; {}: no such file", path);
      continue;
    }
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      tried += fmt::format("; {}: {}", path, ::dlerror());
      continue;
    }
    if (void* f = ::dlsym(handle, torch_plugin::load_symbol)) {
      loader = reinterpret_cast<torch_plugin::LoadFn>(f);
      return loader;
    }
    tried += fmt::format("; {}: no {}", path, torch_plugin::load_symbol);
  }
  throw ConfigError(
      fmt::format("--model: TorchScript models need the LibTorch plugin libscoresde_torch.so, which "
                  "could not be loaded (set SCORESDE_TORCH_PLUGIN){}",
                  tried));
}

Prediction as_prediction(Parameterization p) {
  switch (p) {
    case Parameterization::noise:
    case Parameterization::scaled_score:
      return Prediction::noise;  // scaled_score = -noise
    case Parameterization::data:
      return Prediction::data;
    case Parameterization::v:
      return Prediction::v;
  }
  return Prediction::noise;
}

// The score is affine in the output o and the state x at each time: s = a o + b x. The coefficients come from
// convert_prediction applied to (x = 0, o = 1) and (x = 1, o = 0).
struct Affine {
  double a, b;
};
Affine score_coefficients(Parameterization p, KernelCoefficients k) {
  const Prediction from = as_prediction(p);
  Matrix zero = Matrix::Zero(1, 1), one = Matrix::Ones(1, 1), out(1, 1);
  convert_prediction(from, Prediction::score, zero, one, k, out);
  double a = out(0, 0);
  convert_prediction(from, Prediction::score, one, zero, k, out);
  const double b = out(0, 0);
  if (p == Parameterization::scaled_score) a = -a;
  return {a, b};
}

class TorchScriptScore final : public ScoreModel {
 public:
  TorchScriptScore(std::shared_ptr<const torch_plugin::Module> module, Index dim, Parameterization parameterization,
                   std::string path, const Sde& sde)
      : module_(std::move(module)),
        dim_(dim),
        parameterization_(parameterization),
        path_(std::move(path)),
        sde_(&sde) {}

  Index dim() const override { return dim_; }
  std::string describe() const override {
    return fmt::format("torchscript({}, d={}, parameterization={}, {}, sde={})", path_, dim_,
                       to_string(parameterization_), module_->float64() ? "float64" : "float32", sde_->name());
  }
  bool has_exact_divergence() const override { return true; }
  bool has_jvp() const override { return true; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override {
    Matrix o(dim_, x.cols());
    check(module_->forward(x.cols(), dim_, x.data(), x.outerStride(), t.data(), t.innerStride(), o.data()));
    to_score(x, t, o, out);
  }

  void evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, VectorRef divergence) const override {
    Matrix o(dim_, x.cols());
    Vector div(x.cols());
    check(module_->divergence(x.cols(), dim_, x.data(), x.outerStride(), t.data(), t.innerStride(), o.data(),
                              div.data()));
    for (Index j = 0; j < x.cols(); ++j) {
      const Affine c = coefficients(t(j));
      divergence(j) = c.a * div(j) + c.b * static_cast<double>(dim_);
    }
    to_score(x, t, o, out);
  }

  void evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out, MatrixRef jv) const override {
    Matrix o(dim_, x.cols()), j(dim_, x.cols());
    check(module_->jvp(x.cols(), dim_, x.data(), x.outerStride(), t.data(), t.innerStride(), v.data(), v.outerStride(),
                       o.data(), j.data()));
    to_score(x, t, o, out);
    for (Index c = 0; c < x.cols(); ++c) {
      const Affine k = coefficients(t(c));
      jv.col(c) = k.a * j.col(c) + k.b * v.col(c);
    }
  }

 private:
  void check(const std::string& error) const {
    if (!error.empty()) throw InputError(fmt::format("{}: {}", path_, error));
  }

  Affine coefficients(double t) const {
    return score_coefficients(parameterization_, {sde_->alpha(t), sde_->sigma(t)});
  }

  // out = the score of the module's output o at (x, t).
  void to_score(ConstMatrixRef x, ConstVectorRef t, const Matrix& o, MatrixRef out) const {
    for (Index j = 0; j < x.cols(); ++j) {
      const Affine c = coefficients(t(j));
      out.col(j) = c.a * o.col(j) + c.b * x.col(j);
    }
  }

  std::shared_ptr<const torch_plugin::Module> module_;
  Index dim_;
  Parameterization parameterization_;
  std::string path_;
  const Sde* sde_;
};

class TorchScriptSource final : public ScoreSource {
 public:
  TorchScriptSource(std::shared_ptr<const torch_plugin::Module> module, Index dim, std::optional<SdeOptions> sde,
                    DataScaling scaling, nlohmann::ordered_json training, std::optional<Parameterization> recorded,
                    std::optional<Parameterization> given, std::string path)
      : ScoreSource(dim, std::move(sde), std::move(scaling), std::move(training)),
        module_(std::move(module)),
        recorded_(recorded),
        given_(given),
        path_(std::move(path)) {}

  std::optional<Parameterization> recorded_parameterization() const override { return recorded_; }

  std::unique_ptr<ScoreModel> make(const Sde& sde) const override {
    const auto p = given_ ? given_ : recorded_;
    if (!p)
      throw ConfigError(fmt::format(
          "--parameterization: the TorchScript model {} declares none; give noise, scaled_score, data or v", path_));
    if (*p == Parameterization::v && sde.options().kind != SdeKind::vp)
      throw ConfigError(
          fmt::format("--parameterization = v: only under the vp SDE (alpha^2 + sigma^2 = 1), not {}", sde.name()));
    return std::make_unique<TorchScriptScore>(module_, dim(), *p, path_, sde);
  }

 private:
  std::shared_ptr<const torch_plugin::Module> module_;
  std::optional<Parameterization> recorded_, given_;
  std::string path_;
};

Vector json_vector(const nlohmann::json& j, Index dim, const std::string& what) {
  if (!j.is_array() || static_cast<Index>(j.size()) != dim)
    throw InputError(fmt::format("{}: must be an array of {} numbers", what, dim));
  Vector v(dim);
  for (Index i = 0; i < dim; ++i) {
    if (!j[i].is_number()) throw InputError(fmt::format("{}: must be an array of {} numbers", what, dim));
    v(i) = j[i].get<double>();
  }
  return v;
}

// The declared SDE: the keys of to_json(SdeOptions), those left out at their defaults (T: the horizon of the
// declared schedule).
SdeOptions declared_sde(const nlohmann::json& given, const std::string& source) {
  if (!given.is_object()) throw InputError(fmt::format("{}: must be an object (the keys of --sde ...)", source));
  nlohmann::json j = to_json(SdeOptions{});
  for (const auto& [key, value] : given.items()) {
    if (!j.contains(key))
      throw InputError(
          fmt::format("{}: unknown key \"{}\" (keys: sde, schedule, beta-min, beta-max, cosine-s, "
                      "sigma-min, sigma-max, T)",
                      source, key));
    j[key] = value;
  }
  const bool horizon_given = given.contains("T");
  if (!horizon_given) j["T"] = 0.5;  // a placeholder valid for every SDE, replaced by the default below
  SdeOptions o = sde_options_from_json(j, source);
  if (!horizon_given) {
    o.T.reset();
    try {
      o.validate();
    } catch (const ConfigError& e) {
      throw InputError(fmt::format("{}: the SDE is invalid ({})", source, e.what()));
    }
  }
  return o;
}

}  // namespace

std::shared_ptr<const ScoreSource> open_torchscript(const std::string& path,
                                                    std::optional<Parameterization> parameterization) {
  if (!std::filesystem::is_regular_file(path)) throw InputError(fmt::format("{}: no such file", path));
  const auto load = plugin_loader();
  std::string text, error;
  std::shared_ptr<const torch_plugin::Module> module(load(path.c_str(), kMetadataFile, &text, &error));
  if (!module) throw InputError(fmt::format("{}: {}", path, error));
  if (text.empty())
    throw InputError(
        fmt::format("{}: no {} metadata in the archive (save the module with save_score_module, "
                    "scripts/scoresde_torch.py)",
                    path, kMetadataFile));
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: {} is not JSON ({})", path, kMetadataFile, e.what()));
  }
  const std::string where = fmt::format("{}: {}", path, kMetadataFile);
  if (!meta.is_object() || !meta.contains("dim") || !meta["dim"].is_number_integer() || meta["dim"].get<Index>() < 1)
    throw InputError(fmt::format("{}: \"dim\" must be a positive integer", where));
  const Index dim = meta["dim"].get<Index>();
  std::optional<SdeOptions> sde;
  if (meta.contains("sde") && !meta["sde"].is_null()) sde = declared_sde(meta["sde"], where + " sde");
  std::optional<Parameterization> recorded;
  if (meta.contains("parameterization") && !meta["parameterization"].is_null()) {
    if (!meta["parameterization"].is_string())
      throw InputError(fmt::format("{}: \"parameterization\" must be a string", where));
    try {
      recorded = parameterization_from_string(meta["parameterization"].get<std::string>());
    } catch (const ConfigError& e) {
      throw InputError(fmt::format("{}: {}", where, e.what()));
    }
  }
  DataScaling scaling = DataScaling::identity(dim);
  if (meta.contains("scaling") && !meta["scaling"].is_null()) {
    const auto& s = meta["scaling"];
    if (!s.is_object() || !s.contains("mean") || !s.contains("scale"))
      throw InputError(fmt::format("{}: \"scaling\" must hold \"mean\" and \"scale\"", where));
    scaling.mean = json_vector(s["mean"], dim, where + " scaling.mean");
    scaling.scale = json_vector(s["scale"], dim, where + " scaling.scale");
    if (!(scaling.scale.array() > 0).all() || !scaling.scale.allFinite() || !scaling.mean.allFinite())
      throw InputError(fmt::format("{}: scaling.scale must be positive and finite", where));
  }

  // A probe: two points, to check the module's output before any sampler runs it.
  {
    const Matrix x = Matrix::Zero(dim, 2);
    const Vector t = Vector::Constant(2, 0.5);
    Matrix out(dim, 2);
    const std::string problem = module->forward(2, dim, x.data(), dim, t.data(), 1, out.data());
    if (!problem.empty()) throw InputError(fmt::format("{}: {}", path, problem));
  }

  nlohmann::ordered_json training = {{"source", "torchscript"}, {"file", path}};
  return std::make_shared<const TorchScriptSource>(std::move(module), dim, std::move(sde), std::move(scaling),
                                                   std::move(training), recorded, parameterization, path);
}

}  // namespace scoresde
