// Element-wise kernels on glibc's vector math library (libmvec, < 4 ulp), which is faster than Eigen's own
// vectorised exp for doubles and vectorises log, sin and cos, which Eigen 3.4 does not for doubles. Every
// kernel works on whole fixed blocks (a short tail goes through a padded block), so that each element takes
// the same vector code path whatever its position or the length of the request: results depend only on the
// inputs.
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

// The score of an isotropic Gaussian mixture at one time, in one pass over the samples (the hot path of every
// sampler on mixture data; models/gaussian_mixture.cpp has the general form). With components N(m_k, c_k I),
// m_k = alpha mu_k, c_k = alpha^2 lambda_k + sigma^2, and logits l_k(x) = log_norm_k - |x - m_k|^2 / (2 c_k),
//     score(x) = [sum_k e_k m_k / c_k - x sum_k e_k / c_k] / sum_k e_k,   e_k = exp(l_k - max_j l_j),
// the log-sum-exp form of sum_k gamma_k (m_k - x) / c_k. Samples are taken in blocks of vector_block, each
// through the same code (a short tail through a padded block), so a sample's result does not depend on its
// position.
struct IsotropicMixtureAtTime {
  Index dim = 0, components = 0;
  const double* centres = nullptr;   // dim x components, column-major: m_k
  const double* log_norm = nullptr;  // components: log w_k - (dim / 2) log(2 pi c_k)
  const double* inv_var = nullptr;   // components: 1 / c_k
};
// x and out: dim x n, column-major.
void isotropic_mixture_score(const IsotropicMixtureAtTime& mixture, const double* x, Index n, double* out);

}  // namespace scoresde
