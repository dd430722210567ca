// Ancestral sampling (Song et al. 2021, App. F), defined for the two SDEs that discretise a known model:
//
//   VP (DDPM, Ho et al. 2020, eq. 11 with sigma_i^2 = beta_i):
//       x_{k+1} = (x_k + beta s(x_k, t_k)) / sqrt(1 - beta) + sqrt(beta) z,   beta = 1 - (alpha_t / alpha_{t_next})^2
//   VE (SMLD, Song et al. 2021, eq. 47):
//       x_{k+1} = x_k + (v_t - v_next) s(x_k, t_k) + sqrt(v_next (v_t - v_next) / v_t) z,    v = sigma^2
//
// with z = dW_k / sqrt(h). beta is the exact discrete beta between the grid times, so the schedule (linear or
// cosine) and the grid can be anything. sub-VP has no such discrete model: it is rejected with a message pointing
// to reverse_diffusion. Strong and weak order 1 in h. One score evaluation per step.
#include <cmath>

#include "core/errors.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class Ancestral final : public Predictor {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{"ancestral",
                               "VP: (x + beta s)/sqrt(1 - beta) + sqrt(beta) z; VE: SMLD",
                               "Ho et al. 2020, eq. 11; Song et al. 2021, eq. 47 (App. F)",
                               1.0,
                               1.0,
                               1};
    return i;
  }

  void check(const Sde& sde) const override {
    if (sde.options().kind == SdeKind::subvp)
      throw ConfigError(
          "--sampler/--predictor = ancestral: defined for --sde vp (DDPM) and ve (SMLD), not subvp; "
          "use reverse_diffusion, which is the same kind of discrete update for subvp");
  }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at,
                             bool noise_free) const override {
    const double t = at.t, t_next = at.t_next;
    c.score(x, t, c.score_buf);
    double noise_std;
    if (c.sde.options().kind == SdeKind::ve) {
      const double v = c.sde.sigma(t), vn = c.sde.sigma(t_next);
      const double dv = v * v - vn * vn;
      x += dv * c.score_buf;
      noise_std = std::sqrt(vn * vn * dv / (v * v));
    } else {
      const Transition tr = c.sde.transition(t_next, t);
      const double beta = tr.variance;
      x = (x + beta * c.score_buf) / tr.a;
      noise_std = std::sqrt(beta);
    }
    if (noise_free) return std::nullopt;
    c.brownian.increment(at.k, t, t_next, c.noise_buf);
    x += (noise_std / std::sqrt(t - t_next)) * c.noise_buf;
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_ancestral(const SamplerOptions&) {
  return std::make_unique<Ancestral>();
}

}  // namespace scoresde
