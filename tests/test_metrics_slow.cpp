// Calibration of the metrics' standard errors over R = 200 independent repetitions (fresh samples, fresh
// reference, fresh directions and subsamples in each), against truths known in closed form
// (tests/metrics_oracles.hpp):
//   - coverage: value +- 1.96 SE contains the truth in C of R repetitions. For calibrated SEs
//     C ~ Binomial(R, 0.95): mean 190, sd 3.08; we accept 3 sd either side, [181, 199] (each side fails by
//     chance with probability < 0.002; 200 of 200 would mean SEs too large);
//   - spread: the standard deviation of the R values over the root mean square of the SEs is 1 within 15%:
//     the sample sd of R = 200 normal values has a relative sd of 1 / sqrt(2 (R - 1)) = 5%, so 15% is 3 of
//     those; this also tests the SEs of mmd2 and energy when both sets come from one law, where the
//     estimate is not normal and coverage of 0 is not the right test;
//   - mode_chi2 of exact samples: the mean of the chi-square over R is K - 1 = 7 within 4 sd
//     (sd sqrt(2 * 7 / R)), and the number of p-values below 0.05 is Binomial(R, 0.05) within 3 sd
//     (10 +- 9.2).
// Biases of order 1/n (sliced W2, Frechet and the norms are biased upward by O(d / n)) are below a tenth of
// the SEs at these sizes (n = 1000, m = 2000).
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "experiments/metrics/metrics.hpp"
#include "metrics_oracles.hpp"
#include "models/datasets.hpp"

using namespace scoresde;
using oracle::Gaussian;

namespace {

constexpr int R = 200;

Gaussian gaussian(std::initializer_list<double> mean, std::initializer_list<double> cov) {
  Gaussian g;
  const Index d = static_cast<Index>(mean.size());
  g.mean = Eigen::Map<const Vector>(mean.begin(), d);
  g.cov = Eigen::Map<const Matrix>(cov.begin(), d, d);
  return g;
}

struct Tally {
  double truth = 0;
  bool check_coverage = true;
  std::vector<double> values, errors;
};

// Runs R repetitions of `draw(r) -> (x, y)` and evaluates every metric of `tallies`, then checks coverage and
// spread.
template <class Draw>
void calibrate(const std::string& label, std::map<std::string, Tally> tallies, Draw draw, MetricsOptions o,
               const GaussianMixture* mixture = nullptr) {
  for (const auto& [name, t] : tallies) o.metrics.push_back(name);
  for (int r = 0; r < R; ++r) {
    const auto [x, y] = draw(r);
    o.seed = static_cast<std::uint64_t>(r);
    for (const auto& [name, v] : evaluate_metrics(x, y, mixture, o)) {
      tallies[name].values.push_back(v.value);
      tallies[name].errors.push_back(v.std_error);
    }
  }
  const double sd_binomial = std::sqrt(R * 0.95 * 0.05);
  for (const auto& entry : tallies) {
    const auto& name = std::get<0>(entry);
    const auto& t = std::get<1>(entry);
    int covered = 0;
    double mean = 0, mean_se2 = 0;
    for (int r = 0; r < R; ++r) {
      covered += std::abs(t.values[r] - t.truth) <= 1.96 * t.errors[r];
      mean += t.values[r] / R;
      mean_se2 += t.errors[r] * t.errors[r] / R;
    }
    double var = 0;
    for (const double v : t.values) var += (v - mean) * (v - mean) / (R - 1);
    const double ratio = std::sqrt(var / mean_se2);
    INFO(label << " " << name << ": truth " << t.truth << ", mean " << mean << ", sd " << std::sqrt(var)
               << ", rms SE " << std::sqrt(mean_se2) << " (ratio " << ratio << "), covered " << covered
               << " of " << R);
    MESSAGE(label << " " << name << ": sd / rms SE = " << ratio << ", covered " << covered << " of " << R);
    if (t.check_coverage) {
      CHECK(covered >= 0.95 * R - 3 * sd_binomial);
      CHECK(covered <= std::min(R - 1.0, 0.95 * R + 3 * sd_binomial));
    } else {
      // Same law: the mean of the unbiased estimates is 0 within 4 of its standard errors.
      CHECK(std::abs(mean) < 4 * std::sqrt(var / R));
    }
    CHECK(ratio > 0.85);
    CHECK(ratio < 1.15);
  }
}

const Gaussian A = gaussian({1.0, -0.5}, {2.0, 0.6, 0.6, 0.5});
const Gaussian B = gaussian({-0.3, 0.8}, {0.7, -0.2, -0.2, 1.3});

}  // namespace

TEST_CASE("2-D Gaussians: sliced_w2, mmd2, frechet, mean_error and cov_error cover their closed forms") {
  MetricsOptions o;
  o.mmd_bandwidth = 1.0;
  std::map<std::string, Tally> t;
  t["sliced_w2"].truth = oracle::sliced_w2_2d(A, B);
  t["mmd2"].truth = oracle::mmd2(A, B, 1.0);
  t["frechet"].truth = oracle::frechet_2d(A, B);
  t["mean_error"].truth = (A.mean - B.mean).norm();
  t["cov_error"].truth = (A.cov - B.cov).norm();
  calibrate(
      "2-D", t,
      [](int r) {
        return std::pair{oracle::draw(A, 1000 + r, 1000), oracle::draw(B, 5000 + r, 2000)};
      },
      o);
}

TEST_CASE("3-D Gaussians: sliced_w2 over orthonormal frames and frechet cover their closed forms") {
  const Gaussian c = gaussian({0.5, 0.0, -0.3}, {1.0, 0.3, 0.0, 0.3, 0.8, 0.2, 0.0, 0.2, 1.5});
  const Gaussian d = gaussian({0.0, 0.2, 0.0}, {0.6, 0.0, 0.1, 0.0, 1.2, 0.0, 0.1, 0.0, 0.9});
  std::map<std::string, Tally> t;
  t["sliced_w2"].truth = oracle::sliced_w2_3d(c, d);
  t["frechet"].truth = oracle::frechet(c, d);
  calibrate("3-D", t,
            [&](int r) {
              return std::pair{oracle::draw(c, 1000 + r, 1000), oracle::draw(d, 5000 + r, 2000)};
            },
            {});
}

TEST_CASE("1-D Gaussians: energy and sliced_w2 (the exact W2^2) cover their closed forms") {
  const Gaussian a = gaussian({0.0}, {1.0}), b = gaussian({0.5}, {2.25});
  std::map<std::string, Tally> t;
  t["energy"].truth = oracle::energy_1d(0, 1, 0.5, 1.5);
  t["sliced_w2"].truth = 0.5 * 0.5 + (1.5 - 1.0) * (1.5 - 1.0);
  calibrate("1-D", t,
            [&](int r) {
              return std::pair{oracle::draw(a, 1000 + r, 1000), oracle::draw(b, 5000 + r, 2000)};
            },
            {});
}

TEST_CASE("one law: mmd2 and energy are unbiased for 0 and their SEs match their spread") {
  MetricsOptions o;
  o.mmd_bandwidth = 1.0;
  std::map<std::string, Tally> t;
  t["mmd2"].check_coverage = false;
  t["energy"].check_coverage = false;
  calibrate(
      "same law", t,
      [](int r) {
        return std::pair{oracle::draw(A, 1000 + r, 1000), oracle::draw(A, 5000 + r, 2000)};
      },
      o);
}

TEST_CASE("exact mixture samples: nll covers the entropy, nll_gap covers 0") {
  Matrix means(2, 3);
  means << 0, 40, 0, 0, 0, 40;
  std::vector<Matrix> cov = {Matrix::Identity(2, 2), Matrix::Identity(2, 2), Matrix::Identity(2, 2)};
  cov[1] << 2.0, 0.5, 0.5, 1.0;
  cov[2] *= 0.3;
  Vector w(3);
  w << 1, 2, 3;
  const GaussianMixture mixture(w, means, cov);
  std::map<std::string, Tally> t;
  t["nll"].truth = oracle::separated_mixture_entropy(mixture);
  t["nll_gap"].truth = 0;
  calibrate(
      "mixture", t,
      [&](int r) {
        return std::pair{reference_points(mixture, 1000 + r, 1000),
                         reference_points(mixture, 5000 + r, 2000)};
      },
      {}, &mixture);
}

TEST_CASE("exact eight_gaussians samples: mode_chi2 has mean K - 1 and uniform p-values; coverage is 1") {
  const auto mixture = load_data("eight_gaussians", 0);
  double mean_chi2 = 0;
  int small_p = 0;
  for (int r = 0; r < R; ++r) {
    const Matrix x = reference_points(*mixture, 1000 + r, 1000);
    const ModeCounts c = mode_counts(*mixture, x);
    mean_chi2 += c.chi2 / R;
    small_p += c.p_value < 0.05;
    CHECK(c.coverage == 1.0);
  }
  INFO("mean chi2 " << mean_chi2 << ", p < 0.05 in " << small_p << " of " << R);
  CHECK(std::abs(mean_chi2 - 7) < 4 * std::sqrt(2.0 * 7 / R));
  CHECK(std::abs(small_p - 0.05 * R) <= 3 * std::sqrt(R * 0.05 * 0.95));
}
