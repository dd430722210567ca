// Compiled with -ffast-math (CMakeLists.txt) so that GCC maps log, cos and sin to glibc's vector math library
// (libmvec, < 4 ulp). The three are kept in separate loops: GCC would otherwise fuse cos and sin into one sincos
// call, which has no vector variant. The trip count is the fixed block size and the arrays are local, so there is
// no scalar remainder or aliasing fallback: every pair goes through the same vector code. Nothing here tests for
// NaN or infinity (u1 > 0 always).
#include "core/box_muller.hpp"

#include <math.h>

namespace scoresde {

void box_muller(const std::uint64_t* a, const std::uint64_t* b, double* z0, double* z1) {
  constexpr double two_pi = 6.283185307179586476925286766559;
  constexpr double scale = 1.0 / 9007199254740992.0;  // 2^-53
  alignas(64) double u1[box_muller_block], angle[box_muller_block], radius[box_muller_block];
  alignas(64) double c[box_muller_block], s[box_muller_block];
  for (int i = 0; i < box_muller_block; ++i) {
    u1[i] = (static_cast<double>(static_cast<std::int64_t>(a[i] >> 11)) + 0.5) * scale;
    angle[i] = two_pi * (static_cast<double>(static_cast<std::int64_t>(b[i] >> 11)) * scale);
  }
  for (int i = 0; i < box_muller_block; ++i) radius[i] = sqrt(-2.0 * log(u1[i]));
  for (int i = 0; i < box_muller_block; ++i) c[i] = cos(angle[i]);
  for (int i = 0; i < box_muller_block; ++i) s[i] = sin(angle[i]);
  for (int i = 0; i < box_muller_block; ++i) {
    z0[i] = radius[i] * c[i];
    z1[i] = radius[i] * s[i];
  }
}

}  // namespace scoresde
