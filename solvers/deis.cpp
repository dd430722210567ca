// DEIS in its time-quadrature Adams-Bashforth form tAB-DEIS (Zhang & Chen 2023, eqs. 14-15), with the noise
// prediction eps_j = eps_hat(x_j, t_j) = -sigma_j s(x_j, t_j) (core/model_output.hpp), on the probability-flow ODE
// dx/dt = f x + g^2 / (2 sigma) eps of any SDE here:
//
//   x_{k+1} = (alpha_{k+1} / alpha_k) x_k + sum_{j=0}^{p-1} C_kj eps_{k-j}                               (eq. 14)
//   C_kj    = int_{t_k}^{t_{k+1}} (alpha_{k+1} / alpha_tau) g_tau^2 / (2 sigma_tau) l_j(tau) dtau           (eq. 15)
//   l_j(tau) = prod_{i < p, i != j} (tau - t_{k-i}) / (t_{k-j} - t_{k-i})
//
// the exponential integrator's weight times the Lagrange basis polynomial in t through the last p grid times
// t_k, ..., t_{k-p+1} (their r = p - 1). The weight is alpha_{k+1} d sigma~/dtau (sigma~ = sigma / alpha), so p = 1
// is DDIM: C_k0 = sigma_{k+1} - alpha_{k+1} sigma_k / alpha_k.
//
// The integrals are taken in lambda = -log sigma~, h = lambda_{k+1} - lambda_k:
//   C_kj = -sigma_{k+1} int_0^h e^{h - u} l_j(t(lambda_k + u)) du,
// by 30-point Gauss-Legendre (Boost.Math), the nodes' times from the SDE's closed-form t(lambda). In t the weight grows
// like tau^{-1/2} towards t = 0 (sigma ~ sqrt(t)), which a fixed rule resolves poorly on the last steps; in lambda
// the integrand is analytic in a strip about the real axis (of half-width pi/2 for vp-linear, subvp and ve): against
// adaptive quadrature in t the rule agrees to 4e-12 (relative) on 2-step grids and to rounding on 10-step grids.
//
// Order p = --order (the interpolant of eps through p points is of order p). Step k uses min(p, k + 1) (warm-up: only
// k + 1 outputs exist) and, with --lower-order-final on and fewer than 10 steps in all, min(p, N - k) (DPM-Solver's
// rule). One evaluation per step.
#include <array>
#include <boost/math/quadrature/gauss.hpp>
#include <cmath>

#include "solvers/registry.hpp"

namespace scoresde {
namespace {

using Rule = boost::math::quadrature::gauss<double, 30>;

// C_kj for j < p (eq. 15), in lambda.
std::array<double, 3> deis_coefficients(const Sde& sde, const StepPosition& at, int p) {
  const double lambda_k = sde.lambda(at.t), h = sde.lambda(at.t_next) - lambda_k;
  std::array<double, 3> times{}, C{};
  for (int j = 0; j < p; ++j) times[j] = at.grid[at.k - j];
  const auto add_node = [&](double u, double weight) {
    const double tau = sde.t_of_lambda(lambda_k + u);
    const double w = weight * std::exp(h - u);
    for (int j = 0; j < p; ++j) {
      double l = 1.0;
      for (int i = 0; i < p; ++i)
        if (i != j) l *= (tau - times[i]) / (times[j] - times[i]);
      C[j] += w * l;
    }
  };
  // Boost's nodes are the non-negative half of the symmetric rule on [-1, 1]; 30 points: no node at 0.
  for (std::size_t q = 0; q < Rule::abscissa().size(); ++q) {
    add_node(0.5 * h * (1.0 + Rule::abscissa()[q]), Rule::weights()[q]);
    add_node(0.5 * h * (1.0 - Rule::abscissa()[q]), Rule::weights()[q]);
  }
  for (double& v : C) v *= -0.5 * h * sde.sigma(at.t_next);
  return C;
}

struct DeisState {
  std::array<Matrix, 3> eps;  // eps_j in eps[j % order]
};

class Deis final : public StatefulPredictor<DeisState> {
 public:
  Deis(int order, bool lower_order_final)
      : order_(order),
        lower_order_final_(lower_order_final),
        info_{"deis",
              "(alpha_{k+1} / alpha_k) x + sum_j C_kj eps_{k-j}, C_kj = int of the EI weight x Lagrange basis in t",
              "Zhang & Chen 2023, eqs. 14-15 (tAB-DEIS)",
              static_cast<double>(order),
              static_cast<double>(order),
              1} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return true; }

 protected:
  DeisState initial_state(Index dim, Index cols) const override {
    DeisState s;
    for (int j = 0; j < order_; ++j) s.eps[j].resize(dim, cols);
    return s;
  }

  std::optional<double> advance(StepContext& c, DeisState& s, Matrix& x, const StepPosition& at, bool) const override {
    const int p = at.multistep_order(order_, lower_order_final_);
    c.predict(Prediction::noise, x, at.t, s.eps[at.k % order_]);
    const auto C = deis_coefficients(c.sde, at, p);
    x *= std::exp(c.sde.log_alpha(at.t_next) - c.sde.log_alpha(at.t));
    for (int j = 0; j < p; ++j) x += C[j] * s.eps[(at.k - j) % order_];
    return std::nullopt;
  }

 private:
  int order_;
  bool lower_order_final_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_deis(const SamplerOptions& options) {
  // resolved_order() keys on --sampler, which is pc when deis runs as --predictor.
  SamplerOptions as_deis = options;
  as_deis.sampler = "deis";
  return std::make_unique<Deis>(as_deis.resolved_order(), options.lower_order_final);
}

}  // namespace scoresde
