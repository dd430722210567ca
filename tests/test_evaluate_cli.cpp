// `scoresde evaluate`, called in-process: valid runs write METRICS.json (every metric with value and
// std_error, the reference, resolved options, a command that reruns the job, the build context) and print a
// table; every bad input is answered with exit status 2, a message naming the option or file, and no output
// file.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "cli_helpers.hpp"
#include "core/build_info.hpp"
#include "core/npy.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/datasets.hpp"

using namespace scoresde;
using namespace scoresde::test;

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Exact eight_gaussians samples 0 .. n-1 with `seed`, written as SAMPLES.npy.
std::string write_exact(const TempDir& dir, const std::string& name, std::uint64_t seed, Index n) {
  const auto mixture = load_data("eight_gaussians", 0);
  Matrix x(2, n);
  mixture->sample(seed, 0, x);
  write_samples_npy(dir.file(name), x);
  return dir.file(name);
}

// Runs `scoresde evaluate ARGS --out DIR/m.json` and checks: status 2, each needle in the message, nothing
// written.
void expect_rejected(const TempDir& dir, std::vector<std::string> args,
                     const std::vector<std::string>& needles) {
  args.insert(args.begin(), "evaluate");
  bool has_out = false;
  for (const auto& a : args) has_out |= a == "--out";
  if (!has_out) args.insert(args.end(), {"--out", dir.file("m.json")});
  const auto before = dir.entries();
  const Result r = run(args);
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  check_contains(r.err, "scoresde evaluate: ");
  for (const auto& n : needles) check_contains(r.err, n);
  CHECK(dir.entries() == before);
}

}  // namespace

TEST_CASE(
    "evaluate against a built-in distribution: every metric, the reference, options, command, context") {
  TempDir dir("evaluate");
  const auto samples = write_exact(dir, "x.npy", 3, 500);
  const auto out = dir.file("m.json");
  const Result r = run({"evaluate", "--samples", samples, "--reference", "eight_gaussians", "--seed", "7",
                        "--projections", "32", "--out", out});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(dir.entries() == std::set<std::string>{"x.npy", "m.json"});  // no temporary file left
  const auto j = read_json(out);
  for (const auto& name : default_metrics(true)) {
    CAPTURE(name);
    REQUIRE(j["metrics"].contains(name));
    CHECK(j["metrics"][name]["value"].is_number());
    CHECK(j["metrics"][name]["std_error"].get<double>() >= 0);
    check_contains(r.out, name);
  }
  CHECK(j["samples"]["n"] == 500);
  CHECK(j["reference"]["kind"] == "mixture");
  CHECK(j["reference"]["n"] == default_reference_count(500));
  CHECK(j["options"]["seed"] == 7);
  CHECK(j["options"]["reference-n"] == 5000);
  CHECK(j["resolved"]["mmd_bandwidth"].get<double>() > 0);
  CHECK(j["resolved"]["quadratic_n"] == 500);
  CHECK(j["resolved"]["sliced_w2_directions"] == 32);
  CHECK(j["modes"]["dof"] == 7);
  CHECK(j["context"]["version"] == version());
  CHECK(j["context"]["git_revision"] == git_revision());
  check_contains(r.out, "wrote " + out);

  // Exact samples against exact reference points: nll_gap and mmd2 are 0 within 4 SE.
  for (const char* name : {"nll_gap", "mmd2"}) {
    CAPTURE(name);
    CHECK(std::abs(j["metrics"][name]["value"].get<double>()) <
          4 * j["metrics"][name]["std_error"].get<double>());
  }

  // The recorded command reruns the job: the same numbers.
  std::vector<std::string> args;
  std::istringstream words(j["command"].get<std::string>());
  for (std::string w; words >> w;) args.push_back(w);
  REQUIRE(args.at(0) == "scoresde");
  args.erase(args.begin());
  for (auto& a : args)
    if (a == out) a = dir.file("again.json");
  REQUIRE(run(args).code == 0);
  CHECK(read_json(dir.file("again.json"))["metrics"] == j["metrics"]);
}

TEST_CASE("evaluate against reference points and a mixture file; gaussian takes the samples' dimension") {
  TempDir dir("evaluate");
  const auto samples = write_exact(dir, "x.npy", 3, 300);
  const auto reference = write_exact(dir, "ref.npy", 4, 800);
  const Result r = run(
      {"evaluate", "--samples", samples, "--reference", reference, "--out", dir.file("m.json"), "--quiet"});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.empty());
  const auto j = read_json(dir.file("m.json"));
  CHECK(j["reference"]["kind"] == "points");
  CHECK(j["reference"]["n"] == 800);
  CHECK(j["options"]["reference-n"].is_null());
  CHECK(j["command"].get<std::string>().find("--reference-n") == std::string::npos);
  for (const auto& name : default_metrics(false)) CHECK(j["metrics"].contains(name));
  CHECK_FALSE(j["metrics"].contains("nll"));

  const auto mixture =
      dir.write("mix.json", R"({"weights": [1, 2], "means": [[0, 0], [3, 3]], "stds": [1, 0.5]})");
  const Result m = run({"evaluate", "--samples", samples, "--reference", mixture, "--metrics",
                        "nll,mode_chi2", "--reference-n", "1000", "--out", dir.file("mix.out.json")});
  INFO("stderr: " << m.err);
  REQUIRE(m.code == 0);
  const auto jm = read_json(dir.file("mix.out.json"));
  CHECK(jm["metrics"].size() == 2);
  CHECK(jm["reference"]["n"] == 1000);
  CHECK(jm["modes"]["counts"].size() == 2);

  Matrix x3(3, 50);
  load_data("gaussian", 3)->sample(1, 0, x3);
  write_samples_npy(dir.file("x3.npy"), x3);
  const Result g = run({"evaluate", "--samples", dir.file("x3.npy"), "--reference", "gaussian", "--metrics",
                        "nll,frechet", "--out", dir.file("g.json")});
  INFO("stderr: " << g.err);
  CHECK(g.code == 0);
  CHECK(read_json(dir.file("g.json"))["options"]["dim"] == 3);
}

TEST_CASE("evaluate --help lists the metrics") {
  const Result r = run({"evaluate", "--help"});
  CHECK(r.code == 0);
  for (const auto& name : metric_names()) check_contains(r.out, name);
  check_contains(r.out, "--mmd-bandwidth");
}

TEST_CASE("evaluate: bad options and files exit with 2, name the option or file, and write nothing") {
  TempDir dir("evaluate");
  const auto x = write_exact(dir, "x.npy", 3, 100);
  const std::vector<std::string> base = {"--samples", x, "--reference", "eight_gaussians"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };

  SUBCASE("required options") {
    expect_rejected(dir, {"--reference", "eight_gaussians"}, {"--samples: required"});
    expect_rejected(dir, {"--samples", x}, {"--reference: required", "eight_gaussians"});
    const Result r = run({"evaluate", "--samples", x, "--reference", "eight_gaussians"});
    CHECK(r.code == 2);
    check_contains(r.err, "--out: required");
  }
  SUBCASE("missing files") {
    expect_rejected(dir, {"--samples", dir.file("missing.npy"), "--reference", "eight_gaussians"},
                    {"--samples", "missing.npy", "cannot open"});
    expect_rejected(dir, {"--samples", x, "--reference", dir.file("missing.npy")},
                    {"--reference", "missing.npy", "cannot open"});
    expect_rejected(dir, {"--samples", x, "--reference", dir.file("missing.json")},
                    {"--reference", "missing.json", "cannot open"});
    expect_rejected(dir, with({"--out", dir.file("no/such/dir/m.json")}), {"--out", "does not exist"});
  }
  SUBCASE("wrong dimensions") {
    write_samples_npy(dir.file("x3.npy"), Matrix::Ones(3, 10));
    expect_rejected(dir, {"--samples", dir.file("x3.npy"), "--reference", "eight_gaussians"},
                    {"--samples", "x3.npy", "dimension 3", "eight_gaussians is 2-dimensional"});
    expect_rejected(dir, {"--samples", x, "--reference", dir.file("x3.npy")},
                    {"--reference", "x3.npy", "dimension 3", "2-dimensional"});
    expect_rejected(dir, with({"--dim", "3"}), {"--dim = 3", "2-dimensional"});
  }
  SUBCASE("non-finite rows and too few points") {
    Matrix bad = Matrix::Ones(2, 10);
    bad(1, 5) = std::nan("");
    write_samples_npy(dir.file("nan.npy"), bad);
    expect_rejected(dir, {"--samples", dir.file("nan.npy"), "--reference", "eight_gaussians"},
                    {"--samples", "nan.npy", "row 5", "non-finite"});
    expect_rejected(dir, {"--samples", x, "--reference", dir.file("nan.npy")},
                    {"--reference", "nan.npy", "row 5"});
    write_samples_npy(dir.file("three.npy"), Matrix::Ones(2, 3));
    expect_rejected(dir, {"--samples", dir.file("three.npy"), "--reference", "eight_gaussians"},
                    {"--samples", "three.npy", "3 points", "at least 4"});
  }
  SUBCASE("metrics and their options") {
    expect_rejected(dir, with({"--metrics", "sliced_w2,fid"}),
                    {"--metrics = fid", "unknown metric", "sliced_w2"});
    expect_rejected(dir, with({"--metrics", ","}), {"--metrics = ,", "name at least one"});
    const auto ref = write_exact(dir, "ref.npy", 4, 100);
    expect_rejected(dir, {"--samples", x, "--reference", ref, "--metrics", "mmd2,nll"},
                    {"--metrics = nll", "needs a mixture reference"});
    expect_rejected(dir, with({"--mmd-bandwidth", "-1"}), {"--mmd-bandwidth = -1", "must be > 0"});
    expect_rejected(dir, with({"--mmd-bandwidth", "abc"}), {"--mmd-bandwidth = abc", "expected a number"});
    expect_rejected(dir, with({"--projections", "0"}), {"--projections = 0"});
    expect_rejected(dir, with({"--max-quadratic", "2"}), {"--max-quadratic = 2"});
    expect_rejected(dir, with({"--threads", "-2"}), {"--threads = -2"});
    expect_rejected(dir, with({"--reference-n", "2"}), {"--reference-n = 2", "[4, "});
    expect_rejected(dir, {"--samples", x, "--reference", ref, "--reference-n", "100"},
                    {"--reference-n", "only for a distribution"});
    expect_rejected(dir, {"--samples", x, "--reference", "nine_gaussians"},
                    {"--reference = nine_gaussians", "not a built-in distribution", "eight_gaussians"});
  }
}
