// Euler's method on the probability-flow ODE in sigma~ (Karras et al. 2022, Alg. 1 without its correction step; the
// ODE and coordinates are in solvers/edm_common.hpp), with Alg. 2's churn when --s-churn > 0:
//
//   sigma~_hat = (1 + gamma) sigma~_k,  x~_hat = x~_k + S_noise sqrt(sigma~_hat^2 - sigma~_k^2) z   (gamma = 0: no
//   churn) d = (x~_hat - D(x~_hat; sigma~_hat)) / sigma~_hat,   x~_{k+1} = x~_hat + (sigma~_{k+1} - sigma~_hat) d,   x~
//   = x / alpha,
//
// gamma = min(S_churn / N, sqrt(2) - 1) where sigma~_k is in [S_tmin, S_tmax], else 0; z = dW_k / sqrt(t_k - t_{k+1}).
// Without churn: order 1 (Euler), the same update as ddim in other coordinates. With churn the steps converge, on a
// fixed family of grids, to an SDE of Karras et al.'s eq. 6 family whose noise rate follows from S_churn and the grid
// (docs/samplers.md): strong order 1 (additive noise; 1/2 when a window edge S_tmin, S_tmax lies inside the grid),
// weak order 1. One evaluation per step. The noise-free last step (--denoise on) does not churn.
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class EdmEuler final : public Predictor {
 public:
  explicit EdmEuler(Churn churn)
      : churn_(churn),
        info_{"edm_euler",
              churn.on() ? "churn to sigma~_hat, then x~_hat + (sigma~_{k+1} - sigma~_hat) (x~_hat - D) / sigma~_hat"
                         : "x~ + (sigma~_{k+1} - sigma~_k) (x~ - D) / sigma~_k",
              churn.on() ? "Karras et al. 2022, Alg. 2 (Euler step)"
                         : "Karras et al. 2022, eq. 4 and Alg. 1 (Euler step)",
              churn.on() ? churn.strong_order() : 1.0,
              1.0,
              1} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return !churn_.on(); }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at,
                             bool noise_free) const override {
    const auto p = churn(c, x, EdmPoint::at(c.sde, at.t), at, churn_, noise_free);
    const auto q = EdmPoint::at(c.sde, at.t_next);
    auto& d = c.score_buf;
    edm_derivative(c, x, p, d);
    x = q.alpha * (x / p.alpha + (q.sigma_tilde - p.sigma_tilde) * d);
    return std::nullopt;
  }

 private:
  Churn churn_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_edm_euler(const SamplerOptions& options) {
  return std::make_unique<EdmEuler>(Churn::of(options));
}

}  // namespace scoresde
