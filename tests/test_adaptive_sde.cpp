// The adaptive SDE sampler ggf (solvers/ggf.cpp), which the fixed-step generic tests do not cover: its global error
// falls with the tolerances (against a fine solution on the same Brownian path), its steps are per sample (sample i
// is bitwise the same for any -n, --chunk and --threads; NFE per sample), its defaults (the paper's tolerances) hold
// for C++ callers, and --denoise adds the paper's final denoising step.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <cmath>
#include <cstring>

#include "core/errors.hpp"
#include "models/datasets.hpp"
#include "solvers/driver.hpp"
#include "solvers/registry.hpp"

using namespace scoresde;

namespace {

bool bitwise_equal(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * a.size()) == 0;
}

SamplerOptions ggf_options() {
  SamplerOptions o;
  o.sampler = "ggf";
  o.noise = NoiseKind::brownian_tree;
  o.seed = 3;
  return o;
}

}  // namespace

TEST_CASE("ggf: the paper's tolerances are its defaults, for C++ callers too; dopri5 keeps 1e-5") {
  SamplerOptions o;
  o.sampler = "ggf";
  CHECK(o.resolved_rtol() == 0.05);
  CHECK(o.resolved_atol() == 0.0078);
  o.rtol = 0.01;
  CHECK(o.resolved_rtol() == 0.01);
  CHECK(o.resolved_atol() == 0.0078);
  SamplerOptions d;
  d.sampler = "ode";
  CHECK(d.resolved_rtol() == default_tolerance);
  CHECK(d.resolved_atol() == default_tolerance);
  const auto sde = make_sde(SdeOptions{});
  const auto record = to_json(SamplerOptions{ggf_options()}, *sde);
  CHECK(record["rtol"] == 0.05);
  CHECK(record["atol"] == 0.0078);
  CHECK(is_adaptive(ggf_options()));
  CHECK(evaluations_per_step(ggf_options()) == 0);
}

TEST_CASE("ggf: not a pc predictor (no corrector can run between its own steps)") {
  const auto sde = make_sde(SdeOptions{});
  SamplerOptions o;
  o.sampler = "pc";
  o.predictor = "ggf";
  o.corrector = "none";
  try {
    o.validate(*sde);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).rfind("--predictor = ggf", 0) == 0);
  }
}

TEST_CASE("ggf: sample i is bitwise the same for any -n, --chunk and --threads; NFE is per sample") {
  const auto mixture = load_data("eight_gaussians", 0);
  for (const SdeKind kind : {SdeKind::vp, SdeKind::ve}) {
    SdeOptions so;
    so.kind = kind;
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    for (const NoiseKind noise : {NoiseKind::brownian_tree, NoiseKind::independent}) {
      CAPTURE(to_string(kind));
      CAPTURE(to_string(noise));
      SamplerOptions o = ggf_options();
      o.noise = noise;
      o.chunk = 7;
      o.threads = 1;
      const long long calls = model.calls();
      const auto small = sample(*sde, model, o, 20);
      // Each sample runs alone (one column per call), and only the samples asked for run.
      CHECK(static_cast<double>(model.calls() - calls) == small.nfe.sum());
      CHECK(small.score_columns == small.score_calls);
      o.chunk = 64;
      o.threads = 2;
      const auto large = sample(*sde, model, o, 50);
      CHECK(bitwise_equal(small.samples, large.samples.leftCols(20)));
      CHECK(small.nfe == large.nfe.head(20));
      // Per-sample step sizes: the counts differ between samples; each is 2 per attempted step + 1 (the final
      // denoising step, --denoise on by default).
      CHECK(small.nfe.minCoeff() < small.nfe.maxCoeff());
      for (Index j = 0; j < small.nfe.size(); ++j) CHECK(static_cast<long long>(small.nfe(j)) % 2 == 1);
    }
  }
}

TEST_CASE("ggf: --noise independent is a Brownian tree of its own, not the shared one") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o = ggf_options();
  const Matrix shared = sample(*sde, model, o, 10).samples;
  o.noise = NoiseKind::independent;
  const Matrix own = sample(*sde, model, o, 10).samples;
  CHECK((shared - own).cwiseAbs().minCoeff() > 0.0);
  CHECK(bitwise_equal(own, sample(*sde, model, o, 10).samples));
}

TEST_CASE("ggf: --denoise adds Tweedie's step x + sigma(eps)^2 s(x, eps), one evaluation per sample") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o = ggf_options();
  o.denoise = false;
  const auto raw = sample(*sde, model, o, 12);
  o.denoise = true;
  const auto denoised = sample(*sde, model, o, 12);
  CHECK(denoised.nfe == (raw.nfe.array() + 1).matrix());
  const double eps = o.resolved_eps(*sde), sigma = sde->sigma(eps);
  Matrix s(2, 12);
  model.score(raw.samples, Vector::Constant(12, eps), s);
  CHECK((denoised.samples - (raw.samples + sigma * sigma * s)).cwiseAbs().maxCoeff() <= 1e-12);
}

TEST_CASE("ggf: the global error on one Brownian path falls with the tolerances") {
  // Reference: Euler-Maruyama (strong order 1 here) with 2^16 steps on the same tree; its own error is
  // far below ggf's at the tolerances tested. Gaussian data: on a mixture, a rare sample that a small error sends to
  // another mode dominates the RMS error at every tolerance.
  const auto mixture = load_data("gaussian", 2);
  for (const SdeKind kind : {SdeKind::vp, SdeKind::ve}) {
    SdeOptions so;
    so.kind = kind;
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    const Index n = 64;
    SamplerOptions ref = ggf_options();
    ref.sampler = "euler_maruyama";
    ref.denoise = false;
    ref.steps = 1 << 16;
    ref.threads = 2;
    const Matrix reference = sample(*sde, model, ref, n).samples;
    std::vector<double> errors, nfes;
    for (const double tol : {0.1, 0.01, 0.001}) {
      SamplerOptions o = ggf_options();
      o.denoise = false;
      o.rtol = tol;
      o.atol = tol;
      o.threads = 2;
      const auto r = sample(*sde, model, o, n);
      errors.push_back(std::sqrt((r.samples - reference).colwise().squaredNorm().mean()));
      nfes.push_back(r.nfe_mean());
    }
    MESSAGE(fmt::format("ggf {}: RMS errors {:.3e} {:.3e} {:.3e} at tol 0.1, 0.01, 0.001; mean NFE {} {} {}",
                        to_string(kind), errors[0], errors[1], errors[2], nfes[0], nfes[1], nfes[2]));
    // Each tenfold tightening cuts the error (about fourfold: the global error of a strong-order-1 pair under a
    // local-error control goes as tol^(2/3)) at least 2.5-fold, at a higher cost.
    CHECK(errors[1] < errors[0] / 2.5);
    CHECK(errors[2] < errors[1] / 2.5);
    CHECK(nfes[0] < nfes[1]);
    CHECK(nfes[1] < nfes[2]);
  }
}
