// Step-size control for adaptive methods, run by the driver loop (solvers/driver.cpp). A method returns its error
// estimate scaled by the tolerances (a value <= 1 meets them); the controller accepts or rejects the step and proposes
// the next step size by the rules of Boost.Odeint's default_step_adjuster (Hairer, Norsett & Wanner 1993, II.4,
// eq. 4.13, with safety factor 0.9, at most a fivefold increase and at least a fivefold decrease), so a method run
// through this loop takes exactly the steps odeint's integrate_adaptive would.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "solvers/odeint_eigen.hpp"

namespace scoresde {

class StepSizeController {
 public:
  // `order` is the method's order, `error_order` its error estimate's (dopri5: 5 and 4).
  StepSizeController(int order, int error_order)
      : reject_exponent_(-1.0 / (error_order - 1)),
        accept_exponent_(-1.0 / order),
        min_error_(std::pow(5.0, -static_cast<double>(order))) {}

  // The first step size: a hundredth of the span, as the driver has always used. Steps run backwards in time (h < 0).
  double initial_step(double t0, double t_end) const { return -(t0 - t_end) / 100.0; }

  // Whether more steps are needed from t to t_end (< t): odeint's less_with_sign, which treats a remainder within
  // machine epsilon as done.
  static bool more_to_go(double t, double t_end) { return t - t_end > std::numeric_limits<double>::epsilon(); }

  // The step from t, shortened so as not to pass t_end.
  static double clamp(double t, double t_end, double h) {
    return t_end - (t + h) > std::numeric_limits<double>::epsilon() ? t_end - t : h;
  }

  bool accepts(double error) const { return !(error > 1.0); }  // a NaN error is accepted, as odeint does
  // odeint's default_step_adjuster (no maximum step), its expressions and their order, with the constants it
  // recomputes per call computed once: decrease_step, h max(9/10 E^(-1/(q - 1)), 1/5), q the error order; and
  // increase_step, for E < 1/2 only, h 9/10 max(5^-p, E)^(-1/p), p the order. The same doubles, one pow per step
  // where odeint takes two (per-sample control runs this once per sample and step).
  double after_reject(double h, double error) const {
    return h * std::max(9.0 / 10.0 * std::pow(error, reject_exponent_), 1.0 / 5.0);
  }
  double after_accept(double h, double error) const {
    if (!(error < 0.5)) return h;
    return h * (9.0 / 10.0 * std::pow(std::max(min_error_, error), accept_exponent_));
  }

  // odeint gives up after this many rejections in a row (its failed_step_checker).
  static constexpr int max_rejections = 500;

 private:
  double reject_exponent_, accept_exponent_, min_error_;
};

// The rule of Jolicoeur-Martineau et al. 2021 (Algorithm 1, and the defaults of their code): accept when the scaled
// error E <= 1; after an acceptance and after a rejection alike the next step size is 0.9 h E^-0.9 (safety 0.9,
// exponent r = 0.9), with no limit on growth or shrinkage other than the distance left (the driver's clamp); the first
// step is 0.01 T (their h_init = 0.01 with T = 1). Same interface as StepSizeController, so the driver's loop runs
// either.
class GgfStepController {
 public:
  explicit GgfStepController(double T) : T_(T) {}
  double initial_step(double t0, double t_end) const { return -std::min(0.01 * T_, t0 - t_end); }
  bool accepts(double error) const { return !(error > 1.0); }  // a NaN error is accepted: the driver reports the state
  double after_reject(double h, double error) const { return next(h, error); }
  double after_accept(double h, double error) const { return next(h, error); }

 private:
  // E = 0 gives an infinite step, which the driver's clamp turns into the distance left.
  static double next(double h, double error) { return safety * h * std::pow(error, -exponent); }
  static constexpr double safety = 0.9, exponent = 0.9;
  double T_;
};

}  // namespace scoresde
