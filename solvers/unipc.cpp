// UniPC, the unified predictor-corrector of Zhao et al. (2023), in its data-prediction form (the authors'
// predict_x0 = True), on the probability-flow ODE of any SDE here. With lambda = log(alpha / sigma),
// h = lambda_{k+1} - lambda_k, m_j = x0_hat(x_j, t_j) the data prediction (core/model_output.hpp), and for the earlier
// points r_i = (lambda_{k-i} - lambda_k) / h and D_i = (m_{k-i} - m_k) / r_i:
//
//   x_base  = (sigma_{k+1} / sigma_k) x_k + alpha_{k+1} (1 - e^{-h}) m_k                     (DDIM = DPM-Solver++(1))
//   UniP-p  x_{k+1}   = x_base - alpha_{k+1} B(h) sum_{i=1}^{p-1} a_i D_i
//   UniC-p  x_{k+1}^c = x_base - alpha_{k+1} B(h) [sum_{i=1}^{p-1} c_i D_i + c_p (m_{k+1} - m_k)],
//           m_{k+1} = x0_hat(x_{k+1}, t_{k+1}) at the predicted point
//
// B(h) = -h (bh1) or e^{-h} - 1 (bh2): the paper's B(h) = h or e^h - 1 (sec. 3.3) at the step -h that the
// data-prediction form takes. The weights solve the order conditions (sec. 3.1, UniC; sec. 3.2, UniP)
//   sum_j r_j^{i-1} w_j = g_i = i! (-h) phi_{i+1}(-h) / B(h),   i = 1, ..., n,
// phi_1(z) = (e^z - 1) / z, phi_{i+1}(z) = (phi_i(z) - 1/i!) / z: over the p - 1 earlier points for UniP's a, and
// over them and the new point (r_p = 1) for UniC's c. As the authors' code does, UniP-2 takes a_1 = 1/2 and UniC-1
// c_1 = 1/2 instead: g_1 = 1/2 + O(h), so both still meet their order condition. Where the weights are solved for,
// B(h) a does not depend on B(h): bh1 and bh2 differ only through the weights fixed at 1/2.
//
// A step predicts x_{k+1}, evaluates m_{k+1} there, and replaces x_{k+1} by the corrected x_{k+1}^c; the history
// keeps m_{k+1} from the uncorrected point, which the next step's predictor uses (as in the authors' code), so the
// corrector costs no evaluation. The last step has no corrector and so makes none: N evaluations for N steps (the
// first step makes two: at x_0 and at x_1).
//
// Order: UniP-p is of order p and UniC-p raises it to p + 1 (sec. 3.1): declared p + 1 with --unic on, p with it off,
// p = --order. Step k uses min(p, k + 1) (warm-up: only k + 1 outputs exist) and, with --lower-order-final on and
// fewer than 10 steps in all, min(p, N - k) (DPM-Solver's rule; the authors' UniPC code lowers the order on every
// grid). --order 1 --unic off is DDIM.
#include <Eigen/LU>
#include <array>
#include <cmath>

#include "solvers/registry.hpp"

namespace scoresde {
namespace {

using Weights = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, 3, 1>;
using Conditions = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, 3, 3>;

// phi_k(z) = sum_{n >= 0} z^n / (n + k)!: the series near 0, where the recursion from phi_0 = e^z would cancel.
double phi(int k, double z) {
  double factorial = 1.0;
  if (std::abs(z) < 1.0) {
    for (int i = 2; i <= k; ++i) factorial *= i;
    double term = 1.0 / factorial, sum = 0.0;
    for (int n = 0; n < 25; ++n, term *= z / (n + k)) sum += term;
    return sum;
  }
  double value = std::exp(z);
  for (int i = 0; i < k; ++i, factorial *= i) value = (value - 1.0 / factorial) / z;
  return value;
}

// The w_1..w_n with sum_j r_j^{i-1} w_j = g_i, i = 1..n.
Weights solve_conditions(const std::array<double, 3>& r, const std::array<double, 3>& g, int n) {
  Conditions R(n, n);
  Weights b(n);
  for (int i = 0; i < n; ++i) {
    b(i) = g[i];
    for (int j = 0; j < n; ++j) R(i, j) = std::pow(r[j], i);
  }
  return R.partialPivLu().solve(b);
}

struct UnipcState {
  std::array<Matrix, 4> m;  // m_j in m[j % (order + 1)]: the steps use at most order + 1 of them
  Matrix base;              // x_base of the step
};

class Unipc final : public StatefulPredictor<UnipcState> {
 public:
  Unipc(int order, UnipcVariant variant, bool unic, bool lower_order_final)
      : order_(order),
        variant_(variant),
        unic_(unic),
        lower_order_final_(lower_order_final),
        info_{"unipc",
              "x_base - alpha B(h) sum a_i D_i (UniP-p), then UniC-p with the model at the new point",
              "Zhao et al. 2023, sec. 3 (UniC, UniP), data prediction",
              static_cast<double>(order + unic),
              static_cast<double>(order + unic),
              1} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return true; }

 protected:
  UnipcState initial_state(Index dim, Index cols) const override {
    UnipcState s;
    for (int j = 0; j <= order_; ++j) s.m[j].resize(dim, cols);
    s.base.resize(dim, cols);
    return s;
  }

  std::optional<double> advance(StepContext& c, UnipcState& s, Matrix& x, const StepPosition& at, bool) const override {
    const Index k = at.k;
    const int p = at.multistep_order(order_, lower_order_final_);
    const double lambda_k = c.sde.lambda(at.t), h = c.sde.lambda(at.t_next) - lambda_k;
    const double alpha_next = c.sde.alpha(at.t_next);
    const double B = variant_ == UnipcVariant::bh1 ? -h : std::expm1(-h);
    Matrix& m_k = slot(s, k);
    if (at.first()) c.predict(Prediction::data, x, at.t, m_k);

    std::array<double, 3> r{}, g{};
    for (int i = 1; i < p; ++i) r[i - 1] = (c.sde.lambda(at.grid[k - i]) - lambda_k) / h;
    for (int i = 1, factorial = 1; i <= p; factorial *= ++i) g[i - 1] = factorial * -h * phi(i + 1, -h) / B;

    s.base = (c.sde.sigma(at.t_next) / c.sde.sigma(at.t)) * x - (alpha_next * std::expm1(-h)) * m_k;
    const Weights a = p == 1 ? Weights() : p == 2 ? Weights::Constant(1, 0.5).eval() : solve_conditions(r, g, p - 1);
    x = s.base;
    for (int i = 1; i < p; ++i) x -= (alpha_next * B * a(i - 1) / r[i - 1]) * (slot(s, k - i) - m_k);
    if (at.last()) return std::nullopt;

    Matrix& m_next = slot(s, k + 1);
    c.predict(Prediction::data, x, at.t_next, m_next);
    if (!unic_) return std::nullopt;
    r[p - 1] = 1.0;
    const Weights w = p == 1 ? Weights::Constant(1, 0.5).eval() : solve_conditions(r, g, p);
    x = s.base;
    for (int i = 1; i < p; ++i) x -= (alpha_next * B * w(i - 1) / r[i - 1]) * (slot(s, k - i) - m_k);
    x -= (alpha_next * B * w(p - 1)) * (m_next - m_k);
    return std::nullopt;
  }

 private:
  Matrix& slot(UnipcState& s, Index j) const { return s.m[j % (order_ + 1)]; }

  int order_;
  UnipcVariant variant_;
  bool unic_, lower_order_final_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_unipc(const SamplerOptions& options) {
  // resolved_order() keys on --sampler, which is pc when unipc runs as --predictor.
  SamplerOptions as_unipc = options;
  as_unipc.sampler = "unipc";
  return std::make_unique<Unipc>(as_unipc.resolved_order(), options.unipc_variant, options.unic,
                                 options.lower_order_final);
}

}  // namespace scoresde
