// The probability-flow ODE in the coordinates of Karras et al. (2022), eq. 4 with s(t) = alpha_t, sigma(t) =
// sigma~_t: with x~ = x / alpha_t and sigma~ = sigma_t / alpha_t (core/sde.hpp),
//
//   dx~/dsigma~ = (x~ - D(x~; sigma~)) / sigma~,   D = x0_hat(alpha_t x~, t), t = t(sigma~)   (their eqs. 1 and 3)
//
// The samplers edm_euler, edm_heun, dpm_2 and lms step this ODE in sigma~ (as k-diffusion's samplers do); they hold
// x, not x~, so a step reads x~ = x / alpha at its start and writes x = alpha x~ at its end.
//
// The stochastic samplers in these coordinates: the ancestral split (ancestral_levels: euler_ancestral, ddim,
// dpmpp_sde) and Karras et al.'s churn (churn: edm_euler, edm_heun). Their N(0, I) draws are the step's Brownian
// increment divided by sqrt(t - t_next), so that --noise brownian_tree gives one path at every step count.
#pragma once

#include <algorithm>
#include <cmath>

#include "solvers/options.hpp"
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

// z = dW / sqrt(t - t_next) ~ N(0, I) into c.noise_buf, from the increment over the step (part 0) or a part of it.
inline void standard_normal_of_step(StepContext& c, const StepPosition& at) {
  c.brownian.increment(at.k, at.t, at.t_next, c.noise_buf);
  c.noise_buf /= std::sqrt(at.t - at.t_next);
}

// The ancestral split of a step from sigma~ = `from` down to sigma~' = `to` (Song, Meng & Ermon 2021, eq. 16 with
// sigma~ for sqrt((1 - alpha) / alpha); k-diffusion's get_ancestral_step): the deterministic update goes down to
// sigma~_down and fresh noise of standard deviation sigma~_up makes up the rest,
//
//   sigma~_up = eta sigma~' sqrt(1 - (sigma~' / sigma~)^2),   sigma~_down = sqrt(sigma~'^2 - sigma~_up^2).
//
// eta = 1 is the DDPM posterior q(x_{k+1} | x_k, x0) (Ho et al. 2020, eq. 7); eta = 0 gives sigma~_down = sigma~'
// exactly and no noise. eta in [0, 1] keeps sigma~_up <= sigma~'.
struct AncestralLevels {
  double down, up;
};
inline AncestralLevels ancestral_levels(double from, double to, double eta) {
  if (eta == 0) return {to, 0.0};
  const double q = to / from;
  const double up = eta * to * std::sqrt((1.0 - q) * (1.0 + q));
  return {std::sqrt((to - up) * (to + up)), up};
}

// Karras et al. 2022, Alg. 2, lines 4-6 (S_churn, S_tmin, S_tmax, S_noise): where sigma~ is in [s_tmin, s_tmax],
// raise the noise level to sigma~_hat = (1 + gamma) sigma~, gamma = min(s_churn / N, sqrt(2) - 1), by adding
// s_noise sqrt(sigma~_hat^2 - sigma~^2) z to x~; the step then starts from sigma~_hat (at t_hat = t(sigma~_hat),
// above T on the first step). Returns the point the step starts from: p itself where nothing churns (s_churn = 0,
// outside the window, or the noise-free last step: bit for bit the deterministic step).
struct Churn {
  double s_churn, s_tmin, s_tmax, s_noise;
  static Churn of(const SamplerOptions& o) { return {o.s_churn, o.s_tmin, o.s_tmax, o.s_noise}; }
  bool on() const { return s_churn > 0; }
  // Strong order 1 when every step churns; a window edge inside the grid switches the noise at a grid time, which
  // costs O(sqrt(h)) pathwise (one step's noise of the wrong size), so 1/2 then.
  double strong_order() const { return s_tmin == 0 && std::isinf(s_tmax) ? 1.0 : 0.5; }
};

inline EdmPoint churn(StepContext& c, Matrix& x, const EdmPoint& p, const StepPosition& at, const Churn& ch,
                      bool noise_free) {
  if (!ch.on() || noise_free || p.sigma_tilde < ch.s_tmin || p.sigma_tilde > ch.s_tmax) return p;
  const double gamma = std::min(ch.s_churn / static_cast<double>(at.steps()), std::sqrt(2.0) - 1.0);
  const EdmPoint hat = EdmPoint::at(c.sde, c.sde.t_of_sigma_tilde((1.0 + gamma) * p.sigma_tilde));
  standard_normal_of_step(c, at);
  const double added = std::sqrt((hat.sigma_tilde - p.sigma_tilde) * (hat.sigma_tilde + p.sigma_tilde));
  x = hat.alpha * (x / p.alpha + (ch.s_noise * added) * c.noise_buf);
  return hat;
}

}  // namespace scoresde
