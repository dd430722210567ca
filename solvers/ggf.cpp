// The adaptive SDE solver of Jolicoeur-Martineau et al., "Gotta Go Fast When Generating Data with Score-Based
// Models" (2021), Algorithm 1: an Euler-Maruyama step and an improved-Euler (stochastic Heun) step on the reverse
// SDE with the same Brownian increment, the difference of the two as the error estimate, per-sample step sizes.
// With b(x, t) = f(t) x - g(t)^2 s(x, t), h = t - t', dW = W(t) - W(t'):
//
//   K1 = -h b(x, t) + g(t) dW,         x_EM = x + K1                  (Euler-Maruyama)
//   K2 = -h b(x_EM, t') + g(t') dW,    x'   = x + (K1 + K2) / 2       (improved Euler; accepted: "extrapolation")
//   E  = sqrt( (1/d) sum_i [ (x'_i - x_EM,i) / delta_i ]^2 ),   delta_i = max(atol, rtol max(|x_EM,i|, |x_prev,i|))
//
// (x_prev is the Euler-Maruyama result of the last accepted step, the prior draw at first).
// The step is accepted when E <= 1, and the next step size is min(t' - eps, 0.9 h E^-0.9) after an acceptance and a
// rejection alike, starting from h = 0.01 T (their safety 0.9, exponent r = 0.9 and h_init; StepSizeRule::ggf in
// solvers/step_control.hpp). Every sample has its own steps: the driver runs each sample alone. Defaults atol =
// 0.0078, rtol = 0.05 (the paper's; SamplerOptions::resolved_atol). A rejected step is retried on the same Brownian
// path (the tree, indexed by t), so rejections do not bias the noise; the authors' code draws fresh noise instead.
// With --denoise on, the last accepted step is followed by the paper's final denoising step, Tweedie's
// x + sigma(eps)^2 s(x, eps) as in their code (one more evaluation). Strong order 1 (additive noise; the pair
// differs by O(h^{3/2}) per step), weak order 1 declared for the accepted improved-Euler step. Two score
// evaluations per attempted step.
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

// The step under trial keeps the state before it (x_old) and its Euler-Maruyama result (x_em), which becomes x_prev
// when the next call finds the step accepted.
struct GgfState {
  Matrix x_old, x_em, x_prev, k1, dw;
  bool started = false;  // x_prev holds something
  bool pending = false;  // the last trial's result is in x and was not rejected
};

class Ggf final : public StatefulPredictor<GgfState> {
 public:
  Ggf(double atol, double rtol) : atol_(atol), rtol_(rtol) {}
  const StepperInfo& info() const override {
    static const StepperInfo i{
        "ggf",
        "EM and improved Euler with one dW; E = |x' - x_EM| / max(atol, rtol |x|), h' = 0.9 h E^-0.9, per sample",
        "Jolicoeur-Martineau et al. 2021, Algorithm 1",
        1.0,
        1.0,
        2};
    return i;
  }
  int error_order() const override { return 1; }
  StepSizeRule step_size_rule() const override { return StepSizeRule::ggf; }

  void finish(StepContext& c, Matrix& x, double t_end) const override {
    const double sigma = c.sde.sigma(t_end);
    c.score(x, t_end, c.score_buf);
    x += (sigma * sigma) * c.score_buf;
  }

 protected:
  GgfState initial_state(Index dim, Index cols) const override {
    GgfState s;
    for (Matrix* m : {&s.x_old, &s.x_em, &s.x_prev, &s.k1, &s.dw}) m->resize(dim, cols);
    return s;
  }

  std::optional<double> advance(StepContext& c, GgfState& s, Matrix& x, const StepPosition& at, bool) const override {
    if (s.pending) s.x_prev.swap(s.x_em);  // the last step was accepted
    if (!s.started) s.x_prev = x;
    s.started = true;
    const double t = at.t, t_next = at.t_next, h = t - t_next;
    c.brownian.increment(at.k, t, t_next, s.dw);
    c.score(x, t, c.score_buf);
    c.reverse.drift(x, c.score_buf, t, s.k1);
    s.k1 = -h * s.k1 + c.reverse.diffusion(t) * s.dw;
    s.x_em = x + s.k1;
    c.score(s.x_em, t_next, c.score_buf);
    c.reverse.drift(s.x_em, c.score_buf, t_next, c.drift_buf);
    c.drift_buf = -h * c.drift_buf + c.reverse.diffusion(t_next) * s.dw;  // K2
    s.x_old.swap(x);
    x = s.x_old + 0.5 * (s.k1 + c.drift_buf);
    s.pending = true;
    // The scaled RMS norm over the state: one sample, as the driver runs ggf per sample.
    const auto scale = (rtol_ * s.x_em.cwiseAbs().cwiseMax(s.x_prev.cwiseAbs()).array()).max(atol_);
    return std::sqrt(((x - s.x_em).array() / scale).square().mean());
  }

  void undo(GgfState& s, Matrix& x) const override {
    s.x_old.swap(x);
    s.pending = false;
  }

 private:
  double atol_, rtol_;
};

}  // namespace

std::unique_ptr<Predictor> make_ggf(const SamplerOptions& options) {
  return std::make_unique<Ggf>(options.resolved_atol(), options.resolved_rtol());
}

}  // namespace scoresde
