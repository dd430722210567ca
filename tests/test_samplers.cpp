// Generic tests over the sampler registry (tests/sampler_cases.hpp): reproducibility, NFE accounting, and the
// Euler-Maruyama stationary-variance oracle. The convergence orders are in test_sampler_orders_slow.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "core/errors.hpp"
#include "models/datasets.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;
using namespace scoresde::testing;

namespace {

bool bitwise_equal(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * a.size()) == 0;
}

}  // namespace

TEST_CASE("sample i is bitwise identical for any n and any thread count, for every sampler") {
  const auto mixture = load_data("eight_gaussians", 0);
  for (const SdeKind kind : {SdeKind::vp, SdeKind::ve}) {
    SdeOptions so;
    so.kind = kind;
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    for (auto c : all_cases()) {
      for (const NoiseKind noise : {NoiseKind::independent, NoiseKind::brownian_tree}) {
        if (c.options.sampler == "ode" && noise == NoiseKind::brownian_tree) continue;  // no noise to vary
        CAPTURE(c.label);
        CAPTURE(to_string(kind));
        CAPTURE(to_string(noise));
        c.options.steps = 8;
        c.options.noise = noise;
        c.options.seed = 7;
        c.options.chunk = 64;
        c.options.threads = 1;
        const Matrix small = sample(*sde, model, c.options, 100).samples;
        const Matrix large = sample(*sde, model, c.options, 300).samples;
        c.options.threads = 2;
        const Matrix threaded = sample(*sde, model, c.options, 100).samples;
        CHECK(small.allFinite());
        CHECK(bitwise_equal(small, large.leftCols(100)));
        CHECK(bitwise_equal(small, threaded));
      }
    }
  }
}

TEST_CASE("a different seed gives different samples; the same seed the same") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o;
  o.steps = 10;
  o.seed = 1;
  const Matrix a = sample(*sde, model, o, 50).samples;
  const Matrix b = sample(*sde, model, o, 50).samples;
  o.seed = 2;
  const Matrix c = sample(*sde, model, o, 50).samples;
  CHECK(bitwise_equal(a, b));
  CHECK((a - c).cwiseAbs().minCoeff() > 0.0);
}

TEST_CASE(
    "NFE is counted exactly: predictor and corrector evaluations per step, adaptive counts per sample") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  for (const auto& c : predictor_cases()) {
    auto o = c.options;
    o.steps = 13;
    const auto r = sample(*sde, model, o, 40);
    CAPTURE(c.label);
    CHECK(r.nfe_mean() == 13.0);
    CHECK(r.nfe_max() == 13.0);
  }
  for (const auto& c : corrector_cases()) {
    auto o = c.options;
    o.steps = 13;
    o.corrector_steps = 3;
    const auto r = sample(*sde, model, o, 40);
    CAPTURE(c.label);
    CHECK(r.nfe_mean() == 13.0 * (3 + 1));
  }
  SamplerOptions o;
  o.sampler = "ode";
  o.ode_method = "rk4";
  o.steps = 13;
  CHECK(sample(*sde, model, o, 40).nfe_mean() == 13.0 * 4);
  // dopri5: every column's count equals the calls the model saw for its chunk (one chunk here).
  o.ode_method = "dopri5";
  o.chunk = 64;
  const long long before = model.calls();
  const auto r = sample(*sde, model, o, 40);
  CHECK(r.nfe_max() == static_cast<double>(model.calls() - before));
  CHECK(r.nfe_mean() == r.nfe_max());
  o.ode_control = OdeControl::sample;
  const auto per_sample = sample(*sde, model, o, 40);
  CHECK(per_sample.nfe.minCoeff() >= 7);  // at least one dopri5 step: 1 + 6 evaluations
  // Per-sample control evaluates one column per call: the calls are the per-sample counts of the whole chunk
  // (the 40 samples and the 24 columns that fill the chunk of 64).
  CHECK(per_sample.score_calls >= static_cast<long long>(per_sample.nfe.sum()));
  CHECK(per_sample.score_columns == per_sample.score_calls);
}

TEST_CASE("the last step is noise-free with --denoise on and noisy with it off") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  for (const auto& c : predictor_cases()) {
    CAPTURE(c.label);
    auto o = c.options;
    o.steps = 200;
    o.noise = NoiseKind::brownian_tree;
    o.denoise = true;
    const Matrix clean = sample(*sde, model, o, 20).samples;
    o.denoise = false;
    const Matrix noisy = sample(*sde, model, o, 20).samples;
    // The runs share every step but the last one's noise G z, G ~ sqrt(beta(eps) h) = sqrt(0.12 / 200) =
    // 0.025: 40 normals stay below 4.5 sd, so the difference is nonzero and below 0.12.
    CHECK((clean - noisy).cwiseAbs().maxCoeff() > 0.0);
    CHECK((clean - noisy).cwiseAbs().maxCoeff() < 0.12);
  }
}

TEST_CASE("Euler-Maruyama stationary variance is 1 / (1 - beta h / 4) (shared/ORACLES.md)") {
  // VP with constant beta on N(0, I) data: p_t = N(0, I) and the score is -x at every t, so one reverse EM
  // step is x <- (1 - beta h / 2) x + sqrt(beta h) z, whose stationary variance is exactly 1 / (1 - beta h /
  // 4).
  SdeOptions so;
  so.beta_min = so.beta_max = 20.0;
  const auto sde = make_sde(so);
  const MixtureScore model(load_data("gaussian", 1), *sde);
  SamplerOptions o;
  o.sampler = "euler_maruyama";
  o.steps = 50;
  o.eps = 1e-3;
  o.denoise = false;
  o.threads = 2;
  const Index n = 200000;
  const Matrix x = sample(*sde, model, o, n).samples;
  const double h = (1.0 - 1e-3) / 50;
  const double expected = 1.0 / (1.0 - 20.0 * h / 4.0);  // 1.111
  const double var = x.squaredNorm() / n - std::pow(x.mean(), 2);
  // The start N(0, 1) relaxes by (1 - beta h / 2)^2 = 0.64 per step: after 50 steps the transient is 1e-10.
  // Standard error of a sample variance of a Gaussian: var sqrt(2 / n) = 0.0035; allow 4 of them.
  const double se = expected * std::sqrt(2.0 / n);
  CHECK(std::abs(var - expected) < 4 * se);
  CHECK(std::abs(var - 1.0) > 20 * se);  // the O(h) bias is resolved, not noise
}

TEST_CASE("correctors leave p_t invariant up to their O(eps) bias") {
  // N(0, I) data under VP: p_t = N(0, I) for every t, and the prior is exact. A corrector alone (no
  // predictor) must keep the variance at 1 up to the Langevin discretisation bias. Unadjusted Langevin on
  // N(0, 1) with step eps, x <- (1 - eps) x + sqrt(2 eps) z, has stationary variance 1 / (1 - eps / 2); both
  // step rules give eps <= 2 r^2 here (a <= 1, sigma_t <= 1, and E|z| / E|s| ~ 1 for s = -x), so the bias is
  // at most 1 / (1 - r^2) - 1 = 0.026. A step that depends on each sample's own norms (time change) or a
  // noise term correlated with the step would be off by O(1).
  const auto sde = make_sde(SdeOptions{});
  for (const Index d : {1, 2, 8}) {
    const MixtureScore model(load_data("gaussian", d), *sde);
    for (const std::string corrector : {"ald", "langevin"}) {
      CAPTURE(d);
      CAPTURE(corrector);
      SamplerOptions o;
      o.sampler = "pc";
      o.predictor = "none";
      o.corrector = corrector;
      o.corrector_steps = 2;
      o.steps = 50;
      o.threads = 2;
      const Index n = 40000;
      const Matrix x = sample(*sde, model, o, n).samples;
      const double var = x.squaredNorm() / (n * d);
      const double se = std::sqrt(2.0 / (n * d));
      const double r = o.snr;
      CHECK(std::abs(var - 1.0) < (1.0 / (1.0 - r * r) - 1.0) + 4 * se);
    }
  }
}

TEST_CASE("a sampler that diverges reports the sample, step and time, and returns nothing") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o;
  o.sampler = "pc";
  o.snr = 1e100;
  o.langevin_norm = LangevinNorm::sample;
  o.steps = 5;
  try {
    sample(*sde, model, o, 30);
    FAIL("expected a NumericalError");
  } catch (const NumericalError& e) {
    CHECK(e.sample >= 0);
    CHECK(e.sample < 30);
    CHECK(e.step >= 0);
    CHECK(std::string(e.what()).find("t = ") != std::string::npos);
  }
}

TEST_CASE("options are validated with messages naming the option") {
  const auto sde = make_sde(SdeOptions{});
  auto message = [&](SamplerOptions o) -> std::string {
    try {
      o.validate(*sde);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  SamplerOptions o;
  o.steps = 0;
  CHECK(message(o).find("--steps") != std::string::npos);
  o = {};
  o.eps = 1.5;
  CHECK(message(o).find("--eps") != std::string::npos);
  o = {};
  o.sampler = "pc";
  o.predictor = "none";
  o.corrector = "none";
  CHECK(message(o).find("--predictor") != std::string::npos);
  o = {};
  o.sampler = "nope";
  CHECK(message(o).find("euler_maruyama") != std::string::npos);
  SdeOptions subvp;
  subvp.kind = SdeKind::subvp;
  const auto sub = make_sde(subvp);
  o = {};
  o.sampler = "ancestral";
  CHECK_THROWS_AS(o.validate(*sub), ConfigError);
}
