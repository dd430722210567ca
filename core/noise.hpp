// Counter-based noise. Every random number is a pure function of the seed and a counter (sample index, step,
// sub-step, purpose and position), computed with Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011) keyed by the 64-bit seed, and Box-Muller (core/vector_math.hpp). Counter words are 32 bits:
// sample indices, steps and sub-steps must stay below 2^32 (a ConfigError says so otherwise). Sample i therefore
// depends only on (seed, i, options): never on the number of samples, the chunk a sample falls in, or the number of
// threads. Samplers receive noise from a BrownianPath and a CounterRng; they never own a generator. See
// docs/reproducibility.md.
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
  // out = scale * normal_columns(first, b, c): the same values times scale, in one pass when out has two rows.
  void scaled_normal_columns(std::uint64_t first, std::uint64_t b, std::uint64_t c, double scale, MatrixRef out) const;

 private:
  void fill_normals(std::uint64_t first, std::uint64_t b, std::uint64_t c, Index cols, Index count, double* out,
                    Index stride) const;
  void fill_normal_pairs(std::uint64_t first, std::uint64_t b, std::uint64_t c, Index cols, double* out,
                         double scale) const;
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
//
// increment_and_area(k, t, t_next, dw, area) returns the whole step's increment (part 0) together with the
// space-time Levy area of the step, for methods of strong order 1.5 (sra). With h = t - t_next and
// B(s) = W(t) - W(t - s), s in [0, h], the Brownian motion the reverse SDE runs on (B(h) = dw),
//   area = H = (1/h) int_0^h (B(s) - (s/h) B(h)) ds  ~  N(0, h/12 I), independent of dw
// (diffrax's SpaceTimeLevyArea of B). Rossler's I_(1,0) = int_0^h B(s) ds is h (dw/2 + H). In terms of W:
// H = (W(t) + W(t_next))/2 - (1/h) int_{t_next}^t W(u) du, minus the space-time area of W over [t_next, t].
class BrownianPath {
 public:
  virtual ~BrownianPath() = default;
  virtual void increment(Index step, double t, double t_next, MatrixRef out, int part = 0) = 0;
  virtual void increment_and_area(Index step, double t, double t_next, MatrixRef dw, MatrixRef area) = 0;
};

// independent: increment k is sqrt(t - t_next) N(0, I) keyed by (sample, k): a fresh path for every grid; its
// area sqrt(h / 12) N(0, I) keyed by (sample, k, independent_area_substep), beside the same increment.
// brownian_tree: W(t) is evaluated on one virtual Brownian tree per sample over [0, T] (Brownian bridge
// refinement down to T / 2^depth, linear within a leaf), so every grid sees the same path and the increment over
// a coarse step equals the sum of the increments over its sub-steps. increment_and_area walks a second tree of the
// same sample that carries the space-time Levy area through its bridge refinement (docs/reproducibility.md): its
// (increment, area) over a coarse step is the exact combination of its sub-steps' pairs. That tree shares W(T)
// with the first but not W below it: refining a tree that carries the area draws each midpoint conditionally on
// the area, so it cannot keep the first tree's values (which increment() keeps unchanged).
// `stream` selects a family of trees: 0 is the one that --noise brownian_tree shares among samplers; an adaptive
// SDE method (ggf) under --noise independent runs on stream 1, a per-sample tree of its own.
std::unique_ptr<BrownianPath> make_brownian_path(NoiseKind kind, std::uint64_t seed, double T, Index first, Index dim,
                                                 Index cols, std::uint32_t stream = 0);

// The sub-step counter of the independent source's area normals (its increments use sub-step 0 and small parts).
inline constexpr std::uint64_t independent_area_substep = 0x80000000u;

// The tree's depth: leaves are T / 2^depth wide.
inline constexpr int brownian_tree_depth = 30;

}  // namespace scoresde
