// SA-Solver, the stochastic Adams predictor-corrector of Xue et al. (2023), in its data-prediction form and the
// authors' recommended "few steps" mode, on the SDE family of solvers/dpm_solver_common.hpp with eta = tau^2 (tau = 1:
// the reverse SDE, tau = 0: the probability-flow ODE). With lambda = log(alpha / sigma), h = lambda_{k+1} - lambda_k,
// c = 1 + tau^2 and m_j = x0_hat(x_j, t_j) (core/model_output.hpp), a step from t_k to t_{k+1} is (eq. 15 and 18):
//
//   x_{k+1} = (sigma_{k+1} / sigma_k) e^{-tau^2 h} x_k + sum_j w_j m_j + sigma_{k+1} sqrt(1 - e^{-2 tau^2 h}) z,
//   w_j = c alpha_{k+1} int_{-h}^{0} e^{c u} l_j(u) du,        u = lambda - lambda_{k+1},
//
// l_j the Lagrange basis polynomials over the points' lambda: the predictor (stochastic Adams-Bashforth, order p)
// over m_k, m_{k-1}, ..., m_{k-p+1}; the corrector (stochastic Adams-Moulton, p + 1 points) over m_{k+1}, m_k, ...,
// m_{k-p+1}, where m_{k+1} is evaluated at the predicted point and the corrector reuses the predictor's z. The
// history keeps m_{k+1} from the predicted point, which the next predictor uses (PEC mode): one evaluation per step.
// With one point, w = alpha_{k+1} (1 - e^{-c h}): DPM-Solver++(1) on the SDE (dpmpp_2m_sde's first step). As the
// authors' code does in this mode, a two-point update moves
//   predictor:  delta_p = c alpha_{k+1} (h^2 / 2 - (c h - 1 + e^{-c h}) / c^2) / (lambda_k - lambda_{k-1})
//   corrector:  delta_c = c alpha_{k+1} (h / 2 - (c h - 1 + e^{-c h}) / (c^2 h))
// from the older point's weight to the newer one's (an O(h^3) change that the authors found to help at few steps);
// and the last step has no corrector (no evaluation at t_N), and under --denoise on is taken with tau = 0. The
// integrals int_{-h}^{0} e^{c u} u^n du follow from integration by parts.
//
// Orders: step k uses the predictor order min(p, k + 1) and the corrector min(p + 1, k + 2) (warm-up), with
// --lower-order-final on and fewer than 10 steps at most steps_left() and steps_left() + 1 (the authors lower them on
// every grid). tau = 0: the corrector raises the predictor's order p to p + 1 (Xue et al. 2023, sec. 4; declared
// p + 1). tau > 0: strong order 1 (as dpmpp_2m_sde: the additive noise's int (W - W_k) dlambda term is O(h^{3/2}) per
// step) and weak order 2, measured (no proof here): docs/samplers.md.
#include <array>
#include <cmath>

#include "solvers/dpm_solver_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

constexpr int max_points = 4;
using Polynomial = std::array<double, max_points>;  // coefficients of u^0 .. u^3

// w_j / (c alpha_{k+1}) for the Lagrange basis over the points u_0..u_{n-1} (u = lambda - lambda_{k+1}): int_{-h}^0
// e^{c u} l_j(u) du, with J_d = int_{-h}^0 e^{c u} u^d du, J_0 = (1 - e^{-c h}) / c, J_d = (-(-h)^d e^{-c h} - d
// J_{d-1}) / c.
std::array<double, max_points> lagrange_integrals(const std::array<double, max_points>& u, int n, double h, double c) {
  std::array<double, max_points> J{};
  const double decay = std::exp(-c * h);
  J[0] = -std::expm1(-c * h) / c;
  for (int d = 1; d < n; ++d) J[d] = (-std::pow(-h, d) * decay - d * J[d - 1]) / c;
  std::array<double, max_points> out{};
  for (int j = 0; j < n; ++j) {
    Polynomial poly{1.0};
    int degree = 0;
    for (int i = 0; i < n; ++i) {
      if (i == j) continue;
      const double scale = 1.0 / (u[j] - u[i]);
      for (int d = degree + 1; d > 0; --d) poly[d] = (poly[d - 1] - u[i] * poly[d]) * scale;
      poly[0] = -u[i] * poly[0] * scale;
      ++degree;
    }
    for (int d = 0; d <= degree; ++d) out[j] += poly[d] * J[d];
  }
  return out;
}

struct SaState {
  std::array<Matrix, max_points> m;  // m_j in m[j % (order + 1)]
  Matrix common;                     // the step's linear part plus its noise, shared by predictor and corrector
};

class SaSolver final : public StatefulPredictor<SaState> {
 public:
  SaSolver(int order, double tau, bool lower_order_final)
      : order_(order),
        tau_(tau),
        lower_order_final_(lower_order_final),
        info_{"sa_solver",
              "stochastic Adams: e^{-tau^2 h} (sigma'/sigma) x + sum_j w_j x0_j + noise; predictor over p points, "
              "corrector over p + 1 with the model at the new point",
              "Xue et al. 2023, eq. 15 and 18 (SA-Predictor, SA-Corrector), data prediction, few-steps mode",
              tau > 0 ? 1.0 : static_cast<double>(order + 1),
              tau > 0 ? 2.0 : static_cast<double>(order + 1),
              1} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return tau_ == 0; }

 protected:
  SaState initial_state(Index dim, Index cols) const override {
    SaState s;
    for (int j = 0; j <= order_; ++j) s.m[j].resize(dim, cols);
    s.common.resize(dim, cols);
    return s;
  }

  std::optional<double> advance(StepContext& c, SaState& s, Matrix& x, const StepPosition& at,
                                bool noise_free) const override {
    const Index k = at.k;
    const int p = at.multistep_order(order_, lower_order_final_);
    const double tau = noise_free ? 0.0 : tau_, tau2 = tau * tau, cc = 1.0 + tau2;
    const double lambda_next = c.sde.lambda(at.t_next), h = lambda_next - c.sde.lambda(at.t);
    const double alpha_next = c.sde.alpha(at.t_next);
    if (at.first()) c.predict(Prediction::data, x, at.t, slot(s, k));

    // The linear part and the noise, common to predictor and corrector.
    s.common = (c.sde.sigma(at.t_next) / c.sde.sigma(at.t) * std::exp(-tau2 * h)) * x;
    if (tau > 0) {
      c.brownian.increment(at.k, at.t, at.t_next, c.noise_buf);
      const double noise = c.sde.sigma(at.t_next) * std::sqrt(-std::expm1(-2.0 * tau2 * h));
      s.common += (noise / std::sqrt(at.t - at.t_next)) * c.noise_buf;
    }

    // Predictor: points t_k, t_{k-1}, ..., t_{k-p+1}.
    std::array<double, max_points> u{};
    for (int i = 0; i < p; ++i) u[i] = c.sde.lambda(at.grid[k - i]) - lambda_next;
    const double shift_p =
        p == 2 ? cc * alpha_next * (0.5 * h * h - (cc * h + std::expm1(-cc * h)) / (cc * cc)) / (u[0] - u[1]) : 0.0;
    combine(s, x, k, weights(u, p, h, cc, alpha_next, shift_p), p);
    if (at.last()) return std::nullopt;

    // Corrector: the new point t_{k+1} and t_k, ..., t_{k-p+1}. Its order min(p + 1, k + 2), capped at
    // steps_left() + 1 as the predictor's is at steps_left(), is p + 1.
    const int q = p + 1;
    c.predict(Prediction::data, x, at.t_next, slot(s, k + 1));
    std::array<double, max_points> v{};
    for (int i = 1; i < q; ++i) v[i] = c.sde.lambda(at.grid[k + 1 - i]) - lambda_next;
    const double shift_c = q == 2 ? cc * alpha_next * (0.5 * h - (cc * h + std::expm1(-cc * h)) / (cc * cc * h)) : 0.0;
    combine(s, x, k + 1, weights(v, q, h, cc, alpha_next, shift_c), q);
    return std::nullopt;
  }

 private:
  Matrix& slot(SaState& s, Index j) const { return s.m[j % (order_ + 1)]; }

  // The weights w_j of n points (offsets u_j from lambda_{k+1}, newest first), with the two-point `shift` moved from
  // the older point's weight to the newer one's.
  static std::array<double, max_points> weights(const std::array<double, max_points>& u, int n, double h, double cc,
                                                double alpha_next, double shift) {
    auto w = lagrange_integrals(u, n, h, cc);
    for (int i = 0; i < n; ++i) w[i] *= cc * alpha_next;
    w[0] += shift;
    if (n > 1) w[1] -= shift;
    return w;
  }

  // x = the step's common part + sum_i w_i m_{newest - i}, i < n.
  void combine(SaState& s, Matrix& x, Index newest, const std::array<double, max_points>& w, int n) const {
    x = s.common;
    for (int i = 0; i < n; ++i) x += w[i] * slot(s, newest - i);
  }

  int order_;
  double tau_;
  bool lower_order_final_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_sa_solver(const SamplerOptions& options) {
  SamplerOptions as_sa = options;  // resolved_order() keys on --sampler, which is pc when sa_solver runs as --predictor
  as_sa.sampler = "sa_solver";
  return std::make_unique<SaSolver>(as_sa.resolved_order(), options.tau, options.lower_order_final);
}

}  // namespace scoresde
