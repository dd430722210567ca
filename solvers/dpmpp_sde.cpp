// DPM-Solver++(2S) SDE: k-diffusion's sample_dpmpp_sde (r = 1/2), --eta default 1. In log-SNR
// lambda = log(alpha / sigma), h = lambda_{k+1} - lambda_k, s = t(lambda_k + h / 2), each first-order move from t_k
// to u in {s, t_{k+1}} is an ancestral step (solvers/edm_common.hpp: sigma~_down, sigma~_up of the move, with
// h_d = log(sigma~_k / sigma~_down) = lambda_u - lambda_k + log(sigma~_u / sigma~_down)):
//
//   x_s     = (sigma_s / sigma_k) (sigma~_down / sigma~_s) x_k + alpha_s (1 - e^{-h_d}) x0(x_k, t_k) + alpha_s
//   sigma~_up z1, x_{k+1} = (sigma_{k+1} / sigma_k) (sigma~_down' / sigma~_{k+1}) x_k + alpha_{k+1} (1 - e^{-h_d'})
//   x0(x_s, s)
//             + alpha_{k+1} sigma~_up' z2,
//
// z1 = (W(t_k) - W(s)) / sqrt(t_k - s), z2 = (W(t_k) - W(t_{k+1})) / sqrt(t_k - t_{k+1}): the second draw is the
// increment over the whole step, which holds the first (k-diffusion asks its Brownian tree for both intervals so).
// Each move is DDIM(eta) (solvers/ddim.cpp) with the model output of the stage. eta = 0: dpmpp_2s (Lu et al. 2022b,
// Alg. 1 with r = 1/2) bit for bit, order 2. eta > 0: strong order 1 (the stages do not reach the I_(1,0) term of
// the additive noise). Weak order 2 at eta = 1, where an ancestral move is the exact exponential step of the reverse
// SDE with x0 fixed (dpmpp_2m_sde's first-order step) and the stage's x0 at the midpoint, with the first draw's
// noise, carries the drift's mean; 1 for 0 < eta < 1, where the ancestral split is not that step of the eta family
// and the mean errs at O(h). Both measured (no proof here; docs/samplers.md). Two evaluations per step. --denoise
// on: the last step drops both draws.
#include "solvers/dpm_solver_common.hpp"
#include "solvers/edm_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {
namespace {

struct Stages {
  Matrix m, m1, u, w1;  // x0 at t_k, x0 at s, the stage point, W(t_k) - W(s)
};

// The data-form first-order move from t to u as an ancestral step: dpm::coefficients' a and e1 with the log-SNR step
// cut to sigma~_down, and the noise's standard deviation alpha_u sigma~_up. eta = 0: coefficients() unchanged.
dpm::Coefficients ancestral_move(const Sde& sde, double t, double u, double eta) {
  auto k = dpm::coefficients(dpm::Form::data, sde, t, u);
  if (eta == 0) return k;
  const double to = sde.sigma_tilde(u);
  const auto levels = ancestral_levels(sde.sigma_tilde(t), to, eta);
  const double r = levels.down / to;
  k.a *= r;
  k.e1 = -std::expm1(-(k.h - std::log(r)));
  k.noise = sde.alpha(u) * levels.up;
  return k;
}

class DpmppSde final : public StatefulPredictor<Stages> {
 public:
  explicit DpmppSde(double eta)
      : eta_(eta),
        info_{"dpmpp_sde",
              "DPM-Solver++(2S) with ancestral moves: x0 at the log-SNR midpoint, noise at both stages",
              "k-diffusion sample_dpmpp_sde (r = 1/2); Lu et al. 2022b, Alg. 1",
              eta > 0 ? 1.0 : 2.0,
              eta > 0 && eta < 1 ? 1.0 : 2.0,
              2} {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return eta_ == 0; }

 protected:
  Stages initial_state(Index dim, Index cols) const override {
    Stages st;
    st.m.resize(dim, cols);
    st.m1.resize(dim, cols);
    st.u.resize(dim, cols);
    if (eta_ > 0) st.w1.resize(dim, cols);
    return st;
  }

  std::optional<double> advance(StepContext& c, Stages& st, Matrix& x, const StepPosition& at,
                                bool noise_free) const override {
    const Sde& sde = c.sde;
    const double t = at.t, t_next = at.t_next;
    const double s = sde.t_of_lambda(sde.lambda(t) + 0.5 * (sde.lambda(t_next) - sde.lambda(t)));
    const bool noisy = eta_ > 0 && !noise_free;
    c.predict(Prediction::data, x, t, st.m);
    const auto k1 = ancestral_move(sde, t, s, eta_);
    st.u = k1.a * x + k1.b * k1.e1 * st.m;
    if (noisy) {
      c.brownian.increment(at.k, t, s, st.w1, 1);
      st.u += (k1.noise / std::sqrt(t - s)) * st.w1;
    }
    c.predict(Prediction::data, st.u, s, st.m1);
    const auto k = ancestral_move(sde, t, t_next, eta_);
    // Alg. 1's (1 - 1/(2r)) x0_k + (1/(2r)) x0(u, s) at r = 1/2, in the form of dpmpp_2s.
    x = k.a * x + k.b * k.e1 * (st.m + 1.0 * (st.m1 - st.m));
    if (noisy) {
      c.brownian.increment(at.k, s, t_next, c.noise_buf, 2);
      c.noise_buf += st.w1;
      x += (k.noise / std::sqrt(t - t_next)) * c.noise_buf;
    }
    return std::nullopt;
  }

 private:
  double eta_;
  StepperInfo info_;
};

}  // namespace

std::unique_ptr<Predictor> make_dpmpp_sde(const SamplerOptions& options) {
  return std::make_unique<DpmppSde>(eta_for(options, "dpmpp_sde"));
}

}  // namespace scoresde
