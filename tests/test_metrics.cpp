// Sample-quality metrics (experiments/metrics/metrics.hpp) against closed forms and brute force:
//   - frechet, mean_error, cov_error on point sets whose sample moments are exactly two given Gaussians';
//   - sliced_w2 in one dimension against the exact W2^2 of the empirical laws (and its delta-method SE for a
//     translation), in two dimensions against the circle average of the Gaussian W2^2;
//   - the U-statistic of mmd2 / energy and its variance estimate against a brute-force enumeration of index
//     tuples, across tile boundaries; mmd2 and energy against their closed forms for Gaussians;
//   - nll of exact samples against the entropy of a well-separated mixture;
//   - mode counts, chi-square and coverage;
//   - option and input errors, the stable order, deterministic subsamples, independence of the thread count.
// Statistical checks use |estimate - truth| < 4 SE (two-sided probability 6e-5 for a normal estimate) plus
// any bias bound stated beside them; SE calibration over repeated draws is in test_metrics_slow.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <boost/math/special_functions/gamma.hpp>
#include <cmath>
#include <numbers>
#include <functional>
#include <random>
#include <set>

#include "core/errors.hpp"
#include "experiments/metrics/metrics.hpp"
#include "metrics_oracles.hpp"
#include "models/datasets.hpp"

using namespace scoresde;
using oracle::Gaussian;

namespace {

MetricValue find(const std::vector<std::pair<std::string, MetricValue>>& results, const std::string& name) {
  for (const auto& [n, v] : results)
    if (n == name) return v;
  FAIL("metric " << name << " not in the results");
  return {};
}

MetricValue one(const std::string& name, ConstMatrixRef x, ConstMatrixRef y, MetricsOptions o = {},
                const GaussianMixture* mixture = nullptr) {
  o.metrics = {name};
  const auto r = evaluate_metrics(x, y, mixture, o);
  REQUIRE(r.size() == 1);
  REQUIRE(r[0].first == name);
  return r[0].second;
}

Gaussian gaussian(std::initializer_list<double> mean, std::initializer_list<double> cov) {
  Gaussian g;
  const Index d = static_cast<Index>(mean.size());
  g.mean = Eigen::Map<const Vector>(mean.begin(), d);
  g.cov = Eigen::Map<const Matrix>(cov.begin(), d, d);
  return g;
}

const Gaussian A = gaussian({1.0, -0.5}, {2.0, 0.6, 0.6, 0.5});
const Gaussian B = gaussian({-0.3, 0.8}, {0.7, -0.2, -0.2, 1.3});

Matrix row(std::initializer_list<double> values) {
  return Eigen::Map<const Matrix>(values.begin(), 1, static_cast<Index>(values.size()));
}

template <class E>
void check_error(const std::function<void()>& f, std::initializer_list<const char*> needles) {
  try {
    f();
    FAIL("no exception");
  } catch (const E& e) {
    const std::string what = e.what();
    for (const char* n : needles) {
      INFO("message: " << what << "; looking for: " << n);
      CHECK(what.find(n) != std::string::npos);
    }
  }
}

}  // namespace

TEST_CASE("metric names, defaults and the stable order of the results") {
  const auto all = metric_names();
  CHECK(all.size() == 11);
  // bpd is asked for by name (8-bit images only); every other metric is a default with a mixture reference.
  std::vector<std::string> all_but_bpd;
  for (const auto& name : all)
    if (name != "bpd") all_but_bpd.push_back(name);
  CHECK(default_metrics(true) == all_but_bpd);
  const auto points_only = default_metrics(false);
  CHECK(points_only ==
        std::vector<std::string>{"sliced_w2", "mmd2", "energy", "frechet", "mean_error", "cov_error"});
  for (const auto& name : all) CHECK_FALSE(metric_description(name).empty());

  const auto mixture = load_data("eight_gaussians", 0);
  const Matrix x = reference_points(*mixture, 1, 200), y = reference_points(*mixture, 2, 300);
  MetricsOptions o;
  o.metrics = {"nll", "sliced_w2", "nll", "mode_chi2", "mmd2"};
  const auto r = evaluate_metrics(x, y, mixture.get(), o);
  REQUIRE(r.size() == 4);
  CHECK(r[0].first == "sliced_w2");
  CHECK(r[1].first == "mmd2");
  CHECK(r[2].first == "nll");
  CHECK(r[3].first == "mode_chi2");
  const auto defaults = evaluate_metrics(x, y, mixture.get(), {});
  REQUIRE(defaults.size() == all_but_bpd.size());
  for (std::size_t k = 0; k < all_but_bpd.size(); ++k) {
    CHECK(defaults[k].first == all_but_bpd[k]);
    CHECK(std::isfinite(defaults[k].second.value));
    CHECK(defaults[k].second.std_error >= 0);
  }
  CHECK(evaluate_metrics(x, y, nullptr, {}).size() == points_only.size());
  // bpd is the nll in bits per dimension plus 7 (8-bit data in [-1, 1]), its standard error scaled alike.
  MetricsOptions bits;
  bits.metrics = {"nll", "bpd"};
  const auto nb = evaluate_metrics(x, y, mixture.get(), bits);
  REQUIRE(nb.size() == 2);
  CHECK(nb[1].first == "bpd");
  const double scale = 1.0 / (2.0 * std::numbers::ln2);
  CHECK(std::abs(nb[1].second.value - (nb[0].second.value * scale + 7.0)) <= 1e-14 * (1 + std::abs(nb[1].second.value)));
  CHECK(std::abs(nb[1].second.std_error - nb[0].second.std_error * scale) <= 1e-15 * (1 + nb[0].second.std_error));
}

TEST_CASE("options and inputs are checked, and the message names the option or the set") {
  const Matrix x = oracle::draw(A, 1, 50), y = oracle::draw(B, 2, 60);
  const auto evaluate_with = [&](MetricsOptions o) {
    return [&x, &y, o] { evaluate_metrics(x, y, nullptr, o); };
  };
  MetricsOptions o;
  o.metrics = {"sliced_w2", "wasserstein"};
  check_error<ConfigError>(evaluate_with(o),
                           {"--metrics = wasserstein", "unknown metric", "sliced_w2, mmd2"});
  o = {};
  o.mmd_bandwidth = -1;
  check_error<ConfigError>(evaluate_with(o), {"--mmd-bandwidth = -1", "median heuristic"});
  o.mmd_bandwidth = std::nan("");
  check_error<ConfigError>(evaluate_with(o), {"--mmd-bandwidth = nan"});
  o = {};
  o.projections = 0;
  check_error<ConfigError>(evaluate_with(o), {"--projections = 0", "[1, 100000]"});
  o = {};
  o.max_quadratic = 3;
  check_error<ConfigError>(evaluate_with(o), {"--max-quadratic = 3"});
  o = {};
  o.threads = -1;
  check_error<ConfigError>(evaluate_with(o), {"--threads = -1"});
  o = {};
  o.metrics = {"mmd2", "nll_gap"};
  check_error<ConfigError>(evaluate_with(o), {"--metrics = nll_gap", "needs a mixture", "sliced_w2"});

  check_error<InputError>([&] { evaluate_metrics(x, Matrix::Zero(3, 10), nullptr, {}); },
                          {"dimension 2", "reference points 3"});
  Matrix bad = x;
  bad(1, 7) = std::nan("");
  check_error<InputError>([&] { evaluate_metrics(bad, y, nullptr, {}); },
                          {"samples", "point 7", "non-finite"});
  check_error<InputError>([&] { evaluate_metrics(x, bad, nullptr, {}); }, {"reference", "point 7"});
  check_error<InputError>([&] { evaluate_metrics(x.leftCols(3), y, nullptr, {}); }, {"samples: 3 points"});
  const auto mixture = load_data("gaussian", 3);
  check_error<InputError>([&] { evaluate_metrics(x, y, mixture.get(), {}); }, {"mixture 3"});
}

TEST_CASE("frechet, mean_error and cov_error equal the closed forms on sets with exact moments") {
  const Matrix x = oracle::with_exact_moments(A, 1, 500), y = oracle::with_exact_moments(B, 2, 700);
  CHECK(one("frechet", x, y).value == doctest::Approx(oracle::frechet_2d(A, B)).epsilon(1e-11));
  CHECK(one("mean_error", x, y).value == doctest::Approx((A.mean - B.mean).norm()).epsilon(1e-12));
  CHECK(one("cov_error", x, y).value == doctest::Approx((A.cov - B.cov).norm()).epsilon(1e-12));
  CHECK(one("frechet", x, x).value < 1e-12);
  CHECK(one("frechet", x, y).std_error > 0);

  // d = 5: tr (S1^{1/2} S2 S1^{1/2})^{1/2} = sum of the square roots of the (real, positive) eigenvalues of
  // the non-symmetric S1 S2, from Eigen's general eigensolver.
  std::mt19937_64 gen(5);
  std::normal_distribution<double> normal;
  Gaussian a, b;
  for (Gaussian* g : {&a, &b}) {
    Matrix m(5, 5);
    for (Index i = 0; i < m.size(); ++i) m.data()[i] = normal(gen);
    g->cov = m * m.transpose() / 5.0 + 0.1 * Matrix::Identity(5, 5);
    g->mean = Vector::NullaryExpr(5, [&] { return normal(gen); });
  }
  const double expected = oracle::frechet(a, b);
  const Matrix x5 = oracle::with_exact_moments(a, 3, 400), y5 = oracle::with_exact_moments(b, 4, 300);
  CHECK(one("frechet", x5, y5).value == doctest::Approx(expected).epsilon(1e-10));
}

TEST_CASE("sliced_w2 in one dimension is the exact W2^2 of the empirical laws") {
  // Quantile functions: a is 0 on (0, 1/2], 1 on (1/2, 1]; b is 0, 0.5, 1 on the thirds:
  // W2^2 = 2 (1/6) (1/4).
  const Matrix a = row({1, 0, 1, 0}), b = row({0.5, 0, 1, 0, 1, 0.5, 0, 1, 0.5});
  CHECK(one("sliced_w2", a, b).value == doctest::Approx(1.0 / 12).epsilon(1e-14));
  CHECK(one("sliced_w2", b, a).value == doctest::Approx(1.0 / 12).epsilon(1e-14));

  // Equal sizes: the mean of the squared differences of the sorted values.
  std::mt19937_64 gen(7);
  std::normal_distribution<double> normal;
  Matrix x(1, 1000), y(1, 1000);
  for (Index i = 0; i < 1000; ++i) x(0, i) = normal(gen), y(0, i) = 0.3 + 2 * normal(gen);
  std::vector<double> xs(x.data(), x.data() + 1000), ys(y.data(), y.data() + 1000);
  std::sort(xs.begin(), xs.end());
  std::sort(ys.begin(), ys.end());
  double expected = 0;
  for (int i = 0; i < 1000; ++i) expected += (xs[i] - ys[i]) * (xs[i] - ys[i]) / 1000;
  CHECK(one("sliced_w2", x, y).value == doctest::Approx(expected).epsilon(1e-12));

  // A translation by v: W2^2 = v^2, the potentials are -2 v x and 2 v y, so the delta-method SE is that of
  // (mean x - mean y)^2: 2 |v| sqrt(var x / n + var y / m). The directions +-1 all give the same value.
  const double v = 0.7;
  const Matrix shifted = (y.array() + v).matrix();
  const MetricValue t = one("sliced_w2", y, shifted);
  CHECK(t.value == doctest::Approx(v * v).epsilon(1e-12));
  const double var_y = (y.array() - y.mean()).square().sum() / 999;
  CHECK(t.std_error == doctest::Approx(2 * v * std::sqrt(2 * var_y / 1000)).epsilon(1e-9));
}

TEST_CASE("sliced_w2 directions: whole groups; orthonormal frames integrate a translation exactly") {
  CHECK(sliced_w2_directions(1, 128) == 1);
  CHECK(sliced_w2_directions(2, 128) == 128);
  CHECK(sliced_w2_directions(2, 20) == 32);
  CHECK(sliced_w2_directions(3, 128) == 129);
  CHECK(sliced_w2_directions(64, 128) == 128);
  // y = x + v: W2^2 on theta is (theta.v)^2, and over each orthonormal frame its mean is |v|^2 / d exactly.
  const Matrix x = oracle::draw(gaussian({0.0, 0.0, 0.0}, {1, 0, 0, 0, 2, 0, 0, 0, 0.5}), 13, 500);
  Vector v(3);
  v << 0.3, -1.0, 0.4;
  for (const int projections : {3, 30, 128}) {
    MetricsOptions o;
    o.projections = projections;
    CHECK(one("sliced_w2", x, x.colwise() + v, o).value ==
          doctest::Approx(v.squaredNorm() / 3).epsilon(1e-12));
  }
  // In 2-D a lattice of 16 angles: the mean of (theta.v)^2 over it is |v|^2 / 2 exactly as well.
  const Matrix x2 = oracle::draw(A, 14, 500);
  CHECK(one("sliced_w2", x2, x2.colwise() + v.head(2)).value ==
        doctest::Approx(v.head(2).squaredNorm() / 2).epsilon(1e-12));
}

TEST_CASE("sliced_w2 between 2-D Gaussian samples approaches the circle average of the Gaussian W2^2") {
  const Matrix x = oracle::draw(A, 11, 20000), y = oracle::draw(B, 12, 40000);
  const MetricValue r = one("sliced_w2", x, y);
  const double truth = oracle::sliced_w2_2d(A, B);
  INFO("estimate " << r.value << " +- " << r.std_error << ", truth " << truth);
  // Bias of the empirical W2^2: of order (var / n) log log n, below 1e-3 here.
  CHECK(std::abs(r.value - truth) < 4 * r.std_error + 1e-3);
  // Directions in rotated lattices of 16 angles: the SE is the sampling error (about 0.8% here), not the
  // Monte Carlo error of 128 independent directions (about 5%).
  CHECK(r.std_error < 0.01 * truth);
}

namespace {

// H_ij of the paired U-statistic, written out.
double h(ConstMatrixRef x, ConstMatrixRef y, QuadraticKernel kernel, double bw, Index i, Index j) {
  auto k = [&](const Vector& u, const Vector& v) {
    const double d2 = (u - v).squaredNorm();
    return kernel == QuadraticKernel::gaussian ? std::exp(-d2 / (2 * bw * bw)) : -std::sqrt(d2);
  };
  return k(x.col(i), x.col(j)) + k(y.col(i), y.col(j)) - k(x.col(i), y.col(j)) - k(x.col(j), y.col(i));
}

}  // namespace

TEST_CASE("the quadratic U-statistic and its variance estimate against brute force") {
  for (const auto kernel : {QuadraticKernel::gaussian, QuadraticKernel::energy}) {
    CAPTURE(static_cast<int>(kernel));
    // N = 7: every tuple of distinct indices enumerated. Var U = (4 (N-2) zeta1 + 2 zeta2) / (N (N-1)), with
    // theta^2, zeta1 + theta^2 and zeta2 + theta^2 estimated by the means of H_ij H_kl over distinct
    // (i,j,k,l), of H_ij H_il over distinct (i,j,l), and of H_ij^2 over distinct (i,j).
    const Index N = 7;
    const Matrix x = oracle::draw(A, 21, N), y = oracle::draw(B, 22, N);
    const double bw = 1.3;
    double s1 = 0, s2 = 0, t3 = 0, t4 = 0;
    double c2 = 0, c3 = 0, c4 = 0;
    for (Index i = 0; i < N; ++i)
      for (Index j = 0; j < N; ++j) {
        if (j == i) continue;
        const double hij = h(x, y, kernel, bw, i, j);
        s1 += hij, s2 += hij * hij, c2 += 1;
        for (Index l = 0; l < N; ++l) {
          if (l == i || l == j) continue;
          t3 += hij * h(x, y, kernel, bw, i, l), c3 += 1;
          for (Index k = 0; k < N; ++k) {
            if (k == i || k == j || k == l) continue;
            t4 += hij * h(x, y, kernel, bw, k, l), c4 += 1;
          }
        }
      }
    const double theta2 = t4 / c4, zeta1 = t3 / c3 - theta2, zeta2 = s2 / c2 - theta2;
    const double var = (4.0 * (N - 2) * zeta1 + 2 * zeta2) / (N * (N - 1.0));
    const MetricValue u = paired_u_statistic(x, y, kernel, bw, 1);
    CHECK(u.value == doctest::Approx(s1 / c2).epsilon(1e-12));
    CHECK(u.std_error == doctest::Approx(std::sqrt(std::max(var, 0.0))).epsilon(1e-9));

    // N = 300 crosses tiles of 128 with a ragged last one: the row sums and the sum of squares, by brute
    // force.
    const Index M = 300;
    const Matrix xm = oracle::draw(A, 23, M), ym = oracle::draw(B, 24, M);
    Eigen::ArrayXd r = Eigen::ArrayXd::Zero(M);
    double sq = 0;
    for (Index i = 0; i < M; ++i)
      for (Index j = 0; j < M; ++j)
        if (i != j) {
          const double hij = h(xm, ym, kernel, bw, i, j);
          r(i) += hij, sq += hij * hij;
        }
    const double n = M, p2 = n * (n - 1), p3 = p2 * (n - 2), p4 = p3 * (n - 3);
    const double S1 = r.sum(), T3 = r.square().sum() - sq, T4 = S1 * S1 - 2 * sq - 4 * T3;
    const double v = 4 * (n - 2) / p2 * (T3 / p3 - T4 / p4) + 2 / p2 * (sq / p2 - T4 / p4);
    const MetricValue um = paired_u_statistic(xm, ym, kernel, bw, 2);
    CHECK(um.value == doctest::Approx(S1 / p2).epsilon(1e-10));
    CHECK(um.std_error == doctest::Approx(std::sqrt(v)).epsilon(1e-8));
  }
}

TEST_CASE(
    "mmd2: 0 for identical sets, within its SE of 0 for one law, the closed form for shifted Gaussians") {
  MetricsOptions o;
  o.mmd_bandwidth = 1.0;
  const Gaussian g = gaussian({0.0, 0.0}, {1.0, 0.0, 0.0, 1.0});
  const Matrix x = oracle::draw(g, 31, 2000), y = oracle::draw(g, 32, 2000);
  const MetricValue same = one("mmd2", x, x, o);
  CHECK(same.value == 0.0);
  CHECK(same.std_error == 0.0);
  const MetricValue null = one("mmd2", x, y, o);
  INFO("same law: " << null.value << " +- " << null.std_error);
  CHECK(null.std_error > 0);
  CHECK(std::abs(null.value) < 4 * null.std_error);

  const Gaussian shifted = gaussian({0.5, 0.0}, {1.0, 0.0, 0.0, 1.0});
  const MetricValue r = one("mmd2", x, oracle::draw(shifted, 33, 2000), o);
  const double truth = oracle::mmd2(g, shifted, 1.0);
  INFO("shifted: " << r.value << " +- " << r.std_error << ", truth " << truth);
  CHECK(std::abs(r.value - truth) < 4 * r.std_error);
  CHECK(r.value > 5 * r.std_error);
}

TEST_CASE("energy: 0 for identical sets, the closed form in one dimension") {
  const Matrix x = oracle::draw(gaussian({0.0}, {1.0}), 41, 3000);
  CHECK(one("energy", x, x).value == 0.0);
  const Matrix y = oracle::draw(gaussian({0.5}, {2.25}), 42, 3000);
  const MetricValue r = one("energy", x, y);
  const double truth = oracle::energy_1d(0, 1, 0.5, 1.5);
  INFO(r.value << " +- " << r.std_error << ", truth " << truth);
  CHECK(std::abs(r.value - truth) < 4 * r.std_error);
  CHECK(r.value > 5 * r.std_error);
}

TEST_CASE("quadratic metrics subsample deterministically; the median heuristic") {
  const auto idx = subsample_indices(1000, 100, 3, 1);
  CHECK(idx.size() == 100);
  CHECK(std::is_sorted(idx.begin(), idx.end()));
  CHECK(std::set<Index>(idx.begin(), idx.end()).size() == 100);
  CHECK(idx.back() < 1000);
  CHECK(subsample_indices(1000, 100, 3, 1) == idx);
  CHECK(subsample_indices(1000, 100, 4, 1) != idx);
  CHECK(subsample_indices(1000, 100, 3, 2) != idx);
  CHECK(subsample_indices(10, 20, 3, 1).size() == 10);

  const Matrix x = oracle::draw(A, 51, 3000), y = oracle::draw(B, 52, 5000);
  MetricsOptions o;
  o.max_quadratic = 500;
  o.metrics = {"mmd2", "energy"};
  const auto r1 = evaluate_metrics(x, y, nullptr, o), r2 = evaluate_metrics(x, y, nullptr, o);
  CHECK(r1[0].second.value == r2[0].second.value);
  CHECK(r1[1].second.std_error == r2[1].second.std_error);
  o.seed = 1;
  CHECK(evaluate_metrics(x, y, nullptr, o)[0].second.value != r1[0].second.value);
  CHECK(quadratic_count(3000, 5000, o) == 500);

  // The median of the pairwise distances of the first min(N, 1000) reference points of the subsample (here
  // all of them): 45 pairs for 10 points (odd), 10 pairs for 5 (even: mean of the middle two).
  for (const Index m : {10, 5}) {
    const Matrix ref = oracle::draw(B, 53, m);
    std::vector<double> d;
    for (Index i = 0; i < m; ++i)
      for (Index j = i + 1; j < m; ++j) d.push_back((ref.col(i) - ref.col(j)).norm());
    std::sort(d.begin(), d.end());
    const double median = d.size() % 2 ? d[d.size() / 2] : 0.5 * (d[d.size() / 2 - 1] + d[d.size() / 2]);
    CHECK(resolve_mmd_bandwidth(ref, 100, {}) == doctest::Approx(median).epsilon(1e-15));
  }
  MetricsOptions fixed;
  fixed.mmd_bandwidth = 0.25;
  CHECK(resolve_mmd_bandwidth(y, 100, fixed) == 0.25);
}

TEST_CASE("nll of exact samples equals the entropy of a well-separated mixture; nll_gap is 0 within its SE") {
  // Components 40 apart with stds <= 1.5: the overlap changes the entropy by far less than 1e-10.
  Matrix means(2, 3);
  means << 0, 40, 0, 0, 0, 40;
  std::vector<Matrix> cov = {Matrix::Identity(2, 2), Matrix::Identity(2, 2), Matrix::Identity(2, 2)};
  cov[1] << 2.0, 0.5, 0.5, 1.0;
  cov[2] *= 0.3;
  Vector w(3);
  w << 1, 2, 3;
  const GaussianMixture mixture(w, means, cov);
  const Matrix x = reference_points(mixture, 61, 20000), y = reference_points(mixture, 62, 40000);
  MetricsOptions o;
  o.metrics = {"nll", "nll_gap"};
  const auto r = evaluate_metrics(x, y, &mixture, o);
  const double entropy = oracle::separated_mixture_entropy(mixture);
  const MetricValue nll = find(r, "nll"), gap = find(r, "nll_gap");
  INFO("nll " << nll.value << " +- " << nll.std_error << ", entropy " << entropy);
  CHECK(std::abs(nll.value - entropy) < 4 * nll.std_error);
  CHECK(std::abs(gap.value) < 4 * gap.std_error);
  Vector log_p;
  mixture.evaluate(1.0, 0.0, x, &log_p, nullptr, nullptr);
  CHECK(nll.value == doctest::Approx(-log_p.mean()).epsilon(1e-12));
  const double sd = std::sqrt((log_p.array() - log_p.mean()).square().sum() / (x.cols() - 1));
  CHECK(nll.std_error == doctest::Approx(sd / std::sqrt(20000.0)).epsilon(1e-10));
}

TEST_CASE("mode counts, chi-square, p-value and coverage") {
  // Three 1-D components, weights 1 : 1 : 2; points placed at the means (and at mean + 2 std).
  Matrix means(1, 3);
  means << -10, 0, 10;
  Vector w(3), stds(3);
  w << 1, 1, 2;
  stds << 1, 0.5, 2;
  const GaussianMixture mixture = GaussianMixture::isotropic(w, means, stds);
  auto points = [&](int a, int b, int c) {
    Matrix x(1, a + b + c);
    x.leftCols(a).setConstant(-10 + 2.0);  // 2 std from the first mean
    x.middleCols(a, b).setConstant(0);
    x.rightCols(c).setConstant(10);
    return x;
  };
  const Matrix x = points(30, 20, 50);
  const ModeCounts c = mode_counts(mixture, x);
  CHECK(c.counts == Vector::NullaryExpr(3, [](Index k) { return std::array{30.0, 20.0, 50.0}[k]; }));
  CHECK(c.expected(2) == doctest::Approx(50));
  CHECK(c.dof == 2);
  CHECK(c.chi2 == doctest::Approx(2.0));                // 25/25 + 25/25 + 0
  CHECK(c.p_value == doctest::Approx(std::exp(-1.0)));  // 2 dof: p = exp(-chi2 / 2)
  CHECK(c.coverage == 1.0);
  // P(count_k >= t_k) at the observed shares, normal approximation with continuity correction: only the
  // second component (20 of 100, threshold 13) is uncertain.
  const auto p_covered = [](double count, double threshold) {
    const double sd = std::sqrt(count * (1 - count / 100));
    const double p = 0.5 * std::erfc(-(count - threshold + 0.5) / sd / std::sqrt(2.0));
    return p * (1 - p);
  };
  CHECK(c.coverage_se ==
        doctest::Approx(std::sqrt(p_covered(30, 13) + p_covered(20, 13) + p_covered(50, 25)) / 3)
            .epsilon(1e-12));
  CHECK(c.chi2_se == doctest::Approx(std::sqrt(2.0 * 2)));  // chi2 = dof: lambda = 0
  const auto a = assign_modes(mixture, x);
  CHECK(a.component[0] == 0);
  CHECK(a.mahalanobis2(0) == doctest::Approx(4.0));
  CHECK(a.component[99] == 2);

  const ModeCounts missing = mode_counts(mixture, points(30, 0, 70));
  CHECK(missing.chi2 == doctest::Approx(25.0 / 25 + 625.0 / 25 + 400.0 / 50));  // 34
  CHECK(missing.coverage == doctest::Approx(2.0 / 3));
  CHECK(missing.chi2_se == doctest::Approx(std::sqrt(2.0 * (2 + 2 * 32.0))));  // lambda = 34 - 2
  CHECK(missing.p_value == doctest::Approx(std::exp(-17.0)));
  // One component at the threshold ceil(w n / 2) = 13 of 100 is covered; at 12 it is not.
  CHECK(mode_counts(mixture, points(13, 37, 50)).coverage == 1.0);
  CHECK(mode_counts(mixture, points(12, 38, 50)).coverage == doctest::Approx(2.0 / 3));

  MetricsOptions o;
  o.metrics = {"mode_coverage", "mode_chi2"};
  const auto r = evaluate_metrics(points(30, 0, 70), x, &mixture, o);
  CHECK(find(r, "mode_coverage").value == missing.coverage);
  CHECK(find(r, "mode_coverage").std_error == missing.coverage_se);
  CHECK(find(r, "mode_chi2").value == missing.chi2);
  CHECK(find(r, "mode_chi2").std_error == missing.chi2_se);

  // eight_gaussians: equal weights, 8 - 1 dof, p-value from the regularised gamma function.
  const auto eight = load_data("eight_gaussians", 0);
  const ModeCounts e = mode_counts(*eight, reference_points(*eight, 63, 800));
  CHECK(e.dof == 7);
  CHECK(e.counts.sum() == 800);
  CHECK(e.p_value == doctest::Approx(boost::math::gamma_q(3.5, e.chi2 / 2)));
}

TEST_CASE("results do not depend on the thread count") {
  const auto mixture = load_data("eight_gaussians", 0);
  const Matrix x = reference_points(*mixture, 71, 3000), y = reference_points(*mixture, 72, 5000);
  MetricsOptions o;
  o.max_quadratic = 1000;
  o.projections = 40;
  o.threads = 1;
  const auto one_thread = evaluate_metrics(x, y, mixture.get(), o);
  o.threads = 2;
  const auto two_threads = evaluate_metrics(x, y, mixture.get(), o);
  REQUIRE(one_thread.size() == two_threads.size());
  for (std::size_t k = 0; k < one_thread.size(); ++k) {
    CAPTURE(one_thread[k].first);
    CHECK(one_thread[k].second.value == two_threads[k].second.value);
    CHECK(one_thread[k].second.std_error == two_threads[k].second.std_error);
  }
}

TEST_CASE("reference points are exact samples with indices from 2^31; the default reference size") {
  const auto mixture = load_data("eight_gaussians", 0);
  const Matrix r = reference_points(*mixture, 5, 3);
  Matrix expected(2, 3), first(2, 3);
  mixture->sample(5, Index{1} << 31, expected);
  mixture->sample(5, 0, first);
  CHECK(r == expected);
  CHECK(r != first);
  CHECK(default_reference_count(100) == 1000);
  CHECK(default_reference_count(10000) == 100000);
  CHECK(default_reference_count(50000) == 100000);
}
