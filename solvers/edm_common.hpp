// The probability-flow ODE in the coordinates of Karras et al. (2022), eq. 4 with s(t) = alpha_t, sigma(t) =
// sigma~_t: with x~ = x / alpha_t and sigma~ = sigma_t / alpha_t (core/sde.hpp),
//
//   dx~/dsigma~ = (x~ - D(x~; sigma~)) / sigma~,   D = x0_hat(alpha_t x~, t), t = t(sigma~)   (their eqs. 1 and 3)
//
// The samplers edm_euler, edm_heun, dpm_2 and lms step this ODE in sigma~ (as k-diffusion's samplers do); they hold
// x, not x~, so a step reads x~ = x / alpha at its start and writes x = alpha x~ at its end.
#pragma once

#include "solvers/sampler.hpp"

namespace scoresde {

// A time with the scaling and the noise level that the sigma~ coordinates need there.
struct EdmPoint {
  double t, alpha, sigma_tilde;
  static EdmPoint at(const Sde& sde, double t) { return {t, sde.alpha(t), sde.sigma_tilde(t)}; }
};

// out = d = (x~ - D) / sigma~ at (x, p.t); one evaluation. out may not alias x. With D = (x + sigma^2 s) / alpha, d is
// -sigma s, the noise prediction eps_hat (core/model_output.hpp): asked for as such, it comes without the
// cancellation in x~ - D at small sigma~.
inline void edm_derivative(StepContext& c, ConstMatrixRef x, const EdmPoint& p, MatrixRef out) {
  c.predict(Prediction::noise, x, p.t, out);
}

}  // namespace scoresde
