// Reverse-diffusion predictor (Song et al. 2021, eq. 46, App. E): reverses the SDE's own forward
// discretisation x_{k} = x_{k+1} + F_k + G_k z. Here (F, G) is the exact forward transition between the grid
// times, x_t = a x_{t_next} + G z with a = alpha_t / alpha_{t_next} and G^2 = sigma_t^2 - a^2 sigma_{t_next}^2,
// so that F = (a - 1) x. For the linear VP schedule this is the DDPM discretisation of the reference code with
// beta_i = 1 - a^2, for VE it is SMLD's sigma_i^2 - sigma_{i-1}^2.
//
//   x_{k+1} = x_k - (a - 1) x_k + G^2 s(x_k, t_k) + G z,      z = dW_k / sqrt(h)
//
// Strong and weak order 1 in h (G z = g dW + O(h^{3/2})). One score evaluation per step.
#include <cmath>

#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class ReverseDiffusion final : public Predictor {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{
        "reverse_diffusion", "x - (a - 1) x + G^2 s + G z", "Song et al. 2021, eq. 46 (App. E)", 1.0, 1.0, 1};
    return i;
  }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at,
                             bool noise_free) const override {
    const double t = at.t, t_next = at.t_next;
    const Transition tr = c.sde.transition(t_next, t);
    c.score(x, t, c.score_buf);
    auto xs = flat(x);
    const auto s = flat(c.score_buf);
    if (noise_free) {
      xs = (2.0 - tr.a) * xs + tr.variance * s;
      return std::nullopt;
    }
    // One pass: the deterministic part, then + G z (the same operations in the same order as two passes).
    c.brownian.increment(at.k, t, t_next, c.noise_buf);
    xs = ((2.0 - tr.a) * xs + tr.variance * s) + std::sqrt(tr.variance / (t - t_next)) * flat(c.noise_buf);
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_reverse_diffusion(const SamplerOptions&) {
  return std::make_unique<ReverseDiffusion>();
}

}  // namespace scoresde
