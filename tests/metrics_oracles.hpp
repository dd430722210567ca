// Closed forms for the sample-quality metrics between Gaussians, written independently of
// experiments/metrics/metrics.cpp (no matrix square roots, no sorting): the oracles of tests/test_metrics.cpp and
// tests/test_metrics_slow.cpp.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/noise.hpp"
#include "core/types.hpp"
#include "models/gaussian_mixture.hpp"

namespace scoresde::oracle {

struct Gaussian {
  Vector mean;
  Matrix cov;
};

// n exact draws from N(mean, cov), keyed by seed (GaussianMixture::sample with one component).
inline Matrix draw(const Gaussian& g, std::uint64_t seed, Index n) {
  const GaussianMixture single(Vector::Ones(1), g.mean, {g.cov});
  Matrix out(g.mean.size(), n);
  single.sample(seed, 0, out);
  return out;
}

// Points whose sample mean and sample covariance (denominator n - 1) are exactly g's: draws, whitened by
// their own moments, then coloured.
inline Matrix with_exact_moments(const Gaussian& g, std::uint64_t seed, Index n) {
  const Index d = g.mean.size();
  Matrix z = draw({Vector::Zero(d), Matrix::Identity(d, d)}, seed, n);
  z = (z.colwise() - z.rowwise().mean()).eval();
  const Matrix s = z * z.transpose() / static_cast<double>(n - 1);
  const Matrix whiten = Eigen::LLT<Matrix>(s).matrixL().solve(Matrix::Identity(d, d));
  const Matrix colour = Eigen::LLT<Matrix>(g.cov).matrixL();
  return (colour * whiten * z).colwise() + g.mean;
}

// Frechet distance between two 2-D Gaussians. For 2 x 2 positive semi-definite A, tr sqrt(A) =
// sqrt(tr A + 2 sqrt(det A)); with A = S1^{1/2} S2 S1^{1/2}, tr A = tr(S1 S2) and det A = det S1 det S2.
inline double frechet_2d(const Gaussian& a, const Gaussian& b) {
  const double cross =
      std::sqrt((a.cov * b.cov).trace() + 2.0 * std::sqrt(a.cov.determinant() * b.cov.determinant()));
  return (a.mean - b.mean).squaredNorm() + a.cov.trace() + b.cov.trace() - 2.0 * cross;
}

// Frechet distance in any dimension: tr (S1^{1/2} S2 S1^{1/2})^{1/2} is the sum of the square roots of the
// eigenvalues of the (non-symmetric) S1 S2, which are real and positive.
inline double frechet(const Gaussian& a, const Gaussian& b) {
  const Eigen::EigenSolver<Matrix> eig(a.cov * b.cov);
  const double cross = eig.eigenvalues().real().cwiseSqrt().sum();
  return (a.mean - b.mean).squaredNorm() + a.cov.trace() + b.cov.trace() - 2 * cross;
}

// Sliced W2^2 between two 2-D Gaussians, averaged over the unit circle: the projections on theta are 1-D
// Gaussians, whose W2^2 is (theta.(m1 - m2))^2 + (s1 - s2)^2, s = sqrt(theta^T S theta). The integrand is
// smooth and periodic, so the trapezoid rule on `points` angles converges geometrically.
inline double sliced_w2_2d(const Gaussian& a, const Gaussian& b, int points = 20000) {
  double sum = 0;
  for (int k = 0; k < points; ++k) {
    const double angle = std::numbers::pi * k / points;  // theta and -theta give the same value
    Vector theta(2);
    theta << std::cos(angle), std::sin(angle);
    const double dm = theta.dot(a.mean - b.mean);
    const double ds = std::sqrt(theta.dot(a.cov * theta)) - std::sqrt(theta.dot(b.cov * theta));
    sum += dm * dm + ds * ds;
  }
  return sum / points;
}

// Sliced W2^2 between two 3-D Gaussians, averaged over the unit sphere: z = cos(polar angle) is uniform on
// [-1, 1] for the uniform measure (Archimedes), so a midpoint rule in z times the trapezoid rule in the
// azimuth, `points` nodes each, has a relative error of order 1 / points^2.
inline double sliced_w2_3d(const Gaussian& a, const Gaussian& b, int points = 1000) {
  double sum = 0;
  for (int i = 0; i < points; ++i) {
    const double z = -1.0 + (i + 0.5) * 2.0 / points, r = std::sqrt(1 - z * z);
    for (int k = 0; k < points; ++k) {
      const double phi = 2 * std::numbers::pi * k / points;
      Vector theta(3);
      theta << r * std::cos(phi), r * std::sin(phi), z;
      const double dm = theta.dot(a.mean - b.mean);
      const double ds = std::sqrt(theta.dot(a.cov * theta)) - std::sqrt(theta.dot(b.cov * theta));
      sum += dm * dm + ds * ds;
    }
  }
  return sum / (static_cast<double>(points) * points);
}

// E exp(-|X - Y|^2 / (2 h^2)) for independent X ~ a, Y ~ b: X - Y ~ N(m, C), m = m_a - m_b, C = S_a + S_b,
// and E exp(-|Z|^2 / (2 h^2)) = det(I + C / h^2)^{-1/2} exp(-m^T (h^2 I + C)^{-1} m / 2).
inline double gaussian_kernel_mean(const Gaussian& a, const Gaussian& b, double h) {
  const Index d = a.mean.size();
  const Matrix c = a.cov + b.cov;
  const Vector m = a.mean - b.mean;
  const Matrix id = Matrix::Identity(d, d);
  return std::exp(-0.5 * m.dot((h * h * id + c).inverse() * m)) / std::sqrt((id + c / (h * h)).determinant());
}

inline double mmd2(const Gaussian& a, const Gaussian& b, double h) {
  return gaussian_kernel_mean(a, a, h) + gaussian_kernel_mean(b, b, h) - 2.0 * gaussian_kernel_mean(a, b, h);
}

// E|Z| for Z ~ N(mu, s^2) in one dimension: s sqrt(2/pi) exp(-mu^2 / (2 s^2)) + mu (1 - 2 Phi(-mu / s)).
inline double mean_abs_normal(double mu, double s) {
  const double phi = 0.5 * std::erfc(mu / s / std::numbers::sqrt2);  // Phi(-mu / s)
  return s * std::sqrt(2.0 / std::numbers::pi) * std::exp(-mu * mu / (2 * s * s)) + mu * (1 - 2 * phi);
}

// Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between N(m1, s1^2) and N(m2, s2^2).
inline double energy_1d(double m1, double s1, double m2, double s2) {
  return 2 * mean_abs_normal(m1 - m2, std::hypot(s1, s2)) - mean_abs_normal(0, std::sqrt(2.0) * s1) -
         mean_abs_normal(0, std::sqrt(2.0) * s2);
}

// Entropy of a mixture whose components are so far apart that their overlap is negligible (checked by the
// caller): H(w) + sum_k w_k (1/2) log det(2 pi e S_k).
inline double separated_mixture_entropy(const GaussianMixture& m) {
  const Index d = m.dim();
  double h = 0;
  for (Index k = 0; k < m.components(); ++k) {
    const double w = m.weights()(k);
    h += -w * std::log(w) +
         w * 0.5 *
             (d * std::log(2 * std::numbers::pi * std::numbers::e) + std::log(m.covariance(k).determinant()));
  }
  return h;
}

}  // namespace scoresde::oracle
