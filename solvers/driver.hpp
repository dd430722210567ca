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
  Matrix samples;  // d x n (empty from sample_blocks)
  Vector nfe;      // score evaluations each sample took part in (empty from sample_blocks)
  Index n = 0;
  // NFE summed and largest over the n samples, gathered block by block. NFEs are whole numbers, so the sum is exact
  // (below 2^53) and nfe_mean() does not depend on the order or blocking of the summation.
  double nfe_sum = 0, nfe_largest = 0;
  double wall_seconds = 0;
  long long score_calls = 0;    // batch calls to the model
  long long score_columns = 0;  // columns evaluated, chunk padding included
  double nfe_mean() const { return n ? nfe_sum / static_cast<double>(n) : 0.0; }
  double nfe_max() const { return nfe_largest; }
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

// Receives consecutive blocks of samples in index order, on the calling thread: `samples` (d x m) holds samples
// [first, first + m) and `nfe` the score evaluations each took part in. The sink may move from them.
using SampleSink = std::function<void(Index first, Matrix& samples, Vector& nfe)>;

// sample() in bounded memory, for output streamed to a file: the chunks are run a block of at least
// `block_samples` samples at a time (rounded up to whole chunks; 0 picks default_block_samples), and each finished
// block goes to `sink` before the next one starts. report.samples and report.nfe stay empty; the NFE summary, wall
// time and score counts cover all n samples. Every sample is bit for bit the one sample() returns, whatever the
// block, because chunks and their arithmetic are the same (only the set of chunks in flight at a time changes).
// On a failure, throws what sample() throws (the lowest-indexed failing sample) once the blocks before the failing
// one have gone to the sink; the caller discards what it wrote.
SampleReport sample_blocks(const Sde& sde, const ScoreModel& model, const SamplerOptions& options, Index n,
                           Index block_samples, const SampleSink& sink, const Matrix* init = nullptr,
                           Observer* observer = nullptr, const ProgressFn& progress = {});

// The default block of sample_blocks: about 8 MB of float64 samples of dimension d, and at least 8 chunks per thread
// so that the threads rarely wait for each other at the end of a block.
Index default_block_samples(Index d, const SamplerOptions& options);

}  // namespace scoresde
