// Heun's method on the probability-flow ODE in sigma~: the sampler of Karras et al. 2022, Alg. 1, or with --s-churn > 0
// the stochastic sampler of their Alg. 2 (solvers/edm_common.hpp has the ODE and the coordinates x~ = x / alpha):
//
//   sigma~_hat = (1 + gamma) sigma~_k,  x~_hat = x~_k + S_noise sqrt(sigma~_hat^2 - sigma~_k^2) z   (gamma = 0: no
//   churn) d    = (x~_hat - D(x~_hat; sigma~_hat)) / sigma~_hat,      x~'  = x~_hat + (sigma~_{k+1} - sigma~_hat) d, d'
//   = (x~' - D(x~'; sigma~_{k+1})) / sigma~_{k+1},        x~_{k+1} = x~_hat + (sigma~_{k+1} - sigma~_hat) (d + d') / 2,
//
// gamma = min(S_churn / N, sqrt(2) - 1) where sigma~_k is in [S_tmin, S_tmax], else 0; z = dW_k / sqrt(t_k - t_{k+1}).
// Without churn: order 2 (the trapezoidal rule). With churn the steps converge, on a fixed family of grids, to an SDE
// of Karras et al.'s eq. 6 family (docs/samplers.md): strong order 1 (the noise enters at the start of the step, not
// through the drift's average; 1/2 when a window edge lies inside the grid), weak order 1 (the second-order drift
// does not match the noise's correlation with the drift increment, E[dW int_0^h dW] = h^2 / 2). Two evaluations on
// every step: Alg. 1 and 2 fall back to Euler only on a step to sigma = 0, and every grid here ends at t_N > 0. The
// noise-free last step (--denoise on) does not churn.
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class EdmHeun final : public Predictor {
 public:
  explicit EdmHeun(Churn churn)
      : churn_(churn),
        info_{"edm_heun",
              churn.on() ? "churn to sigma~_hat, then Heun from sigma~_hat to sigma~_{k+1}"
                         : "x~ + (sigma~_{k+1} - sigma~_k) (d_k + d') / 2, d' at the Euler point",
              churn.on() ? "Karras et al. 2022, Alg. 2" : "Karras et al. 2022, Alg. 1",
              churn.on() ? churn.strong_order() : 2.0,
              churn.on() ? 1.0 : 2.0,
              2} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return !churn_.on(); }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at,
                             bool noise_free) const override {
    const auto p = churn(c, x, EdmPoint::at(c.sde, at.t), at, churn_, noise_free);
    const auto q = EdmPoint::at(c.sde, at.t_next);
    const double h = q.sigma_tilde - p.sigma_tilde;
    auto &d = c.drift_buf, &x_euler = c.noise_buf, &d_euler = c.score_buf;
    edm_derivative(c, x, p, d);
    x_euler = q.alpha * (x / p.alpha + h * d);
    edm_derivative(c, x_euler, q, d_euler);
    x = q.alpha * (x / p.alpha + (0.5 * h) * (d + d_euler));
    return std::nullopt;
  }

 private:
  Churn churn_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_edm_heun(const SamplerOptions& options) {
  return std::make_unique<EdmHeun>(Churn::of(options));
}

}  // namespace scoresde
