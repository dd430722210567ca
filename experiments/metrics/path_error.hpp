// Pathwise error of a sampler: how far each output is from the solution that its own randomness defines. A run maps
// the latents x_T (the prior draws of its seed, or --init) and, for an SDE sampler, the Brownian path W of its seed to
// outputs x_i; the reference solution maps the same latents and the same path to x_ref_i with a far smaller
// discretisation error (docs/metrics.md, "path_error"):
//
//   kind path    probability-flow samplers: `ode` with any method, and every predictor whose probability_flow() is
//                true, alone or under pc with --corrector none. Reference: dopri5 at rtol = atol = 1e-10 from t_0 to
//                t_N (the run's grid ends) from the same latents, with the run's --denoise-to-zero and --chunk.
//   kind strong  SDE samplers: the other fixed-step predictors, alone or under pc with --corrector none, on
//                --noise brownian_tree. Reference: the same sampler and options on the run's grid with every step split
//                into 16 equal steps in t (refine_time_grid), on the same Brownian path. Under --denoise on the last
//                step is kept whole: the run's last step drops its noise over [t_N, t_{N-1}], and so does the
//                reference's, taken from the refined solution at t_{N-1}. The error is then the pathwise error at
//                t_{N-1} carried through the same noise-free step, and keeps the method's order; splitting that step
//                too would leave the Brownian increment over 15/16 of it in the error, an O(sqrt(h)) term whatever the
//                method.
//
// Not applicable: the Langevin correctors and pc configurations with one (their noise is not a Brownian path), SDE
// samplers under --noise independent (every grid draws its own increments, so no two grids share a path), and
// adaptive SDE solvers (no grid to refine).
//
//   path_error       sqrt(mean_i |x_i - x_ref_i|^2) over the n samples (RMS). SE: delta method on the mean of the
//                    e_i = |x_i - x_ref_i|^2, se = sd(e) / (sqrt(n) 2 path_error).
//   path_error_max   max_i |x_i - x_ref_i|. No standard error (an extreme value).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/option_table.hpp"
#include "core/sde.hpp"
#include "core/time_grid.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/score_model.hpp"
#include "solvers/driver.hpp"
#include "solvers/options.hpp"

namespace scoresde {

// The error a convergence measurement reports (experiments/metrics/convergence.hpp): the path error of a
// probability-flow sampler, the strong (pathwise) error of an SDE sampler, or the weak error (in law).
enum class ErrorKind { path, strong, weak };
template <>
struct EnumNames<ErrorKind> {
  static constexpr std::string_view what = "error kind";
  static constexpr std::array<std::pair<ErrorKind, std::string_view>, 3> values{
      {{ErrorKind::path, "path"}, {ErrorKind::strong, "strong"}, {ErrorKind::weak, "weak"}}};
};
std::string to_string(ErrorKind kind);

// The study metrics of this file, in order: path_error, path_error_max.
inline constexpr const char* path_error_metric = "path_error";
inline constexpr const char* path_error_max_metric = "path_error_max";
std::vector<std::string> path_metric_names();
bool is_path_metric(const std::string& name);

struct PathErrorSettings {
  int refine = 16;      // steps of the SDE reference per step of the run
  double rtol = 1e-10;  // dopri5's tolerances for the ODE reference
  double atol = 1e-10;
};

// Which reference a configuration's path error takes: ErrorKind::path (dopri5) or ErrorKind::strong (the refined
// sampler); nullopt when it does not apply, with the reason in `why_not` ("pc with --corrector langevin: ...").
std::optional<ErrorKind> path_error_kind(const SamplerOptions& run, std::string* why_not = nullptr);

// The reference in words, e.g. "dopri5, rtol = atol = 1e-10" or "the same sampler on its grid refined x16 (the last
// step whole: --denoise on), same Brownian path"; the reason for a configuration it does not apply to.
std::string describe_path_reference(const SamplerOptions& run, const PathErrorSettings& settings = {});

// The options of the ODE reference of a probability-flow run: dopri5 at the settings' tolerances between the run's
// grid ends, with its seed, --chunk, --denoise-to-zero and --threads; nothing else of the run.
SamplerOptions ode_reference_options(const SamplerOptions& run, const PathErrorSettings& settings = {});
// The grid the SDE reference walks: the run's grid refined (the last step whole under --denoise on).
TimeGrid sde_reference_grid(const Sde& sde, const SamplerOptions& run, int refine);

// Non-empty for a run whose reference other runs share: two runs of n samples with the same key (and the same
// latents and score) have the same reference, so a caller may compute it once. The ODE reference depends on the SDE,
// the grid's ends (not on a grid file's name), the seed, --chunk and --denoise-to-zero only; an SDE reference belongs
// to its run (empty key).
std::string shared_reference_key(const Sde& sde, const SamplerOptions& run, Index n,
                                 const PathErrorSettings& settings = {});

// The reference solution (d x n) for the run's n samples from `init` (or the prior draws of run.seed) and, for an SDE
// sampler, run.seed's Brownian path. ConfigError naming the reason when path_error_kind has none; NumericalError when
// the reference itself diverges.
Matrix path_reference(const Sde& sde, const ScoreModel& model, const SamplerOptions& run, Index n,
                      const Matrix* init = nullptr, const PathErrorSettings& settings = {});

struct PathErrors {
  MetricValue rms;  // path_error and its delta-method standard error
  double max = 0;   // path_error_max
};
// The path errors of samples against their reference (both d x n, column i against column i). InputError for
// shapes that differ or fewer than 2 samples.
PathErrors path_errors(ConstMatrixRef samples, ConstMatrixRef reference);

// A grid the driver can walk: written to a temporary float64 .npy file (its times read back to the bit) that lives as
// long as this object. The driver takes grids as --time-grid names or files, so any other grid (a refined one, the
// order tests' short-start grids) goes through such a file.
class GridFile {
 public:
  explicit GridFile(const TimeGrid& grid);
  ~GridFile();
  GridFile(const GridFile&) = delete;
  GridFile& operator=(const GridFile&) = delete;
  const std::string& path() const { return path_; }
  // options walk this grid: --time-grid names the file, steps and eps are the grid's.
  void apply(const Sde& sde, SamplerOptions& options) const;

 private:
  std::string path_;
};

// Runs `options` on `grid` through a GridFile.
SampleReport sample_on_grid(const Sde& sde, const ScoreModel& model, SamplerOptions options, const TimeGrid& grid,
                            Index n, const Matrix* init = nullptr);

}  // namespace scoresde
