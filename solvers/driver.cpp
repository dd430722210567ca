#include "solvers/driver.hpp"

#include <fmt/format.h>
#include <omp.h>
#include <chrono>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "solvers/ode.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace {

struct ChunkFailure {
  Index sample;
  Index step;
  double time;
  std::string what;
};

}  // namespace

SampleReport sample(const Sde& sde, const ScoreModel& model, const SamplerOptions& options, Index n,
                    const Matrix* init, Observer* observer, const ProgressFn& progress) {
  options.validate(sde, init != nullptr);
  require(n >= 1, "-n", std::to_string(n), "must be >= 1");
  const Index d = model.dim();
  if (init && (init->rows() != d || init->cols() != n))
    throw ConfigError(fmt::format("--init: holds {} samples of dimension {}; expected {} of dimension {}",
                                  init->cols(), init->rows(), n, d));
  const auto start_time = std::chrono::steady_clock::now();
  const long long calls0 = model.calls(), columns0 = model.columns();

  const bool is_ode = options.sampler == ode_sampler;
  const bool adaptive = is_adaptive(options);
  std::unique_ptr<Predictor> predictor;
  std::unique_ptr<Corrector> corrector;
  if (is_ode) {
    if (!adaptive) predictor = find_ode_method(options.ode_method).make(options);
  } else {
    predictor = make_predictor(options.resolved_predictor(), options);
    corrector = make_corrector(options.resolved_corrector(), options);
  }
  // The one grid every fixed-step sampler walks; dopri5 takes its ends. The Brownian tree spans [0, T] whatever the
  // grid, so that every grid sees the same path.
  const std::vector<double> grid = options.walked_times(sde);
  const double t0 = grid.front(), eps = grid.back();
  const int N = static_cast<int>(grid.size()) - 1;
  const Index C = options.chunk;
  const Index chunks = (n + C - 1) / C;
  const bool probability_flow = predictor && predictor->probability_flow();

  SampleReport report;
  report.samples.resize(d, n);
  report.nfe.resize(n);
  std::vector<std::optional<ChunkFailure>> failures(static_cast<std::size_t>(chunks));
  const CounterRng prior_rng(options.seed, NoisePurpose::prior);
  Index chunks_done = 0;

#pragma omp parallel for schedule(dynamic, 1) num_threads(options.threads)
  for (Index chunk = 0; chunk < chunks; ++chunk) {
    const Index first = chunk * C;
    const Index valid = std::min(C, n - first);
    Index step = -1;
    double t = t0;
    try {
      // Every chunk has C columns; those past n are the prior draws of samples >= n, computed and dropped.
      Matrix x(d, C);
      prior_rng.normal_columns(static_cast<std::uint64_t>(first), 0, 0, x);
      x *= sde.prior_std();
      if (init) x.leftCols(valid) = init->middleCols(first, valid);
      Vector nfe(C);
      if (adaptive) {
        integrate_adaptive_chunk(sde, model, options, first, valid, t0, eps, x, nfe, observer);
      } else {
        auto brownian = make_brownian_path(options.noise, options.seed, sde.T(), first, d, C);
        StepContext context(sde, model, probability_flow, first, d, C, *brownian, options.seed);
        if (predictor) context.scratch = predictor->make_scratch(d, C);
        for (step = 0; step < N; ++step) {
          t = grid[step];
          const double t_next = grid[step + 1];
          if (corrector) corrector->correct(context, x, step, t, t_next);
          if (predictor) predictor->step(context, x, step, t, t_next, options.denoise && step == N - 1);
          if (Index j = first_non_finite(x, valid); j >= 0) {
            failures[chunk] =
                ChunkFailure{first + j, step, t_next,
                             fmt::format("sample {} turned non-finite at step {} of {} (t = {:.6g})",
                                         first + j, step + 1, N, t_next)};
            break;
          }
          if (observer) observer->on_step(first, valid, step, t_next, x);
        }
        nfe.setConstant(static_cast<double>(context.nfe));
      }
      report.samples.middleCols(first, valid) = x.leftCols(valid);
      report.nfe.segment(first, valid) = nfe.head(valid);
    } catch (const NumericalError& e) {
      failures[chunk] = ChunkFailure{e.sample, e.step, e.time, e.what()};
    } catch (const std::exception& e) {
      failures[chunk] = ChunkFailure{first, step, t, e.what()};
    }
    if (progress) {
#pragma omp critical(scoresde_progress)
      progress(++chunks_done, chunks);
    }
  }

  // Report the failure of the lowest-indexed sample, so the message does not depend on thread timing.
  for (const auto& f : failures) {
    if (!f) continue;
    if (f->sample >=
        n)  // a padding column: its chunk could not finish, so the samples sharing it have no result
      throw NumericalError(
          f->what + fmt::format(" (sample {} is computed only to fill chunk {} of --chunk {} columns;"
                                " its chunk-mates below -n {} have no result)",
                                f->sample, f->sample / C, C, n),
          f->sample, f->step, f->time);
    throw NumericalError(f->what, f->sample, f->step, f->time);
  }
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  report.score_calls = model.calls() - calls0;
  report.score_columns = model.columns() - columns0;
  return report;
}

}  // namespace scoresde
