// The LibTorch side of TorchScript score models: the shared module libscoresde_torch.so, loaded by
// models/torchscript_score.cpp when a .pt is opened (models/torchscript_plugin.hpp). It uses LibTorch and the
// standard library only.
#include "models/torchscript_plugin.hpp"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace scoresde::torch_plugin {

namespace {

std::string first_line(const std::exception& e) {
  std::string what = e.what();
  if (const auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  return what;
}

// The batch as one (n, d) tensor of the module's type: one copy, converting from double.
torch::Tensor points(long n, long d, const double* x, long ldx, torch::Dtype dtype) {
  auto view = torch::from_blob(const_cast<double*>(x), {n, d}, {ldx, 1}, torch::TensorOptions().dtype(torch::kFloat64));
  return view.to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

torch::Tensor times(long n, const double* t, long stride, torch::Dtype dtype) {
  auto view = torch::from_blob(const_cast<double*>(t), {n}, {stride}, torch::TensorOptions().dtype(torch::kFloat64));
  return view.to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

// y (n points of any shape) into the (n, d) double array out with outer stride ldo: one copy, converting to double.
void copy_out(const torch::Tensor& y, long n, long d, double* out, long ldo) {
  auto dst = torch::from_blob(out, {n, d}, {ldo, 1}, torch::TensorOptions().dtype(torch::kFloat64));
  dst.copy_(y.detach().reshape({n, d}));
}

class TorchModule final : public Module {
 public:
  TorchModule(torch::jit::Module module, torch::Dtype dtype) : module_(std::move(module)), dtype_(dtype) {}

  bool float64() const override { return dtype_ == torch::kFloat64; }

  void set_point_shape(long rank, const long* dims) override { shape_.assign(dims, dims + rank); }

  std::string forward(long n, long d, const double* x, long ldx, const double* t, long ts, double* out,
                      long ldo) const override {
    return guarded([&] {
      torch::NoGradGuard no_grad;
      copy_out(call(points(n, d, x, ldx, dtype_), times(n, t, ts, dtype_)), n, d, out, ldo);
    });
  }

  std::string divergence(long n, long d, const double* x, long ldx, const double* t, long ts, double* out, long ldo,
                         double* div) const override {
    return guarded([&] {
      auto xt = points(n, d, x, ldx, dtype_).requires_grad_(true);
      const auto y = call(xt, times(n, t, ts, dtype_)).reshape({n, d});
      auto sum = torch::zeros({n}, torch::TensorOptions().dtype(dtype_));
      for (long i = 0; i < d; ++i) {
        auto e = torch::zeros_like(y);
        e.select(1, i).fill_(1.0);
        const auto g = torch::autograd::grad({y}, {xt}, {e}, /*retain_graph=*/true, /*create_graph=*/false,
                                             /*allow_unused=*/true)[0];
        if (g.defined()) sum += g.select(1, i).detach();
      }
      copy_out(y, n, d, out, ldo);
      copy_out(sum, n, 1, div, 1);
    });
  }

  // J v by two reverse passes: g(u) = J^T u is linear in u, and d(g(u) . v)/du = J v.
  std::string jvp(long n, long d, const double* x, long ldx, const double* t, long ts, const double* v, long ldv,
                  double* out, long ldo, double* jv, long ldj) const override {
    return guarded([&] {
      auto xt = points(n, d, x, ldx, dtype_).requires_grad_(true);
      const auto y = call(xt, times(n, t, ts, dtype_)).reshape({n, d});
      auto u = torch::zeros_like(y).requires_grad_(true);
      const auto vt = points(n, d, v, ldv, dtype_);
      const auto g = torch::autograd::grad({y}, {xt}, {u}, /*retain_graph=*/true, /*create_graph=*/true,
                                           /*allow_unused=*/true)[0];
      torch::Tensor j;
      if (g.defined() && g.requires_grad())
        j = torch::autograd::grad({g}, {u}, {vt}, /*retain_graph=*/false, /*create_graph=*/false,
                                  /*allow_unused=*/true)[0];
      if (!j.defined()) j = torch::zeros_like(vt);
      copy_out(y, n, d, out, ldo);
      copy_out(j, n, d, jv, ldj);
    });
  }

 private:
  struct Failure {
    std::string message;
  };

  template <class F>
  static std::string guarded(F&& f) {
    try {
      f();
      return "";
    } catch (const Failure& e) {
      return e.message;
    } catch (const std::exception& e) {
      return "forward(x, t) failed: " + first_line(e);
    }
  }

  // forward() on a module shared by threads: LibTorch's interpreter keeps per-call state only. x is the (n, d)
  // batch, viewed (no copy) as (n, point shape) when a shape is set; the output must have the shape of that input.
  torch::Tensor call(const torch::Tensor& x, const torch::Tensor& t) const {
    torch::Tensor input = x;
    if (!shape_.empty()) {
      std::vector<long> full{x.size(0)};
      full.insert(full.end(), shape_.begin(), shape_.end());
      input = x.view(full);
    }
    const auto result = const_cast<torch::jit::Module&>(module_).forward({input, t});
    if (!result.isTensor()) throw Failure{"forward(x, t) must return a tensor"};
    auto y = result.toTensor();
    if (y.sizes() != input.sizes()) {
      std::ostringstream s;
      s << "forward(x, t) with x of shape " << input.sizes() << " returned shape " << y.sizes()
        << "; expected the shape of x";
      throw Failure{s.str()};
    }
    if (y.scalar_type() != dtype_)
      throw Failure{std::string("forward(x, t) returned ") + c10::toString(y.scalar_type()) + " for inputs of " +
                    c10::toString(dtype_) + "; expected the same type"};
    return y;
  }

  torch::jit::Module module_;
  torch::Dtype dtype_;
  std::vector<long> shape_;
};

}  // namespace

}  // namespace scoresde::torch_plugin

extern "C" __attribute__((visibility("default"))) scoresde::torch_plugin::Module* scoresde_torch_plugin_load(
    const char* path, const char* metadata_name, std::string* metadata, std::string* error) {
  using namespace scoresde::torch_plugin;
  try {
    at::set_num_threads(1);
    torch::jit::ExtraFilesMap extra{{metadata_name, ""}};
    torch::jit::Module module = torch::jit::load(path, c10::kCPU, extra);
    module.eval();
    *metadata = extra[metadata_name];
    torch::Dtype dtype = torch::kFloat32;
    for (const auto& p : module.parameters())
      if (p.is_floating_point()) {
        dtype = p.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
        break;
      }
    return new TorchModule(std::move(module), dtype);
  } catch (const std::exception& e) {
    *error = "not a TorchScript archive that LibTorch can load (" + first_line(e) + ")";
    return nullptr;
  }
}
