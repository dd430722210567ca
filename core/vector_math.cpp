// Compiled with -ffast-math (CMakeLists.txt) so that GCC maps exp, log, cos and sin to libmvec. Loops are
// kept to one function each: GCC would otherwise fuse cos and sin into one sincos call, which has no vector
// variant. Trip counts are the fixed block size and the arrays are local, so there is no scalar remainder or
// aliasing fallback. Nothing here tests for NaN or infinity: the callers' inputs are finite, and libmvec's
// own results are what they are without -ffast-math too.
#include "core/vector_math.hpp"

#include <math.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

namespace scoresde {

namespace {

void exp_block(double* x) {
  alignas(64) double in[vector_block], out[vector_block];
  for (int i = 0; i < vector_block; ++i) in[i] = x[i];
  for (int i = 0; i < vector_block; ++i) out[i] = exp(in[i]);
  for (int i = 0; i < vector_block; ++i) x[i] = out[i];
}

}  // namespace

void box_muller(const std::uint64_t* a, const std::uint64_t* b, double* z0, double* z1) {
  constexpr double two_pi = 6.283185307179586476925286766559;
  constexpr double scale = 1.0 / 9007199254740992.0;  // 2^-53
  alignas(64) double u1[vector_block], angle[vector_block], radius[vector_block];
  alignas(64) double c[vector_block], s[vector_block];
  for (int i = 0; i < vector_block; ++i) {
    u1[i] = (static_cast<double>(static_cast<std::int64_t>(a[i] >> 11)) + 0.5) * scale;
    angle[i] = two_pi * (static_cast<double>(static_cast<std::int64_t>(b[i] >> 11)) * scale);
  }
  for (int i = 0; i < vector_block; ++i) radius[i] = sqrt(-2.0 * log(u1[i]));
  for (int i = 0; i < vector_block; ++i) c[i] = cos(angle[i]);
  for (int i = 0; i < vector_block; ++i) s[i] = sin(angle[i]);
  for (int i = 0; i < vector_block; ++i) {
    z0[i] = radius[i] * c[i];
    z1[i] = radius[i] * s[i];
  }
}

void sqrt_in_place(double* x, Index n) {
  // -ffast-math (this file) drops errno, which lets the loop use vsqrtpd; GCC forms no reciprocal estimate for
  // doubles without -mrecip.
  for (Index i = 0; i < n; ++i) x[i] = std::sqrt(x[i]);
}

void exp_in_place(double* x, Index n) {
  Index i = 0;
  for (; i + vector_block <= n; i += vector_block) exp_block(x + i);
  if (i == n) return;
  alignas(64) double tail[vector_block] = {};
  std::copy(x + i, x + n, tail);
  exp_block(tail);
  std::copy(tail, tail + (n - i), x + i);
}

namespace {

// One register of doubles: 8 lanes with AVX-512, 4 otherwise (an 8-wide GCC vector on AVX2 is kept on the stack and
// moved in 16-byte pieces, seven times the instructions of the arithmetic; docs/benchmarks.md). A GCC vector type, so
// that the lane arithmetic is written once.
#if defined(__AVX512F__)
constexpr int lanes = 8;
#else
constexpr int lanes = 4;
#endif
using Lanes = double __attribute__((vector_size(lanes * sizeof(double))));
inline Lanes load(const double* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(double* p, Lanes v) {
  std::memcpy(p, &v, sizeof v);
}
inline Lanes broadcast(double v) {
  return Lanes{} + v;
}

#if defined(__AVX512F__)
inline Lanes even_lanes(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
}
inline Lanes odd_lanes(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
}
inline Lanes interleave_low(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
}
inline Lanes interleave_high(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
}
#else
inline Lanes even_lanes(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 0, 2, 4, 6);
}
inline Lanes odd_lanes(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 1, 3, 5, 7);
}
inline Lanes interleave_low(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 0, 4, 1, 5);
}
inline Lanes interleave_high(Lanes a, Lanes b) {
  return __builtin_shufflevector(a, b, 2, 6, 3, 7);
}
#endif

// libmvec on one register: a fixed trip count over a local array, so GCC emits whole vector calls and no scalar
// remainder (a lane in a scalar remainder would round differently from its neighbours).
inline Lanes exp_lanes(Lanes v) {
  alignas(64) double a[lanes];
  store(a, v);
  for (int l = 0; l < lanes; ++l) a[l] = exp(a[l]);
  return load(a);
}
inline Lanes log_lanes(Lanes v) {
  alignas(64) double a[lanes];
  store(a, v);
  for (int l = 0; l < lanes; ++l) a[l] = log(a[l]);
  return load(a);
}

// Makes the compiler store what is to be stored and read back from memory what is loaded after this point: around
// the libmvec calls, which clobber every vector register, this keeps it from holding values in registers across them
// (each spilled and reloaded around every call) when memory operands would do.
inline void memory_barrier() {
  asm volatile("" ::: "memory");
}

// A partial sum, opaque to the compiler: -ffast-math would otherwise regroup the unrolled sums over components into
// trees (a mul, a multiply-add and an add where one multiply-add does), so the sums of score_block are taken in
// component order, as in the loops over a run-time number of components.
// Without AVX a register does not hold four doubles, and the sums are left to the compiler.
inline Lanes in_order(Lanes v) {
#if defined(__AVX__)
  asm("" : "+x"(v));
#endif
  return v;
}

// A block's per-lane coefficients: coef[0 .. lanes) = alpha; for component k, at coef + (1 + 3 k) lanes:
// 1 / (2 c_k), 1 / c_k and the normaliser log w_k - (dim / 2) log(2 pi c_k), one per lane. Components with the
// variance of an earlier one (same_as[k] < k: eight_gaussians has one variance for all eight) copy its c_k terms
// instead of recomputing the same values. Kept out of line, so that the one-time and per-column callers run this very
// code and fill every lane alike.
[[gnu::noinline]] void block_coefficients(const IsotropicMixture& m, const Index* same_as, const double* alpha,
                                          const double* sigma, double* __restrict coef, double* __restrict log_c) {
  constexpr double log_2pi = 1.8378770664093454835606594728112;
  const double half_dim = 0.5 * static_cast<double>(m.dim);
  const Lanes a = load(alpha), s = load(sigma);
  const Lanes a2 = a * a, s2 = s * s;
  store(coef, a);
  for (Index k = 0; k < m.components; ++k) {
    double* ck = coef + (1 + 3 * k) * lanes;
    Lanes log_ck;
    if (same_as[k] < k) {
      // Whole registers, loaded as they were stored (a byte copy of a just-stored register stalls store forwarding).
      const double* cj = coef + (1 + 3 * same_as[k]) * lanes;
      store(ck, load(cj));
      store(ck + lanes, load(cj + lanes));
      log_ck = load(log_c + same_as[k] * lanes);
    } else {
      const Lanes c = a2 * m.variances[k] + s2;
      const Lanes inv_c = 1.0 / c;
      store(ck, 0.5 * inv_c);
      store(ck + lanes, inv_c);
      log_ck = log_lanes(c);
    }
    store(log_c + k * lanes, log_ck);
    store(ck + 2 * lanes, (m.log_weights[k] - half_dim * log_2pi) - half_dim * log_ck);
  }
}

// block_coefficients for a mixture whose components share one variance lambda (the affine logits of score_block):
// only alpha and component 0's 1 / (2 c) and 1 / c, c = alpha^2 lambda + sigma^2, which are the same for every
// component. The normalisers log w_k - (d / 2) log(2 pi c) differ from log w_k by a term common to all components,
// which cancels in the softmax: isotropic_score stores log w_k once, and no logarithm is taken per block.
inline void block_coefficients_one_variance(const IsotropicMixture& m, const double* alpha, const double* sigma,
                                            double* __restrict coef) {
  const Lanes a = load(alpha), s = load(sigma);
  const Lanes c = (a * a) * m.variances[0] + s * s;
  const Lanes inv_c = 1.0 / c;
  store(coef, a);
  store(coef + lanes, 0.5 * inv_c);
  store(coef + 2 * lanes, inv_c);
}

// The range guard of the affine logits: v in the lanes whose |x|^2 is below 1e300 (|x| < 1e150), NaN in the others.
// The quadratic form's |x - alpha mu_k|^2 overflows to infinity for |x| beyond about 1.3e154 and makes the score NaN,
// which is how a diverging sampler is caught; the affine form stays finite far beyond, so the guard makes the score
// NaN itself. The NaN is built from the comparison's bits: -ffast-math lets the compiler assume that no arithmetic
// result is NaN or infinite, and a test or constant it could see through might be folded away.
using LaneBits = std::int64_t __attribute__((vector_size(lanes * sizeof(double))));
template <int D>
inline Lanes out_of_range_to_nan(const double* __restrict xb, Lanes v) {
  Lanes x_sq = {};
  for (int i = 0; i < D; ++i) x_sq += load(xb + i * lanes) * load(xb + i * lanes);
  const LaneBits beyond = x_sq >= broadcast(1e300);
  const LaneBits quiet_nan = LaneBits{} + 0x7ff8000000000000LL;
  // An integer OR, not an addition of NaN: under -ffast-math clang takes v + NaN for v and drops it.
  return __builtin_bit_cast(Lanes, __builtin_bit_cast(LaneBits, v) | (beyond & quiet_nan));
}

// The score of one block of `lanes` samples: xb holds coordinate i of lane l at xb[i * lanes + l], ob likewise.
// mu_lanes holds mean coordinate mu_k[i] broadcast to a register at (k * d + i) * lanes. D > 0 fixes the dimension
// at compile time (the accumulators then live in registers); D = 0 reads it from m.dim and accumulates in acc_dynamic
// (dim * lanes). KC > 0 fixes the number of components at compile time: the loops over components are unrolled and
// the logits stay in registers until their maximum is known; KC = 0 reads it from m.components. logits:
// components * lanes.
//
// Three passes over the components: the logits and their maximum, the exponentials, the sums. The exponentials are
// libmvec calls, which clobber every vector register, so they run back to back over the stored logits with nothing
// else live across them; interleaving them with the sums would spill and reload the sums around every call.
template <int D, int KC, bool Affine>
inline void score_block(const IsotropicMixture& m, const double* __restrict coef, const double* __restrict mu_lanes,
                        const double* __restrict mu_sq, const double* __restrict xb, double* __restrict ob,
                        double* __restrict logits, double* __restrict acc_dynamic) {
  const Index d = D > 0 ? D : m.dim, K = KC > 0 ? KC : m.components;
  const Lanes alpha = load(coef);
  // With one variance for all components (Affine, D > 0; mu_sq holds |mu_k|^2 broadcast per component), the logits
  // in affine form: -|x|^2 / (2 c) and -(d / 2) log(2 pi c) are common to all and cancel in the softmax, leaving
  //     l_k = log w_k - alpha^2 |mu_k|^2 / (2 c) + (alpha / c) x . mu_k,
  // a multiply-add per component and coordinate and one more per component, where the quadratic form
  //     l_k = normaliser_k - |x - alpha mu_k|^2 / (2 c_k)
  // takes two instructions per component and coordinate and two more (and on AVX2 a register copy per coordinate).
  // The affine form stays finite where the quadratic one overflows; out_of_range_to_nan restores the NaN there.
  constexpr bool affine = D > 0 && Affine;
  Lanes y[D > 0 ? D : 1] = {}, h_alpha_sq = {};
  if constexpr (affine) {
    const Lanes h = load(coef + lanes), h_alpha = h * alpha;  // 1 / (2 c) alpha
    h_alpha_sq = h_alpha * alpha;
    for (Index i = 0; i < (D > 0 ? D : 0); ++i) y[i] = load(xb + i * lanes) * (h_alpha + h_alpha);
  }
  const auto logit = [&](Index k) {
    const double* ck = coef + (1 + 3 * k) * lanes;
    const double* muk = mu_lanes + k * d * lanes;
    if constexpr (affine) {
      Lanes v = in_order(load(ck + 2 * lanes) - h_alpha_sq * load(mu_sq + k * lanes));
      for (Index i = 0; i < (D > 0 ? D : 0); ++i) v = in_order(v + y[i] * load(muk + i * lanes));
      return v;
    }
    Lanes q = {};
    for (Index i = 0; i < d; ++i) {
      const Lanes r = load(xb + i * lanes) - alpha * load(muk + i * lanes);
      q += r * r;
    }
    return load(ck + 2 * lanes) - load(ck) * q;
  };
  Lanes max_logit = broadcast(-DBL_MAX);
  if constexpr (KC > 0) {
    Lanes l[KC];
#pragma GCC unroll 16
    for (int k = 0; k < KC; ++k) {
      l[k] = logit(k);
      max_logit = l[k] > max_logit ? l[k] : max_logit;
    }
    if constexpr (affine) max_logit = out_of_range_to_nan<D>(xb, max_logit);
#pragma GCC unroll 16
    for (int k = 0; k < KC; ++k) store(logits + k * lanes, l[k] - max_logit);
  } else {
    for (Index k = 0; k < K; ++k) {
      const Lanes v = logit(k);
      store(logits + k * lanes, v);
      max_logit = v > max_logit ? v : max_logit;
    }
    if constexpr (affine) max_logit = out_of_range_to_nan<D>(xb, max_logit);
    for (Index k = 0; k < K; ++k) store(logits + k * lanes, load(logits + k * lanes) - max_logit);
  }
  memory_barrier();
#pragma GCC unroll 16
  for (Index k = 0; k < K; ++k) store(logits + k * lanes, exp_lanes(load(logits + k * lanes)));
  memory_barrier();
  Lanes sum_e = {}, sum_e_inv_c = {};
  Lanes acc_fixed[D > 0 ? D : 1] = {};
  if constexpr (affine) {
    // One 1 / c for all components: it leaves the sums, score = (1 / c) (alpha sum_k e_k mu_k / sum_k e_k - x).
#pragma GCC unroll 16
    for (Index k = 0; k < K; ++k) {
      const Lanes e = load(logits + k * lanes);
      const double* muk = mu_lanes + k * d * lanes;
      sum_e = in_order(sum_e + e);
      for (Index i = 0; i < (D > 0 ? D : 0); ++i) acc_fixed[i] = in_order(acc_fixed[i] + e * load(muk + i * lanes));
    }
    const Lanes alpha_over_sum = alpha / sum_e, inv_c = load(coef + 2 * lanes);
    for (Index i = 0; i < (D > 0 ? D : 0); ++i)
      store(ob + i * lanes, (alpha_over_sum * acc_fixed[i] - load(xb + i * lanes)) * inv_c);
    return;
  }
  for (Index i = 0; D == 0 && i < d; ++i) store(acc_dynamic + i * lanes, Lanes{});
#pragma GCC unroll 16
  for (Index k = 0; k < K; ++k) {
    const Lanes e = load(logits + k * lanes);
    const Lanes e_inv_c = e * load(coef + (2 + 3 * k) * lanes);
    const double* muk = mu_lanes + k * d * lanes;
    sum_e = in_order(sum_e + e);
    sum_e_inv_c = in_order(sum_e_inv_c + e_inv_c);
    for (Index i = 0; i < d; ++i) {
      if constexpr (D > 0) {
        acc_fixed[i] = in_order(acc_fixed[i] + e_inv_c * load(muk + i * lanes));
      } else {
        store(acc_dynamic + i * lanes, load(acc_dynamic + i * lanes) + e_inv_c * load(muk + i * lanes));
      }
    }
  }
  const Lanes inv_sum = 1.0 / sum_e;
  for (Index i = 0; i < d; ++i) {
    const Lanes acc = D > 0 ? acc_fixed[D > 0 ? i : 0] : load(acc_dynamic + i * lanes);
    store(ob + i * lanes, (alpha * acc - load(xb + i * lanes) * sum_e_inv_c) * inv_sum);
  }
}

// Both forms of isotropic_mixture_score: one_time reads alpha[0] and sigma[0] only. Lanes past the end of the
// columns repeat the block's first column and its time, so that every lane computes something finite. Two
// dimensions, the common case, skip the scalar transposes: a block is 2 lanes consecutive doubles (x y x y ...),
// deinterleaved by two shuffles and interleaved back the same way (a scalar transpose through memory followed by a
// vector load stalls on store forwarding). KC as in score_block: m.components when > 0.
template <int D, int KC>
void isotropic_score(const IsotropicMixture& m, bool one_time, const double* alpha, const double* sigma,
                     const double* x, Index n, double* out) {
  const Index d = D > 0 ? D : m.dim, K = KC > 0 ? KC : m.components;
  thread_local std::vector<double> scratch;
  thread_local std::vector<Index> same_as;
  const auto size = static_cast<std::size_t>((4 + 6 * K + 3 * d + K * d) * lanes);
  if (scratch.size() < size) scratch.resize(size);
  // The first component with each component's variance (a quadratic search, for mixtures of up to 64 components).
  same_as.resize(static_cast<std::size_t>(K));
  for (Index k = 0; k < K; ++k) {
    same_as[k] = k;
    for (Index j = 0; K <= 64 && j < k; ++j)
      if (m.variances[j] == m.variances[k]) {
        same_as[k] = j;
        break;
      }
  }
  double* coef = scratch.data();
  double* xb = coef + (1 + 3 * K) * lanes;
  double* ob = xb + d * lanes;
  double* acc = ob + d * lanes;
  double* logits = acc + d * lanes;
  double* lane_alpha = logits + K * lanes;
  double* lane_sigma = lane_alpha + lanes;
  double* log_c = lane_sigma + lanes;
  double* mu_lanes = log_c + K * lanes;
  for (Index e = 0; e < K * d; ++e) store(mu_lanes + e * lanes, broadcast(m.means[e]));
  // One variance for all components: the affine logits of score_block, with |mu_k|^2 per component.
  const bool one_variance = std::all_of(same_as.begin(), same_as.end(), [](Index j) { return j == 0; });
  double* mu_sq = nullptr;
  if (D > 0 && one_variance) {
    mu_sq = mu_lanes + K * d * lanes;
    for (Index k = 0; k < K; ++k) {
      double sq = 0;
      for (Index i = 0; i < d; ++i) sq += m.means[k * d + i] * m.means[k * d + i];
      store(mu_sq + k * lanes, broadcast(sq));
    }
  }
  // The coefficients of a block of lanes (alpha and sigma: one per lane).
  const auto coefficients = [&](const double* lane_alpha, const double* lane_sigma) {
    if (mu_sq)
      block_coefficients_one_variance(m, lane_alpha, lane_sigma, coef);
    else
      block_coefficients(m, same_as.data(), lane_alpha, lane_sigma, coef, log_c);
  };
  if (mu_sq)
    for (Index k = 0; k < K; ++k) store(coef + (3 + 3 * k) * lanes, broadcast(m.log_weights[k]));
  if (one_time) {
    std::fill(lane_alpha, lane_alpha + lanes, alpha[0]);
    std::fill(lane_sigma, lane_sigma + lanes, sigma[0]);
    coefficients(lane_alpha, lane_sigma);
  }
  // The blocks, with the affine logits compiled in or not: one loop each, so that neither form's loads are hoisted
  // into the other's, inlined, so that the captured pointers stay in registers across the memory barriers.
  const auto blocks = [&]<bool Affine>() __attribute__((always_inline)) {
    for (Index j = 0; j < n; j += lanes) {
      const Index valid = std::min<Index>(lanes, n - j);
      if (!one_time && valid == lanes) {
        coefficients(alpha + j, sigma + j);
      } else if (!one_time) {
        for (int l = 0; l < lanes; ++l) {
          const Index column = j + (l < valid ? l : 0);
          lane_alpha[l] = alpha[column];
          lane_sigma[l] = sigma[column];
        }
        coefficients(lane_alpha, lane_sigma);
      }
      if constexpr (D == 2) {
        alignas(64) double in[2 * lanes], res[2 * lanes];
        const double* block = x + 2 * j;
        if (valid < lanes) {
          for (int l = 0; l < lanes; ++l) {
            const Index column = j + (l < valid ? l : 0);
            in[2 * l] = x[2 * column];
            in[2 * l + 1] = x[2 * column + 1];
          }
          block = in;
        }
        const Lanes a = load(block), b = load(block + lanes);
        store(xb, even_lanes(a, b));
        store(xb + lanes, odd_lanes(a, b));
        score_block<2, KC, Affine>(m, coef, mu_lanes, mu_sq, xb, ob, logits, acc);
        const Lanes s0 = load(ob), s1 = load(ob + lanes);
        double* o = valid < lanes ? res : out + 2 * j;
        store(o, interleave_low(s0, s1));
        store(o + lanes, interleave_high(s0, s1));
        if (valid < lanes) std::copy(res, res + 2 * valid, out + 2 * j);
      } else {
        for (int l = 0; l < lanes; ++l) {
          const double* column = x + (j + (l < valid ? l : 0)) * d;
          for (Index i = 0; i < d; ++i) xb[i * lanes + l] = column[i];
        }
        score_block<D, KC, Affine>(m, coef, mu_lanes, mu_sq, xb, ob, logits, acc);
        for (Index l = 0; l < valid; ++l)
          for (Index i = 0; i < d; ++i) out[(j + l) * d + i] = ob[i * lanes + l];
      }
    }
  };
  if (mu_sq)
    blocks.template operator()<true>();
  else
    blocks.template operator()<false>();
}

// Two-dimensional mixtures of up to 8 components (eight_gaussians among them) run with the number of components
// fixed at compile time; every other shape through the general loops. The choice depends on the mixture alone, so
// every sample of a mixture takes the same path.
template <int KC>
void isotropic_score_2d(const IsotropicMixture& m, bool one_time, const double* alpha, const double* sigma,
                        const double* x, Index n, double* out) {
  if constexpr (KC == 0) {
    return isotropic_score<2, 0>(m, one_time, alpha, sigma, x, n, out);
  } else {
    if (m.components == KC) return isotropic_score<2, KC>(m, one_time, alpha, sigma, x, n, out);
    return isotropic_score_2d<KC - 1>(m, one_time, alpha, sigma, x, n, out);
  }
}

void isotropic_score_dispatch(const IsotropicMixture& m, bool one_time, const double* alpha, const double* sigma,
                              const double* x, Index n, double* out) {
  switch (m.dim) {
    case 1:
      return isotropic_score<1, 0>(m, one_time, alpha, sigma, x, n, out);
    case 2:
      return isotropic_score_2d<8>(m, one_time, alpha, sigma, x, n, out);
    case 3:
      return isotropic_score<3, 0>(m, one_time, alpha, sigma, x, n, out);
    default:
      return isotropic_score<0, 0>(m, one_time, alpha, sigma, x, n, out);
  }
}

void alpha_block(const double* log_alpha, double* alpha, double* one_minus_alpha_sq) {
  alignas(64) double a[vector_block], b[vector_block];
  for (int i = 0; i < vector_block; ++i) a[i] = log_alpha[i];
  for (int i = 0; i < vector_block; ++i) b[i] = 2.0 * a[i];
  for (int i = 0; i < vector_block; ++i) a[i] = exp(a[i]);
  for (int i = 0; i < vector_block; ++i) b[i] = -expm1(b[i]);
  for (int i = 0; i < vector_block; ++i) {
    alpha[i] = a[i];
    one_minus_alpha_sq[i] = b[i];
  }
}

}  // namespace

void isotropic_mixture_score(const IsotropicMixture& mixture, double alpha, double sigma, const double* x, Index n,
                             double* out) {
  isotropic_score_dispatch(mixture, true, &alpha, &sigma, x, n, out);
}

void isotropic_mixture_score(const IsotropicMixture& mixture, const double* alpha, const double* sigma, const double* x,
                             Index n, double* out) {
  isotropic_score_dispatch(mixture, false, alpha, sigma, x, n, out);
}

void alpha_and_one_minus_alpha_sq(const double* log_alpha, Index n, double* alpha, double* one_minus_alpha_sq) {
  Index i = 0;
  for (; i + vector_block <= n; i += vector_block) alpha_block(log_alpha + i, alpha + i, one_minus_alpha_sq + i);
  if (i == n) return;
  alignas(64) double in[vector_block] = {}, a[vector_block], b[vector_block];
  std::copy(log_alpha + i, log_alpha + n, in);
  alpha_block(in, a, b);
  std::copy(a, a + (n - i), alpha + i);
  std::copy(b, b + (n - i), one_minus_alpha_sq + i);
}

}  // namespace scoresde
