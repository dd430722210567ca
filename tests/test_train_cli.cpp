// `scoresde train`, `sample --model` and `evaluate-score`, called in-process: bad options and bad data files
// are answered with status 2, a message naming the option or the file (and the row), and no output file;
// valid runs write a checkpoint that loads, is reproducible for a seed and thread count, samples with every
// sampler, and maps samples back to the data's units.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "models/checkpoint.hpp"
#include "cli_helpers.hpp"

using namespace scoresde;
namespace fs = std::filesystem;

namespace {

using scoresde::test::TempDir;

using scoresde::test::Result;
using scoresde::test::run;

using scoresde::test::check_contains;

// A tiny, fast training run.
std::vector<std::string> tiny(const TempDir& dir, const std::string& out,
                              std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"train", "--quiet", "--out", dir.file(out)};
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{{"--width", "16"},
                                                                                   {"--depth", "2"},
                                                                                   {"--data-samples", "400"},
                                                                                   {"--batch-size", "64"},
                                                                                   {"--iterations", "30"}})
    if (std::find(extra.begin(), extra.end(), key) == extra.end()) args.insert(args.end(), {key, value});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

void expect_rejected(const TempDir& dir, std::vector<std::string> args,
                     const std::vector<std::string>& needles) {
  const auto before = dir.entries();
  const Result r = run(args);
  INFO("stderr: " << r.err);
  CHECK(r.code == 2);
  for (const auto& n : needles) check_contains(r.err, n);
  CHECK(dir.entries() == before);
}

std::string data_file(const std::string& name) {
  const char* s = std::getenv("SCORESDE_SOURCE_DIR");
  return (fs::path(s ? s : ".") / "tests" / "data" / name).string();
}

}  // namespace

TEST_CASE("train: bad options are refused naming the option") {
  TempDir dir;
  expect_rejected(dir, {"train", "--iterations", "5"}, {"--out", "required"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--sde", "vpp"}), {"--sde = vpp"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--lr", "0"}), {"--lr = 0", "> 0"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--depth", "0"}), {"--depth = 0"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--width", "abc"}), {"--width = abc", "integer"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--ema-rate", "1"}), {"--ema-rate = 1"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--train-eps", "0"}), {"--train-eps = 0"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--time-sampling", "log_t"}),
                  {"--time-sampling = log_t", "uniform", "log_snr", "log_sigma"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--uniform-share", "1.5"}), {"--uniform-share = 1.5", "[0, 1]"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--loss-weighting", "foo"}),
                  {"--loss-weighting = foo", "likelihood"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--reduction", "max"}), {"--reduction = max", "mean", "sum"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--parameterization", "x0"}),
                  {"--parameterization = x0", "noise"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--time-embedding", "sinusoid"}),
                  {"--time-embedding = sinusoid"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--precision", "half"}), {"--precision = half"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--lr-schedule", "step"}), {"--lr-schedule = step"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", "spiral"}),
                  {"--data = spiral", "two_moons", "checkerboard"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", "two_moons", "--dim", "3"}),
                  {"--dim = 3", "2-dimensional"});
  expect_rejected(dir, tiny(dir, "nodir/m.ckpt"), {"--out", "does not exist"});
}

TEST_CASE("train: bad data files are refused naming the file, the row and the problem") {
  TempDir dir;
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", dir.file("missing.csv")}),
                  {"missing.csv", "cannot open"});
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", dir.file("missing.npy")}),
                  {"missing.npy", "cannot open"});
  const auto text = dir.write("text.csv", "x,y\n1,2\n3,4\n5,abc\n");
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", text}),
                  {"text.csv", "row 2", "line 4", "column 2", "abc"});
  const auto nan = dir.write("nan.csv", "1,2\n3,nan\n");
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", nan}), {"nan.csv", "row 1", "non-finite"});
  const auto ragged = dir.write("ragged.csv", "1,2\n3,4,5\n");
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", ragged}),
                  {"ragged.csv", "row 1", "3 columns, expected 2"});
  const auto empty = dir.write("empty.csv", "# nothing\n\n");
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", empty}), {"empty.csv", "no data rows"});
  const auto one_row = dir.write("one.csv", "1,2\n");
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", one_row}), {"one.csv", "at least 2"});
  // An .npy of the wrong shape (5-d: 2-d samples and 3-d or 4-d images are read) and one holding a NaN.
  const std::string header3 = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 2), }";
  std::string npy3 = std::string("\x93NUMPY\x01\x00", 8);
  std::string h = header3 + std::string(128 - 10 - header3.size() - 1, ' ') + "\n";
  npy3 += static_cast<char>(h.size() & 0xFF);
  npy3 += static_cast<char>(h.size() >> 8);
  npy3 += h;
  const double two[2] = {1.0, 2.0};
  npy3.append(reinterpret_cast<const char*>(two), sizeof two);
  const auto shape3 = dir.write("shape3.npy", npy3);
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", shape3}), {"shape3.npy", "2-d array"});
  Matrix bad(2, 3);
  bad << 1, 2, 3, 4, std::nan(""), 6;
  write_samples_npy(dir.file("nan.npy"), bad);
  expect_rejected(dir, tiny(dir, "m.ckpt", {"--data", dir.file("nan.npy")}),
                  {"nan.npy", "row 1", "non-finite"});
}

TEST_CASE("train: writes a checkpoint that reproduces bit for bit for a seed and thread count") {
  TempDir dir;
  for (const std::string name : {"a.ckpt", "b.ckpt"})
    REQUIRE(run(tiny(dir, name, {"--seed", "3"})).code == 0);
  REQUIRE(run(tiny(dir, "c.ckpt", {"--seed", "4"})).code == 0);
  REQUIRE(run(tiny(dir, "t2a.ckpt", {"--seed", "3", "--threads", "2"})).code == 0);
  REQUIRE(run(tiny(dir, "t2b.ckpt", {"--seed", "3", "--threads", "2"})).code == 0);
  CHECK(dir.entries() == std::set<std::string>{"a.ckpt", "b.ckpt", "c.ckpt", "t2a.ckpt", "t2b.ckpt"});
  const Checkpoint a = load_checkpoint(dir.file("a.ckpt")), b = load_checkpoint(dir.file("b.ckpt")),
                   c = load_checkpoint(dir.file("c.ckpt")), t2a = load_checkpoint(dir.file("t2a.ckpt")),
                   t2b = load_checkpoint(dir.file("t2b.ckpt"));
  CHECK(a.weights == b.weights);
  CHECK(a.ema == b.ema);
  CHECK(a.weights != c.weights);
  CHECK(t2a.weights == t2b.weights);
  CHECK(a.architecture.hidden == std::vector<Index>{16, 16});
  CHECK(a.architecture.parameterization == Parameterization::noise);
  CHECK(a.training["iterations_done"] == 30);
  CHECK(a.training["interrupted"] == false);
  CHECK(a.training["options"]["seed"] == 3);
  CHECK(a.training["history"].size() >= 2);
  // The SDE's defaults are resolved and recorded: vp draws log-uniform sigma_t from its sampling eps 1e-3.
  CHECK(a.training["options"]["time-sampling"] == "log_sigma");
  CHECK(a.training["options"]["uniform-share"] == 0.25);
  CHECK(a.training["options"]["train-eps"] == 1e-3);
  // ve defaults to the scaled_score parameterisation and uniform times from 1e-5.
  REQUIRE(run(tiny(dir, "ve.ckpt", {"--sde", "ve"})).code == 0);
  const Checkpoint ve = load_checkpoint(dir.file("ve.ckpt"));
  CHECK(ve.architecture.parameterization == Parameterization::scaled_score);
  CHECK(ve.training["options"]["time-sampling"] == "uniform");
  CHECK(ve.training["options"]["train-eps"] == 1e-5);
}

TEST_CASE("train: every built-in data set and a CSV file in 3 dimensions") {
  TempDir dir;
  for (const std::string data : {"eight_gaussians", "two_moons", "swiss_roll", "checkerboard", "rings"}) {
    CAPTURE(data);
    CHECK(run(tiny(dir, data + ".ckpt", {"--data", data, "--iterations", "3"})).code == 0);
  }
  const auto mixture =
      dir.write("mix.json", R"({"weights": [1, 2], "means": [[0, 0, 5], [1, 1, 5]], "stds": [1, 0.5]})");
  REQUIRE(run(tiny(dir, "mix.ckpt", {"--data", mixture, "--iterations", "3"})).code == 0);
  CHECK(load_checkpoint(dir.file("mix.ckpt")).architecture.dim == 3);
  std::string csv = "a,b,c\n";
  for (int i = 0; i < 50; ++i)
    csv += fmt::format("{},{},{}\n", 100 + (i % 7), -3 + 0.1 * (i % 5), 0.5 * (i % 3));
  const auto path = dir.write("points.csv", csv);
  REQUIRE(run(tiny(dir, "p.ckpt", {"--data", path})).code == 0);
  const Checkpoint c = load_checkpoint(dir.file("p.ckpt"));
  CHECK(c.architecture.dim == 3);
  CHECK(std::abs(c.scaling.mean(0) - 103) < 1.0);
  // Samples come back in the data's units: around 100 in the first coordinate.
  REQUIRE(run({"sample", "--model", dir.file("p.ckpt"), "-n", "64", "--steps", "20", "--quiet", "--out",
               dir.file("p.npy")})
              .code == 0);
  const Matrix x = read_samples_npy(dir.file("p.npy"));
  CHECK(x.rows() == 3);
  CHECK(std::abs(x.row(0).mean() - 103) < 20);
}

TEST_CASE("sample --model: every sampler, SDE from the checkpoint, and refusals") {
  TempDir dir;
  REQUIRE(run(tiny(dir, "m.ckpt")).code == 0);
  const std::string model = dir.file("m.ckpt");
  for (const std::vector<std::string> sampler :
       {std::vector<std::string>{"--sampler", "euler_maruyama"},
        {"--sampler", "reverse_diffusion"},
        {"--sampler", "ancestral"},
        {"--sampler", "pc"},
        {"--sampler", "ode", "--ode-method", "rk4"},
        {"--sampler", "ode", "--ode-method", "dopri5", "--rtol", "1e-3", "--atol", "1e-3"}}) {
    std::vector<std::string> args = {"sample", "--model",        model, "-n", "16", "--steps", "10",
                                     "--out",  dir.file("s.npy")};
    args.insert(args.end(), sampler.begin(), sampler.end());
    const Result r = run(args);
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(read_samples_npy(dir.file("s.npy")).cols() == 16);
  }
  // Sample i does not depend on the thread count with a network either.
  for (const std::string threads : {"1", "2"})
    REQUIRE(run({"sample", "--model", model, "-n", "600", "--steps", "5", "--chunk", "64", "--threads",
                 threads, "--quiet", "--out", dir.file("th" + threads + ".npy")})
                .code == 0);
  CHECK(read_samples_npy(dir.file("th1.npy")) == read_samples_npy(dir.file("th2.npy")));
  const Result over = run({"sample", "--model", model, "--sde", "subvp", "-n", "4", "--steps", "5", "--quiet",
                           "--out", dir.file("o.npy")});
  CHECK(over.code == 0);
  check_contains(over.err, "warning: --sde override");
  std::ifstream json(dir.file("o.npy.json"));
  const auto meta = nlohmann::json::parse(json);
  CHECK(meta["options"]["sde"] == "subvp");
  CHECK(meta["options"]["model"] == model);

  const auto reject = [&](std::vector<std::string> args, const std::vector<std::string>& needles) {
    args.insert(args.begin(), "sample");
    args.insert(args.end(), {"-n", "4", "--steps", "3", "--out", dir.file("bad.npy")});
    expect_rejected(dir, args, needles);
  };
  reject({"--model", model, "--data", "eight_gaussians"}, {"--data", "--model"});
  reject({"--model", model, "--parameterization", "noise"}, {"--parameterization", "records its own"});
  reject({"--model", model, "--dim", "3"}, {"--dim = 3", "2-dimensional"});
  reject({"--model", model, "--weights", "best"}, {"--weights = best"});
  reject({"--model", dir.file("none.ckpt")}, {"none.ckpt", "cannot open"});
  const auto bytes = [&] {
    std::ifstream in(model, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  const auto cut = dir.write("cut.ckpt", bytes.substr(0, bytes.size() - 10));
  reject({"--model", cut}, {"cut.ckpt", "truncated"});
  write_samples_npy(dir.file("init3.npy"), Matrix::Zero(3, 4));
  reject({"--model", model, "--init", dir.file("init3.npy")}, {"--init", "dimension 3", "2-dimensional"});
  reject({"--parameterization", "noise"}, {"--parameterization", "--model FILE.npz"});
}

TEST_CASE("sample --model: PyTorch .npz weights") {
  TempDir dir;
  const Result r = run({"sample", "--model", data_file("torch_mlp.npz"), "--parameterization", "noise", "-n",
                        "8", "--steps", "5", "--quiet", "--out", dir.file("t.npy")});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(read_samples_npy(dir.file("t.npy")).rows() == 2);
  expect_rejected(dir,
                  {"sample", "--model", data_file("torch_mlp.npz"), "--parameterization", "eps", "-n", "4",
                   "--out", dir.file("u.npy")},
                  {"--parameterization = eps"});
}

TEST_CASE("evaluate-score: a table of relative errors; refusals") {
  TempDir dir;
  REQUIRE(run(tiny(dir, "m.ckpt")).code == 0);
  const Result r =
      run({"evaluate-score", "--model", dir.file("m.ckpt"), "-n", "200", "--json", dir.file("e.json")});
  INFO(r.err);
  CHECK(r.code == 0);
  check_contains(r.out, "relative L2");
  std::ifstream json(dir.file("e.json"));
  const auto doc = nlohmann::json::parse(json);
  CHECK(doc["results"].size() == 3);
  CHECK(doc["results"][0]["t"] == 0.1);
  CHECK(doc["results"][0]["relative_l2"].get<double>() > 0);
  expect_rejected(dir, {"evaluate-score", "--model", dir.file("m.ckpt"), "--data", "two_moons"},
                  {"--data = two_moons", "no exact score"});
  expect_rejected(dir, {"evaluate-score", "--model", dir.file("m.ckpt"), "--data", "gaussian", "--dim", "3"},
                  {"3-dimensional", "2-dimensional"});
  expect_rejected(dir, {"evaluate-score", "--model", dir.file("m.ckpt"), "--times", "0.1,x"},
                  {"--times", "'x'"});
  expect_rejected(dir, {"evaluate-score", "--model", dir.file("m.ckpt"), "--times", "1.5"},
                  {"--times", "(0, T]"});
  expect_rejected(dir, {"evaluate-score"}, {"--model", "required"});
}

TEST_CASE("train: Ctrl-C saves a checkpoint of the run so far and exits with 130") {
  TempDir dir;
  // Ignore SIGINT here, so that a signal raised before `train` installs its handler is harmless; raise it
  // every 50 ms until the run ends.
  const auto previous = std::signal(SIGINT, SIG_IGN);
  std::atomic<bool> done{false};
  std::thread raiser([&] {
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (!done.load()) std::raise(SIGINT);
    }
  });
  const Result r = run(tiny(dir, "i.ckpt", {"--iterations", "100000000"}));
  done.store(true);
  raiser.join();
  std::signal(SIGINT, previous);
  CHECK(r.code == 130);
  check_contains(r.err, "interrupted at iteration");
  const Checkpoint c = load_checkpoint(dir.file("i.ckpt"));
  CHECK(c.training["interrupted"] == true);
  CHECK(c.training["iterations_done"].get<long>() < 100000000);
}
