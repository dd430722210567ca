// TEMPORARY stand-in for the metrics library (branch `metrics` replaces this file): the contract the study uses.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>
#include "models/gaussian_mixture.hpp"
namespace scoresde {
struct MetricValue { double value = 0; double std_error = 0; };
struct MetricsOptions {
  std::vector<std::string> metrics;
  double mmd_bandwidth = 0;
  int projections = 128;
  Index max_quadratic = 4000;
  std::uint64_t seed = 0;
  void validate() const;
};
std::vector<std::string> metric_names();
std::vector<std::string> default_metrics(bool mixture_reference);
std::vector<std::pair<std::string, MetricValue>> evaluate_metrics(ConstMatrixRef samples, ConstMatrixRef reference,
    const GaussianMixture* mixture, const MetricsOptions& options);
}
