// Time grids (core/time_grid.hpp): every kind on every SDE ends exactly at T and eps and decreases strictly; uniform
// is the driver's historical grid bit for bit; quadratic is uniform in sqrt(t), logsnr in lambda, karras in
// sigma~^(1/rho); a file grid (.npy or text) holds exactly the file's times, and a bad file is refused with its name
// and the problem; SamplerOptions::grid, adopt_grid_file and validate take steps and eps from a file.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/sde.hpp"
#include "core/time_grid.hpp"
#include "solvers/options.hpp"

using namespace scoresde;
using scoresde::test::TempDir;

namespace {

struct SdeCase {
  std::string label;
  SdeOptions options;
};

std::vector<SdeCase> sde_cases() {
  std::vector<SdeCase> cases;
  for (const SdeKind kind : {SdeKind::vp, SdeKind::subvp, SdeKind::ve})
    for (const VpSchedule schedule : {VpSchedule::linear, VpSchedule::cosine}) {
      if (kind == SdeKind::ve && schedule == VpSchedule::cosine) continue;
      SdeOptions o;
      o.kind = kind;
      o.schedule = schedule;
      cases.push_back({to_string(kind) + " " + to_string(schedule), o});
    }
  SdeOptions ve348;
  ve348.kind = SdeKind::ve;
  ve348.sigma_max = 348;
  ve348.T = 0.9;
  cases.push_back({"ve sigma_max 348 T 0.9", ve348});
  return cases;
}

// The largest deviation of consecutive differences of v from their mean, relative to the mean's size.
double spacing_spread(const std::vector<double>& v) {
  const double mean = (v.back() - v.front()) / static_cast<double>(v.size() - 1);
  double worst = 0;
  for (std::size_t i = 1; i < v.size(); ++i) worst = std::max(worst, std::abs((v[i] - v[i - 1]) - mean));
  return worst / std::abs(mean);
}

std::string grid_error(const std::string& path, double T) {
  try {
    read_time_grid_file(path, T);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("every grid kind on every SDE: t_0 = T and t_N = eps exactly, strictly decreasing, N steps") {
  for (const auto& c : sde_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    const double T = sde->T();
    for (const auto& name : time_grid_names()) {
      CAPTURE(name);
      for (const int steps : {1, 2, 7, 100, 1000}) {
        CAPTURE(steps);
        for (const double eps : {sde->default_eps(), 0.05}) {
          const auto g = make_time_grid(*enum_from_name<TimeGridKind>(name), *sde, T, eps, steps);
          CHECK(g.name == name);
          REQUIRE(g.steps() == steps);
          CHECK(g.t.front() == T);
          CHECK(g.t.back() == eps);
          for (int k = 0; k < steps; ++k) CHECK(g.t[k] > g.t[k + 1]);
        }
      }
    }
  }
}

TEST_CASE("uniform is the driver's historical grid T + k (eps - T) / N, bit for bit") {
  for (const auto& c : sde_cases()) {
    const auto sde = make_sde(c.options);
    for (const int steps : {1, 37, 50, 1000}) {
      const double T = sde->T(), eps = sde->default_eps();
      const auto g = make_time_grid(TimeGridKind::uniform, *sde, T, eps, steps);
      for (int k = 0; k < steps; ++k) CHECK(g.t[k] == T + k * (eps - T) / steps);
      CHECK(g.t.back() == eps);
    }
  }
}

TEST_CASE("quadratic is uniform in sqrt(t), logsnr in lambda_t, karras in sigma~^(1/rho)") {
  for (const auto& c : sde_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    const double T = sde->T(), eps = sde->default_eps();
    const int N = 50;
    // Each grid mapped back through its own variable has equal steps up to the rounding of t: the spread is a
    // few ulps of the variable's range over the step (~1e-13 here); a grid uniform in another variable is off by
    // O(1).
    const auto quadratic = make_time_grid(TimeGridKind::quadratic, *sde, T, eps, N);
    std::vector<double> root_t;
    for (double t : quadratic.t) root_t.push_back(std::sqrt(t));
    CHECK(spacing_spread(root_t) <= 1e-10);
    const auto logsnr = make_time_grid(TimeGridKind::logsnr, *sde, T, eps, N);
    std::vector<double> lambda;
    for (double t : logsnr.t) lambda.push_back(sde->lambda(t));
    CHECK(spacing_spread(lambda) <= 1e-10);
    CHECK(spacing_spread(logsnr.t) > 0.1);  // not uniform in t
    for (const double rho : {7.0, 3.0, 1.0, 0.5}) {
      CAPTURE(rho);
      const auto karras = make_time_grid(TimeGridKind::karras, *sde, T, eps, N, rho);
      std::vector<double> root_sigma;
      for (double t : karras.t) root_sigma.push_back(std::pow(sde->sigma_tilde(t), 1.0 / rho));
      CHECK(spacing_spread(root_sigma) <= 1e-10);
      // Karras et al. 2022, eq. 5, with i / N in place of i / (N - 1) (the last step ends at sigma~(eps), not 0),
      // compared in sigma~^(1/rho), where the formula is linear and rounds to ~eps of its larger end (for rho < 1
      // the small end's sigma~ itself is not resolved to better than that).
      const double a = std::pow(sde->sigma_tilde(T), 1 / rho), b = std::pow(sde->sigma_tilde(eps), 1 / rho);
      for (int i = 0; i <= N; ++i)
        CHECK(std::abs(std::pow(sde->sigma_tilde(karras.t[i]), 1 / rho) - (a + i / double(N) * (b - a))) <=
              1e-12 * std::max(a, b));
    }
    // rho -> infinity: the karras grid tends to the logsnr grid (sigma~^(1/rho) = 1 + log(sigma~) / rho + ...).
    const auto far = make_time_grid(TimeGridKind::karras, *sde, T, eps, N, 1e6);
    for (int i = 0; i <= N; ++i) CHECK(std::abs(far.t[i] - logsnr.t[i]) <= 1e-4 * logsnr.t[i]);
  }
}

TEST_CASE("make_time_grid refuses bad arguments naming the option") {
  const auto sde = make_sde(SdeOptions{});
  CHECK_THROWS_WITH_AS(make_time_grid(TimeGridKind::karras, *sde, 1.0, 1e-3, 10, 0.0), "--rho = 0: must be > 0",
                       ConfigError);
  CHECK_THROWS_WITH_AS(make_time_grid(TimeGridKind::logsnr, *sde, 1.0, 1e-3, 0), "--steps = 0: must be >= 1",
                       ConfigError);
  CHECK_THROWS_WITH_AS(make_time_grid(TimeGridKind::uniform, *sde, 1.0, 2.0, 10),
                       doctest::Contains("--eps = 2: must be in (0, T)"), ConfigError);
  // Steps finer than the spacing of doubles: neighbouring times coincide.
  CHECK_THROWS_WITH_AS(make_time_grid(TimeGridKind::quadratic, *sde, 1.0, 1.0 - 1e-14, 1000),
                       doctest::Contains("--time-grid = quadratic: with --steps 1000"), ConfigError);
  CHECK_THROWS_AS(make_time_grid(TimeGridKind::uniform, *sde, 1.0, 1.0 - 1e-14, 1000), ConfigError);
}

TEST_CASE("a file grid holds exactly the file's times: .npy (float64, float32) and text") {
  TempDir dir("grid");
  const std::vector<double> times{1.0, 0.7, 0.31234567890123456, 0.1, 1e-3};
  Vector v(5);
  for (int i = 0; i < 5; ++i) v(i) = times[i];
  dump_vector_npy(dir.file("g.npy"), v);
  CHECK(read_time_grid_file(dir.file("g.npy"), 1.0).t == times);
  // The .npy magic decides, not the name.
  std::filesystem::copy_file(dir.file("g.npy"), dir.file("g.dat"));
  CHECK(read_time_grid_file(dir.file("g.dat"), 1.0).t == times);
  // Text: one per line, or several on a line, comments, blank lines; 17 significant digits round-trip.
  std::string text = "# a grid\n";
  for (double t : times) text += fmt::format("{:.17g}\n", t);
  CHECK(read_time_grid_file(dir.write("g.txt", text), 1.0).t == times);
  CHECK(read_time_grid_file(dir.write("h.txt", "1 0.7  0.31234567890123456\t0.1\n\n1e-3 # end\n"), 1.0).t == times);
  const auto g = read_time_grid_file(dir.file("g.txt"), 1.0);
  CHECK(g.name == dir.file("g.txt"));
  CHECK(g.steps() == 4);
}

TEST_CASE("a bad grid file is an InputError naming the file and the problem") {
  TempDir dir("grid");
  const auto check = [&](const std::string& name, const std::string& text, const std::string& problem, double T = 1.0) {
    CAPTURE(name);
    const auto path = dir.write(name, text);
    const auto message = grid_error(path, T);
    CHECK(message.find(path) != std::string::npos);
    CHECK_MESSAGE(message.find(problem) != std::string::npos, message);
  };
  check("empty.txt", "", "holds no times");
  check("comment.txt", "# nothing\n", "holds no times");
  check("one.txt", "0.5\n", "holds one time (0.5)");
  check("up.txt", "1 0.5 0.7 0.1\n", "not strictly decreasing: t_2 = 0.7 >= t_1 = 0.5");
  check("flat.txt", "1 0.5 0.5 0.1\n", "not strictly decreasing: t_2 = 0.5 >= t_1 = 0.5");
  check("nan.txt", "1 nan 0.1\n", "t_1 = nan is not finite");
  check("inf.txt", "inf 0.5 0.1\n", "t_0 = inf is not finite");
  check("above.txt", "1.5 0.5 0.1\n", "t_0 = 1.5 is outside (0, T] = (0, 1]");
  check("zero.txt", "1 0.5 0\n", "t_2 = 0 is outside (0, T]");
  check("negative.txt", "1 0.5 -0.1\n", "t_2 = -0.1 is outside (0, T]");
  check("cosine.txt", "1 0.5 0.1\n", "t_0 = 1 is outside (0, T] = (0, 0.999]", 0.999);
  check("word.txt", "1\n0.5 abc\n", "line 2: \"abc\" is not a number");
  check("comma.txt", "1, 0.5\n", "line 1: \"1,\" is not a number");
  CHECK(grid_error(dir.file("missing.txt"), 1.0).find("cannot open") != std::string::npos);
  CHECK(grid_error(dir.file(""), 1.0).find("is a directory") != std::string::npos);
  // .npy: two dimensions, an integer type, a truncated file.
  write_samples_npy(dir.file("two.npy"), Matrix::Constant(2, 3, 0.5));
  CHECK(grid_error(dir.file("two.npy"), 1.0).find("expected a 1-d array") != std::string::npos);
  std::string npy = "\x93NUMPY\x01";
  dir.write("broken.npy", npy);
  CHECK(grid_error(dir.file("broken.npy"), 1.0).find("not a readable .npy file") != std::string::npos);
  Vector rising(3);
  rising << 0.1, 0.5, 1.0;
  dump_vector_npy(dir.file("rising.npy"), rising);
  CHECK(grid_error(dir.file("rising.npy"), 1.0).find("not strictly decreasing") != std::string::npos);
}

TEST_CASE("SamplerOptions: a file grid gives steps and eps; given values that disagree name the option") {
  TempDir dir("grid");
  const auto sde = make_sde(SdeOptions{});
  const auto path = dir.write("g.txt", "1 0.5 0.2 0.01\n");
  SamplerOptions o;
  o.time_grid = path;
  CHECK(o.grid_from_file());
  // Not adopted: validate says what is missing.
  CHECK_THROWS_WITH_AS(o.validate(*sde),
                       doctest::Contains(("--steps = 1000: --time-grid " + path + " has 3 steps").c_str()),
                       ConfigError);
  o.adopt_grid_file(*sde, false);
  CHECK(o.steps == 3);
  CHECK(o.eps == 0.01);
  o.validate(*sde);
  CHECK(o.grid(*sde).t == std::vector<double>{1, 0.5, 0.2, 0.01});
  // Explicit values that agree are fine; values that disagree are errors naming the option.
  SamplerOptions given;
  given.time_grid = path;
  given.steps = 3;
  given.eps = 0.01;
  given.adopt_grid_file(*sde, true);
  given.steps = 4;
  CHECK_THROWS_WITH_AS(given.adopt_grid_file(*sde, true),
                       doctest::Contains(("--steps = 4: --time-grid " + path + " has 3 steps (4 times)").c_str()),
                       ConfigError);
  given.steps = 3;
  given.eps = 0.02;
  CHECK_THROWS_WITH_AS(given.adopt_grid_file(*sde, true),
                       doctest::Contains(("--eps = 0.02: --time-grid " + path + " ends at t_N = 0.01").c_str()),
                       ConfigError);
  // A grid that starts below T needs starting points (--init).
  SamplerOptions below;
  below.time_grid = dir.write("below.txt", "0.5 0.2 0.01\n");
  below.adopt_grid_file(*sde, false);
  CHECK_THROWS_WITH_AS(below.validate(*sde), doctest::Contains("starts at t_0 = 0.5, not at T = 1"), ConfigError);
  below.validate(*sde, true);
  // A bad file: InputError naming --time-grid and the file.
  SamplerOptions bad;
  bad.time_grid = dir.write("bad.txt", "1 2\n");
  CHECK_THROWS_WITH_AS(bad.adopt_grid_file(*sde, false),
                       doctest::Contains(("--time-grid: " + dir.file("bad.txt")).c_str()), InputError);
  // Named grids are untouched by adopt_grid_file.
  SamplerOptions named;
  named.time_grid = "karras";
  named.adopt_grid_file(*sde, false);
  CHECK(named.steps == 1000);
  CHECK_FALSE(named.eps.has_value());
  CHECK(named.grid(*sde).t.size() == 1001);
}

TEST_CASE("walked_times: the grid for fixed-step methods, its ends for dopri5 (a named grid is not built)") {
  TempDir dir("grid");
  const auto sde = make_sde(SdeOptions{});
  SamplerOptions o;
  o.time_grid = "logsnr";
  o.steps = 5;
  CHECK(o.walked_times(*sde) == o.grid(*sde).t);
  o.sampler = "ode";  // dopri5
  CHECK(o.walked_times(*sde) == std::vector<double>{1.0, 1e-3});
  // Steps finer than doubles resolve are an error where the grid is walked, not for dopri5, which ignores --steps.
  o.eps = 1.0 - 1e-14;
  o.steps = 1000;
  o.validate(*sde);
  o.ode_method = "rk4";
  CHECK_THROWS_WITH_AS(o.validate(*sde), doctest::Contains("--time-grid = logsnr: with --steps 1000"), ConfigError);
  // A file: its ends for dopri5.
  SamplerOptions f;
  f.sampler = "ode";
  f.time_grid = dir.write("g.txt", "1 0.5 0.2 0.01\n");
  f.adopt_grid_file(*sde, false);
  CHECK(f.walked_times(*sde) == std::vector<double>{1.0, 0.01});
}
