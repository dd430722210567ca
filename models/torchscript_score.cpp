#include "models/torchscript_score.hpp"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/errors.hpp"
#include "core/model_output.hpp"
#include "core/sde.hpp"

namespace scoresde {

namespace {

constexpr const char* kMetadataFile = "scoresde.json";

// x (d x n, column-major, any outer stride) as an (n, d) tensor of `dtype` (a copy).
torch::Tensor to_tensor(ConstMatrixRef x, torch::Dtype dtype) {
  auto view = torch::from_blob(const_cast<double*>(x.data()), {x.cols(), x.rows()}, {x.outerStride(), 1},
                               torch::TensorOptions().dtype(torch::kFloat64));
  return view.to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

torch::Tensor times_tensor(ConstVectorRef t, torch::Dtype dtype) {
  auto view = torch::from_blob(const_cast<double*>(t.data()), {t.size()}, {t.innerStride()},
                               torch::TensorOptions().dtype(torch::kFloat64));
  return view.to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

// An (n, d) tensor into out (d x n).
void from_tensor(const torch::Tensor& y, MatrixRef out) {
  const auto c = y.to(torch::kFloat64).contiguous();
  const double* p = c.data_ptr<double>();
  for (Index j = 0; j < out.cols(); ++j)
    for (Index i = 0; i < out.rows(); ++i) out(i, j) = p[j * out.rows() + i];
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
  TorchScriptScore(std::shared_ptr<torch::jit::Module> module, torch::Dtype dtype, Index dim,
                   Parameterization parameterization, std::string path, const Sde& sde)
      : module_(std::move(module)),
        dtype_(dtype),
        dim_(dim),
        parameterization_(parameterization),
        path_(std::move(path)),
        sde_(&sde) {}

  Index dim() const override { return dim_; }
  std::string describe() const override {
    return fmt::format("torchscript({}, d={}, parameterization={}, {}, sde={})", path_, dim_,
                       to_string(parameterization_), dtype_ == torch::kFloat64 ? "float64" : "float32", sde_->name());
  }
  bool has_exact_divergence() const override { return true; }
  bool has_jvp() const override { return true; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override {
    torch::NoGradGuard no_grad;
    const auto y = forward(to_tensor(x, dtype_), times_tensor(t, dtype_));
    from_tensor(y, out);
    to_score(x, t, out);
  }

  void evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, VectorRef divergence) const override {
    auto xt = to_tensor(x, dtype_).requires_grad_(true);
    const auto y = forward(xt, times_tensor(t, dtype_));
    const Index n = x.cols(), d = dim_;
    auto div = torch::zeros({n}, torch::TensorOptions().dtype(dtype_));
    for (Index i = 0; i < d; ++i) {
      auto e = torch::zeros_like(y);
      e.select(1, i).fill_(1.0);
      const auto g = torch::autograd::grad({y}, {xt}, {e}, /*retain_graph=*/true, /*create_graph=*/false,
                                           /*allow_unused=*/true)[0];
      if (g.defined()) div += g.select(1, i);
    }
    {
      torch::NoGradGuard no_grad;
      from_tensor(y.detach(), out);
    }
    const auto dc = div.to(torch::kFloat64).contiguous();
    const double* p = dc.data_ptr<double>();
    for (Index j = 0; j < n; ++j) {
      const Affine c = coefficients(t(j));
      divergence(j) = c.a * p[j] + c.b * static_cast<double>(d);
    }
    to_score(x, t, out);
  }

  // J v by two reverse passes: g(u) = J^T u is linear in u, and d(g(u) . v)/du = J v.
  void evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out, MatrixRef jv) const override {
    auto xt = to_tensor(x, dtype_).requires_grad_(true);
    const auto y = forward(xt, times_tensor(t, dtype_));
    auto u = torch::zeros_like(y).requires_grad_(true);
    const auto vt = to_tensor(v, dtype_);
    const auto g =
        torch::autograd::grad({y}, {xt}, {u}, /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true)[0];
    torch::Tensor j;
    if (g.defined() && g.requires_grad())
      j = torch::autograd::grad({g}, {u}, {vt}, /*retain_graph=*/false, /*create_graph=*/false,
                                /*allow_unused=*/true)[0];
    if (!j.defined()) j = torch::zeros_like(vt);
    from_tensor(y.detach(), out);
    from_tensor(j.detach(), jv);
    to_score(x, t, out);
    for (Index c = 0; c < x.cols(); ++c) {
      const Affine k = coefficients(t(c));
      jv.col(c) = k.a * jv.col(c) + k.b * v.col(c);
    }
  }

 private:
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) const {
    // forward() is const-safe on a shared module: LibTorch's interpreter keeps per-call state only.
    auto y = module_->forward({x, t}).toTensor();
    if (y.dim() != 2 || y.size(0) != x.size(0) || y.size(1) != x.size(1) || y.scalar_type() != dtype_)
      throw InputError(fmt::format("{}: the module returned a tensor of shape {} and type {}; expected ({}, {}) of {}",
                                   path_, fmt::format("{}", y.sizes()), std::string(c10::toString(y.scalar_type())),
                                   x.size(0), x.size(1), std::string(c10::toString(dtype_))));
    return y;
  }

  Affine coefficients(double t) const {
    return score_coefficients(parameterization_, {sde_->alpha(t), sde_->sigma(t)});
  }

  void to_score(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const {
    for (Index j = 0; j < x.cols(); ++j) {
      const Affine c = coefficients(t(j));
      out.col(j) = c.a * out.col(j) + c.b * x.col(j);
    }
  }

  std::shared_ptr<torch::jit::Module> module_;
  torch::Dtype dtype_;
  Index dim_;
  Parameterization parameterization_;
  std::string path_;
  const Sde* sde_;
};

class TorchScriptSource final : public ScoreSource {
 public:
  TorchScriptSource(std::shared_ptr<torch::jit::Module> module, torch::Dtype dtype, Index dim,
                    std::optional<SdeOptions> sde, DataScaling scaling, nlohmann::ordered_json training,
                    std::optional<Parameterization> recorded, std::optional<Parameterization> given, std::string path)
      : ScoreSource(dim, std::move(sde), std::move(scaling), std::move(training)),
        module_(std::move(module)),
        dtype_(dtype),
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
    return std::make_unique<TorchScriptScore>(module_, dtype_, dim(), *p, path_, sde);
  }

 private:
  std::shared_ptr<torch::jit::Module> module_;
  torch::Dtype dtype_;
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
  at::set_num_threads(1);
  torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
  auto module = std::make_shared<torch::jit::Module>();
  try {
    *module = torch::jit::load(path, c10::kCPU, extra);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (const auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    throw InputError(fmt::format("{}: not a TorchScript archive that LibTorch can load ({})", path, what));
  }
  module->eval();
  const std::string& text = extra[kMetadataFile];
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

  torch::Dtype dtype = torch::kFloat32;
  for (const auto& p : module->parameters())
    if (p.is_floating_point()) {
      dtype = p.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
      break;
    }

  // A probe: two points, to check the module's output before any sampler runs it.
  try {
    torch::NoGradGuard no_grad;
    const auto x = torch::zeros({2, dim}, torch::TensorOptions().dtype(dtype));
    const auto t = torch::full({2}, 0.5, torch::TensorOptions().dtype(dtype));
    const auto out = module->forward({x, t});
    if (!out.isTensor()) throw InputError(fmt::format("{}: forward(x, t) must return a tensor", path));
    const auto y = out.toTensor();
    if (y.dim() != 2 || y.size(0) != 2 || y.size(1) != dim)
      throw InputError(fmt::format("{}: forward(x, t) with x of shape (2, {}) returned shape {}; expected (2, {})",
                                   path, dim, fmt::format("{}", y.sizes()), dim));
    if (y.scalar_type() != dtype)
      throw InputError(fmt::format("{}: forward(x, t) returned {} for inputs of {}; expected the same type", path,
                                   std::string(c10::toString(y.scalar_type())), std::string(c10::toString(dtype))));
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (const auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    throw InputError(fmt::format("{}: forward(x: (2, {}), t: (2,)) failed: {}", path, dim, what));
  }

  nlohmann::ordered_json training = {{"source", "torchscript"}, {"file", path}};
  return std::make_shared<const TorchScriptSource>(std::move(module), dtype, dim, std::move(sde), std::move(scaling),
                                                   std::move(training), recorded, parameterization, path);
}

}  // namespace scoresde
