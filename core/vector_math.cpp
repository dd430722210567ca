// Compiled with -ffast-math (CMakeLists.txt) so that GCC maps exp, log, cos and sin to libmvec. Loops are kept to
// one function each: GCC would otherwise fuse cos and sin into one sincos call, which has no vector variant. Trip
// counts are the fixed block size and the arrays are local, so there is no scalar remainder or aliasing fallback.
// Nothing here tests for NaN or infinity: the callers' inputs are finite, and libmvec's own results are what
// they are without -ffast-math too.
#include "core/vector_math.hpp"

#include <math.h>

#include <algorithm>

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

}  // namespace scoresde
