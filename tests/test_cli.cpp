// The command line, called in-process: every bad input is answered with exit status 2, a message that names
// the option or file and what is allowed, and no output file; a diverging sampler with status 3 and no output
// file; valid runs write OUT.npy and OUT.npy.json with the resolved options and the build context.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli_helpers.hpp"
#include "core/noise.hpp"
#include "core/npy.hpp"
#include "core/sde.hpp"
#include "core/time_grid.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "solvers/options.hpp"
#include "solvers/registry.hpp"

using namespace scoresde;
namespace fs = std::filesystem;

namespace {

using scoresde::test::TempDir;

using scoresde::test::Result;
using scoresde::test::run;

bool has(const std::vector<std::string>& args, std::initializer_list<const char*> names) {
  for (const auto& a : args)
    for (const char* n : names)
      if (a == n || a.rfind(std::string(n) + "=", 0) == 0) return true;
  return false;
}

using scoresde::test::check_contains;

// Runs `scoresde sample ARGS --out DIR/out.npy` (with -n 4 --steps 3 unless ARGS says otherwise, so that an
// input that is wrongly accepted costs little) and checks: status 2, each needle in the message, and nothing
// written.
void expect_rejected(const TempDir& dir, std::vector<std::string> args, const std::vector<std::string>& needles,
                     bool add_out = true) {
  args.insert(args.begin(), "sample");
  if (add_out && !has(args, {"--out"})) args.insert(args.end(), {"--out", dir.file("out.npy")});
  if (!has(args, {"-n", "--samples", "--init"})) args.insert(args.end(), {"-n", "4"});
  if (!has(args, {"--steps"})) args.insert(args.end(), {"--steps", "3"});
  const auto before = dir.entries();
  const Result r = run(args);
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  for (const auto& n : needles) check_contains(r.err, n);
  CHECK(dir.entries() == before);
  CHECK_FALSE(fs::exists(dir.file("out.npy")));
  CHECK_FALSE(fs::exists(dir.file("out.npy.json")));
}

std::vector<std::string> with(const std::vector<std::string>& needles, const std::vector<std::string>& names) {
  auto all = needles;
  all.insert(all.end(), names.begin(), names.end());
  return all;
}

const char* good_mixture = R"({"weights": [1, 2], "means": [[0, 0], [1, 1]], "stds": [1, 0.5]})";

}  // namespace

// ---------------------------------------------------------------------------------------------- unknown
// names

TEST_CASE("sample: an unknown --sde is refused with the list of SDEs") {
  TempDir dir;
  expect_rejected(dir, {"--sde", "vpp"}, with({"--sde = vpp"}, sde_names()));
}

TEST_CASE("sample: an unknown --sampler is refused with the list of samplers") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "heun"}, with({"--sampler = heun"}, sampler_names()));
}

TEST_CASE("sample: an unknown --predictor is refused, with pc and with a sampler that ignores it") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "pc", "--predictor", "foo"}, with({"--predictor = foo"}, predictor_names()));
  expect_rejected(dir, {"--predictor", "foo"}, with({"--predictor = foo"}, predictor_names()));
}

TEST_CASE("sample: an unknown --corrector is refused with the list of correctors") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "pc", "--corrector", "foo"}, with({"--corrector = foo"}, corrector_names()));
}

TEST_CASE("sample: an unknown --ode-method is refused with the list of methods") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "ode", "--ode-method", "rk45"}, with({"--ode-method = rk45"}, ode_method_names()));
  expect_rejected(dir, {"--ode-method", "rk45"}, with({"--ode-method = rk45"}, ode_method_names()));
}

TEST_CASE("sample: an unknown --noise is refused with the list of noise sources") {
  TempDir dir;
  expect_rejected(dir, {"--noise", "pink"}, with({"--noise = pink"}, noise_names()));
}

TEST_CASE("sample: an unknown --langevin-norm is refused with the list of norms") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "pc", "--langevin-norm", "foo"}, {"--langevin-norm = foo", "chunk", "sample"});
}

TEST_CASE("sample: an unknown --ode-control is refused with the list of controls") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "ode", "--ode-control", "foo"}, {"--ode-control = foo", "chunk", "sample"});
}

TEST_CASE("sample: an unknown --schedule is refused with the list of schedules") {
  TempDir dir;
  expect_rejected(dir, {"--schedule", "quadratic"}, {"--schedule = quadratic", "linear", "cosine"});
}

// ---------------------------------------------------------------------------------------------- ranges

TEST_CASE("sample: --steps 0") {
  TempDir dir;
  expect_rejected(dir, {"--steps", "0"}, {"--steps = 0", ">= 1"});
}

TEST_CASE("sample: --eps outside (0, T)") {
  TempDir dir;
  for (const std::string eps : {"0", "1", "-1"}) {
    CAPTURE(eps);
    expect_rejected(dir, {"--eps", eps}, {"--eps = " + eps, "(0, T) = (0, 1)"});
  }
}

TEST_CASE("sample: --snr -1") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "pc", "--snr", "-1"}, {"--snr = -1", "> 0"});
  expect_rejected(dir, {"--snr", "-1"}, {"--snr = -1", "> 0"});
}

TEST_CASE("sample: --rtol 0 and --atol -1 with dopri5") {
  TempDir dir;
  expect_rejected(dir, {"--sampler", "ode", "--ode-method", "dopri5", "--rtol", "0"}, {"--rtol = 0", "> 0"});
  expect_rejected(dir, {"--sampler", "ode", "--ode-method", "dopri5", "--atol", "-1"}, {"--atol = -1", "> 0"});
}

TEST_CASE("sample: -n 0") {
  TempDir dir;
  expect_rejected(dir, {"-n", "0"}, {"-n/--samples = 0", ">= 1"});
}

TEST_CASE("sample: --threads 0") {
  TempDir dir;
  expect_rejected(dir, {"--threads", "0"}, {"--threads = 0", ">= 1"});
}

TEST_CASE("sample: --chunk 0") {
  TempDir dir;
  expect_rejected(dir, {"--chunk", "0"}, {"--chunk = 0", ">= 1"});
}

TEST_CASE("sample: --denoise maybe") {
  TempDir dir;
  expect_rejected(dir, {"--denoise", "maybe"}, {"--denoise = maybe", "on or off"});
}

TEST_CASE("sample: --dim 3 with eight_gaussians") {
  TempDir dir;
  expect_rejected(dir, {"--data", "eight_gaussians", "--dim", "3"}, {"--dim = 3", "eight_gaussians is 2-dimensional"});
}

// ---------------------------------------------------------------------------------------------- parsing

TEST_CASE("sample: a value that is not a number") {
  TempDir dir;
  expect_rejected(dir, {"--steps", "abc"}, {"--steps = abc", "expected an integer"});
  expect_rejected(dir, {"--steps", "1.5"}, {"--steps = 1.5", "expected an integer"});
  expect_rejected(dir, {"-n", "ten"}, {"-n/--samples = ten", "expected an integer"});
  expect_rejected(dir, {"--eps", "small"}, {"--eps = small", "expected a number"});
}

TEST_CASE("sample: a negative --seed is not read as 2^64 - 1") {
  TempDir dir;
  expect_rejected(dir, {"--seed", "-1"},
                  {"--seed = -1", fmt::format("[0, {}]", std::numeric_limits<std::uint64_t>::max())});
}

TEST_CASE("sample: an unknown option") {
  TempDir dir;
  expect_rejected(dir, {"--stepz", "5"}, {"'--stepz'", "--help"});
}

TEST_CASE("sample: --out missing") {
  TempDir dir;
  expect_rejected(dir, {}, {"--out", "required"}, false);
}

// ---------------------------------------------------------------------------------------------- --data

TEST_CASE("sample: --data with an unknown name") {
  TempDir dir;
  expect_rejected(dir, {"--data", "nine_gaussians"},
                  {"--data = nine_gaussians", "eight_gaussians", "gaussian", ".json"});
}

TEST_CASE("sample: --data naming a missing mixture file") {
  TempDir dir;
  const auto path = dir.file("missing.json");
  expect_rejected(dir, {"--data", path}, {path, "cannot open"});
}

TEST_CASE("sample: --model FILE.pt that cannot be used is refused with exit 2, with or without LibTorch") {
  // With LibTorch: the file is missing (tests/test_torchscript.cpp covers the rest); without: the build lacks it.
  TempDir dir;
  const Result r = run({"sample", "--model", dir.file("net.pt"), "-n", "2", "--out", dir.file("out.npy")});
  CHECK(r.code == 2);
  check_contains(r.err, "net.pt");
  CHECK((r.err.find("no such file") != std::string::npos || r.err.find("need LibTorch") != std::string::npos));
  CHECK(!std::filesystem::exists(dir.file("out.npy")));
}

TEST_CASE("sample: --data with a file that is not JSON") {
  TempDir dir;
  const auto path = dir.write("bad.json", R"({"weights": [1, 1], "means": [[0, 0], [1, 1]], "stds": [1)");
  expect_rejected(dir, {"--data", path}, {path, "not valid JSON"});
}

TEST_CASE("sample: --data with a mixture file missing a field") {
  TempDir dir;
  const auto path = dir.write("nomeans.json", R"({"weights": [1, 1], "stds": [1, 1]})");
  expect_rejected(dir, {"--data", path}, {path, "field \"means\": missing"});
}

TEST_CASE("sample: --data with a mixture file whose arrays disagree in length") {
  TempDir dir;
  const auto path = dir.write("length.json", R"({"weights": [1, 1, 1], "means": [[0, 0], [1, 1]], "stds": [1, 1]})");
  expect_rejected(dir, {"--data", path}, {path, "field \"weights\"", "expected 2 entries, found 3"});
}

TEST_CASE("sample: --data with a non-positive standard deviation") {
  TempDir dir;
  const auto path = dir.write("std.json", R"({"weights": [1, 1], "means": [[0, 0], [1, 1]], "stds": [1, 0]})");
  expect_rejected(dir, {"--data", path}, {path, "field \"stds[1]\"", "must be > 0"});
}

// ---------------------------------------------------------------------------------------------- --init

TEST_CASE("sample: --init naming a missing file") {
  TempDir dir;
  const auto path = dir.file("none.npy");
  expect_rejected(dir, {"--init", path}, {"--init", path, "cannot open"});
}

TEST_CASE("sample: --init naming a file that is not .npy") {
  TempDir dir;
  const auto path = dir.write("text.npy", "this is not an array\n");
  expect_rejected(dir, {"--init", path}, {"--init", path, "not a readable .npy file"});
}

TEST_CASE("sample: --init with the wrong dimension for the data") {
  TempDir dir;
  const auto path = dir.file("d3.npy");
  write_samples_npy(path, Matrix::Zero(3, 5));
  expect_rejected(dir, {"--init", path}, {"--init = " + path, "dimension 3", "2-dimensional"});
}

TEST_CASE("sample: --init holding a NaN") {
  TempDir dir;
  const auto path = dir.file("nan.npy");
  Matrix x = Matrix::Zero(2, 5);
  x(1, 3) = std::numeric_limits<double>::quiet_NaN();
  write_samples_npy(path, x);
  expect_rejected(dir, {"--init", path}, {"--init", path, "row 3", "non-finite"});
}

TEST_CASE("sample: -n disagreeing with the rows of --init") {
  TempDir dir;
  const auto path = dir.file("init.npy");
  write_samples_npy(path, Matrix::Zero(2, 5));
  expect_rejected(dir, {"--init", path, "-n", "4"}, {"-n = 4", "holds 5 samples"});
}

// ---------------------------------------------------------------------------------------------- --time-grid

TEST_CASE("sample: an unknown --time-grid that is no file either") {
  TempDir dir;
  expect_rejected(dir, {"--time-grid", "cosine"},
                  with({"--time-grid = cosine", "unknown time grid and no such file"}, time_grid_names()));
  expect_rejected(dir, {"--time-grid", dir.file("")}, {"--time-grid", "is a directory"});
  expect_rejected(dir, {"--rho", "0"}, {"--rho = 0", "> 0"});
  expect_rejected(dir, {"--time-grid", "karras", "--rho", "-1"}, {"--rho = -1", "> 0"});
}

TEST_CASE("sample: a bad --time-grid file is refused naming --time-grid, the file and the problem") {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "holds no times"},
      {"1\n", "holds one time"},
      {"1 0.5 0.7 0.1\n", "not strictly decreasing"},
      {"1 0.5 0.5 0.1\n", "not strictly decreasing"},
      {"1 nan 0.1\n", "not finite"},
      {"2 0.5 0.1\n", "outside (0, T] = (0, 1]"},
      {"1 0.5 0\n", "outside (0, T]"},
      {"1 0.5 x\n", "\"x\" is not a number"},
  };
  int i = 0;
  for (const auto& entry : cases) {
    const auto& text = std::get<0>(entry);
    const auto& problem = std::get<1>(entry);
    CAPTURE(text);
    const auto path = dir.write(fmt::format("g{}.txt", i++), text);
    expect_rejected(dir, {"--time-grid", path}, {"--time-grid", path, problem});
  }
  const auto matrix = dir.file("m.npy");
  write_samples_npy(matrix, Matrix::Constant(2, 3, 0.5));
  expect_rejected(dir, {"--time-grid", matrix}, {"--time-grid", matrix, "expected a 1-d array"});
}

TEST_CASE("sample: --steps or --eps that disagree with a --time-grid file are refused naming the option") {
  TempDir dir;
  const auto path = dir.write("grid.txt", "1 0.5 0.2 0.01\n");  // 3 steps, eps 0.01
  expect_rejected(dir, {"--time-grid", path, "--steps", "4"}, {"--steps = 4", path, "has 3 steps"});
  expect_rejected(dir, {"--time-grid", path, "--steps", "3", "--eps", "0.001"},
                  {"--eps = 0.001", path, "ends at t_N = 0.01"});
  // A grid below T needs --init.
  const auto below = dir.write("below.txt", "0.5 0.2 0.01\n");
  expect_rejected(dir, {"--time-grid", below, "--steps", "2"}, {"--time-grid = " + below, "starts at t_0 = 0.5"});
}

TEST_CASE("sample: a --time-grid file sets --steps and --eps, is recorded, and reproduces the uniform grid") {
  TempDir dir;
  // The uniform grid of 20 steps from 1 to 1e-3, as .npy and as text (17 significant digits round-trip).
  const auto sde = make_sde(SdeOptions{});
  SamplerOptions o;
  o.steps = 20;
  const auto uniform = o.grid(*sde).t;
  Vector v(static_cast<Index>(uniform.size()));
  std::string text;
  for (std::size_t i = 0; i < uniform.size(); ++i) {
    v(static_cast<Index>(i)) = uniform[i];
    text += fmt::format("{:.17g}\n", uniform[i]);
  }
  dump_vector_npy(dir.file("uniform.npy"), v);
  dir.write("uniform.txt", text);
  const std::vector<std::string> common{"sample", "-n", "40", "--noise", "brownian_tree", "--seed", "2", "--quiet"};
  auto args = common;
  args.insert(args.end(), {"--steps", "20", "--out", dir.file("named.npy")});
  REQUIRE(run(args).code == 0);
  const Matrix named = read_samples_npy(dir.file("named.npy"));
  for (const std::string file : {"uniform.npy", "uniform.txt"}) {
    CAPTURE(file);
    args = common;
    args.insert(args.end(), {"--time-grid", dir.file(file), "--out", dir.file(file + ".out.npy")});
    const Result r = run(args);
    INFO("stderr: " << r.err);
    REQUIRE(r.code == 0);
    const Matrix x = read_samples_npy(dir.file(file + ".out.npy"));
    CHECK(std::memcmp(x.data(), named.data(), sizeof(double) * x.size()) == 0);
    const auto meta = nlohmann::json::parse(std::ifstream(dir.file(file + ".out.npy.json")));
    CHECK(meta["options"]["time-grid"] == dir.file(file));
    CHECK(meta["options"]["steps"] == 20);
    CHECK(meta["options"]["eps"] == 1e-3);
    CHECK(meta["result"]["time_grid"].get<std::vector<double>>() == uniform);
    CHECK(meta["inputs"]["time-grid"]["path"] == dir.file(file));
    // The recorded command reruns the same samples.
    CHECK(meta["command"].get<std::string>().find("--time-grid " + dir.file(file)) != std::string::npos);
  }
  // Agreeing --steps and --eps are accepted.
  args = common;
  args.insert(args.end(), {"--time-grid", dir.file("uniform.txt"), "--steps", "20", "--eps", "0.001", "--out",
                           dir.file("agree.npy")});
  CHECK(run(args).code == 0);
}

TEST_CASE("sample: named grids are recorded with their times; dopri5 records the ends it integrates between") {
  TempDir dir;
  const auto sde = make_sde(SdeOptions{});
  for (const auto& grid : time_grid_names()) {
    CAPTURE(grid);
    const auto out = dir.file(grid + ".npy");
    const Result r = run({"sample", "-n", "8", "--steps", "6", "--time-grid", grid, "--rho", "3", "--out", out});
    INFO("stderr: " << r.err);
    REQUIRE(r.code == 0);
    const auto meta = nlohmann::json::parse(std::ifstream(out + ".json"));
    SamplerOptions o;
    o.steps = 6;
    o.time_grid = grid;
    o.rho = 3;
    CHECK(meta["result"]["time_grid"].get<std::vector<double>>() == o.grid(*sde).t);
    CHECK(meta["options"]["time-grid"] == grid);
    CHECK(meta["options"]["rho"] == 3.0);
    CHECK(meta["inputs"].empty());
  }
  const auto out = dir.file("dopri5.npy");
  REQUIRE(run({"sample", "-n", "8", "--sampler", "ode", "--time-grid", "karras", "--out", out}).code == 0);
  const auto meta = nlohmann::json::parse(std::ifstream(out + ".json"));
  CHECK(meta["result"]["time_grid"].get<std::vector<double>>() == std::vector<double>{1.0, 1e-3});
}

TEST_CASE("sample: a --time-grid file that starts below T runs from --init's points at t_0") {
  TempDir dir;
  const auto grid = dir.write("below.txt", "0.5 0.2 0.05 0.01\n");
  const auto init = dir.file("init.npy");
  write_samples_npy(init, Matrix::Ones(2, 6));
  const auto out = dir.file("out.npy");
  const Result r = run({"sample", "--time-grid", grid, "--init", init, "--out", out, "--quiet"});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(read_samples_npy(out).allFinite());
  const auto meta = nlohmann::json::parse(std::ifstream(out + ".json"));
  CHECK(meta["result"]["time_grid"].get<std::vector<double>>() == std::vector<double>{0.5, 0.2, 0.05, 0.01});
  CHECK(meta["result"]["nfe"] == 3.0);
}

// ---------------------------------------------------------------------------------------------- --out,
// combinations

TEST_CASE("sample: --out in a directory that does not exist") {
  TempDir dir;
  const auto out = dir.file("nowhere/out.npy");
  expect_rejected(dir, {"--out", out}, {"--out = " + out, "does not exist"});
  CHECK_FALSE(fs::exists(dir.file("nowhere")));
}

TEST_CASE("sample: --out naming a directory") {
  TempDir dir;
  fs::create_directory(dir.file("sub"));
  expect_rejected(dir, {"--out", dir.file("sub")}, {"--out = " + dir.file("sub"), "is a directory"});
}

TEST_CASE("sample: ancestral with --sde subvp") {
  TempDir dir;
  expect_rejected(dir, {"--sde", "subvp", "--sampler", "ancestral"}, {"ancestral", "subvp", "reverse_diffusion"});
  expect_rejected(dir, {"--sde", "subvp", "--sampler", "pc", "--predictor", "ancestral"},
                  {"ancestral", "subvp", "reverse_diffusion"});
}

// ---------------------------------------------------------------------------------------------- --config

TEST_CASE("sample: --config naming a missing file") {
  TempDir dir;
  const auto path = dir.file("none.ini");
  expect_rejected(dir, {"--config", path}, {"--config = " + path, "cannot open"});
}

TEST_CASE("sample: --config with an unknown key") {
  TempDir dir;
  const auto path = dir.write("bad.ini", "steps = 3\nstepz = 4\n");
  expect_rejected(dir, {"--config", path}, {path, "unknown key \"stepz\""});
}

TEST_CASE("sample: --config with a value that is not a number") {
  TempDir dir;
  const auto path = dir.write("bad.ini", "chunk = lots\n");
  expect_rejected(dir, {"--config", path}, {path, "key \"chunk\" = lots", "expected an integer"});
}

// ---------------------------------------------------------------------------------------------- divergence

TEST_CASE("sample: a diverging sampler exits 3, says which sample and when, and writes nothing") {
  TempDir dir;
  // The Langevin step 2 a (snr sigma_t)^2 ~ 1e200 overflows the state in the first corrector step.
  const auto before = dir.entries();
  const Result r = run({"sample", "--sampler", "pc", "--corrector", "langevin", "--snr", "1e100", "-n", "8", "--steps",
                        "3", "--out", dir.file("out.npy")});
  INFO("stderr: " << r.err);
  CHECK(r.code == 3);
  check_contains(r.err, "sample");
  check_contains(r.err, "t = ");
  check_contains(r.err, "nothing was written");
  CHECK(dir.entries() == before);
}

// ---------------------------------------------------------------------------------------------- valid runs

TEST_CASE("sample: a valid run writes OUT.npy and OUT.npy.json with options, result and context") {
  TempDir dir;
  const auto out = dir.file("out.npy");
  const Result r = run({"sample", "-n", "50", "--steps", "10", "--out", out});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(dir.entries() == std::set<std::string>{"out.npy", "out.npy.json"});
  const Matrix x = read_samples_npy(out);
  CHECK(x.rows() == 2);
  CHECK(x.cols() == 50);
  const auto meta = nlohmann::json::parse(std::ifstream(out + ".json"));
  REQUIRE(meta.contains("command"));
  CHECK(meta["command"].get<std::string>().rfind("scoresde sample", 0) == 0);
  REQUIRE(meta.contains("options"));
  CHECK(meta["options"]["steps"] == 10);
  CHECK(meta["options"]["samples"] == 50);
  REQUIRE(meta.contains("result"));
  CHECK(meta["result"]["nfe"].get<double>() == doctest::Approx(10));
  REQUIRE(meta.contains("context"));
  CHECK(meta["context"].contains("git_revision"));
  CHECK(meta["context"].contains("version"));
}

TEST_CASE("sample: a mixture file and --init that are valid are used") {
  TempDir dir;
  const auto data = dir.write("mix.json", good_mixture);
  const auto init = dir.file("init.npy");
  write_samples_npy(init, Matrix::Ones(2, 6));
  const auto out = dir.file("out.npy");
  const Result r = run({"sample", "--data", data, "--init", init, "--steps", "4", "--out", out, "--quiet"});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.empty());
  CHECK(read_samples_npy(out).cols() == 6);
}

TEST_CASE("a mixture file's weights that do not sum to 1 are normalised with a note naming the sum") {
  TempDir dir;
  const auto unnormalised = dir.write("mix.json", good_mixture);  // weights [1, 2]
  const auto normalised = dir.write(
      "mix3.json", fmt::format(R"({{"weights": [{:.17g}, {:.17g}], "means": [[0, 0], [1, 1]], "stds": [1, 0.5]}})",
                               1.0 / 3, 2.0 / 3));
  const Result a = run({"sample", "--data", unnormalised, "--steps", "4", "-n", "20", "--out", dir.file("a.npy")});
  REQUIRE_MESSAGE(a.code == 0, a.err);
  check_contains(a.err, "scoresde: note: " + unnormalised + ": the weights sum to 3; each is divided by the sum");
  const Result b = run({"sample", "--data", normalised, "--steps", "4", "-n", "20", "--out", dir.file("b.npy")});
  REQUIRE_MESSAGE(b.code == 0, b.err);
  CHECK(b.err.find("note") == std::string::npos);
  // [1, 2] is the mixture with weights 1/3, 2/3: the same samples, bit for bit.
  CHECK(read_samples_npy(dir.file("a.npy")) == read_samples_npy(dir.file("b.npy")));
  // Zero or negative weights are refused, naming the weight.
  for (const char* w : {"[0, 0]", "[1, -1]"}) {
    const auto bad =
        dir.write("bad.json", fmt::format(R"({{"weights": {}, "means": [[0, 0], [1, 1]], "stds": [1, 1]}})", w));
    const Result r = run({"sample", "--data", bad, "--out", dir.file("c.npy")});
    CHECK(r.code == 2);
    check_contains(r.err, "weights[");
    CHECK_FALSE(fs::exists(dir.file("c.npy")));
  }
}

TEST_CASE("sample: --config supplies options and the command line wins") {
  TempDir dir;
  const auto ini = dir.write("run.ini", "steps = 7\nsampler = reverse_diffusion\nsamples = 9\nseed = 3\n");
  const auto out = dir.file("out.npy");
  const Result r = run({"sample", "--config", ini, "--steps", "5", "--out", out});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  const auto meta = nlohmann::json::parse(std::ifstream(out + ".json"));
  CHECK(meta["options"]["steps"] == 5);
  CHECK(meta["options"]["sampler"] == "reverse_diffusion");
  CHECK(meta["options"]["samples"] == 9);
  CHECK(meta["options"]["seed"] == 3);
  CHECK(read_samples_npy(out).cols() == 9);
}

TEST_CASE("sample --help returns 0, mentions every option and writes nothing") {
  TempDir dir;
  const Result r = run({"sample", "--help", "--out", dir.file("out.npy")});
  CHECK(r.code == 0);
  std::vector<std::string> names = {"data", "dim", "samples", "init", "out", "quiet", "config", "help"};
  for (const auto& group : {sde_option_group(), sampler_option_group()})
    for (const auto& o : group.options()) names.push_back(o->long_name());
  for (const auto& n : names) check_contains(r.out, "--" + n);
  check_contains(r.out, "-n");
  CHECK(dir.entries().empty());
}

// ---------------------------------------------------------------------------------------------- other
// commands

TEST_CASE("list returns 0 and names every SDE, sampler, predictor, corrector, ODE method, noise source and time grid") {
  const Result r = run({"list"});
  CHECK(r.code == 0);
  for (const auto& names : {sde_names(), sampler_names(), predictor_names(), corrector_names(), ode_method_names(),
                            noise_names(), time_grid_names()})
    for (const auto& n : names) check_contains(r.out, n);
}

TEST_CASE("list refuses arguments") {
  const Result r = run({"list", "--samplers"});
  CHECK(r.code == 2);
  check_contains(r.err, "takes no options");
  check_contains(r.err, "'--samplers'");
}

TEST_CASE("an unknown command returns 2 with the list of commands") {
  const Result r = run({"smaple"});
  CHECK(r.code == 2);
  check_contains(r.err, "'smaple'");
  check_contains(r.err,
                 "sample, study, report, convergence, evaluate, likelihood, train, evaluate-score, fit-mixture, "
                 "gaussian-law, compare, brownian, list, version");
  CHECK(run({}).code == 2);
  CHECK(run({"--help"}).code == 0);
}

TEST_CASE("compare: bad inputs return 2 and write nothing") {
  TempDir dir;
  const auto out = dir.file("table.md");
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {{"--stepz", "5"}, {"'--stepz'"}},
      {{"--steps", "0"}, {"--steps = 0", ">= 1"}},
      {{"--steps", "abc"}, {"--steps = abc", "expected an integer"}},
      {{"-n", "1"}, {"-n/--samples = 1", ">= 2"}},
      {{"--sdes", "vp,vpp"}, with({"--sde = vpp"}, sde_names())},
      {{"--data", "nine_gaussians"}, {"--data = nine_gaussians"}},
      {{"--seed", "-1"}, {"--seed = -1"}},
      // Refused before the samplers run.
      {{"--out", dir.file("nowhere/table.md")}, {"--out = " + dir.file("nowhere/table.md"), "does not exist"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"compare", "--sdes", "vp", "-n", "20", "--steps", "3", "--threads", "1"};
    // Later values of the options given twice would be refused as duplicates: replace them.
    for (std::size_t i = 0; i + 1 < c.args.size(); i += 2) {
      const auto it = std::find(args.begin(), args.end(), c.args[i]);
      if (it != args.end()) {
        *(it + 1) = c.args[i + 1];
      } else {
        args.insert(args.end(), {c.args[i], c.args[i + 1]});
      }
    }
    if (!has(args, {"--out"})) args.insert(args.end(), {"--out", out});
    CAPTURE(fmt::format("{}", fmt::join(args, " ")));
    const Result r = run(args);
    INFO("stderr: " << r.err);
    CHECK(r.code == 2);
    for (const auto& n : c.needles) check_contains(r.err, n);
    CHECK(dir.entries().empty());
  }
}

TEST_CASE("compare: one row per registered sampler, leaving out what the SDE refuses") {
  const Result r = run({"compare", "--sdes", "vp,subvp", "-n", "20", "--steps", "3", "--threads", "1"});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  check_contains(r.out, "| NLL (nats) | mode coverage |");
  check_contains(r.out, "| - | exact samples |");
  SamplerOptions defaults;
  std::vector<std::string> labels;
  for (const auto& e : predictor_registry()) labels.push_back(e.name);
  labels.push_back(fmt::format("pc ({} + {})", defaults.predictor, defaults.corrector));
  for (const auto& e : ode_method_registry()) labels.push_back("ode " + e.name);
  for (const std::string sde : {"vp", "subvp"}) {
    for (const auto& label : labels) {
      CAPTURE(sde);
      CAPTURE(label);
      const bool refused = label == "ancestral" && sde == "subvp";
      CHECK((r.out.find(fmt::format("| {} | {} |", sde, label)) != std::string::npos) == !refused);
    }
  }
}
