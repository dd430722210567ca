#include "solvers/driver.hpp"

#include <fmt/format.h>
#include <omp.h>
#include <chrono>
#include <span>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "solvers/ode.hpp"
#include "solvers/registry.hpp"
#include "solvers/step_control.hpp"

namespace scoresde {

namespace {

struct ChunkFailure {
  Index sample;
  Index step;
  double time;
  std::string what;
};

// The tolerances of dopri5 under --ode-control batched.
struct BatchedTolerances {
  double atol, rtol;
};

// One chunk's run through the grid: the corrector and predictor of a fixed-step configuration at every step, or an
// adaptive method's trial steps under the step-size controller, or dopri5 with a controller per column
// (`batched`). `x` holds the chunk's states (all columns; the first `valid` are samples < n). Returns the failure of
// the lowest column whose state turned non-finite, if any.
class ChunkRun {
 public:
  ChunkRun(const Predictor* predictor, const Corrector* corrector, std::span<const double> grid, bool denoise,
           bool denoise_to_zero, Observer* observer, std::optional<BatchedTolerances> batched = std::nullopt)
      : predictor_(predictor),
        corrector_(corrector),
        grid_(grid),
        denoise_(denoise),
        denoise_to_zero_(denoise_to_zero),
        observer_(observer),
        batched_(batched) {}

  std::optional<ChunkFailure> run(StepContext& c, Matrix& x, Index valid) {
    std::optional<ChunkFailure> failure;
    if (batched_)
      failure = run_batched(c, x, valid);
    else if (!predictor_ || predictor_->error_order() == 0)
      failure = run_grid(c, x, valid);
    else if (predictor_->step_size_rule() == StepSizeRule::ggf)
      failure = run_adaptive(c, x, valid, GgfStepController(c.sde.T()));
    else
      failure = run_adaptive(
          c, x, valid, StepSizeController(static_cast<int>(predictor_->info().weak_order), predictor_->error_order()));
    if (failure || !denoise_to_zero_) return failure;
    // DPM-Solver's denoise_to_zero: the data prediction x0_hat = E[x_0 | x_{t_N}], one more evaluation.
    c.predict(Prediction::data, x, grid_.back(), c.score_buf);
    x = c.score_buf;
    return check(c, x, valid, static_cast<Index>(grid_.size()) - 1, grid_.back(),
                 [] { return std::string("the final x0 prediction (--denoise-to-zero)"); });
  }

  // Where the chunk was when an exception left run(): the step under way and its start time.
  Index step() const { return step_; }
  double time() const { return t_; }
  // Under --ode-control batched: the evaluations each column took part in (0 for the columns past `valid`).
  const Vector& column_nfe() const { return column_nfe_; }

 private:
  // Only the first `valid` columns are integrated: no column's result depends on another's, so the padding
  // columns are not needed.
  std::optional<ChunkFailure> run_batched(StepContext& c, Matrix& x, Index valid) {
    BatchedDopri5 dopri5(c.reverse, c.model(), batched_->atol, batched_->rtol, x.rows(), valid);
    column_nfe_.setZero(x.cols());
    auto f =
        dopri5.run(c.first_sample, grid_.front(), grid_.back(), x.leftCols(valid), column_nfe_.head(valid), observer_);
    if (!f) return std::nullopt;
    return ChunkFailure{f->sample, f->step, f->time, std::move(f->what)};
  }

  std::optional<ChunkFailure> run_grid(StepContext& c, Matrix& x, Index valid) {
    const std::unique_ptr<StepperState> state = predictor_ ? predictor_->make_state(x.rows(), x.cols()) : nullptr;
    const Index N = static_cast<Index>(grid_.size()) - 1;
    for (Index k = 0; k < N; ++k) {
      const StepPosition at{grid_, k, grid_[k], grid_[k + 1]};
      step_ = k;
      t_ = at.t;
      if (corrector_) corrector_->correct(c, x, k, at.t, at.t_next);
      if (predictor_) predictor_->step(c, state.get(), x, at, denoise_ && at.last());
      if (auto f = check(c, x, valid, k, at.t_next, [&] { return fmt::format("step {} of {}", k + 1, N); })) return f;
      if (observer_) observer_->on_step(c.first_sample, valid, k, at.t_next, x);
    }
    return std::nullopt;
  }

  template <class Control>
  std::optional<ChunkFailure> run_adaptive(StepContext& c, Matrix& x, Index valid, const Control& control) {
    const std::unique_ptr<StepperState> state = predictor_->make_state(x.rows(), x.cols());
    const double t_end = grid_.back();
    double t = grid_.front(), h = control.initial_step(t, t_end);
    Index k = 0;
    for (; StepSizeController::more_to_go(t, t_end); ++k) {
      step_ = k;
      t_ = t;
      h = StepSizeController::clamp(t, t_end, h);
      for (int rejections = 0;; ++rejections) {
        if (rejections == StepSizeController::max_rejections)
          throw NumericalError(
              fmt::format("{} rejected {} step sizes in a row at accepted step {} (t = {:.6g}, last step size {:.3g}): "
                          "the tolerances cannot be met there",
                          predictor_->info().name, rejections, k + 1, t, h),
              c.first_sample, k, t);
        const double error = *predictor_->step(c, state.get(), x, StepPosition{grid_, k, t, t + h}, false);
        if (control.accepts(error)) {
          t += h;
          h = control.after_accept(h, error);
          break;
        }
        predictor_->reject(state.get(), x);
        h = control.after_reject(h, error);
      }
      if (auto f = check(c, x, valid, k, t, [&] { return fmt::format("accepted step {}", k + 1); })) return f;
      if (observer_) observer_->on_step(c.first_sample, valid, k, t, x);
    }
    if (!denoise_) return std::nullopt;
    predictor_->finish(c, x, t_end);
    return check(c, x, valid, k, t_end, [] { return std::string("the final denoising step"); });
  }

  // `where` words the place for the message; it is called only on failure, so the step loop formats nothing.
  template <class Where>
  static std::optional<ChunkFailure> check(const StepContext& c, const Matrix& x, Index valid, Index k, double t,
                                           const Where& where) {
    const Index j = first_non_finite(x, valid);
    if (j < 0) return std::nullopt;
    return ChunkFailure{c.first_sample + j, k, t,
                        fmt::format("sample {} turned non-finite at {} (t = {:.6g})", c.first_sample + j, where(), t)};
  }

  const Predictor* predictor_;
  const Corrector* corrector_;
  std::span<const double> grid_;
  bool denoise_, denoise_to_zero_;
  Observer* observer_;
  std::optional<BatchedTolerances> batched_;
  Vector column_nfe_;
  Index step_ = -1;
  double t_ = 0;
};

// The loop behind sample() and sample_blocks(): the chunks of blocks of `block_chunks` chunks run in parallel, a
// block at a time; each finished block goes to `sink`.
SampleReport run_blocks(const Sde& sde, const ScoreModel& model, const SamplerOptions& options, Index n,
                        Index block_samples, const SampleSink& sink, const Matrix* init, Observer* observer,
                        const ProgressFn& progress, const BrownianPathFactory& paths) {
  options.validate(sde, init != nullptr);
  require(n >= 1, "-n", std::to_string(n), "must be >= 1");
  const Index d = model.dim();
  if (init && (init->rows() != d || init->cols() != n))
    throw ConfigError(fmt::format("--init: holds {} samples of dimension {}; expected {} of dimension {}", init->cols(),
                                  init->rows(), n, d));
  const auto start_time = std::chrono::steady_clock::now();
  const long long calls0 = model.calls(), columns0 = model.columns();

  std::unique_ptr<Predictor> predictor;
  std::unique_ptr<Corrector> corrector;
  if (options.sampler == ode_sampler) {
    predictor = find_ode_method(options.ode_method).make(options);
  } else {
    predictor = make_predictor(options.resolved_predictor(), options);
    corrector = make_corrector(options.resolved_corrector(), options);
  }
  // The one grid every fixed-step sampler walks; an adaptive method gets its ends. The Brownian tree spans [0, T]
  // whatever the grid, so that every grid sees the same path.
  const std::vector<double> grid = options.walked_times(sde);
  // Per-sample step-size control runs each sample as a chunk of its own: dopri5 with --ode-control sample, and ggf.
  const bool adaptive = is_adaptive(options);
  const bool per_sample =
      adaptive && (options.ode_control == OdeControl::sample || predictor->step_size_rule() == StepSizeRule::ggf);
  // dopri5 with per-sample control runs through BatchedDopri5 (solvers/ode.hpp): with --ode-control batched the
  // chunk's samples are stepped together, with sample each alone (a batch of one), the same arithmetic.
  const bool batched = adaptive && predictor->probability_flow() &&
                       (options.ode_control == OdeControl::batched || options.ode_control == OdeControl::sample);
  const std::optional<BatchedTolerances> batched_tolerances =
      batched ? std::optional(BatchedTolerances{options.resolved_atol(), options.resolved_rtol()}) : std::nullopt;
  // An adaptive SDE method retries rejected steps on the same path, so it always runs on a Brownian tree: under
  // --noise independent one of its own (stream 1), not the tree the samplers share under --noise brownian_tree.
  const bool own_tree = adaptive && !predictor->probability_flow() && options.noise == NoiseKind::independent;
  const NoiseKind noise = own_tree ? NoiseKind::brownian_tree : options.noise;
  const Index C = options.chunk;
  const Index chunks = (n + C - 1) / C;
  const bool probability_flow = predictor && predictor->probability_flow();

  SampleReport report;
  report.n = n;
  const CounterRng prior_rng(options.seed, NoisePurpose::prior);
  Index chunks_done = 0;
  const Index block_chunks = std::max<Index>(1, (block_samples + C - 1) / C);

  for (Index block_begin = 0; block_begin < chunks; block_begin += block_chunks) {
    const Index block_end = std::min(chunks, block_begin + block_chunks);
    const Index block_first = block_begin * C;
    const Index block_n = std::min(n, block_end * C) - block_first;
    Matrix block_samples_out(d, block_n);
    Vector block_nfe(block_n);
    std::vector<std::optional<ChunkFailure>> failures(static_cast<std::size_t>(block_end - block_begin));

#pragma omp parallel for schedule(dynamic, 1) num_threads(options.threads)
    for (Index chunk = block_begin; chunk < block_end; ++chunk) {
      const Index first = chunk * C;
      std::optional<ChunkFailure>& failure = failures[static_cast<std::size_t>(chunk - block_begin)];
      const Index valid = std::min(C, n - first);
    ChunkRun run(predictor.get(), corrector.get(), grid, options.denoise, options.denoise_to_zero, observer,
                 batched_tolerances);
      try {
        // Every chunk has C columns; those past n are the prior draws of samples >= n, computed and dropped.
        Matrix x(d, C);
        prior_rng.normal_columns(static_cast<std::uint64_t>(first), 0, 0, x);
        x *= sde.prior_std();
        if (init) x.leftCols(valid) = init->middleCols(first, valid);
        Vector nfe(C);
        const auto run_columns = [&](Index from, Index cols, MatrixRef states) -> std::optional<ChunkFailure> {
          auto brownian = paths ? paths(from, d, cols)
                                : make_brownian_path(noise, options.seed, sde.T(), from, d, cols, own_tree ? 1 : 0);
          StepContext context(sde, model, probability_flow, from, d, cols, *brownian, options.seed);
          Matrix xs = states;
          auto failure = run.run(context, xs, std::min(cols, n - from));
          states = xs;
          nfe.segment(from - first, cols).setConstant(static_cast<double>(context.nfe));
        if (batched) nfe.segment(from - first, cols) += run.column_nfe();
          return failure;
        };
        if (per_sample) {
          nfe.setZero();
          for (Index j = 0; j < valid && !failure; ++j) failure = run_columns(first + j, 1, x.col(j));
        } else {
          failure = run_columns(first, C, x);
        }
        block_samples_out.middleCols(first - block_first, valid) = x.leftCols(valid);
        block_nfe.segment(first - block_first, valid) = nfe.head(valid);
      } catch (const NumericalError& e) {
        failure = ChunkFailure{e.sample, e.step >= 0 ? e.step : run.step(), e.time, e.what()};
      } catch (const std::exception& e) {
        failure = ChunkFailure{first, run.step(), run.time(), e.what()};
      }
      if (progress) {
#pragma omp critical(scoresde_progress)
        progress(++chunks_done, chunks);
      }
    }

    // Report the failure of the lowest-indexed sample, so the message does not depend on thread timing. Blocks run in
    // index order, so a failure in this block is the lowest of the run.
    for (const auto& f : failures) {
      if (!f) continue;
      if (f->sample >= n)  // a padding column: its chunk could not finish, so the samples sharing it have no result
        throw NumericalError(
            f->what + fmt::format(" (sample {} is computed only to fill chunk {} of --chunk {} columns;"
                                  " its chunk-mates below -n {} have no result)",
                                  f->sample, f->sample / C, C, n),
            f->sample, f->step, f->time);
      throw NumericalError(f->what, f->sample, f->step, f->time);
    }
    report.nfe_sum += block_nfe.sum();
    report.nfe_largest = std::max(report.nfe_largest, block_nfe.maxCoeff());
    sink(block_first, block_samples_out, block_nfe);
  }
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  report.score_calls = model.calls() - calls0;
  report.score_columns = model.columns() - columns0;
  return report;
}

}  // namespace

SampleReport sample(const Sde& sde, const ScoreModel& model, const SamplerOptions& options, Index n, const Matrix* init,
                    Observer* observer, const ProgressFn& progress, const BrownianPathFactory& paths) {
  // One block of all n samples, moved into the report.
  SampleReport report;
  const auto keep = [&](Index, Matrix& samples, Vector& nfe) {
    report.samples = std::move(samples);
    report.nfe = std::move(nfe);
  };
  SampleReport summary =
      run_blocks(sde, model, options, n, std::max<Index>(n, 1), keep, init, observer, progress, paths);
  summary.samples = std::move(report.samples);
  summary.nfe = std::move(report.nfe);
  return summary;
}

SampleReport sample_blocks(const Sde& sde, const ScoreModel& model, const SamplerOptions& options, Index n,
                           Index block_samples, const SampleSink& sink, const Matrix* init, Observer* observer,
                           const ProgressFn& progress) {
  require(block_samples >= 0, "block", std::to_string(block_samples), "must be >= 0 (0: the default)");
  if (block_samples == 0) block_samples = default_block_samples(model.dim(), options);
  return run_blocks(sde, model, options, n, block_samples, sink, init, observer, progress, {});
}

Index default_block_samples(Index d, const SamplerOptions& options) {
  constexpr Index bytes = Index{8} << 20;
  return std::max(bytes / (static_cast<Index>(sizeof(double)) * std::max<Index>(d, 1)),
                  Index{8} * std::max(options.threads, 1) * std::max<Index>(options.chunk, 1));
}

}  // namespace scoresde
