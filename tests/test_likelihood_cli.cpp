// `scoresde likelihood`, called in-process: valid runs write LOGP.npy ((n,) float64) and LOGP.npy.json with
// the summary, the exact comparison and the resolved options; every bad input is answered with exit status 2,
// a message naming the option or file, and no output; a failed solve with status 3 and no output. With --model
// (a checkpoint or PyTorch .npz), the data scaling enters as -sum log scale and nothing else.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <cmath>
#include <cstdlib>
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
#include "experiments/cli/cli.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#include "models/mlp.hpp"
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

std::string data_file(const std::string& name) {
  const char* s = std::getenv("SCORESDE_SOURCE_DIR");
  return (fs::path(s ? s : ".") / "tests" / "data" / name).string();
}

// The PyTorch network of tests/data/torch_mlp.npz (2-D, raw time, float32) as a checkpoint under the default VP
// SDE, with the given data scaling.
Checkpoint torch_checkpoint(const DataScaling& scaling) {
  ImportedMlp m = import_torch_npz(data_file("torch_mlp.npz"), Parameterization::noise);
  Checkpoint c;
  c.architecture = m.architecture;
  c.scaling = scaling;
  c.training = {{"command", "scoresde train (a test's)"}};
  c.weights = m.weights;
  c.ema = m.weights;
  return c;
}

DataScaling test_scaling() {
  DataScaling s;
  s.mean = Vector(2);
  s.mean << 0.7, -1.3;
  s.scale = Vector(2);
  s.scale << 2.5, 0.6;
  return s;
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

TEST_CASE("likelihood --model: a scaled checkpoint gives the identity-scaled (.npz) value minus sum log scale") {
  TempDir dir;
  const DataScaling scaling = test_scaling();
  save_checkpoint(dir.file("scaled.ckpt"), torch_checkpoint(scaling));
  save_checkpoint(dir.file("plain.ckpt"), torch_checkpoint(DataScaling::identity(2)));
  // Points x in the data's units and their standardised images y, computed as the command computes them.
  Matrix x(2, 30);
  load_data("eight_gaussians", 0)->sample(5, 0, x);
  const Matrix y = scaling.to_standard(x);
  write_samples_npy(dir.file("x.npy"), x);
  write_samples_npy(dir.file("y.npy"), y);
  const std::string npz = data_file("torch_mlp.npz");

  const Result on_npz = run({"--model", npz, "--points", dir.file("y.npy"), "--out", dir.file("npz.npy")});
  INFO(on_npz.err);
  REQUIRE(on_npz.code == 0);
  const Result on_plain =
      run({"--model", dir.file("plain.ckpt"), "--points", dir.file("y.npy"), "--out", dir.file("plain.npy")});
  REQUIRE(on_plain.code == 0);
  const Result on_scaled =
      run({"--model", dir.file("scaled.ckpt"), "--points", dir.file("x.npy"), "--out", dir.file("scaled.npy")});
  INFO(on_scaled.err);
  REQUIRE(on_scaled.code == 0);
  CHECK(on_scaled.err.empty());
  const Vector lp_npz = read_log_p(dir.file("npz.npy"));
  const Vector lp_plain = read_log_p(dir.file("plain.npy"));
  const Vector lp_scaled = read_log_p(dir.file("scaled.npy"));

  // The .npz and the identity-scaled checkpoint are the same model.
  CHECK(lp_plain == lp_npz);
  // The scaling: exactly the shift by the log-Jacobian of y = (x - mean) / scale.
  const double log_jacobian = -(std::log(2.5) + std::log(0.6));
  const double shift_error = (lp_scaled - (lp_npz.array() + log_jacobian).matrix()).cwiseAbs().maxCoeff();
  MESSAGE(fmt::format("scaled checkpoint vs .npz + log-Jacobian ({:.6f}): max |difference| {:.2e}", log_jacobian,
                      shift_error));
  CHECK(shift_error <= 1e-12);
  // Identity scaling changes nothing: the library's plain computation, bitwise.
  {
    const Checkpoint c = torch_checkpoint(DataScaling::identity(2));
    const auto sde = make_sde(SdeOptions{});
    const MlpScore model(c.architecture, c.frequencies, c.ema, *sde);
    CHECK(lp_plain == compute_log_likelihood(model, *sde, y, LikelihoodOptions{}).log_p);
  }

  const auto scaled = read_json(dir.file("scaled.npy.json"));
  const auto via_npz = read_json(dir.file("npz.npy.json"));
  CHECK(scaled["result"]["log_jacobian"].get<double>() == doctest::Approx(log_jacobian));
  CHECK(via_npz["result"]["log_jacobian"].get<double>() == 0.0);
  CHECK(scaled["result"]["mean_nll"].get<double>() ==
        doctest::Approx(via_npz["result"]["mean_nll"].get<double>() - log_jacobian));
  CHECK(scaled["result"]["divergence"] == "exact");  // auto: the network's exact divergence
  CHECK(scaled["result"]["evaluation"] == describe(DivergenceEvaluation::model_divergence));
  CHECK(scaled["options"]["model"] == dir.file("scaled.ckpt"));
  CHECK(scaled["options"]["weights"] == "ema");
  CHECK_FALSE(scaled["options"].contains("data"));
  CHECK_FALSE(scaled["options"].contains("parameterization"));
  CHECK(via_npz["options"]["parameterization"] == "noise");
  CHECK(scaled["model_scaling"]["scale"][0].get<double>() == 2.5);
  CHECK(scaled["model_training"] == "scoresde train (a test's)");
  CHECK_FALSE(scaled.contains("exact"));  // points from a file: their density is unknown

  // Hutchinson through the network's Jacobian-vector products.
  const Result h = run({"--model", dir.file("scaled.ckpt"), "--points", dir.file("x.npy"), "--divergence", "hutchinson",
                        "--probes", "2", "--out", dir.file("h.npy")});
  REQUIRE(h.code == 0);
  const auto hj = read_json(dir.file("h.npy.json"));
  CHECK(hj["result"]["divergence"] == "hutchinson");
  CHECK(hj["result"]["evaluation"] == describe(DivergenceEvaluation::hutchinson_jvp));

  // The recorded command reruns the job: the same bytes, and no override warning for the SDE it spells out.
  std::string command = scaled["command"];
  std::vector<std::string> args;
  std::istringstream words(command.substr(std::string("scoresde likelihood ").size()));
  for (std::string w; words >> w;) args.push_back(w == dir.file("scaled.npy") ? dir.file("again.npy") : w);
  const Result again = run(args);
  INFO(again.err);
  REQUIRE(again.code == 0);
  CHECK(again.err.empty());
  CHECK(read_bytes(dir.file("again.npy")) == read_bytes(dir.file("scaled.npy")));
}

TEST_CASE("likelihood --model: drawn points, the exact comparison, SDE overrides with a warning") {
  TempDir dir;
  Checkpoint c = torch_checkpoint(test_scaling());
  c.training = nullptr;  // written by a program rather than `scoresde train`: no training record
  save_checkpoint(dir.file("m.ckpt"), c);
  const std::string model = dir.file("m.ckpt");
  const Result r =
      run({"--model", model, "--points", "eight_gaussians", "-n", "40", "--seed", "2", "--out", dir.file("d.npy")});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("exact log p_eps") != std::string::npos);
  const auto meta = read_json(dir.file("d.npy.json"));
  CHECK(meta["model_training"] == "");
  const auto& ex = meta["exact"];
  REQUIRE(ex.contains("log_p_0"));
  // error = log p - exact log p_eps, and the exact values are those of the mixture in the data's units.
  const double model_nll = meta["result"]["mean_nll"];
  CHECK(ex["error"]["mean"].get<double>() == doctest::Approx(ex["log_p_eps"]["mean_nll"].get<double>() - model_nll));
  Matrix x(2, 40);
  const auto mixture = load_data("eight_gaussians", 0);
  mixture->sample(2, 0, x);
  Vector log_p0;
  mixture->evaluate(1.0, 0.0, x, &log_p0, nullptr, nullptr);
  CHECK(ex["log_p_0"]["mean_nll"].get<double>() == doctest::Approx(-log_p0.mean()));
  CHECK(std::abs(ex["log_p_eps_minus_log_p_0"]["mean"].get<double>()) < 1e-3);

  // Points from another built-in data set (no exact density), and an SDE override.
  const Result moons =
      run({"--model", model, "--points", "two_moons", "-n", "20", "--sde", "subvp", "--out", dir.file("m.npy")});
  INFO(moons.err);
  REQUIRE(moons.code == 0);
  CHECK(moons.err.find("warning: --sde override") != std::string::npos);
  const auto mj = read_json(dir.file("m.npy.json"));
  CHECK(mj["options"]["sde"] == "subvp");
  CHECK_FALSE(mj.contains("exact"));
  CHECK(read_log_p(dir.file("m.npy")).size() == 20);
}

TEST_CASE("likelihood --model: bad input is refused with status 2, a message naming it, and nothing written") {
  TempDir dir;
  save_checkpoint(dir.file("m.ckpt"), torch_checkpoint(test_scaling()));
  const std::string model = dir.file("m.ckpt");
  const std::string out = dir.file("out.npy");
  write_samples_npy(dir.file("x3.npy"), Matrix::Ones(3, 5));
  write_samples_npy(dir.file("x2.npy"), Matrix::Zero(2, 5));
  { std::ofstream(dir.file("mix3.json")) << R"({"weights": [1], "means": [[0, 0, 0]], "stds": [1]})"; }
  const std::string bytes = read_bytes(model);
  std::ofstream(dir.file("cut.ckpt"), std::ios::binary) << bytes.substr(0, bytes.size() - 10);
  std::string flipped = bytes;
  flipped[flipped.size() - 20] ^= 0x10;
  std::ofstream(dir.file("flipped.ckpt"), std::ios::binary) << flipped;
  std::ofstream(dir.file("text.ckpt")) << "not a checkpoint\n";
  const auto before_files = dir.entries();

  const auto reject = [&](std::vector<std::string> args, const std::vector<std::string>& needles) {
    args.insert(args.end(), {"--out", out});
    expect_rejected(dir, args, needles);
  };
  reject({"--model", model, "--points", dir.file("x2.npy"), "--data", "eight_gaussians"}, {"--data", "--model"});
  reject({"--model", model, "--points", dir.file("x3.npy")},
         {"--points", "x3.npy", "dimension 3", "--model", "2-dimensional"});
  reject({"--model", model, "--points", dir.file("mix3.json")}, {"mix3.json", "dimension 3", "2-dimensional"});
  reject({"--model", model, "--points", "gaussian", "--dim", "3"}, {"--dim = 3", "2-dimensional"});
  reject({"--model", model, "--points", "nosuch"}, {"--points = nosuch", "two_moons"});
  reject({"--model", dir.file("none.ckpt"), "--points", "eight_gaussians"}, {"--model", "none.ckpt", "cannot open"});
  reject({"--model", dir.file("cut.ckpt"), "--points", "eight_gaussians"}, {"--model", "cut.ckpt", "truncated"});
  reject({"--model", dir.file("flipped.ckpt"), "--points", "eight_gaussians"},
         {"--model", "flipped.ckpt", "corrupted"});
  reject({"--model", dir.file("text.ckpt"), "--points", "eight_gaussians"},
         {"--model", "text.ckpt", "not a scoresde checkpoint"});
  reject({"--model", dir.file("none.npz"), "--points", "eight_gaussians"}, {"--model", "none.npz"});
  reject({"--model", model, "--points", "eight_gaussians", "--terminal", "exact"}, {"--terminal", "--data"});
  reject({"--model", model, "--points", "eight_gaussians", "--parameterization", "noise"},
         {"--parameterization", "records its own"});
  reject({"--model", data_file("torch_mlp.npz"), "--points", "eight_gaussians", "--parameterization", "eps"},
         {"--parameterization = eps"});
  reject({"--model", model, "--points", "eight_gaussians", "--weights", "best"}, {"--weights = best"});
  reject({"--model", model, "--points", "eight_gaussians", "--divergence", "trace"}, {"--divergence"});
  reject({"--points", "eight_gaussians", "--parameterization", "noise"}, {"--parameterization", "--model"});
  CHECK(dir.entries() == before_files);
}
