// Output files: an .npy and its .json record are written as a pair (both complete before either appears,
// neither left behind on failure), and every result records the size and SHA-256 of each input file ("inputs").
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"

using namespace scoresde;
using scoresde::test::Result;
using scoresde::test::run;
using scoresde::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_file(path));
}

// FIPS 180-2, appendix B.1: SHA-256("abc").
const char* abc_sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// The fingerprint a result file should hold for `path`.
nlohmann::json expected_fingerprint(const std::string& path) {
  const std::string bytes = read_file(path);
  return {{"path", path}, {"bytes", bytes.size()}, {"sha256", sha256_hex(bytes)}};
}

const char* mixture_json = R"({"weights": [1, 2], "means": [[0, 0], [1, 1]], "stds": [1, 0.5]})";

}  // namespace

TEST_CASE("write_npy_with_json writes the array and PATH.json, and nothing else") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  const Matrix x = Matrix::Constant(2, 3, 1.5);
  write_npy_with_json(
      path, [&](const std::string& tmp) { dump_samples_npy(tmp, x); }, "{\"a\": 1}\n");
  CHECK(dir.entries() == std::set<std::string>{"x.npy", "x.npy.json"});
  CHECK(read_samples_npy(path) == x);
  CHECK(read_file(path + ".json") == "{\"a\": 1}\n");
}

TEST_CASE("write_npy_with_json: the .json is not there while the array is written") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  bool json_seen = true;
  write_npy_with_json(
      path,
      [&](const std::string& tmp) {
        json_seen = fs::exists(path + ".json");
        dump_vector_npy(tmp, Vector::Ones(4));
      },
      "{}\n");
  CHECK_FALSE(json_seen);
  CHECK(fs::exists(path));
  CHECK(fs::exists(path + ".json"));
}

TEST_CASE("write_npy_with_json: when the array cannot be written, neither file remains") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  CHECK_THROWS_AS(write_npy_with_json(
                      path, [](const std::string&) { throw std::runtime_error("disk full"); }, "{}\n"),
                  std::runtime_error);
  CHECK(dir.entries().empty());
}

TEST_CASE("write_npy_with_json: when the .json cannot be written, neither file remains") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  // A directory where the .json should go: its rename fails after the array is complete.
  fs::create_directories(path + ".json/inside");
  CHECK_THROWS(write_npy_with_json(
      path, [&](const std::string& tmp) { dump_samples_npy(tmp, Matrix::Zero(2, 2)); }, "{}\n"));
  CHECK(dir.entries() == std::set<std::string>{"x.npy.json", "x.npy.json/inside"});
}

TEST_CASE("write_npy_with_json: when the array cannot be renamed into place, the .json goes too") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  // A non-empty directory where the array should go: the .json is renamed into place, then the array's rename
  // fails.
  fs::create_directories(path + "/inside");
  CHECK_THROWS(write_npy_with_json(
      path, [&](const std::string& tmp) { dump_samples_npy(tmp, Matrix::Zero(2, 2)); }, "{}\n"));
  CHECK(dir.entries() == std::set<std::string>{"x.npy", "x.npy/inside"});
}

// ---------------------------------------------------------------------------------------------- inputs

TEST_CASE("write_atomically refuses a destination that is a directory or not a regular file, and leaves it as it was") {
  // Renaming the temporary file over a pipe or a device (/dev/full, /dev/null: root may write in /dev) would
  // replace it by a regular file.
  TempDir dir;
  const std::string fifo = dir.file("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  fs::create_directory(dir.file("folder"));
  const auto before = dir.entries();
  CHECK_THROWS_WITH_AS(write_text_atomically(fifo, "x"), doctest::Contains("is not a regular file"), InputError);
  CHECK_THROWS_WITH_AS(write_text_atomically(fifo, "x"), doctest::Contains(fifo.c_str()), InputError);
  CHECK_THROWS_WITH_AS(write_text_atomically(dir.file("folder"), "x"), doctest::Contains("is a directory"), InputError);
  CHECK(fs::is_fifo(fifo));
  CHECK(dir.entries() == before);
  const Result r = run({"sample", "-n", "4", "--steps", "2", "--out", fifo});
  CHECK(r.code == 2);
  scoresde::test::check_contains(r.err, fifo);
  scoresde::test::check_contains(r.err, "not a regular file");
  CHECK(fs::is_fifo(fifo));
  CHECK(dir.entries() == before);
}

TEST_CASE("remove_stale_temporaries: a temporary of a process that has ended goes, a running writer's stays") {
  TempDir dir;
  // A process that has ended: a child that exits at once, waited for.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  REQUIRE(child > 0);
  waitpid(child, nullptr, 0);
  const auto stale = dir.write(fmt::format("results.json.tmp-{}", child), "{\"rows\": [");
  const auto own = dir.write(fmt::format("results.csv.tmp-{}", getpid()), "run,");
  const auto other = dir.write("notes.tmp-draft", "x");
  CHECK(remove_stale_temporaries(dir.file("")) == std::vector<std::string>{fmt::format("results.json.tmp-{}", child)});
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(own));
  CHECK(fs::exists(other));
  CHECK(remove_stale_temporaries(dir.file("missing")).empty());
}

TEST_CASE("sha256_hex: the FIPS 180-2 examples") {
  CHECK(sha256_hex("abc") == abc_sha256);
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("file_fingerprint: path, size and SHA-256 of the content; a missing file is an InputError naming it") {
  TempDir dir;
  const auto path = dir.write("abc.txt", "abc");
  const auto f = file_fingerprint(path);
  CHECK(f["path"] == path);
  CHECK(f["bytes"] == 3);
  CHECK(f["sha256"] == abc_sha256);
  // Larger than one read buffer.
  const std::string big(200000, 'x');
  CHECK(file_fingerprint(dir.write("big.txt", big))["sha256"] == sha256_hex(big));
  CHECK_THROWS_WITH_AS(file_fingerprint(dir.file("missing.npy")), doctest::Contains("missing.npy"), InputError);
}

TEST_CASE("input_files leaves out options that name no file; data_source_file tells built-in data from files") {
  TempDir dir;
  const auto path = dir.write("abc.txt", "abc");
  const auto inputs = input_files({{"model", ""}, {"init", path}});
  CHECK(inputs.size() == 1);
  CHECK(inputs["init"]["sha256"] == abc_sha256);
  CHECK(input_files({}).dump() == "{}");
  for (const auto& name : training_data_names()) CHECK(data_source_file(name).empty());
  CHECK(data_source_file("mix.json") == "mix.json");
  CHECK(data_source_file("points.npy") == "points.npy");
}

TEST_CASE("sample: OUT.npy.json lists --init and a mixture file under inputs, beside options, result, context") {
  TempDir dir;
  const auto data = dir.write("mix.json", mixture_json);
  const auto init = dir.file("init.npy");
  write_samples_npy(init, Matrix::Ones(2, 6));
  const auto out = dir.file("out.npy");
  const Result r = run({"sample", "--data", data, "--init", init, "--steps", "4", "--out", out, "--quiet"});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  const auto meta = read_json(out + ".json");
  for (const char* key : {"command", "options", "inputs", "result", "context"}) CHECK(meta.contains(key));
  CHECK(meta["inputs"].size() == 2);
  CHECK(meta["inputs"]["init"] == expected_fingerprint(init));
  CHECK(meta["inputs"]["data"] == expected_fingerprint(data));

  // A built-in data set is not a file: no entry.
  const Result builtin = run({"sample", "-n", "5", "--steps", "2", "--out", out, "--quiet"});
  REQUIRE(builtin.code == 0);
  CHECK(read_json(out + ".json")["inputs"] == nlohmann::json::object());
}

TEST_CASE("likelihood, evaluate and train list their input files") {
  TempDir dir;
  const auto data = dir.write("mix.json", mixture_json);
  const auto points = dir.file("points.npy");
  Matrix x(2, 8);
  for (Index j = 0; j < x.cols(); ++j) x.col(j) << 0.1 * j, -0.2 * j;
  write_samples_npy(points, x);

  const auto logp = dir.file("logp.npy");
  Result r = run({"likelihood", "--points", points, "--data", data, "--out", logp, "--quiet"});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  auto inputs = read_json(logp + ".json")["inputs"];
  CHECK(inputs.size() == 2);
  CHECK(inputs["points"] == expected_fingerprint(points));
  CHECK(inputs["data"] == expected_fingerprint(data));

  const auto metrics = dir.file("metrics.json");
  r = run(
      {"evaluate", "--samples", points, "--reference", data, "--metrics", "mean_error", "--out", metrics, "--quiet"});
  REQUIRE(r.code == 0);
  inputs = read_json(metrics)["inputs"];
  CHECK(inputs.size() == 2);
  CHECK(inputs["samples"] == expected_fingerprint(points));
  CHECK(inputs["reference"] == expected_fingerprint(data));
  r = run({"evaluate", "--samples", points, "--reference", "eight_gaussians", "--metrics", "mean_error", "--out",
           metrics, "--quiet"});
  REQUIRE(r.code == 0);
  inputs = read_json(metrics)["inputs"];
  CHECK(inputs.size() == 1);
  CHECK(inputs.contains("samples"));

  const auto model = dir.file("m.ckpt");
  r = run({"train", "--data", points, "--iterations", "3", "--batch-size", "4", "--threads", "1", "--quiet", "--out",
           model});
  REQUIRE(r.code == 0);
  const auto training = load_checkpoint(model).training;
  REQUIRE(training.contains("inputs"));
  CHECK(nlohmann::json(training["inputs"]) == nlohmann::json{{"data", expected_fingerprint(points)}});

  const auto samples = dir.file("from_model.npy");
  r = run({"sample", "--model", model, "-n", "4", "--steps", "2", "--out", samples, "--quiet"});
  REQUIRE(r.code == 0);
  CHECK(read_json(samples + ".json")["inputs"] == nlohmann::json{{"model", expected_fingerprint(model)}});
}

TEST_CASE("study: results.json lists the data files and checkpoints beside study and context") {
  TempDir dir;
  const auto data = dir.write("mix.json", mixture_json);
  const auto out = dir.file("st");
  const Result r =
      run({"study", "--data", "eight_gaussians," + data, "--sde", "vp", "--sampler", "euler_maruyama", "--steps", "3",
           "-n", "20", "--seeds", "1", "--metrics", "mean_error", "--quiet", "--out", out});
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  const auto results = read_json(out + "/results.json");
  CHECK(results.contains("study"));
  CHECK(results.contains("context"));
  CHECK(results["inputs"] == nlohmann::json{{"data", nlohmann::json::array({expected_fingerprint(data)})}});
}
