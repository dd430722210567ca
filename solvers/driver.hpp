// The one driver loop (in the manner of diffrax's diffeqsolve). It splits the samples into fixed chunks of
// `chunk` consecutive indices, runs each chunk through the whole time grid on one thread, counts score
// evaluations, stops a chunk with a report (sample, step, time) when its state turns non-finite, and lets an
// observer record trajectories. A sample's result depends only on (seed, index, options): chunks are aligned to
// sample indices and always full (columns past n are real samples of higher index, computed and dropped), so the
// arithmetic a sample sees is the same for any n and any thread count. docs/reproducibility.md has the details.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/noise.hpp"
#include "core/sde.hpp"
#include "models/score_model.hpp"
#include "solvers/options.hpp"

namespace scoresde {

// Called after every step of every chunk with the chunk's state (all chunk columns; the first `valid` are
// samples < n), the index of the step just taken (0, 1, ...) and the time reached. Called from worker threads when
// threads > 1: implementations must be thread-safe. Adaptive ODE methods (dopri5) call it after every accepted
// step, at the time that step reached (the last one at eps, up to rounding); with --ode-control sample each sample has
// its own steps and the call has that sample alone (first_sample = its index, valid = 1, x its column).
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_step(Index first_sample, Index valid, Index step, double t, ConstMatrixRef x) = 0;
};

struct SampleReport {
  Matrix samples;  // d x n
  Vector nfe;      // score evaluations each sample took part in
  double wall_seconds = 0;
  long long score_calls = 0;    // batch calls to the model
  long long score_columns = 0;  // columns evaluated, chunk padding included
  double nfe_mean() const { return nfe.size() ? nfe.mean() : 0.0; }
  double nfe_max() const { return nfe.size() ? nfe.maxCoeff() : 0.0; }
};

// Called as chunks finish, with the number finished and the total; from worker threads, one call at a time.
using ProgressFn = std::function<void(Index chunks_done, Index chunks_total)>;

// Makes the Brownian path of the chunk of columns [first, first + cols) in dimension dim. By default the driver makes
// make_brownian_path(options.noise, options.seed, T, first, dim, cols); a caller may drive the sampler with paths of
// its own (solvers/gaussian_law.cpp: probe paths). Called from worker threads when threads > 1.
using BrownianPathFactory = std::function<std::unique_ptr<BrownianPath>(Index first, Index dim, Index cols)>;

// Draws n samples on the time grid of `options` (SamplerOptions::grid: t_0 = T > ... > t_N = eps, built once;
// dopri5 integrates from t_0 to t_N with its own steps). `init`, when given, is d x n and replaces the prior draws
// (at t_0, which a --time-grid FILE may put below T). Throws ConfigError for invalid options, NumericalError for the
// lowest-indexed sample whose state turned non-finite. `paths`, when given, replaces the Brownian paths of --noise.
SampleReport sample(const Sde& sde, const ScoreModel& model, const SamplerOptions& options, Index n,
                    const Matrix* init = nullptr, Observer* observer = nullptr, const ProgressFn& progress = {},
                    const BrownianPathFactory& paths = {});

}  // namespace scoresde
