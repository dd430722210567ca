// scoresde train: fits an MLP score network by denoising score matching (models/training.hpp) and writes one
// checkpoint (models/checkpoint.hpp) holding the architecture, the SDE, the data scaling, the options, the
// loss history, and the raw and EMA weights. Ctrl-C stops at the end of the current iteration and saves what
// there is.
#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#include "models/mlp.hpp"
#include "models/training.hpp"

namespace scoresde {

namespace {

const char* train_usage =
    "Usage: scoresde train --data NAME|FILE --sde vp|subvp|ve [network and optimiser options]\n"
    "                      --iterations K --seed S --out MODEL.ckpt\n\n"
    "Trains an MLP score network by continuous-time denoising score matching on standardised data and writes "
    "a\n"
    "checkpoint for `scoresde sample --model MODEL.ckpt` and `scoresde evaluate-score`. Data: a built-in "
    "set\n"
    "(eight_gaussians, two_moons, swiss_roll, checkerboard, rings, gaussian), a mixture FILE.json, or "
    "samples in\n"
    "FILE.npy ((n, d) float) or FILE.csv (n rows of d numbers). Ctrl-C saves a checkpoint of the run so "
    "far.\n"
    "The run is a pure function of the options, the data, --seed and --threads. docs/training.md explains "
    "it.\n\n"
    "Examples:\n"
    "  scoresde train --data eight_gaussians --sde vp --iterations 30000 --lr 3e-3 --lr-schedule cosine \\\n"
    "                 --seed 0 --out eg.ckpt\n"
    "  scoresde train --data points.csv --sde ve --width 256 --depth 4 --lr 1e-3 --out points.ckpt\n";

std::atomic<bool> interrupted{false};
extern "C" void on_sigint(int) {
  interrupted.store(true);
}

}  // namespace

int train_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  // clang-format off
  po::options_description data("Data and output");
  data.add_options()
      ("data", po::value<std::string>()->default_value("eight_gaussians"),
       "eight_gaussians, two_moons, swiss_roll, checkerboard, rings, gaussian (with --dim), FILE.json, FILE.npy "
       "or FILE.csv")
      ("dim", po::value<Index>()->default_value(0), "dimension for gaussian; checked against a data file")
      ("data-samples", po::value<Index>()->default_value(100000), "samples drawn from a built-in set or mixture")
      ("out", po::value<std::string>(), "checkpoint to write (required)")
      ("quiet", po::bool_switch(), "print nothing on success");
  // clang-format on
  po::options_description visible;
  visible.add(data)
      .add(sde_option_group())
      .add(option_group("Network", mlp_option_table(), MlpArchitecture{}))
      .add(option_group("Training", training_option_table(), TrainingOptions{}));
  po::variables_map vm;
  if (!parse_arguments(args, visible, train_usage, vm, out)) return 0;

  if (!vm.count("out")) throw ConfigError("--out: required; name the checkpoint file to write");
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "model.ckpt");
  const SdeOptions sde_options = sde_options_from(vm);
  const auto sde = make_sde(sde_options);

  // The network and the optimiser; what has no default on the command line is the SDE's unless given.
  MlpArchitecture arch;
  arch.parameterization = default_parameterization(sde_options.kind);
  read_group(mlp_option_table(), vm, arch);
  TrainingOptions o;
  o.eps = sde->default_eps();
  o.time_sampling = default_time_sampling(sde_options.kind);
  read_group(training_option_table(), vm, o);
  o.validate(*sde);

  const std::string data_name = vm["data"].as<std::string>();
  const Index data_samples = vm["data-samples"].as<Index>();
  require(data_samples >= 2 && data_samples <= 100000000, "--data-samples", std::to_string(data_samples),
          "must be in [2, 10^8]");
  const Matrix all = load_training_data(data_name, data_samples, o.seed, vm["dim"].as<Index>());
  arch.dim = all.rows();
  arch.validate();
  if (all.cols() < 2)
    throw InputError(fmt::format("{}: holds {} sample; training needs at least 2", data_name, all.cols()));
  auto [train_raw, validation_raw] = split_data(all, o.validation_fraction, o.seed);
  const DataScaling scaling = DataScaling::fit(train_raw);
  Trainer trainer(arch, *sde, o, scaling.to_standard(train_raw), scaling.to_standard(validation_raw));

  // The options in effect, from the tables: what the checkpoint records and its command reruns.
  nlohmann::ordered_json resolved;
  resolved["data"] = data_name;
  resolved["dim"] = arch.dim;
  resolved["data-samples"] = data_samples;
  resolved["out"] = out_path;
  record(sde_options, resolved);
  record_options(mlp_option_table(), arch, resolved);
  record_options(training_option_table(), o, resolved);

  // Ctrl-C: finish the iteration, save, exit with status 130. The previous handler is restored on every path.
  interrupted.store(false);
  struct HandlerGuard {
    void (*previous)(int) = std::signal(SIGINT, on_sigint);
    ~HandlerGuard() { std::signal(SIGINT, previous); }
  } guard;

  const bool show_progress = !vm["quiet"].as<bool>() && isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  auto last_shown = started;
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  double loss_sum = 0, last_validation = std::nan("");
  long loss_count = 0;
  const auto record_history = [&] {
    last_validation = trainer.validation_loss();
    const double mean_loss = loss_count ? loss_sum / static_cast<double>(loss_count) : std::nan("");
    history.push_back(
        {trainer.iteration(),
         std::isnan(mean_loss) ? nlohmann::ordered_json() : nlohmann::ordered_json(mean_loss),
         std::isnan(last_validation) ? nlohmann::ordered_json() : nlohmann::ordered_json(last_validation)});
    loss_sum = 0;
    loss_count = 0;
  };
  record_history();
  while (trainer.iteration() < o.iterations && !interrupted.load()) {
    trainer.step();
    if (!std::isfinite(trainer.last_loss())) {
      if (show_progress) err << "\n";
      err << fmt::format(
          "scoresde train: the training loss turned non-finite at iteration {}; nothing was written "
          "(try a smaller --lr or --grad-clip)\n",
          trainer.iteration());
      return 3;
    }
    loss_sum += trainer.last_loss();
    ++loss_count;
    if (trainer.iteration() % o.eval_every == 0 || trainer.iteration() == o.iterations) record_history();
    if (show_progress) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_shown >= std::chrono::milliseconds(200) || trainer.iteration() == o.iterations) {
        last_shown = now;
        const double elapsed = std::chrono::duration<double>(now - started).count();
        const double rate = static_cast<double>(trainer.iteration()) / std::max(elapsed, 1e-9);
        err << fmt::format(
                   "\rtrain: iteration {}/{}, loss {:.4f}, validation {:.4f}, {:.0f} it/s, {:.0f} s left   ",
                   trainer.iteration(), o.iterations, trainer.last_loss(), last_validation, rate,
                   static_cast<double>(o.iterations - trainer.iteration()) / std::max(rate, 1e-9))
            << std::flush;
      }
    }
  }
  const bool stopped = interrupted.load() && trainer.iteration() < o.iterations;
  if (show_progress) err << "\r" << std::string(100, ' ') << "\r" << std::flush;
  if (stopped && (history.empty() || history.back()[0] != trainer.iteration())) record_history();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  Checkpoint c;
  c.architecture = arch;
  c.frequencies = trainer.frequencies();
  c.sde = sde_options;
  c.scaling = scaling;
  c.weights = trainer.raw_weights();
  c.ema = trainer.ema_weights();
  c.training["command"] = command_line("train", resolved);
  c.training["options"] = resolved;
  c.training["inputs"] = input_files({{"data", data_source_file(data_name)}});
  c.training["train_samples"] = train_raw.cols();
  c.training["validation_samples"] = validation_raw.cols();
  c.training["iterations_done"] = trainer.iteration();
  c.training["interrupted"] = stopped;
  c.training["final_loss"] = trainer.last_loss();
  c.training["final_validation_loss"] =
      std::isnan(last_validation) ? nlohmann::ordered_json() : nlohmann::ordered_json(last_validation);
  c.training["wall_seconds"] = wall;
  c.training["history_columns"] = {"iteration", "mean training loss since previous row",
                                   "validation loss (EMA weights)"};
  c.training["history"] = history;
  c.training["context"] = build_context();
  save_checkpoint(out_path, c);
  if (stopped) {
    err << fmt::format("scoresde train: interrupted at iteration {} of {}; saved {}\n", trainer.iteration(),
                       o.iterations, out_path);
    return 130;
  }
  if (!vm["quiet"].as<bool>())
    out << fmt::format("wrote {} ({} iterations, loss {:.4f}, validation loss {:.4f}, {:.1f} s)\n", out_path,
                       trainer.iteration(), trainer.last_loss(), last_validation, wall);
  return 0;
}

}  // namespace scoresde
