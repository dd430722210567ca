#include "experiments/metrics/quality.hpp"

#include <cmath>

#include "experiments/metrics/metrics.hpp"

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
  const ModeAssignment modes = assign_modes(mixture, samples);
  Vector counts = Vector::Zero(K);
  for (const Index k : modes.component) counts(k) += 1;
  const Index inside = (modes.mahalanobis2.array() <= 9.0).count();
  Index covered = 0;
  for (Index k = 0; k < K; ++k)
    if (counts(k) >= 0.1 * mixture.weights()(k) * n) ++covered;
  q.modes_covered = static_cast<double>(covered) / K;
  q.in_mode = static_cast<double>(inside) / n;
  q.in_mode_se = std::sqrt(q.in_mode * (1 - q.in_mode) / n);
  return q;
}

}  // namespace scoresde
