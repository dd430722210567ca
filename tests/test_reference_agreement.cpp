// Agreement with the authors' code (docs/samplers.md): tests/data/golden/manifest.json lists outputs of the
// reference implementations (dpm-solver, UniPC, k-diffusion, EDM; SA-Solver by bench/reference_sa_solver.py),
// written by bench/reference_samplers.py on an
// exact Gaussian-mixture score from fixed latents on fixed time grids, each with the `scoresde sample` options that
// should reproduce it. Every case is run through the command line in-process and must agree to the manifest's
// tolerance (max |difference| <= 1e-9). The anchor cases (a 192-step grid) are also compared with the library's own
// dopri5 solution of the probability-flow ODE, which ties the golden problem (mixture, SDE, latents, the reference
// codes' coordinates) to the library's score and SDE independently of any new sampler.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "core/npy.hpp"

using namespace scoresde;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path golden_dir() {
  const char* s = std::getenv("SCORESDE_SOURCE_DIR");
  return fs::path(s ? s : ".") / "tests" / "data" / "golden";
}

std::string golden_file(const json& relative) {
  return (golden_dir() / relative.get<std::string>()).string();
}

json read_manifest() {
  std::ifstream in(golden_dir() / "manifest.json");
  REQUIRE_MESSAGE(in.good(), "cannot open ", (golden_dir() / "manifest.json").string());
  return json::parse(in);
}

std::map<std::string, std::string> grid_files(const json& manifest) {
  std::map<std::string, std::string> files;
  for (const auto& g : manifest["grids"]) files[g["name"].get<std::string>()] = golden_file(g["file"]);
  return files;
}

// `scoresde sample` on the golden problem (mixture, SDE, latents) on a grid file with the given options.
test::Result run_sample(const json& manifest, const std::string& grid_file, const json& options,
                        const std::string& out) {
  std::vector<std::string> args{
      "sample",      "--data", golden_file(manifest["data"]), "--init", golden_file(manifest["latents"]),
      "--time-grid", grid_file};
  for (const auto& group : {manifest["sde"], options})
    for (const auto& a : group) args.push_back(a.get<std::string>());
  args.insert(args.end(), {"--out", out, "--quiet"});
  return test::run(args);
}

// The manifest's common options (name, value pairs), except those the case gives itself, then the case's.
json case_options(const json& manifest, const json& c) {
  json options = json::array();
  const auto& common = manifest["common_options"];
  const auto& own = c["options"];
  for (std::size_t i = 0; i + 1 < common.size(); i += 2)
    if (std::find(own.begin(), own.end(), common[i]) == own.end()) {
      options.push_back(common[i]);
      options.push_back(common[i + 1]);
    }
  for (const auto& o : own) options.push_back(o);
  return options;
}

std::string label(const json& c) {
  return fmt::format("{} on {}", c["name"].get<std::string>(), c["grid"].get<std::string>());
}

}  // namespace

TEST_CASE("every golden case: scoresde sample agrees with the authors' code") {
  const json manifest = read_manifest();
  const double tolerance = manifest["tolerance"].get<double>();
  const auto grids = grid_files(manifest);
  const test::TempDir dir("golden");
  double worst = 0;
  std::string worst_case;
  std::vector<std::string> disagreements;
  // A failed run's message -> the cases that gave it -> on how many grids.
  std::map<std::string, std::map<std::string, int>> errors;
  int agreed = 0;
  for (const auto& c : manifest["cases"]) {
    const json options = case_options(manifest, c);
    const auto r = run_sample(manifest, grids.at(c["grid"].get<std::string>()), options, dir.file("out.npy"));
    if (r.code != 0) {
      ++errors[r.err][c["name"].get<std::string>()];
      continue;
    }
    const Matrix x = read_samples_npy(dir.file("out.npy"));
    const Matrix expected = read_samples_npy(golden_file(c["expected"]));
    REQUIRE(x.rows() == expected.rows());
    REQUIRE(x.cols() == expected.cols());
    const double difference = (x - expected).cwiseAbs().maxCoeff();
    if (!(difference <= worst)) {
      worst = difference;
      worst_case = label(c);
    }
    if (difference <= tolerance)
      ++agreed;
    else
      disagreements.push_back(fmt::format("{} ({}): max |difference| {:.3g} > {:.0e}; options: {}", label(c),
                                          c["reference"].get<std::string>(), difference, tolerance,
                                          c["options"].dump()));
  }
  const auto cases = manifest["cases"].size();
  MESSAGE(fmt::format("{} of {} cases agree with the authors' code to {:.0e}; worst difference {:.3g} ({})", agreed,
                      cases, tolerance, worst, worst_case.empty() ? "no case ran" : worst_case));
  for (const auto& d : disagreements) FAIL_CHECK(d);
  for (const auto& [message, which] : errors) {
    std::vector<std::string> names;
    for (const auto& [name, grids] : which) names.push_back(fmt::format("{} ({} grids)", name, grids));
    FAIL_CHECK(fmt::format("did not run: {}\n  {}", fmt::join(names, ", "), message));
  }
  CHECK(agreed == static_cast<int>(cases));
}

TEST_CASE("the golden problem is the library's: anchor outputs are within their tolerance of dopri5") {
  const json manifest = read_manifest();
  const auto grids = grid_files(manifest);
  const test::TempDir dir("golden-ode");
  std::map<std::string, Matrix> ode;  // per grid
  int anchors = 0;
  for (const auto& c : manifest["cases"]) {
    if (!c.contains("ode_tolerance")) continue;
    ++anchors;
    const std::string grid = c["grid"].get<std::string>();
    if (!ode.count(grid)) {
      const auto r = run_sample(manifest, grids.at(grid), manifest["ode_options"], dir.file(grid + ".npy"));
      REQUIRE_MESSAGE(r.code == 0, r.err);
      ode[grid] = read_samples_npy(dir.file(grid + ".npy"));
    }
    const Matrix expected = read_samples_npy(golden_file(c["expected"]));
    const double distance = (expected - ode[grid]).cwiseAbs().maxCoeff();
    INFO(label(c), " (", c["reference"].get<std::string>(), ")");
    MESSAGE(fmt::format("{}: golden output {:.2e} from the dopri5 solution", label(c), distance));
    CHECK(distance <= c["ode_tolerance"].get<double>());
  }
  CHECK(anchors >= 2);
}
