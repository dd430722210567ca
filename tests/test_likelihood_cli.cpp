// `scoresde likelihood`, called in-process: valid runs write LOGP.npy ((n,) float64) and LOGP.npy.json with
// the summary, the exact comparison and the resolved options; every bad input is answered with exit status 2,
// a message naming the option or file, and no output; a failed solve with status 3 and no output.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <set>
#include <sstream>
#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>

#include "core/npy.hpp"
#include "experiments/cli.hpp"
#include "models/datasets.hpp"
#include "solvers/likelihood.hpp"
#include "cli_helpers.hpp"

using namespace scoresde;
namespace fs = std::filesystem;

namespace {

using scoresde::test::TempDir;

struct Result {
  int code;
  std::string out, err;
};

Result run(std::vector<std::string> args) {
  args.insert(args.begin(), "likelihood");
  std::ostringstream out, err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

Vector read_log_p(const std::string& path) {
  const auto a = xt::load_npy<double>(path);
  REQUIRE(a.dimension() == 1);
  Vector v(static_cast<Index>(a.size()));
  for (std::size_t i = 0; i < a.size(); ++i) v(static_cast<Index>(i)) = a(i);
  return v;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Status 2, every needle in the message, nothing written.
void expect_rejected(const TempDir& dir, std::vector<std::string> args,
                     const std::vector<std::string>& needles) {
  const auto before = dir.entries();
  const Result r = run(args);
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  for (const auto& n : needles) {
    INFO("looking for: " << n);
    CHECK(r.err.find(n) != std::string::npos);
  }
  CHECK(dir.entries() == before);
}

}  // namespace

TEST_CASE("likelihood: drawn points; the .npy holds the library's log p and the .json the summary") {
  TempDir dir;
  const std::string out = dir.file("logp.npy");
  const Result r = run({"--points", "eight_gaussians", "-n", "50", "--seed", "3", "--out", out});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("wrote") != std::string::npos);
  CHECK(r.out.find("bits/dim") != std::string::npos);
  const Vector lp = read_log_p(out);
  REQUIRE(lp.size() == 50);

  const auto mixture = load_data("eight_gaussians", 0);
  Matrix x(2, 50);
  mixture->sample(3, 0, x);
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(mixture, *sde);
  LikelihoodOptions lo;
  lo.seed = 3;
  const LikelihoodResult expected = compute_log_likelihood(model, *sde, x, lo);
  CHECK(lp == expected.log_p);

  const auto meta = read_json(out + ".json");
  const auto& res = meta["result"];
  CHECK(res["n"] == 50);
  CHECK(res["dim"] == 2);
  CHECK(res["divergence"] == "exact");
  CHECK(res["mean_nll"].get<double>() == doctest::Approx(-lp.mean()));
  CHECK(res["bits_per_dim"].get<double>() == doctest::Approx(-lp.mean() / (2 * std::numbers::ln2)));
  CHECK(res["nll_se"].get<double>() > 0);
  CHECK(res["nfe"].get<double>() > 10);
  CHECK(res.contains("wall_seconds"));
  CHECK(meta["options"]["divergence"] == "exact");
  CHECK(meta["options"]["eps"] == 1e-3);
  CHECK(meta["options"]["rtol"] == 1e-5);
  CHECK(meta["context"].contains("git_revision"));
  // The exact comparison: error = prior mismatch + solver error, and the solver error is small.
  const auto& ex = meta["exact"];
  CHECK(std::abs(ex["error"]["mean"].get<double>() - (ex["prior_mismatch"]["mean"].get<double>() +
                                                      ex["solver_error"]["mean"].get<double>())) <= 1e-12);
  CHECK(ex["solver_error"]["mean_abs"].get<double>() <= 1e-4);
  CHECK(ex["log_p_0"]["bits_per_dim"].get<double>() > 0);

  // The recorded command reruns the job: the same bytes.
  std::string command = meta["command"];
  CHECK(command.rfind("scoresde likelihood ", 0) == 0);
  std::vector<std::string> args;
  std::istringstream words(command.substr(std::string("scoresde likelihood ").size()));
  for (std::string w; words >> w;) args.push_back(w == out ? dir.file("again.npy") : w);
  const Result again = run(args);
  INFO(again.err);
  REQUIRE(again.code == 0);
  CHECK(read_bytes(dir.file("again.npy")) == read_bytes(out));
}

TEST_CASE("likelihood: points from a .npy file with --data; threads do not change the bytes; --dequantize") {
  TempDir dir;
  Matrix x(2, 40);
  load_data("eight_gaussians", 0)->sample(1, 0, x);
  write_samples_npy(dir.file("x.npy"), x);
  const std::vector<std::string> base = {"--points",     dir.file("x.npy"), "--data",  "eight_gaussians",
                                         "--divergence", "hutchinson",      "--chunk", "16"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  REQUIRE(run(with({"--threads", "1", "--out", dir.file("t1.npy")})).code == 0);
  REQUIRE(run(with({"--threads", "2", "--out", dir.file("t2.npy")})).code == 0);
  CHECK(read_bytes(dir.file("t1.npy")) == read_bytes(dir.file("t2.npy")));
  const auto meta = read_json(dir.file("t1.npy.json"));
  CHECK(meta["result"]["divergence"] == "hutchinson");
  CHECK(meta["result"]["evaluation"] == describe(DivergenceEvaluation::hutchinson_jvp));
  CHECK(meta["options"]["probe-dist"] == "rademacher");
  const bool records_samples = meta["options"].contains("samples") && !meta["options"]["samples"].is_null();
  CHECK_FALSE(records_samples);

  REQUIRE(run(with({"--dequantize", "[-1,1]", "--out", dir.file("q7.npy")})).code == 0);
  REQUIRE(run(with({"--dequantize", "[0,1]", "--out", dir.file("q8.npy")})).code == 0);
  const double plain = meta["result"]["bits_per_dim"];
  CHECK(read_json(dir.file("q7.npy.json"))["result"]["bits_per_dim"].get<double>() ==
        doctest::Approx(plain + 7));
  CHECK(read_json(dir.file("q8.npy.json"))["result"]["bits_per_dim"].get<double>() ==
        doctest::Approx(plain + 8));
  CHECK(read_bytes(dir.file("q7.npy")) == read_bytes(dir.file("t1.npy")));  // log p itself has no offset

  // --terminal exact: the mixture's exact log p_T at the end; then log p is the exact log p_eps to solver
  // accuracy.
  REQUIRE(run({"--points", dir.file("x.npy"), "--data", "eight_gaussians", "--terminal", "exact", "--rtol",
               "1e-8", "--atol", "1e-8", "--out", dir.file("exact.npy")})
              .code == 0);
  const auto ex = read_json(dir.file("exact.npy.json"))["exact"];
  CHECK(ex["error"]["max_abs"].get<double>() <= 1e-6);
}

TEST_CASE("likelihood: bad input is refused with status 2, a message naming it, and nothing written") {
  TempDir dir;
  const std::string out = dir.file("out.npy");
  Matrix x3(3, 5);
  x3.setOnes();
  write_samples_npy(dir.file("x3.npy"), x3);
  {
    // A NaN row, written by hand: write_samples_npy would write it, read_samples_npy refuses it.
    Matrix x(2, 4);
    x.setZero();
    x(1, 2) = std::numeric_limits<double>::quiet_NaN();
    dump_samples_npy(dir.file("nan.npy"), x);
  }
  Matrix x2(2, 5);
  x2.setZero();
  write_samples_npy(dir.file("x2.npy"), x2);
  const std::string eg = "eight_gaussians";
  expect_rejected(dir, {"--points", dir.file("x3.npy"), "--data", eg, "--out", out},
                  {"x3.npy", "dimension 3"});
  expect_rejected(dir, {"--points", dir.file("nan.npy"), "--data", eg, "--out", out}, {"nan.npy", "row 2"});
  expect_rejected(dir, {"--points", dir.file("missing.npy"), "--data", eg, "--out", out},
                  {"--points", "missing.npy"});
  expect_rejected(dir, {"--points", dir.file("x2.npy"), "--out", out}, {"--data"});
  expect_rejected(dir, {"--points", dir.file("x2.npy"), "--data", eg, "-n", "3", "--out", out},
                  {"-n", "5 points"});
  { std::ofstream(dir.file("mix3.json")) << R"({"weights": [1], "means": [[0, 0, 0]], "stds": [1]})"; }
  expect_rejected(dir, {"--points", dir.file("mix3.json"), "--data", eg, "--out", out},
                  {"mix3.json", "dimension 3", "2-dimensional"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--rtol", "0"}, {"--rtol = 0", "must be > 0"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--rtol", "-1e-5"}, {"--rtol", "must be > 0"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--atol", "0"}, {"--atol = 0", "must be > 0"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--rtol", "abc"}, {"--rtol", "expected a number"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--eps", "0"}, {"--eps"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--probes", "0"}, {"--probes"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--divergence", "trace"},
                  {"--divergence", "hutchinson"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--probe-dist", "uniform"},
                  {"--probe-dist", "rademacher"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--dequantize", "8bit"}, {"--dequantize", "[-1,1]"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--terminal", "data"}, {"--terminal"});
  expect_rejected(dir, {"--points", eg, "--out", out, "-n", "0"}, {"-n"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--model", "m.ckpt"}, {"--model", "not supported yet"});
  expect_rejected(dir, {"--points", eg}, {"--out"});
  expect_rejected(dir, {"--out", out}, {"--points"});
  expect_rejected(dir, {"--points", eg, "--out", dir.file("no/such/dir/out.npy")},
                  {"--out", "does not exist"});
  expect_rejected(dir, {"--points", eg, "--out", out, "--sde", "vv"}, {"--sde"});
}

TEST_CASE("likelihood: a solve that turns non-finite exits with status 3, names the point, writes nothing") {
  TempDir dir;
  const auto before = dir.entries();
  const Result r = run({"--points", "eight_gaussians", "-n", "10", "--sde", "ve", "--sigma-max", "1e200",
                        "--out", dir.file("out.npy")});
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.err.find("point 0") != std::string::npos);
  CHECK(dir.entries() == before);
}

TEST_CASE("likelihood: listed in the command list; --help") {
  std::ostringstream out, err;
  CHECK(run_cli({"--help"}, out, err) == 0);
  CHECK(out.str().find("likelihood") != std::string::npos);
  const Result help = run({"--help"});
  CHECK(help.code == 0);
  CHECK(help.out.find("--divergence") != std::string::npos);
  CHECK(help.out.find("--dequantize") != std::string::npos);
}
