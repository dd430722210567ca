// The exact law of a sampler's output on Gaussian data. When p_0 = N(m, S), p_t is Gaussian for every t and the exact
// score s(x, t) = -(alpha_t^2 S + sigma_t^2 I)^{-1} (x - alpha_t m) is affine in x. A fixed-step sampler whose steppers
// declare StepperInfo::affine then maps the prior draw x_T and its Brownian draws xi_q (one per (step, part) the sampler
// draws, independent N(0, v_q I) with v_q = t_q - t_next_q for an increment and (t_q - t_next_q) / 12 for a step's
// space-time Levy area) affinely to its output,
//     y = c + A x_T + sum_q B_q xi_q,
// so y ~ N(c, prior_std^2 A A^T + sum_q v_q B_q B_q^T) for x_T ~ N(0, prior_std^2 I), with no sampling
// error. c, A and the B_q are read off the sampler itself, run through the driver's normal code path with its numerics
// unchanged: one pass records the draws the sampler makes, a second runs probe columns (the prior mean; the prior mean
// plus prior_std e_i; a unit-variance impulse in one coordinate of one draw) with probe Brownian paths
// (BrownianPathFactory). A last column, a combination of all perturbations, checks the map's affinity on every call.
// docs/exact-error.md describes the method and what it can and cannot see.
#pragma once

#include <optional>
#include <string>

#include "core/sde.hpp"
#include "core/types.hpp"
#include "models/score_model.hpp"
#include "solvers/options.hpp"

namespace scoresde {

struct GaussianLaw {
  Vector mean;        // d
  Matrix covariance;  // d x d
  double nfe = 0;     // score evaluations per sample of the sampler
  Index draws = 0;    // Brownian increments (step, part) the sampler draws per sample
};

// Why the exact law does not apply to the configuration, naming the option that selects the stepper ("--sampler =
// ggf: ...", "--corrector = langevin: ...", "--ode-method = dopri5: ..."), or std::nullopt when it applies. From the
// registry: an adaptive method (is_adaptive, or a predictor with error_order() > 0) or a stepper whose StepperInfo is
// not affine.
std::optional<std::string> gaussian_law_not_applicable(const SamplerOptions& options);

// The exact law of the output of `options` from prior draws x_T ~ N(0, prior_std^2 I) at T, for a model whose score
// is affine in x (the exact score of a single Gaussian; the caller checks the data). ConfigError with the reason of
// gaussian_law_not_applicable; ConfigError naming the sampler when the probes show the output is not affine in the
// prior draw and the path's noise (the model's score is not affine, or the sampler draws noise elsewhere);
// NumericalError when a probe turns non-finite. options.seed, noise and chunk play no part in the result.
GaussianLaw gaussian_output_law(const Sde& sde, const ScoreModel& model, const SamplerOptions& options);

}  // namespace scoresde
