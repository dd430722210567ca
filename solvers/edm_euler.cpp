// Euler's method on the probability-flow ODE in sigma~ (Karras et al. 2022, Alg. 1 without its correction step; the
// ODE and coordinates are in solvers/edm_common.hpp):
//
//   d_k = (x~_k - D(x~_k; sigma~_k)) / sigma~_k,   x~_{k+1} = x~_k + (sigma~_{k+1} - sigma~_k) d_k,   x~ = x / alpha.
//
// Order 1 (Euler). One evaluation per step. The same update as ddim, in other coordinates.
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class EdmEuler final : public Predictor {
 public:
  const StepperInfo& info() const override {
    static const StepperInfo i{"edm_euler",
                               "x~ + (sigma~_{k+1} - sigma~_k) (x~ - D) / sigma~_k",
                               "Karras et al. 2022, eq. 4 and Alg. 1 (Euler step)",
                               1.0,
                               1.0,
                               1};
    return i;
  }
  bool probability_flow() const override { return true; }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at, bool) const override {
    const auto p = EdmPoint::at(c.sde, at.t), q = EdmPoint::at(c.sde, at.t_next);
    auto& d = c.score_buf;
    edm_derivative(c, x, p, d);
    x = q.alpha * (x / p.alpha + (q.sigma_tilde - p.sigma_tilde) * d);
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Predictor> make_edm_euler(const SamplerOptions&) {
  return std::make_unique<EdmEuler>();
}

}  // namespace scoresde
