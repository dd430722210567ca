// Training-time laws (models/training.hpp, TrainingTimes) against closed-form inverses: under the linear VP
// schedule, t follows from sigma_t or lambda_t by solving a quadratic; under VE, from sigma_t directly.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <cmath>
#include <vector>

#include "core/errors.hpp"
#include "core/sde.hpp"
#include "models/training.hpp"

using namespace scoresde;

namespace {

// Linear VP: -log alpha_t = (beta_max - beta_min) t^2 / 4 + beta_min t / 2 = L, solved for t >= 0.
double vp_time_of_minus_log_alpha(const SdeOptions& o, double L) {
  const double a = 0.25 * (o.beta_max - o.beta_min), b = 0.5 * o.beta_min;
  return 2.0 * L / (b + std::sqrt(b * b + 4.0 * a * L));  // the stable root of a t^2 + b t - L = 0
}
double vp_time_of_sigma(const SdeOptions& o, double sigma) {
  return vp_time_of_minus_log_alpha(o, -0.5 * std::log1p(-sigma * sigma));
}
double vp_time_of_log_snr(const SdeOptions& o, double lambda) {
  // alpha^2 / (1 - alpha^2) = exp(lambda)  =>  -log alpha = log(1 + exp(-lambda)) / 2
  return vp_time_of_minus_log_alpha(o, 0.5 * std::log1p(std::exp(-lambda)));
}
// VE: sigma_t = sigma_min sqrt((sigma_max / sigma_min)^(2t) - 1).
double ve_time_of_sigma(const SdeOptions& o, double sigma) {
  return std::log1p(sigma * sigma / (o.sigma_min * o.sigma_min)) / (2.0 * std::log(o.sigma_max / o.sigma_min));
}

}  // namespace

TEST_CASE("training times: each law is the inverse of its coordinate, against closed forms") {
  const double eps = 1e-5;
  SdeOptions vp;
  SdeOptions ve;
  ve.kind = SdeKind::ve;
  const auto vp_sde = make_sde(vp), ve_sde = make_sde(ve);

  struct Case {
    const char* name;
    const Sde* sde;
    TimeSampling sampling;
    double c0, c1;  // the coordinate at eps and at T
    double (*inverse)(const SdeOptions&, double);
    const SdeOptions* options;
    bool logarithmic;  // the inverse takes exp(coordinate)
  };
  const double l0 = 2.0 * (vp_sde->log_alpha(eps) - std::log(vp_sde->sigma(eps)));
  const double l1 = 2.0 * (vp_sde->log_alpha(1.0) - std::log(vp_sde->sigma(1.0)));
  const std::vector<Case> cases = {
      {"vp log_sigma", vp_sde.get(), TimeSampling::log_sigma, std::log(vp_sde->sigma(eps)),
       std::log(vp_sde->sigma(1.0)), vp_time_of_sigma, &vp, true},
      {"vp log_snr", vp_sde.get(), TimeSampling::log_snr, l0, l1, vp_time_of_log_snr, &vp, false},
      {"ve log_sigma", ve_sde.get(), TimeSampling::log_sigma, std::log(ve_sde->sigma(eps)),
       std::log(ve_sde->sigma(1.0)), ve_time_of_sigma, &ve, true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const TrainingTimes times(*c.sde, c.sampling, eps);
    CHECK(times(0.0) == eps);
    CHECK(std::abs(times(1.0) - 1.0) < 1e-15);
    // At the table's nodes, u = k / 4096, the law is exact up to the bisection's 1e-15; between them t is
    // interpolated linearly, so it stays between its neighbours.
    double worst = 0;
    for (int k = 0; k <= 4096; ++k) {
      const double u = k / 4096.0;
      const double coordinate = c.c0 + u * (c.c1 - c.c0);
      const double expected = c.inverse(*c.options, c.logarithmic ? std::exp(coordinate) : coordinate);
      worst = std::max(worst, std::abs(times(u) - expected) / expected);
      if (k < 4096) {
        const double mid = times((k + 0.5) / 4096.0);
        CHECK(times(u) < mid);
        CHECK(mid < times((k + 1) / 4096.0));
      }
    }
    MESSAGE(fmt::format("{}: largest relative error of t at the nodes {:.2e}", c.name, worst));
    // The closed forms themselves lose a few digits near t = 0 and T (log1p of a small difference).
    CHECK(worst < 1e-9);
  }
}

TEST_CASE("training times: uniform is eps + (T - eps) u exactly, and the mixture has the mixture's CDF") {
  const double eps = 1e-5;
  const auto sde = make_sde(SdeOptions{});
  const TrainingTimes uniform(*sde, TimeSampling::uniform, eps, 0.5);  // the share does not apply to uniform
  for (double u : {0.0, 0.1, 0.37, 0.999}) CHECK(uniform(u) == eps + (1.0 - eps) * u);

  // Over a fine grid of u, the share of times below tau is share F_uniform(tau) + (1 - share) F_log_sigma(tau),
  // up to the grid's 1/n and the interpolation between nodes, which moves mass only inside one node interval:
  // (1 - share) / 4096 at most.
  const double share = 0.25;
  const TrainingTimes mixed(*sde, TimeSampling::log_sigma, eps, share);
  const int n = 200000;
  std::vector<double> drawn(n);
  for (int k = 0; k < n; ++k) drawn[static_cast<std::size_t>(k)] = mixed((k + 0.5) / n);
  const double c0 = std::log(sde->sigma(eps)), c1 = std::log(sde->sigma(1.0));
  for (double tau : {1e-4, 1e-3, 0.01, 0.05, 0.2, 0.6, 0.95}) {
    CAPTURE(tau);
    double below = 0;
    for (double t : drawn) below += t <= tau;
    const double expected =
        share * (tau - eps) / (1.0 - eps) + (1.0 - share) * (std::log(sde->sigma(tau)) - c0) / (c1 - c0);
    CHECK(std::abs(below / n - expected) < 2.0 / n + (1.0 - share) / 4096);
  }
}

TEST_CASE("training times: the share is checked") {
  const auto sde = make_sde(SdeOptions{});
  CHECK_THROWS_AS(TrainingTimes(*sde, TimeSampling::log_sigma, 1e-5, 1.5), ConfigError);
  CHECK_THROWS_AS(TrainingTimes(*sde, TimeSampling::log_sigma, 1e-5, -0.1), ConfigError);
  CHECK_THROWS_AS(time_sampling_from_string("log_t"), ConfigError);
}
