#include "experiments/metrics/path_error.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>

#include "core/errors.hpp"
#include "core/npy.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::string to_string(ErrorKind kind) {
  return std::string(enum_name(kind));
}

std::vector<std::string> path_metric_names() {
  return {path_error_metric, path_error_max_metric};
}

bool is_path_metric(const std::string& name) {
  return name == path_error_metric || name == path_error_max_metric;
}

std::optional<ErrorKind> path_error_kind(const SamplerOptions& run, std::string* why_not) {
  const auto refuse = [&](std::string why) -> std::optional<ErrorKind> {
    if (why_not) *why_not = std::move(why);
    return std::nullopt;
  };
  if (run.sampler == ode_sampler) return ErrorKind::path;
  if (run.resolved_corrector() != no_stepper)
    return refuse(
        fmt::format("pc with --corrector {}: the Langevin corrector's noise is not a Brownian path, so no "
                    "refinement of the run follows the same path",
                    run.resolved_corrector()));
  const auto predictor = make_predictor(run.resolved_predictor(), run);
  if (!predictor) return refuse("no predictor");
  if (predictor->probability_flow()) return ErrorKind::path;
  if (predictor->error_order() > 0)
    return refuse(fmt::format("{} is an adaptive SDE solver: it has no grid to refine", run.resolved_predictor()));
  if (run.noise != NoiseKind::brownian_tree)
    return refuse(
        fmt::format("--noise {}: every grid draws its own increments, so the run and a refined reference "
                    "share no Brownian path; use --noise brownian_tree",
                    to_string(run.noise)));
  return ErrorKind::strong;
}

std::string describe_path_reference(const SamplerOptions& run, const PathErrorSettings& settings) {
  std::string why;
  const auto kind = path_error_kind(run, &why);
  if (!kind) return "not applicable: " + why;
  if (*kind == ErrorKind::path)
    return fmt::format("dopri5, rtol = {:g}, atol = {:g}, from the same latents", settings.rtol, settings.atol);
  return fmt::format("the same sampler on its grid with every step split into {}{}, on the same Brownian path",
                     settings.refine, run.denoise ? " but the last (--denoise on: the same noise-free step)" : "");
}

SamplerOptions ode_reference_options(const SamplerOptions& run, const PathErrorSettings& settings) {
  SamplerOptions ref;
  ref.sampler = std::string(ode_sampler);
  ref.ode_method = "dopri5";
  ref.rtol = settings.rtol;
  ref.atol = settings.atol;
  ref.ode_control = OdeControl::chunk;
  ref.eps = run.eps;
  if (run.grid_from_file()) {  // dopri5 integrates between the file's first and last times
    ref.time_grid = run.time_grid;
    ref.steps = run.steps;
  }
  ref.denoise_to_zero = run.denoise_to_zero;
  ref.noise = run.noise;
  ref.seed = run.seed;
  ref.chunk = run.chunk;
  ref.threads = run.threads;
  return ref;
}

TimeGrid sde_reference_grid(const Sde& sde, const SamplerOptions& run, int refine) {
  return refine_time_grid(run.grid(sde), refine, run.denoise);
}

std::string shared_reference_key(const Sde& sde, const SamplerOptions& run, Index n,
                                 const PathErrorSettings& settings) {
  if (path_error_kind(run) != ErrorKind::path) return "";
  auto j = to_json(ode_reference_options(run, settings), sde);
  j.erase("threads");  // results do not depend on it
  // dopri5 reads only the grid's ends.
  for (const char* key : {"time-grid", "steps", "eps", "rho"}) j.erase(key);
  const auto ends = run.walked_times(sde);
  return fmt::format("{} {} t0={:a} tN={:a} n={}", to_json(sde.options()).dump(), j.dump(), ends.front(), ends.back(),
                     n);
}

GridFile::GridFile(const TimeGrid& grid) {
  static std::atomic<unsigned> counter{0};
  path_ =
      (std::filesystem::temp_directory_path() / fmt::format("scoresde-grid-{}-{}.npy", ::getpid(), counter++)).string();
  dump_vector_npy(path_, Eigen::Map<const Vector>(grid.t.data(), static_cast<Index>(grid.t.size())));
}

GridFile::~GridFile() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void GridFile::apply(const Sde& sde, SamplerOptions& options) const {
  options.time_grid = path_;
  options.eps.reset();
  options.adopt_grid_file(sde, false);
}

SampleReport sample_on_grid(const Sde& sde, const ScoreModel& model, SamplerOptions options, const TimeGrid& grid,
                            Index n, const Matrix* init) {
  const GridFile file(grid);
  file.apply(sde, options);
  return sample(sde, model, options, n, init);
}

Matrix path_reference(const Sde& sde, const ScoreModel& model, const SamplerOptions& run, Index n, const Matrix* init,
                      const PathErrorSettings& settings) {
  require(settings.refine >= 1, "refine", std::to_string(settings.refine), "must be >= 1");
  std::string why;
  const auto kind = path_error_kind(run, &why);
  if (!kind) throw ConfigError(fmt::format("path error: not applicable to --sampler {}: {}", run.sampler, why));
  if (*kind == ErrorKind::path) return sample(sde, model, ode_reference_options(run, settings), n, init).samples;
  return sample_on_grid(sde, model, run, sde_reference_grid(sde, run, settings.refine), n, init).samples;
}

PathErrors path_errors(ConstMatrixRef samples, ConstMatrixRef reference) {
  if (samples.rows() != reference.rows() || samples.cols() != reference.cols())
    throw InputError(fmt::format("path error: samples are {} x {} but the reference is {} x {}", samples.rows(),
                                 samples.cols(), reference.rows(), reference.cols()));
  const Index n = samples.cols();
  if (n < 2) throw InputError(fmt::format("path error: {} sample(s); at least 2 are needed", n));
  const Eigen::ArrayXd e = (samples - reference).colwise().squaredNorm().transpose().array();
  PathErrors r;
  const double m = e.mean();
  r.rms.value = std::sqrt(m);
  r.max = std::sqrt(e.maxCoeff());
  // Delta method: d sqrt(m) / dm = 1 / (2 sqrt(m)), with the standard error of the mean of the e_i.
  const double var = (e - m).square().sum() / static_cast<double>(n - 1);
  r.rms.std_error = m > 0 ? std::sqrt(var / static_cast<double>(n)) / (2.0 * r.rms.value) : 0.0;
  return r;
}

}  // namespace scoresde
