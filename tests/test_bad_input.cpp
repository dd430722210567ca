// Bad input to every command and every kind of file the program reads, one table row per case: each is answered
// with exit status 2 (3 for a numerical failure), a message on standard error that names the option or file and
// what is allowed, and no output: the case's directory holds the same entries afterwards, and the files the case
// set up are unchanged. Wrong values of the important options, NaN and Inf in data and in --init, dimensions that
// disagree, empty files, directories where files belong, outputs that cannot be written and a full disk (a child
// process with RLIMIT_FSIZE, or standard output on /dev/full).
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "models/image_mixture.hpp"

using namespace scoresde;
namespace fs = std::filesystem;

namespace {

using scoresde::test::check_contains;
using scoresde::test::Result;
using scoresde::test::TempDir;

// How a case runs the program.
enum class Runner {
  in_process,   // run_cli
  full_disk,    // a child whose files may not grow past disk_bytes (RLIMIT_FSIZE): writes fail as on a full disk
  stdout_full,  // a child whose standard output is /dev/full
};

// A file the case creates in its directory before the run; its content, or one of the markers below.
struct SetupFile {
  std::string name;
  std::string content;
};
const std::string directory_marker = "<directory>";
const std::string fifo_marker = "<fifo>";

struct BadInputCase {
  std::string name;
  std::vector<SetupFile> files;
  std::vector<std::string> args;  // {dir}: the case's directory; {fix}: the shared fixtures'
  int code;
  std::vector<std::string> needles;  // each must occur on standard error; {dir} and {fix} as in args
  Runner runner = Runner::in_process;
  // Runner::full_disk: the file-size limit in bytes, chosen per case between the sizes of the files it writes so that
  // the failing write is the one under test (for an .npy, the array, not the .json beside it), and above the message.
  // At least 1024: LLVM's OpenMP runtime (the sanitized tree is built with clang) sizes a 1 kB shared-memory segment
  // when it starts and aborts if it cannot.
  rlim_t disk_bytes = 0;
  std::map<std::string, std::string> env = {};  // set for the run (in-process), {dir} replaced
};

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// The bytes of an (n, d) float64 .npy file holding `rows`.
std::string npy(const std::vector<std::vector<double>>& rows) {
  const std::size_t n = rows.size(), d = rows.empty() ? 0 : rows[0].size();
  std::string dict = fmt::format("{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}", n, d);
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(dict.size() & 0xff);
  bytes += static_cast<char>(dict.size() >> 8);
  bytes += dict;
  for (const auto& row : rows)
    for (double v : row) bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  return bytes;
}

// n points of dimension d, all different and finite.
std::vector<std::vector<double>> points(std::size_t n, std::size_t d) {
  std::vector<std::vector<double>> rows(n, std::vector<double>(d));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) rows[i][j] = std::sin(1.0 + static_cast<double>(3 * i + j));
  return rows;
}

std::vector<std::vector<double>> with_value(std::vector<std::vector<double>> rows, double v) {
  rows[rows.size() / 2].back() = v;
  return rows;
}

const double nan = std::numeric_limits<double>::quiet_NaN();
const double inf = std::numeric_limits<double>::infinity();

// An IDX file of unsigned bytes: magic 00 00 08 RANK, the dimensions big-endian, then `data` bytes (zlib reads an
// uncompressed file as it is, so no gzip is needed).
std::string idx(const std::vector<std::uint32_t>& dims, std::size_t data) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (auto n : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((n >> shift) & 0xff);
  return bytes + std::string(data, '\x07');
}

// The directory's path without a trailing slash.
std::string path_of(const TempDir& dir) {
  const std::string with_slash = dir.file("");
  return with_slash.substr(0, with_slash.size() - 1);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const char* mixture_2d = R"({"weights": [1, 2], "means": [[0, 0], [1, 1]], "stds": [1, 0.5]})";

// Files shared by the cases that read them (never written to): a small trained checkpoint and an eigen-mixture
// header with its arrays.
struct Fixtures {
  TempDir dir{"bad-input-fixtures"};
  TempDir capture{"bad-input-capture"};  // the children's standard output and error
  std::string checkpoint, eigen_header, eigen_arrays;
  Fixtures() {
    checkpoint = dir.file("model.ckpt");
    const Result r =
        test::run({"train", "--quiet", "--data", "eight_gaussians", "--width", "16", "--depth", "2", "--data-samples",
                   "200", "--batch-size", "32", "--iterations", "5", "--out", checkpoint});
    INFO("stderr: " << r.err);
    REQUIRE(r.code == 0);
    FittedMixture fit;
    fit.weights = Vector::Ones(1);
    fit.means = Matrix::Zero(2, 1);
    fit.eigenvectors = {Matrix::Identity(2, 2)};
    fit.eigenvalues = Matrix::Ones(2, 1);
    fit.counts = {10};
    fit.traces = Vector::Constant(1, 2.0);
    eigen_header = dir.file("eig.json");
    write_eigen_mixture(eigen_header, fit, nlohmann::ordered_json::object());
    eigen_arrays = dir.file("eig.npy");
    REQUIRE(fs::exists(eigen_arrays));
  }
};

const Fixtures& fixtures() {
  static const Fixtures f;
  return f;
}

std::vector<BadInputCase> bad_input_cases() {
  const Fixtures& f = fixtures();
  const std::string ckpt = slurp(f.checkpoint);
  std::string ckpt_flipped = ckpt;
  ckpt_flipped[ckpt_flipped.size() / 2 + 7] ^= 0x5a;  // a weight's byte: the checksum no longer agrees
  const std::string eig_header = slurp(f.eigen_header), eig_arrays = slurp(f.eigen_arrays);
  std::string eig_arrays_changed = eig_arrays;
  eig_arrays_changed[eig_arrays_changed.size() - 3] ^= 0x11;
  const std::string eig_dim0 = replace_all(eig_header, "\"dim\": 2", "\"dim\": 0");
  const std::string p2 = npy(points(50, 2)), p3 = npy(points(50, 3));
  const std::string ok_out = "{dir}/out.npy";
  // A tiny sample run, to which each sample case adds its one bad input.
  // (-n 4 unless it gives -n or --init, --steps 3 unless it gives --steps or --time-grid), so that a bad input wrongly
  // accepted costs little.
  const auto sample = [](std::vector<std::string> extra) {
    const auto gives = [&](std::initializer_list<const char*> keys) {
      for (const char* key : keys)
        if (std::find(extra.begin(), extra.end(), key) != extra.end()) return true;
      return false;
    };
    std::vector<std::string> a = {"sample"};
    if (!gives({"-n", "--init"})) a.insert(a.end(), {"-n", "4"});
    if (!gives({"--steps", "--time-grid"})) a.insert(a.end(), {"--steps", "3"});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const std::vector<std::string> sample_out = {"--out", "{dir}/out.npy"};
  const auto join = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const auto fm_env = std::map<std::string, std::string>{{"SCORESDE_FASHION_MNIST_DIR", "{dir}/fm"}};
  const std::string labels4 = idx({4}, 4), images4 = idx({4, 2, 2}, 16);
  const char* study_small[] = {"--sde", "vp", "--sampler", "ddim", "--steps", "2", "--seeds", "1", "-n", "8"};
  const std::vector<std::string> study(std::begin(study_small), std::end(study_small));

  return {
      // ------------------------------------------------------------------------------------ sample: options
      {"sample: --steps 0", {}, sample(join({"--steps", "0"}, sample_out)), 2, {"--steps = 0", ">= 1"}},
      {"sample: --steps -1", {}, sample(join({"--steps", "-1"}, sample_out)), 2, {"--steps = -1", ">= 1"}},
      {"sample: --steps abc", {}, sample(join({"--steps", "abc"}, sample_out)), 2, {"--steps = abc", "integer"}},
      {"sample: --steps 1e9999 (out of range)",
       {},
       sample(join({"--steps", "99999999999"}, sample_out)),
       2,
       {"--steps = 99999999999", "integer in ["}},
      {"sample: --eta -0.5 with ddim",
       {},
       sample(join({"--sampler", "ddim", "--eta", "-0.5"}, sample_out)),
       2,
       {"--eta = -0.5", "must be in [0, 1]"}},
      {"sample: --rtol 0 with dopri5",
       {},
       sample(join({"--sampler", "ode", "--ode-method", "dopri5", "--rtol", "0"}, sample_out)),
       2,
       {"--rtol = 0", "> 0"}},
      {"sample: --rtol -1e-3 with dopri5",
       {},
       sample(join({"--sampler", "ode", "--ode-method", "dopri5", "--rtol", "-1e-3"}, sample_out)),
       2,
       {"--rtol = -1e-3", "> 0"}},
      {"sample: --rtol nan",
       {},
       sample(join({"--sampler", "ode", "--ode-method", "dopri5", "--rtol", "nan"}, sample_out)),
       2,
       {"--rtol = nan", "> 0"}},
      {"sample: --eps inf", {}, sample(join({"--eps", "inf"}, sample_out)), 2, {"--eps = inf", "(0, T)"}},
      {"sample: unknown --sampler",
       {},
       sample(join({"--sampler", "heun9"}, sample_out)),
       2,
       {"--sampler = heun9", "euler_maruyama"}},
      {"sample: unknown --sde", {}, sample(join({"--sde", "cubic"}, sample_out)), 2, {"--sde = cubic", "subvp"}},
      {"sample: unknown --data name",
       {},
       sample(join({"--data", "three_gaussians"}, sample_out)),
       2,
       {"--data = three_gaussians", "eight_gaussians"}},
      {"sample: -n 0", {}, sample(join({"-n", "0"}, sample_out)), 2, {"-n/--samples = 0", ">= 1"}},
      {"sample: --seed -1", {}, sample(join({"--seed", "-1"}, sample_out)), 2, {"--seed = -1", "integer in [0,"}},
      {"sample: --threads 0", {}, sample(join({"--threads", "0"}, sample_out)), 2, {"--threads = 0", ">= 1"}},
      {"sample: --out missing", {}, sample({}), 2, {"--out", "required"}},
      // ------------------------------------------------------------------------------------ sample: --init
      {"sample: --init holding NaN",
       {{"init.npy", npy(with_value(points(4, 2), nan))}},
       sample(join({"--init", "{dir}/init.npy"}, sample_out)),
       2,
       {"--init", "init.npy", "non-finite"}},
      {"sample: --init holding Inf",
       {{"init.npy", npy(with_value(points(4, 2), inf))}},
       sample(join({"--init", "{dir}/init.npy"}, sample_out)),
       2,
       {"--init", "init.npy", "non-finite"}},
      {"sample: --init of dimension 3 for 2-D data",
       {{"init.npy", p3}},
       sample(join({"--init", "{dir}/init.npy"}, sample_out)),
       2,
       {"--init = {dir}/init.npy", "dimension 3", "2-dimensional"}},
      {"sample: --init of dimension 3 for a 2-D --model",
       {{"init.npy", p3}},
       {"sample", "--model", "{fix}/model.ckpt", "--steps", "3", "--init", "{dir}/init.npy", "--out", ok_out},
       2,
       {"--init = {dir}/init.npy", "dimension 3", "--model {fix}/model.ckpt is 2-dimensional"}},
      {"sample: --init an empty file",
       {{"init.npy", ""}},
       sample(join({"--init", "{dir}/init.npy"}, sample_out)),
       2,
       {"--init", "init.npy", "empty"}},
      {"sample: --init a directory",
       {{"init.npy", directory_marker}},
       sample(join({"--init", "{dir}/init.npy"}, sample_out)),
       2,
       {"--init", "init.npy", "directory"}},
      {"sample: -n disagreeing with --init",
       {{"init.npy", p2}},
       sample(join({"-n", "7", "--init", "{dir}/init.npy"}, sample_out)),
       2,
       {"-n = 7", "50 samples"}},
      // ------------------------------------------------------------------------------------ sample: outputs
      {"sample: --out under a regular file",
       {{"regular", "x"}},
       sample({"--out", "{dir}/regular/out.npy"}),
       2,
       {"--out = {dir}/regular/out.npy", "not a directory"}},
      {"sample: --out a directory",
       {{"out.npy", directory_marker}},
       sample(sample_out),
       2,
       {"--out = {dir}/out.npy", "is a directory"}},
      {"sample: --out a FIFO",
       {{"out.npy", fifo_marker}},
       sample(sample_out),
       2,
       {"--out = {dir}/out.npy", "not a regular file"}},
      {"sample: a full disk",
       {},
       {"sample", "-n", "1000", "--steps", "2", "--out", ok_out},
       2,
       {"out.npy", "cannot write", "File too large"},
       Runner::full_disk,
       8192},
      {"sample: OUT.json a directory",
       {{"out.npy.json", directory_marker}},
       sample(sample_out),
       2,
       {"{dir}/out.npy.json", "directory"}},
      {"sample: a diverging sampler",
       {},
       sample(join({"--sampler", "pc", "--corrector", "langevin", "--snr", "1e100"}, sample_out)),
       3,
       {"diverged", "t = ", "nothing was written"}},
      // ------------------------------------------------------------------------------------ mixture JSON
      {"mixture JSON: empty",
       {{"mix.json", ""}},
       sample(join({"--data", "{dir}/mix.json"}, sample_out)),
       2,
       {"{dir}/mix.json", "empty"}},
      {"mixture JSON: a directory",
       {{"mix.json", directory_marker}},
       sample(join({"--data", "{dir}/mix.json"}, sample_out)),
       2,
       {"{dir}/mix.json", "directory"}},
      {"mixture JSON: a mean beyond a double (1e999)",
       {{"mix.json", R"({"weights": [1], "means": [[0, 1e999]], "stds": [1]})"}},
       sample(join({"--data", "{dir}/mix.json"}, sample_out)),
       2,
       {"{dir}/mix.json", "not valid JSON", "1e999"}},
      {"mixture JSON: a NaN written as a string",
       {{"mix.json", R"({"weights": [1], "means": [[0, "NaN"]], "stds": [1]})"}},
       sample(join({"--data", "{dir}/mix.json"}, sample_out)),
       2,
       {"{dir}/mix.json", "means"}},
      {"mixture JSON: negative weight",
       {{"mix.json", R"({"weights": [-1, 2], "means": [[0, 0], [1, 1]], "stds": [1, 1]})"}},
       sample(join({"--data", "{dir}/mix.json"}, sample_out)),
       2,
       {"{dir}/mix.json", "\"weights[0]\"", "must be > 0"}},
      {"mixture JSON: 2-D data with --dim 3",
       {{"mix.json", mixture_2d}},
       sample(join({"--data", "{dir}/mix.json", "--dim", "3"}, sample_out)),
       2,
       {"--dim = 3", "2-dimensional"}},
      // ------------------------------------------------------------------------------------ eigen-mixture
      {"eigen-mixture: the arrays file missing",
       {{"eig.json", eig_header}},
       sample(join({"--data", "{dir}/eig.json"}, sample_out)),
       2,
       {"{dir}/eig.json", "eig.npy", "cannot be opened"}},
      {"eigen-mixture: the arrays truncated",
       {{"eig.json", eig_header}, {"eig.npy", eig_arrays.substr(0, eig_arrays.size() - 8)}},
       sample(join({"--data", "{dir}/eig.json"}, sample_out)),
       2,
       {"{dir}/eig.npy", "truncated"}},
      {"eigen-mixture: the arrays empty",
       {{"eig.json", eig_header}, {"eig.npy", ""}},
       sample(join({"--data", "{dir}/eig.json"}, sample_out)),
       2,
       {"{dir}/eig.npy", "not an .npy file"}},
      {"eigen-mixture: the arrays changed",
       {{"eig.json", eig_header}, {"eig.npy", eig_arrays_changed}},
       sample(join({"--data", "{dir}/eig.json"}, sample_out)),
       2,
       {"{dir}/eig.npy", "SHA-256"}},
      {"eigen-mixture: header dim 0",
       {{"eig.json", eig_dim0}, {"eig.npy", eig_arrays}},
       sample(join({"--data", "{dir}/eig.json"}, sample_out)),
       2,
       {"{dir}/eig.json", "\"dim\"", "positive integer"}},
      {"eigen-mixture: the arrays a directory",
       {{"eig.json", eig_header}, {"eig.npy", directory_marker}},
       sample(join({"--data", "{dir}/eig.json"}, sample_out)),
       2,
       {"eig.npy", "directory"}},
      // ------------------------------------------------------------------------------------ checkpoints, .npz
      {"checkpoint: empty",
       {{"m.ckpt", ""}},
       sample({"--model", "{dir}/m.ckpt", "--out", ok_out}),
       2,
       {"--model", "{dir}/m.ckpt", "not a scoresde checkpoint"}},
      {"checkpoint: truncated",
       {{"m.ckpt", ckpt.substr(0, ckpt.size() / 2)}},
       sample({"--model", "{dir}/m.ckpt", "--out", ok_out}),
       2,
       {"--model", "{dir}/m.ckpt", "truncated"}},
      {"checkpoint: a byte changed",
       {{"m.ckpt", ckpt_flipped}},
       sample({"--model", "{dir}/m.ckpt", "--out", ok_out}),
       2,
       {"--model", "{dir}/m.ckpt", "checksum"}},
      {"checkpoint: a directory",
       {{"m.ckpt", directory_marker}},
       sample({"--model", "{dir}/m.ckpt", "--out", ok_out}),
       2,
       {"--model", "{dir}/m.ckpt", "directory"}},
      {"checkpoint: --weights other",
       {},
       sample({"--model", "{fix}/model.ckpt", "--weights", "best", "--out", ok_out}),
       2,
       {"--weights = best", "ema or raw"}},
      {"checkpoint: --dim 3 against a 2-D model",
       {},
       sample({"--model", "{fix}/model.ckpt", "--dim", "3", "--out", ok_out}),
       2,
       {"--dim = 3", "2-dimensional"}},
      {"npz: not a zip archive",
       {{"w.npz", "not a zip"}},
       sample({"--model", "{dir}/w.npz", "--out", ok_out}),
       2,
       {"--model", "{dir}/w.npz", "not an .npz (zip) archive"}},
      {"npz: empty",
       {{"w.npz", ""}},
       sample({"--model", "{dir}/w.npz", "--out", ok_out}),
       2,
       {"--model", "{dir}/w.npz", "not an .npz (zip) archive"}},
      // ------------------------------------------------------------------------------------ time-grid files
      {"time grid: empty",
       {{"grid.txt", ""}},
       sample(join({"--time-grid", "{dir}/grid.txt"}, sample_out)),
       2,
       {"--time-grid", "{dir}/grid.txt", "holds no times"}},
      {"time grid: NaN",
       {{"grid.txt", "1\nnan\n0.001\n"}},
       sample(join({"--time-grid", "{dir}/grid.txt"}, sample_out)),
       2,
       {"--time-grid", "{dir}/grid.txt", "t_1"}},
      {"time grid: not decreasing",
       {{"grid.txt", "1 0.5 0.7 0.001"}},
       sample(join({"--time-grid", "{dir}/grid.txt"}, sample_out)),
       2,
       {"--time-grid", "{dir}/grid.txt", "strictly decreasing"}},
      {"time grid: a directory",
       {{"grid.txt", directory_marker}},
       sample(join({"--time-grid", "{dir}/grid.txt"}, sample_out)),
       2,
       {"{dir}/grid.txt", "is a directory"}},
      {"time grid: a word",
       {{"grid.txt", "1 half 0.001"}},
       sample(join({"--time-grid", "{dir}/grid.txt"}, sample_out)),
       2,
       {"{dir}/grid.txt", "line 1", "\"half\" is not a number"}},
      // ------------------------------------------------------------------------------------ --config (INI)
      {"config: a directory",
       {{"run.ini", directory_marker}},
       sample(join({"--config", "{dir}/run.ini"}, sample_out)),
       2,
       {"--config = {dir}/run.ini", "directory"}},
      {"config: an unknown key",
       {{"run.ini", "stepz = 4\n"}},
       sample(join({"--config", "{dir}/run.ini"}, sample_out)),
       2,
       {"{dir}/run.ini", "unknown key \"stepz\""}},
      // ------------------------------------------------------------------------------------ evaluate
      {"evaluate: --samples holding NaN",
       {{"x.npy", npy(with_value(points(50, 2), nan))}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--out", "{dir}/m.json"},
       2,
       {"--samples", "x.npy", "non-finite"}},
      {"evaluate: --samples empty",
       {{"x.npy", ""}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--out", "{dir}/m.json"},
       2,
       {"--samples", "x.npy", "empty"}},
      {"evaluate: --samples a directory",
       {{"x.npy", directory_marker}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--out", "{dir}/m.json"},
       2,
       {"--samples", "x.npy", "directory"}},
      {"evaluate: 2-D samples against 3-D points",
       {{"x.npy", p2}, {"ref.npy", p3}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "{dir}/ref.npy", "--out", "{dir}/m.json"},
       2,
       {"--reference = {dir}/ref.npy", "dimension 3", "2-dimensional"}},
      {"evaluate: an npy of zero points",
       {{"x.npy", npy({})}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--out", "{dir}/m.json"},
       2,
       {"--samples", "x.npy", "empty"}},
      {"evaluate: --reference-n 2",
       {{"x.npy", p2}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--reference-n", "2", "--out",
        "{dir}/m.json"},
       2,
       {"--reference-n = 2", "[4,"}},
      {"evaluate: --projections 0",
       {{"x.npy", p2}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--projections", "0", "--out",
        "{dir}/m.json"},
       2,
       {"--projections = 0", "must be in [1, "}},
      {"evaluate: an unknown metric",
       {{"x.npy", p2}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--metrics", "fid", "--out",
        "{dir}/m.json"},
       2,
       {"--metrics = fid", "sliced_w2"}},
      {"evaluate: --out under a regular file",
       {{"x.npy", p2}, {"regular", "x"}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--out", "{dir}/regular/m.json"},
       2,
       {"--out = {dir}/regular/m.json", "not a directory"}},
      {"evaluate: a full disk",
       {{"x.npy", p2}},
       {"evaluate", "--samples", "{dir}/x.npy", "--reference", "eight_gaussians", "--metrics", "sliced_w2",
        "--reference-n", "100", "--out", "{dir}/m.json"},
       2,
       {"m.json", "cannot write"},
       Runner::full_disk,
       1024},  // m.json is about 1.6 kB; below 1 kB, clang's OpenMP runtime (libomp) cannot size its start-up segment
      // ------------------------------------------------------------------------------------ likelihood
      {"likelihood: --points holding Inf",
       {{"p.npy", npy(with_value(points(5, 2), -inf))}},
       {"likelihood", "--points", "{dir}/p.npy", "--data", "eight_gaussians", "--out", "{dir}/l.npy"},
       2,
       {"--points", "p.npy", "non-finite"}},
      {"likelihood: a point so far out that the flow overflows",
       {{"p.npy", npy(with_value(points(5, 2), 1e200))}},
       {"likelihood", "--points", "{dir}/p.npy", "--data", "eight_gaussians", "--out", "{dir}/l.npy"},
       3,
       {"the probability-flow solve failed", "non-finite for point", "t = ", "nothing was written"}},
      {"likelihood: 3-D points for 2-D data",
       {{"p.npy", p3}},
       {"likelihood", "--points", "{dir}/p.npy", "--data", "eight_gaussians", "--out", "{dir}/l.npy"},
       2,
       {"--points = {dir}/p.npy", "dimension 3", "2-dimensional"}},
      {"likelihood: 3-D points for a 2-D --model",
       {{"p.npy", p3}},
       {"likelihood", "--points", "{dir}/p.npy", "--model", "{fix}/model.ckpt", "--out", "{dir}/l.npy"},
       2,
       {"--points = {dir}/p.npy", "dimension 3", "2-dimensional"}},
      {"likelihood: --rtol 0",
       {},
       {"likelihood", "--points", "eight_gaussians", "-n", "4", "--rtol", "0", "--out", "{dir}/l.npy"},
       2,
       {"--rtol = 0", "> 0"}},
      {"likelihood: --terminal other",
       {},
       {"likelihood", "--points", "eight_gaussians", "-n", "4", "--terminal", "uniform", "--out", "{dir}/l.npy"},
       2,
       {"--terminal = uniform", "prior or exact"}},
      {"likelihood: a full disk",
       {},
       {"likelihood", "--points", "eight_gaussians", "-n", "2000", "--rtol", "1e-3", "--atol", "1e-3", "--out",
        "{dir}/l.npy"},
       2,
       {"l.npy", "cannot write"},
       Runner::full_disk,
       8192},
      // ------------------------------------------------------------------------------------ train, CSV
      {"train: --iterations -1",
       {},
       {"train", "--iterations", "-1", "--out", "{dir}/m.ckpt"},
       2,
       {"--iterations = -1", "must be in [0, "}},
      {"train: --lr -1", {}, {"train", "--lr", "-1", "--out", "{dir}/m.ckpt"}, 2, {"--lr = -1", "> 0"}},
      {"train: --width abc", {}, {"train", "--width", "abc", "--out", "{dir}/m.ckpt"}, 2, {"--width = abc", "integer"}},
      {"train: unknown --sde", {}, {"train", "--sde", "cubic", "--out", "{dir}/m.ckpt"}, 2, {"--sde = cubic", "vp"}},
      {"CSV: a word among the numbers",
       {{"d.csv", "1,2\n3,abc\n"}},
       {"train", "--data", "{dir}/d.csv", "--out", "{dir}/m.ckpt"},
       2,
       {"{dir}/d.csv", "line 2", "'abc' is not a number"}},
      {"CSV: Inf",
       {{"d.csv", "1,2\n3,inf\n"}},
       {"train", "--data", "{dir}/d.csv", "--out", "{dir}/m.ckpt"},
       2,
       {"{dir}/d.csv", "non-finite"}},
      {"CSV: rows of different lengths",
       {{"d.csv", "1,2\n3,4,5\n"}},
       {"train", "--data", "{dir}/d.csv", "--out", "{dir}/m.ckpt"},
       2,
       {"{dir}/d.csv", "3 columns, expected 2"}},
      {"CSV: empty",
       {{"d.csv", ""}},
       {"train", "--data", "{dir}/d.csv", "--out", "{dir}/m.ckpt"},
       2,
       {"{dir}/d.csv", "no data rows"}},
      {"CSV: a directory",
       {{"d.csv", directory_marker}},
       {"train", "--data", "{dir}/d.csv", "--out", "{dir}/m.ckpt"},
       2,
       {"{dir}/d.csv", "directory"}},
      {"train: an npy holding NaN",
       {{"d.npy", npy(with_value(points(50, 2), nan))}},
       {"train", "--data", "{dir}/d.npy", "--out", "{dir}/m.ckpt"},
       2,
       {"{dir}/d.npy", "non-finite"}},
      {"train: --dim 3 against 2-D CSV data",
       {{"d.csv", "1,2\n3,4\n5,6\n"}},
       {"train", "--data", "{dir}/d.csv", "--dim", "3", "--out", "{dir}/m.ckpt"},
       2,
       {"--dim = 3", "2"}},
      {"train: a full disk",
       {},
       {"train", "--quiet", "--width", "16", "--depth", "2", "--data-samples", "200", "--batch-size", "32",
        "--iterations", "3", "--out", "{dir}/m.ckpt"},
       2,
       {"m.ckpt", "cannot write"},
       Runner::full_disk,
       4096},
      // ------------------------------------------------------------------------------------ IDX (fashion_mnist)
      {"IDX: the images empty",
       {{"fm", directory_marker}, {"fm/train-images-idx3-ubyte.gz", ""}, {"fm/train-labels-idx1-ubyte.gz", labels4}},
       {"fit-mixture", "--components", "2", "--out", "{dir}/fm.json"},
       2,
       {"{dir}/fm/train-images-idx3-ubyte.gz", "not an IDX file"},
       Runner::in_process,
       0,
       fm_env},
      {"IDX: the images truncated",
       {{"fm", directory_marker},
        {"fm/train-images-idx3-ubyte.gz", idx({4, 2, 2}, 10)},
        {"fm/train-labels-idx1-ubyte.gz", labels4}},
       {"fit-mixture", "--components", "2", "--out", "{dir}/fm.json"},
       2,
       {"{dir}/fm/train-images-idx3-ubyte.gz", "truncated"},
       Runner::in_process,
       0,
       fm_env},
      {"IDX: labels of rank 3",
       {{"fm", directory_marker},
        {"fm/train-images-idx3-ubyte.gz", images4},
        {"fm/train-labels-idx1-ubyte.gz", images4}},
       {"fit-mixture", "--components", "2", "--out", "{dir}/fm.json"},
       2,
       {"{dir}/fm/train-labels-idx1-ubyte.gz", "rank 3", "expected rank 1"},
       Runner::in_process,
       0,
       fm_env},
      {"IDX: fewer labels than images",
       {{"fm", directory_marker},
        {"fm/train-images-idx3-ubyte.gz", images4},
        {"fm/train-labels-idx1-ubyte.gz", idx({3}, 3)}},
       {"fit-mixture", "--components", "2", "--out", "{dir}/fm.json"},
       2,
       {"{dir}/fm/train-labels-idx1-ubyte.gz", "3 labels for the 4 images"},
       Runner::in_process,
       0,
       fm_env},
      {"IDX: the images a directory",
       {{"fm", directory_marker},
        {"fm/train-images-idx3-ubyte.gz", directory_marker},
        {"fm/train-labels-idx1-ubyte.gz", labels4}},
       {"train", "--data", "fashion_mnist", "--iterations", "1", "--out", "{dir}/m.ckpt"},
       2,
       {"{dir}/fm/train-images-idx3-ubyte.gz", "directory"},
       Runner::in_process,
       0,
       fm_env},
      // A study asks only the data's dimension while it validates (fashion_mnist_dimension), with the same errors.
      {"IDX: study, the data set missing",
       {},
       join({"study", "--data", "fashion_mnist", "--out", "{dir}/st"}, study),
       2,
       {"{dir}/fm/train-images-idx3-ubyte.gz", "is missing", "dataset-fashion-mnist"},
       Runner::in_process,
       0,
       fm_env},
      {"IDX: study, a class with no image",
       {{"fm", directory_marker},
        {"fm/train-images-idx3-ubyte.gz", images4},
        {"fm/train-labels-idx1-ubyte.gz", labels4}},
       join({"study", "--data", "fashion_mnist:class=3", "--out", "{dir}/st"}, study),
       2,
       {"no image of class 3", "{dir}/fm/train-labels-idx1-ubyte.gz"},
       Runner::in_process,
       0,
       fm_env},
      {"IDX: study, --dim not the images' size",
       {{"fm", directory_marker},
        {"fm/train-images-idx3-ubyte.gz", images4},
        {"fm/train-labels-idx1-ubyte.gz", labels4}},
       join({"study", "--data", "fashion_mnist", "--dim", "3", "--out", "{dir}/st"}, study),
       2,
       {"--dim = 3", "fashion_mnist is 4-dimensional"},
       Runner::in_process,
       0,
       fm_env},
      // ------------------------------------------------------------------------------------ fit-mixture
      {"fit-mixture: --out not .json",
       {},
       {"fit-mixture", "--out", "{dir}/fm.npy"},
       2,
       {"--out = {dir}/fm.npy", "must end in .json"}},
      {"fit-mixture: --components 0",
       {},
       {"fit-mixture", "--components", "0", "--out", "{dir}/fm.json"},
       2,
       {"--components = 0", "1"}},
      {"fit-mixture: --regularization 2",
       {},
       {"fit-mixture", "--regularization", "2", "--out", "{dir}/fm.json"},
       2,
       {"--regularization = 2", "1"}},
      {"fit-mixture: --data a class",
       {},
       {"fit-mixture", "--data", "fashion_mnist:class=3", "--out", "{dir}/fm.json"},
       2,
       {"--data = fashion_mnist:class=3", "whole split"}},
      // ------------------------------------------------------------------------------------ study, study.ini,
      // results.json
      {"study: --steps 0", {}, join({"study", "--steps", "0", "--out", "{dir}/st"}, {}), 2, {"--steps", "0", ">= 1"}},
      {"study: unknown --sampler",
       {},
       {"study", "--sampler", "ddim,heun9", "--out", "{dir}/st"},
       2,
       {"heun9", "euler_maruyama"}},
      {"study: --seeds 0", {}, {"study", "--seeds", "0", "--out", "{dir}/st"}, 2, {"--seeds = 0", ">= 1"}},
      {"study: unknown --preset",
       {},
       {"study", "--preset", "huge", "--out", "{dir}/st"},
       2,
       {"--preset = huge", "fashion-mnist"}},
      {"study: --preset gaussian with --steps 0",
       {},
       {"study", "--preset", "gaussian", "--steps", "0", "--out", "{dir}/st"},
       2,
       {"--steps", ">= 1"}},
      {"study.ini: a value that is not a number",
       {{"study.ini", "sampler = ddim\nseeds = many\n"}},
       {"study", "--config", "{dir}/study.ini", "--out", "{dir}/st"},
       2,
       {"{dir}/study.ini", "key \"seeds\" = many", "integer"}},
      {"study.ini: an unknown key",
       {{"study.ini", "sampler = ddim\nsolver = fast\n"}},
       {"study", "--config", "{dir}/study.ini", "--out", "{dir}/st"},
       2,
       {"{dir}/study.ini", "unknown key \"solver\""}},
      // Boost.Program_options fills %placeholders% in its messages until none is left: a value holding its own
      // placeholder looped for ever (fuzz_study_ini) until program_options_message.
      {"study.ini: a line holding Boost's placeholder",
       {{"study.ini", "x %invalid_line%\n"}},
       {"study", "--config", "{dir}/study.ini", "--out", "{dir}/st"},
       2,
       {"{dir}/study.ini", "invalid line 'x %invalid_line%'"}},
      {"sample: an unknown option holding Boost's placeholder",
       {},
       {"sample", "--%canonical_option%", "--out", "{dir}/out.npy"},
       2,
       {"unrecognised option '--%canonical_option%'"}},
      {"study.ini: a directory",
       {{"study.ini", directory_marker}},
       {"study", "--config", "{dir}/study.ini", "--out", "{dir}/st"},
       2,
       {"{dir}/study.ini", "directory"}},
      {"results.json: not JSON on --resume",
       {{"st", directory_marker}, {"st/results.json", "{\"rows\": ["}},
       join({"study", "--resume", "--out", "{dir}/st"}, study),
       2,
       {"{dir}/st/results.json", "not a study's results file"}},
      {"results.json: empty on --resume",
       {{"st", directory_marker}, {"st/results.json", ""}},
       join({"study", "--resume", "--out", "{dir}/st"}, study),
       2,
       {"{dir}/st/results.json", "not a study's results file"}},
      {"study: --out under a regular file",
       {{"regular", "x"}},
       join({"study", "--out", "{dir}/regular/st"}, study),
       2,
       {"--out = {dir}/regular/st"}},
      {"study: a full disk",
       {},
       join({"study", "--quiet", "--out", "{dir}/st"}, study),
       2,
       {"{dir}/st", "cannot write"},
       Runner::full_disk,
       2048},
      // ------------------------------------------------------------------------------------ report
      {"report: no results.json",
       {{"st", directory_marker}},
       {"report", "{dir}/st"},
       2,
       {"{dir}/st/results.json", "no such file"}},
      {"report: DIR a regular file", {{"st", "x"}}, {"report", "{dir}/st"}, 2, {"{dir}/st", "not a directory"}},
      {"report: results.json not JSON",
       {{"st", directory_marker}, {"st/results.json", "{\"rows\": ["}},
       {"report", "{dir}/st"},
       2,
       {"{dir}/st/results.json", "not a study's results file"}},
      {"report: an unknown option", {}, {"report", "{dir}", "--pdf"}, 2, {"--pdf", "unknown option"}},
      // ------------------------------------------------------------------------------------ compare
      {"compare: --steps 0", {}, {"compare", "--steps", "0", "-n", "4"}, 2, {"--steps = 0", ">= 1"}},
      {"compare: unknown SDE in --sdes",
       {},
       {"compare", "--sdes", "vp,cubic", "-n", "4", "--steps", "2"},
       2,
       {"cubic", "subvp"}},
      {"compare: -n -1", {}, {"compare", "-n", "-1", "--steps", "2"}, 2, {"-n/--samples = -1", ">= 2"}},
      {"compare: --out under a regular file",
       {{"regular", "x"}},
       {"compare", "-n", "4", "--steps", "2", "--out", "{dir}/regular/c.md"},
       2,
       {"--out = {dir}/regular/c.md", "not a directory"}},
      // ------------------------------------------------------------------------------------ convergence
      {"convergence: --sampler missing", {}, {"convergence", "--out", "{dir}/conv"}, 2, {"--sampler", "required"}},
      {"convergence: --steps with a word",
       {},
       {"convergence", "--sampler", "ddim", "--steps", "10,abc", "--out", "{dir}/conv"},
       2,
       {"--steps = 10,abc", "\"abc\" is not an integer"}},
      {"convergence: --out a regular file",
       {{"conv", "x"}},
       {"convergence", "--sampler", "ddim", "--out", "{dir}/conv"},
       2,
       {"--out = {dir}/conv", "not a directory"}},
      {"convergence: --reference-tol 0",
       {},
       {"convergence", "--sampler", "ddim", "--reference-tol", "0", "--out", "{dir}/conv"},
       2,
       {"--reference-tol = 0", "> 0"}},
      {"convergence: a full disk",
       {},
       {"convergence", "--sampler", "ddim", "--steps", "2,4,8", "-n", "8", "--quiet", "--out", "{dir}/conv"},
       2,
       {"{dir}/conv", "cannot write"},
       Runner::full_disk,
       1024},
      // ------------------------------------------------------------------------------------ evaluate-score
      {"evaluate-score: --model missing", {}, {"evaluate-score"}, 2, {"--model", "required"}},
      {"evaluate-score: --times outside (0, T]",
       {},
       {"evaluate-score", "--model", "{fix}/model.ckpt", "--times", "0.5,2"},
       2,
       {"--times", "2", "(0, "}},
      {"evaluate-score: --model a directory",
       {{"m.ckpt", directory_marker}},
       {"evaluate-score", "--model", "{dir}/m.ckpt"},
       2,
       {"{dir}/m.ckpt", "directory"}},
      {"evaluate-score: 3-D --data for a 2-D model",
       {},
       {"evaluate-score", "--model", "{fix}/model.ckpt", "--data", "gaussian", "--dim", "3"},
       2,
       {"--data = gaussian", "3-dimensional", "2-dimensional"}},
      {"evaluate-score: --json under a regular file",
       {{"regular", "x"}},
       {"evaluate-score", "--model", "{fix}/model.ckpt", "--json", "{dir}/regular/e.json"},
       2,
       {"--json = {dir}/regular/e.json", "not a directory"}},
      // ------------------------------------------------------------------------------------ gaussian-law
      {"gaussian-law: a mixture of 8",
       {},
       {"gaussian-law", "--data", "eight_gaussians", "--out", "{dir}/law.json"},
       2,
       {"--data = eight_gaussians", "single Gaussian"}},
      {"gaussian-law: --steps 0",
       {},
       {"gaussian-law", "--data", "gaussian", "--steps", "0", "--out", "{dir}/law.json"},
       2,
       {"--steps = 0", ">= 1"}},
      {"gaussian-law: --dim -2",
       {},
       {"gaussian-law", "--data", "gaussian", "--dim", "-2", "--out", "{dir}/law.json"},
       2,
       {"--dim = -2"}},
      // ------------------------------------------------------------------------------------ brownian
      {"brownian: --dim 0",
       {},
       {"brownian", "--sampler", "euler_maruyama", "--dim", "0", "--out", "{dir}/w.npy"},
       2,
       {"--dim = 0", ">= 1"}},
      {"brownian: --dim missing",
       {},
       {"brownian", "--sampler", "euler_maruyama", "--out", "{dir}/w.npy"},
       2,
       {"--dim", "required"}},
      {"brownian: an adaptive sampler",
       {},
       {"brownian", "--sampler", "ode", "--ode-method", "dopri5", "--dim", "2", "--out", "{dir}/w.npy"},
       2,
       {"--sampler", "adaptive"}},
      {"brownian: a full disk",
       {},
       {"brownian", "--sampler", "euler_maruyama", "--steps", "2", "-n", "2000", "--dim", "2", "--out", "{dir}/w.npy"},
       2,
       {"w.npy", "cannot write"},
       Runner::full_disk,
       8192},
      // ------------------------------------------------------------------------------------ list, version, commands
      {"list: an argument", {}, {"list", "--all"}, 2, {"list", "takes no options", "--all"}},
      {"version: an argument", {}, {"version", "x"}, 2, {"version", "takes no options"}},
      {"an unknown command", {}, {"sampel"}, 2, {"unknown command 'sampel'", "sample"}},
      {"list: standard output full", {}, {"list"}, 2, {"cannot write to standard output"}, Runner::stdout_full},
  };
}

// Creates the case's files; returns the paths and contents to check afterwards.
void set_up(const TempDir& dir, const BadInputCase& c) {
  for (const auto& f : c.files) {
    const std::string path = dir.file(f.name);
    if (f.content == directory_marker) {
      fs::create_directories(path);
    } else if (f.content == fifo_marker) {
      REQUIRE(::mkfifo(path.c_str(), 0644) == 0);
    } else {
      dir.write(f.name, f.content);
    }
  }
}

void check_unchanged(const TempDir& dir, const BadInputCase& c) {
  for (const auto& f : c.files) {
    const std::string path = dir.file(f.name);
    INFO("set-up file: " << f.name);
    if (f.content == directory_marker)
      CHECK(fs::is_directory(path));
    else if (f.content == fifo_marker)
      CHECK(fs::is_fifo(path));
    else
      CHECK(slurp(path) == f.content);
  }
}

}  // namespace

TEST_CASE("bad input: every case exits 2 (3 when it diverges), names the option or file, and leaves nothing") {
  const auto cases = bad_input_cases();
  CHECK(cases.size() >= 60);
  const Fixtures& f = fixtures();
  for (const auto& c : cases) {
    CAPTURE(c.name);
    TempDir dir("bad-input");
    const auto expand = [&](const std::string& text) {
      return replace_all(replace_all(text, "{dir}", path_of(dir)), "{fix}", path_of(f.dir));
    };
    set_up(dir, c);
    std::vector<std::string> args;
    for (const auto& a : c.args) args.push_back(expand(a));
    CAPTURE(fmt::format("scoresde {}", fmt::join(args, " ")));
    const auto before = dir.entries();
    Result r;
    if (c.runner == Runner::in_process) {
      std::map<std::string, std::optional<std::string>> saved_env;
      for (const auto& [key, value] : c.env) {
        const char* old = std::getenv(key.c_str());
        saved_env[key] = old ? std::optional<std::string>(old) : std::nullopt;
        ::setenv(key.c_str(), expand(value).c_str(), 1);
      }
      r = test::run(args);
      for (const auto& [key, value] : saved_env) {
        if (value)
          ::setenv(key.c_str(), value->c_str(), 1);
        else
          ::unsetenv(key.c_str());
      }
    } else {
      REQUIRE(c.env.empty());
      test::SpawnOptions options;
      if (c.runner == Runner::full_disk) options.file_size_limit = c.disk_bytes;
      if (c.runner == Runner::stdout_full) options.out_file = "/dev/full";
      r = test::run_scoresde(args, options, path_of(f.capture));
    }
    INFO("stderr: " << r.err);
    CHECK(r.code == c.code);
    for (const auto& needle : c.needles) check_contains(r.err, expand(needle));
    CHECK(dir.entries() == before);
    check_unchanged(dir, c);
  }
}
