// Counter-based noise (core/noise.hpp):
//   - Philox known answers: Random123's published vectors (tests/kat_vectors of
//     github.com/DEShawResearch/random123), for the generator the library uses (Philox4x32-10) and for
//     Philox4x64-10;
//   - CounterRng's documented stream layout, recomputed here from r123::Philox4x32 and the Box-Muller
//     formula of core/vector_math.hpp;
//   - normals: mean 0, variance 1, skewness 0, kurtosis 3, Kolmogorov-Smirnov and tail frequency, within
//     tolerances derived from standard errors; uniforms in (0, 1]; prefix stability; distinct streams;
//   - Brownian paths: the tree's increments telescope across grids, have variance t - t_next and are
//     uncorrelated across disjoint intervals; a sample's path does not depend on its chunk; the independent
//     source has variance h and is keyed by the step index.
#include <doctest/doctest.h>

#include <Random123/philox.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/noise.hpp"

using namespace scoresde;

namespace {
constexpr double eps = std::numeric_limits<double>::epsilon();
constexpr std::uint64_t ones64 = ~std::uint64_t{0};
constexpr std::uint32_t ones32 = ~std::uint32_t{0};
}  // namespace

TEST_CASE("Philox4x32-10 and Philox4x64-10 reproduce Random123's known-answer vectors") {
  // tests/kat_vectors, lines "philox4x32 10 ..." and "philox4x64 10 ...": counter (4 words), key (2 words),
  // expected (4 words). Zero, all-ones, and the digits of pi.
  {
    using P = r123::Philox4x32;
    P philox;
    struct Kat {
      P::ctr_type ctr;
      P::key_type key;
      P::ctr_type expected;
    };
    const Kat kats[] = {
        {{{0, 0, 0, 0}}, {{0, 0}}, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
        {{{ones32, ones32, ones32, ones32}},
         {{ones32, ones32}},
         {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
        {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
         {{0xa4093822, 0x299f31d0}},
         {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
    };
    for (const auto& k : kats) CHECK(philox(k.ctr, k.key) == k.expected);
  }
  {
    using P = r123::Philox4x64;
    P philox;
    struct Kat {
      P::ctr_type ctr;
      P::key_type key;
      P::ctr_type expected;
    };
    const Kat kats[] = {
        {{{0, 0, 0, 0}},
         {{0, 0}},
         {{0x16554d9eca36314c, 0xdb20fe9d672d0fdc, 0xd7e772cee186176b, 0x7e68b68aec7ba23b}}},
        {{{ones64, ones64, ones64, ones64}},
         {{ones64, ones64}},
         {{0x87b092c3013fe90b, 0x438c3c67be8d0224, 0x9cc7d7c69cd777b6, 0xa09caebf594f0ba0}}},
        {{{0x243f6a8885a308d3, 0x13198a2e03707344, 0xa4093822299f31d0, 0x082efa98ec4e6c89}},
         {{0x452821e638d01377, 0xbe5466cf34e90c6c}},
         {{0xa528f45403e61d95, 0x38c72dbd566e9788, 0xa5a1610e72fd18b5, 0x57bd43b5e52b7fe6}}},
    };
    for (const auto& k : kats) CHECK(philox(k.ctr, k.key) == k.expected);
  }
}

namespace {
// The stream layout documented in core/noise.cpp and core/vector_math.hpp, recomputed from the published
// generator: key = (seed low, seed high), counter = (a, b, c, purpose << 24 | p); block p gives the 64-bit
// words A = r0 << 32 | r1 and B = r2 << 32 | r3.
std::pair<std::uint64_t, std::uint64_t> words(std::uint64_t seed, NoisePurpose purpose, std::uint32_t a,
                                              std::uint32_t b, std::uint32_t c, std::uint32_t p) {
  r123::Philox4x32 philox;
  const r123::Philox4x32::key_type key = {
      {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  const r123::Philox4x32::ctr_type ctr = {{a, b, c, (static_cast<std::uint32_t>(purpose) << 24) | p}};
  const auto r = philox(ctr, key);
  return {(std::uint64_t{r[0]} << 32) | r[1], (std::uint64_t{r[2]} << 32) | r[3]};
}
}  // namespace

TEST_CASE(
    "CounterRng follows its documented layout: Philox4x32-10 words, 53-bit uniforms, Box-Muller normals") {
  for (std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{42}, std::uint64_t{0x123456789abcdefULL}}) {
    for (auto purpose : {NoisePurpose::prior, NoisePurpose::brownian, NoisePurpose::data}) {
      const CounterRng rng(seed, purpose);
      const std::uint32_t a = 17, b = 4000000000u, c = 3;
      double u[6], z[6];
      rng.uniforms(a, b, c, u, 6);
      rng.normals(a, b, c, z, 6);
      for (std::uint32_t p = 0; p < 3; ++p) {
        const auto [A, B] = words(seed, purpose, a, b, c, p);
        // Uniform: (top 53 bits + 1) 2^-53, exact in double.
        CHECK(u[2 * p] == (static_cast<double>(A >> 11) + 1.0) * 0x1p-53);
        CHECK(u[2 * p + 1] == (static_cast<double>(B >> 11) + 1.0) * 0x1p-53);
        // Normals: u1 = (A >> 11 + 1/2) 2^-53, u2 = (B >> 11) 2^-53, z = sqrt(-2 log u1) (cos, sin)(2 pi u2).
        // The library uses libmvec (< 4 ulp) for log, cos and sin; the angle 2 pi u2 carries ~1 ulp of 2 pi.
        // Together, |dz| <= ~8 eps (1 + 2 pi) radius: allow 64 eps radius.
        const double u1 = (static_cast<double>(A >> 11) + 0.5) * 0x1p-53;
        const double u2 = static_cast<double>(B >> 11) * 0x1p-53;
        const double radius = std::sqrt(-2.0 * std::log(u1));
        CHECK(std::abs(z[2 * p] - radius * std::cos(2 * std::numbers::pi * u2)) <= 64 * eps * radius);
        CHECK(std::abs(z[2 * p + 1] - radius * std::sin(2 * std::numbers::pi * u2)) <= 64 * eps * radius);
      }
    }
  }
}

namespace {
// 1e6 normals: counters (a, 7, 3) for a < 1000, 1000 values each.
std::vector<double> million_normals(const CounterRng& rng) {
  std::vector<double> z(1000000);
  for (std::uint64_t a = 0; a < 1000; ++a) rng.normals(a, 7, 3, z.data() + 1000 * a, 1000);
  return z;
}
// Standard normal CDF.
double Phi(double x) {
  return 0.5 * std::erfc(-x / std::numbers::sqrt2);
}
// Kolmogorov-Smirnov statistic sqrt(n) D_n of sorted data against a continuous CDF.
template <class F>
double ks_statistic(std::vector<double> x, F cdf) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double f = cdf(x[i]);
    d = std::max({d, f - i / n, (i + 1) / n - f});
  }
  return std::sqrt(n) * d;
}
}  // namespace

TEST_CASE("normals: 1e6 draws have mean 0, variance 1, skewness 0, kurtosis 3 (5 standard errors)") {
  const CounterRng rng(2024, NoisePurpose::prior);
  const std::vector<double> z = million_normals(rng);
  const double n = static_cast<double>(z.size());
  CHECK(std::all_of(z.begin(), z.end(), [](double v) { return std::isfinite(v); }));
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  for (double v : z) {
    m1 += v;
    m2 += v * v;
    m3 += v * v * v;
    m4 += v * v * v * v;
  }
  m1 /= n;
  m2 /= n;
  m3 /= n;
  m4 /= n;
  // Raw moments about the known mean 0, with the variances of the averaged terms:
  //   E z = 0 (Var 1), E z^2 = 1 (Var E z^4 - 1 = 2), E z^3 = 0 (Var E z^6 = 15),
  //   E z^4 = 3 (Var E z^8 - 9 = 96).
  // Standard errors sqrt(Var / n); 5 SE gives a two-sided p = 5.7e-7 each.
  CHECK(std::abs(m1) <= 5 * std::sqrt(1 / n));
  CHECK(std::abs(m2 - 1) <= 5 * std::sqrt(2 / n));
  CHECK(std::abs(m3) <= 5 * std::sqrt(15 / n));
  CHECK(std::abs(m4 - 3) <= 5 * std::sqrt(96 / n));
  // The standardised statistics (about the sample mean); asymptotic SEs sqrt(6/n) and sqrt(24/n).
  const double var = m2 - m1 * m1;
  const double skew = (m3 - 3 * m1 * m2 + 2 * m1 * m1 * m1) / std::pow(var, 1.5);
  const double kurt = (m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1 * m1 * m1 * m1) / (var * var);
  CHECK(std::abs(skew) <= 5 * std::sqrt(6 / n));
  CHECK(std::abs(kurt - 3) <= 5 * std::sqrt(24 / n));
}

TEST_CASE("normals: the distribution is N(0, 1) (Kolmogorov-Smirnov, tail frequencies)") {
  const CounterRng rng(7, NoisePurpose::corrector);
  const std::vector<double> z = million_normals(rng);
  const double n = static_cast<double>(z.size());
  // Kolmogorov distribution: P(sqrt(n) D_n > 1.95) = 0.001.
  CHECK(ks_statistic(z, Phi) <= 1.95);
  // Tails, where Box-Muller with too few bits or a wrong radius would show: P(|z| > c) = 2 (1 - Phi(c)),
  // counts binomial with SE sqrt(n p (1 - p)); 5 SE.
  for (double c : {1.0, 2.0, 3.0, 4.0}) {
    CAPTURE(c);
    const double p = 2 * (1 - Phi(c));
    const double count =
        static_cast<double>(std::count_if(z.begin(), z.end(), [&](double v) { return std::abs(v) > c; }));
    CHECK(std::abs(count - n * p) <= 5 * std::sqrt(n * p * (1 - p)));
  }
}

TEST_CASE("uniforms lie in (0, 1] and are U(0, 1) (mean within 5 SE, Kolmogorov-Smirnov)") {
  const CounterRng rng(11, NoisePurpose::data);
  std::vector<double> u(1000000);
  for (std::uint64_t a = 0; a < 1000; ++a) rng.uniforms(a, 2, 0, u.data() + 1000 * a, 1000);
  const double n = static_cast<double>(u.size());
  CHECK(*std::min_element(u.begin(), u.end()) > 0.0);
  CHECK(*std::max_element(u.begin(), u.end()) <= 1.0);
  double mean = 0;
  for (double v : u) mean += v;
  mean /= n;
  CHECK(std::abs(mean - 0.5) <= 5 * std::sqrt(1.0 / 12.0 / n));  // Var U(0,1) = 1/12
  CHECK(ks_statistic(u, [](double x) { return x; }) <= 1.95);    // P(sqrt(n) D_n > 1.95) = 0.001
}

TEST_CASE("a request's first m values do not depend on how many are asked for") {
  const CounterRng rng(5, NoisePurpose::brownian);
  std::vector<double> longz(101), longu(101);
  rng.normals(3, 9, 2, longz.data(), 101);
  rng.uniforms(3, 9, 2, longu.data(), 101);
  for (Index m : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 100}) {
    CAPTURE(m);
    std::vector<double> z(m), u(m);
    rng.normals(3, 9, 2, z.data(), m);
    rng.uniforms(3, 9, 2, u.data(), m);
    CHECK(std::equal(z.begin(), z.end(), longz.begin()));  // bitwise
    CHECK(std::equal(u.begin(), u.end(), longu.begin()));
  }
  // normal_columns: column j holds normals(first + j, b, c), whatever the number of columns and rows.
  for (Index rows : {1, 2, 3, 5}) {
    Matrix cols(rows, 13);
    rng.normal_columns(1000, 4, 1, cols);
    for (Index j = 0; j < 13; ++j) {
      CAPTURE(rows);
      CAPTURE(j);
      Vector one(rows);
      rng.normals(1000 + j, 4, 1, one.data(), rows);
      CHECK(one == cols.col(j));
    }
  }
}

namespace {
std::vector<double> first_values(const CounterRng& rng, std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  std::vector<double> z(8);
  rng.normals(a, b, c, z.data(), 8);
  return z;
}
// No value in common: two independent streams share a given double with probability ~0.
bool disjoint(const std::vector<double>& x, const std::vector<double>& y) {
  for (double v : x)
    if (std::find(y.begin(), y.end(), v) != y.end()) return false;
  return true;
}
}  // namespace

TEST_CASE("different purposes, seeds and counters give different streams") {
  const std::vector<NoisePurpose> purposes = {NoisePurpose::prior,     NoisePurpose::brownian,
                                              NoisePurpose::corrector, NoisePurpose::data,
                                              NoisePurpose::probe,     NoisePurpose::metric};
  // Seeds that differ only in the high 32 bits must differ too (the key holds both halves).
  const std::vector<std::uint64_t> seeds = {0,     1, 2, std::uint64_t{1} << 32, (std::uint64_t{1} << 32) + 1,
                                            ones64};
  std::vector<std::vector<double>> streams;
  for (auto p : purposes)
    for (auto s : seeds) streams.push_back(first_values(CounterRng(s, p), 0, 0, 0));
  const CounterRng rng(3, NoisePurpose::prior);
  for (auto [a, b, c] :
       std::vector<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>>{{1, 0, 0},
                                                                            {0, 1, 0},
                                                                            {0, 0, 1},
                                                                            {1, 1, 0},
                                                                            {0, 1, 1},
                                                                            {1, 0, 1},
                                                                            {0xFFFFFFFE, 0, 0},
                                                                            {0, 0xFFFFFFFE, 0}})
    streams.push_back(first_values(rng, a, b, c));
  for (std::size_t i = 0; i < streams.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      CHECK(disjoint(streams[i], streams[j]));
    }
  // And they are uncorrelated: sample correlation of 1e5 pairs has SE 1/sqrt(n); 5 SE.
  const Index n = 100000;
  std::vector<double> x(n), y(n), w(n);
  CounterRng(3, NoisePurpose::prior).normals(0, 0, 0, x.data(), n);
  CounterRng(3, NoisePurpose::corrector).normals(0, 0, 0, y.data(), n);
  CounterRng(3 + (std::uint64_t{1} << 32), NoisePurpose::prior).normals(0, 0, 0, w.data(), n);
  double xy = 0, xw = 0;
  for (Index i = 0; i < n; ++i) {
    xy += x[i] * y[i];
    xw += x[i] * w[i];
  }
  CHECK(std::abs(xy / n) <= 5 / std::sqrt(static_cast<double>(n)));
  CHECK(std::abs(xw / n) <= 5 / std::sqrt(static_cast<double>(n)));
}

TEST_CASE("counters must fit in 32 bits: larger ones are ConfigErrors") {
  const CounterRng rng(1, NoisePurpose::prior);
  double z[4];
  const std::uint64_t big = std::uint64_t{1} << 32;
  CHECK_THROWS_AS(rng.normals(big, 0, 0, z, 4), ConfigError);
  CHECK_THROWS_AS(rng.normals(0, big, 0, z, 4), ConfigError);
  CHECK_THROWS_AS(rng.normals(0, 0, big, z, 4), ConfigError);
  CHECK_THROWS_AS(rng.uniforms(big, 0, 0, z, 4), ConfigError);
  CHECK_THROWS_AS(rng.uniforms(0, big, 0, z, 4), ConfigError);
  Matrix m(2, 3);
  CHECK_THROWS_AS(rng.normal_columns(big - 1, 0, 0, m), ConfigError);  // columns big - 1 .. big + 1
  CHECK_NOTHROW(rng.normals(big - 1, big - 1, big - 1, z, 4));  // the largest index is 2^32 - 1
  CHECK_NOTHROW(rng.uniforms(big - 1, big - 1, big - 1, z, 4));
  Matrix last(2, 3);
  CHECK_NOTHROW(rng.normal_columns(big - 3, 0, 0, last));  // columns 2^32 - 3 .. 2^32 - 1
}

TEST_CASE("noise kinds map to names and back; an unknown name is a ConfigError naming --noise") {
  for (const auto& name : noise_names()) CHECK(to_string(noise_kind_from_string(name)) == name);
  try {
    noise_kind_from_string("pink");
    FAIL("no exception");
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    CHECK(msg.rfind("--noise", 0) == 0);
    for (const auto& name : noise_names()) CHECK(msg.find(name) != std::string::npos);
  }
}

namespace {
// Walks a grid (times decreasing) with one path object: the increments, one d x cols matrix per step.
std::vector<Matrix> walk(BrownianPath& path, const std::vector<double>& grid, Index d, Index cols) {
  std::vector<Matrix> inc;
  for (std::size_t k = 0; k + 1 < grid.size(); ++k) {
    Matrix out(d, cols);
    path.increment(static_cast<Index>(k), grid[k], grid[k + 1], out);
    inc.push_back(out);
  }
  return inc;
}
}  // namespace

TEST_CASE("Brownian tree: the increment over a coarse step is the sum of the increments over its sub-steps") {
  const double T = 1.0, eps_t = 1e-3;
  const Index d = 3, cols = 4, M = 1000;
  // One set of time points; the grids of 10 and 100 steps are every 100th and 10th of them, so every grid
  // evaluates W at bitwise the same times.
  std::vector<double> fine(M + 1);
  for (Index k = 0; k <= M; ++k) fine[k] = T + static_cast<double>(k) * (eps_t - T) / M;
  std::vector<std::vector<Matrix>> incs;
  for (Index N : {10, 100, 1000}) {
    std::vector<double> grid;
    for (Index k = 0; k <= N; ++k) grid.push_back(fine[k * (M / N)]);
    auto path = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
    incs.push_back(walk(*path, grid, d, cols));
  }
  // max |W| over the grid (increments down to t = 0 are W(t) itself): the scale of the rounding errors.
  double wmax = 0;
  {
    auto path = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
    Matrix w(d, cols);
    for (Index k = 0; k <= M; ++k) {
      path->increment(k, fine[k], 0.0, w);
      wmax = std::max(wmax, w.cwiseAbs().maxCoeff());
    }
  }
  for (std::size_t g = 0; g < 2; ++g) {
    const Index ratio = g == 0 ? 100 : 10;
    for (std::size_t k = 0; k < incs[g].size(); ++k) {
      CAPTURE(g);
      CAPTURE(k);
      Matrix sum = Matrix::Zero(d, cols);
      for (Index s = 0; s < ratio; ++s) sum += incs[2][k * ratio + s];
      // W is a function of t, so the fine increments telescope exactly; what is left is the rounding of the
      // differences and of the sum: <= (ratio + 1) ulps of the largest |W| on the way, bounded by wmax.
      CHECK((sum - incs[g][k]).cwiseAbs().maxCoeff() <= 2.0 * (ratio + 1) * eps * wmax);
    }
  }
  // The same path reached by independent grids built as the driver does, T + k (eps - T) / N: grid times
  // agree only up to rounding (|dt| <= 2 ulp(1) = 4.4e-16), and inside a 2^-30-wide leaf W is linear with
  // slope |dW|/leaf, |dW| <= 6 sqrt(leaf) (a 6 sigma bound on a normal): |dW/dt| <= 6 / sqrt(2^-30) = 2e5. So
  // sums agree within ~2 x 4.4e-16 x 2e5 = 1.8e-10 per end point.
  const double slope_tol = 2 * (2 * 2 * eps) * 6 / std::sqrt(std::ldexp(T, -brownian_tree_depth));
  for (Index N : {10, 100}) {
    std::vector<double> grid;
    for (Index k = 0; k <= N; ++k) grid.push_back(T + static_cast<double>(k) * (eps_t - T) / N);
    auto path = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
    const auto inc = walk(*path, grid, d, cols);
    Matrix total = Matrix::Zero(d, cols), total_fine = Matrix::Zero(d, cols);
    for (const auto& m : inc) total += m;
    for (const auto& m : incs[2]) total_fine += m;
    CHECK((total - total_fine).cwiseAbs().maxCoeff() <= slope_tol + 2.0 * (M + 1) * eps * wmax);
  }
}

TEST_CASE("Brownian tree: W(0) = 0, and a path object may be queried out of order") {
  const double T = 0.8;
  const Index d = 2, cols = 3;
  auto path = make_brownian_path(NoiseKind::brownian_tree, 5, T, 10, d, cols);
  Matrix w_t(d, cols), w_s(d, cols), w_ts(d, cols), tmp(d, cols);
  path->increment(0, 0.6, 0.0, w_t);   // W(0.6) - W(0)
  path->increment(1, 0.25, 0.0, w_s);  // not contiguous with the previous step: t != cached t_next
  path->increment(2, 0.6, 0.25, w_ts);
  // W(0) = 0 exactly, so w_t and w_s are W(0.6) and W(0.25) and the difference must match bitwise.
  CHECK(w_ts == w_t - w_s);
  auto fresh = make_brownian_path(NoiseKind::brownian_tree, 5, T, 10, d, cols);
  fresh->increment(0, 0.25, 0.0, tmp);
  CHECK(tmp == w_s);  // W(0.25) does not depend on what was asked before
  fresh->increment(1, T, 0.0, tmp);
  path->increment(3, T, 0.0, w_t);
  CHECK(tmp == w_t);
}

TEST_CASE(
    "Brownian tree: increments have variance t - t_next and are uncorrelated across disjoint intervals") {
  const double T = 1.0;
  const Index d = 2, cols = 20000;
  const std::vector<double> grid = {T, 0.7, 0.3337, 0.1, 0.0371, 1e-3, 0.0};
  auto path = make_brownian_path(NoiseKind::brownian_tree, 77, T, 0, d, cols);
  const auto inc = walk(*path, grid, d, cols);
  const double n = static_cast<double>(d * cols);  // independent N(0, h) draws per interval
  for (std::size_t k = 0; k < inc.size(); ++k) {
    CAPTURE(k);
    const double h = grid[k] - grid[k + 1];
    const Eigen::ArrayXd x = inc[k].reshaped().array();
    // Mean: SE sqrt(h / n). Variance about the known mean 0: mean of x^2, SE h sqrt(2 / n). Kurtosis of a
    // normal increment: E x^4 / h^2 = 3 with SE sqrt(96 / n) (Var of x^4 / h^2 is 105 - 9). 5 SE each.
    CHECK(std::abs(x.mean()) <= 5 * std::sqrt(h / n));
    CHECK(std::abs(x.square().mean() - h) <= 5 * h * std::sqrt(2 / n));
    CHECK(std::abs(x.pow(4).mean() / (h * h) - 3) <= 5 * std::sqrt(96 / n));
    // Disjoint intervals: correlation of standardised increments, SE 1/sqrt(n) for independent normals; 5 SE.
    for (std::size_t j = 0; j < k; ++j) {
      CAPTURE(j);
      const double hj = grid[j] - grid[j + 1];
      const double r = (x * inc[j].reshaped().array()).mean() / std::sqrt(h * hj);
      CHECK(std::abs(r) <= 5 / std::sqrt(n));
    }
    // Coordinates are independent: rows 0 and 1 (cols pairs).
    const double r01 = (inc[k].row(0).array() * inc[k].row(1).array()).mean() / h;
    CHECK(std::abs(r01) <= 5 / std::sqrt(static_cast<double>(cols)));
  }
}

TEST_CASE("a sample's Brownian path does not depend on the chunk it is requested in") {
  const double T = 1.0;
  const Index d = 3;
  const std::vector<double> grid = {T, 0.9, 0.55, 0.31, 0.02, 1e-3};
  for (auto kind : {NoiseKind::brownian_tree, NoiseKind::independent}) {
    CAPTURE(to_string(kind));
    auto all = make_brownian_path(kind, 123, T, 0, d, 8);
    auto alone = make_brownian_path(kind, 123, T, 5, d, 1);
    auto middle = make_brownian_path(kind, 123, T, 3, d, 4);
    const auto a = walk(*all, grid, d, 8), b = walk(*alone, grid, d, 1), c = walk(*middle, grid, d, 4);
    for (std::size_t k = 0; k < a.size(); ++k) {
      CAPTURE(k);
      CHECK(b[k].col(0) == a[k].col(5));  // bitwise
      CHECK(c[k].col(2) == a[k].col(5));
      CHECK(a[k].col(4) != a[k].col(5));  // and neighbours differ
    }
  }
}

TEST_CASE("independent noise: increment k is sqrt(t - t_next) z keyed by (sample, k)") {
  const Index d = 2, cols = 20000;
  auto path = make_brownian_path(NoiseKind::independent, 9, 1.0, 0, d, cols);
  Matrix x0(d, cols), x1(d, cols), again(d, cols), scaled(d, cols);
  path->increment(0, 1.0, 0.96, x0);
  path->increment(1, 1.0, 0.96, x1);      // same interval, next step index: new numbers
  path->increment(0, 1.0, 0.96, again);   // same step index: the same numbers
  path->increment(0, 0.5, 0.49, scaled);  // same step index, another interval: the same z, rescaled
  CHECK(again == x0);
  // sqrt(0.5 - 0.49) z against sqrt(1 - 0.96) z: their ratio, up to the roundings of two square roots, two
  // products and a quotient (4 eps relative).
  const double ratio = std::sqrt(0.5 - 0.49) / std::sqrt(1.0 - 0.96);
  CHECK((scaled - ratio * x0).cwiseAbs().maxCoeff() <= 4 * eps * x0.cwiseAbs().maxCoeff());
  const double h = 0.04, n = static_cast<double>(d * cols);
  for (const Matrix* m : {&x0, &x1}) {
    const Eigen::ArrayXd x = m->reshaped().array();
    CHECK(std::abs(x.mean()) <= 5 * std::sqrt(h / n));                   // SE sqrt(h / n)
    CHECK(std::abs(x.square().mean() - h) <= 5 * h * std::sqrt(2 / n));  // SE h sqrt(2 / n)
  }
  // Steps 0 and 1 are independent draws: correlation SE 1/sqrt(n); 5 SE.
  CHECK(std::abs((x0.array() * x1.array()).mean() / h) <= 5 / std::sqrt(n));
  // Each step draws fresh numbers, so over the same grid the tree and the independent source differ, and the
  // independent source's increments do not telescope: a coarse step is not the sum of its sub-steps.
  auto coarse = make_brownian_path(NoiseKind::independent, 9, 1.0, 0, d, 1);
  auto fine = make_brownian_path(NoiseKind::independent, 9, 1.0, 0, d, 1);
  Matrix c(d, 1), f0(d, 1), f1(d, 1);
  coarse->increment(0, 1.0, 0.5, c);
  fine->increment(0, 1.0, 0.75, f0);
  fine->increment(1, 0.75, 0.5, f1);
  CHECK((c - f0 - f1).cwiseAbs().maxCoeff() > 1e-6);
}

namespace {
// The (increment, area) pairs of a walk over a grid (times decreasing).
struct Pairs {
  std::vector<Matrix> dw, area;
};
Pairs walk_with_area(BrownianPath& path, const std::vector<double>& grid, Index d, Index cols) {
  Pairs p;
  for (std::size_t k = 0; k + 1 < grid.size(); ++k) {
    Matrix dw(d, cols), area(d, cols);
    path.increment_and_area(static_cast<Index>(k), grid[k], grid[k + 1], dw, area);
    p.dw.push_back(dw);
    p.area.push_back(area);
  }
  return p;
}

// Chen's relation for the pair (B increment, space-time area) of consecutive pieces of lengths h_i (in the order B
// runs, i.e. from t down to t_next): int_0^h B = sum_i h_i (B(s_i) + w_i / 2 + H_i), H = int / h - B(h) / 2.
void combine(const std::vector<double>& h, const std::vector<Matrix>& w, const std::vector<Matrix>& area,
             Matrix& dw_out, Matrix& area_out) {
  Matrix b = Matrix::Zero(w[0].rows(), w[0].cols()), integral = b;
  double total = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    integral += h[i] * (b + 0.5 * w[i] + area[i]);
    b += w[i];
    total += h[i];
  }
  dw_out = b;
  area_out = integral / total - 0.5 * b;
}
}  // namespace

TEST_CASE("Brownian tree with area: a coarse step's (increment, area) is the exact combination of its sub-steps'") {
  const double T = 1.0, eps_t = 1e-3;
  const Index d = 3, cols = 4, M = 1000;
  std::vector<double> fine(M + 1);
  for (Index k = 0; k <= M; ++k) fine[k] = T + static_cast<double>(k) * (eps_t - T) / M;
  auto fine_path = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
  const Pairs f = walk_with_area(*fine_path, fine, d, cols);
  double wmax = 0;
  for (const auto& m : f.dw) wmax += m.cwiseAbs().maxCoeff();  // a bound on max |W| on the way
  for (Index N : {1, 10, 100}) {
    CAPTURE(N);
    const Index ratio = M / N;
    std::vector<double> grid;
    for (Index k = 0; k <= N; ++k) grid.push_back(fine[k * ratio]);
    auto path = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
    const Pairs c = walk_with_area(*path, grid, d, cols);
    for (Index k = 0; k < N; ++k) {
      CAPTURE(k);
      std::vector<double> h;
      std::vector<Matrix> w, a;
      for (Index s = k * ratio; s < (k + 1) * ratio; ++s) {
        h.push_back(fine[s] - fine[s + 1]);
        w.push_back(f.dw[s]);
        a.push_back(f.area[s]);
      }
      Matrix dw, area;
      combine(h, w, a, dw, area);
      // The pairs come from W and I(t) = int_0^t W at the step's ends, so they combine exactly; what is left is
      // rounding: of I (|I| <= T wmax, 30 additions on a walk) divided by the fine step, a few hundred ulps.
      const double tol = 300 * eps * T * wmax / (fine[0] - fine[1]);
      CHECK((dw - c.dw[k]).cwiseAbs().maxCoeff() <= 2.0 * (ratio + 1) * eps * wmax);
      CHECK((area - c.area[k]).cwiseAbs().maxCoeff() <= tol);
    }
  }
  // The pairs do not depend on the chunk a sample is in, nor on what was asked before.
  auto alone = make_brownian_path(NoiseKind::brownian_tree, 31, T, 2, d, 1);
  Matrix dw(d, 1), area(d, 1);
  alone->increment_and_area(0, fine[500], fine[700], dw, area);
  auto again = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
  Matrix dw4(d, cols), area4(d, cols);
  again->increment_and_area(0, fine[500], fine[700], dw4, area4);
  CHECK(dw.col(0) == dw4.col(2));
  CHECK(area.col(0) == area4.col(2));
  // W(T) is the first tree's; the increments below it come from the area tree (a different path), and increment()
  // is unaffected by asking for areas.
  auto plain = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
  Matrix w_plain(d, cols), w_area(d, cols), scratch(d, cols);
  plain->increment(0, T, 0.0, w_plain);
  again->increment_and_area(1, T, 0.0, w_area, scratch);
  CHECK(w_plain == w_area);
  Matrix before(d, cols), after(d, cols);
  plain->increment(1, 0.6, 0.3, before);
  plain->increment_and_area(2, 0.6, 0.3, w_area, scratch);
  auto fresh = make_brownian_path(NoiseKind::brownian_tree, 31, T, 0, d, cols);
  fresh->increment(0, 0.6, 0.3, after);
  CHECK(before == after);
  CHECK((w_area - before).cwiseAbs().maxCoeff() > 1e-6);
}

TEST_CASE("Brownian tree with area: dw ~ N(0, h), H ~ N(0, h/12), independent, and independent across steps") {
  const double T = 1.0;
  const Index d = 2, cols = 20000;
  const std::vector<double> grid = {T, 0.7, 0.3337, 0.1, 0.0371, 1e-3, 0.0};
  auto path = make_brownian_path(NoiseKind::brownian_tree, 77, T, 0, d, cols);
  const Pairs p = walk_with_area(*path, grid, d, cols);
  const double n = static_cast<double>(d * cols);
  for (std::size_t k = 0; k < p.dw.size(); ++k) {
    CAPTURE(k);
    const double h = grid[k] - grid[k + 1];
    const Eigen::ArrayXd w = p.dw[k].reshaped().array() / std::sqrt(h);
    const Eigen::ArrayXd a = p.area[k].reshaped().array() / std::sqrt(h / 12.0);
    // Standardised: mean SE 1/sqrt(n), second moment SE sqrt(2/n), fourth moment 3 with SE sqrt(96/n), products of
    // independent standard normals mean 0 with SE 1/sqrt(n), E[w^2 a^2] = 1 with SE sqrt(8/n); 5 SE each.
    for (const Eigen::ArrayXd* x : {&w, &a}) {
      CHECK(std::abs(x->mean()) <= 5 / std::sqrt(n));
      CHECK(std::abs(x->square().mean() - 1) <= 5 * std::sqrt(2 / n));
      CHECK(std::abs(x->pow(4).mean() - 3) <= 5 * std::sqrt(96 / n));
    }
    CHECK(std::abs((w * a).mean()) <= 5 / std::sqrt(n));
    CHECK(std::abs((w.square() * a.square()).mean() - 1) <= 5 * std::sqrt(8 / n));
    for (std::size_t j = 0; j < k; ++j) {
      CAPTURE(j);
      const double hj = grid[j] - grid[j + 1];
      const Eigen::ArrayXd wj = p.dw[j].reshaped().array() / std::sqrt(hj);
      const Eigen::ArrayXd aj = p.area[j].reshaped().array() / std::sqrt(hj / 12.0);
      CHECK(std::abs((a * aj).mean()) <= 5 / std::sqrt(n));
      CHECK(std::abs((a * wj).mean()) <= 5 / std::sqrt(n));
      CHECK(std::abs((w * aj).mean()) <= 5 / std::sqrt(n));
      CHECK(std::abs((w * wj).mean()) <= 5 / std::sqrt(n));
    }
  }
}

TEST_CASE("independent noise with area: the increment is increment()'s, the area sqrt(h/12) z keyed by (sample, k)") {
  const Index d = 2, cols = 20000;
  auto path = make_brownian_path(NoiseKind::independent, 9, 1.0, 0, d, cols);
  Matrix x(d, cols), dw(d, cols), area(d, cols), area1(d, cols), again(d, cols);
  path->increment(3, 0.5, 0.46, x);
  path->increment_and_area(3, 0.5, 0.46, dw, area);
  CHECK(dw == x);
  path->increment_and_area(4, 0.5, 0.46, x, area1);
  path->increment_and_area(3, 0.5, 0.46, x, again);
  CHECK(again == area);
  const double h = 0.04, n = static_cast<double>(d * cols);
  const Eigen::ArrayXd a = area.reshaped().array() / std::sqrt(h / 12), w = dw.reshaped().array() / std::sqrt(h);
  CHECK(std::abs(a.mean()) <= 5 / std::sqrt(n));
  CHECK(std::abs(a.square().mean() - 1) <= 5 * std::sqrt(2 / n));
  CHECK(std::abs((a * w).mean()) <= 5 / std::sqrt(n));
  CHECK(std::abs((a * area1.reshaped().array() / std::sqrt(h / 12)).mean()) <= 5 / std::sqrt(n));
}

TEST_CASE("tree streams: stream 1 is another path of the same sample, with the same law") {
  const Index d = 2, cols = 20000;
  auto shared = make_brownian_path(NoiseKind::brownian_tree, 4, 1.0, 0, d, cols);
  auto own = make_brownian_path(NoiseKind::brownian_tree, 4, 1.0, 0, d, cols, 1);
  Matrix a(d, cols), b(d, cols);
  shared->increment(0, 1.0, 0.25, a);
  own->increment(0, 1.0, 0.25, b);
  const double h = 0.75, n = static_cast<double>(d * cols);
  CHECK(std::abs(b.reshaped().array().square().mean() - h) <= 5 * h * std::sqrt(2 / n));
  CHECK(std::abs((a.array() * b.array()).mean() / h) <= 5 / std::sqrt(n));
}
