#include "experiments/quality.hpp"

#include <Eigen/Cholesky>
#include <cmath>

namespace scoresde {

MixtureQuality mixture_quality(const GaussianMixture& mixture, ConstMatrixRef samples) {
  const Index n = samples.cols(), K = mixture.components();
  MixtureQuality q;
  Vector log_p;
  mixture.evaluate(1.0, 0.0, samples, &log_p, nullptr, nullptr);
  const double mean = -log_p.mean();
  q.nll = mean;
  q.nll_se = n > 1 ? std::sqrt((log_p.array() + mean).square().sum() / (n - 1) / n) : 0.0;

  // Nearest component by weighted density, and whether the sample is within Mahalanobis distance 3 of it.
  std::vector<Eigen::LLT<Matrix>> factors;
  for (Index k = 0; k < K; ++k) factors.emplace_back(mixture.covariance(k));
  Vector counts = Vector::Zero(K);
  Index inside = 0;
  Vector diff(mixture.dim());
  for (Index j = 0; j < n; ++j) {
    Index best = 0;
    double best_logit = -INFINITY, best_dist2 = 0;
    for (Index k = 0; k < K; ++k) {
      diff = samples.col(j) - mixture.means().col(k);
      const double dist2 = factors[k].matrixL().solve(diff).squaredNorm();
      const double log_det = 2.0 * factors[k].matrixL().toDenseMatrix().diagonal().array().log().sum();
      const double logit = std::log(mixture.weights()(k)) - 0.5 * (dist2 + log_det);
      if (logit > best_logit) best_logit = logit, best = k, best_dist2 = dist2;
    }
    counts(best) += 1;
    if (best_dist2 <= 9.0) ++inside;
  }
  Index covered = 0;
  for (Index k = 0; k < K; ++k)
    if (counts(k) >= 0.1 * mixture.weights()(k) * n) ++covered;
  q.modes_covered = static_cast<double>(covered) / K;
  q.in_mode = static_cast<double>(inside) / n;
  q.in_mode_se = std::sqrt(q.in_mode * (1 - q.in_mode) / n);
  return q;
}

}  // namespace scoresde
