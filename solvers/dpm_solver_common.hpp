// The exponential-integrator steps shared by dpm_solver, dpmpp_2s, dpmpp_2m and dpmpp_3m. In log-SNR
// lambda = log(alpha / sigma) the probability-flow ODE has an exactly integrable linear part, and from s to t, with
// h = lambda_t - lambda_s > 0,
//
//   noise prediction eps (Lu et al. 2022, Prop. 3.1):   x_t = (alpha_t / alpha_s) x_s - alpha_t int e^-l eps(l) dl
//   data prediction x0 (Lu et al. 2022b, sec. 4.1):     x_t = (sigma_t / sigma_s) x_s + sigma_t int e^l  x0(l) dl.
//
// Expanding the prediction f in a Taylor series about lambda_s, f(l) = sum_n (l - lambda_s)^n f^(n) / n!, integrates
// term by term (Lu et al. 2022, sec. 3.2; 2022b, sec. 4.1):
//
//   x_t = a x_s + b (e1 f + e2 h f' + e3 h^2 f'' + O(h^4)),      e_k = h phi_k(z),
//   noise: a = alpha_t / alpha_s, b = -sigma_t, z = h;    data: a = sigma_t / sigma_s, b = alpha_t, z = -h,
//   phi_1(z) = (e^z - 1) / z,  phi_{k+1}(z) = (phi_k(z) - 1 / k!) / z,
//
// so e1 = O(1), e2 = O(h), e3 = O(h^2). A method of order K replaces h^n f^(n), n < K, by divided differences of
// model outputs that are exact to O(h^K): earlier grid points (multistep) or intermediate points of the step
// (singlestep) at log-SNR offsets r h.
//
// The stochastic variants (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde; data form only) integrate, with eta in [0, 1],
// the SDE whose solution from s to t with x0 held fixed is (in x~ = x / alpha, lambda = -log sigma~)
//
//   x~_t = e^{-(1 + eta) h} x~_s + (1 - e^{-(1 + eta) h}) x0 + sigma~_t sqrt(1 - e^{-2 eta h}) z:
//
// the same expansion with h replaced by (1 + eta) h in the e_k, a multiplied by e^{-eta h}, and the noise term
// sigma_t sqrt(1 - e^{-2 eta h}) z (x coordinates). eta = 1 is the reverse SDE (its noise variance rate 2 sigma~^2
// d lambda is the reverse SDE's d sigma~^2), eta = 0 the probability-flow ODE, bit for bit: every factor is then
// exactly 1 or h, and no noise is drawn.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "solvers/options.hpp"
#include "solvers/sampler.hpp"

namespace scoresde::dpm {

// What the model output is turned into before the step: DPM-Solver integrates eps, DPM-Solver++ x0.
enum class Form { noise, data };

inline Prediction prediction(Form form) {
  return form == Form::noise ? Prediction::noise : Prediction::data;
}

struct Coefficients {
  double a, b, h, e1, e2, e3;
  double noise = 0;  // standard deviation of the step's noise (eta > 0)
};

// h is the log-SNR step, whatever eta; eta > 0 only in the data form.
inline Coefficients coefficients(Form form, const Sde& sde, double s, double t, double eta = 0.0) {
  const double h = sde.lambda(t) - sde.lambda(s);
  const double he = (1.0 + eta) * h;
  const double z = form == Form::noise ? he : -he;
  const double sign = z / he;
  const double phi1 = std::expm1(z) / z, phi2 = (phi1 - 1.0) / z;
  const double a = form == Form::noise ? std::exp(sde.log_alpha(t) - sde.log_alpha(s))
                                       : sde.sigma(t) / sde.sigma(s) * std::exp(-eta * h);
  const double b = form == Form::noise ? -sde.sigma(t) : sde.alpha(t);
  const double noise = eta > 0 ? sde.sigma(t) * std::sqrt(-std::expm1(-2.0 * eta * h)) : 0.0;
  return {a, b, h, sign * std::expm1(z), sign * (phi1 - 1.0), sign * (phi2 - 0.5), noise};
}

// x += c.noise z for the step at `at`, z = dW / sqrt(t - t_next) ~ N(0, I) from the Brownian increment over the step.
inline void add_step_noise(StepContext& c, Matrix& x, const StepPosition& at, double noise) {
  c.brownian.increment(at.k, at.t, at.t_next, c.noise_buf);
  x += (noise / std::sqrt(at.t - at.t_next)) * c.noise_buf;
}

// Singlestep DPM-Solver-K (Lu et al. 2022, Algs. 1 and 2 with r1 = 1/2; r1 = 1/3, r2 = 2/3) in either form:
// K evaluations per step, at lambda_s, lambda_s + r1 h (and lambda_s + r2 h), order K.
struct Stages {
  Matrix m, m1, m2, u;
};

class Singlestep final : public StatefulPredictor<Stages> {
 public:
  Singlestep(Form form, int order, StepperInfo info) : form_(form), order_(order), info_(info) {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return true; }

 protected:
  Stages initial_state(Index dim, Index cols) const override {
    Stages st;
    st.m.resize(dim, cols);
    if (order_ >= 2) st.m1.resize(dim, cols), st.u.resize(dim, cols);
    if (order_ >= 3) st.m2.resize(dim, cols);
    return st;
  }

  std::optional<double> advance(StepContext& c, Stages& st, Matrix& x, const StepPosition& at, bool) const override {
    const Sde& sde = c.sde;
    const double s = at.t, t = at.t_next;
    const auto k = coefficients(form_, sde, s, t);
    c.predict(prediction(form_), x, s, st.m);
    if (order_ == 1) {
      x = k.a * x + k.b * k.e1 * st.m;
      return std::nullopt;
    }
    if (order_ == 2) {
      // Alg. 1: a first-order step to the midpoint in lambda, then f' ~ (m1 - m) / (r1 h) with weight e1 / 2 (the
      // midpoint rule's stand-in for e2, the same to O(h^2)).
      constexpr double r1 = 0.5;
      const double s1 = sde.t_of_lambda(sde.lambda(s) + r1 * k.h);
      const auto k1 = coefficients(form_, sde, s, s1);
      st.u = k1.a * x + k1.b * k1.e1 * st.m;
      c.predict(prediction(form_), st.u, s1, st.m1);
      x = k.a * x + k.b * k.e1 * (st.m + (0.5 / r1) * (st.m1 - st.m));
      return std::nullopt;
    }
    // Alg. 2: first order to lambda_s + r1 h, second order (with the exact weight e2) to lambda_s + r2 h, and x_t
    // from (m2 - m) / r2 = h f' + (r2 / 2) h^2 f'' + O(h^3) with weight e2: for r2 = 2/3, e2 r2 / 2 = e3 + O(h^2),
    // so the h^2 f'' term comes out right without a second difference and the step is third order.
    constexpr double r1 = 1.0 / 3.0, r2 = 2.0 / 3.0;
    const double ls = sde.lambda(s);
    const double s1 = sde.t_of_lambda(ls + r1 * k.h), s2 = sde.t_of_lambda(ls + r2 * k.h);
    const auto k1 = coefficients(form_, sde, s, s1);
    st.u = k1.a * x + k1.b * k1.e1 * st.m;
    c.predict(prediction(form_), st.u, s1, st.m1);
    const auto k2 = coefficients(form_, sde, s, s2);
    st.u = k2.a * x + k2.b * (k2.e1 * st.m + k2.e2 * (r2 / r1) * (st.m1 - st.m));
    c.predict(prediction(form_), st.u, s2, st.m2);
    x = k.a * x + k.b * (k.e1 * st.m + k.e2 * (1.0 / r2) * (st.m2 - st.m));
    return std::nullopt;
  }

 private:
  Form form_;
  int order_;
  StepperInfo info_;
};

// Multistep DPM-Solver-K in either form (the multistep DPM-Solver and DPM-Solver++(2M) of Lu et al. 2022b, sec. 4.2
// and Alg. 2; (3M) of the authors' code): one evaluation per step, at t_k; the divided differences use the outputs
// at t_{k-1}, t_{k-2}. With r0 = h_0 / h and r1 = h_1 / h (h_0 = lambda_k - lambda_{k-1}, h_1 = lambda_{k-1} -
// lambda_{k-2}), D1_0 = (m_k - m_{k-1}) / r0 and D1_1 = (m_{k-1} - m_{k-2}) / r1:
//   order 2:  h f'   ~ D1_0, weighted e1 / 2 (midpoint) or e2 (heun);
//   order 3:  h f'   ~ D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),  h^2 f'' ~ 2 (D1_0 - D1_1) / (r0 + r1), weighted e2 and
//             e3 times second_difference_weight: 1 for the third-order method, 1/2 in the authors' code (order 2).
// Step k uses order min(order, k + 1) (warm-up), and at most at.steps_left() with lower_order_final on a grid of
// fewer than 10 steps.
struct History {
  std::array<Matrix, 3> m;  // m[0] at t_k, m[1] at t_{k-1}, m[2] at t_{k-2}
};

struct MultistepOptions {
  Form form;
  int order;
  SolverType solver_type;  // of the order-2 update
  double second_difference_weight;
  bool lower_order_final;
  double eta = 0;  // data form: the SDE variants (dpmpp_2m_sde, dpmpp_3m_sde); 0 is the ODE
};

class Multistep final : public StatefulPredictor<History> {
 public:
  Multistep(MultistepOptions options, StepperInfo info) : o_(options), info_(info) {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return o_.eta == 0; }

 protected:
  History initial_state(Index dim, Index cols) const override {
    History hist;
    for (int j = 0; j < o_.order; ++j) hist.m[j].resize(dim, cols);
    return hist;
  }

  std::optional<double> advance(StepContext& c, History& hist, Matrix& x, const StepPosition& at,
                                bool noise_free) const override {
    auto& m = hist.m;
    for (int j = o_.order - 1; j > 0; --j) std::swap(m[j], m[j - 1]);
    c.predict(prediction(o_.form), x, at.t, m[0]);
    const int order = at.multistep_order(o_.order, o_.lower_order_final);
    const auto k = coefficients(o_.form, c.sde, at.t, at.t_next, o_.eta);
    if (order == 1) {
      x = k.a * x + k.b * k.e1 * m[0];
    } else {
      const double l0 = c.sde.lambda(at.t), l1 = c.sde.lambda(at.grid[at.k - 1]);
      const double r0 = (l0 - l1) / k.h;
      const auto d1_0 = (m[0] - m[1]) / r0;
      if (order == 2) {
        const double w = o_.solver_type == SolverType::midpoint ? 0.5 * k.e1 : k.e2;
        x = k.a * x + k.b * (k.e1 * m[0] + w * d1_0);
      } else {
        const double r1 = (l1 - c.sde.lambda(at.grid[at.k - 2])) / k.h;
        const auto d1_1 = (m[1] - m[2]) / r1;
        const double q = r0 / (r0 + r1), w2 = o_.second_difference_weight * k.e3 * 2.0 / (r0 + r1);
        x = k.a * x + k.b * (k.e1 * m[0] + k.e2 * ((1.0 + q) * d1_0 - q * d1_1) + w2 * (d1_0 - d1_1));
      }
    }
    if (k.noise > 0 && !noise_free) add_step_noise(c, x, at, k.noise);
    return std::nullopt;
  }

 private:
  MultistepOptions o_;
  StepperInfo info_;
};

}  // namespace scoresde::dpm
