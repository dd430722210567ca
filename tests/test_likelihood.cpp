// Log-likelihoods through the probability-flow ODE (solvers/likelihood.hpp), quick tests:
//   - the mixture's exact divergence and Hessian-vector products against a dense Hessian written here with
//     Eigen's LLT and against central differences of the score;
//   - the prior log-densities against their closed forms;
//   - exact-divergence log p_eps against the mixture's exact log p_eps (vp, subvp, ve; 2-D and a 4-D
//     full-covariance mixture) at tight tolerances;
//   - Hutchinson on a linear field s(x) = A x, where the estimator's error is known exactly: per point it is
//     -c (v^T A v - tr A) with c = int_eps^T g^2 / 2 dt, so its variance is c^2 2 |A|_F^2 (Gaussian probes)
//     or c^2 2 sum_{i != j} A_ij^2 (Rademacher);
//   - reproducibility (threads, chunks, per-point control), the finite-difference fallback, bits/dim, and
//     the errors for bad input;
//   - model_log_likelihood: a network's data scaling y = (x - mean) / scale enters as the log-Jacobian
//     -sum log scale and nothing else, the identity scaling changes nothing, and the network's exact divergence
//     and Hutchinson through its Jacobian-vector products agree.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <Eigen/Cholesky>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "core/errors.hpp"
#include "core/sde.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/mlp.hpp"
#include "models/score_factory.hpp"
#include "solvers/likelihood.hpp"

using namespace scoresde;

namespace {

Matrix random_normal(std::mt19937_64& gen, Index rows, Index cols) {
  std::normal_distribution<double> normal;
  Matrix m(rows, cols);
  for (Index j = 0; j < cols; ++j)
    for (Index i = 0; i < rows; ++i) m(i, j) = normal(gen);
  return m;
}

// A 3-component mixture in d dimensions with full (random) covariances and unequal weights.
GaussianMixture full_mixture(Index d, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  Vector w(3);
  w << 5, 3, 2;
  const Matrix mu = 1.5 * random_normal(gen, d, 3);
  std::vector<Matrix> S;
  for (int k = 0; k < 3; ++k) {
    const Matrix B = random_normal(gen, d, d);
    S.push_back(0.3 * B * B.transpose() / static_cast<double>(d) + 0.1 * Matrix::Identity(d, d));
  }
  return GaussianMixture(w, mu, S);
}

std::vector<SdeOptions> three_sdes() {
  SdeOptions vp, subvp, ve;
  subvp.kind = SdeKind::subvp;
  ve.kind = SdeKind::ve;
  return {vp, subvp, ve};
}

// The Hessian of log p_t at x, directly: H = sum_k gamma_k (-C_k^{-1} + s_k s_k^T) - s s^T, with LLT.
Matrix dense_hessian(const GaussianMixture& m, double alpha, double sigma, const Vector& x) {
  const Index d = m.dim(), K = m.components();
  Vector logit(K);
  std::vector<Vector> s(K);
  std::vector<Matrix> inv(K);
  for (Index k = 0; k < K; ++k) {
    const Matrix C = alpha * alpha * m.covariance(k) + sigma * sigma * Matrix::Identity(d, d);
    const Eigen::LLT<Matrix> llt(C);
    inv[k] = llt.solve(Matrix::Identity(d, d));
    const Vector r = x - alpha * m.means().col(k);
    s[k] = -inv[k] * r;
    const double logdet = 2.0 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
    logit(k) = std::log(m.weights()(k)) - 0.5 * (logdet + r.dot(inv[k] * r));
  }
  const Vector gamma =
      (logit.array() - logit.maxCoeff()).exp() / (logit.array() - logit.maxCoeff()).exp().sum();
  Vector score = Vector::Zero(d);
  Matrix H = Matrix::Zero(d, d);
  for (Index k = 0; k < K; ++k) {
    score += gamma(k) * s[k];
    H += gamma(k) * (-inv[k] + s[k] * s[k].transpose());
  }
  return H - score * score.transpose();
}

// s(x, t) = A x for every t: the divergence is tr A, the Jacobian-vector product A v.
class LinearField final : public ScoreModel {
 public:
  explicit LinearField(Matrix A) : A_(std::move(A)) {}
  Index dim() const override { return A_.rows(); }
  std::string describe() const override { return "linear field"; }
  bool has_exact_divergence() const override { return true; }
  bool has_jvp() const override { return true; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef, MatrixRef out) const override { out.noalias() = A_ * x; }
  void evaluate_divergence(ConstMatrixRef x, ConstVectorRef, MatrixRef out, VectorRef div) const override {
    out.noalias() = A_ * x;
    div.setConstant(A_.trace());
  }
  void evaluate_jvp(ConstMatrixRef x, ConstVectorRef, ConstMatrixRef v, MatrixRef out,
                    MatrixRef jv) const override {
    out.noalias() = A_ * x;
    jv.noalias() = A_ * v;
  }

 private:
  Matrix A_;
};

// A model that only has a score: the finite-difference Hutchinson path, and NaN injection.
class ScoreOnly final : public ScoreModel {
 public:
  explicit ScoreOnly(const ScoreModel& inner, double nan_below_x0 = -std::numeric_limits<double>::infinity())
      : inner_(inner), nan_below_x0_(nan_below_x0) {}
  Index dim() const override { return inner_.dim(); }
  std::string describe() const override { return "score only"; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override {
    inner_.score(x, t, out);
    for (Index j = 0; j < x.cols(); ++j)
      if (x(0, j) < nan_below_x0_) out(0, j) = std::numeric_limits<double>::quiet_NaN();
  }

 private:
  const ScoreModel& inner_;
  double nan_below_x0_;
};

// A model with Jacobian-vector products but no exact divergence: exact is the trace of d products.
class JvpOnly final : public ScoreModel {
 public:
  explicit JvpOnly(const ScoreModel& inner) : inner_(inner) {}
  Index dim() const override { return inner_.dim(); }
  std::string describe() const override { return "jvp only"; }
  bool has_jvp() const override { return true; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override { inner_.score(x, t, out); }
  void evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out,
                    MatrixRef jv) const override {
    inner_.score_and_jvp(x, t, v, out, jv);
  }

 private:
  const ScoreModel& inner_;
};

Matrix mixture_points(const GaussianMixture& m, Index n, std::uint64_t seed) {
  Matrix x(m.dim(), n);
  m.sample(seed, 0, x);
  return x;
}

}  // namespace

TEST_CASE(
    "MixtureScore: exact divergence = Laplacian; Jacobian-vector products = the dense Hessian times v") {
  std::mt19937_64 gen(11);
  for (const Index d : {2, 5}) {
    std::vector<std::shared_ptr<const GaussianMixture>> mixtures = {
        std::make_shared<const GaussianMixture>(full_mixture(d, 7 + d))};
    {
      Vector w(3), stds(3);
      w << 1, 2, 3;
      stds << 0.3, 0.5, 1.0;
      mixtures.push_back(std::make_shared<const GaussianMixture>(
          GaussianMixture::isotropic(w, 2.0 * random_normal(gen, d, 3), stds)));
    }
    for (const auto& mixture : mixtures) {
      for (const auto& o : three_sdes()) {
        const auto sde = make_sde(o);
        const MixtureScore model(mixture, *sde);
        CHECK(model.has_exact_divergence());
        CHECK(model.has_jvp());
        for (const double t : {sde->default_eps(), 0.05, 0.4, 1.0}) {
          CAPTURE(d);
          CAPTURE(mixture->is_isotropic());
          CAPTURE(sde->name());
          CAPTURE(t);
          const double alpha = sde->alpha(t), sigma = sde->sigma(t);
          const double spread = std::sqrt(alpha * alpha + sigma * sigma);
          const Index n = 9;
          const Matrix x = spread * 2.0 * random_normal(gen, d, n);
          const Matrix v = random_normal(gen, d, n);
          const Vector times = Vector::Constant(n, t);
          Matrix score(d, n), score2(d, n), score3(d, n), hv(d, n);
          Vector div(n), lap;
          model.score(x, times, score);
          model.score_and_divergence(x, times, score2, div);
          model.score_and_jvp(x, times, v, score3, hv);
          model.laplacian(x, t, lap);
          // The isotropic fast path of the score alone rounds differently from the path through z_k.
          const double score_scale = 1e-13 * (1.0 + score.cwiseAbs().maxCoeff());
          CHECK((score2 - score).cwiseAbs().maxCoeff() <= score_scale);
          CHECK((score3 - score).cwiseAbs().maxCoeff() <= score_scale);
          CHECK(div == lap);
          for (Index j = 0; j < n; ++j) {
            CAPTURE(j);
            const Matrix H = dense_hessian(*mixture, alpha, sigma, x.col(j));
            const double scale = H.cwiseAbs().maxCoeff() * v.col(j).cwiseAbs().sum() + 1e-300;
            CHECK((hv.col(j) - H * v.col(j)).cwiseAbs().maxCoeff() <= 1e-10 * scale);
            CHECK(std::abs(div(j) - H.trace()) <= 1e-10 * (H.diagonal().cwiseAbs().sum() + 1e-300));
            // Central differences of the score along v: truncation O(h^2), rounding O(eps |s| / h).
            const double h = 1e-5 * spread;
            Matrix xs(d, 2);
            xs.col(0) = x.col(j) + h * v.col(j);
            xs.col(1) = x.col(j) - h * v.col(j);
            Matrix ss(d, 2);
            model.score(xs, Vector::Constant(2, t), ss);
            const Vector fd = (ss.col(0) - ss.col(1)) / (2 * h);
            CHECK((fd - hv.col(j)).cwiseAbs().maxCoeff() <=
                  1e-5 * (scale + score.col(j).cwiseAbs().maxCoeff() / spread));
          }
        }
      }
    }
  }
}

TEST_CASE("MixtureScore: mixed times per column equal one time per call, for the divergence and the JVP") {
  const auto mixture = std::make_shared<const GaussianMixture>(full_mixture(3, 5));
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  std::mt19937_64 gen(5);
  const Matrix x = random_normal(gen, 3, 5), v = random_normal(gen, 3, 5);
  Vector t(5);
  t << 0.1, 0.1, 0.7, 0.1, 0.3;
  Matrix s(3, 5), hv(3, 5);
  Vector div(5);
  model.score_and_divergence(x, t, s, div);
  model.score_and_jvp(x, t, v, s, hv);
  for (Index j = 0; j < 5; ++j) {
    Matrix s1(3, 1), hv1(3, 1);
    Vector div1(1);
    model.score_and_divergence(x.col(j), Vector::Constant(1, t(j)), s1, div1);
    model.score_and_jvp(x.col(j), Vector::Constant(1, t(j)), v.col(j), s1, hv1);
    CHECK(std::abs(div1(0) - div(j)) <= 1e-12 * (1 + std::abs(div(j))));
    CHECK((hv1.col(0) - hv.col(j)).cwiseAbs().maxCoeff() <= 1e-12 * (1 + hv.col(j).cwiseAbs().maxCoeff()));
  }
}

TEST_CASE("prior log-densities: log N(x; 0, prior_std^2 I) in closed form") {
  std::mt19937_64 gen(3);
  for (const auto& o : three_sdes()) {
    for (const Index d : {1, 2, 7}) {
      const auto sde = make_sde(o);
      const Matrix x = 3.0 * random_normal(gen, d, 4);
      Vector out(4);
      sde->prior_log_density(x, out);
      const double s = o.kind == SdeKind::ve ? o.sigma_max : 1.0;
      for (Index j = 0; j < 4; ++j) {
        double expected = 0;
        for (Index i = 0; i < d; ++i)
          expected += -0.5 * x(i, j) * x(i, j) / (s * s) - std::log(s) - 0.5 * std::log(2 * std::numbers::pi);
        CHECK(out(j) == doctest::Approx(expected).epsilon(1e-14));
      }
      // The density of the origin: -(d/2) log(2 pi s^2).
      Vector zero(1);
      sde->prior_log_density(Matrix::Zero(d, 1), zero);
      CHECK(zero(0) == doctest::Approx(-0.5 * d * std::log(2 * std::numbers::pi * s * s)).epsilon(1e-14));
    }
  }
}

TEST_CASE(
    "exact divergence: log p_eps = log p_T(x_T) + delta to solver accuracy (vp, subvp, ve; 2-D, 4-D full)") {
  // With the mixture's exact log p_T at the end the change of variables is an identity, so the difference
  // from the exact log p_eps is the solver's error alone. With the N(0, prior_std^2 I) prior at the end (the
  // result proper) the difference is that error plus the prior mismatch log N(x_T) - log p_T(x_T), exactly.
  const auto eight = load_data("eight_gaussians", 0);
  const auto full4 = std::make_shared<const GaussianMixture>(full_mixture(4, 3));
  for (const auto& mixture : {eight, full4}) {
    const Matrix x = mixture_points(*mixture, 40, 1);
    for (const auto& o : three_sdes()) {
      CAPTURE(mixture->dim());
      CAPTURE(to_string(o.kind));
      const auto sde = make_sde(o);
      const MixtureScore model(mixture, *sde);
      LikelihoodOptions lo;
      lo.rtol = lo.atol = 1e-8;
      lo.divergence = DivergenceMethod::exact;
      LikelihoodResult r = compute_log_likelihood(model, *sde, x, lo);
      CHECK(r.divergence == DivergenceMethod::exact);
      CHECK(r.summary.mean_nll == doctest::Approx(-r.log_p.mean()));
      CHECK((r.log_p - r.prior_log_p - r.delta).cwiseAbs().maxCoeff() <=
            1e-12 * r.log_p.cwiseAbs().maxCoeff());
      Vector exact, exact_T;
      model.log_density(x, r.eps, exact);
      model.log_density(r.latents, r.T, exact_T);
      const Vector mismatch = r.prior_log_p - exact_T;
      const Vector with_prior = r.log_p - exact;
      replace_terminal_log_density(r, exact_T);
      const Vector solver = r.log_p - exact;
      MESSAGE(
          fmt::format("d = {}, {}: solver error mean |.| {:.1e} nats (max {:.1e}); with the prior {:.1e} "
                      "(prior mismatch {:.1e}); NFE {:.0f}",
                      mixture->dim(), sde->name(), solver.cwiseAbs().mean(), solver.cwiseAbs().maxCoeff(),
                      with_prior.cwiseAbs().mean(), mismatch.cwiseAbs().mean(), r.nfe_mean()));
      CHECK(solver.cwiseAbs().mean() <= 1e-6);  // the issue asks for 1e-3 on average
      CHECK(solver.cwiseAbs().maxCoeff() <= 1e-5);
      CHECK((with_prior - mismatch - solver).cwiseAbs().maxCoeff() <= 1e-9);
      CHECK(r.summary.mean_nll == doctest::Approx(-r.log_p.mean()));
      // 2-D eight_gaussians is centred, so under vp and subvp the prior mismatch is second order in alpha_T.
      if (mixture->dim() == 2 && o.kind != SdeKind::ve) CHECK(with_prior.cwiseAbs().mean() <= 1e-3);
    }
  }
}

TEST_CASE("Hutchinson on a linear field: error per point is -c (v^T A v - tr A); variance c^2 2|A|_F^2") {
  // A symmetric, negative definite (a stable flow), with sizeable off-diagonal terms.
  Matrix A(3, 3);
  A << -1.0, 0.4, -0.3, 0.4, -2.0, 0.6, -0.3, 0.6, -0.5;
  const LinearField model(A);
  const auto sde = make_sde(SdeOptions{});
  const Index n = 2000;
  std::mt19937_64 gen(9);
  const Matrix x = random_normal(gen, 3, n);
  LikelihoodOptions lo;
  lo.rtol = lo.atol = 1e-9;
  lo.divergence = DivergenceMethod::exact;
  const LikelihoodResult exact = compute_log_likelihood(model, *sde, x, lo);
  // c = int_eps^T g^2 / 2 dt = (B(T) - B(eps)) / 2 for vp, B(t) = -2 log alpha_t.
  const double c = -(sde->log_alpha(sde->T()) - sde->log_alpha(exact.eps));
  const double frob2 = A.squaredNorm();
  const double offdiag2 = frob2 - A.diagonal().squaredNorm();
  for (const auto dist : {ProbeDistribution::gaussian, ProbeDistribution::rademacher}) {
    CAPTURE(to_string(dist));
    lo.divergence = DivergenceMethod::hutchinson;
    lo.probe_distribution = dist;
    lo.probes = 1;
    const LikelihoodResult h = compute_log_likelihood(model, *sde, x, lo);
    const Vector e = h.log_p - exact.log_p;
    // The per-point error is exactly -c (v^T A v - tr A) for that point's probe, up to the solver tolerance.
    lo.seed = 0;
    const CounterRng rng(lo.seed, NoisePurpose::probe);
    for (Index j = 0; j < 5; ++j) {
      Vector v(3);
      if (dist == ProbeDistribution::gaussian) {
        rng.normals(static_cast<std::uint64_t>(j), 0, 0, v.data(), 3);
      } else {
        rng.uniforms(static_cast<std::uint64_t>(j), 0, 0, v.data(), 3);
        v = (v.array() <= 0.5).select(-1.0, Vector::Ones(3));
      }
      CHECK(e(j) == doctest::Approx(-c * (v.dot(A * v) - A.trace())).epsilon(1e-6));
    }
    const double expected_var = c * c * 2.0 * (dist == ProbeDistribution::gaussian ? frob2 : offdiag2);
    const double mean = e.mean();
    const double var = (e.array() - mean).square().sum() / (n - 1);
    // Standard errors from the sample itself: of the mean, sqrt(var / n); of the variance, sqrt((m4 - var^2)
    // / n).
    const double m4 = (e.array() - mean).pow(4).mean();
    const double var_se = std::sqrt((m4 - var * var) / n);
    MESSAGE(fmt::format("{}: mean error {:.4f} +- {:.4f}; variance {:.4f} +- {:.4f}, expected {:.4f}",
                        to_string(dist), mean, std::sqrt(var / n), var, var_se, expected_var));
    CHECK(std::abs(mean) <= 4 * std::sqrt(var / n));
    CHECK(std::abs(var - expected_var) <= 4 * var_se);
    // K probes divide the variance by K.
    lo.probes = 4;
    const LikelihoodResult h4 = compute_log_likelihood(model, *sde, x, lo);
    const Vector e4 = h4.log_p - exact.log_p;
    const double var4 = (e4.array() - e4.mean()).square().sum() / (n - 1);
    CHECK(var4 == doctest::Approx(expected_var / 4).epsilon(0.15));
  }
}

TEST_CASE("results do not depend on the thread count; per-point control on nothing but the point") {
  const auto mixture = load_data("eight_gaussians", 0);
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  const Matrix x = mixture_points(*mixture, 301, 2);
  for (const auto method : {DivergenceMethod::exact, DivergenceMethod::hutchinson}) {
    LikelihoodOptions lo;
    lo.divergence = method;
    lo.chunk = 64;
    lo.threads = 1;
    const LikelihoodResult one = compute_log_likelihood(model, *sde, x, lo);
    lo.threads = 2;
    const LikelihoodResult two = compute_log_likelihood(model, *sde, x, lo);
    CHECK(one.log_p == two.log_p);
    CHECK(one.nfe == two.nfe);
    lo.ode_control = OdeControl::sample;
    const LikelihoodResult per_point = compute_log_likelihood(model, *sde, x, lo);
    lo.chunk = 7;
    lo.threads = 1;
    const LikelihoodResult per_point_7 = compute_log_likelihood(model, *sde, x, lo);
    CHECK(per_point.log_p == per_point_7.log_p);
    // A point alone, at its own index, gets the same probe and the same answer.
    const LikelihoodResult head = compute_log_likelihood(model, *sde, x.leftCols(10), lo);
    CHECK(head.log_p == per_point.log_p.head(10));
    CHECK((per_point.log_p - one.log_p).cwiseAbs().maxCoeff() <= 1e-2);
  }
}

TEST_CASE("Hutchinson without Jacobian-vector products: central differences give the same estimate") {
  const auto mixture = std::make_shared<const GaussianMixture>(full_mixture(3, 4));
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  const ScoreOnly plain(model);
  CHECK_FALSE(plain.has_jvp());
  const Matrix x = mixture_points(*mixture, 20, 3);
  LikelihoodOptions lo;
  lo.rtol = lo.atol = 1e-8;
  lo.probes = 2;
  lo.divergence = DivergenceMethod::hutchinson;
  const LikelihoodResult with_jvp = compute_log_likelihood(model, *sde, x, lo);
  const LikelihoodResult with_fd = compute_log_likelihood(plain, *sde, x, lo);
  CHECK(with_jvp.evaluation == DivergenceEvaluation::hutchinson_jvp);
  CHECK(with_fd.evaluation == DivergenceEvaluation::hutchinson_central);
  CHECK((with_jvp.log_p - with_fd.log_p).cwiseAbs().maxCoeff() <= 1e-5);
  // automatic resolves to hutchinson for a model without an exact divergence, exact for the mixture.
  lo.divergence = DivergenceMethod::automatic;
  CHECK(lo.resolved_divergence(plain) == DivergenceMethod::hutchinson);
  CHECK(lo.resolved_divergence(model) == DivergenceMethod::exact);
}

TEST_CASE("exact divergence from d Jacobian-vector products equals the model's own divergence") {
  const auto mixture = std::make_shared<const GaussianMixture>(full_mixture(3, 8));
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  const JvpOnly jvp_only(model);
  const Matrix x = mixture_points(*mixture, 30, 4);
  LikelihoodOptions lo;
  lo.divergence = DivergenceMethod::exact;
  const LikelihoodResult own = compute_log_likelihood(model, *sde, x, lo);
  const long long calls0 = jvp_only.calls();
  const LikelihoodResult columns = compute_log_likelihood(jvp_only, *sde, x, lo);
  CHECK(own.evaluation == DivergenceEvaluation::model_divergence);
  CHECK(columns.evaluation == DivergenceEvaluation::jacobian_columns);
  CHECK((own.log_p - columns.log_p).cwiseAbs().maxCoeff() <= 1e-9);
  CHECK(jvp_only.calls() - calls0 ==
        3 * static_cast<long long>(columns.nfe(0)));  // d calls per right-hand side
  // automatic does not pay d evaluations: it picks hutchinson for a model without an exact divergence.
  lo.divergence = DivergenceMethod::automatic;
  CHECK(lo.resolved_divergence(jvp_only) == DivergenceMethod::hutchinson);
}

TEST_CASE("NLL summary: mean, standard error, bits/dim = NLL / (d ln 2) + the dequantisation offset") {
  Vector lp(4);
  lp << -1.0, -2.0, -3.0, -6.0;
  const NllSummary s = summarize_nll(lp, 2, bits_per_dim_offset(Dequantization::minus_one_one));
  CHECK(s.mean_nll == 3.0);
  CHECK(s.nll_se == doctest::Approx(std::sqrt(14.0 / 3.0 / 4.0)));
  CHECK(s.bits_per_dim == doctest::Approx(3.0 / (2 * std::numbers::ln2) + 7.0));
  CHECK(s.bits_per_dim_se == doctest::Approx(s.nll_se / (2 * std::numbers::ln2)));
  CHECK(bits_per_dim_offset(Dequantization::none) == 0.0);
  CHECK(bits_per_dim_offset(Dequantization::zero_one) == 8.0);
  for (const auto q : {Dequantization::none, Dequantization::minus_one_one, Dequantization::zero_one})
    CHECK(dequantization_from_string(to_string(q)) == q);
  CHECK(summarize_nll(lp.head(1), 2).nll_se == 0.0);
}

TEST_CASE(
    "bad input: wrong dimension, non-finite points, bad tolerances and options are named ConfigErrors") {
  const auto mixture = load_data("eight_gaussians", 0);
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  const Matrix x = mixture_points(*mixture, 5, 0);
  auto message = [&](const Matrix& points, const LikelihoodOptions& lo) -> std::string {
    try {
      compute_log_likelihood(model, *sde, points, lo);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "NO EXCEPTION";
  };
  const LikelihoodOptions good;
  CHECK(message(Matrix::Zero(3, 5), good).find("dimension 3") != std::string::npos);
  Matrix nan_row = x;
  nan_row(1, 3) = std::numeric_limits<double>::quiet_NaN();
  CHECK(message(nan_row, good).find("point 3") != std::string::npos);
  Matrix inf_row = x;
  inf_row(0, 4) = std::numeric_limits<double>::infinity();
  CHECK(message(inf_row, good).find("point 4") != std::string::npos);
  CHECK(message(Matrix(2, 0), good).find("no points") != std::string::npos);
  for (const double bad : {0.0, -1e-5, std::numeric_limits<double>::quiet_NaN()}) {
    LikelihoodOptions lo;
    lo.rtol = bad;
    CHECK(message(x, lo).find("--rtol") != std::string::npos);
    lo = good;
    lo.atol = bad;
    CHECK(message(x, lo).find("--atol") != std::string::npos);
    lo = good;
    lo.eps = bad;
    CHECK(message(x, lo).find("--eps") != std::string::npos);
  }
  LikelihoodOptions lo;
  lo.probes = 0;
  CHECK(message(x, lo).find("--probes") != std::string::npos);
  lo = good;
  lo.eps = 1.0;
  CHECK(message(x, lo).find("--eps") != std::string::npos);
  lo = good;
  lo.threads = 0;
  CHECK(message(x, lo).find("--threads") != std::string::npos);
  lo = good;
  lo.chunk = 0;
  CHECK(message(x, lo).find("--chunk") != std::string::npos);
  // exact divergence on a model that has none
  const ScoreOnly plain(model);
  lo = good;
  lo.divergence = DivergenceMethod::exact;
  CHECK_THROWS_WITH_AS(compute_log_likelihood(plain, *sde, x, lo),
                       doctest::Contains("neither an exact divergence nor Jacobian-vector products"),
                       ConfigError);
  CHECK_THROWS_AS(divergence_method_from_string("trace"), ConfigError);
  CHECK_THROWS_AS(probe_distribution_from_string("uniform"), ConfigError);
  CHECK_THROWS_AS(dequantization_from_string("[0,255]"), ConfigError);
}

TEST_CASE("a score that turns non-finite is a NumericalError naming the point") {
  const auto mixture = load_data("eight_gaussians", 0);
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  Matrix x = mixture_points(*mixture, 40, 0);
  x.col(17) << 1e3, 0.0;  // the only point with x_0 > 500
  x.col(33) << 2e3, 0.0;
  // NaN for x_0 > 500: invert the sign trick of ScoreOnly by flipping the points.
  const ScoreOnly broken(model, -500.0);
  const Matrix flipped = -x;
  LikelihoodOptions lo;
  lo.chunk = 8;
  lo.threads = 2;
  lo.divergence = DivergenceMethod::hutchinson;
  try {
    compute_log_likelihood(broken, *sde, flipped, lo);
    FAIL("no NumericalError");
  } catch (const NumericalError& e) {
    CHECK(e.sample == 17);
    CHECK(std::string(e.what()).find("point 17") != std::string::npos);
  }
  lo.ode_control = OdeControl::sample;
  CHECK_THROWS_AS(compute_log_likelihood(broken, *sde, flipped, lo), NumericalError);
}

namespace {

// A small untrained network (float64): a smooth score with a full, non-symmetric Jacobian.
Checkpoint tiny_network() {
  Checkpoint c;
  c.architecture.dim = 2;
  c.architecture.hidden = {16, 16};
  c.architecture.fourier_features = 4;
  c.architecture.fourier_scale = 1.0;
  c.architecture.precision = Precision::float64;
  c.frequencies = initial_frequencies(c.architecture, 5);
  c.weights = initial_weights(c.architecture, 6);
  c.ema = initial_weights(c.architecture, 7);
  c.scaling.mean = Vector(2);
  c.scaling.mean << 0.7, -1.3;
  c.scaling.scale = Vector(2);
  c.scaling.scale << 2.5, 0.6;
  return c;
}

}  // namespace

// log p of points under a checkpoint as stored: its EMA (or raw) weights, its SDE and its data scaling, through the
// score factory.
LikelihoodResult checkpoint_log_likelihood(const Checkpoint& c, ConstMatrixRef x, const LikelihoodOptions& o,
                                           bool ema = true) {
  const auto sde = make_sde(c.sde);
  const auto source = checkpoint_score(std::make_shared<const Checkpoint>(c), ema ? "ema" : "raw");
  return model_log_likelihood(*source->make(*sde), *sde, source->scaling(), x, o);
}

TEST_CASE("model_log_likelihood: the data scaling adds -sum log scale; the identity scaling changes nothing") {
  const Checkpoint c = tiny_network();
  const auto sde = make_sde(c.sde);
  const MlpScore model(c.architecture, c.frequencies, c.ema, *sde);
  std::mt19937_64 gen(11);
  Matrix x = 2.0 * random_normal(gen, 2, 40);
  x.row(0).array() += 0.7;
  LikelihoodOptions o;
  o.chunk = 16;

  const LikelihoodResult scaled = model_log_likelihood(model, *sde, c.scaling, x, o);
  const LikelihoodResult direct = compute_log_likelihood(model, *sde, c.scaling.to_standard(x), o);
  const double log_jacobian = -(std::log(2.5) + std::log(0.6));
  CHECK(scaled.log_jacobian == doctest::Approx(log_jacobian).epsilon(1e-15));
  CHECK((scaled.log_p - (direct.log_p.array() + log_jacobian).matrix()).cwiseAbs().maxCoeff() <= 1e-12);
  CHECK(scaled.delta == direct.delta);
  CHECK(scaled.latents == direct.latents);
  CHECK(scaled.log_p.isApprox(((scaled.prior_log_p + scaled.delta).array() + scaled.log_jacobian).matrix(), 1e-14));
  CHECK(scaled.summary.mean_nll == doctest::Approx(direct.summary.mean_nll - log_jacobian).epsilon(1e-14));
  CHECK(scaled.summary.nll_se == doctest::Approx(direct.summary.nll_se).epsilon(1e-12));
  CHECK(scaled.summary.bits_per_dim ==
        doctest::Approx(scaled.summary.mean_nll / (2 * std::numbers::ln2)).epsilon(1e-14));
  // auto resolves to the network's exact divergence.
  CHECK(scaled.divergence == DivergenceMethod::exact);
  CHECK(scaled.evaluation == DivergenceEvaluation::model_divergence);

  // Identity scaling: bitwise the plain computation.
  const LikelihoodResult identity = model_log_likelihood(model, *sde, DataScaling::identity(2), x, o);
  const LikelihoodResult plain = compute_log_likelihood(model, *sde, x, o);
  CHECK(identity.log_jacobian == 0.0);
  CHECK(identity.log_p == plain.log_p);
  CHECK(identity.summary.mean_nll == plain.summary.mean_nll);

  // From the checkpoint: its EMA weights (or raw ones), its SDE and its scaling.
  CHECK(checkpoint_log_likelihood(c, x, o).log_p == scaled.log_p);
  const MlpScore raw(c.architecture, c.frequencies, c.weights, *sde);
  CHECK(checkpoint_log_likelihood(c, x, o, false).log_p == model_log_likelihood(raw, *sde, c.scaling, x, o).log_p);

  // A terminal density given afterwards keeps the log-Jacobian.
  LikelihoodResult replaced = scaled;
  replace_terminal_log_density(replaced, replaced.prior_log_p);
  CHECK(replaced.log_p.isApprox(scaled.log_p, 1e-15));

  // Bad scalings and points.
  DataScaling wrong = c.scaling;
  wrong.scale.resize(3);
  wrong.scale.setOnes();
  CHECK_THROWS_AS(model_log_likelihood(model, *sde, wrong, x, o), ConfigError);
  wrong = c.scaling;
  wrong.scale(1) = 0;
  CHECK_THROWS_WITH_AS(model_log_likelihood(model, *sde, wrong, x, o), doctest::Contains("scale"), ConfigError);
  Matrix bad = x;
  bad(1, 3) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(model_log_likelihood(model, *sde, c.scaling, bad, o), doctest::Contains("point 3"), ConfigError);
  CHECK_THROWS_AS(model_log_likelihood(model, *sde, c.scaling, Matrix::Zero(3, 4), o), ConfigError);
}

TEST_CASE("model_log_likelihood: a network's exact divergence and Hutchinson through its JVP agree within 3 SE") {
  const Checkpoint c = tiny_network();
  const auto sde = make_sde(c.sde);
  const MlpScore model(c.architecture, c.frequencies, c.ema, *sde);
  std::mt19937_64 gen(12);
  const Matrix x = 2.0 * random_normal(gen, 2, 200);
  LikelihoodOptions o;
  o.divergence = DivergenceMethod::exact;
  const LikelihoodResult exact = model_log_likelihood(model, *sde, c.scaling, x, o);
  o.divergence = DivergenceMethod::hutchinson;
  o.seed = 4;
  const LikelihoodResult hutchinson = model_log_likelihood(model, *sde, c.scaling, x, o);
  CHECK(hutchinson.evaluation == DivergenceEvaluation::hutchinson_jvp);
  // Paired: the per-point difference is the probe noise (plus solver error, 1e-5 here); its mean is zero for an
  // unbiased estimator, within 3 standard errors of the mean (fixed seeds: deterministic).
  const Vector diff = hutchinson.log_p - exact.log_p;
  const double n = static_cast<double>(diff.size());
  const double mean = diff.mean();
  const double se = std::sqrt((diff.array() - mean).square().sum() / (n - 1) / n);
  MESSAGE(fmt::format("tiny network, 200 points: Hutchinson - exact = {:.4f} +- {:.4f} (SE) nats; per-point sd {:.3f}",
                      mean, se, se * std::sqrt(n)));
  CHECK(se > 0);
  CHECK(std::abs(mean) <= 3 * se);
}
