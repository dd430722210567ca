// SRA1 of Roessler (2010), the stochastic Runge-Kutta method of strong order 1.5 for additive noise, on the
// reverse-time SDE (Song et al. 2021, eq. 6) dx = [f x - g^2 s] dt + g dw_bar, whose noise is additive (g depends
// on t only). In the reverse time of the step, with b(x, t) = f(t) x - g(t)^2 s(x, t), h = t_k - t_{k+1},
// dW = W(t_k) - W(t_{k+1}) and J = I_(1,0) / h = dW / 2 + H (H the space-time Levy area of the step, from
// BrownianPath::increment_and_area; core/noise.hpp):
//
//   x2      = x_k - (3/4) h b(x_k, t_k) + (3/2) g(t_{k+1}) J
//   x_{k+1} = x_k - h [ (1/3) b(x_k, t_k) + (2/3) b(x2, t_k - (3/4) h) ] + g(t_{k+1}) (dW - J) + g(t_k) J
//
// Roessler, "Runge-Kutta methods for the strong approximation of solutions of stochastic differential equations",
// SIAM J. Numer. Anal. 48 (2010): the SRA scheme for additive noise,
//   H_i = x + sum_j A0_ij a(H_j) h + sum_j B0_ij sigma(t + c1_j h) I_(1,0) / h,
//   x'  = x + sum_i alpha_i a(t + c0_i h, H_i) h + sum_i (beta1_i I_(1) + beta2_i I_(1,0) / h) sigma(t + c1_i h),
// with the SRA1 tableau c0 = (0, 3/4), c1 = (1, 0), A0_21 = 3/4, B0_21 = 3/2, alpha = (1/3, 2/3), beta1 = (1, 0),
// beta2 = (-1, 1) (also StochasticDiffEq.jl's SRA1), written out above for a = -b in the step's reverse time. SRA1
// rather than SOSRA (Rackauckas & Nie 2018, three stages): two stages are the fewest that reach strong order 1.5, the
// reverse SDEs here are not stiff enough at useful step sizes to need SOSRA's larger stability region, and SRA1 is
// Roessler's own. Strong order 1.5 (additive noise; the drift is smooth in t and x), weak order 2. Two score
// evaluations per step. The noise-free last step (--denoise) drops J and dW: the deterministic two-stage Runge-Kutta
// method underneath (order 2).
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

struct SraState {
  Matrix k1, x2, area;
};

class Sra final : public StatefulPredictor<SraState> {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{
        "sra",
        "SRA1: x2 = x - 3/4 h b + 3/2 g(t') J;  x' = x - h (b/3 + 2/3 b(x2)) + g(t') (dW - J) + g(t) J",
        "Roessler 2010 (SIAM J. Numer. Anal. 48), SRA scheme with the SRA1 tableau",
        1.5,
        2.0,
        2};
    return i;
  }

 protected:
  SraState initial_state(Index dim, Index cols) const override {
    return SraState{Matrix(dim, cols), Matrix(dim, cols), Matrix(dim, cols)};
  }

  std::optional<double> advance(StepContext& c, SraState& s, Matrix& x, const StepPosition& at,
                                bool noise_free) const override {
    const double t = at.t, t_next = at.t_next, h = t - t_next, t2 = t - 0.75 * h;
    const double g = c.reverse.diffusion(t), g_next = c.reverse.diffusion(t_next);
    c.score(x, t, c.score_buf);
    c.reverse.drift(x, c.score_buf, t, s.k1);
    if (noise_free) {
      c.noise_buf.setZero();
      s.area.setZero();
    } else {
      c.brownian.increment_and_area(at.k, t, t_next, c.noise_buf, s.area);
      s.area += 0.5 * c.noise_buf;  // J = dW / 2 + H
    }
    s.x2 = x - (0.75 * h) * s.k1 + (1.5 * g_next) * s.area;
    c.score(s.x2, t2, c.score_buf);
    c.reverse.drift(s.x2, c.score_buf, t2, c.drift_buf);
    x -= h * ((1.0 / 3.0) * s.k1 + (2.0 / 3.0) * c.drift_buf);
    x += g_next * (c.noise_buf - s.area) + g * s.area;
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_sra(const SamplerOptions&) {
  return std::make_unique<Sra>();
}

}  // namespace scoresde
