// Path error and measured orders (experiments/metrics/path_error.hpp, convergence.hpp; `scoresde convergence`): which
// reference each registered configuration takes; the reference starts from the same latents and follows the same
// Brownian path (a run against itself is 0 to the bit); the --denoise step is kept whole in an SDE reference; the
// ODE reference is shared only where it is the same; the RMS and its delta-method standard error; the least-squares
// order and its standard error; the weak-error hook; the study's columns; the command's files and its refusals.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/noise.hpp"
#include "experiments/metrics/convergence.hpp"
#include "experiments/metrics/path_error.hpp"
#include "experiments/study/study.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;
using namespace scoresde::testing;
using scoresde::test::check_contains;
using scoresde::test::TempDir;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Fixture {
  std::shared_ptr<const GaussianMixture> mixture = load_data("eight_gaussians", 0);
  std::unique_ptr<Sde> sde;
  std::unique_ptr<MixtureScore> model;
  explicit Fixture(SdeKind kind = SdeKind::vp) {
    SdeOptions so;
    so.kind = kind;
    sde = make_sde(so);
    model = std::make_unique<MixtureScore>(mixture, *sde);
  }
};

SamplerOptions with(std::string sampler, int steps, NoiseKind noise = NoiseKind::brownian_tree) {
  SamplerOptions o;
  o.sampler = std::move(sampler);
  o.steps = steps;
  o.noise = noise;
  o.seed = 7;
  o.threads = 2;
  o.chunk = 32;
  return o;
}

}  // namespace

TEST_CASE("every registered configuration has its reference: dopri5, the refined sampler, or none with a reason") {
  for (const auto& c : deterministic_cases()) {
    CAPTURE(c.label);
    CHECK(path_error_kind(c.options) == ErrorKind::path);
  }
  for (const auto& c : ode_cases()) {
    CAPTURE(c.label);
    CHECK(path_error_kind(c.options) == ErrorKind::path);
  }
  for (auto c : predictor_cases()) {
    CAPTURE(c.label);
    c.options.noise = NoiseKind::brownian_tree;
    CHECK(path_error_kind(c.options) == ErrorKind::strong);
    c.options.noise = NoiseKind::independent;
    std::string why;
    CHECK_FALSE(path_error_kind(c.options, &why).has_value());
    check_contains(why, "--noise independent");
    check_contains(describe_path_reference(c.options), "not applicable");
  }
  for (auto c : corrector_cases()) {
    CAPTURE(c.label);
    c.options.noise = NoiseKind::brownian_tree;
    std::string why;
    CHECK_FALSE(path_error_kind(c.options, &why).has_value());
    check_contains(why, "Langevin");
  }
}

TEST_CASE("the reference starts from the same latents: a run that is its own reference has path error 0") {
  Fixture f;
  // dopri5 at the reference's tolerances is the reference: the same prior draws, the same arithmetic.
  SamplerOptions o = with("ode", 1);
  o.ode_method = "dopri5";
  o.rtol = o.atol = 1e-10;
  const Matrix x = sample(*f.sde, *f.model, o, 40).samples;
  const PathErrors e = path_errors(x, path_reference(*f.sde, *f.model, o, 40));
  CHECK(e.rms.value == 0.0);
  CHECK(e.max == 0.0);
  // A probability-flow sampler's error falls with its steps.
  const auto ddim = [&](int steps) {
    const SamplerOptions d = with("ddim", steps);
    return path_errors(sample(*f.sde, *f.model, d, 40).samples, path_reference(*f.sde, *f.model, d, 40)).rms.value;
  };
  CHECK(ddim(40) < ddim(10) / 3);
}

TEST_CASE("an SDE reference is the same sampler on its grid refined, on the same Brownian path") {
  Fixture f;
  SamplerOptions o = with("euler_maruyama", 32);
  o.denoise = false;
  const Matrix x = sample(*f.sde, *f.model, o, 40).samples;
  const Matrix ref = path_reference(*f.sde, *f.model, o, 40);
  // The refined grid holds every time of the run's grid, 16 steps per step.
  const TimeGrid fine = sde_reference_grid(*f.sde, o, 16);
  CHECK(fine.steps() == 32 * 16);
  CHECK(ref == sample_on_grid(*f.sde, *f.model, o, fine, 40).samples);
  // The same path: the samples move by the discretisation error only, not by a different draw (tens of times less
  // than the distance between independent samples).
  const Matrix other = sample(*f.sde, *f.model, with("euler_maruyama", 128, NoiseKind::independent), 40).samples;
  const double paired = path_errors(x, ref).rms.value, unpaired = path_errors(other, ref).rms.value;
  CAPTURE(paired);
  CAPTURE(unpaired);
  CHECK(paired < unpaired / 4);
  // Strong order 1: four times the steps, about a quarter of the error.
  o.steps = 128;
  CHECK(path_errors(sample(*f.sde, *f.model, o, 40).samples, path_reference(*f.sde, *f.model, o, 40)).rms.value <
        paired / 2);
}

TEST_CASE("--denoise on: the noise-free last step is kept whole in the reference") {
  Fixture f;
  // One step under --denoise on is nothing but the noise-free step: the reference is the run itself.
  SamplerOptions o = with("euler_maruyama", 1);
  CHECK(sde_reference_grid(*f.sde, o, 16).steps() == 1);
  CHECK(path_errors(sample(*f.sde, *f.model, o, 20).samples, path_reference(*f.sde, *f.model, o, 20)).rms.value == 0.0);
  // With more steps the last one is whole and the others are split; --denoise off splits them all.
  o.steps = 5;
  CHECK(sde_reference_grid(*f.sde, o, 16).steps() == 4 * 16 + 1);
  o.denoise = false;
  CHECK(sde_reference_grid(*f.sde, o, 16).steps() == 5 * 16);
}

TEST_CASE("refine_time_grid keeps every time to the bit and splits each step into equal parts") {
  Fixture f;
  const TimeGrid g = make_time_grid(TimeGridKind::logsnr, *f.sde, 1.0, 1e-3, 7);
  const TimeGrid r = refine_time_grid(g, 4);
  REQUIRE(r.steps() == 28);
  for (int k = 0; k <= 7; ++k) CHECK(r.t[4 * k] == g.t[k]);
  for (int k = 0; k < 7; ++k)
    for (int j = 1; j < 4; ++j) CHECK(r.t[4 * k + j] == doctest::Approx(g.t[k] + j * (g.t[k + 1] - g.t[k]) / 4));
  const TimeGrid whole_last = refine_time_grid(g, 4, true);
  CHECK(whole_last.steps() == 25);
  CHECK(whole_last.t[24] == g.t[6]);
  CHECK(whole_last.t.back() == g.t.back());
  CHECK_THROWS_AS(refine_time_grid(g, 0), ConfigError);
}

TEST_CASE("short_start_grid cuts the first step into three of min(dl^2, dl/4) in log-SNR and keeps the rest") {
  Fixture f;
  for (const int steps : {10, 200}) {
    CAPTURE(steps);
    const TimeGrid g = make_time_grid(TimeGridKind::logsnr, *f.sde, 1.0, 1e-3, steps);
    const TimeGrid s = short_start_grid(*f.sde, g);
    REQUIRE(s.steps() == steps + 3);
    const double l0 = f.sde->lambda(g.t[0]), dl = f.sde->lambda(g.t[1]) - l0, d = std::min(dl * dl, dl / 4);
    CHECK((steps == 200) == (d == dl * dl));
    for (int j = 1; j <= 3; ++j) CHECK(f.sde->lambda(s.t[j]) == doctest::Approx(l0 + j * d));
    CHECK(s.t[0] == g.t[0]);
    for (int k = 1; k <= steps; ++k) CHECK(s.t[k + 3] == g.t[k]);
  }
}

TEST_CASE("ODE references are shared where they are the same, and only there") {
  Fixture vp, ve(SdeKind::ve);
  SamplerOptions ddim = with("ddim", 10), unipc = with("unipc", 20);
  unipc.time_grid = "karras";
  const auto key = shared_reference_key(*vp.sde, ddim, 100);
  CHECK_FALSE(key.empty());
  CHECK(key == shared_reference_key(*vp.sde, unipc, 100));  // dopri5 reads the grid's ends only
  CHECK(key != shared_reference_key(*vp.sde, ddim, 50));
  CHECK(key != shared_reference_key(*ve.sde, ddim, 100));
  SamplerOptions other = ddim;
  other.seed = 8;
  CHECK(key != shared_reference_key(*vp.sde, other, 100));
  other = ddim;
  other.eps = 1e-2;
  CHECK(key != shared_reference_key(*vp.sde, other, 100));
  other = ddim;
  other.denoise_to_zero = true;
  CHECK(key != shared_reference_key(*vp.sde, other, 100));
  CHECK(shared_reference_key(*vp.sde, with("euler_maruyama", 10), 100).empty());
}

TEST_CASE("path_error is the RMS over samples with its delta-method standard error; path_error_max the largest") {
  Matrix x = Matrix::Zero(2, 4), ref = Matrix::Zero(2, 4);
  x.col(0) << 3, 4;  // |e| = 5
  x.col(1) << 1, 0;  // 1
  x.col(2) << 0, 2;  // 2
  x.col(3) << 0, 0;  // 0
  const PathErrors e = path_errors(x, ref);
  const double m = (25.0 + 1 + 4 + 0) / 4;
  CHECK(e.rms.value == doctest::Approx(std::sqrt(m)));
  CHECK(e.max == doctest::Approx(5.0));
  double var = 0;
  for (double s : {25.0, 1.0, 4.0, 0.0}) var += (s - m) * (s - m) / 3;
  CHECK(e.rms.std_error == doctest::Approx(std::sqrt(var / 4) / (2 * std::sqrt(m))));
  CHECK(path_errors(ref, ref).rms.std_error == 0.0);
  CHECK_THROWS_AS(path_errors(x, ref.leftCols(3)), InputError);
  CHECK_THROWS_AS(path_errors(x.leftCols(1), ref.leftCols(1)), InputError);
}

TEST_CASE("fit_order: least-squares slope of log error on log N and its standard error") {
  const OrderFit exact = fit_order({10, 20, 40, 80}, {1.0, 0.25, 0.0625, 0.015625});
  CHECK(exact.order == doctest::Approx(2.0));
  CHECK(exact.order_se == doctest::Approx(0.0).epsilon(1e-12));
  // Three points, residuals by hand: x = log N, y = log e.
  const std::vector<double> n{10, 20, 40}, e{1.0, 0.3, 0.1};
  const OrderFit fit = fit_order(n, e);
  double mx = 0, my = 0;
  for (int j = 0; j < 3; ++j) mx += std::log(n[j]) / 3, my += std::log(e[j]) / 3;
  double sxx = 0, sxy = 0;
  for (int j = 0; j < 3; ++j) {
    sxx += std::pow(std::log(n[j]) - mx, 2);
    sxy += (std::log(n[j]) - mx) * (std::log(e[j]) - my);
  }
  const double b = sxy / sxx;
  double ssr = 0;
  for (int j = 0; j < 3; ++j) ssr += std::pow(std::log(e[j]) - my - b * (std::log(n[j]) - mx), 2);
  CHECK(fit.order == doctest::Approx(-b));
  CHECK(fit.order_se == doctest::Approx(std::sqrt(ssr / 1 / sxx)));
  CHECK(std::isnan(fit_order({10, 20}, {1.0, 0.5}).order_se));
  CHECK_THROWS_AS(fit_order({10}, {1.0}), ConfigError);
  CHECK_THROWS_AS(fit_order({10, 20, 40}, {1.0, 0.0, 0.1}), ConfigError);
}

TEST_CASE("measure_convergence: path and strong rows, the weak hook, and the cases it refuses") {
  Fixture f;
  ConvergenceSettings s;
  s.steps = {8, 16, 32};
  s.samples = 64;
  // The hook for the exact law: a weak row where it gives a value at every step count.
  s.weak_error = [](const SamplerOptions& o) -> std::optional<double> {
    if (o.sampler == "ddim") return 3.0 * std::pow(o.steps, -1.5);
    return std::nullopt;
  };
  SamplerOptions em = with("euler_maruyama", 1);
  em.denoise = false;
  const auto results =
      measure_convergence(*f.sde, *f.model, {convergence_case(with("ddim", 1)), convergence_case(em)}, s);
  REQUIRE(results.size() == 3);
  CHECK(results[0].kind == ErrorKind::path);
  CHECK(results[0].sampler == "ddim");
  CHECK(results[0].declared_order == 1);
  CHECK(results[0].points.size() == 3);
  CHECK(results[0].points[1].nfe == 16);
  CHECK(results[0].measured.order > 0.8);
  CHECK(results[1].kind == ErrorKind::weak);
  CHECK(results[1].measured.order == doctest::Approx(1.5));
  CHECK(results[2].kind == ErrorKind::strong);
  CHECK(results[2].label == "euler_maruyama");
  CHECK(results[2].measured.order > 0.5);
  const std::string orders = orders_csv(results);
  CHECK(orders.rfind("sampler,label,kind,declared_order,measured_order,slope_se\n", 0) == 0);
  check_contains(orders, "\nddim,ddim,weak,1,1.5,");
  check_contains(errors_csv(results), "euler_maruyama,euler_maruyama,strong,32,32,");

  s.weak_error = {};
  SamplerOptions pc = with("pc", 1);
  CHECK_THROWS_WITH_AS(measure_convergence(*f.sde, *f.model, {convergence_case(pc)}, s),
                       doctest::Contains("--sampler = pc"), ConfigError);
  SamplerOptions dopri5 = with("ode", 1);
  CHECK_THROWS_WITH_AS(measure_convergence(*f.sde, *f.model, {convergence_case(dopri5)}, s),
                       doctest::Contains("adaptive"), ConfigError);
  CHECK_THROWS_WITH_AS(
      measure_convergence(*f.sde, *f.model, {convergence_case(with("euler_maruyama", 1, NoiseKind::independent))}, s),
      doctest::Contains("--noise independent"), ConfigError);
  s.steps = {8, 4, 16};
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("--steps = 8,4,16"), ConfigError);
  s.steps = {8, 16};
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("at least 3"), ConfigError);
}

TEST_CASE("a study records path_error and path_error_max where they apply, from one reference per ODE grid") {
  TempDir dir;
  StudySpec spec;
  spec.blocks.clear();
  spec.sde = {"vp"};
  spec.axes["sampler"] = {"euler_maruyama", "pc", "ode", "ddim"};
  spec.axes["ode-method"] = {"rk4"};
  spec.set_axis("steps", std::vector<int>{5, 20});
  spec.seeds = 1;
  spec.samples = 300;
  spec.path_samples = 100;
  spec.metrics = {"mean_error", "path_error", "path_error_max"};
  spec.sampler_base.threads = 2;
  const auto rows = run_study(spec, dir.file("s"), false, "test");
  const auto csv = read_text(dir.file("s") + "/results.csv");
  check_contains(csv, ",path_error,path_error_se,path_error_max,path_error_max_se,");
  for (const auto& row : rows) {
    CAPTURE(row["run"].get<std::string>());
    const std::string sampler = row["sampler"];
    if (sampler == "exact" || sampler == "pc") {
      CHECK(row["path_error"].is_null());
      continue;
    }
    CHECK(row["path_error"].get<double>() > 0);
    CHECK(row["path_error_se"].get<double>() > 0);
    CHECK(row["path_error_max"].get<double>() >= row["path_error"].get<double>());
    CHECK(row["path_error_max_se"].is_null());
  }
  // The first 100 samples of a run of 300: the same as a run of 100 against its reference.
  Fixture f;
  SamplerOptions d = spec.sampler_base;
  d.sampler = "ddim";
  d.steps = 5;
  d.seed = 0;
  const PathErrors direct =
      path_errors(sample(*f.sde, *f.model, d, 100).samples, path_reference(*f.sde, *f.model, d, 100));
  for (const auto& row : rows)
    if (row["run"] == "vp.ddim.n5.s0") CHECK(row["path_error"].get<double>() == doctest::Approx(direct.rms.value));
}

TEST_CASE("scoresde convergence writes orders.csv, errors.csv, its record and the figure; bad input exits 2") {
  TempDir dir;
  const auto out = dir.file("c");
  const auto r = scoresde::test::run({"convergence", "--sde", "vp", "--data", "eight_gaussians", "--sampler",
                                      "ddim,euler_maruyama", "--steps", "8,16,32", "-n", "50", "--threads", "2",
                                      "--quiet", "--out", out});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto orders = read_text(out + "/orders.csv");
  CHECK(orders.rfind("sampler,label,kind,declared_order,measured_order,slope_se\n", 0) == 0);
  check_contains(orders, "ddim,ddim,path,1,");
  check_contains(orders, "euler_maruyama,euler_maruyama,strong,1,");
  CHECK(read_text(out + "/errors.csv").rfind("sampler,label,kind,steps,nfe,error,error_se,error_max\n", 0) == 0);
  const auto record = nlohmann::json::parse(read_text(out + "/convergence.json"));
  check_contains(record["command"].get<std::string>(), "scoresde convergence --data eight_gaussians");
  for (const auto* key : {"version", "git_revision", "compiler", "threads"})
    CHECK_MESSAGE(record["context"].contains(key), key);
  CHECK(record["options"]["noise"] == "brownian_tree");
  CHECK(record["results"].size() == 2);
  CHECK(std::filesystem::exists(out + "/convergence.png"));

  const auto bad = [&](std::vector<std::string> args, const std::string& expected) {
    // Every refusal comes before any sampling (the default -n and --steps would take long).
    args.insert(args.begin(), "convergence");
    args.push_back("--out");
    args.push_back(dir.file("bad"));
    const auto result = scoresde::test::run(args);
    CAPTURE(expected);
    CHECK(result.code == 2);
    check_contains(result.err, expected);
  };
  bad({"--steps", "8,16,32"}, "--sampler: required");
  bad({"--sampler", "ddim", "--steps", "8,4,16"}, "--steps = 8,4,16");
  bad({"--sampler", "ddim", "--steps", "8,16"}, "--steps");
  bad({"--sampler", "ddim", "--steps", "8,x,16"}, "--steps");
  bad({"--sampler", "ddim,bogus"}, "--sampler");
  bad({"--sampler", "pc"}, "--sampler = pc");
  bad({"--sampler", "euler_maruyama", "--noise", "independent"}, "--noise independent");
  bad({"--sampler", "ode", "--ode-method", "dopri5"}, "adaptive");
  bad({"--sampler", "ddim", "-n", "1"}, "-n");
  bad({"--sampler", "ddim", "--refine", "1"}, "--refine");
  bad({"--sampler", "ddim", "--short-start", "yes"}, "--short-start = yes");
  const auto grid = dir.write("grid.txt", "1\n0.5\n0.001\n");
  bad({"--sampler", "ddim", "--time-grid", grid}, "--time-grid");
  CHECK_FALSE(std::filesystem::exists(dir.file("bad")));
}
