#include "models/torchscript_score.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
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

// How the module's time argument is formed from the SDE's time t (TimeInput).
struct ModuleTime {
  TimeInput input = TimeInput::t;
  double index_offset = 0;  // index: (t - offset) scale
  double index_scale = 1;
  double operator()(const Sde& sde, double t) const {
    switch (input) {
      case TimeInput::t:
        return t;
      case TimeInput::log_sigma:
        return std::log(sde.sigma(t));
      case TimeInput::sigma:
        return sde.sigma_tilde(t);
      case TimeInput::index:
        return (t - index_offset) * index_scale;
    }
    return t;
  }
};

class TorchScriptScore final : public ScoreModel {
 public:
  TorchScriptScore(std::shared_ptr<const torch_plugin::Module> module, Index dim, Parameterization parameterization,
                   ModuleTime time, std::string path, const Sde& sde)
      : module_(std::move(module)),
        dim_(dim),
        parameterization_(parameterization),
        time_(time),
        path_(std::move(path)),
        sde_(&sde) {}

  Index dim() const override { return dim_; }
  std::string describe() const override {
    return fmt::format("torchscript({}, d={}, parameterization={}, time input {}, {}, sde={})", path_, dim_,
                       to_string(parameterization_), to_string(time_.input), module_->float64() ? "float64" : "float32",
                       sde_->name());
  }
  bool has_exact_divergence() const override { return true; }
  bool has_jvp() const override { return true; }

 protected:
  // The module writes its output o into `out` (one copy from the output tensor), which then becomes the score
  // a o + b x in place; only where out is x itself is o kept apart.
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override {
    const Times times = module_times(t);
    Output o(out, x);
    check(module_->forward(x.cols(), dim_, x.data(), x.outerStride(), times.data, times.stride, o.data(), o.ld()));
    to_score(x, t, o.ref(), out);
  }

  void evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, VectorRef divergence) const override {
    const Times times = module_times(t);
    Output o(out, x);
    Vector div(x.cols());
    check(module_->divergence(x.cols(), dim_, x.data(), x.outerStride(), times.data, times.stride, o.data(), o.ld(),
                              div.data()));
    Coefficients c(*this);
    for (Index j = 0; j < x.cols(); ++j) divergence(j) = c(t(j)).a * div(j) + c(t(j)).b * static_cast<double>(dim_);
    to_score(x, t, o.ref(), out);
  }

  void evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out, MatrixRef jv) const override {
    const Times times = module_times(t);
    Output o(out, x);
    Matrix j(dim_, x.cols());
    check(module_->jvp(x.cols(), dim_, x.data(), x.outerStride(), times.data, times.stride, v.data(), v.outerStride(),
                       o.data(), o.ld(), j.data(), j.outerStride()));
    Coefficients c(*this);
    for (Index col = 0; col < x.cols(); ++col) jv.col(col) = c(t(col)).a * j.col(col) + c(t(col)).b * v.col(col);
    to_score(x, t, o.ref(), out);
  }

 private:
  // The module's time arguments: t itself, or its transform into `buffer`.
  struct Times {
    const double* data;
    long stride;
    Vector buffer;
  };
  Times module_times(ConstVectorRef t) const {
    if (time_.input == TimeInput::t) return {t.data(), static_cast<long>(t.innerStride()), Vector()};
    Times r{nullptr, 1, Vector(t.size())};
    for (Index j = 0; j < t.size(); ++j) r.buffer(j) = time_(*sde_, t(j));
    r.data = r.buffer.data();
    return r;
  }

  // Where the module's output goes: `out`, unless out is x (then a matrix of its own).
  class Output {
   public:
    Output(MatrixRef out, ConstMatrixRef x) : out_(out) {
      if (out.data() == x.data()) own_.resize(out.rows(), out.cols());
    }
    double* data() { return own_.size() ? own_.data() : out_.data(); }
    long ld() const { return own_.size() ? static_cast<long>(own_.rows()) : static_cast<long>(out_.outerStride()); }
    ConstMatrixRef ref() const {
      if (own_.size()) return own_;
      return out_;
    }

   private:
    MatrixRef out_;
    Matrix own_;
  };

  // The score coefficients at each column's time, recomputed only when the time changes (a batch usually shares
  // one time).
  class Coefficients {
   public:
    explicit Coefficients(const TorchScriptScore& m) : m_(m) {}
    const Affine& operator()(double t) {
      if (!(t == t_)) {
        t_ = t;
        c_ = score_coefficients(m_.parameterization_, {m_.sde_->alpha(t), m_.sde_->sigma(t)});
      }
      return c_;
    }

   private:
    const TorchScriptScore& m_;
    double t_ = std::numeric_limits<double>::quiet_NaN();
    Affine c_{0, 0};
  };

  void check(const std::string& error) const {
    if (!error.empty()) throw InputError(fmt::format("{}: {}", path_, error));
  }

  // out = the score of the module's output o at (x, t); o may be out itself.
  void to_score(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef o, MatrixRef out) const {
    Coefficients c(*this);
    for (Index j = 0; j < x.cols(); ++j) {
      const Affine& k = c(t(j));
      out.col(j) = k.a * o.col(j) + k.b * x.col(j);
    }
  }

  std::shared_ptr<const torch_plugin::Module> module_;
  Index dim_;
  Parameterization parameterization_;
  ModuleTime time_;
  std::string path_;
  const Sde* sde_;
};

class TorchScriptSource final : public ScoreSource {
 public:
  struct Declared {
    std::optional<Parameterization> parameterization;
    std::optional<TimeInput> time_input;
    std::optional<double> index_scale;
  };

  TorchScriptSource(std::shared_ptr<const torch_plugin::Module> module, Index dim, std::optional<SdeOptions> sde,
                    DataScaling scaling, nlohmann::ordered_json training, Declared recorded,
                    std::optional<Parameterization> given, std::optional<TimeInput> given_time, std::string path)
      : ScoreSource(dim, std::move(sde), std::move(scaling), std::move(training)),
        module_(std::move(module)),
        recorded_(recorded),
        given_(given),
        given_time_(given_time),
        path_(std::move(path)) {}

  std::optional<Parameterization> recorded_parameterization() const override { return recorded_.parameterization; }
  std::optional<TimeInput> recorded_time_input() const override { return recorded_.time_input; }

  std::unique_ptr<ScoreModel> make(const Sde& sde) const override {
    const auto p = given_ ? given_ : recorded_.parameterization;
    if (!p)
      throw ConfigError(fmt::format(
          "--parameterization: the TorchScript model {} declares none; give noise, scaled_score, data or v", path_));
    if (*p == Parameterization::v && sde.options().kind != SdeKind::vp)
      throw ConfigError(
          fmt::format("--parameterization = v: only under the vp SDE (alpha^2 + sigma^2 = 1), not {}", sde.name()));
    ModuleTime time;
    time.input = given_time_.value_or(recorded_.time_input.value_or(TimeInput::t));
    if (time.input == TimeInput::index) {
      const SdeOptions& o = sde.options();
      if (o.kind == SdeKind::ve || o.schedule != VpSchedule::discrete)
        throw ConfigError(
            fmt::format("--time-input = index: the DDPM steps of a discrete schedule (--schedule discrete with "
                        "--alphas-cumprod); the SDE is {} with the {} schedule",
                        sde.name(), o.kind == SdeKind::ve ? "ve" : to_string(o.schedule)));
      const double N = static_cast<double>(o.alphas_cumprod.size());
      time.index_offset = 1.0 / N;
      time.index_scale = recorded_.index_scale.value_or(N);
    }
    return std::make_unique<TorchScriptScore>(module_, dim(), *p, time, path_, sde);
  }

 private:
  std::shared_ptr<const torch_plugin::Module> module_;
  Declared recorded_;
  std::optional<Parameterization> given_;
  std::optional<TimeInput> given_time_;
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
    if (!find_option(sde_option_table(), key)) {
      std::vector<std::string> keys;
      for (const auto& spec : sde_option_table()) keys.push_back(spec.key);
      throw InputError(fmt::format("{}: unknown key \"{}\" (keys: {})", source, key, fmt::join(keys, ", ")));
    }
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
                                                    std::optional<Parameterization> parameterization,
                                                    std::optional<TimeInput> time_input) {
  if (!std::filesystem::is_regular_file(path)) throw InputError(fmt::format("{}: no such file", path));
  const auto load = plugin_loader();
  std::string text, error;
  std::unique_ptr<torch_plugin::Module> module(load(path.c_str(), kMetadataFile, &text, &error));
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
  TorchScriptSource::Declared recorded;
  const auto named = [&](const char* key, auto from_string) {
    std::optional<decltype(from_string(std::string_view()))> value;
    if (!meta.contains(key) || meta[key].is_null()) return value;
    if (!meta[key].is_string()) throw InputError(fmt::format("{}: \"{}\" must be a string", where, key));
    try {
      value = from_string(meta[key].get<std::string>());
    } catch (const ConfigError& e) {
      throw InputError(fmt::format("{}: {}", where, e.what()));
    }
    return value;
  };
  recorded.parameterization = named("parameterization", parameterization_from_string);
  recorded.time_input = named("time-input", time_input_from_string);
  if (meta.contains("index-scale") && !meta["index-scale"].is_null()) {
    const auto& v = meta["index-scale"];
    if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
      throw InputError(fmt::format("{}: \"index-scale\" must be a positive number", where));
    recorded.index_scale = v.get<double>();
  }
  // The shape of one point: (C, H, W) or any other whose product is d.
  std::vector<long> shape;
  if (meta.contains("shape") && !meta["shape"].is_null()) {
    const auto& v = meta["shape"];
    long size = 1;
    bool ok = v.is_array() && !v.empty();
    for (const auto& e : v) {
      ok = ok && e.is_number_integer() && e.get<long>() >= 1;
      if (ok) size *= e.get<long>();
    }
    if (!ok || size != dim)
      throw InputError(
          fmt::format("{}: \"shape\" = {} must be positive integers whose product is dim = {}", where, v.dump(), dim));
    for (const auto& e : v) shape.push_back(e.get<long>());
  }
  module->set_point_shape(static_cast<long>(shape.size()), shape.data());
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
    const std::string problem = module->forward(2, dim, x.data(), dim, t.data(), 1, out.data(), dim);
    if (!problem.empty()) throw InputError(fmt::format("{}: {}", path, problem));
  }

  nlohmann::ordered_json training = {{"source", "torchscript"}, {"file", path}};
  return std::make_shared<const TorchScriptSource>(std::shared_ptr<const torch_plugin::Module>(std::move(module)), dim,
                                                   std::move(sde), std::move(scaling), std::move(training), recorded,
                                                   parameterization, time_input, path);
}

}  // namespace scoresde
