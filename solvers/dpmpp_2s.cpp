// DPM-Solver++(2S) (Lu et al. 2022b, Alg. 1, r = 1/2) on the probability-flow ODE with the data prediction
// x0 = (x + sigma^2 s) / alpha, in log-SNR lambda = log(alpha / sigma), h = lambda_{k+1} - lambda_k:
//
//   s     = t(lambda_k + h / 2),
//   u     = (sigma_s / sigma_k) x_k + alpha_s (1 - e^{-h/2}) x0(x_k, t_k),
//   x_{k+1} = (sigma_{k+1} / sigma_k) x_k + alpha_{k+1} (1 - e^{-h}) x0(u, s).
//
// Alg. 1's D = (1 - 1/(2r)) x0_k + (1/(2r)) x0(u, s) is x0(u, s) at r = 1/2: the midpoint rule on the exact
// solution x_{k+1} = (sigma_{k+1} / sigma_k) x_k + sigma_{k+1} int e^l x0(l) dl (sec. 4.1). k-diffusion's
// sample_dpmpp_2s_ancestral with eta = 0 is the same method. Order 2 (local error O(h^3)); two evaluations per step.
#include "solvers/dpm_solver_common.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::unique_ptr<Predictor> make_dpmpp_2s(const SamplerOptions&) {
  return std::make_unique<dpm::Singlestep>(
      dpm::Form::data, 2,
      StepperInfo{"dpmpp_2s", "DPM-Solver++(2S): x0 at the log-SNR midpoint, exponential integrator in lambda",
                  "Lu et al. 2022b, Alg. 1 (r = 1/2)", 2.0, 2.0, 2});
}

}  // namespace scoresde
