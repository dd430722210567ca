// Linear multistep (Adams-Bashforth with variable steps) on the probability-flow ODE in sigma~, as k-diffusion's
// sample_lms (solvers/edm_common.hpp has the ODE and the coordinates x~ = x / alpha):
//
//   d_k = (x~_k - D(x~_k; sigma~_k)) / sigma~_k,   x~_{k+1} = x~_k + sum_{j<p} c_j d_{k-j},
//   c_j = int_{sigma~_k}^{sigma~_{k+1}} l_j(s) ds,
//   l_j(s) = prod_{m<p, m!=j} (s - sigma~_{k-m}) / (sigma~_{k-j} - sigma~_{k-m}):
//
// the integral of the polynomial through the last p derivatives (the variable-step Adams-Bashforth method; Hairer,
// Norsett & Wanner 1993, sec. III.5). The c_j are exact: l_j is expanded in u = (s - sigma~_k) / (sigma~_{k+1} -
// sigma~_k) and integrated over [0, 1] term by term. p = --order (1..4, default 4) at step k is min(order, k + 1)
// (warm-up), and with --lower-order-final on and fewer than 10 steps in all at most the number of steps left
// (DPM-Solver's rule; off is k-diffusion's sample_lms). Declared order p. One evaluation per step.
#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <vector>

#include "core/errors.hpp"
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

constexpr int max_order = 4;

// c_j for the nodes sigma[0] = sigma~_k, sigma[1] = sigma~_{k-1}, ... (p of them), stepping to sigma_next.
std::array<double, max_order> lms_coefficients(const std::array<double, max_order>& sigma, int p, double sigma_next) {
  const double h = sigma_next - sigma[0];
  std::array<double, max_order> u{}, c{};
  for (int m = 0; m < p; ++m) u[m] = (sigma[m] - sigma[0]) / h;
  for (int j = 0; j < p; ++j) {
    std::array<double, max_order> poly{1.0};  // coefficients of prod_{m != j} (v - u_m), lowest degree first
    double denominator = 1.0;
    int degree = 0;
    for (int m = 0; m < p; ++m) {
      if (m == j) continue;
      for (int i = ++degree; i > 0; --i) poly[i] = poly[i - 1] - u[m] * poly[i];
      poly[0] *= -u[m];
      denominator *= u[j] - u[m];
    }
    double integral = 0.0;
    for (int i = 0; i <= degree; ++i) integral += poly[i] / (i + 1);
    c[j] = h * integral / denominator;
  }
  return c;
}

struct LmsState {
  std::vector<Matrix> d;  // d_k in slot k % order
};

class Lms final : public StatefulPredictor<LmsState> {
 public:
  Lms(int order, bool lower_order_final)
      : order_(order),
        lower_order_final_(lower_order_final),
        info_{"lms",
              "x~ + sum_j c_j d_{k-j}, c_j the integrals of the Lagrange basis in sigma~",
              "k-diffusion sample_lms; Hairer, Norsett & Wanner 1993, sec. III.5",
              static_cast<double>(order),
              static_cast<double>(order),
              1} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return true; }

 protected:
  LmsState initial_state(Index dim, Index cols) const override {
    return LmsState{std::vector<Matrix>(order_, Matrix(dim, cols))};
  }

  std::optional<double> advance(StepContext& c, LmsState& s, Matrix& x, const StepPosition& at, bool) const override {
    const int p = at.multistep_order(order_, lower_order_final_);
    const auto here = EdmPoint::at(c.sde, at.t), next = EdmPoint::at(c.sde, at.t_next);
    edm_derivative(c, x, here, s.d[at.k % order_]);
    std::array<double, max_order> sigma{};
    for (int m = 0; m < p; ++m) sigma[m] = m == 0 ? here.sigma_tilde : c.sde.sigma_tilde(at.grid[at.k - m]);
    const auto coefficients = lms_coefficients(sigma, p, next.sigma_tilde);
    x /= here.alpha;
    for (int j = 0; j < p; ++j) x += coefficients[j] * s.d[(at.k - j) % order_];
    x *= next.alpha;
    return std::nullopt;
  }

 private:
  int order_;
  bool lower_order_final_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_lms(const SamplerOptions& options) {
  // resolved_order() is 0 when lms runs as the predictor of --sampler pc: then --order or lms's default.
  int order = options.resolved_order();
  if (order == 0)
    for (const auto& r : order_ranges())
      if (r.sampler == "lms") order = options.order ? options.order : r.default_order;
  if (order < 1 || order > max_order) throw ConfigError(fmt::format("--order = {}: lms takes 1..{}", order, max_order));
  return std::make_unique<Lms>(order, options.lower_order_final);
}

}  // namespace scoresde
