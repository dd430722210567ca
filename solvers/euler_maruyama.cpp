// Euler-Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6; App. D "reverse SDE solvers").
//
//   x_{k+1} = x_k - [f(t_k) x_k - g(t_k)^2 s(x_k, t_k)] h + g(t_k) dW_k,     h = t_k - t_{k+1},  dW_k ~ N(0, h I)
//
// Strong order 1 here (not 0.5): g depends on t only, so the noise is additive (Kloeden & Platen 1992, 10.2).
// Weak order 1. One score evaluation per step.
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class EulerMaruyama final : public Predictor {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{"euler_maruyama",
                               "x - [f x - g^2 s] h + g dW",
                               "Song et al. 2021, eq. 6; Kloeden & Platen 1992, eq. 10.2.2",
                               1.0,
                               1.0,
                               1};
    return i;
  }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at,
                             bool noise_free) const override {
    const double t = at.t, t_next = at.t_next;
    const double h = t - t_next;
    c.score(x, t, c.score_buf);
    // One pass over the chunk: x - h (f x - g^2 s), then + g dW, element by element (the same operations, in the
    // same order, as a drift pass followed by two updates).
    const ReverseSde::DriftCoefficients d = c.reverse.drift_coefficients(t);
    auto xs = flat(x);
    const auto s = flat(c.score_buf);
    if (noise_free) {
      xs = xs - h * (d.x_coef * xs - d.score_coef * s);
      return std::nullopt;
    }
    c.brownian.increment(at.k, t, t_next, c.noise_buf);
    xs = (xs - h * (d.x_coef * xs - d.score_coef * s)) + c.reverse.diffusion(t) * flat(c.noise_buf);
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_euler_maruyama(const SamplerOptions&) {
  return std::make_unique<EulerMaruyama>();
}

}  // namespace scoresde
