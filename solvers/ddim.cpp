// DDIM, deterministic (Song, Meng & Ermon 2021, eq. 12 with eta = 0; their sigma_t = 0):
//
//   x_{k+1} = alpha_{k+1} x0_hat + sigma_{k+1} eps_hat,   x0_hat = (x_k - sigma_k eps_hat) / alpha_k,
//
// eps_hat the noise prediction at (x_k, t_k). Written with alpha and sigma of the kernel it holds for every SDE here
// (VE: alpha = 1). It is the Euler step of the probability-flow ODE in (x / alpha, sigma / alpha) (Song, Meng &
// Ermon 2021, eqs. 13 and 14; Karras et al. 2022, eq. 4), the same update as edm_euler, and DPM-Solver-1 (Lu et al.
// 2022): order 1. One evaluation per step.
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class Ddim final : public Predictor {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{
        "ddim", "alpha_{k+1} x0_hat + sigma_{k+1} eps_hat", "Song, Meng & Ermon 2021, eq. 12 (eta = 0)", 1.0, 1.0, 1};
    return i;
  }
  bool probability_flow() const override { return true; }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at, bool) const override {
    auto& eps = c.score_buf;
    auto& x0 = c.drift_buf;
    c.predict(Prediction::noise, x, at.t, eps);
    x0 = (x - c.sde.sigma(at.t) * eps) / c.sde.alpha(at.t);
    x = c.sde.alpha(at.t_next) * x0 + c.sde.sigma(at.t_next) * eps;
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_ddim(const SamplerOptions&) {
  return std::make_unique<Ddim>();
}

}  // namespace scoresde
