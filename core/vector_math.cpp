// Compiled with -ffast-math (CMakeLists.txt) so that GCC maps exp, log, cos and sin to libmvec. Loops are
// kept to one function each: GCC would otherwise fuse cos and sin into one sincos call, which has no vector
// variant. Trip counts are the fixed block size and the arrays are local, so there is no scalar remainder or
// aliasing fallback. Nothing here tests for NaN or infinity: the callers' inputs are finite, and libmvec's
// own results are what they are without -ffast-math too.
#include "core/vector_math.hpp"

#include <math.h>

#include <algorithm>
#include <cfloat>
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

// One block of vector_block samples, transposed: xb[i * B + l] is coordinate i of lane l. D > 0 fixes the
// dimension at compile time (so the accumulators live in registers); D = 0 reads it from m.dim.
// Eight doubles as one value (GCC vector extension): one AVX-512 register, or two AVX2 ones, with the lane
// arithmetic written once.
using Lanes = double __attribute__((vector_size(vector_block * sizeof(double))));
static_assert(sizeof(Lanes) == vector_block * sizeof(double));
inline Lanes load(const double* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(double* p, Lanes v) {
  std::memcpy(p, &v, sizeof v);
}

template <int D>
void isotropic_score_block(const IsotropicMixtureAtTime& m, const double* __restrict xb, double* __restrict ob,
                           double* __restrict logits, double* __restrict acc_dynamic) {
  constexpr int B = vector_block;
  const Index d = D > 0 ? D : m.dim, K = m.components;
  const double* __restrict centres = m.centres;
  Lanes max_logit = load(xb) * 0.0 - DBL_MAX;
  for (Index k = 0; k < K; ++k) {
    Lanes q = {};
    for (Index i = 0; i < d; ++i) {
      const Lanes r = load(xb + i * B) - centres[k * d + i];
      q += r * r;
    }
    const Lanes v = m.log_norm[k] - (0.5 * m.inv_var[k]) * q;
    store(logits + k * B, v);
    max_logit = v > max_logit ? v : max_logit;
  }
  for (Index k = 0; k < K; ++k) {
    alignas(64) double e[B];
    store(e, load(logits + k * B) - max_logit);
    for (int l = 0; l < B; ++l) e[l] = exp(e[l]);  // libmvec
    std::memcpy(logits + k * B, e, sizeof e);
  }
  Lanes sum_e = {}, sum_e_inv_var = {};
  Lanes acc_fixed[D > 0 ? D : 1] = {};
  for (Index i = 0; D == 0 && i < d; ++i) store(acc_dynamic + i * B, Lanes{});
  for (Index k = 0; k < K; ++k) {
    const Lanes e = load(logits + k * B);
    const Lanes e_inv_var = e * m.inv_var[k];
    sum_e += e;
    sum_e_inv_var += e_inv_var;
    for (Index i = 0; i < d; ++i) {
      if constexpr (D > 0) {
        acc_fixed[i] += e_inv_var * centres[k * d + i];
      } else {
        store(acc_dynamic + i * B, load(acc_dynamic + i * B) + e_inv_var * centres[k * d + i]);
      }
    }
  }
  for (Index i = 0; i < d; ++i) {
    const Lanes acc = D > 0 ? acc_fixed[D > 0 ? i : 0] : load(acc_dynamic + i * B);
    store(ob + i * B, (acc - load(xb + i * B) * sum_e_inv_var) / sum_e);
  }
}

template <int D>
void isotropic_score(const IsotropicMixtureAtTime& m, const double* x, Index n, double* out) {
  constexpr int B = vector_block;
  const Index d = D > 0 ? D : m.dim;
  thread_local std::vector<double> scratch;
  scratch.resize(static_cast<std::size_t>((3 * d + m.components) * B));
  double* xb = scratch.data();
  double* ob = xb + d * B;
  double* acc = ob + d * B;
  double* logits = acc + d * B;
  for (Index j = 0; j < n; j += B) {
    const Index valid = std::min<Index>(B, n - j);
    // Lanes past the end repeat the block's first sample: every lane computes something finite.
    for (int l = 0; l < B; ++l) {
      const double* column = x + (j + (l < valid ? l : 0)) * d;
      for (Index i = 0; i < d; ++i) xb[i * B + l] = column[i];
    }
    isotropic_score_block<D>(m, xb, ob, logits, acc);
    for (Index l = 0; l < valid; ++l)
      for (Index i = 0; i < d; ++i) out[(j + l) * d + i] = ob[i * B + l];
  }
}

// Two dimensions, the common case, without the scalar transposes of the general path: a block of W samples is 2 W
// consecutive doubles (x y x y ...), deinterleaved by two shuffles and interleaved back the same way (a scalar
// transpose through memory followed by a vector load stalls on store forwarding). W is one register of doubles:
// 8 with AVX-512, 4 otherwise (an 8-wide GCC vector on AVX2 is kept on the stack and moved in 16-byte pieces,
// seven times the instructions of the arithmetic; docs/benchmarks.md). Every lane does the same arithmetic, so a
// sample's score does not depend on W or on its position. The logits of all components go through libmvec's exp
// in one loop of K * W lanes.
#if defined(__AVX512F__)
constexpr int lanes_2d = 8;
#else
constexpr int lanes_2d = 4;
#endif
using Lanes2d = double __attribute__((vector_size(lanes_2d * sizeof(double))));
inline Lanes2d load2d(const double* p) {
  Lanes2d v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store2d(double* p, Lanes2d v) {
  std::memcpy(p, &v, sizeof v);
}
#if defined(__AVX512F__)
inline Lanes2d even_lanes(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
}
inline Lanes2d odd_lanes(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
}
inline Lanes2d interleave_low(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
}
inline Lanes2d interleave_high(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
}
#else
inline Lanes2d even_lanes(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 0, 2, 4, 6);
}
inline Lanes2d odd_lanes(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 1, 3, 5, 7);
}
inline Lanes2d interleave_low(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 0, 4, 1, 5);
}
inline Lanes2d interleave_high(Lanes2d a, Lanes2d b) {
  return __builtin_shufflevector(a, b, 2, 6, 3, 7);
}
#endif

void isotropic_score_2d(const IsotropicMixtureAtTime& m, const double* x, Index n, double* out) {
  constexpr int B = lanes_2d;
  const Index K = m.components;
  thread_local std::vector<double> scratch;
  if (static_cast<Index>(scratch.size()) < 4 * K + K * B) scratch.resize(static_cast<std::size_t>(4 * K + K * B));
  // Per component: the centre's coordinates, 0.5 / c_k and 1 / c_k, then the block's logits.
  double* __restrict coef = scratch.data();
  double* __restrict logits = coef + 4 * K;
  for (Index k = 0; k < K; ++k) {
    coef[4 * k] = m.centres[2 * k];
    coef[4 * k + 1] = m.centres[2 * k + 1];
    coef[4 * k + 2] = 0.5 * m.inv_var[k];
    coef[4 * k + 3] = m.inv_var[k];
  }
  const auto block = [&](Lanes2d a, Lanes2d b, double* o) {
    const Lanes2d x0 = even_lanes(a, b), x1 = odd_lanes(a, b);
    Lanes2d max_logit = x0 * 0.0 - DBL_MAX;
    for (Index k = 0; k < K; ++k) {
      const Lanes2d r0 = x0 - coef[4 * k], r1 = x1 - coef[4 * k + 1];
      const Lanes2d v = m.log_norm[k] - coef[4 * k + 2] * (r0 * r0 + r1 * r1);
      store2d(logits + k * B, v);
      max_logit = v > max_logit ? v : max_logit;
    }
    for (Index k = 0; k < K; ++k) store2d(logits + k * B, load2d(logits + k * B) - max_logit);
    for (Index i = 0; i < K * B; ++i) logits[i] = exp(logits[i]);  // libmvec
    Lanes2d sum_e = {}, sum_e_inv_var = {}, acc0 = {}, acc1 = {};
    for (Index k = 0; k < K; ++k) {
      const Lanes2d e = load2d(logits + k * B);
      const Lanes2d e_inv_var = e * coef[4 * k + 3];
      sum_e += e;
      sum_e_inv_var += e_inv_var;
      acc0 += e_inv_var * coef[4 * k];
      acc1 += e_inv_var * coef[4 * k + 1];
    }
    const Lanes2d inv_sum = 1.0 / sum_e;
    const Lanes2d s0 = (acc0 - x0 * sum_e_inv_var) * inv_sum, s1 = (acc1 - x1 * sum_e_inv_var) * inv_sum;
    store2d(o, interleave_low(s0, s1));
    store2d(o + B, interleave_high(s0, s1));
  };
  Index j = 0;
  for (; j + B <= n; j += B) block(load2d(x + 2 * j), load2d(x + 2 * j + B), out + 2 * j);
  if (j == n) return;
  // The tail through a padded block whose lanes past the end repeat the block's first sample.
  alignas(64) double in[2 * B], res[2 * B];
  for (int l = 0; l < B; ++l) {
    const Index col = j + (j + l < n ? l : 0);
    in[2 * l] = x[2 * col];
    in[2 * l + 1] = x[2 * col + 1];
  }
  block(load2d(in), load2d(in + B), res);
  std::copy(res, res + 2 * (n - j), out + 2 * j);
}

}  // namespace

void isotropic_mixture_score(const IsotropicMixtureAtTime& mixture, const double* x, Index n, double* out) {
  switch (mixture.dim) {
    case 1:
      return isotropic_score<1>(mixture, x, n, out);
    case 2:
      return isotropic_score_2d(mixture, x, n, out);
    case 3:
      return isotropic_score<3>(mixture, x, n, out);
    default:
      return isotropic_score<0>(mixture, x, n, out);
  }
}

}  // namespace scoresde
