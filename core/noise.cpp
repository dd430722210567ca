#include "core/noise.hpp"

#include <Random123/philox.h>
#include <fmt/format.h>
#include <immintrin.h>
#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "core/vector_math.hpp"

namespace scoresde {
namespace {

using Philox = r123::Philox4x32;
constexpr int philox_block = 16;
constexpr std::uint64_t max_counter = 0xFFFFFFFFull;

// Philox4x32-10 on a fixed block of counters that differ in their first and last words. Random123's generic
// round is vectorised by GCC with 64 x 64-bit multiplies (vpmullq), 2.4 times slower than the 32 x 32 ->
// 64-bit multiply the algorithm needs, so with AVX2 or AVX-512 the same rounds are written with that multiply
// (vpmuludq) and Random123's constants. Integer arithmetic: every path gives the same bits, and
// tests/test_noise.cpp checks them against Random123's own Philox4x32 and its published known answers.
#if defined(__AVX512F__) || defined(__AVX2__)
#if defined(__AVX512F__)
using Lanes = __m512i;
constexpr int lanes = 8;
inline Lanes widen(const std::uint32_t* p) {
  return _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline Lanes broadcast(std::uint64_t v) {
  return _mm512_set1_epi64(static_cast<long long>(v));
}
inline Lanes mul32(Lanes a, Lanes b) {
  return _mm512_mul_epu32(a, b);
}
inline Lanes xor3(Lanes a, Lanes b, Lanes c) {
  return _mm512_xor_si512(_mm512_xor_si512(a, b), c);
}
inline Lanes high32(Lanes a) {
  return _mm512_srli_epi64(a, 32);
}
inline Lanes low32(Lanes a) {
  return _mm512_and_si512(a, broadcast(0xFFFFFFFFu));
}
inline void store_words(std::uint64_t* out, Lanes hi, Lanes lo) {
  _mm512_storeu_si512(out, _mm512_or_si512(_mm512_slli_epi64(hi, 32), lo));
}
#else
using Lanes = __m256i;
constexpr int lanes = 4;
inline Lanes widen(const std::uint32_t* p) {
  return _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline Lanes broadcast(std::uint64_t v) {
  return _mm256_set1_epi64x(static_cast<long long>(v));
}
inline Lanes mul32(Lanes a, Lanes b) {
  return _mm256_mul_epu32(a, b);
}
inline Lanes xor3(Lanes a, Lanes b, Lanes c) {
  return _mm256_xor_si256(_mm256_xor_si256(a, b), c);
}
inline Lanes high32(Lanes a) {
  return _mm256_srli_epi64(a, 32);
}
inline Lanes low32(Lanes a) {
  return _mm256_and_si256(a, broadcast(0xFFFFFFFFu));
}
inline void store_words(std::uint64_t* out, Lanes hi, Lanes lo) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_or_si256(_mm256_slli_epi64(hi, 32), lo));
}
#endif

void philox_words(const Philox::key_type& key, const std::uint32_t* first, std::uint32_t b, std::uint32_t c,
                  const std::uint32_t* last, std::uint64_t* __restrict words_a, std::uint64_t* __restrict words_b) {
  static_assert(philox_block % lanes == 0);
  const Lanes m0 = broadcast(PHILOX_M4x32_0), m1 = broadcast(PHILOX_M4x32_1);
  for (int h = 0; h < philox_block; h += lanes) {
    // Each 64-bit lane holds one 32-bit word of one counter.
    Lanes x0 = widen(first + h), x1 = broadcast(b), x2 = broadcast(c), x3 = widen(last + h);
    std::uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
      const Lanes p0 = mul32(x0, m0), p1 = mul32(x2, m1);  // full 64-bit products: hi and lo words
      x0 = xor3(high32(p1), x1, broadcast(k0));
      x1 = low32(p1);
      x2 = xor3(high32(p0), x3, broadcast(k1));
      x3 = low32(p0);
      k0 += PHILOX_W32_0;
      k1 += PHILOX_W32_1;
    }
    store_words(words_a + h, x0, x1);
    store_words(words_b + h, x2, x3);
  }
}
#else
void philox_words(const Philox::key_type& key, const std::uint32_t* first, std::uint32_t b, std::uint32_t c,
                  const std::uint32_t* last, std::uint64_t* __restrict words_a, std::uint64_t* __restrict words_b) {
  Philox philox;
  for (int i = 0; i < philox_block; ++i) {
    const Philox::ctr_type ctr = {{first[i], b, c, last[i]}};
    const Philox::ctr_type r = philox(ctr, key);
    words_a[i] = (static_cast<std::uint64_t>(r[0]) << 32) | r[1];
    words_b[i] = (static_cast<std::uint64_t>(r[2]) << 32) | r[3];
  }
}
#endif

std::uint32_t narrow(std::uint64_t v, const char* what) {
  if (v > max_counter)
    throw ConfigError(fmt::format("noise counter: {} = {} exceeds 2^32 - 1, the largest the generator takes", what, v));
  return static_cast<std::uint32_t>(v);
}

}  // namespace

CounterRng::CounterRng(std::uint64_t seed, NoisePurpose purpose)
    : key_{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
      purpose_bits_(static_cast<std::uint32_t>(purpose) << 24) {}

void CounterRng::normals(std::uint64_t a, std::uint64_t b, std::uint64_t c, double* out, Index count) const {
  fill_normals(a, b, c, 1, count, out, count);
}

void CounterRng::uniforms(std::uint64_t a, std::uint64_t b, std::uint64_t c, double* out, Index count) const {
  const Philox::key_type key = {{key_[0], key_[1]}};
  Philox philox;
  for (Index q = 0; 2 * q < count; ++q) {
    const Philox::ctr_type ctr = {
        {narrow(a, "sample"), narrow(b, "step"), narrow(c, "sub-step"), purpose_bits_ | static_cast<std::uint32_t>(q)}};
    const Philox::ctr_type r = philox(ctr, key);
    const std::uint64_t w[2] = {(static_cast<std::uint64_t>(r[0]) << 32) | r[1],
                                (static_cast<std::uint64_t>(r[2]) << 32) | r[3]};
    // 53 random bits, mapped to (0, 1]: never 0, so the value may go into a logarithm.
    for (Index j = 0; j < 2 && 2 * q + j < count; ++j)
      out[2 * q + j] = (static_cast<double>(static_cast<std::int64_t>(w[j] >> 11)) + 1.0) * 0x1p-53;
  }
}

void CounterRng::normal_columns(std::uint64_t first, std::uint64_t b, std::uint64_t c, MatrixRef out) const {
  fill_normals(first, b, c, out.cols(), out.rows(), out.data(), out.outerStride());
}

// Normals 2p and 2p + 1 of counter (a, b, c) are Box-Muller pair p, made from the four words of the Philox
// block (a, b, c, purpose << 24 | p). All pairs of a request go through the vectorised kernels in fixed
// blocks.
void CounterRng::fill_normals(std::uint64_t first, std::uint64_t b, std::uint64_t c, Index cols, Index count,
                              double* out, Index stride) const {
  static_assert(philox_block % vector_block == 0);
  if (count == 2 && stride == 2) return fill_normal_pairs(first, b, c, cols, out, 1.0);
  thread_local std::vector<std::uint32_t> ctr_first, ctr_last;
  thread_local std::vector<std::uint64_t> words_a, words_b;
  thread_local std::vector<double> z0, z1;
  const Index pairs = (count + 1) / 2;
  if (pairs > (1 << 24)) throw ConfigError(fmt::format("noise: {} normals per counter exceed 2^25", count));
  if (cols > 0) narrow(first + static_cast<std::uint64_t>(cols - 1), "sample");  // the last index used
  const std::uint32_t b32 = narrow(b, "step"), c32 = narrow(c, "sub-step");
  const Index total = cols * pairs;
  const Index padded = (total + philox_block - 1) / philox_block * philox_block;
  if (static_cast<Index>(words_a.size()) < padded) {
    for (auto* v : {&ctr_first, &ctr_last}) v->resize(padded);
    for (auto* v : {&words_a, &words_b}) v->resize(padded);
    for (auto* v : {&z0, &z1}) v->resize(padded);
  }
  if (pairs == 1) {  // two dimensions, the commonest case: a flat loop the compiler vectorises
    for (Index i = 0; i < total; ++i) {
      ctr_first[i] = static_cast<std::uint32_t>(first + static_cast<std::uint64_t>(i));
      ctr_last[i] = purpose_bits_;
    }
  } else {
    for (Index j = 0, i = 0; j < cols; ++j)
      for (Index p = 0; p < pairs; ++p, ++i) {
        ctr_first[i] = static_cast<std::uint32_t>(first + static_cast<std::uint64_t>(j));
        ctr_last[i] = purpose_bits_ | static_cast<std::uint32_t>(p);
      }
  }
  for (Index i = total; i < padded; ++i) ctr_first[i] = ctr_last[i] = 0;
  const Philox::key_type key = {{key_[0], key_[1]}};
  for (Index i = 0; i < padded; i += philox_block)
    philox_words(key, ctr_first.data() + i, b32, c32, ctr_last.data() + i, words_a.data() + i, words_b.data() + i);
  for (Index i = 0; i < padded; i += vector_block)
    box_muller(words_a.data() + i, words_b.data() + i, z0.data() + i, z1.data() + i);
  if (count % 2 == 0 && stride == count) {
    // Contiguous columns of even length: the output is the pairs' values interleaved, one flat loop.
    for (Index i = 0; i < total; ++i) {
      out[2 * i] = z0[i];
      out[2 * i + 1] = z1[i];
    }
    return;
  }
  for (Index j = 0; j < cols; ++j) {
    double* col = out + j * stride;
    const double* c0 = z0.data() + j * pairs;
    const double* c1 = z1.data() + j * pairs;
    for (Index p = 0; p < count / 2; ++p) {
      col[2 * p] = c0[p];
      col[2 * p + 1] = c1[p];
    }
    if (count % 2) col[count - 1] = c0[pairs - 1];
  }
}

// Two normals per column (the common d = 2) written straight into the contiguous output, scaled: one pass per
// block of philox_block columns through registers and stack arrays, with no per-call buffers and no second pass
// for the interleaving or the scale. The values are those of the general path (the same Philox blocks and the same
// Box-Muller kernel), multiplied by `scale` afterwards.
void CounterRng::fill_normal_pairs(std::uint64_t first, std::uint64_t b, std::uint64_t c, Index cols, double* out,
                                   double scale) const {
  if (cols > 0) narrow(first + static_cast<std::uint64_t>(cols - 1), "sample");  // the last index used
  const std::uint32_t b32 = narrow(b, "step"), c32 = narrow(c, "sub-step");
  const Philox::key_type key = {{key_[0], key_[1]}};
  alignas(64) std::uint32_t ctr_first[philox_block], ctr_last[philox_block];
  alignas(64) std::uint64_t words_a[philox_block], words_b[philox_block];
  alignas(64) double z0[philox_block], z1[philox_block];
  for (int i = 0; i < philox_block; ++i) ctr_last[i] = purpose_bits_;
  for (Index j = 0; j < cols; j += philox_block) {
    const Index valid = std::min<Index>(philox_block, cols - j);
    // Counters past the last column are those of the next samples: computed and dropped.
    for (int i = 0; i < philox_block; ++i)
      ctr_first[i] = static_cast<std::uint32_t>(first + static_cast<std::uint64_t>(j + i));
    philox_words(key, ctr_first, b32, c32, ctr_last, words_a, words_b);
    for (int i = 0; i < philox_block; i += vector_block) box_muller(words_a + i, words_b + i, z0 + i, z1 + i);
    double* o = out + 2 * j;
    if (valid == philox_block) {
      for (int i = 0; i < philox_block; ++i) {
        o[2 * i] = z0[i] * scale;
        o[2 * i + 1] = z1[i] * scale;
      }
    } else {
      for (Index i = 0; i < valid; ++i) {
        o[2 * i] = z0[i] * scale;
        o[2 * i + 1] = z1[i] * scale;
      }
    }
  }
}

void CounterRng::scaled_normal_columns(std::uint64_t first, std::uint64_t b, std::uint64_t c, double scale,
                                       MatrixRef out) const {
  if (out.rows() == 2 && out.outerStride() == 2) return fill_normal_pairs(first, b, c, out.cols(), out.data(), scale);
  normal_columns(first, b, c, out);
  flat(out) *= scale;
}

std::string to_string(NoiseKind kind) {
  return std::string(enum_name(kind));
}
std::vector<std::string> noise_names() {
  return enum_names<NoiseKind>();
}
NoiseKind noise_kind_from_string(std::string_view name) {
  return enum_from_name<NoiseKind>(name, "noise");
}

namespace {

class IndependentPath final : public BrownianPath {
 public:
  IndependentPath(std::uint64_t seed, Index first) : rng_(seed, NoisePurpose::brownian), first_(first) {}
  void increment(Index step, double t, double t_next, MatrixRef out, int part) override {
    rng_.scaled_normal_columns(static_cast<std::uint64_t>(first_), static_cast<std::uint64_t>(step),
                               static_cast<std::uint64_t>(part), std::sqrt(t - t_next), out);
  }
  void increment_and_area(Index step, double t, double t_next, MatrixRef dw, MatrixRef area) override {
    increment(step, t, t_next, dw, 0);
    rng_.normal_columns(static_cast<std::uint64_t>(first_), static_cast<std::uint64_t>(step), independent_area_substep,
                        area);
    flat(area) *= std::sqrt((t - t_next) / 12.0);
  }

 private:
  CounterRng rng_;
  Index first_;
};

// The sub-step counters of one family (stream) of trees: stream 0 is the tree of --noise brownian_tree, whose
// counters 0 (W(T)) and 1 (midpoints) predate the others.
struct TreeKeys {
  explicit TreeKeys(std::uint32_t stream)
      : root_w(8ull * stream),
        midpoint_w(8ull * stream + 1),
        midpoint_wh(8ull * stream + 2),
        root_h(8ull * stream + 3) {}
  std::uint64_t root_w, midpoint_w, midpoint_wh, root_h;
};

// A virtual Brownian tree that carries the space-time Levy area (Foster, Lyons & Oberhauser, "The shifted ODE
// method for underdamped Langevin MCMC", 2021, and diffrax's VirtualBrownianTree with SpaceTimeLevyArea). Node
// [a, b], h = b - a, holds w = W(b) - W(a) and the forward-time area A = (1/h) int_a^b (W(u) - W(a) - (u - a) w / h)
// du ~ N(0, h/12). Its midpoint and its halves' areas given (w, A) (docs/reproducibility.md derives them):
//   W(m) - W(a) = w/2 + 3/2 A + sqrt(h)/4 Z1,
//   A_left = A/4 - sqrt(h)/8 Z1 + sqrt(h/48) Z2,   A_right = A/4 - sqrt(h)/8 Z1 - sqrt(h/48) Z2,
// with Z1, Z2 keyed by the node's heap number; W(T) is the first tree's, A(root) = sqrt(T/12) Z. The walk also
// carries I(a) = int_0^a W(u) du, so that a query returns W(t) and I(t) and a step's pair follows from its ends:
// sums over sub-steps telescope. Within a leaf the path is W(a) + u w + 6 A u (1 - u), u = (t - a)/h: the
// parabola with the leaf's increment and area.
class AreaTree {
 public:
  AreaTree(const CounterRng& rng, double T, Index first, Index dim, Index cols, TreeKeys keys)
      : rng_(rng),
        T_(T),
        first_(static_cast<std::uint64_t>(first)),
        keys_(keys),
        levels_(brownian_tree_depth + 1,
                Level{0, 0, 0, Matrix(dim, cols), Matrix(dim, cols), Matrix(dim, cols), Matrix(dim, cols)}),
        z_(2 * dim, cols),
        wm_(dim, cols),
        left_area_(dim, cols),
        cached_w_(dim, cols),
        cached_i_(dim, cols),
        next_w_(dim, cols),
        next_i_(dim, cols) {}

  void increment_and_area(double t, double t_next, MatrixRef dw, MatrixRef area) {
    if (t != cached_t_) evaluate(t, cached_w_, cached_i_);
    evaluate(t_next, next_w_, next_i_);
    const double h = t - t_next;
    flat(dw) = flat(cached_w_) - flat(next_w_);
    flat(area) = 0.5 * (flat(cached_w_) + flat(next_w_)) - (flat(cached_i_) - flat(next_i_)) / h;
    cached_w_.swap(next_w_);
    cached_i_.swap(next_i_);
    cached_t_ = t_next;
  }

 private:
  struct Level {
    double a, b;
    std::uint64_t node;
    Matrix wa, wb, area, ia;  // W(a), W(b), the node's area A, I(a)
  };

  void evaluate(double t, Matrix& w, Matrix& integral) {
    if (t <= 0.0) {
      w.setZero();
      integral.setZero();
      return;
    }
    int l = walked_ - 1;
    while (l > 0 && !(levels_[l].a <= t && t < levels_[l].b)) --l;
    if (l < 0) {
      Level& root = levels_[0];
      root.a = 0.0;
      root.b = T_;
      root.node = 1;
      root.wa.setZero();
      root.ia.setZero();
      rng_.normal_columns(first_, 1, keys_.root_w, root.wb);
      flat(root.wb) *= std::sqrt(T_);
      rng_.normal_columns(first_, 1, keys_.root_h, root.area);
      flat(root.area) *= std::sqrt(T_ / 12.0);
      l = 0;
    }
    const Index d = w.rows();
    for (; l < brownian_tree_depth && t < levels_[l].b && t != levels_[l].a; ++l) {
      const Level& up = levels_[l];
      Level& down = levels_[l + 1];
      const double h = up.b - up.a, mid = 0.5 * (up.a + up.b), rh = std::sqrt(h);
      rng_.normal_columns(first_, up.node, keys_.midpoint_wh, z_);
      const auto z1 = z_.topRows(d).array(), z2 = z_.bottomRows(d).array();
      const auto wa = up.wa.array(), wb = up.wb.array(), A = up.area.array();
      // W(m), then the half that holds t: its ends, its area and I at its left end.
      wm_.array() = 0.5 * (wa + wb) + 1.5 * A + (0.25 * rh) * z1;
      const auto wm = wm_.array();
      if (t < mid) {
        down.a = up.a;
        down.b = mid;
        down.node = 2 * up.node;
        down.area.array() = 0.25 * A - (0.125 * rh) * z1 + std::sqrt(h / 48.0) * z2;
        down.wa = up.wa;
        down.ia = up.ia;
        down.wb.array() = wm;
      } else {
        left_area_.array() = 0.25 * A - (0.125 * rh) * z1 + std::sqrt(h / 48.0) * z2;
        const auto left_area = left_area_.array();
        down.a = mid;
        down.b = up.b;
        down.node = 2 * up.node + 1;
        down.area.array() = 0.25 * A - (0.125 * rh) * z1 - std::sqrt(h / 48.0) * z2;
        down.ia.array() = up.ia.array() + (0.5 * h) * (0.5 * (wa + wm) + left_area);
        down.wb = up.wb;
        down.wa.array() = wm;
      }
    }
    walked_ = l + 1;
    const Level& leaf = levels_[l];
    const double h = leaf.b - leaf.a;
    if (t == leaf.a) {
      w = leaf.wa;
      integral = leaf.ia;
      return;
    }
    const double u = t >= leaf.b ? 1.0 : (t - leaf.a) / h;
    const auto wa = leaf.wa.array(), wb = leaf.wb.array(), A = leaf.area.array();
    const auto dw = wb - wa;
    w.array() = wa + u * dw + (6.0 * u * (1.0 - u)) * A;
    integral.array() =
        leaf.ia.array() + (h * u) * wa + (0.5 * h * u * u) * dw + (6.0 * h * u * u * (0.5 - u / 3.0)) * A;
  }

  const CounterRng& rng_;
  double T_;
  std::uint64_t first_;
  TreeKeys keys_;
  std::vector<Level> levels_;  // levels_[0, walked_) hold the last walk
  int walked_ = 0;
  Matrix z_;  // Z1 over Z2
  Matrix wm_, left_area_;
  double cached_t_ = -1.0;
  Matrix cached_w_, cached_i_, next_w_, next_i_;
};

// Virtual Brownian tree (Gaines & Lyons 1997; Li et al., "Scalable gradients for SDEs", AISTATS 2020, sec.
// 5): node (level l, index j) covers [j, j + 1] T / 2^l and draws the value at its midpoint from the Brownian
// bridge N((W_a + W_b) / 2, (b - a) / 4) with normals keyed by the node's heap number 2^l + j. W(T) ~ N(0,
// T). Every column of a chunk is queried at the same t, so the walk down the tree is the same for all of them
// and each level is one batched draw for the whole chunk.
class BrownianTreePath final : public BrownianPath {
 public:
  BrownianTreePath(std::uint64_t seed, double T, Index first, Index dim, Index cols, std::uint32_t stream)
      : rng_(seed, NoisePurpose::brownian),
        T_(T),
        first_(first),
        keys_(stream),
        levels_(brownian_tree_depth + 1, Level{0.0, 0.0, 0, Matrix(dim, cols), Matrix(dim, cols)}),
        z_(dim, cols),
        cached_t_(-1.0),
        cached_w_(dim, cols),
        next_w_(dim, cols) {}

  void increment(Index, double t, double t_next, MatrixRef out, int) override {
    // Grids are walked downwards, so W(t) is usually the W(t_next) of the previous step.
    if (t != cached_t_) evaluate(t, cached_w_);
    evaluate(t_next, next_w_);
    flat(out) = flat(cached_w_) - flat(next_w_);
    cached_w_.swap(next_w_);
    cached_t_ = t_next;
  }

  void increment_and_area(Index, double t, double t_next, MatrixRef dw, MatrixRef area) override {
    if (!area_) area_ = std::make_unique<AreaTree>(rng_, T_, first_, z_.rows(), z_.cols(), keys_);
    area_->increment_and_area(t, t_next, dw, area);
  }

 private:
  // The walk's state on entering depth l: the interval [a, b] and W at its ends, and the heap number of the
  // node whose midpoint splits it.
  struct Level {
    double a, b;
    std::uint64_t node;
    Matrix wa, wb;
  };

  void evaluate(double t, Matrix& w) {
    const auto first = static_cast<std::uint64_t>(first_);
    if (t <= 0.0) {
      w.setZero();
      return;
    }
    // Consecutive queries share the top of their walks (all the levels whose interval holds both times): the
    // walk resumes from the deepest level of the previous one whose interval holds t. Levels below the root
    // cover [a, b): the walk sends t = mid to the right.
    int l = walked_ - 1;
    while (l > 0 && !(levels_[l].a <= t && t < levels_[l].b)) --l;
    if (l < 0) {
      Level& root = levels_[0];
      root.a = 0.0;
      root.b = T_;
      root.node = 1;
      root.wa.setZero();
      rng_.normal_columns(first, 1, keys_.root_w, root.wb);
      flat(root.wb) *= std::sqrt(T_);
      l = 0;
    }
    for (; l < brownian_tree_depth && t < levels_[l].b && t != levels_[l].a; ++l) {
      const Level& up = levels_[l];
      Level& down = levels_[l + 1];
      const double mid = 0.5 * (up.a + up.b);
      rng_.normal_columns(first, up.node, keys_.midpoint_w, z_);
      // The bridge's midpoint replaces the end of the half that does not hold t.
      Matrix& mid_w = t < mid ? down.wb : down.wa;
      flat(mid_w) = 0.5 * (flat(up.wa) + flat(up.wb)) + std::sqrt(0.25 * (up.b - up.a)) * flat(z_);
      if (t < mid) {
        down.a = up.a;
        down.b = mid;
        down.wa = up.wa;
        down.node = 2 * up.node;
      } else {
        down.a = mid;
        down.b = up.b;
        down.wb = up.wb;
        down.node = 2 * up.node + 1;
      }
    }
    walked_ = l + 1;
    const Level& leaf = levels_[l];
    if (t >= leaf.b) {
      w = leaf.wb;
    } else if (t == leaf.a) {
      w = leaf.wa;
    } else {
      flat(w) = flat(leaf.wa) + ((t - leaf.a) / (leaf.b - leaf.a)) * (flat(leaf.wb) - flat(leaf.wa));  // linear
    }
  }

  CounterRng rng_;
  double T_;
  Index first_;
  TreeKeys keys_;
  std::unique_ptr<AreaTree> area_;  // made on the first increment_and_area
  std::vector<Level> levels_;       // levels_[0, walked_) hold the last walk
  int walked_ = 0;
  Matrix z_;
  double cached_t_;
  Matrix cached_w_, next_w_;
};

}  // namespace

std::unique_ptr<BrownianPath> make_brownian_path(NoiseKind kind, std::uint64_t seed, double T, Index first, Index dim,
                                                 Index cols, std::uint32_t stream) {
  if (kind == NoiseKind::independent) return std::make_unique<IndependentPath>(seed, first);
  return std::make_unique<BrownianTreePath>(seed, T, first, dim, cols, stream);
}

}  // namespace scoresde
