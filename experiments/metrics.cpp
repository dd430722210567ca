// TEMPORARY stand-in (branch `metrics` replaces this file).
#include "experiments/metrics.hpp"
#include "core/errors.hpp"
#include "experiments/quality.hpp"
namespace scoresde {
void MetricsOptions::validate() const {
  for (const auto& m : metrics) if (m != "nll" && m != "in_mode") throw ConfigError("--metrics = " + m + ": unknown; choose from nll, in_mode");
}
std::vector<std::string> metric_names() { return {"nll", "in_mode"}; }
std::vector<std::string> default_metrics(bool) { return {"nll", "in_mode"}; }
std::vector<std::pair<std::string, MetricValue>> evaluate_metrics(ConstMatrixRef samples, ConstMatrixRef,
    const GaussianMixture* mixture, const MetricsOptions&) {
  const auto q = mixture_quality(*mixture, samples);
  return {{"nll", {q.nll, q.nll_se}}, {"in_mode", {q.in_mode, q.in_mode_se}}};
}
}
