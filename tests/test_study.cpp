// scoresde study and report: the grid expands as documented, a study rerun from its study.ini reproduces
// every deterministic column, a study interrupted at any run (in-process, and by SIGKILL of the real program)
// and resumed equals the uninterrupted one, diverging runs are recorded, and bad grids name the key.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/study/study.hpp"

using namespace scoresde;
namespace fs = std::filesystem;

namespace {

using scoresde::test::TempDir;

struct Result {
  int status;
  std::string out, err;
};

Result cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int status = run_cli(args, out, err);
  return {status, out.str(), err.str()};
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// The rows without the one column that is not deterministic.
nlohmann::json deterministic_rows(const std::string& dir) {
  auto rows = read_json(dir + "/results.json")["rows"];
  for (auto& r : rows) r.erase("wall_s");
  return rows;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A small grid that still has every kind of run: SDE x (fixed-step, pc, fixed ODE, adaptive ODE) x steps x
// seeds.
std::vector<std::string> small_grid(const std::string& out) {
  return {"study",   "--sde", "vp,ve",  "--sampler", "euler_maruyama,pc,ode",
          "--steps", "5,20",  "--rtol", "1e-3",      "--seeds",
          "2",       "-n",    "300",    "--threads", "2",
          "--quiet", "--out", out};
}

StudySpec small_spec() {
  StudySpec spec;
  spec.blocks.clear();
  spec.sde = {"vp", "ve"};
  spec.axes["sampler"] = {"euler_maruyama", "pc", "ode"};
  spec.set_axis("steps", std::vector<int>{5, 20});
  spec.set_axis("rtol", std::vector<double>{1e-3});
  spec.seeds = 2;
  spec.samples = 300;
  spec.sampler_base.threads = 2;
  return spec;
}

struct Interrupted {};

}  // namespace

TEST_CASE("the default grid: every combination once, ancestral skipped on sub-VP, tolerances for dopri5") {
  StudySpec spec;
  std::vector<std::string> skipped;
  const auto runs = expand_study(spec, &skipped);
  // Per SDE: 4 fixed-step samplers (em, rd, ancestral, pc) + rk4 at 5 step counts, dopri5 at 4 tolerances, and the
  // few-step block: 5 samplers on 2 grids at 4 step counts; 3 seeds.
  CHECK(runs.size() == 3 + 2 * (5 * 5 + 4 + 5 * 2 * 4) * 3);  // and first the exact-samples baseline of each seed
  CHECK(runs[0].exact_samples);
  CHECK(runs[0].id == "exact.s0");
  CHECK(skipped.empty());
  std::set<std::string> ids;
  for (const auto& r : runs) ids.insert(r.id);
  CHECK(ids.size() == runs.size());

  spec.sde = {"subvp"};
  skipped.clear();
  const auto subvp = expand_study(spec, &skipped);
  CHECK(subvp.size() == 3 + (4 * 5 + 4 + 5 * 2 * 4) * 3);
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].find("ancestral") != std::string::npos);

  // pc expands over predictor x corrector x snr; a corrector of none ignores the snr list.
  spec.blocks.clear();
  spec.sde = {"vp"};
  spec.axes["sampler"] = {"pc"};
  spec.axes["predictor"] = {"euler_maruyama", "reverse_diffusion"};
  spec.axes["corrector"] = {"langevin", "none"};
  spec.set_axis("snr", std::vector<double>{0.1, 0.2});
  spec.set_axis("steps", std::vector<int>{10});
  spec.seeds = 1;
  CHECK(expand_study(spec).size() == 1 + 2 * (2 + 1));
}

TEST_CASE("a sampler's own default tolerance beside the study's list of the other is used at every point (ggf)") {
  // ggf declares rtol 0.05 and atol 0.0078. With the default study's atol list (equal to the rtol list by default)
  // and a list of rtol of one's own, atol is ggf's own at every rtol point (fuzz_study_ini: this grid escaped as
  // std::out_of_range).
  StudySpec spec;
  spec.blocks.clear();
  spec.sde = {"vp"};
  spec.seeds = 1;
  spec.axes["sampler"] = {"ggf"};
  spec.set_axis("rtol", std::vector<double>{0.02, 0.002, 0.0002, 2e-05});
  spec.set_axis("atol", std::vector<double>{0.01, 0.001, 0.0001, 1e-05});  // the default study's list
  spec.validate();
  const auto runs = expand_study(spec);
  REQUIRE(runs.size() == 1 + 4);
  for (std::size_t i = 1; i < runs.size(); ++i) {
    CAPTURE(runs[i].id);
    CHECK(runs[i].sampler.atol.value_or(-1) == 0.0078);
  }
  CHECK(runs[1].sampler.rtol.value_or(-1) == 0.02);
  CHECK(runs[4].sampler.rtol.value_or(-1) == 2e-05);
}

TEST_CASE("the time grid is an axis: shown in labels, ids and results.csv only when it is not uniform") {
  StudySpec spec;
  spec.blocks.clear();
  spec.sde = {"vp"};
  spec.seeds = 1;
  // The default grid names no grid: uniform runs keep the ids and labels they had before grids were options.
  for (const auto& r : expand_study(spec)) {
    CHECK(r.id.find("uniform") == std::string::npos);
    CHECK(r.label.find("uniform") == std::string::npos);
    CHECK(r.sampler.time_grid == "uniform");
  }
  spec.axes["sampler"] = {"euler_maruyama", "ode"};
  spec.axes["time-grid"] = {"uniform", "logsnr", "karras"};
  spec.set_axis("rho", std::vector<double>{7, 3});
  spec.set_axis("steps", std::vector<int>{10});
  std::vector<std::string> skipped;
  const auto runs = expand_study(spec, &skipped);
  CHECK(skipped.empty());
  std::set<std::string> labels, ids;
  for (const auto& r : runs) {
    labels.insert(r.label);
    ids.insert(r.id);
  }
  // euler_maruyama and rk4 on uniform, logsnr and karras at rho 7 and 3; dopri5 once (it uses the grid's ends).
  CHECK(labels == std::set<std::string>{"exact samples", "euler_maruyama", "euler_maruyama logsnr",
                                        "euler_maruyama karras", "euler_maruyama karras rho 3.0", "ode rk4",
                                        "ode rk4 logsnr", "ode rk4 karras", "ode rk4 karras rho 3.0", "ode dopri5"});
  CHECK(ids.count("vp.euler_maruyama_karras_rho3.0.n10.s0"));
  CHECK(ids.count("vp.ode_rk4_logsnr.n10.s0"));
  CHECK(ids.count("vp.euler_maruyama.n10.s0"));
  for (const auto& r : runs) {
    if (r.exact_samples) continue;
    const auto row = describe_run(r);
    CAPTURE(r.id);
    if (r.adaptive)
      CHECK(row["time_grid"].is_null());
    else
      CHECK(row["time_grid"] == r.sampler.time_grid);
  }
}

TEST_CASE("a --time-grid file in a study fixes the step count and eps of its runs") {
  TempDir dir;
  const auto grid = dir.write("my grid.txt", "1 0.4 0.1 0.02 0.005\n");
  StudySpec spec;
  spec.blocks.clear();
  spec.sde = {"vp", "ve"};
  spec.seeds = 1;
  spec.axes["sampler"] = {"euler_maruyama"};
  spec.axes["time-grid"] = {"uniform", grid};
  spec.set_axis("steps", std::vector<int>{10, 30});
  const auto runs = expand_study(spec);
  std::set<std::string> ids;
  for (const auto& r : runs) {
    ids.insert(r.id);
    if (r.sampler.time_grid == grid) {
      CHECK(r.sampler.steps == 4);
      CHECK(r.sampler.eps == 0.005);
      CHECK(r.label == "euler_maruyama mygrid");
    }
  }
  CHECK(ids == std::set<std::string>{"exact.s0", "vp.euler_maruyama.n10.s0", "vp.euler_maruyama.n30.s0",
                                     "vp.euler_maruyama_mygrid.n4.s0", "ve.euler_maruyama.n10.s0",
                                     "ve.euler_maruyama.n30.s0", "ve.euler_maruyama_mygrid.n4.s0"});
  // An --eps that disagrees with the file skips its runs, saying why.
  spec.sampler_base.eps = 1e-3;
  std::vector<std::string> skipped;
  CHECK(expand_study(spec, &skipped).size() == 5);
  REQUIRE(skipped.size() == 2);
  CHECK(skipped[0].find("--eps = 0.001: --time-grid " + grid + " ends at t_N = 0.005") != std::string::npos);
  // A study run on the file: results.csv names it, results.json fingerprints it.
  spec.sampler_base.eps.reset();
  spec.sde = {"vp"};
  spec.samples = 200;
  spec.metrics = {"sliced_w2"};
  spec.set_axis("steps", std::vector<int>{10});
  const auto out = dir.file("study");
  run_study(spec, out, false, "test");
  const auto results = read_json(out + "/results.json");
  CHECK(results["inputs"]["time-grid"][0]["path"] == grid);
  std::set<std::string> grids;
  for (const auto& r : results["rows"])
    if (r.contains("time_grid") && !r["time_grid"].is_null()) grids.insert(r["time_grid"].get<std::string>());
  CHECK(grids == std::set<std::string>{"uniform", grid});
  CHECK(read_text(out + "/results.csv").find(",time_grid,") != std::string::npos);
}

TEST_CASE("study: a bad --time-grid value or file names the key or the file, exits 2 and writes nothing") {
  TempDir dir;
  const auto out = dir.file("never");
  const auto bad = dir.write("bad.txt", "1 2\n");
  for (const auto& [value, named] : std::vector<std::pair<std::string, std::string>>{
           {"uniform,cosine", "--time-grid = uniform,cosine: \"cosine\": unknown time grid"},
           {bad, bad + ": t_1 = 2 is outside (0, T]"}}) {
    const auto r = cli({"study", "--time-grid", value, "--steps", "5", "-n", "50", "--seeds", "1", "--out", out});
    CHECK(r.status == 2);
    CHECK_MESSAGE(r.err.find(named) != std::string::npos, r.err);
    CHECK_FALSE(fs::exists(out));
  }
  const auto r = cli({"study", "--rho", "1,0", "--dry-run"});
  CHECK(r.status == 2);
  CHECK(r.err.find("--rho = 1,0: \"0\": must be > 0") != std::string::npos);
}

TEST_CASE("a study writes one row per run, and its study.ini reruns it with the same deterministic columns") {
  TempDir dir;
  const auto first = dir.file("first"), second = dir.file("second");
  const auto r = cli(small_grid(first));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto rows = read_json(first + "/results.json")["rows"];
  // 2 baselines, then per SDE and seed: em, pc and rk4 at 2 step counts, dopri5 at one tolerance.
  CHECK(rows.size() == 2 + 2 * 2 * (3 * 2 + 1));
  const auto csv = read_text(first + "/results.csv");
  CHECK(csv.rfind("run,data,score,sde,sampler,label,predictor,corrector,snr,corrector_steps,ode_method,steps,", 0) ==
        0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == static_cast<long>(rows.size()) + 1);
  for (const auto& row : rows) {
    CHECK(row["status"] == "ok");
    CHECK((row["nfe"].get<double>() > 0) == (row["sampler"] != "exact"));
  }
  const auto context = read_json(first + "/results.json")["context"];
  for (const auto* key : {"date_utc", "host", "version", "git_revision", "compiler", "build_type", "threads"})
    CHECK_MESSAGE(context.contains(key), key);
  CHECK(fs::exists(first + "/samples/vp.euler_maruyama.n5.s0.npy"));
  CHECK_FALSE(fs::exists(first + "/samples/vp.euler_maruyama.n5.s1.npy"));  // first seed only

  // From the file alone, on another thread count: the same rows.
  const auto rerun = cli({"study", "--config", first + "/study.ini", "--threads", "1", "--quiet", "--out", second});
  REQUIRE_MESSAGE(rerun.status == 0, rerun.err);
  CHECK(deterministic_rows(first) == deterministic_rows(second));
}

TEST_CASE("paired by design: a seed fixes the prior draws and the Brownian path for every step count") {
  // With the Brownian tree, the EM run at 20 steps and the one at 5 see the same path: refining steps moves
  // the samples by O(step) at most, far less than the spread between independent draws.
  TempDir dir;
  REQUIRE(cli({"study", "--sde", "vp", "--sampler", "euler_maruyama", "--steps", "200,400", "--seeds", "1", "-n", "200",
               "--quiet", "--out", dir.file("s")})
              .status == 0);
  const Matrix coarse = read_samples_npy(dir.file("s") + "/samples/vp.euler_maruyama.n200.s0.npy");
  const Matrix fine = read_samples_npy(dir.file("s") + "/samples/vp.euler_maruyama.n400.s0.npy");
  const Matrix other = read_samples_npy(dir.file("s") + "/samples/reference.eight_gaussians.s0.npy");
  const double paired = (coarse - fine).colwise().norm().mean();
  const double unpaired = (coarse - other.leftCols(coarse.cols())).colwise().norm().mean();
  CAPTURE(paired);
  CAPTURE(unpaired);
  CHECK(unpaired > 2.0);  // independent draws of eight_gaussians are far apart
  CHECK(paired < 0.1);    // the same prior draw and Brownian path: only the discretisation differs
}

TEST_CASE("a study interrupted after any run and resumed equals the uninterrupted study") {
  TempDir dir;
  const auto spec = small_spec();
  const auto whole = dir.file("whole");
  run_study(spec, whole, false, "test");
  const Index total = static_cast<Index>(expand_study(spec).size());
  for (const Index stop_after : {Index{0}, Index{1}, Index{5}, total - 1}) {
    CAPTURE(stop_after);
    const auto part = dir.file(fmt::format("part{}", stop_after));
    StudyProgress stop;
    stop.starting = [&](const StudyRun&, Index done, Index, double, double) {
      if (done == stop_after) throw Interrupted{};
    };
    CHECK_THROWS_AS(run_study(spec, part, false, "test", stop), Interrupted);
    CHECK(read_json(part + "/results.json")["rows"].size() == static_cast<std::size_t>(stop_after));
    // Without --resume the directory is refused; with it, the study completes.
    CHECK_THROWS_WITH_AS(run_study(spec, part, false, "test"), doctest::Contains("--resume"), ConfigError);
    run_study(spec, part, true, "test");
    CHECK(deterministic_rows(part) == deterministic_rows(whole));
  }
}

TEST_CASE("a study killed with SIGKILL at several moments and resumed loses and duplicates nothing") {
  TempDir dir;
  const auto whole = dir.file("whole");
  REQUIRE(cli(small_grid(whole)).status == 0);
  for (const int delay_ms : {5, 40, 120, 250}) {
    CAPTURE(delay_ms);
    const auto part = dir.file(fmt::format("killed{}", delay_ms));
    const pid_t pid = scoresde::test::spawn_scoresde(small_grid(part));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    // Whatever the moment, the directory is either untouched or a consistent prefix that --resume completes.
    auto resume = small_grid(part);
    if (fs::exists(part + "/results.json")) resume.push_back("--resume");
    const auto r = cli(resume);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(deterministic_rows(part) == deterministic_rows(whole));
  }
}

TEST_CASE("SIGINT or SIGTERM stops a study between runs: exit 128 + signal, a message, a record --resume completes") {
  TempDir dir;
  const auto grid = [](const std::string& out) {
    return std::vector<std::string>{
        "study", "--sde", "vp",        "--sampler", "euler_maruyama", "--steps", "200,400,800,1600", "--seeds", "3",
        "-n",    "2000",  "--metrics", "sliced_w2", "--threads",      "1",       "--quiet",          "--out",   out};
  };
  const auto whole = dir.file("whole");
  REQUIRE(cli(grid(whole)).status == 0);
  const std::size_t total = read_json(whole + "/results.json")["rows"].size();
  for (const int signal : {SIGINT, SIGTERM}) {
    CAPTURE(signal);
    const auto part = dir.file(fmt::format("stopped{}", signal));
    const auto err_file = dir.file(fmt::format("stopped{}.err", signal));
    const pid_t pid = scoresde::test::spawn_scoresde(grid(part), err_file);
    // The signal arrives once the first runs are recorded, while the study is running.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int status = 0;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline && !(exited = waitpid(pid, &status, WNOHANG) == pid) &&
           !(fs::exists(part + "/results.json") && read_json(part + "/results.json")["rows"].size() >= 2))
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (!exited) {
      kill(pid, signal);
      waitpid(pid, &status, 0);
    }
    REQUIRE(fs::exists(part + "/results.json"));
    const std::size_t recorded = read_json(part + "/results.json")["rows"].size();
    if (recorded == total) continue;  // the study finished before the signal: nothing to check
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + signal);
    const auto message = read_text(err_file);
    CHECK_MESSAGE(message.find(signal == SIGINT ? "stopped by SIGINT" : "stopped by SIGTERM") != std::string::npos,
                  message);
    CHECK_MESSAGE(message.find("--resume --out " + part) != std::string::npos, message);
    CHECK(recorded >= 2);
    auto resume = grid(part);
    resume.push_back("--resume");
    const auto r = cli(resume);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(deterministic_rows(part) == deterministic_rows(whole));
  }
}

TEST_CASE("a run that diverges is recorded with where it diverged, and the study goes on") {
  TempDir dir;
  const auto r = cli({"study", "--sde", "ve", "--sampler", "pc", "--snr", "1e200,0.16", "--steps", "10", "--seeds", "1",
                      "-n", "100", "--quiet", "--out", dir.file("d")});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto rows = read_json(dir.file("d") + "/results.json")["rows"];
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["sampler"] == "exact");
  CHECK(rows[1]["status"] == "diverged");
  CHECK(rows[1]["failure"].get<std::string>().find("non-finite at step") != std::string::npos);
  CHECK(rows[2]["status"] == "ok");
  CHECK(r.out.find("1 diverged") != std::string::npos);
}

TEST_CASE("bad grids and files name the key, exit 2, and write nothing") {
  TempDir dir;
  const auto out = dir.file("never");
  const auto bad_ini = dir.file("bad.ini");
  std::ofstream(bad_ini) << "sde = vp\nstepz = 10\n";
  const auto malformed_ini = dir.file("malformed.ini");
  std::ofstream(malformed_ini) << "sde vp\n";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--steps", ""}, "--steps"},
      {{"--steps", "10,x"}, "--steps"},
      {{"--steps", "0"}, "--steps"},
      {{"--sde", "vp,vx"}, "--sde"},
      {{"--sde", ","}, "--sde"},
      {{"--sampler", "em"}, "--sampler"},
      {{"--sampler", "pc", "--corrector", "lang"}, "--corrector"},
      {{"--snr", "-1"}, "--snr"},
      {{"--rtol", "0"}, "--rtol"},
      {{"--rtol", "1e-3,1e-4", "--atol", "1e-3"}, "--atol"},
      // A block's atol meets the grid's rtol list (fuzz_study_ini: "blocks = atol= 04" escaped as std::out_of_range).
      {{"--blocks", "atol=0.4"}, "--blocks, block 1: --atol = 0.4: give one value per --rtol value"},
      {{"--rtol", "1e-3", "--atol", "1e-3", "--blocks", "rtol=1e-3,1e-4"}, "--blocks, block 1: --atol = 0.001"},
      {{"--seeds", "0"}, "--seeds"},
      // 100,001 seeds of one cell: 200,002 runs with the exact-samples baseline, beyond the 100,000 a study may have.
      {{"--sampler", "euler_maruyama", "--steps", "10", "--sde", "vp", "--seeds", "100001"}, "more than 100000 runs"},
      {{"-n", "1"}, "--samples"},
      {{"--score", "model.ckpt"}, "--score"},
      {{"--data", "missing.json"}, "missing.json"},
      {{"--metrics", "bogus"}, "bogus"},
      {{"--noise", "pink"}, "--noise"},
      {{"--config", bad_ini}, "stepz"},
      {{"--config", malformed_ini}, "malformed.ini"},
  };
  for (const auto& entry : cases) {
    const auto& extra = std::get<0>(entry);
    const auto& named = std::get<1>(entry);
    std::vector<std::string> args{"study", "--out", out};
    args.insert(args.end(), extra.begin(), extra.end());
    CAPTURE(fmt::format("{}", fmt::join(extra, " ")));
    const auto r = cli(args);
    CHECK(r.status == 2);
    CHECK_MESSAGE(r.err.find(named) != std::string::npos, r.err);
    CHECK_FALSE(fs::exists(out));
  }
  const auto r = cli({"study", "--sde", "subvp", "--sampler", "ancestral", "--out", out});
  CHECK(r.status == 2);
  CHECK(r.err.find("no runnable combination") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("blocks: the study is the union of its grid and each block, a run named twice runs once") {
  StudySpec spec;
  spec.sde = {"vp"};
  spec.seeds = 1;
  spec.axes["sampler"] = {"euler_maruyama"};
  spec.set_axis("steps", std::vector<int>{10});
  spec.blocks = {{{"sampler", {"ode"}}, {"ode-method", {"rk4"}}, {"time-grid", {"karras", "logsnr"}}, {"steps", {"3"}}},
                 {{"steps", {"10", "20"}}}};
  std::vector<std::string> ids;
  for (const auto& r : expand_study(spec)) ids.push_back(r.id);
  CHECK(ids == std::vector<std::string>{"exact.s0", "vp.euler_maruyama.n10.s0", "vp.ode_rk4_karras.n3.s0",
                                        "vp.ode_rk4_logsnr.n3.s0", "vp.euler_maruyama.n20.s0"});
  // On the command line: a sampler list without --blocks drops the default block; a bad block names --blocks, the
  // key and what is allowed.
  TempDir dir;
  const auto listed = cli({"study", "--sde", "vp", "--sampler", "ode", "--ode-method", "rk4", "--steps", "5", "--seeds",
                           "1", "--dry-run", "--out", dir.file("x")});
  CHECK(listed.status == 0);
  CHECK(listed.out.find("logsnr") == std::string::npos);
  for (const auto& entry :
       std::vector<std::pair<std::string, std::string>>{{"sampler ode", "key=LIST"},
                                                        {"sde=vp", "\"sde\" is not an option a block can set"},
                                                        {"steps=5; steps=6", "names steps twice"},
                                                        {"sampler=bogus", "unknown sampler"},
                                                        {"steps=0", "steps"}}) {
    const auto& blocks = std::get<0>(entry);
    const auto& named = std::get<1>(entry);
    CAPTURE(blocks);
    const auto r = cli({"study", "--blocks", blocks, "--dry-run", "--out", dir.file("y")});
    CHECK(r.status == 2);
    CHECK_MESSAGE(r.err.find("--blocks") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find(named) != std::string::npos, r.err);
  }
}

TEST_CASE("--dry-run lists the runs and writes nothing") {
  TempDir dir;
  auto args = small_grid(dir.file("dry"));
  args.push_back("--dry-run");
  const auto r = cli(args);
  CHECK(r.status == 0);
  CHECK(r.out.find("30 runs") != std::string::npos);
  CHECK(r.out.find("ve.ode_dopri5.tol0.001.s1") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("dry")));
}

TEST_CASE("report: figures and a summary from a study directory; a directory that is not a study is refused") {
  if (!fs::exists("/usr/bin/python3")) return;
  TempDir dir;
  const auto study = dir.file("s");
  REQUIRE(cli(small_grid(study)).status == 0);
  const auto r = cli({"report", study});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto md = read_text(study + "/report.md");
  CHECK(md.find("scoresde report " + study) != std::string::npos);
  CHECK(md.find("Best sampler per NFE budget") != std::string::npos);
  // Euler-Maruyama at 20 steps and RK4 at 5 share NFE 20: compared over the two seeds, paired t-test.
  CHECK(md.find("### Paired differences at equal NFE (sliced_w2)") != std::string::npos);
  CHECK(md.find("| vp | 20 | euler_maruyama (N = 20) |") != std::string::npos);
  CHECK(md.find("### path_error against NFE") != std::string::npos);
  CHECK(fs::exists(study + "/figures/samples_vp.png"));
  CHECK(fs::exists(study + "/figures/samples_ve.png"));
  std::size_t pngs = 0;
  for (const auto& e : fs::directory_iterator(study + "/figures")) pngs += e.path().extension() == ".png";
  CHECK(pngs >= 3);

  const auto missing = cli({"report", dir.file("nothing")});
  CHECK(missing.status == 2);
  CHECK(missing.err.find("results.json") != std::string::npos);
  CHECK(cli({"report", "--bogus"}).status == 2);
}

TEST_CASE("a study with a trained model: its SDE only, samples in the data's units, model_nll for every score") {
  TempDir dir;
  const auto model = dir.file("moons.ckpt");
  const auto trained = cli({"train", "--data", "two_moons", "--sde", "vp", "--iterations", "200", "--width", "32",
                            "--depth", "2", "--data-samples", "2000", "--quiet", "--out", model});
  REQUIRE_MESSAGE(trained.status == 0, trained.err);
  const auto out = dir.file("s");
  const auto r = cli({"study", "--data", "two_moons", "--score", model, "--sde", "vp,ve", "--sampler", "euler_maruyama",
                      "--steps", "20", "--seeds", "1", "-n", "300", "--quiet", "--out", out});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto results = read_json(out + "/results.json");
  const auto rows = results["rows"];
  REQUIRE(rows.size() == 2);  // the baseline and the VP run; VE is skipped: the model was trained under VP
  CHECK(rows[0]["sampler"] == "exact");
  CHECK(rows[1]["sde"] == "vp");
  CHECK(results["skipped"].dump().find("trained under vp") != std::string::npos);
  // two_moons has no closed-form density: sample metrics only; model_nll from the model's probability flow.
  CHECK(rows[1]["nll"].is_null());
  CHECK(rows[1]["sliced_w2"].is_number());
  CHECK(rows[1]["model_nll"].is_number());
  CHECK(rows[1]["model_nll_se"].get<double>() > 0);
  // The samples are in the data's units (two_moons spans about [-3, 3] x [-2, 2]), not standardised ones.
  const Matrix samples = read_samples_npy(out + "/samples/vp.euler_maruyama.n20.s0.npy");
  CHECK(samples.row(0).maxCoeff() - samples.row(0).minCoeff() > 3.0);

  // The exact score needs a closed-form density; a mixture-only metric needs one too.
  auto bad = cli({"study", "--data", "two_moons", "--score", "exact", "--out", dir.file("x")});
  CHECK(bad.status == 2);
  CHECK(bad.err.find("--score = exact") != std::string::npos);
  bad = cli({"study", "--data", "two_moons", "--score", model, "--metrics", "nll", "--out", dir.file("x")});
  CHECK(bad.status == 2);
  CHECK(bad.err.find("--metrics = nll") != std::string::npos);
  bad = cli({"study", "--score", dir.file("missing.ckpt"), "--out", dir.file("x")});
  CHECK(bad.status == 2);
  CHECK(bad.err.find("missing.ckpt") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("x")));
}

TEST_CASE(
    "a block with its own scores and sample count runs beside the grid, and the report sets the scores side "
    "by side") {
  TempDir dir;
  const auto model = dir.file("net.ckpt");
  const auto trained = cli({"train", "--data", "eight_gaussians", "--sde", "vp", "--iterations", "200", "--width", "32",
                            "--depth", "2", "--data-samples", "2000", "--quiet", "--out", model});
  REQUIRE_MESSAGE(trained.status == 0, trained.err);
  const auto out = dir.file("s");
  const std::string blocks = fmt::format("score=exact,{}; samples=200; sampler=ddim; steps=5", model);
  const auto r = cli({"study", "--sde", "vp", "--sampler", "euler_maruyama", "--steps", "10", "--blocks", blocks,
                      "--metrics", "sliced_w2,nll", "--seeds", "1", "-n", "300", "--quiet", "--out", out});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto rows = read_json(out + "/results.json")["rows"];
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& row : rows) by_id[row["run"].get<std::string>()] = row;
  // The grid at -n 300 with the exact score only; the block's cell with both scores at 200 samples, and an
  // exact-samples floor of that size.
  CHECK(by_id.size() == 5);
  for (const auto& entry : std::vector<std::pair<std::string, int>>{{"exact.s0", 300},
                                                                    {"exact.size200.s0", 200},
                                                                    {"exact.vp.euler_maruyama.n10.s0", 300},
                                                                    {"exact.vp.ddim.n5.size200.s0", 200},
                                                                    {"net.vp.ddim.n5.size200.s0", 200}}) {
    const auto& id = std::get<0>(entry);
    const auto& n = std::get<1>(entry);
    CAPTURE(id);
    REQUIRE(by_id.count(id));
    CHECK(by_id[id]["n"] == n);
    CHECK(by_id[id]["status"] == "ok");
  }
  CHECK(by_id["net.vp.ddim.n5.size200.s0"]["score"] == model);
  // The block's samples are its own count: the kept 2-D samples have 200 points.
  CHECK(read_samples_npy(out + "/samples/net.vp.ddim.n5.size200.s0.npy").cols() == 200);
  // study.ini holds the block, and --resume of the same study runs nothing again.
  CHECK(read_text(out + "/study.ini").find("samples=200") != std::string::npos);
  const auto resumed = cli({"study", "--config", out + "/study.ini", "--resume", "--quiet", "--out", out});
  REQUIRE_MESSAGE(resumed.status == 0, resumed.err);
  CHECK(read_json(out + "/results.json")["rows"].size() == 5);
  // A block's sample count is checked like -n.
  const auto bad = cli({"study", "--blocks", "samples=1", "--dry-run", "--out", dir.file("x")});
  CHECK(bad.status == 2);
  CHECK_MESSAGE(bad.err.find("samples") != std::string::npos, bad.err);

  if (!fs::exists("/usr/bin/python3")) return;
  const auto report = cli({"report", out});
  REQUIRE_MESSAGE(report.status == 0, report.err);
  const auto md = read_text(out + "/report.md");
  CHECK(md.find("## Exact and learned scores side by side") != std::string::npos);
  CHECK(md.find("| vp | ddim | 5 | 5/5 |") != std::string::npos);
  CHECK(md.find("with the learned score net.ckpt, 200 samples per run") != std::string::npos);
  CHECK(md.find("with the exact score, 300 samples per run") != std::string::npos);
}

TEST_CASE("model_nll of the exact score is the exact mixture's negative log-likelihood of the held-out points") {
  TempDir dir;
  const auto out = dir.file("s");
  REQUIRE(cli({"study", "--sde", "vp", "--sampler", "euler_maruyama", "--steps", "5", "--seeds", "1", "-n", "500",
               "--metrics", "nll,model_nll", "--quiet", "--out", out})
              .status == 0);
  const auto rows = read_json(out + "/results.json")["rows"];
  REQUIRE(rows.size() == 2);
  // The baseline's nll is -mean log p_0 over 500 exact samples; model_nll is over 500 other exact points (the
  // reference set) through the probability-flow ODE, which reproduces log p_eps up to the prior mismatch (about
  // 2e-4 nats, docs/likelihood.md). Independent sets: they agree within their combined standard error.
  const double a = rows[0]["nll"].get<double>(), sa = rows[0]["nll_se"].get<double>();
  const double b = rows[1]["model_nll"].get<double>(), sb = rows[1]["model_nll_se"].get<double>();
  CHECK(std::abs(a - b) < 4 * std::hypot(sa, sb));
}
