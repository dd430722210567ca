// DPM-Solver++(3M) on the probability-flow ODE with the data prediction x0 = (x + sigma^2 s) / alpha, in log-SNR
// lambda = log(alpha / sigma), h = lambda_{k+1} - lambda_k, r0 = (lambda_k - lambda_{k-1}) / h,
// r1 = (lambda_{k-1} - lambda_{k-2}) / h, D1_0 = (x0_k - x0_{k-1}) / r0, D1_1 = (x0_{k-1} - x0_{k-2}) / r1:
//
//   x_{k+1} = (sigma_{k+1} / sigma_k) x_k + alpha_{k+1} [e1 x0_k + e2 D1 + c e3 D2],
//   D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1)   (= h x0' + O(h^3)),
//   D2 = 2 (D1_0 - D1_1) / (r0 + r1)            (= h^2 x0'' + O(h^3)),
//   e1 = 1 - e^{-h},  e2 = 1 - e1 / h,  e3 = 1/2 - e2 / h.
//
// The exact solution x_{k+1} = (sigma_{k+1} / sigma_k) x_k + sigma_{k+1} int e^l x0(l) dl (Lu et al. 2022b,
// sec. 4.1) with x0 expanded to second order in lambda gives alpha_{k+1} (e1 x0 + e2 h x0' + e3 h^2 x0'') + O(h^4)
// (solvers/dpm_solver_common.hpp), so
//   --dpmpp3m-form third_order (default):  c = 1, local error O(h^4), order 3;
//   --dpmpp3m-form reference:              c = 1/2, the weight of the authors' multistep_dpm_solver_third_update
//     ('dpmsolver++', phi_3 times (D1_0 - D1_1) / (r0 + r1)), which k-diffusion's sample_dpmpp_3m_sde (eta = 0) and
//     diffusers copy: it leaves (e3 / 2) h^2 x0'' = O(h^3) per step, order 2.
// Step 0 is first order, step 1 the order-2 update of dpmpp_2m with --solver-type (midpoint, the default: the
// authors' default; heun: k-diffusion's warm-up in sample_dpmpp_3m_sde); with --lower-order-final on and fewer than 10
// steps, step k uses at most order N - k. One evaluation per step.
#include "solvers/dpm_solver_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::unique_ptr<Predictor> make_dpmpp_3m(const SamplerOptions& options) {
  const bool third = options.dpmpp3m_form == Dpmpp3mForm::third_order;
  const double order = third ? 3.0 : 2.0;
  return std::make_unique<dpm::Multistep>(
      dpm::MultistepOptions{dpm::Form::data, 3, options.solver_type, third ? 1.0 : 0.5, options.lower_order_final},
      StepperInfo{"dpmpp_3m",
                  third ? "DPM-Solver++(3M): x0_k, x0_{k-1}, x0_{k-2} in an exponential integrator in lambda"
                        : "DPM-Solver++(3M) with the authors' half weight on the second difference",
                  "Lu et al. 2022b, sec. 4.2; the authors' multistep_dpm_solver_third_update", order, order, 1});
}

}  // namespace scoresde
