// scoresde study: runs a grid of sampling runs and records one row per run (experiments/study/study.hpp).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "core/errors.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "experiments/metrics/fd_fmnist.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/study/study.hpp"
#include "models/datasets.hpp"
#include "models/score_factory.hpp"
#include "solvers/gaussian_law.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace {

// clang-format off
const char* study_usage =
    "Usage: scoresde study [grid options] --out DIR [--resume] [--dry-run]\n\n"
    "Runs every combination of data x score x SDE x sampler configuration x steps x replicate seed, scores each\n"
    "run's samples against exact samples of the data (metrics with standard errors), and writes\n"
    "  DIR/results.csv   one row per run (data, sde, sampler, ..., steps, nfe, seed, each metric and its _se, wall_s)\n"
    "  DIR/results.json  the same rows with the build context and the resolved study\n"
    "  DIR/study.ini     the resolved configuration: scoresde study --config DIR/study.ini --out DIR2 reruns it\n"
    "  DIR/samples/      the first seed's samples of every run (2-D data), for `scoresde report DIR`\n"
    "Lists are comma-separated. With no options this is the default study: eight_gaussians with its exact score,\n"
    "VP and VE, five samplers, 10 to 1000 steps, 3 seeds.\n\n"
    "Pairing: replicate seed k fixes the prior samples and, with --noise brownian_tree (the default here), the\n"
    "Brownian path, for every sampler and step count; differences between cells are not differences of draws.\n"
    "A run that diverges is recorded (status diverged, with the sample, step and time) and the study goes on.\n"
    "A killed study continues with the same command and --resume; nothing is lost or run twice.\n\n"
    "Examples:\n"
    "  scoresde study --out runs/default\n"
    "  scoresde study --sde vp --sampler euler_maruyama,pc --steps 10,100,1000 --seeds 5 -n 5000 \\\n"
    "                 --out runs/em_pc\n"
    "  scoresde study --sampler pc --predictor reverse_diffusion,euler_maruyama --snr 0.05,0.1,0.16,0.3 \\\n"
    "                 --steps 100 --out runs/snr\n"
    "  scoresde study --config runs/default/study.ini --out runs/default-rerun\n"
    "  scoresde study --preset gaussian --out runs/gaussian && scoresde report runs/gaussian\n";
// clang-format on

// The data of --preset gaussian: N(m, S) in 10 dimensions with m_i = (i - 4.5) / 4.5 and the full covariance
// S_ij = s_i s_j 0.8^|i - j| (an AR(1) correlation), s_i = 0.25 * 8^(i / 9), i = 0..9: standard deviations from 0.25 to
// 2, condition number about 600. Written as a mixture file with one component (docs/exact-error.md).
std::string gaussian_preset_data() {
  constexpr int d = 10;
  std::string means, rows;
  for (int i = 0; i < d; ++i) {
    means += fmt::format("{}{:.17g}", i ? ", " : "", (i - 4.5) / 4.5);
    std::string row;
    for (int j = 0; j < d; ++j) {
      const double si = 0.25 * std::pow(8.0, i / 9.0), sj = 0.25 * std::pow(8.0, j / 9.0);
      row += fmt::format("{}{:.17g}", j ? ", " : "", si * sj * std::pow(0.8, std::abs(i - j)));
    }
    rows += fmt::format("{}    [{}]", i ? ",\n" : "", row);
  }
  return fmt::format("{{\n  \"weights\": [1],\n  \"means\": [[{}]],\n  \"covariances\": [[\n{}\n  ]]\n}}\n", means,
                     rows);
}

// The samplers to which the exact law applies, from the registry: every predictor alone, and the probability-flow
// ODE with each fixed-step method.
std::pair<std::vector<std::string>, std::vector<std::string>> exact_law_samplers() {
  std::vector<std::string> samplers, ode_methods;
  for (const auto& e : predictor_registry()) {
    SamplerOptions o;
    o.sampler = e.name;
    if (!gaussian_law_not_applicable(o)) samplers.push_back(e.name);
  }
  for (const auto& e : ode_method_registry()) {
    SamplerOptions o;
    o.sampler = ode_sampler;
    o.ode_method = e.name;
    if (!gaussian_law_not_applicable(o)) ode_methods.push_back(e.name);
  }
  if (!ode_methods.empty()) samplers.emplace_back(ode_sampler);
  return {samplers, ode_methods};
}

// SIGINT and SIGTERM while a study runs: the first one is noted and the study stops before its next run (the
// record is written after every run, so the directory is then a resumable prefix); the handlers reset on delivery,
// so a second signal acts as usual (a kill loses at most the run in progress, as SIGKILL does). The previous
// handlers are restored when the study returns.
class StopSignals {
 public:
  StopSignals() {
    received_ = 0;
    struct sigaction action {};
    action.sa_handler = [](int signal) { received_ = signal; };
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, &previous_int_);
    sigaction(SIGTERM, &action, &previous_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // The signal received (SIGINT or SIGTERM), or 0.
  int received() const { return received_; }

 private:
  static inline volatile std::sig_atomic_t received_ = 0;
  struct sigaction previous_int_ {
  }, previous_term_{};
};

}  // namespace

int study_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  // Every grid option is an entry of study_option_table(): the study's own, the SDE parameters, and the sampler's
  // by their study role (lists for axes and budgets).
  StudySpec defaults;
  defaults.sampler_base.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto group = [&](const char* title, const char* name) {
    return option_group<StudySpec>(title, study_option_table(), defaults,
                                   [name](const auto& spec) { return spec.group == name; });
  };
  po::options_description evaluation = group("Evaluation and output", "evaluation");
  // clang-format off
  evaluation.add_options()
      ("preset", po::value<std::string>()->default_value("default"),
       "default (eight_gaussians, exact score, VP and VE), moons (trains DIR/model.ckpt on two_moons unless it "
       "exists, then studies the samplers with that learned score) or gaussian (the exact W2 and KL of every sampler "
       "to which the exact law applies, on the 10-D Gaussian DIR/gaussian10.json, VP and VE, logsnr grid, 4 to 1024 steps; "
       "docs/exact-error.md) or fashion-mnist (six few-step samplers at 5 to 50 steps on the exact score of the "
       "class-conditional Fashion-MNIST mixture DIR/fashion_mnist10.json, fitted first unless it exists; 2000 images "
       "per cell, fd_fmnist, nll, bpd; and a block of three samplers at 10 and 20 steps, 1000 images, with the exact "
       "score and the committed U-Net assets/fashion_mnist/unet.pt side by side; docs/images.md); options given "
       "explicitly win")
      ("out", po::value<std::string>(), "output directory (required)")
      ("resume", po::bool_switch(), "continue the study in --out, skipping the runs it already holds")
      ("dry-run", po::bool_switch(), "list the runs and exit")
      ("quiet", po::bool_switch(), "no per-run lines");
  // clang-format on
  po::options_description visible;
  visible.add(group("Grid (comma-separated lists)", "grid"))
      .add(group("Forward SDE parameters", "sde"))
      .add(group("Options shared by every run", "shared"))
      .add(evaluation);
  po::variables_map vm;
  if (!parse_arguments(args, visible, study_usage, vm, out)) return 0;

  // Only what was given replaces a default: an axis the command line leaves out keeps the study's default, and a
  // sampler-dependent default can still apply to it.
  StudySpec spec = defaults;
  read_given(study_option_table(), vm, spec);
  // The default blocks belong to the default grid: a study that lists its own samplers, steps or other sampler lists
  // gets no block unless it gives --blocks.
  if (!given(vm, "blocks"))
    for (const auto& entry : sampler_option_table())
      if ((entry.study == StudyRole::axis || entry.study == StudyRole::budget) && given(vm, entry.key)) {
        spec.blocks.clear();
        break;
      }

  // Presets replace the defaults of the options not given explicitly.
  const std::string preset = vm["preset"].as<std::string>();
  if (preset != "default" && preset != "moons" && preset != "gaussian" && preset != "fashion-mnist")
    throw ConfigError(fmt::format("--preset = {}: choose default, moons, gaussian or fashion-mnist", preset));
  // A directory this run creates goes again if the study fails before it records anything (a bad option found after
  // a preset wrote its data, a full disk at the first write); a model or mixture a preset made is kept, as is a
  // study with results.json (--resume continues it).
  std::optional<OutputDirectory> output;
  if (vm.count("out") && !vm["dry-run"].as<bool>()) output.emplace(vm["out"].as<std::string>());
  if (preset == "gaussian") {
    if (!given(vm, "data")) {
      if (!vm.count("out"))
        throw ConfigError("--out: required; --preset gaussian keeps its data in DIR/gaussian10.json");
      const std::filesystem::path dir = vm["out"].as<std::string>();
      const std::string file = (dir / "gaussian10.json").string();
      if (!std::filesystem::exists(file)) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec)
          throw ConfigError(fmt::format("--out = {}: cannot create the directory ({})", dir.string(), ec.message()));
        write_text_atomically(file, gaussian_preset_data());
      }
      spec.data = {file};
    }
    if (!given(vm, "sde")) spec.sde = {"vp", "ve"};
    const auto [samplers, ode_methods] = exact_law_samplers();
    if (!given(vm, "sampler")) spec.axes["sampler"] = samplers;
    if (!given(vm, "ode-method")) spec.axes["ode-method"] = ode_methods;
    if (!given(vm, "time-grid")) spec.axes["time-grid"] = {"logsnr"};
    if (!given(vm, "steps")) spec.set_axis("steps", std::vector<int>{4, 8, 16, 32, 64, 128, 256, 512, 1024});
    if (!given(vm, "blocks")) spec.blocks.clear();
    if (!given(vm, "seeds")) spec.seeds = 1;  // the exact metrics do not depend on the seed
    if (!given(vm, "metrics")) spec.metrics = {"gaussian_w2", "gaussian_kl"};
    if (!given(vm, "save-samples")) spec.save_samples = false;
  }
  std::vector<std::string> fit_args;  // the fit the fashion-mnist preset runs first, when its mixture is missing
  if (preset == "fashion-mnist") {
    if (!given(vm, "data")) {
      if (!vm.count("out"))
        throw ConfigError("--out: required; --preset fashion-mnist keeps its mixture in DIR/fashion_mnist10.json");
      const std::string file = (std::filesystem::path(vm["out"].as<std::string>()) / "fashion_mnist10.json").string();
      spec.data = {file};
      if (!std::filesystem::exists(file))
        fit_args = {"fit-mixture", "--data", "fashion_mnist", "--components", "10", "--quiet", "--out", file};
    }
    if (!given(vm, "sde")) spec.sde = {"vp"};
    if (!given(vm, "sampler"))
      spec.axes["sampler"] = {"ddim", "dpmpp_2m", "dpmpp_3m", "unipc", "dpmpp_2m_sde", "sa_solver"};
    if (!given(vm, "time-grid")) spec.axes["time-grid"] = {"logsnr"};
    if (!given(vm, "steps")) spec.set_axis("steps", std::vector<int>{5, 10, 20, 50});
    if (!given(vm, "blocks")) spec.blocks.clear();
    if (!given(vm, "seeds")) spec.seeds = 1;
    if (!given(vm, "samples")) spec.samples = 2000;
    // No path_error: its dopri5 reference at rtol 1e-10 takes thousands of evaluations per image in 784-D.
    if (!given(vm, "metrics")) spec.metrics = {"fd_fmnist", "nll", "bpd"};
    // The committed U-Net (docs/images.md) beside the exact score, on a grid its cost allows (about 3.6 ms per image
    // and evaluation on 2 cores: some 6 minutes): three samplers at 10 and 20 steps, 1000 images, and the exact score
    // on the same cells, so that each learned row has an exact row of the same size.
    if (!given(vm, "blocks")) {
      const std::string unet = find_fmnist_asset("unet.pt");
      if (unet.empty() || !torchscript_backend_built()) {
        out << fmt::format("study: --preset fashion-mnist without the learned-score rows: {}\n",
                           unet.empty() ? "assets/fashion_mnist/unet.pt is missing"
                                        : "this build has no TorchScript backend (LibTorch)");
      } else {
        spec.blocks = {{{"score", {std::string(exact_score), unet}},
                        {"samples", {"1000"}},
                        {"sampler", {"ddim", "dpmpp_2m", "dpmpp_2m_sde"}},
                        {"steps", {"10", "20"}}}};
      }
    }
  }
  if (!fit_args.empty()) {
    const std::string fit_command = fmt::format("scoresde {}", fmt::join(fit_args, " "));
    if (vm["dry-run"].as<bool>()) {
      out << fmt::format("--preset fashion-mnist first fits its mixture:\n  {}\n", fit_command);
      return 0;
    }
    std::filesystem::create_directories(vm["out"].as<std::string>());
    out << fmt::format("study: fitting the mixture first (seconds): {}\n", fit_command) << std::flush;
    const int status = run_cli(fit_args, out, err);
    if (status != 0) return status;
    output->commit();
  }
  std::vector<std::string> train_args;  // the training the moons preset runs first, when its model is missing
  if (preset == "moons") {
    if (!given(vm, "data")) spec.data = {"two_moons"};
    if (!given(vm, "sde")) spec.sde = {"vp"};
    if (!given(vm, "samples")) spec.samples = 2000;
    if (!given(vm, "score")) {
      if (!vm.count("out")) throw ConfigError("--out: required; --preset moons keeps its model in DIR/model.ckpt");
      const std::string model = (std::filesystem::path(vm["out"].as<std::string>()) / "model.ckpt").string();
      spec.score = {model};
      if (!std::filesystem::exists(model))
        // One thread: training is bitwise reproducible for a given thread count, so the model is the same on
        // every machine.
        train_args = {"train",
                      "--data",
                      spec.data.front(),
                      "--sde",
                      spec.sde.front(),
                      "--iterations",
                      "10000",
                      "--lr",
                      "0.003",
                      "--lr-schedule",
                      "cosine",
                      "--seed",
                      "0",
                      "--threads",
                      "1",
                      "--quiet",
                      "--out",
                      model};
    }
  }
  if (!train_args.empty()) {
    const std::string train_command = fmt::format("scoresde {}", fmt::join(train_args, " "));
    if (vm["dry-run"].as<bool>()) {
      out << fmt::format("--preset moons first trains its model:\n  {}\n", train_command);
      return 0;
    }
    const std::string dir = vm["out"].as<std::string>();
    if (std::filesystem::exists(std::filesystem::path(dir) / "results.json"))
      throw ConfigError(fmt::format("--out = {}: holds a study but no model.ckpt; choose another directory", dir));
    std::filesystem::create_directories(dir);
    out << fmt::format("study: training the model first (about a minute): {}\n", train_command) << std::flush;
    const int status = run_cli(train_args, out, err);
    if (status != 0) return status;
    output->commit();
  }
  spec.validate();

  std::vector<std::string> skipped;
  const auto runs = expand_study(spec, &skipped);
  if (vm["dry-run"].as<bool>()) {
    out << fmt::format("{} runs ({} samples each unless listed):\n", runs.size(), spec.samples);
    for (const auto& r : runs)
      out << "  " << r.id << (r.samples != spec.samples ? fmt::format(" ({} samples)", r.samples) : "") << "\n";
    for (const auto& s : skipped) out << "  skipped: " << s << "\n";
    return 0;
  }
  if (!vm.count("out"))
    throw ConfigError("--out: required; name the directory for results.csv, results.json, study.ini");
  const std::string dir = vm["out"].as<std::string>();

  const bool quiet = vm["quiet"].as<bool>();
  const bool terminal = isatty(STDERR_FILENO);
  StudyProgress progress;
  progress.starting = [&](const StudyRun& run, Index done, Index total, double elapsed, double left) {
    if (!terminal || quiet) return;
    err << fmt::format("\r\033[K[{}/{}] {}  {:.0f} s elapsed{}", done, total, run.id, elapsed,
                       left >= 0 ? fmt::format(", about {:.0f} s left", left) : "")
        << std::flush;
  };
  progress.finished = [&](const StudyRun&, const StudyRow& row, Index done, Index total) {
    if (terminal && !quiet) err << "\r\033[K" << std::flush;
    if (quiet) return;
    std::string summary;
    if (row["status"] == "ok") {
      summary = fmt::format("NFE {:.0f}", row["nfe"].get<double>());
      const auto names = spec.resolved_metrics();
      const auto& m = names.front();
      if (!row[m].is_null())
        summary += fmt::format(", {} {:.4g} ± {:.2g}", m, row[m].get<double>(), row[m + "_se"].get<double>());
    } else {
      summary = row["failure"].get<std::string>();
    }
    out << fmt::format("[{}/{}] {}: {} ({}, {:.2f} s)\n", done, total, row["run"].get<std::string>(), summary,
                       row["status"].get<std::string>(), row["wall_s"].get<double>())
        << std::flush;
  };

  nlohmann::ordered_json resolved = spec.to_json();
  resolved["out"] = dir;
  const StopSignals stop;
  progress.stop_requested = [&stop] { return stop.received() != 0; };
  std::vector<StudyRow> rows;
  try {
    rows = run_study(spec, dir, vm["resume"].as<bool>(), command_line("study", resolved), progress);
  } catch (...) {
    if (std::filesystem::exists(std::filesystem::path(dir) / "results.json")) output->commit();
    throw;
  }
  output->commit();
  if (const int signal = stop.received(); signal != 0 && rows.size() < runs.size()) {
    if (terminal && !quiet) err << "\r\033[K";
    err << fmt::format(
        "study: stopped by {} after {} of {} runs; every finished run is recorded in {}. Continue with:\n"
        "  scoresde study --config {}/study.ini --resume --out {}\n",
        signal == SIGINT ? "SIGINT" : "SIGTERM", rows.size(), runs.size(), dir, dir, dir);
    return 128 + signal;
  }
  Index diverged = 0;
  for (const auto& r : rows) diverged += r["status"] != "ok";
  out << fmt::format(
      "study: {} runs in {} ({} diverged); results.csv, results.json, study.ini. "
      "Figures: scoresde report {}\n",
      rows.size(), dir, diverged, dir);
  return 0;
}

}  // namespace scoresde
