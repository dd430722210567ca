// DPM-Solver++(3M) SDE (k-diffusion's sample_dpmpp_3m_sde), --eta default 1, in log-SNR lambda = log(alpha / sigma),
// h = lambda_{k+1} - lambda_k, h_eta = (1 + eta) h, with D1 and D2 of dpmpp_3m (solvers/dpmpp_3m.cpp):
//
//   x_{k+1} = (sigma_{k+1} / sigma_k) e^{-eta h} x_k + alpha_{k+1} [e1 x0_k + e2 D1 + c e3 D2]
//             + sigma_{k+1} sqrt(1 - e^{-2 eta h}) z,
//   e1 = 1 - e^{-h_eta},  e2 = 1 - e1 / h_eta,  e3 = 1/2 - e2 / h_eta,
//
// z = dW_k / sqrt(t_k - t_{k+1}). c = 1 (--dpmpp3m-form third_order, default) or 1/2 (reference: k-diffusion's
// weights). Step 0 is first order, step 1 the order-2 update with --solver-type (midpoint, default; k-diffusion takes
// heun); --lower-order-final as for dpmpp_3m. With x0 held fixed over the step this is the exact solution of the SDE
// in solvers/dpm_solver_common.hpp (eta = 1: the reverse SDE, eta = 0: dpmpp_3m bit for bit). eta > 0: strong order 1
// and weak order 2, as dpmpp_2m_sde (measured: the noisy x0 history raises neither further; both forms). One
// evaluation per step. --denoise on: the last step drops the noise.
#include "solvers/dpm_solver_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::unique_ptr<Predictor> make_dpmpp_3m_sde(const SamplerOptions& options) {
  const double eta = eta_for(options, "dpmpp_3m_sde");
  const bool third = options.dpmpp3m_form == Dpmpp3mForm::third_order;
  const double ode_order = third ? 3.0 : 2.0;
  return std::make_unique<dpm::Multistep>(
      dpm::MultistepOptions{dpm::Form::data, 3, options.solver_type, third ? 1.0 : 0.5, options.lower_order_final, eta},
      StepperInfo{"dpmpp_3m_sde",
                  third ? "DPM-Solver++(3M) on the SDE: x0_k, x0_{k-1}, x0_{k-2}, exact linear part and noise in lambda"
                        : "DPM-Solver++(3M) SDE with k-diffusion's half weight on the second difference",
                  "k-diffusion sample_dpmpp_3m_sde; Lu et al. 2022b, sec. 4.2", eta > 0 ? 1.0 : ode_order,
                  eta > 0 ? 2.0 : ode_order, 1});
}

}  // namespace scoresde
