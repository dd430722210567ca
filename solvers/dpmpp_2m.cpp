// DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2) on the probability-flow ODE with the data prediction
// x0 = (x + sigma^2 s) / alpha, in log-SNR lambda = log(alpha / sigma), h = lambda_{k+1} - lambda_k,
// r0 = (lambda_k - lambda_{k-1}) / h, D = (x0_k - x0_{k-1}) / r0:
//
//   x_{k+1} = (sigma_{k+1} / sigma_k) x_k + alpha_{k+1} [e1 x0_k + w D],   e1 = 1 - e^{-h},
//   w = e1 / 2 (--solver-type midpoint: Alg. 2, the authors' solver_type 'dpmsolver', k-diffusion's sample_dpmpp_2m)
//     or e2 = 1 - e1 / h (heun: the authors' solver_type 'taylor', the exact weight of h x0').
//
// From the exact solution x_{k+1} = (sigma_{k+1} / sigma_k) x_k + sigma_{k+1} int e^l x0(l) dl (sec. 4.1) with x0
// linear in lambda through x0_{k-1} and x0_k. The first step is first order (DPM-Solver++1, i.e. DDIM); with
// --lower-order-final on and fewer than 10 steps the last one is too. Order 2 (local error O(h^3)); one evaluation
// per step.
#include "solvers/dpm_solver_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::unique_ptr<Predictor> make_dpmpp_2m(const SamplerOptions& options) {
  return std::make_unique<dpm::Multistep>(
      dpm::MultistepOptions{dpm::Form::data, 2, options.solver_type, 1.0, options.lower_order_final},
      StepperInfo{"dpmpp_2m", "DPM-Solver++(2M): x0_k, x0_{k-1} in an exponential integrator in lambda",
                  "Lu et al. 2022b, Alg. 2", 2.0, 2.0, 1});
}

}  // namespace scoresde
