// The midpoint method on the probability-flow ODE in sigma~, with the midpoint taken in log sigma~ (k-diffusion's
// sample_dpm_2, after DPM-Solver-2 of Lu et al. 2022, Alg. 1, and Karras et al. 2022, Alg. 2; solvers/edm_common.hpp
// has the ODE and the coordinates x~ = x / alpha):
//
//   sigma~_m = sqrt(sigma~_k sigma~_{k+1}),   t_m = t(sigma~_m),
//   x~_m = x~_k + (sigma~_m - sigma~_k) d_k,   x~_{k+1} = x~_k + (sigma~_{k+1} - sigma~_k) d(x~_m; sigma~_m),
//
// d = (x~ - D) / sigma~. sigma~_m is DPM-Solver-2's midpoint in lambda = -log sigma~ (r = 1/2), but the step is a
// plain two-stage Runge-Kutta method in sigma~ (b = (0, 1), c_2 = a_21 = (sigma~_m - sigma~_k) / (sigma~_{k+1} -
// sigma~_k)). Order 2: with sigma~_{k+1} = sigma~_k (1 + delta), c_2 = 1/2 - delta / 8 + O(delta^2), so the
// second-order condition b_2 c_2 = 1/2 fails by O(h) only and the local error stays O(h^3). Two evaluations per step.
#include <cmath>

#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class Dpm2 final : public Predictor {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{"dpm_2",
                               "x~ + (sigma~_{k+1} - sigma~_k) d(x~_m; sqrt(sigma~_k sigma~_{k+1}))",
                               "k-diffusion sample_dpm_2; Lu et al. 2022, Alg. 1 (DPM-Solver-2)",
                               2.0,
                               2.0,
                               2};
    return i;
  }
  bool probability_flow() const override { return true; }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at, bool) const override {
    const auto p = EdmPoint::at(c.sde, at.t), q = EdmPoint::at(c.sde, at.t_next);
    const double sigma_mid = std::sqrt(p.sigma_tilde * q.sigma_tilde);
    const double t_mid = c.sde.t_of_sigma_tilde(sigma_mid);
    const EdmPoint m{t_mid, c.sde.alpha(t_mid), sigma_mid};
    auto &d = c.drift_buf, &x_mid = c.noise_buf, &d_mid = c.score_buf;
    edm_derivative(c, x, p, d);
    x_mid = m.alpha * (x / p.alpha + (m.sigma_tilde - p.sigma_tilde) * d);
    edm_derivative(c, x_mid, m, d_mid);
    x = q.alpha * (x / p.alpha + (q.sigma_tilde - p.sigma_tilde) * d_mid);
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_dpm_2(const SamplerOptions&) {
  return std::make_unique<Dpm2>();
}

}  // namespace scoresde
