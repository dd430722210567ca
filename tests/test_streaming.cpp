// Streamed output: `scoresde sample` computes its samples a block of chunks at a time (sample_blocks) and appends
// each block to the .npy as it finishes. The file must be byte for byte the one the in-memory driver gives for any
// block, -n, --chunk and --threads; a failure mid-run must leave nothing behind; and memory must not grow with -n.
#include <doctest/doctest.h>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "models/datasets.hpp"
#include "solvers/driver.hpp"

extern char** environ;

using namespace scoresde;
using scoresde::test::Result;
using scoresde::test::run;
using scoresde::test::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every bit equal (NaN-free data): Eigen's == compares values, and -0.0 == 0.0, so compare the bytes.
bool same_bits(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

}  // namespace

TEST_CASE("NpySamplesWriter writes, block by block, the bytes dump_samples_npy writes for the whole batch") {
  TempDir dir;
  // Shapes whose headers fall on both sides of the 64-byte padding boundary and digit-count changes.
  for (const auto& entry : std::vector<std::pair<Index, Index>>{{1, 1}, {7, 2}, {100, 3}, {12345, 2}, {999, 784}}) {
    const auto& n = std::get<0>(entry);
    const auto& d = std::get<1>(entry);
    CAPTURE(n);
    CAPTURE(d);
    Matrix x(d, n);
    for (Index k = 0; k < x.size(); ++k) x.data()[k] = 0.25 * static_cast<double>(k) - 3.0;
    dump_samples_npy(dir.file("whole.npy"), x);
    {
      NpySamplesWriter writer(dir.file("blocks.npy"), n, d);
      for (Index first = 0; first < n; first += 3) writer.append(x.middleCols(first, std::min<Index>(3, n - first)));
      writer.finish();
    }
    CHECK(read_bytes(dir.file("blocks.npy")) == read_bytes(dir.file("whole.npy")));
  }
  // A strided block (rows of a taller matrix) is written column by column.
  const Matrix tall = Matrix::Random(5, 4);
  dump_samples_npy(dir.file("whole.npy"), Matrix(tall.topRows(2)));
  NpySamplesWriter writer(dir.file("strided.npy"), 4, 2);
  writer.append(tall.topRows(2));
  writer.finish();
  CHECK(read_bytes(dir.file("strided.npy")) == read_bytes(dir.file("whole.npy")));
  // Too few samples is a programming error, not a short file.
  NpySamplesWriter short_writer(dir.file("short.npy"), 4, 2);
  short_writer.append(tall.topLeftCorner(2, 3));
  CHECK_THROWS_AS(short_writer.finish(), std::logic_error);
}

TEST_CASE("sample_blocks hands over, block by block, the bits sample() returns, with the same NFE summary") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  struct Case {
    const char* label;
    SamplerOptions options;
  };
  std::vector<Case> cases;
  SamplerOptions em;
  em.sampler = "euler_maruyama";
  em.steps = 7;
  cases.push_back({"euler_maruyama", em});
  SamplerOptions pc;
  pc.sampler = "pc";
  pc.steps = 5;
  cases.push_back({"pc (langevin, chunk norm)", pc});
  SamplerOptions dopri;
  dopri.sampler = "ode";
  dopri.ode_method = "dopri5";
  cases.push_back({"dopri5 (chunk control)", dopri});
  dopri.ode_control = OdeControl::sample;
  cases.push_back({"dopri5 (sample control)", dopri});
  for (const auto& c : cases) {
    for (const Index chunk : {1, 3, 16}) {
      for (const int threads : {1, 2}) {
        auto o = c.options;
        o.chunk = chunk;
        o.threads = threads;
        const Index n = 37;
        const SampleReport whole = sample(*sde, model, o, n);
        for (const Index block : {1, 5, 16, 100}) {
          CAPTURE(c.label);
          CAPTURE(chunk);
          CAPTURE(threads);
          CAPTURE(block);
          Matrix streamed(2, 0);
          Vector nfe(0);
          Index blocks = 0;
          const SampleReport r = sample_blocks(*sde, model, o, n, block, [&](Index first, Matrix& x, Vector& e) {
            CHECK(first == streamed.cols());
            // Blocks are whole chunks: all but the last hold a multiple of --chunk samples, at least `block`.
            if (first + x.cols() < n) {
              CHECK(x.cols() % chunk == 0);
              CHECK(x.cols() >= block);
            }
            streamed.conservativeResize(2, first + x.cols());
            streamed.rightCols(x.cols()) = x;
            nfe.conservativeResize(first + e.size());
            nfe.tail(e.size()) = e;
            ++blocks;
          });
          CHECK(r.samples.size() == 0);
          CHECK(blocks == (n + (block + chunk - 1) / chunk * chunk - 1) / ((block + chunk - 1) / chunk * chunk));
          CHECK(same_bits(streamed, whole.samples));
          CHECK(nfe == whole.nfe);
          CHECK(r.nfe_mean() == whole.nfe_mean());
          CHECK(r.nfe_max() == whole.nfe_max());
          CHECK(r.nfe_mean() == whole.nfe.mean());
          CHECK(r.nfe_max() == whole.nfe.maxCoeff());
          CHECK(r.score_columns == whole.score_columns);
        }
      }
    }
  }
}

TEST_CASE("sample: the file is the in-memory result byte for byte for any --write-block, -n, --chunk, --threads") {
  TempDir dir;
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  for (const Index n : {1, 20, 61}) {
    for (const Index chunk : {4, 7}) {
      SamplerOptions o;
      o.sampler = "euler_maruyama";
      o.steps = 6;
      o.chunk = chunk;
      dump_samples_npy(dir.file("memory.npy"), sample(*sde, model, o, n).samples);
      const std::string memory = read_bytes(dir.file("memory.npy"));
      for (const int threads : {1, 2}) {
        for (const Index block : {0, 1, 9}) {
          CAPTURE(n);
          CAPTURE(chunk);
          CAPTURE(threads);
          CAPTURE(block);
          const auto out = dir.file("streamed.npy");
          const Result r = run({"sample", "--sampler", "euler_maruyama", "--steps", "6", "-n", std::to_string(n),
                                "--chunk", std::to_string(chunk), "--threads", std::to_string(threads), "--write-block",
                                std::to_string(block), "--quiet", "--out", out});
          REQUIRE_MESSAGE(r.code == 0, r.err);
          CHECK(read_bytes(out) == memory);
          const auto meta = nlohmann::json::parse(read_bytes(out + ".json"));
          CHECK(meta["result"]["nfe"].get<double>() == 6.0);
          CHECK(meta["result"]["nfe_max"].get<double>() == 6.0);
          CHECK(meta["options"]["samples"] == n);
          CHECK(!meta["options"].contains("write-block"));  // it changes no sample, like --quiet
        }
      }
    }
  }
}

TEST_CASE("sample: a sampler that diverges after blocks were written leaves no file, temporary or final") {
  TempDir dir;
  // Sample 45 of 60 starts at 1e300: its first step overflows. With blocks of 8 samples, five blocks are written
  // to the temporary file before the block holding sample 45 fails.
  Matrix init = Matrix::Zero(2, 60);
  init.col(45).setConstant(1e300);
  const auto init_path = dir.file("init.npy");
  write_samples_npy(init_path, init);
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o;
  o.steps = 5;
  o.chunk = 4;
  Index written = 0;
  CHECK_THROWS_AS(sample_blocks(
                      *sde, model, o, 60, 8, [&](Index, Matrix& x, Vector&) { written += x.cols(); }, &init),
                  NumericalError);
  CHECK(written == 40);
  const auto before = dir.entries();
  const Result r = run({"sample", "--init", init_path, "--steps", "5", "--chunk", "4", "--write-block", "8", "--out",
                        dir.file("out.npy")});
  CHECK(r.code == 3);
  scoresde::test::check_contains(r.err, "sample 45");
  scoresde::test::check_contains(r.err, "nothing was written");
  CHECK(dir.entries() == before);
}

TEST_CASE("sample: --write-block -1 is refused naming the option") {
  TempDir dir;
  const Result r = run({"sample", "--write-block", "-1", "-n", "4", "--out", dir.file("out.npy")});
  CHECK(r.code == 2);
  scoresde::test::check_contains(r.err, "--write-block");
  CHECK(dir.entries().empty());
}

// AddressSanitizer's shadow memory and quarantine add hundreds of megabytes of resident memory that the program does
// not hold: the bound below is for the ordinary build. (GCC defines __SANITIZE_ADDRESS__; clang has the feature test.)
#if defined(__SANITIZE_ADDRESS__)
#define SCORESDE_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCORESDE_TEST_UNDER_ASAN 1
#endif
#endif
#ifdef SCORESDE_TEST_UNDER_ASAN
constexpr bool under_address_sanitizer = true;
#else
constexpr bool under_address_sanitizer = false;
#endif

TEST_CASE("sample: peak memory does not grow with -n (4 million samples in a child process, measured by wait4)" *
          doctest::skip(under_address_sanitizer)) {
  // Held in memory, 4e6 two-dimensional samples and their NFEs take 96 MB; streamed, the run holds one block
  // (about 12 MB) beside the program (about 10 MB). The bound sits between the two with room on both sides.
  const char* binary = std::getenv("SCORESDE_BINARY");
  REQUIRE_MESSAGE(binary != nullptr, "SCORESDE_BINARY is set by ctest");
  TempDir dir;
  std::vector<std::string> args = {binary,    "sample", "--steps",          "1", "-n", "4000000", "--threads", "2",
                                   "--quiet", "--out",  dir.file("big.npy")};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, binary, nullptr, nullptr, argv.data(), environ) == 0);
  int status = 0;
  rusage usage{};
  REQUIRE(wait4(pid, &status, 0, &usage) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const long peak_kb = usage.ru_maxrss;  // kilobytes on Linux
  MESSAGE("peak RSS of sample -n 4000000: " << peak_kb << " kB");
  CHECK(peak_kb < 64 * 1024);
  CHECK(std::filesystem::file_size(dir.file("big.npy")) == 128u + 4000000u * 2u * 8u);
}

TEST_CASE("read_samples_npy reads float64 and float32 straight into the batch, and names a truncated file") {
  TempDir dir;
  Matrix x(3, 5);
  for (Index k = 0; k < x.size(); ++k) x.data()[k] = 0.5 * static_cast<double>(k) - 1.0;
  write_samples_npy(dir.file("x.npy"), x);
  CHECK(same_bits(read_samples_npy(dir.file("x.npy")), x));
  const std::string bytes = read_bytes(dir.file("x.npy"));
  std::ofstream(dir.file("short.npy"), std::ios::binary) << bytes.substr(0, bytes.size() - 8);
  CHECK_THROWS_WITH_AS(read_samples_npy(dir.file("short.npy")), doctest::Contains("truncated"), InputError);
  // float32 (the values above are exact in float): the header of a (5, 3) '<f4' array, then the floats.
  std::string f32 = bytes.substr(0, 128);
  f32.replace(f32.find("<f8"), 3, "<f4");
  std::vector<float> values(x.data(), x.data() + x.size());
  f32.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  std::ofstream(dir.file("f32.npy"), std::ios::binary) << f32;
  CHECK(same_bits(read_samples_npy(dir.file("f32.npy")), x));
}

TEST_CASE("sample: a run stopped by SIGTERM or SIGINT while it streams removes its temporary file") {
  // Without the cleanup, an interrupted -n 10^8 run would leave up to 1.6 GB in OUT.npy.tmp-PID. The runs below
  // would take minutes; each is stopped as soon as its temporary file holds data.
  const char* binary = std::getenv("SCORESDE_BINARY");
  REQUIRE_MESSAGE(binary != nullptr, "SCORESDE_BINARY is set by ctest");
  for (const int sig : {SIGTERM, SIGINT}) {
    CAPTURE(sig);
    TempDir dir;
    std::vector<std::string> args = {binary,    "sample", "--steps",          "1", "-n", "200000000",
                                     "--quiet", "--out",  dir.file("big.npy")};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // A shell without job control starts background jobs with SIGINT ignored, and the child would inherit that:
    // the three signals start at their defaults, as in a terminal.
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (const int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, s);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, binary, nullptr, &attributes, argv.data(), environ);
    posix_spawnattr_destroy(&attributes);
    REQUIRE(spawned == 0);
    const std::string tmp = dir.file(fmt::format("big.npy.tmp-{}", pid));
    // Wait (not a timed assertion: there is no time limit but the test's own) for the first block to arrive.
    std::error_code ec;
    int status = 0;
    bool exited = false;
    while (!(std::filesystem::exists(tmp, ec) && std::filesystem::file_size(tmp, ec) > 128)) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      usleep(10000);
    }
    REQUIRE_MESSAGE(!exited, "the run ended before it could be stopped");
    kill(pid, sig);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);
    CHECK(dir.entries().empty());
  }
}
