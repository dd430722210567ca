// Gaussian mixtures and their exact diffused scores (shared/ORACLES.md, "Gaussian-mixture data"):
//   - log p_t, score and Laplacian against an independent evaluation written here with Eigen's LLT
//     (C_k = alpha^2 S_k + sigma^2 I, log-sum-exp over k), for isotropic and full-covariance mixtures;
//   - score against central differences of log p_t, Laplacian against central differences of the score,
//     with a step and tolerance derived from a bound on the derivatives of a log-sum-exp of quadratics
//     (see fd_step);
//   - a single Gaussian under VP against N(alpha mu, alpha^2 s^2 + sigma^2);
//   - finiteness far from every mode, where exp() of every logit underflows;
//   - exact sampling (moments within standard errors, index-keyed columns);
//   - built-in data and the JSON mixture parser's errors;
//   - the evaluation counters of MixtureScore;
//   - a batch with a time per column: each column against the oracle at its own time, and (isotropic mixtures) bit
//     for bit against the same column alone, in other batches and other lanes;
//   - the same for d = 2 mixtures of 1, 8 and 11 components (component counts fixed at compile time and not) and for
//     mixtures with one variance (affine logits);
//   - NaN scores where the logits overflow (a diverging sampler is caught), finite ones below.
#include <doctest/doctest.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/sde.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"

using namespace scoresde;

namespace {

constexpr double eps = std::numeric_limits<double>::epsilon();

// A mixture as the test knows it: unnormalised weights, means (d x K) and covariances.
struct Spec {
  std::string label;
  Vector w;
  Matrix mu;
  std::vector<Matrix> S;
  bool isotropic;
  GaussianMixture build() const {
    if (!isotropic) return GaussianMixture(w, mu, S);
    Vector stds(S.size());
    for (std::size_t k = 0; k < S.size(); ++k) stds(k) = std::sqrt(S[k](0, 0));
    return GaussianMixture::isotropic(w, mu, stds);
  }
};

Matrix random_normal(std::mt19937_64& gen, Index rows, Index cols) {
  std::normal_distribution<double> normal;
  Matrix m(rows, cols);
  for (Index j = 0; j < cols; ++j)
    for (Index i = 0; i < rows; ++i) m(i, j) = normal(gen);
  return m;
}

// K = 3 components with unequal weights 5 : 3 : 2 and means ~ N(0, 2^2 I).
Spec isotropic_spec(Index d, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  Spec s{"isotropic d=" + std::to_string(d), Vector(3), 2.0 * random_normal(gen, d, 3), {}, true};
  s.w << 5.0, 3.0, 2.0;
  for (double std_k : {0.3, 1.0, 0.6}) s.S.push_back(std_k * std_k * Matrix::Identity(d, d));
  return s;
}

// K components with weights 1 : 2 : ... : K, means ~ N(0, 2^2 I) and standard deviations cycling through 0.3, 1.0,
// 0.6 (so that several components share a variance), or all 0.5 (one_variance: the kernel's affine logits).
Spec isotropic_spec(Index d, Index K, std::uint64_t seed, bool one_variance = false) {
  std::mt19937_64 gen(seed);
  Spec s{"isotropic d=" + std::to_string(d) + " K=" + std::to_string(K) + (one_variance ? ", one variance" : ""),
         Vector(K),
         2.0 * random_normal(gen, d, K),
         {},
         true};
  const double stds[] = {0.3, 1.0, 0.6};
  for (Index k = 0; k < K; ++k) {
    s.w(k) = static_cast<double>(k + 1);
    const double std_k = one_variance ? 0.5 : stds[k % 3];
    s.S.push_back(std_k * std_k * Matrix::Identity(d, d));
  }
  return s;
}

// Random SPD covariances S = A A^T / d + c I with different scales per component (condition numbers ~10-100).
Spec full_spec(Index d, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  Spec s{"full d=" + std::to_string(d), Vector(3), 2.0 * random_normal(gen, d, 3), {}, false};
  s.w << 5.0, 3.0, 2.0;
  for (double scale : {0.2, 1.0, 0.5}) {
    const Matrix A = random_normal(gen, d, d);
    Matrix S = scale * (A * A.transpose() / static_cast<double>(d) + 0.05 * Matrix::Identity(d, d));
    S = 0.5 * (S + S.transpose()).eval();  // exactly symmetric
    s.S.push_back(S);
  }
  return s;
}

std::vector<Spec> all_specs() {
  // d = 1, 2, 3 take the fused score kernel's fixed-dimension paths, d = 5 its general one (core/vector_math.hpp).
  return {isotropic_spec(1, 15), isotropic_spec(2, 16), isotropic_spec(3, 11),
          isotropic_spec(5, 12), full_spec(3, 13),      full_spec(5, 14)};
}

SdeOptions sde_options(SdeKind kind, VpSchedule schedule = VpSchedule::linear) {
  SdeOptions o;
  o.kind = kind;
  o.schedule = schedule;
  return o;
}

std::vector<SdeOptions> all_sdes() {
  return {sde_options(SdeKind::vp), sde_options(SdeKind::vp, VpSchedule::cosine), sde_options(SdeKind::subvp),
          sde_options(SdeKind::ve)};
}

// The independent oracle at one point: per-component logits, scores s_k = -C_k^{-1}(x - alpha mu_k),
// tr C_k^{-1}, and their log-sum-exp combination.
struct Direct {
  Vector logit, gamma, trace_inv;
  Matrix s;  // d x K
  double log_p = 0, cond = 0;
  Vector score;
  double laplacian = 0;
};

Direct direct(const Spec& m, double alpha, double sigma, const Vector& x) {
  const Index d = x.size(), K = m.mu.cols();
  const double wsum = m.w.sum();
  Direct r;
  r.logit.resize(K);
  r.trace_inv.resize(K);
  r.s.resize(d, K);
  for (Index k = 0; k < K; ++k) {
    const Matrix C = alpha * alpha * m.S[k] + sigma * sigma * Matrix::Identity(d, d);
    const Eigen::LLT<Matrix> llt(C);
    REQUIRE(llt.info() == Eigen::Success);
    const Vector diff = x - alpha * m.mu.col(k);
    const Vector sol = llt.solve(diff);
    const Matrix Cinv = llt.solve(Matrix::Identity(d, d));
    const double logdet = 2.0 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
    r.logit(k) =
        std::log(m.w(k) / wsum) - 0.5 * diff.dot(sol) - 0.5 * d * std::log(2 * std::numbers::pi) - 0.5 * logdet;
    r.s.col(k) = -sol;
    r.trace_inv(k) = Cinv.trace();
    const Eigen::SelfAdjointEigenSolver<Matrix> eig(C, Eigen::EigenvaluesOnly);
    r.cond = std::max(r.cond, eig.eigenvalues().maxCoeff() / eig.eigenvalues().minCoeff());
  }
  const double mx = r.logit.maxCoeff();
  r.log_p = mx + std::log((r.logit.array() - mx).exp().sum());
  r.gamma = (r.logit.array() - r.log_p).exp();
  r.score = r.s * r.gamma;
  r.laplacian = 0;
  for (Index k = 0; k < K; ++k) r.laplacian += r.gamma(k) * (r.s.col(k).squaredNorm() - r.trace_inv(k));
  r.laplacian -= r.score.squaredNorm();
  return r;
}

// Rounding errors of the library's values at a point (what a correct implementation achieves, with margin).
// Each logit is a quadratic form evaluated through the eigendecomposition of S_k, whose backward error
// perturbs C_k by ~eps |alpha^2 S_k|: relative error ~eps cond(C_k) in the quadratic form. 64 eps stands for
// a few ulps per operation with a generous margin. Then, with dl_k the error of logit k:
//   log p = LSE(logits) moves by sum_k gamma_k dl_k;
//   gamma_k moves by gamma_k (dl_k - E dl), so score = sum_k gamma_k s_k moves by at most
//   sum_k gamma_k (dl_k + E dl) |s_k - score|, plus the errors of the s_k themselves (eps cond |s_k|).
double logit_err(const Direct& r, Index k) {
  return 64 * eps * r.cond * (1 + std::abs(r.logit(k)));
}
double log_p_rounding(const Direct& r) {
  double e = 64 * eps * (1 + std::abs(r.log_p));
  for (Index k = 0; k < r.logit.size(); ++k) e += r.gamma(k) * logit_err(r, k);
  return e;
}
double score_rounding(const Direct& r) {
  double mean_dl = 0;
  for (Index k = 0; k < r.logit.size(); ++k) mean_dl += r.gamma(k) * logit_err(r, k);
  double e = 0;
  for (Index k = 0; k < r.logit.size(); ++k) {
    e += r.gamma(k) * (logit_err(r, k) + mean_dl) * (r.s.col(k) - r.score).cwiseAbs().maxCoeff();
    e += r.gamma(k) * 64 * eps * r.cond * r.s.col(k).cwiseAbs().maxCoeff();
  }
  return e;
}
// Laplacian = sum_k gamma_k q_k - |score|^2 with q_k = |s_k|^2 - tr C_k^{-1}: the gamma errors move it by
// sum_k gamma_k (dl_k + E dl) |q_k - E q|; each term carries eps cond of its size; |score|^2 moves by
// 2 |score|_1 score_rounding.
double laplacian_rounding(const Direct& r) {
  const Index K = r.logit.size();
  double mean_dl = 0, mean_q = 0;
  for (Index k = 0; k < K; ++k) {
    mean_dl += r.gamma(k) * logit_err(r, k);
    mean_q += r.gamma(k) * (r.s.col(k).squaredNorm() - r.trace_inv(k));
  }
  double e = 2 * r.score.cwiseAbs().sum() * score_rounding(r) + 64 * eps * r.cond * r.score.squaredNorm();
  for (Index k = 0; k < K; ++k) {
    const double q = r.s.col(k).squaredNorm() - r.trace_inv(k);
    e += r.gamma(k) * (logit_err(r, k) + mean_dl) * std::abs(q - mean_q);
    e += r.gamma(k) * 64 * eps * r.cond * (r.s.col(k).squaredNorm() + r.trace_inv(k));
  }
  return e;
}

// Central-difference bounds along a unit direction v (shared/ORACLES.md has the Laplacian; this is its
// derivation one and two orders further). Along x + tau v, log p = log sum_k exp(c_k + a_k tau - b_k tau^2 /
// 2) with a_k = v.s_k, b_k = v^T C_k^{-1} v, exactly, because every log N_k is quadratic. With u_k = a_k -
// b_k tau and E the average under the responsibilities gamma_k(tau):
//   d3/dtau3 log p = k3(u) - 3 Cov(u, b),          |.| <= 8 A^3 + 6 A B,
//   d4/dtau4 log p = k4(u) - 6 k(u, u, b) + 3 Var(b), |.| <= 48 A^4 + 24 A^2 B + 0.75 B^2,
// with A >= max_k |u_k| on the stencil and 0 <= b_k <= B (|u - Eu| <= 2A, |b - Eb| <= B).
struct Bounds {
  double A, B;
  double m3() const { return 8 * A * A * A + 6 * A * B; }
  double m4() const { return 48 * A * A * A * A + 24 * A * A * B + 0.75 * B * B; }
};
// The step minimising truncation h^2 M / 6 plus rounding delta / h, and that total, which is the tolerance.
// M is the third (order 3) or fourth (order 4) derivative bound along e_i with A = max_k |s_k,i| + B h_max,
// valid on a stencil of half-width h <= h_max: start from h_max = 1e-3 and widen it until the chosen h fits
// (a larger h_max only increases M and so decreases h: one or two rounds).
std::pair<double, double> fd_step(const Direct& r, Index i, double delta, int order) {
  const double B = r.trace_inv.maxCoeff();  // tr C^{-1} >= lambda_max(C^{-1}) >= e_i^T C^{-1} e_i
  double h_max = 1e-3;
  for (;;) {
    const Bounds b{r.s.row(i).cwiseAbs().maxCoeff() + B * h_max, B};
    const double M = order == 3 ? b.m3() : b.m4();
    const double h = std::cbrt(3 * delta / M);
    if (h <= h_max) return {h, h * h * M / 6 + delta / h};
    h_max = h;
  }
}

// Points where the test evaluates: near each diffused mean (within ~1.5 std), between pairs of means (where
// the responsibilities switch and the log-sum-exp matters most), and a few std out.
Matrix test_points(const Spec& m, double alpha, double sigma, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  const Index d = m.mu.rows(), K = m.mu.cols();
  Matrix x(d, 3 * K);
  for (Index k = 0; k < K; ++k) {
    const double scale = std::sqrt((alpha * alpha * m.S[k].trace() + d * sigma * sigma) / d);
    x.col(k) = alpha * m.mu.col(k) + 0.8 * scale * random_normal(gen, d, 1);
    x.col(K + k) = 0.5 * alpha * (m.mu.col(k) + m.mu.col((k + 1) % K)) + 0.1 * scale * random_normal(gen, d, 1);
    x.col(2 * K + k) = alpha * m.mu.col(k) + 3.0 * scale * random_normal(gen, d, 1).normalized();
  }
  return x;
}

// log p_t at every column of x, asked for alone (the path that once wrote unsized scratch for full covariances).
Vector log_p(const MixtureScore& model, const Sde&, const Matrix& x, double t) {
  Vector lp;
  model.log_density(x, t, lp);
  return lp;
}

bool same_bits(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

std::vector<double> test_times(const Sde& sde) {
  return {1e-3, 0.05, 0.3, 0.7, sde.T()};
}

}  // namespace

TEST_CASE("log p_t, score and Laplacian equal an independent LLT evaluation of sum_k w_k N(alpha mu_k, C_k)") {
  for (const auto& spec : all_specs()) {
    const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
    CHECK(mixture->is_isotropic() == spec.isotropic);
    for (const auto& o : all_sdes()) {
      const auto sde = make_sde(o);
      const MixtureScore model(mixture, *sde);
      for (double t : test_times(*sde)) {
        CAPTURE(spec.label);
        CAPTURE(sde->name());
        CAPTURE(to_string(o.schedule));
        CAPTURE(t);
        const double alpha = sde->alpha(t), sigma = sde->sigma(t);
        const Matrix x = test_points(spec, alpha, sigma, 100);
        Vector lp, lap;
        Matrix score(x.rows(), x.cols());
        lp = log_p(model, *sde, x, t);
        model.laplacian(x, t, lap);
        model.score(x, Vector::Constant(x.cols(), t), score);
        for (Index j = 0; j < x.cols(); ++j) {
          const Direct r = direct(spec, alpha, sigma, x.col(j));
          // Tolerances: the rounding model above (the oracle's own LLT evaluation has errors of the same
          // kind, hence the factor 2).
          CHECK(std::abs(lp(j) - r.log_p) <= 2 * log_p_rounding(r));
          CHECK((score.col(j) - r.score).cwiseAbs().maxCoeff() <= 2 * score_rounding(r));
          CHECK(std::abs(lap(j) - r.laplacian) <= 2 * laplacian_rounding(r));
        }
      }
    }
  }
}

TEST_CASE("score = grad log p_t by central differences; Laplacian = div score by central differences") {
  for (const auto& spec : all_specs()) {
    const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
    for (const auto& o : all_sdes()) {
      const auto sde = make_sde(o);
      const MixtureScore model(mixture, *sde);
      for (double t : test_times(*sde)) {
        CAPTURE(spec.label);
        CAPTURE(sde->name());
        CAPTURE(to_string(o.schedule));
        CAPTURE(t);
        const double alpha = sde->alpha(t), sigma = sde->sigma(t);
        const Matrix x = test_points(spec, alpha, sigma, 200);
        const Index d = x.rows();
        Vector lap;
        model.laplacian(x, t, lap);
        Matrix score(d, x.cols());
        model.score(x, Vector::Constant(x.cols(), t), score);
        for (Index j = 0; j < x.cols(); ++j) {
          const Direct r = direct(spec, alpha, sigma, x.col(j));
          const double delta = log_p_rounding(r);
          double div = 0, div_tol = 0;
          for (Index i = 0; i < d; ++i) {
            CAPTURE(j);
            CAPTURE(i);
            // d/dx_i log p: step and tolerance from the third-derivative bound and log p's rounding error.
            {
              const auto [h, tol] = fd_step(r, i, delta, 3);
              Matrix xs(d, 2);
              xs.col(0) = xs.col(1) = x.col(j);
              xs(i, 0) += h;
              xs(i, 1) -= h;
              Vector lps;
              lps = log_p(model, *sde, xs, t);
              const double fd = (lps(0) - lps(1)) / (xs(i, 0) - xs(i, 1));
              CHECK(std::abs(fd - score(i, j)) <= tol);
            }
            // d/dx_i score_i: the fourth-derivative bound and the score's rounding error.
            {
              const auto [h, tol] = fd_step(r, i, score_rounding(r), 4);
              Matrix xs(d, 2);
              xs.col(0) = xs.col(1) = x.col(j);
              xs(i, 0) += h;
              xs(i, 1) -= h;
              Matrix ss(d, 2);
              model.score(xs, Vector::Constant(2, t), ss);
              div += (ss(i, 0) - ss(i, 1)) / (xs(i, 0) - xs(i, 1));
              div_tol += tol;
            }
          }
          CHECK(std::abs(div - lap(j)) <= div_tol);
        }
      }
    }
  }
}

TEST_CASE("at t = 0 the density is p_0 = sum_k w_k N(mu_k, S_k) itself") {
  for (const auto& spec : {full_spec(3, 21), full_spec(5, 22)}) {
    const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
    for (const auto& o : all_sdes()) {
      const auto sde = make_sde(o);
      CAPTURE(spec.label);
      CAPTURE(sde->name());
      REQUIRE(sde->alpha(0.0) == 1.0);
      REQUIRE(sde->sigma(0.0) == 0.0);
      const MixtureScore model(mixture, *sde);
      const Matrix x = test_points(spec, 1.0, 0.0, 300);
      const Vector lp = log_p(model, *sde, x, 0.0);
      for (Index j = 0; j < x.cols(); ++j) {
        // Written out without the diffusion: log sum_k w_k (2 pi)^{-d/2} |S_k|^{-1/2} exp(-q_k / 2).
        const Index d = x.rows();
        double p = 0, err = 0;
        for (Index k = 0; k < 3; ++k) {
          const Eigen::LLT<Matrix> llt(spec.S[k]);
          const Vector diff = x.col(j) - spec.mu.col(k);
          const double q = diff.dot(llt.solve(diff));
          const double det = std::pow(llt.matrixL().toDenseMatrix().diagonal().prod(), 2);
          const double pk =
              spec.w(k) / spec.w.sum() * std::exp(-0.5 * q) / std::sqrt(std::pow(2 * std::numbers::pi, d) * det);
          p += pk;
          // Each side evaluates q_k with relative error ~eps cond(S_k) (64 eps: a few ulps per operation,
          // with margin), which moves log p by p_k / p times that. The points are within a few std: p > 0.
          const Eigen::SelfAdjointEigenSolver<Matrix> eig(spec.S[k], Eigen::EigenvaluesOnly);
          const double cond = eig.eigenvalues().maxCoeff() / eig.eigenvalues().minCoeff();
          err += pk * 64 * eps * cond * (1 + q);
        }
        REQUIRE(p > 0);
        CHECK(std::abs(lp(j) - std::log(p)) <= 64 * eps * (1 + std::abs(std::log(p))) + 2 * err / p);
      }
    }
  }
}

TEST_CASE("a single Gaussian N(mu, s^2 I) under VP diffuses to N(alpha mu, alpha^2 s^2 + sigma^2)") {
  SdeOptions o;
  o.beta_min = 0.3;
  o.beta_max = 11.0;
  const auto sde = make_sde(o);
  const Index d = 4;
  Matrix mu(d, 1);
  mu << 1.5, -2.0, 0.25, 3.0;
  const double s = 0.7;
  const auto mixture =
      std::make_shared<const GaussianMixture>(GaussianMixture::isotropic(Vector::Ones(1), mu, Vector::Constant(1, s)));
  const MixtureScore model(mixture, *sde);
  std::mt19937_64 gen(5);
  for (double t : {0.0, 1e-3, 0.1, 0.5, 1.0}) {
    CAPTURE(t);
    // Closed form of ORACLES.md: log alpha = -t^2 (b1 - b0)/4 - t b0/2, sigma^2 = 1 - alpha^2.
    const double log_alpha = -t * t * (o.beta_max - o.beta_min) / 4 - t * o.beta_min / 2;
    const double alpha = std::exp(log_alpha);
    const double v = alpha * alpha * s * s + (1 - alpha * alpha);
    const Matrix x = (alpha * mu).replicate(1, 6) + std::sqrt(v) * 2.0 * random_normal(gen, d, 6);
    Vector lp, lap;
    Matrix score(d, 6);
    model.log_density(x, t, lp);
    model.laplacian(x, t, lap);
    model.score(x, Vector::Constant(6, t), score);
    for (Index j = 0; j < 6; ++j) {
      const Vector r = x.col(j) - alpha * mu;
      const double ref = -r.squaredNorm() / (2 * v) - 0.5 * d * std::log(2 * std::numbers::pi * v);
      // A few ulps of the largest term; v itself is computed with 1 - alpha^2 here and expm1 in the library
      // (agreement ~ eps / v, v >= s^2 = 0.49).
      CHECK(std::abs(lp(j) - ref) <= 64 * eps * (1 + std::abs(ref)));
      CHECK((score.col(j) + r / v).cwiseAbs().maxCoeff() <= 64 * eps * (1 + r.cwiseAbs().maxCoeff() / v));
      CHECK(std::abs(lap(j) + d / v) <= 64 * eps * d / v);
    }
  }
}

TEST_CASE("far from every mode (|x| ~ 1e3) log p_t and the score are finite and exact: log-sum-exp") {
  for (const auto& spec : all_specs()) {
    const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
    for (const auto& o : all_sdes()) {
      const auto sde = make_sde(o);
      const MixtureScore model(mixture, *sde);
      for (double t : {1e-3, 0.5}) {
        CAPTURE(spec.label);
        CAPTURE(sde->name());
        CAPTURE(t);
        const double alpha = sde->alpha(t), sigma = sde->sigma(t);
        const Index d = spec.mu.rows();
        std::mt19937_64 gen(9);
        Matrix x = random_normal(gen, d, 4);
        for (Index j = 0; j < 4; ++j) x.col(j) *= 1e3 / x.col(j).norm();
        x.col(3) *= 3.0;  // |x| = 3e3
        Vector lp, lap;
        Matrix score(d, 4);
        lp = log_p(model, *sde, x, t);
        model.laplacian(x, t, lap);
        model.score(x, Vector::Constant(4, t), score);
        CHECK(lp.allFinite());
        CHECK(lap.allFinite());
        CHECK(score.allFinite());
        for (Index j = 0; j < 4; ++j) {
          const Direct r = direct(spec, alpha, sigma, x.col(j));
          // The point of the test: a naive sum of exp(logit_k) underflows to 0 (log p = -inf, score 0/0).
          CHECK(r.logit.maxCoeff() < -746.0);
          CHECK(std::abs(lp(j) - r.log_p) <= 2 * log_p_rounding(r));
          CHECK((score.col(j) - r.score).cwiseAbs().maxCoeff() <= 2 * score_rounding(r));
        }
      }
    }
  }
}

TEST_CASE("the mixture's accessors return what it was built from, with normalised weights") {
  const Spec spec = full_spec(3, 31);
  const GaussianMixture m = spec.build();
  CHECK(m.dim() == 3);
  CHECK(m.components() == 3);
  CHECK(!m.is_isotropic());
  CHECK(std::abs(m.weights().sum() - 1.0) <= 4 * eps);
  CHECK((m.weights() - spec.w / spec.w.sum()).cwiseAbs().maxCoeff() <= 4 * eps);
  CHECK(m.means() == spec.mu);
  // Covariances are stored as eigendecompositions: reconstruction error ~ eps |S| times a small factor.
  for (Index k = 0; k < 3; ++k)
    CHECK((m.covariance(k) - spec.S[k]).cwiseAbs().maxCoeff() <= 64 * eps * spec.S[k].norm());
  const GaussianMixture iso = isotropic_spec(2, 32).build();
  CHECK(iso.is_isotropic());
  CHECK(iso.covariance(1) == Matrix::Identity(2, 2));  // std 1.0
}

TEST_CASE("invalid mixtures are ConfigErrors") {
  const Matrix mu = Matrix::Zero(2, 2);
  const std::vector<Matrix> I2 = {Matrix::Identity(2, 2), Matrix::Identity(2, 2)};
  CHECK_THROWS_AS(GaussianMixture(Vector::Ones(3), mu, I2), ConfigError);
  CHECK_THROWS_AS(GaussianMixture(Vector::Ones(2), mu, {Matrix::Identity(2, 2)}), ConfigError);
  CHECK_THROWS_AS(GaussianMixture(Vector(Eigen::Vector2d(1.0, 0.0)), mu, I2), ConfigError);
  CHECK_THROWS_AS(GaussianMixture(Vector(Eigen::Vector2d(1.0, -1.0)), mu, I2), ConfigError);
  Matrix nonsym = Matrix::Identity(2, 2);
  nonsym(0, 1) = 0.5;
  CHECK_THROWS_AS(GaussianMixture(Vector::Ones(2), mu, {nonsym, nonsym}), ConfigError);
  Matrix indefinite(2, 2);
  indefinite << 1.0, 2.0, 2.0, 1.0;
  CHECK_THROWS_AS(GaussianMixture(Vector::Ones(2), mu, {indefinite, indefinite}), ConfigError);
  CHECK_THROWS_AS(GaussianMixture(Vector::Ones(2), mu, {Matrix::Identity(3, 3), Matrix::Identity(3, 3)}), ConfigError);
  CHECK_THROWS_AS(GaussianMixture::isotropic(Vector::Ones(2), mu, Vector::Zero(2)), ConfigError);
}

namespace {
// Sample mean and covariance of n draws against the mixture's exact moments:
//   mean = sum_k w_k mu_k,  cov = sum_k w_k (S_k + mu_k mu_k^T) - mean mean^T.
// Each entry is an average of n i.i.d. terms, so its standard error is sqrt(Var(term) / n), with Var(term)
// estimated from the same draws; the check allows 5 standard errors (two-sided p = 5.7e-7 per entry; with at
// most 20 entries per mixture the chance of a false failure is ~1e-5, and the seed is fixed anyway).
void check_moments(const Spec& spec, const Matrix& x) {
  const Index d = x.rows();
  const double n = static_cast<double>(x.cols());
  const Vector w = spec.w / spec.w.sum();
  const Vector mean = spec.mu * w;
  Matrix cov = -mean * mean.transpose();
  for (Index k = 0; k < w.size(); ++k) cov += w(k) * (spec.S[k] + spec.mu.col(k) * spec.mu.col(k).transpose());
  const Matrix c = x.colwise() - mean;  // centred at the exact mean, so E[c_i c_j] = cov_ij without bias
  for (Index i = 0; i < d; ++i) {
    CAPTURE(i);
    const double m = c.row(i).mean();
    const double se = std::sqrt(cov(i, i) / n);  // SE of a sample mean: sqrt(Var / n), Var known exactly
    CHECK(std::abs(m) <= 5 * se);
    for (Index j = 0; j <= i; ++j) {
      CAPTURE(j);
      const Eigen::ArrayXd prod = c.row(i).array() * c.row(j).array();
      const double est = prod.mean();
      const double se_cov = std::sqrt((prod - est).square().sum() / (n - 1) / n);  // SE of the mean of prod
      CHECK(std::abs(est - cov(i, j)) <= 5 * se_cov);
    }
  }
}
}  // namespace

TEST_CASE("GaussianMixture::sample: 200k draws have the mixture's mean and covariance within 5 SE") {
  for (const auto& spec : {full_spec(3, 41), isotropic_spec(5, 42)}) {
    CAPTURE(spec.label);
    const GaussianMixture m = spec.build();
    Matrix x(spec.mu.rows(), 200000);
    m.sample(2024, 0, x);
    CHECK(x.allFinite());
    check_moments(spec, x);
  }
}

TEST_CASE("GaussianMixture::sample picks component k with probability w_k (binomial SE)") {
  // Means 100 apart with unit std: every draw is nearest to the mean of the component it came from
  // (a misclassification needs a 50-sigma excursion).
  Matrix mu(2, 4);
  mu << 0.0, 100.0, 0.0, 100.0, 0.0, 0.0, 100.0, 100.0;
  Vector w(4);
  w << 0.1, 0.2, 0.3, 0.4;
  const GaussianMixture m = GaussianMixture::isotropic(w, mu, Vector::Ones(4));
  const Index n = 200000;
  Matrix x(2, n);
  m.sample(77, 0, x);
  Vector counts = Vector::Zero(4);
  for (Index j = 0; j < n; ++j) {
    Index k;
    (mu.colwise() - x.col(j)).colwise().squaredNorm().minCoeff(&k);
    counts(k) += 1;
  }
  for (Index k = 0; k < 4; ++k) {
    CAPTURE(k);
    const double p = w(k);
    const double se = std::sqrt(p * (1 - p) / n);  // binomial SE of a proportion
    CHECK(std::abs(counts(k) / n - p) <= 5 * se);
  }
}

TEST_CASE(
    "GaussianMixture::sample is keyed by sample index: a sub-range equals the same columns of a bigger "
    "draw") {
  for (const auto& spec : {full_spec(3, 51), isotropic_spec(2, 52)}) {
    CAPTURE(spec.label);
    const GaussianMixture m = spec.build();
    Matrix big(spec.mu.rows(), 40);
    m.sample(99, 0, big);
    for (auto entry : std::vector<std::pair<Index, Index>>{{0, 1}, {5, 1}, {7, 13}, {39, 1}, {0, 40}}) {
      auto first = std::get<0>(entry);
      auto count = std::get<1>(entry);
      CAPTURE(first);
      Matrix part(spec.mu.rows(), count);
      m.sample(99, first, part);
      CHECK(part == big.middleCols(first, count));  // bitwise
    }
    // An offset draw continues the index sequence: [40, 50) is new and differs from [0, 10).
    Matrix later(spec.mu.rows(), 10);
    m.sample(99, 40, later);
    CHECK((later - big.leftCols(10)).cwiseAbs().minCoeff() > 0);
    Matrix other_seed(spec.mu.rows(), 40);
    m.sample(100, 0, other_seed);
    CHECK((other_seed - big).cwiseAbs().minCoeff() > 0);
  }
}

TEST_CASE("eight_gaussians: 8 equal weights, means at radius 4 on angles 2 pi k / 8, std 0.5") {
  const auto m = load_data("eight_gaussians", 0);
  REQUIRE(m->dim() == 2);
  REQUIRE(m->components() == 8);
  CHECK(m->is_isotropic());
  const double r = 4.0 / std::sqrt(2.0);  // 2 sqrt 2
  const double expected[8][2] = {{4, 0}, {r, r}, {0, 4}, {-r, r}, {-4, 0}, {-r, -r}, {0, -4}, {r, -r}};
  for (Index k = 0; k < 8; ++k) {
    CAPTURE(k);
    CHECK(m->weights()(k) == 0.125);  // 1/8 is exact in binary
    // cos and sin of multiples of pi/4 carry ~1 ulp, times the radius 4.
    CHECK(std::abs(m->means()(0, k) - expected[k][0]) <= 8 * eps * 4);
    CHECK(std::abs(m->means()(1, k) - expected[k][1]) <= 8 * eps * 4);
    CHECK(m->covariance(k) == 0.25 * Matrix::Identity(2, 2));
  }
  const auto g = load_data("gaussian", 3);
  CHECK(g->dim() == 3);
  CHECK(g->components() == 1);
  CHECK(g->means() == Matrix::Zero(3, 1));
  CHECK(g->covariance(0) == Matrix::Identity(3, 3));
  CHECK_THROWS_AS(load_data("eight_gaussians", 3), ConfigError);
  CHECK_THROWS_AS(load_data("nine_gaussians", 0), ConfigError);
  CHECK_THROWS_AS(load_data("/nonexistent/definitely_missing.json", 0), InputError);
}

namespace {
std::string input_error(const std::string& text) {
  try {
    parse_mixture_json(text, "mix.json");
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("WRONG EXCEPTION TYPE: ") + e.what();
  }
  return "NO EXCEPTION";
}
}  // namespace

TEST_CASE("parse_mixture_json: a valid file round-trips; errors are InputErrors naming the source and field") {
  const GaussianMixture m = parse_mixture_json(
      R"({"weights": [1, 3], "means": [[0, 1], [2, 3]], "covariances": [[[1, 0.5], [0.5, 2]], [[1, 0], [0, 1]]]})",
      "mix.json");
  CHECK(m.dim() == 2);
  CHECK(m.components() == 2);
  CHECK(m.weights()(0) == 0.25);
  CHECK(m.weights()(1) == 0.75);
  Matrix mu(2, 2);
  mu << 0, 2, 1, 3;  // means[k] is column k
  CHECK(m.means() == mu);
  Matrix S0(2, 2);
  S0 << 1, 0.5, 0.5, 2;
  CHECK((m.covariance(0) - S0).cwiseAbs().maxCoeff() <= 64 * eps * 2);  // eigendecomposition round trip
  const GaussianMixture iso = parse_mixture_json(R"({"weights": [1], "means": [[0, 0, 0]], "stds": [2]})", "x");
  CHECK(iso.is_isotropic());
  CHECK(iso.covariance(0) == 4.0 * Matrix::Identity(3, 3));

  struct Bad {
    std::string text, field;
  };
  const std::vector<Bad> bad = {
      {R"({"weights": [1], "stds": [1]})", "means"},
      {R"({"means": [[0, 0]], "stds": [1]})", "weights"},
      {R"({"weights": [1, 2], "means": [[0, 0]], "stds": [1]})", "weights"},
      {R"({"weights": [1], "means": [[0, 0]], "stds": [1, 2]})", "stds"},
      {R"({"weights": [1], "means": [[0, 0]], "stds": [0]})", "stds[0]"},
      {R"({"weights": [1, 1], "means": [[0, 0], [1, 1]], "stds": [1, -2]})", "stds[1]"},
      {R"({"weights": [0], "means": [[0, 0]], "stds": [1]})", "weights[0]"},
      {R"({"weights": [1], "means": [[0, "a"]], "stds": [1]})", "means[0][1]"},
      {R"({"weights": ["heavy"], "means": [[0, 0]], "stds": [1]})", "weights[0]"},
      {R"({"weights": [1], "means": [[0, 0]], "stds": ["1"]})", "stds[0]"},
      {R"({"weights": [1, 1], "means": [[0, 0], [1]], "stds": [1, 1]})", "means[1]"},
      {R"({"weights": [1], "means": [], "stds": [1]})", "means"},
      {R"({"weights": [1], "means": [[0, 0]]})", "covariances"},
      {R"({"weights": [1], "means": [[0, 0]], "stds": [1], "covariances": [[[1, 0], [0, 1]]]})", "covariances"},
      {R"({"weights": [1], "means": [[0, 0]], "covariances": [[[1, 0.5], [0, 1]]]})", "covariances[0]"},
      {R"({"weights": [1], "means": [[0, 0]], "covariances": [[[1, 2], [2, 1]]]})", "covariances[0]"},
      {R"({"weights": [1], "means": [[0, 0]], "covariances": [[[1, 0], [0, "x"]]]})", "covariances[0][1][1]"},
      {R"({"weights": [1], "means": [[0, 0]], "covariances": [[[1, 0, 0], [0, 1, 0]]]})", "covariances[0][0]"},
      {R"({"weights": [1], "means": [[0, 0]], "stds": [1], "colour": "red"})", "colour"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.text);
    const std::string msg = input_error(b.text);
    CAPTURE(msg);
    CHECK(msg.find("mix.json") != std::string::npos);
    CHECK(msg.find(b.field) != std::string::npos);
  }
  CHECK(input_error("{not json").find("mix.json") != std::string::npos);
  CHECK(input_error("[1, 2]").find("mix.json") != std::string::npos);
}

TEST_CASE("MixtureScore counts calls and columns; a batch with mixed times equals per-column evaluation") {
  const Spec spec = full_spec(3, 61);
  const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  CHECK(model.dim() == 3);
  CHECK(model.calls() == 0);
  CHECK(model.columns() == 0);
  std::mt19937_64 gen(3);
  const Matrix x = random_normal(gen, 3, 7);
  Vector t(7);
  t << 0.1, 0.1, 0.5, 0.5, 0.5, 0.1, 0.9;  // runs of equal times, and a time that recurs later
  Matrix out(3, 7);
  model.score(x, t, out);
  CHECK(model.calls() == 1);
  CHECK(model.columns() == 7);
  model.score(x.leftCols(2), t.head(2), out.leftCols(2));
  CHECK(model.calls() == 2);
  CHECK(model.columns() == 9);
  model.score(x, t, out);
  for (Index j = 0; j < 7; ++j) {
    CAPTURE(j);
    Matrix one(3, 1);
    model.score(x.col(j), Vector::Constant(1, t(j)), one);
    const Direct r = direct(spec, sde->alpha(t(j)), sde->sigma(t(j)), x.col(j));
    // Each column depends on its own x and t only. Batched and single-column products may round differently
    // (different kernels), so compare to the rounding bound used above rather than bitwise.
    CHECK((out.col(j) - one).cwiseAbs().maxCoeff() <= 2 * score_rounding(r));
  }
  CHECK(model.calls() == 3 + 7);
  CHECK(model.columns() == 9 + 7 + 7);
}

namespace {

// The test points of every test time, interleaved so that neighbouring columns (the lanes of one vector register)
// have different times, and a time recurs across the batch: column c * T + i is point c of time i (T times).
struct InterleavedBatch {
  std::vector<double> times;
  std::vector<Matrix> points;  // per time: d x per_time
  Index per_time = 0;
  Matrix x;
  Vector t;
};

InterleavedBatch interleaved_batch(const Spec& spec, const Sde& sde, std::uint64_t seed) {
  InterleavedBatch b;
  b.times = test_times(sde);
  for (std::size_t i = 0; i < b.times.size(); ++i)
    b.points.push_back(test_points(spec, sde.alpha(b.times[i]), sde.sigma(b.times[i]), seed + i));
  const Index T = static_cast<Index>(b.times.size());
  b.per_time = b.points[0].cols();
  b.x.resize(spec.mu.rows(), b.per_time * T);
  b.t.resize(b.per_time * T);
  for (Index c = 0; c < b.per_time; ++c)
    for (Index i = 0; i < T; ++i) {
      b.x.col(c * T + i) = b.points[static_cast<std::size_t>(i)].col(c);
      b.t(c * T + i) = b.times[static_cast<std::size_t>(i)];
    }
  return b;
}

// The same bits as in `batch` (the score of b.x at b.t) for each column alone, each time's points in a batch of their
// own, in every window of the batch (sizes 1 to 19, starting every `stride` columns: other lane positions, padded
// tails), and for the batch reversed.
void check_same_bits_in_other_batches(const MixtureScore& model, const InterleavedBatch& b, const Matrix& batch,
                                      Index stride) {
  const Index d = b.x.rows(), n = b.x.cols(), T = static_cast<Index>(b.times.size());
  for (Index j = 0; j < n; ++j) {
    Matrix one(d, 1);
    model.score(b.x.col(j), b.t.segment(j, 1), one);
    CHECK(same_bits(one, batch.col(j)));
  }
  for (Index i = 0; i < T; ++i) {
    Matrix same_time(d, b.per_time);
    model.score(b.points[static_cast<std::size_t>(i)],
                Vector::Constant(b.per_time, b.times[static_cast<std::size_t>(i)]), same_time);
    for (Index c = 0; c < b.per_time; ++c) CHECK(same_bits(same_time.col(c), batch.col(c * T + i)));
  }
  for (Index size = 1; size <= 19; size += 3)
    for (Index first = 0; first + size <= n; first += stride) {
      Matrix window(d, size);
      model.score(b.x.middleCols(first, size), b.t.segment(first, size), window);
      CHECK(same_bits(window, batch.middleCols(first, size)));
    }
  Matrix reversed(d, n);
  model.score(b.x.rowwise().reverse(), b.t.reverse(), reversed);
  CHECK(same_bits(reversed.rowwise().reverse(), batch));
}

}  // namespace

TEST_CASE(
    "MixtureScore with a time per column: the exact score at each column's own time, and for isotropic "
    "mixtures the bits of that column evaluated alone, in any lane and any batch") {
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    for (const Spec& spec : all_specs()) {
      CAPTURE(sde->name());
      CAPTURE(spec.label);
      const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
      const MixtureScore model(mixture, *sde);
      const Index d = spec.mu.rows();
      const InterleavedBatch b = interleaved_batch(spec, *sde, 40);
      const Matrix& x = b.x;
      const Vector& t = b.t;
      const Index n = x.cols();
      Matrix batch(d, n);
      model.score(x, t, batch);
      for (Index j = 0; j < n; ++j) {
        CAPTURE(j);
        CAPTURE(t(j));
        // The oracle: the LLT evaluation at this column's own alpha_t, sigma_t, within its rounding bound.
        const Direct r = direct(spec, sde->alpha(t(j)), sde->sigma(t(j)), x.col(j));
        CHECK((batch.col(j) - r.score).cwiseAbs().maxCoeff() <= score_rounding(r));
      }
      if (!spec.isotropic) continue;  // full covariances go through Eigen's products, per run of equal times
      // Alone (one time: the one-time kernel), in a batch of one time, in every window and reversed, the same bits
      // as in the mixed batch.
      check_same_bits_in_other_batches(model, b, batch, 5);
    }
  }
}

TEST_CASE(
    "d = 2 mixtures of 1, 8 and 11 components (the component count fixed at compile time up to 8, read at run time "
    "above) and mixtures with one variance (affine logits): the exact score, and the same bits for a column alone, "
    "in a one-time batch, in any lane and window") {
  for (const Spec& spec :
       {isotropic_spec(2, 1, 17), isotropic_spec(2, 8, 18), isotropic_spec(2, 11, 19), isotropic_spec(2, 8, 20, true),
        isotropic_spec(2, 11, 21, true), isotropic_spec(3, 5, 22, true), isotropic_spec(5, 4, 23, true)}) {
    const Index d = spec.mu.rows();
    for (const auto& so : {sde_options(SdeKind::vp), sde_options(SdeKind::ve)}) {
      const auto sde = make_sde(so);
      CAPTURE(spec.label);
      CAPTURE(sde->name());
      const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
      const MixtureScore model(mixture, *sde);
      const InterleavedBatch b = interleaved_batch(spec, *sde, 60);
      const Matrix& x = b.x;
      const Vector& t = b.t;
      const Index n = x.cols();
      Matrix batch(d, n);
      model.score(x, t, batch);
      for (Index j = 0; j < n; ++j) {
        CAPTURE(j);
        CAPTURE(t(j));
        const Direct r = direct(spec, sde->alpha(t(j)), sde->sigma(t(j)), x.col(j));
        // The bound of the first oracle test above (the oracle's own errors are of the same kind, hence the 2).
        CHECK((batch.col(j) - r.score).cwiseAbs().maxCoeff() <= 2 * score_rounding(r));
      }
      check_same_bits_in_other_batches(model, b, batch, 7);
    }
  }
}

TEST_CASE(
    "the score is NaN where |x - alpha mu_k|^2 overflows (|x| = 1e160) and finite at |x| = 1e100, with one variance "
    "(affine logits behind a range guard) and with several") {
  const auto sde = make_sde(SdeOptions{});
  for (const Spec& spec : {isotropic_spec(2, 8, 24, true), isotropic_spec(2, 8, 25), isotropic_spec(2, 11, 26, true),
                           isotropic_spec(3, 5, 27, true)}) {
    CAPTURE(spec.label);
    const Index d = spec.mu.rows();
    const auto mixture = std::make_shared<const GaussianMixture>(spec.build());
    const MixtureScore model(mixture, *sde);
    // Five columns in one block: near the modes, |x| ~ 1e100, |x| ~ 1e160, |x| ~ 1e100, near the modes; each lane is
    // judged on its own column.
    Matrix x = Matrix::Constant(d, 5, 0.5);
    x.col(1).setConstant(1e100);
    x.col(2).setConstant(-1e160);
    x.col(3).setConstant(-1e100);
    Matrix out(d, 5);
    for (double t : {1e-3, 0.5, 1.0}) {
      CAPTURE(t);
      model.score(x, Vector::Constant(5, t), out);
      CHECK(out.col(0).allFinite());
      CHECK(out.col(1).allFinite());
      CHECK(out.col(2).array().isNaN().all());
      CHECK(out.col(3).allFinite());
      CHECK(out.col(4).allFinite());
    }
  }
  const MixtureScore eight(load_data("eight_gaussians", 0), *sde);
  Matrix x(2, 3), out(2, 3);
  x << 1.0, 1e100, 1e160, -2.0, -1e100, 1e160;
  eight.score(x, Vector::Constant(3, 0.3), out);
  CHECK(out.col(0).allFinite());
  CHECK(out.col(1).allFinite());
  CHECK(out.col(2).array().isNaN().all());
}
