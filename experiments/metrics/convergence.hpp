// Measured convergence orders (docs/cli.md, "scoresde convergence"; the generic order tests use the same code).
// Each sampler configuration runs at the step counts N_1 < ... < N_m from the same latents and, for an SDE sampler,
// on the same Brownian path; at each N its error is measured, and the order is the least-squares slope of
// log(error) against log(1/N):
//
//   path    probability-flow samplers: the RMS path error against dopri5 at rtol = atol = 1e-10 from the same
//           latents (experiments/metrics/path_error.hpp), one reference for every N;
//   strong  SDE samplers: the RMS path error against the same sampler on the N-step grid refined x16, on the same
//           Brownian path (a reference per N: |x_N - x_16N| = (1 - 16^-p) |x_N - x| to leading order, the same slope);
//   weak    W2 (not squared) between the exact output law of the configuration and the exact law at t_N, where a
//           function for it is given (ConvergenceSettings::weak_error; Gaussian data only).
//
// The fit is ordinary least squares of y_j = log e_j on x_j = log N_j: slope b = S_xy / S_xx, and its standard error
// from the regression's residuals, se(b) = sqrt(sum_j r_j^2 / (m - 2) / S_xx). measured_order = -b. The standard
// error measures how far the points are from a straight line (pre-asymptotic curvature, error floors), not
// sampling noise alone. On a single Gaussian a method may super-converge (some error terms vanish for an affine
// score): the slope is reported as measured, never clipped to the declared order.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/sde.hpp"
#include "core/time_grid.hpp"
#include "experiments/metrics/path_error.hpp"
#include "models/score_model.hpp"
#include "solvers/options.hpp"

namespace scoresde {

// One sampler configuration to measure: its options (steps and time grid are set per point) and a label, such as
// "dpm_solver order 3 multistep" (convergence_case words it as the study's run labels).
struct ConvergenceCase {
  std::string label;
  SamplerOptions options;
};
ConvergenceCase convergence_case(const SamplerOptions& options);

struct ConvergenceSettings {
  std::vector<int> steps{10, 20, 40, 80, 160};  // N_1 < N_2 < ... (at least 3)
  Index samples = 1000;
  PathErrorSettings path;
  // The grid of N steps for a case, in place of its named --time-grid.
  std::function<TimeGrid(const SamplerOptions& options, int steps)> grid;
  // Each grid's first step cut into three short ones (short_start_grid): the multistep methods' lower-order warm-up
  // steps then cost O(h^4) locally, and their declared order shows (docs/samplers.md, "Orders").
  bool short_start = false;
  // The exact terminal states (d x n) of the probability-flow ODE from the latents (d x n), in place of dopri5 (the
  // closed-form Gaussian flow map in the tests).
  std::function<Matrix(const SamplerOptions& options, const Matrix& latents)> ode_reference;
  // The hook for the exact law on Gaussian data: W2 (not squared) between the exact output law of `options` (steps
  // set) and the exact law at its t_N, or nullopt where the exact law does not apply. A configuration gets a weak
  // row when this is set and gives a value at every N.
  std::function<std::optional<double>(const SamplerOptions& options)> weak_error;
  // Called before each run: the case's label and the step count.
  std::function<void(const std::string& label, int steps)> progress;

  // ConfigError naming --steps (fewer than 3, not increasing, not positive), -n (< 2) or --refine (< 1).
  void validate() const;
};

struct ErrorPoint {
  int steps = 0;
  double nfe = 0;        // mean score evaluations per sample of the run
  MetricValue error;     // path: RMS path error with its SE; weak: the W2 (SE 0: exact)
  double error_max = 0;  // path and strong: max over samples; weak: the W2
};

struct OrderFit {
  double order = 0;     // -slope of log(error) against log(N)
  double order_se = 0;  // the slope's standard error (NaN with 2 points)
};
// Least squares of log(error) on log(steps); ConfigError for fewer than 2 points, a step count or error <= 0.
OrderFit fit_order(const std::vector<double>& steps, const std::vector<double>& errors);

struct ConvergenceResult {
  std::string sampler, label;
  ErrorKind kind = ErrorKind::path;
  double declared_order = 0;  // StepperInfo: strong_order for path and strong, weak_order for weak
  OrderFit measured;
  std::string reference;  // what the errors are measured against, in words
  std::vector<ErrorPoint> points;
};

// The grid with its first step [t_0, t_1] cut into three steps of d = min(dl^2, dl / 4) in log-SNR and the rest,
// dl = lambda(t_1) - lambda(t_0) the first step's log-SNR length: lambda(t_0) + d, + 2d, + 3d, then t_1, t_2, ...
// The multistep methods start, as their authors' code does, with steps of order 1, 2, ...; on an ordinary grid the
// first step's local error O(h^2) caps their global order at 2. Steps of O(h^2) make those local errors O(h^4), and
// every method shows its own order (for dl < 1/4 the cut is dl^2, the order tests' grid).
TimeGrid short_start_grid(const Sde& sde, const TimeGrid& grid);

// The latents the driver draws for samples 0 .. n - 1 of `seed` (prior_std times Philox normals): what every run
// of the measurement starts from.
Matrix prior_latents(const Sde& sde, std::uint64_t seed, Index dim, Index n);

// Every case at every step count: one result per case and applicable kind (path or strong; weak when the hook gives
// values), in the order of `cases`. ConfigError naming --sampler (and why) for a case to which no error applies: a
// Langevin corrector, an SDE sampler under --noise independent, an adaptive method (no step count).
std::vector<ConvergenceResult> measure_convergence(const Sde& sde, const ScoreModel& model,
                                                   const std::vector<ConvergenceCase>& cases,
                                                   const ConvergenceSettings& settings);

// DIR/orders.csv: sampler,label,kind,declared_order,measured_order,slope_se, one line per result.
std::string orders_csv(const std::vector<ConvergenceResult>& results);
// DIR/errors.csv: sampler,label,kind,steps,nfe,error,error_se,error_max, one line per result and step count.
std::string errors_csv(const std::vector<ConvergenceResult>& results);

}  // namespace scoresde
