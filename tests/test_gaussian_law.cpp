// The exact output law on Gaussian data (solvers/gaussian_law.hpp): against moment recursions derived by hand for
// Euler-Maruyama and DDIM, against samples for every stepper of the registry that claims it applies, the steppers it
// does not apply to, its affinity check, the closed-form W2 and KL, and the gaussian-law command.
#include <doctest/doctest.h>

#include <Eigen/Eigenvalues>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/sde.hpp"
#include "experiments/metrics/metrics.hpp"
#include "gaussian_law_cases.hpp"
#include "models/datasets.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"
#include "solvers/gaussian_law.hpp"

using namespace scoresde;
using scoresde::testing::full_covariance_gaussian;

namespace {

struct Moments {
  Vector mean;
  Matrix cov;
};

double relative_difference(const Moments& a, const GaussianLaw& b) {
  return std::max((a.mean - b.mean).norm() / a.mean.norm(), (a.cov - b.covariance).norm() / a.cov.norm());
}

// The exact covariance of p_t and its inverse: C = alpha^2 S + sigma^2 I.
Matrix inverse_kernel_covariance(const Sde& sde, const Matrix& s, double t) {
  const double a = sde.alpha(t), sg = sde.sigma(t);
  const Matrix c = a * a * s + sg * sg * Matrix::Identity(s.rows(), s.cols());
  return c.inverse();
}

// Euler-Maruyama, x' = x - h (f x - g^2 s(x)) + g dW with s(x) = -C^{-1} (x - alpha m), is x' = M x + b + g dW with
//   M = (1 - h f) I - h g^2 C^{-1},  b = h g^2 alpha C^{-1} m,
// so mu' = M mu + b and P' = M P M^T + g^2 h I (no noise on the last step with --denoise).
Moments euler_maruyama_recursion(const Sde& sde, const Vector& m, const Matrix& s, const std::vector<double>& t,
                                 bool denoise) {
  const Index d = m.size();
  const Matrix id = Matrix::Identity(d, d);
  Moments x{Vector::Zero(d), sde.prior_std() * sde.prior_std() * id};
  for (std::size_t k = 0; k + 1 < t.size(); ++k) {
    const double h = t[k] - t[k + 1], f = sde.f(t[k]), g = sde.g(t[k]);
    const Matrix ci = inverse_kernel_covariance(sde, s, t[k]);
    const Matrix mm = (1.0 - h * f) * id - h * g * g * ci;
    x.mean = mm * x.mean + h * g * g * sde.alpha(t[k]) * ci * m;
    x.cov = mm * x.cov * mm.transpose();
    if (!(denoise && k + 2 == t.size())) x.cov += g * g * h * id;
  }
  return x;
}

// DDIM (eta = 0), x' = alpha' x0 + sigma' eps with eps = sigma C^{-1} (x - alpha m), x0 = (x - sigma eps) / alpha:
//   M = (alpha' / alpha) (I - sigma^2 C^{-1}) + sigma' sigma C^{-1},  b = (alpha' sigma^2 - sigma' sigma alpha) C^{-1}
//   m,
// mu' = M mu + b, P' = M P M^T.
Moments ddim_recursion(const Sde& sde, const Vector& m, const Matrix& s, const std::vector<double>& t) {
  const Index d = m.size();
  const Matrix id = Matrix::Identity(d, d);
  Moments x{Vector::Zero(d), sde.prior_std() * sde.prior_std() * id};
  for (std::size_t k = 0; k + 1 < t.size(); ++k) {
    const double a = sde.alpha(t[k]), sg = sde.sigma(t[k]), an = sde.alpha(t[k + 1]), sn = sde.sigma(t[k + 1]);
    const Matrix ci = inverse_kernel_covariance(sde, s, t[k]);
    const Matrix mm = (an / a) * (id - sg * sg * ci) + sn * sg * ci;
    x.mean = mm * x.mean + (an * sg * sg - sn * sg * a) * ci * m;
    x.cov = mm * x.cov * mm.transpose();
  }
  return x;
}

// DDIM with eta > 0 (Song, Meng & Ermon 2021, eqs. 12 and 16), x' = alpha' x0 + sqrt(sigma'^2 - c^2) eps + c z with
// c = eta sigma' sqrt(1 - e^{-2 h}), h = lambda' - lambda, z ~ N(0, I):
//   M = (alpha' / alpha) (I - sigma^2 C^{-1}) + r sigma C^{-1},  b = (alpha' sigma^2 - r sigma alpha) C^{-1} m,
//   r = sqrt(sigma'^2 - c^2),  P' = M P M^T + c^2 I (no noise on the last step with --denoise).
Moments ddim_eta_recursion(const Sde& sde, const Vector& m, const Matrix& s, const std::vector<double>& t, double eta,
                           bool denoise) {
  const Index d = m.size();
  const Matrix id = Matrix::Identity(d, d);
  Moments x{Vector::Zero(d), sde.prior_std() * sde.prior_std() * id};
  for (std::size_t k = 0; k + 1 < t.size(); ++k) {
    const double a = sde.alpha(t[k]), sg = sde.sigma(t[k]), an = sde.alpha(t[k + 1]), sn = sde.sigma(t[k + 1]);
    const double h = sde.lambda(t[k + 1]) - sde.lambda(t[k]);
    const double c = eta * sn * std::sqrt(-std::expm1(-2.0 * h)), r = std::sqrt(sn * sn - c * c);
    const Matrix ci = inverse_kernel_covariance(sde, s, t[k]);
    const Matrix mm = (an / a) * (id - sg * sg * ci) + r * sg * ci;
    x.mean = mm * x.mean + (an * sg * sg - r * sg * a) * ci * m;
    x.cov = mm * x.cov * mm.transpose();
    if (!(denoise && k + 2 == t.size())) x.cov += c * c * id;
  }
  return x;
}

// The DDIM(eta) check, for a build whose SamplerOptions has --eta (a template, so that it compiles without it).
template <class Options>
int check_ddim_eta(const Sde& sde, const ScoreModel& model, const Vector& m, const Matrix& s, Options o) {
  if constexpr (requires { o.eta; }) {
    int checked = 0;
    o.sampler = "ddim";
    const auto t = o.grid(sde).t;
    for (const double eta : {0.3, 1.0})
      for (const bool denoise : {true, false}) {
        o.eta = eta;
        o.denoise = denoise;
        CAPTURE(eta);
        CAPTURE(denoise);
        const auto law = gaussian_output_law(sde, model, o);
        CHECK(relative_difference(ddim_eta_recursion(sde, m, s, t, eta, denoise), law) < 1e-9);
        ++checked;
      }
    return checked;
  } else {
    return 0;
  }
}

std::vector<SdeKind> all_kinds() {
  return {SdeKind::vp, SdeKind::subvp, SdeKind::ve};
}

}  // namespace

TEST_CASE(
    "Euler-Maruyama and DDIM (and DDIM with eta > 0 where --eta exists): the exact law equals the moment "
    "recursions derived by hand") {
  const auto mixture = full_covariance_gaussian();
  const Vector m = mixture->means().col(0);
  const Matrix s = mixture->covariance(0);
  int eta_cases = 0;
  for (const auto kind : all_kinds())
    for (const std::string grid : {"uniform", "logsnr"})
      for (const int steps : {1, 7, 40}) {
        SdeOptions so;
        so.kind = kind;
        const auto sde = make_sde(so);
        const MixtureScore model(mixture, *sde);
        SamplerOptions o;
        o.time_grid = grid;
        o.steps = steps;
        const auto t = o.grid(*sde).t;
        CAPTURE(to_string(kind));
        CAPTURE(grid);
        CAPTURE(steps);
        for (const bool denoise : {true, false}) {
          o.sampler = "euler_maruyama";
          o.denoise = denoise;
          const auto law = gaussian_output_law(*sde, model, o);
          CHECK(relative_difference(euler_maruyama_recursion(*sde, m, s, t, denoise), law) < 1e-9);
          CHECK(law.nfe == steps);
          CHECK(law.draws == (denoise ? steps - 1 : steps));
        }
        o.sampler = "ddim";
        o.denoise = true;
        const auto law = gaussian_output_law(*sde, model, o);
        CHECK(relative_difference(ddim_recursion(*sde, m, s, t), law) < 1e-9);
        CHECK(law.draws == 0);
        eta_cases += check_ddim_eta(*sde, model, m, s, o);
      }
  if (eta_cases == 0) MESSAGE("no ddim --eta in this build: DDIM(eta > 0) not checked");
}

TEST_CASE("every registered stepper: the exact law applies exactly where the registry says, and matches samples") {
  const auto mixture = full_covariance_gaussian();
  SdeOptions so;
  const auto sde = make_sde(so);
  const MixtureScore model(mixture, *sde);
  std::vector<scoresde::testing::SamplerCase> cases = scoresde::testing::predictor_cases();
  for (const auto& more :
       {scoresde::testing::deterministic_cases(), scoresde::testing::ode_cases(), scoresde::testing::corrector_cases()})
    cases.insert(cases.end(), more.begin(), more.end());
  int applicable = 0;
  for (auto c : cases) {
    CAPTURE(c.label);
    c.options.steps = 8;
    c.options.time_grid = "logsnr";
    c.options.threads = 2;
    const auto why = gaussian_law_not_applicable(c.options);
    const bool corrector = c.options.sampler == "pc" && c.options.corrector != "none";
    const bool adaptive = is_adaptive(c.options);
    CHECK(why.has_value() == (corrector || adaptive));
    if (why) {
      scoresde::test::check_contains(*why, corrector ? "--corrector" : "--ode-method");
      CHECK_THROWS_AS(gaussian_output_law(*sde, model, c.options), ConfigError);
      continue;
    }
    ++applicable;
    const auto law = gaussian_output_law(*sde, model, c.options);
    const auto report = sample(*sde, model, c.options, 20000);
    CHECK(law.nfe == report.nfe_mean());
    const auto z = scoresde::testing::moment_z(law, report.samples);
    CHECK(z.mean_z < 5.0);
    CHECK(z.cov_z < 5.0);
  }
  CHECK(applicable >= 15);
}

TEST_CASE("the affinity check refuses a score that is not affine") {
  SdeOptions so;
  const auto sde = make_sde(so);
  Matrix means(2, 2);
  means << -2.0, 2.0, 0.0, 1.0;
  const auto mixture = std::make_shared<const GaussianMixture>(
      GaussianMixture::isotropic(Vector::Ones(2), means, Vector::Constant(2, 0.5)));
  const MixtureScore model(mixture, *sde);
  SamplerOptions o;
  o.sampler = "ddim";
  o.steps = 10;
  try {
    gaussian_output_law(*sde, model, o);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    scoresde::test::check_contains(e.what(), "--sampler = ddim");
    scoresde::test::check_contains(e.what(), "combination of probes");
  }
}

TEST_CASE("gaussian_w2 and gaussian_kl: the closed forms") {
  Vector m1(3), m0(3);
  m1 << 0.3, -0.2, 1.0;
  m0 << 0.0, 0.1, 0.8;
  SUBCASE("commuting (diagonal) covariances: W2^2 = |dm|^2 + sum (sqrt a - sqrt b)^2") {
    const Vector a = Vector::LinSpaced(3, 0.5, 2.0), b = Vector::LinSpaced(3, 1.5, 0.2);
    const double expected = (m1 - m0).squaredNorm() + (a.cwiseSqrt() - b.cwiseSqrt()).squaredNorm();
    CHECK(gaussian_w2(m1, a.asDiagonal(), m0, b.asDiagonal()) == doctest::Approx(expected).epsilon(1e-13));
  }
  SUBCASE("full covariances: the trace form, and KL's determinant form") {
    Matrix r1(3, 3), r0(3, 3);
    r1 << 1.0, 0.2, 0.0, -0.3, 0.9, 0.1, 0.5, 0.0, 0.7;
    r0 << 0.8, 0.0, 0.3, 0.1, 1.1, -0.2, 0.0, 0.4, 0.6;
    const Matrix s1 = r1 * r1.transpose(), s0 = r0 * r0.transpose();
    const Eigen::SelfAdjointEigenSolver<Matrix> e0(s0);
    const Matrix root0 = e0.operatorSqrt();
    const Eigen::SelfAdjointEigenSolver<Matrix> em(root0 * s1 * root0);
    const double w2 = (m1 - m0).squaredNorm() + s1.trace() + s0.trace() - 2.0 * em.operatorSqrt().trace();
    CHECK(gaussian_w2(m1, s1, m0, s0) == doctest::Approx(w2).epsilon(1e-12));
    const Matrix s0i = s0.inverse();
    const double kl = 0.5 * ((s0i * s1).trace() + (m1 - m0).dot(s0i * (m1 - m0)) - 3.0 +
                             std::log(s0.determinant() / s1.determinant()));
    CHECK(gaussian_kl(m1, s1, m0, s0) == doctest::Approx(kl).epsilon(1e-12));
    CHECK(gaussian_w2(m0, s0, m0, s0) < 1e-28);
    CHECK(gaussian_kl(m0, s0, m0, s0) == doctest::Approx(0.0).epsilon(1e-14));
    // A singular output covariance: KL is infinite, W2 finite.
    const Matrix singular = Vector(Vector::Ones(3)) * Vector(Vector::Ones(3)).transpose();
    CHECK(std::isinf(gaussian_kl(m1, singular, m0, s0)));
    CHECK(std::isfinite(gaussian_w2(m1, singular, m0, s0)));
  }
}

TEST_CASE("scoresde gaussian-law writes the law, W2, KL, NFE and the resolved options") {
  scoresde::test::TempDir dir("gaussian-law");
  const auto out = dir.file("law.json");
  const auto r = scoresde::test::run({"gaussian-law", "--data", "gaussian", "--dim", "3", "--sde", "vp", "--sampler",
                                      "euler_maruyama", "--steps", "20", "--out", out});
  INFO(r.err);
  REQUIRE(r.code == 0);
  nlohmann::json j;
  std::ifstream(out) >> j;
  CHECK(j["mean"].size() == 3);
  CHECK(j["covariance"].size() == 3);
  CHECK(j["covariance"][0].size() == 3);
  CHECK(j["nfe"].get<double>() == 20);
  CHECK(j["gaussian_w2"].get<double>() > 0);
  CHECK(j["gaussian_kl"].get<double>() > 0);
  CHECK(j["options"]["sampler"] == "euler_maruyama");
  CHECK(j["options"]["steps"] == 20);
  CHECK(j["context"].contains("version"));
  CHECK(j["command"].get<std::string>().find("scoresde gaussian-law") == 0);
  // The same law through the library.
  SdeOptions so;
  const auto sde = make_sde(so);
  const auto mixture = std::make_shared<const GaussianMixture>(
      GaussianMixture::isotropic(Vector::Ones(1), Matrix::Zero(3, 1), Vector::Ones(1)));
  const MixtureScore model(mixture, *sde);
  SamplerOptions o;
  o.steps = 20;
  const auto law = gaussian_output_law(*sde, model, o);
  CHECK(j["covariance"][1][1].get<double>() == doctest::Approx(law.covariance(1, 1)).epsilon(1e-14));
  CHECK(j["gaussian_w2"].get<double>() ==
        doctest::Approx(gaussian_w2(law.mean, law.covariance, Vector::Zero(3), Matrix::Identity(3, 3))));
}

TEST_CASE(
    "scoresde gaussian-law: data that are not one Gaussian, a Langevin corrector and dopri5 exit 2 naming the "
    "option") {
  scoresde::test::TempDir dir("gaussian-law-bad");
  const auto out = dir.file("law.json");
  const auto two = dir.write("two.json", R"({"weights": [1, 1], "means": [[0, 0], [1, 1]], "stds": [1, 1]})");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--data", "eight_gaussians", "--sampler", "ddim"}, "--data = eight_gaussians"},
      {{"--data", two, "--sampler", "ddim"}, "--data = " + two},
      {{"--data", "two_moons", "--sampler", "ddim"}, "--data = two_moons"},
      {{"--sampler", "ddim"}, "--data"},
      {{"--data", "gaussian", "--sampler", "pc", "--corrector", "langevin"}, "--corrector = langevin"},
      {{"--data", "gaussian", "--sampler", "pc", "--corrector", "ald"}, "--corrector = ald"},
      {{"--data", "gaussian", "--sampler", "ode", "--ode-method", "dopri5"}, "--ode-method = dopri5"},
  };
  for (const auto& entry : cases) {
    const auto& extra = std::get<0>(entry);
    const auto& needle = std::get<1>(entry);
    std::vector<std::string> args{"gaussian-law", "--dim", "2", "--steps", "10", "--out", out};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = scoresde::test::run(args);
    CAPTURE(needle);
    CHECK(r.code == 2);
    scoresde::test::check_contains(r.err, needle);
    CHECK(!std::filesystem::exists(out));
  }
}

TEST_CASE(
    "study metrics gaussian_w2 and gaussian_kl: exact values with standard error 0, a note where the law does "
    "not apply") {
  scoresde::test::TempDir dir("gaussian-law-study");
  const auto out = dir.file("s");
  const auto r = scoresde::test::run({"study",
                                      "--data",
                                      "gaussian",
                                      "--dim",
                                      "3",
                                      "--sde",
                                      "vp",
                                      "--sampler",
                                      "euler_maruyama,pc",
                                      "--steps",
                                      "10",
                                      "--seeds",
                                      "2",
                                      "-n",
                                      "200",
                                      "--metrics",
                                      "gaussian_w2,gaussian_kl,frechet",
                                      "--threads",
                                      "2",
                                      "--quiet",
                                      "--out",
                                      out});
  INFO(r.err);
  REQUIRE(r.code == 0);
  nlohmann::json j;
  std::ifstream(out + "/results.json") >> j;
  SdeOptions so;
  const auto sde = make_sde(so);
  const auto mixture = std::make_shared<const GaussianMixture>(
      GaussianMixture::isotropic(Vector::Ones(1), Matrix::Zero(3, 1), Vector::Ones(1)));
  const MixtureScore model(mixture, *sde);
  SamplerOptions o;
  o.steps = 10;
  const auto law = gaussian_output_law(*sde, model, o);
  const double w2 = gaussian_w2(law.mean, law.covariance, Vector::Zero(3), Matrix::Identity(3, 3));
  int em = 0, pc = 0;
  for (const auto& row : j["rows"]) {
    if (row["sampler"] == "euler_maruyama") {
      ++em;
      CHECK(row["gaussian_w2"].get<double>() == doctest::Approx(w2).epsilon(1e-12));
      CHECK(row["gaussian_w2_se"].get<double>() == 0.0);
      CHECK(row["gaussian_kl_se"].get<double>() == 0.0);
      CHECK(row["frechet"].is_number());  // sampled: a sample metric was asked for
      CHECK(row["note"].is_null());
    } else if (row["sampler"] == "pc") {
      ++pc;
      CHECK(row["gaussian_w2"].is_null());
      CHECK(row["gaussian_kl"].is_null());
      scoresde::test::check_contains(row["note"].get<std::string>(), "--corrector = langevin");
      CHECK(row["frechet"].is_number());
    }
  }
  CHECK(em == 2);
  CHECK(pc == 2);

  // Asked for with data that are not one Gaussian: exit 2 naming --metrics.
  const auto bad = scoresde::test::run(
      {"study", "--data", "eight_gaussians", "--metrics", "gaussian_w2", "--quiet", "--out", dir.file("bad")});
  CHECK(bad.code == 2);
  scoresde::test::check_contains(bad.err, "--metrics = gaussian_w2");
}

TEST_CASE("study --preset gaussian: every applicable sampler from the registry, exact metrics only") {
  scoresde::test::TempDir dir("gaussian-preset");
  const auto out = dir.file("g");
  const auto r = scoresde::test::run(
      {"study", "--preset", "gaussian", "--sde", "vp", "--steps", "4", "--threads", "2", "--quiet", "--out", out});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(std::filesystem::exists(out + "/gaussian10.json"));
  const auto mixture = load_data(out + "/gaussian10.json", 0);
  CHECK(mixture->dim() == 10);
  CHECK(mixture->covariance(0)(0, 1) == doctest::Approx(0.25 * 0.25 * std::pow(8.0, 1.0 / 9.0) * 0.8));
  nlohmann::json j;
  std::ifstream(out + "/results.json") >> j;
  std::set<std::string> samplers;
  for (const auto& row : j["rows"]) {
    if (row["sampler"] == "exact") continue;
    samplers.insert(row["sampler"] == "ode" ? "ode " + row["ode_method"].get<std::string>()
                                            : row["sampler"].get<std::string>());
    CHECK(row["status"] == "ok");
    CHECK(row["gaussian_w2"].get<double>() > 0);
    CHECK(row["gaussian_w2_se"].get<double>() == 0.0);
    CHECK(row["nfe"].get<double>() > 0);
  }
  std::set<std::string> expected;
  for (const auto& e : predictor_registry())
    if (!e.adaptive) expected.insert(e.name);
  for (const auto& e : ode_method_registry())
    if (!e.adaptive) expected.insert("ode " + e.name);
  CHECK(samplers == expected);
}
