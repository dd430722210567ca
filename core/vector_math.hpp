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
// x[i] = sqrt(x[i]) for i < n, correctly rounded (IEEE 754's square root in every lane and in the tail), so each
// element is std::sqrt's value. Eigen's packet sqrt is not: under its default EIGEN_FAST_MATH, AVX-512 doubles take
// an rsqrt14 estimate refined by Newton steps, off by an ulp at some inputs.
void sqrt_in_place(double* x, Index n);

// An isotropic Gaussian mixture p_0 = sum_k w_k N(mu_k, lambda_k I) and its score after diffusion to
// p_t = sum_k w_k N(alpha mu_k, c_k I), c_k = alpha^2 lambda_k + sigma^2 (the hot path of every sampler on mixture
// data; models/gaussian_mixture.cpp has the general form). With logits l_k(x) = log w_k - (dim / 2) log(2 pi c_k)
// - |x - alpha mu_k|^2 / (2 c_k),
//     score(x) = [alpha sum_k e_k mu_k / c_k - x sum_k e_k / c_k] / sum_k e_k,   e_k = exp(l_k - max_j l_j),
// the log-sum-exp form of sum_k gamma_k (alpha mu_k - x) / c_k. When all components share one variance, the logits
// leave out the terms -|x|^2 / (2 c) and -(dim / 2) log(2 pi c) common to all (the same softmax, rounded
// differently), and the score is NaN for samples with |x|^2 >= 1e300, as it is with several variances where
// |x - alpha mu_k|^2 overflows: a diverging sampler is caught either way.
struct IsotropicMixture {
  Index dim = 0, components = 0;
  const double* means = nullptr;        // dim x components, column-major: mu_k
  const double* log_weights = nullptr;  // components: log w_k
  const double* variances = nullptr;    // components: lambda_k
};
// The score of every column of x at one time (alpha, sigma). x and out: dim x n, column-major.
void isotropic_mixture_score(const IsotropicMixture& mixture, double alpha, double sigma, const double* x, Index n,
                             double* out);
// The score with column j at its own time: alpha[j], sigma[j]. Column j's result is bit for bit what the one-time
// form gives for that column at alpha[j], sigma[j], whatever the other columns and their times.
//
// Both forms run samples in blocks of one vector register of lanes, each lane with its own alpha, sigma and
// per-component 1 / c_k and normaliser, computed for a whole block by one vector function (the one-time form fills
// the lanes with its one time, once); every sample goes through the same instructions in every lane and position (a
// short tail through a padded block), and libmvec is called on whole registers only, so that no lane takes a scalar
// path. A sample's score therefore depends only on that sample, its time and the build.
void isotropic_mixture_score(const IsotropicMixture& mixture, const double* alpha, const double* sigma, const double* x,
                             Index n, double* out);

// alpha[i] = exp(log_alpha[i]) and one_minus_alpha_sq[i] = -expm1(2 log_alpha[i]) = 1 - alpha[i]^2 without
// cancellation, for i < n, on libmvec: the marginal coefficients of the VP and sub-VP SDEs at many times (per-column
// times of an adaptive solver). Element i depends on log_alpha[i] alone; one_minus_alpha_sq may be log_alpha itself.
void alpha_and_one_minus_alpha_sq(const double* log_alpha, Index n, double* alpha, double* one_minus_alpha_sq);

}  // namespace scoresde
