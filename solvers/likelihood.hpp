// Log-likelihoods through the probability-flow ODE (Song et al. 2021, sec. 4.3 and App. D.2, eq. 39; the
// instantaneous change of variables of Chen et al. 2018, "Neural Ordinary Differential Equations", thm. 1).
//
// Along a path of the probability-flow ODE dx/dt = f~(x, t) = f(t) x - g(t)^2 s(x, t) / 2 the density of x_t
// changes as d log p_t(x_t) / dt = -div f~(x_t, t), so for a point x at time eps
//
//     log p_eps(x) = log p_T(x_T) + int_eps^T div f~(x_t, t) dt,     x_eps = x,
//     div f~(x, t) = d f(t) - g(t)^2 / 2 div s(x, t).
//
// The state [x; delta] (delta = the integral so far) is integrated forward, from eps to T, with odeint's
// dopri5 under error control on both parts, and log p_T is the prior's log-density (N(0, prior_std^2 I)).
// The result is the model's log-density at time eps; with the exact score of a mixture it is the mixture's
// log p_eps up to the solver's error and the prior mismatch log N(x_T) - log p_T(x_T) (docs/likelihood.md).
//
// div s comes from one of (--divergence):
//   exact       ScoreModel::score_and_divergence (mixtures: the closed-form Laplacian), 1 model evaluation
//               per right-hand side; for a model without it but with Jacobian-vector products, the trace
//               from the d products with the basis vectors, d evaluations;
//   hutchinson  the average of v^T (ds/dx) v over K probes v with E[v v^T] = I (Hutchinson 1989; Grathwohl
//               et al. 2019, FFJORD), each probe fixed per point for the whole solve and keyed by (seed,
//               point, probe) so that it is reproducible: K evaluations with a Jacobian-vector product per
//               right-hand side (ScoreModel::score_and_jvp), or 1 + K score evaluations (the K on twice the
//               columns) with central differences for a model without them. Unbiased; its variance is
//               2 |A|_F^2 for Gaussian probes and 2 sum_{i != j} A_ij^2 for Rademacher ones (A = ds/dx,
//               symmetric for a true score), which is why Rademacher is the default;
//   automatic   exact when the model has an exact divergence (score_and_divergence), hutchinson otherwise
//               (the default).
//
// Points are split into fixed chunks of consecutive indices, solved on OpenMP threads; a point's result does
// not depend on the number of threads (with --ode-control sample, on nothing but the point and the options).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/sde.hpp"
#include "models/data_scaling.hpp"
#include "models/score_model.hpp"
#include "solvers/driver.hpp"
#include "solvers/options.hpp"

namespace scoresde {

enum class DivergenceMethod { automatic, exact, hutchinson };
template <>
struct EnumNames<DivergenceMethod> {
  static constexpr std::array<std::pair<DivergenceMethod, std::string_view>, 3> values{
      {{DivergenceMethod::automatic, "auto"},
       {DivergenceMethod::exact, "exact"},
       {DivergenceMethod::hutchinson, "hutchinson"}}};
};
std::string to_string(DivergenceMethod method);
DivergenceMethod divergence_method_from_string(std::string_view name);  // ConfigError naming --divergence
std::vector<std::string> divergence_method_names();

// How the divergence is evaluated, once the method is resolved for a model; model evaluations per right-hand
// side of the ODE, for K probes in dimension d:
//   model_divergence    exact, ScoreModel::score_and_divergence: 1
//   jacobian_columns    exact, sum_i e_i^T J e_i with ScoreModel::score_and_jvp: d
//   hutchinson_jvp      hutchinson with ScoreModel::score_and_jvp: K
//   hutchinson_central  hutchinson with central differences of the score: 1 + K, the K on twice the columns
enum class DivergenceEvaluation { model_divergence, jacobian_columns, hutchinson_jvp, hutchinson_central };
std::string describe(DivergenceEvaluation evaluation);
// ConfigError for exact on a model with neither an exact divergence nor Jacobian-vector products.
DivergenceEvaluation divergence_evaluation(DivergenceMethod resolved, const ScoreModel& model);

enum class ProbeDistribution { rademacher, gaussian };
template <>
struct EnumNames<ProbeDistribution> {
  static constexpr std::array<std::pair<ProbeDistribution, std::string_view>, 2> values{
      {{ProbeDistribution::rademacher, "rademacher"}, {ProbeDistribution::gaussian, "gaussian"}}};
};
std::string to_string(ProbeDistribution distribution);
ProbeDistribution probe_distribution_from_string(std::string_view name);  // ConfigError naming --probe-dist

// Uniform dequantisation of 8-bit data: the density of the data in the [0, 256)^d space of its integer
// values is the density of the scaled data times the scale's Jacobian, so bits/dim gains log2(256 / width)
// (Theis et al. 2016; Ho et al. 2020, sec. 4):
//   none    no offset
//   [-1,1]  data scaled to [-1, 1] (width 2): + 7 bits/dim
//   [0,1]   data scaled to [0, 1] (width 1):  + 8 bits/dim
enum class Dequantization { none, minus_one_one, zero_one };
template <>
struct EnumNames<Dequantization> {
  static constexpr std::array<std::pair<Dequantization, std::string_view>, 3> values{
      {{Dequantization::none, "none"}, {Dequantization::minus_one_one, "[-1,1]"}, {Dequantization::zero_one, "[0,1]"}}};
  static constexpr std::array<std::string_view, 3> notes{
      {"", "8-bit data scaled to [-1, 1]: + 7 bits/dim", "scaled to [0, 1]: + 8 bits/dim"}};
};
std::string to_string(Dequantization dequantization);
Dequantization dequantization_from_string(std::string_view name);  // ConfigError naming --dequantize
double bits_per_dim_offset(Dequantization dequantization);

struct LikelihoodOptions {
  DivergenceMethod divergence = DivergenceMethod::automatic;
  int probes = 1;  // Hutchinson probes per point (averaged)
  ProbeDistribution probe_distribution = ProbeDistribution::rademacher;
  double rtol = 1e-5;  // dopri5 tolerances on [x; delta]
  double atol = 1e-5;
  std::optional<double> eps;                   // start time of the integration; default 1e-3 (vp, subvp) or 1e-5 (ve)
  OdeControl ode_control = OdeControl::chunk;  // one step-size controller per chunk, or per point
  Dequantization dequantization = Dequantization::none;
  std::uint64_t seed = 0;  // Hutchinson probes
  int threads = 1;
  Index chunk = 256;  // points per chunk

  double resolved_eps(const Sde& sde) const { return eps.value_or(sde.default_eps()); }
  // automatic -> exact or hutchinson; exact on a model with neither an exact divergence nor Jacobian-vector
  // products is a ConfigError.
  DivergenceMethod resolved_divergence(const ScoreModel& model) const;
  // Every value against its entry in likelihood_option_table() (the same checks as on the command line), then eps
  // in (0, T). ConfigError naming the option and what is allowed.
  void validate(const Sde& sde) const;
};

// The likelihood's options, described once (core/option_table.hpp): the command line of `likelihood`, its checks
// and the options its result file records (with eps and the divergence method as resolved).
const OptionTable<LikelihoodOptions>& likelihood_option_table();

// Mean negative log-likelihood and bits/dim over points, with standard errors of the mean
// (sample standard deviation / sqrt(n); 0 for a single point). bits/dim = NLL / (d ln 2) + offset.
struct NllSummary {
  Index n = 0, dim = 0;
  double mean_nll = 0, nll_se = 0;  // nats
  double bits_per_dim = 0, bits_per_dim_se = 0;
  double bits_per_dim_offset = 0;  // included in bits_per_dim
};
NllSummary summarize_nll(ConstVectorRef log_p, Index dim, double bits_per_dim_offset = 0);

struct LikelihoodResult {
  Vector log_p;             // per point: log p_eps(x), nats
  Vector prior_log_p;       // per point: log p_T(x_T) under the prior (or the terminal density given to
                            // replace_terminal_log_density)
  Vector delta;             // per point: int_eps^T div f~ dt   (log_p = prior_log_p + delta + log_jacobian)
  double log_jacobian = 0;  // model_log_likelihood: log |det d y / d x| = -sum_i log scale_i of the data
                            // scaling y = (x - mean) / scale; 0 for compute_log_likelihood
  Matrix latents;           // d x n: x_T, the end of each point's probability-flow path (model_log_likelihood: in
                            // the model's standardised units)
  Vector nfe;               // per point: right-hand-side evaluations of the ODE its solve took part in
  NllSummary summary;
  DivergenceMethod divergence = DivergenceMethod::exact;  // as resolved
  DivergenceEvaluation evaluation = DivergenceEvaluation::model_divergence;
  double eps = 0, T = 0;
  double wall_seconds = 0;
  long long score_calls = 0;    // batch calls to the model
  long long score_columns = 0;  // columns the model evaluated
  double nfe_mean() const { return nfe.size() ? nfe.mean() : 0.0; }
  double nfe_max() const { return nfe.size() ? nfe.maxCoeff() : 0.0; }
};

// Replaces the prior at T by another terminal log-density evaluated at r.latents, for example a mixture's
// exact log p_T (which makes log p_eps = log p_T(x_T) + delta an identity, up to the solver's error): log_p =
// terminal + delta + log_jacobian, and the summary is recomputed with the same bits/dim offset.
void replace_terminal_log_density(LikelihoodResult& r, ConstVectorRef terminal_log_p);

// Checks that points are d x n with d = dim and every value finite. ConfigError naming `what` (for example
// "--points = x.npy"), the point's index and the problem.
void check_points(ConstMatrixRef points, Index dim, const std::string& what);

// log p_eps of every column of `points` (d x n) under the model's probability-flow ODE. Throws ConfigError
// for invalid options or points, NumericalError naming the lowest-indexed point whose solve failed (a
// non-finite score, divergence or state, or dopri5 unable to meet the tolerances).
LikelihoodResult compute_log_likelihood(const ScoreModel& model, const Sde& sde, ConstMatrixRef points,
                                        const LikelihoodOptions& options, const ProgressFn& progress = {});

// log p_eps of points given in the data's original units, for a model trained on standardised data
// y = (x - mean) / scale (DataScaling, models/data_scaling.hpp). The model's density of x is that of y times the
// Jacobian of the affine map (change of variables):
//
//     log p_x(x) = log p_y((x - mean) / scale) - sum_i log scale_i.
//
// Runs compute_log_likelihood on the standardised points and adds r.log_jacobian = -sum_i log scale_i to every
// log_p; the summary (NLL, bits/dim) is of the corrected values, r.latents and r.delta stay in standardised units.
// With the identity scaling the result is bitwise that of compute_log_likelihood. ConfigError for invalid options
// or points (checked in original units, named "points"), or a scaling whose dimension is not the model's or whose
// scales are not positive and finite; NumericalError as for compute_log_likelihood.
LikelihoodResult model_log_likelihood(const ScoreModel& model, const Sde& sde, const DataScaling& scaling,
                                      ConstMatrixRef points, const LikelihoodOptions& options,
                                      const ProgressFn& progress = {});
// (For a checkpoint as stored, with its SDE and scaling: the overload in models/score_factory.hpp.)

}  // namespace scoresde
