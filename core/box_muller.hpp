// The Box-Muller transform on fixed blocks of random bits (Box & Muller 1958):
//   u1 = (a >> 11 + 1/2) 2^-53 in (0, 1),  u2 = (b >> 11) 2^-53 in [0, 1),
//   z0 = sqrt(-2 log u1) cos(2 pi u2),  z1 = sqrt(-2 log u1) sin(2 pi u2).
// Always on whole blocks of box_muller_block pairs, so that every pair takes the same (vectorised) code path
// whatever its position in a request: a normal's bits depend only on its counter.
#pragma once

#include <cstdint>

namespace scoresde {

inline constexpr int box_muller_block = 8;

// z0[i], z1[i] from a[i], b[i] for i < box_muller_block.
void box_muller(const std::uint64_t* a, const std::uint64_t* b, double* z0, double* z1);

}  // namespace scoresde
