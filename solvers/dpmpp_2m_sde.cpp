// DPM-Solver++(2M) SDE (k-diffusion's sample_dpmpp_2m_sde; the data-prediction solver of the diffusion SDE, Lu et al.
// 2022b), --eta default 1, in log-SNR lambda = log(alpha / sigma), h = lambda_{k+1} - lambda_k, h_eta = (1 + eta) h,
// r0 = (lambda_k - lambda_{k-1}) / h, D = (x0_k - x0_{k-1}) / r0:
//
//   x_{k+1} = (sigma_{k+1} / sigma_k) e^{-eta h} x_k + alpha_{k+1} [e1 x0_k + w D] + sigma_{k+1} sqrt(1 - e^{-2 eta h})
//   z, e1 = 1 - e^{-h_eta},  w = e1 / 2 (--solver-type midpoint, default) or 1 - e1 / h_eta (heun),
//
// z = dW_k / sqrt(t_k - t_{k+1}). With x0 held fixed over the step this is the exact solution of the SDE in
// solvers/dpm_solver_common.hpp (eta = 1: the reverse SDE, eta = 0: dpmpp_2m bit for bit); x0 is extrapolated
// linearly in lambda from x0_{k-1}, x0_k as in dpmpp_2m. The first step is first order; with --lower-order-final on
// and fewer than 10 steps the last one is too. eta > 0: strong order 1 (the additive noise's int (W - W_k) dlambda
// term is O(h^{3/2}) per step, and the difference D of two noisy x0 does not represent it); weak order 2, measured
// (no proof here): the exact output law on Gaussian data converges at 2.00 up to 2048 steps for eta = 1 and 1/2, and
// coupled Monte Carlo on eight_gaussians at 2.0-2.2 (docs/samplers.md). D's noise, from the previous step, carries
// the mean of x0's drift along the path (its Ito term included) to O(h^2). One evaluation per step. --denoise on: the
// last step drops the noise.
#include "solvers/dpm_solver_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::unique_ptr<Predictor> make_dpmpp_2m_sde(const SamplerOptions& options) {
  const double eta = eta_for(options, "dpmpp_2m_sde");
  const double strong = eta > 0 ? 1.0 : 2.0;
  return std::make_unique<dpm::Multistep>(
      dpm::MultistepOptions{dpm::Form::data, 2, options.solver_type, 1.0, options.lower_order_final, eta},
      StepperInfo{"dpmpp_2m_sde", "DPM-Solver++(2M) on the SDE: x0_k, x0_{k-1}, exact linear part and noise in lambda",
                  "k-diffusion sample_dpmpp_2m_sde; Lu et al. 2022b", strong, 2.0, 1});
}

}  // namespace scoresde
