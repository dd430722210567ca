// Counter-based noise. Every random number is a pure function of the seed and a counter (sample index, step,
// sub-step, purpose and position), computed with Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011) keyed by the 64-bit seed, and Box-Muller (core/vector_math.hpp). Counter words are 32 bits:
// sample indices, steps and sub-steps must stay below 2^32 (a ConfigError says so otherwise). Sample i therefore depends only on (seed, i, options): never on the
// number of samples, the chunk a sample falls in, or the number of threads. Samplers receive noise from a
// BrownianPath and a CounterRng; they never own a generator. See docs/reproducibility.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/option_table.hpp"
#include "core/types.hpp"

namespace scoresde {

// Independent streams for independent uses of randomness under one seed.
enum class NoisePurpose : std::uint64_t {
  prior = 1,      // x_T ~ prior
  brownian = 2,   // increments of the reverse-time Brownian motion
  corrector = 3,  // Langevin corrector noise
  data = 4,       // exact samples from p_0
  probe = 5,      // Hutchinson probes
  metric = 6,     // random projections and resampling in metrics
  weights = 7,    // score-network initial weights and Fourier frequencies
  training = 8,   // minibatch indices, times and noise of training; the held-out split
};

class CounterRng {
 public:
  CounterRng(std::uint64_t seed, NoisePurpose purpose);
  // Standard normals for counter (a, b, c): out[j] comes from Philox block j / 2, so the first m values do not
  // depend on how many are asked for.
  void normals(std::uint64_t a, std::uint64_t b, std::uint64_t c, double* out, Index count) const;
  // Uniforms in (0, 1], 53 random bits each; out[j] comes from Philox block j / 2.
  void uniforms(std::uint64_t a, std::uint64_t b, std::uint64_t c, double* out, Index count) const;
  // Column j of out (d x m) holds normals(first + j, b, c).
  void normal_columns(std::uint64_t first, std::uint64_t b, std::uint64_t c, MatrixRef out) const;

 private:
  void fill_normals(std::uint64_t first, std::uint64_t b, std::uint64_t c, Index cols, Index count, double* out,
                    Index stride) const;
  std::uint32_t key_[2];
  std::uint32_t purpose_bits_;
};

enum class NoiseKind { independent, brownian_tree };
template <>
struct EnumNames<NoiseKind> {
  static constexpr std::string_view what = "noise source";
  static constexpr std::array<std::pair<NoiseKind, std::string_view>, 2> values{
      {{NoiseKind::independent, "independent"}, {NoiseKind::brownian_tree, "brownian_tree"}}};
};
std::string to_string(NoiseKind kind);
NoiseKind noise_kind_from_string(std::string_view name);  // ConfigError naming --noise
std::vector<std::string> noise_names();

// The Brownian motion driving the reverse-time SDE for the columns [first, first + cols) of one chunk.
// increment(k, t, t_next) returns W(t) - W(t_next) for the k-th step of a grid running from T down to eps. A sampler
// that splits its step (a stage at an intermediate time) asks for each sub-interval with its own `part` (1, 2, ...;
// 0 is the whole step): independent noise then draws a fresh normal per part, and the tree evaluates W at the times
// asked for, whatever the part.
class BrownianPath {
 public:
  virtual ~BrownianPath() = default;
  virtual void increment(Index step, double t, double t_next, MatrixRef out, int part = 0) = 0;
};

// independent: increment k is sqrt(t - t_next) N(0, I) keyed by (sample, k): a fresh path for every grid.
// brownian_tree: W(t) is evaluated on one virtual Brownian tree per sample over [0, T] (Brownian bridge
// refinement down to T / 2^depth, linear within a leaf), so every grid sees the same path and the increment over
// a coarse step equals the sum of the increments over its sub-steps.
std::unique_ptr<BrownianPath> make_brownian_path(NoiseKind kind, std::uint64_t seed, double T, Index first,
                                                 Index dim, Index cols);

// The tree's depth: leaves are T / 2^depth wide.
inline constexpr int brownian_tree_depth = 30;

}  // namespace scoresde
