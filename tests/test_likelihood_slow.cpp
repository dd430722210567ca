// Log-likelihoods through the probability-flow ODE, statistical and larger tests (label "slow"):
//   - exact divergence against the mixture's exact log p_eps on 1000 eight_gaussians points and on an 8-D
//     full-covariance mixture, for vp, subvp and ve, at tight and at default tolerances;
//   - Hutchinson's estimator is unbiased: on 1000 eight_gaussians points the mean of the paired differences
//     (Hutchinson - exact divergence, same points) is within 3 standard errors of 0, for both probe laws and
//     every SDE; and for one point evaluated 2000 times (each copy its own probe, since probes are keyed by
//     index).
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <cmath>
#include <random>

#include "core/sde.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "solvers/likelihood.hpp"

using namespace scoresde;

namespace {

std::vector<SdeOptions> three_sdes() {
  SdeOptions vp, subvp, ve;
  subvp.kind = SdeKind::subvp;
  ve.kind = SdeKind::ve;
  return {vp, subvp, ve};
}

GaussianMixture full_mixture(Index d, Index K, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  auto random = [&](Index r, Index c) {
    Matrix m(r, c);
    for (Index j = 0; j < c; ++j)
      for (Index i = 0; i < r; ++i) m(i, j) = normal(gen);
    return m;
  };
  Vector w = Vector::LinSpaced(K, 1.0, static_cast<double>(K));
  const Matrix mu = 2.0 * random(d, K);
  std::vector<Matrix> S;
  for (Index k = 0; k < K; ++k) {
    const Matrix B = random(d, d);
    S.push_back(0.5 * B * B.transpose() / static_cast<double>(d) + 0.05 * Matrix::Identity(d, d));
  }
  return GaussianMixture(w, mu, S);
}

struct Stats {
  double mean, se, mean_abs;
};
Stats stats(const Vector& e) {
  const double n = static_cast<double>(e.size());
  const double mean = e.mean();
  return {mean, std::sqrt((e.array() - mean).square().sum() / (n - 1) / n), e.cwiseAbs().mean()};
}

}  // namespace

TEST_CASE(
    "exact divergence: solver error against exact log p_eps, 2-D and 8-D full covariances, three SDEs") {
  const auto eight = load_data("eight_gaussians", 0);
  const auto full8 = std::make_shared<const GaussianMixture>(full_mixture(8, 4, 17));
  for (const auto& mixture : {eight, full8}) {
    Matrix x(mixture->dim(), mixture->dim() == 2 ? 1000 : 300);
    mixture->sample(5, 0, x);
    for (const auto& o : three_sdes()) {
      const auto sde = make_sde(o);
      const MixtureScore model(mixture, *sde);
      for (const double tol : {1e-5, 1e-8}) {
        CAPTURE(mixture->dim());
        CAPTURE(sde->name());
        CAPTURE(tol);
        LikelihoodOptions lo;
        lo.rtol = lo.atol = tol;
        lo.threads = 2;
        lo.divergence = DivergenceMethod::exact;
        LikelihoodResult r = compute_log_likelihood(model, *sde, x, lo);
        Vector exact, exact_T;
        model.log_density(x, r.eps, exact);
        model.log_density(r.latents, r.T, exact_T);
        const Stats with_prior = stats(r.log_p - exact);
        const Stats mismatch = stats(r.prior_log_p - exact_T);
        replace_terminal_log_density(r, exact_T);
        const Stats solver = stats(r.log_p - exact);
        MESSAGE(fmt::format(
            "d = {}, {}, tol {:.0e}: solver error {:.2e} +- {:.1e} (mean |.| {:.1e}) nats; with the "
            "prior {:.2e} +- {:.1e} (mean |.| {:.1e}), prior mismatch mean |.| {:.1e}; NFE {:.0f}",
            mixture->dim(), sde->name(), tol, solver.mean, solver.se, solver.mean_abs, with_prior.mean,
            with_prior.se, with_prior.mean_abs, mismatch.mean_abs, r.nfe_mean()));
        CHECK(solver.mean_abs <= (tol < 1e-6 ? 1e-6 : 1e-4));  // the bound is 1e-3 nats on average
      }
    }
  }
}

TEST_CASE(
    "Hutchinson is unbiased: paired differences from the exact divergence on 1000 points, within 3 SE") {
  const auto eight = load_data("eight_gaussians", 0);
  const auto full8 = std::make_shared<const GaussianMixture>(full_mixture(8, 4, 17));
  for (const auto& mixture : {eight, full8}) {
    Matrix x(mixture->dim(), 1000);
    mixture->sample(0, 0, x);
    for (const auto& o : three_sdes()) {
      const auto sde = make_sde(o);
      const MixtureScore model(mixture, *sde);
      LikelihoodOptions lo;
      lo.threads = 2;
      lo.divergence = DivergenceMethod::exact;
      const LikelihoodResult exact = compute_log_likelihood(model, *sde, x, lo);
      for (const auto dist : {ProbeDistribution::rademacher, ProbeDistribution::gaussian}) {
        CAPTURE(mixture->dim());
        CAPTURE(sde->name());
        CAPTURE(to_string(dist));
        lo.divergence = DivergenceMethod::hutchinson;
        lo.probe_distribution = dist;
        const LikelihoodResult h = compute_log_likelihood(model, *sde, x, lo);
        const Stats diff = stats(h.log_p - exact.log_p);
        MESSAGE(fmt::format(
            "d = {}, {}, {}: {:.4f} +- {:.4f} bits/dim against {:.4f} +- {:.4f} with the exact "
            "divergence; paired difference {:.4f} +- {:.4f} nats; NFE {:.0f}",
            mixture->dim(), sde->name(), to_string(dist), h.summary.bits_per_dim, h.summary.bits_per_dim_se,
            exact.summary.bits_per_dim, exact.summary.bits_per_dim_se, diff.mean, diff.se, h.nfe_mean()));
        CHECK(std::abs(diff.mean) <= 3 * diff.se);
      }
    }
  }
}

TEST_CASE("Hutchinson is unbiased for one point: 2000 copies, each with its own probe, within 3 SE") {
  const auto mixture = load_data("eight_gaussians", 0);
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  Matrix one(2, 1);
  one << 2.0, 2.5;  // between two modes, where the Hessian's off-diagonal terms are large
  const Matrix x = one.replicate(1, 2000);
  LikelihoodOptions lo;
  lo.threads = 2;
  lo.divergence = DivergenceMethod::exact;
  const double exact = compute_log_likelihood(model, *sde, one, lo).log_p(0);
  lo.divergence = DivergenceMethod::hutchinson;
  lo.ode_control = OdeControl::sample;
  const LikelihoodResult h = compute_log_likelihood(model, *sde, x, lo);
  const Stats diff = stats(h.log_p.array() - exact);
  MESSAGE(fmt::format("one point, 2000 Rademacher probes: mean error {:.4f} +- {:.4f} nats, spread {:.3f}",
                      diff.mean, diff.se, diff.se * std::sqrt(2000.0)));
  CHECK(std::abs(diff.mean) <= 3 * diff.se);
  CHECK(diff.se > 0);
}
