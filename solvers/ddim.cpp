// DDIM (Song, Meng & Ermon 2021, eq. 12), with --eta (their eq. 16; default 0, the deterministic sampler):
//
//   x_{k+1} = alpha_{k+1} x0_hat + sqrt(sigma_{k+1}^2 - c^2) eps_hat + c z,   x0_hat = (x_k - sigma_k eps_hat) /
//   alpha_k, c = eta sigma_{k+1} sqrt(1 - e^{-2 h}),   h = lambda_{k+1} - lambda_k,   z = dW_k / sqrt(t_k - t_{k+1}),
//
// eps_hat the noise prediction at (x_k, t_k). c is eq. 16's sigma_t written with alpha and sigma of the kernel, so it
// holds for every SDE here (VE: alpha = 1): for VP, sigma_{k+1}^2 (1 - e^{-2h}) = (1 - abar_{k+1}) / (1 - abar_k)
// (1 - abar_k / abar_{k+1}), and eta = 1 is the DDPM posterior step (Ho et al. 2020, eq. 7). In x~ = x / alpha it is
// the ancestral split of solvers/edm_common.hpp: euler_ancestral is the same update.
//
// eta = 0: the Euler step of the probability-flow ODE in (x / alpha, sigma / alpha) (Song, Meng & Ermon 2021, eqs. 13
// and 14; Karras et al. 2022, eq. 4), the same update as edm_euler and DPM-Solver-1 (Lu et al. 2022): order 1.
// eta > 0: the steps converge to the SDE with noise eta g dW and drift f x - (1 + eta^2) g^2 s / 2 (eta = 1: the
// reverse SDE): strong order 1 (additive noise), weak order 1. One evaluation per step. --denoise on: the last step
// drops c z.
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

class Ddim final : public Predictor {
 public:
  explicit Ddim(double eta)
      : eta_(eta),
        info_{"ddim",
              eta > 0
                  ? "alpha_{k+1} x0_hat + sqrt(sigma_{k+1}^2 - c^2) eps_hat + c z, c = eta sigma_{k+1} sqrt(1 - e^-2h)"
                  : "alpha_{k+1} x0_hat + sigma_{k+1} eps_hat",
              eta > 0 ? "Song, Meng & Ermon 2021, eqs. 12 and 16" : "Song, Meng & Ermon 2021, eq. 12 (eta = 0)",
              1.0,
              1.0,
              1} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return eta_ == 0; }

  std::optional<double> step(StepContext& c, StepperState*, Matrix& x, const StepPosition& at,
                             bool noise_free) const override {
    auto& eps = c.score_buf;
    auto& x0 = c.drift_buf;
    c.predict(Prediction::noise, x, at.t, eps);
    x0 = (x - c.sde.sigma(at.t) * eps) / c.sde.alpha(at.t);
    const double to = c.sde.sigma_tilde(at.t_next);
    const auto levels = ancestral_levels(c.sde.sigma_tilde(at.t), to, eta_);
    // sigma_{k+1} sigma~_down / sigma~_{k+1} = sqrt(sigma_{k+1}^2 - c^2); the ratio is exactly 1 at eta = 0.
    x = c.sde.alpha(at.t_next) * x0 + (c.sde.sigma(at.t_next) * (levels.down / to)) * eps;
    if (levels.up == 0 || noise_free) return std::nullopt;
    standard_normal_of_step(c, at);
    x += (c.sde.alpha(at.t_next) * levels.up) * c.noise_buf;
    return std::nullopt;
  }

 private:
  double eta_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_ddim(const SamplerOptions& options) {
  return std::make_unique<Ddim>(eta_for(options, "ddim"));
}

}  // namespace scoresde
