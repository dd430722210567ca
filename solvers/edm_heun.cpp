// Heun's method on the probability-flow ODE in sigma~: the deterministic sampler of Karras et al. 2022, Alg. 1
// (solvers/edm_common.hpp has the ODE and the coordinates x~ = x / alpha):
//
//   d_k  = (x~_k - D(x~_k; sigma~_k)) / sigma~_k,          x~'  = x~_k + (sigma~_{k+1} - sigma~_k) d_k,
//   d'   = (x~' - D(x~'; sigma~_{k+1})) / sigma~_{k+1},    x~_{k+1} = x~_k + (sigma~_{k+1} - sigma~_k) (d_k + d') / 2.
//
// Order 2 (the trapezoidal rule). Two evaluations on every step: Alg. 1 falls back to Euler only on a step to
// sigma = 0, and every grid here ends at t_N > 0.
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class EdmHeun final : public Predictor {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{"edm_heun",
                               "x~ + (sigma~_{k+1} - sigma~_k) (d_k + d') / 2, d' at the Euler point",
                               "Karras et al. 2022, Alg. 1",
                               2.0,
                               2.0,
                               2};
    return i;
  }
  bool probability_flow() const override { return true; }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at, bool) const override {
    const auto p = EdmPoint::at(c.sde, at.t), q = EdmPoint::at(c.sde, at.t_next);
    const double h = q.sigma_tilde - p.sigma_tilde;
    auto &d = c.drift_buf, &x_euler = c.noise_buf, &d_euler = c.score_buf;
    edm_derivative(c, x, p, d);
    x_euler = q.alpha * (x / p.alpha + h * d);
    edm_derivative(c, x_euler, q, d_euler);
    x = q.alpha * (x / p.alpha + (0.5 * h) * (d + d_euler));
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_edm_heun(const SamplerOptions&) {
  return std::make_unique<EdmHeun>();
}

}  // namespace scoresde
