// Euler ancestral sampling in sigma~ (k-diffusion's sample_euler_ancestral; solvers/edm_common.hpp has the
// coordinates x~ = x / alpha and the ancestral split), --eta default 1:
//
//   d = (x~_k - D(x~_k; sigma~_k)) / sigma~_k,   x~_{k+1} = x~_k + (sigma~_down - sigma~_k) d + sigma~_up z,
//   sigma~_up = eta sigma~_{k+1} sqrt(1 - (sigma~_{k+1} / sigma~_k)^2),   sigma~_down = sqrt(sigma~_{k+1}^2 -
//   sigma~_up^2),
//
// z = dW_k / sqrt(t_k - t_{k+1}). With x~_k - sigma~_k d = x0_hat it is DDIM with the same eta (Song, Meng & Ermon
// 2021, eqs. 12 and 16): x~_{k+1} = x0_hat + sigma~_down eps_hat + sigma~_up z. eta = 1 is the DDPM posterior step;
// eta = 0 is edm_euler, bit for bit. eta > 0: the steps converge to the SDE with noise eta g dW and drift
// f x - (1 + eta^2) g^2 s / 2 (eta = 1: the reverse SDE): strong order 1 (additive noise), weak order 1. One
// evaluation per step. --denoise on: the last step drops sigma~_up z.
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class EulerAncestral final : public Predictor {
 public:
  explicit EulerAncestral(double eta)
      : eta_(eta),
        info_{"euler_ancestral",
              "x~ + (sigma~_down - sigma~_k) (x~ - D) / sigma~_k + sigma~_up z",
              "k-diffusion sample_euler_ancestral; Song, Meng & Ermon 2021, eq. 16",
              1.0,
              1.0,
              1} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return eta_ == 0; }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at,
                             bool noise_free) const override {
    const auto p = EdmPoint::at(c.sde, at.t), q = EdmPoint::at(c.sde, at.t_next);
    const auto levels = ancestral_levels(p.sigma_tilde, q.sigma_tilde, eta_);
    auto& d = c.score_buf;
    edm_derivative(c, x, p, d);
    x = q.alpha * (x / p.alpha + (levels.down - p.sigma_tilde) * d);
    if (levels.up == 0 || noise_free) return std::nullopt;
    standard_normal_of_step(c, at);
    x += (q.alpha * levels.up) * c.noise_buf;
    return std::nullopt;
  }

 private:
  double eta_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_euler_ancestral(const SamplerOptions& options) {
  return std::make_unique<EulerAncestral>(eta_for(options, "euler_ancestral"));
}

}  // namespace scoresde
