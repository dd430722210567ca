// Kill-and-resume soak: a study killed with SIGKILL at 20 random moments, resumed after each kill in the same
// directory, ends with the rows of an uninterrupted run (wall times aside) and no temporary file of an unfinished
// write. Slow: about twenty program starts and a study run twice.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli_helpers.hpp"

using namespace scoresde;
using scoresde::test::TempDir;
namespace fs = std::filesystem;

namespace {

// The rows of a study without the column that is not deterministic.
nlohmann::json deterministic_rows(const std::string& dir) {
  std::ifstream in(dir + "/results.json");
  auto rows = nlohmann::json::parse(in)["rows"];
  for (auto& r : rows) r.erase("wall_s");
  return rows;
}

std::vector<std::string> soak_grid(const std::string& out) {
  return {"study",     "--sde",      "vp,ve",   "--sampler", "euler_maruyama,ode",
          "--steps",   "50,200,800", "--rtol",  "1e-4",      "--seeds",
          "2",         "-n",         "1000",    "--metrics", "sliced_w2,path_error",
          "--threads", "2",          "--quiet", "--out",     out};
}

}  // namespace

TEST_CASE("a study killed with SIGKILL at 20 random moments and resumed each time equals the uninterrupted study") {
  TempDir dir("soak");
  const auto whole = dir.file("whole");
  const auto started = std::chrono::steady_clock::now();
  const auto uninterrupted = test::run(soak_grid(whole));
  REQUIRE_MESSAGE(uninterrupted.code == 0, uninterrupted.err);
  const double whole_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();

  // Twenty kills at moments uniform in [0, whole / 40] after each start: together at most half the study's time, so
  // every kill lands while the program runs (its start included), at any point of a run or of a record's write.
  std::mt19937 moments(20261207);
  std::uniform_real_distribution<double> delay_ms(0.0, whole_ms / 40);
  const auto part = dir.file("killed");
  int killed = 0;
  for (int kill_number = 0; kill_number < 20; ++kill_number) {
    std::vector<std::string> args = soak_grid(part);
    if (fs::exists(part + "/results.json")) args.push_back("--resume");
    const pid_t pid = test::spawn_scoresde(args);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms(moments)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }
  CHECK(killed == 20);
  auto resume = soak_grid(part);
  if (fs::exists(part + "/results.json")) resume.push_back("--resume");
  const auto finished = test::run(resume);
  REQUIRE_MESSAGE(finished.code == 0, finished.err);
  CHECK(deterministic_rows(part) == deterministic_rows(whole));
  for (const auto* sub : {"", "samples"})
    for (const auto& entry : fs::directory_iterator(fs::path(part) / sub))
      CHECK_MESSAGE(entry.path().filename().string().find(".tmp-") == std::string::npos, entry.path().string());
}
