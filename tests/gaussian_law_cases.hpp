// What the exact-law tests share: a 3-D Gaussian with full covariance and its exact score, and the Monte Carlo check
// of a law against samples.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "models/gaussian_mixture.hpp"
#include "solvers/gaussian_law.hpp"

namespace scoresde::testing {

inline std::shared_ptr<const GaussianMixture> full_covariance_gaussian() {
  Matrix s(3, 3);
  s << 1.0, 0.6, -0.3,  //
      0.6, 0.8, 0.2,    //
      -0.3, 0.2, 0.5;
  Matrix m(3, 1);
  m << 1.0, -0.5, 2.0;
  return std::make_shared<const GaussianMixture>(Vector::Ones(1), m, std::vector<Matrix>{s});
}

// The largest |z| over the mean's coordinates and the covariance's entries of the n samples (d x n) against the law:
// z = (estimate - exact) / SE with SE^2 = S_ii / n for a mean and (S_ii S_jj + S_ij^2) / n for a covariance entry
// (the variance of the sample covariance of Gaussian draws, to O(1/n^2)).
struct MomentCheck {
  double mean_z = 0, cov_z = 0;
};
inline MomentCheck moment_z(const GaussianLaw& law, const Matrix& samples) {
  const double n = static_cast<double>(samples.cols());
  const Vector mean = samples.rowwise().mean();
  const Matrix centred = samples.colwise() - mean;
  const Matrix cov = centred * centred.transpose() / (n - 1);
  const Matrix& s = law.covariance;
  MomentCheck c;
  for (Index i = 0; i < s.rows(); ++i) {
    c.mean_z = std::max(c.mean_z, std::abs(mean(i) - law.mean(i)) / std::sqrt(s(i, i) / n));
    for (Index j = 0; j <= i; ++j)
      c.cov_z =
          std::max(c.cov_z, std::abs(cov(i, j) - s(i, j)) / std::sqrt((s(i, i) * s(j, j) + s(i, j) * s(i, j)) / n));
  }
  return c;
}

}  // namespace scoresde::testing
