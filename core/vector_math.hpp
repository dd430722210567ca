// Element-wise kernels on glibc's vector math library (libmvec, < 4 ulp), which is faster than Eigen's own
// vectorised exp for doubles and vectorises log, sin and cos, which Eigen 3.4 does not for doubles. Every kernel
// works on whole fixed blocks (a short tail goes through a padded block), so that each element takes the same
// vector code path whatever its position or the length of the request: results depend only on the inputs.
#pragma once

#include <cstdint>

#include "core/types.hpp"

namespace scoresde {

inline constexpr int vector_block = 8;

// The Box-Muller transform (Box & Muller 1958) on one block of random bits:
//   u1 = (a >> 11 + 1/2) 2^-53 in (0, 1),  u2 = (b >> 11) 2^-53 in [0, 1),
//   z0 = sqrt(-2 log u1) cos(2 pi u2),  z1 = sqrt(-2 log u1) sin(2 pi u2),   for i < vector_block.
void box_muller(const std::uint64_t* a, const std::uint64_t* b, double* z0, double* z1);

// x[i] = exp(x[i]) for i < n.
void exp_in_place(double* x, Index n);

}  // namespace scoresde
