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
  const MlpArchitecture da;
  const TrainingOptions dt;
  const auto num = [](double v) { return fmt::format("{}", v); };
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
  po::options_description network("Network");
  network.add_options()
      ("width", po::value<Index>()->default_value(da.hidden[0]), "hidden layer width")
      ("depth", po::value<int>()->default_value(static_cast<int>(da.hidden.size())), "number of hidden layers")
      ("time-embedding", po::value<std::string>()->default_value(to_string(da.time_embedding)),
       "fourier (Gaussian Fourier features) or raw (the time coordinate appended to x)")
      ("time-input", po::value<std::string>()->default_value(to_string(da.time_input)),
       "what the time embedding sees: t, or log_sigma (the log of the kernel std sigma_t)")
      ("fourier-features", po::value<Index>()->default_value(da.fourier_features),
       "Fourier frequencies F (2F features)")
      ("fourier-scale", po::value<double>()->default_value(da.fourier_scale, num(da.fourier_scale)),
       "standard deviation of the Fourier frequencies")
      ("parameterization", po::value<std::string>(),
       "noise (score = -output / sigma_t) or scaled_score (score = output / sigma_t); default noise for vp and "
       "subvp, scaled_score for ve")
      ("precision", po::value<std::string>()->default_value(to_string(da.precision)), "float32 or float64");
  po::options_description optimiser("Training");
  optimiser.add_options()
      ("iterations", po::value<long>()->default_value(dt.iterations), "optimiser steps")
      ("batch-size", po::value<Index>()->default_value(dt.batch_size), "samples per minibatch")
      ("lr", po::value<double>()->default_value(dt.lr, num(dt.lr)), "Adam learning rate")
      ("beta1", po::value<double>()->default_value(dt.beta1, num(dt.beta1)), "Adam beta1")
      ("beta2", po::value<double>()->default_value(dt.beta2, num(dt.beta2)), "Adam beta2")
      ("adam-eps", po::value<double>()->default_value(dt.adam_eps, num(dt.adam_eps)), "Adam epsilon")
      ("warmup", po::value<long>()->default_value(dt.warmup), "linear learning-rate warm-up steps (0: none)")
      ("lr-schedule", po::value<std::string>()->default_value(dt.cosine_decay ? "cosine" : "constant"),
       "constant, or cosine (decay to 0 over --iterations) after the warm-up")
      ("grad-clip", po::value<double>()->default_value(dt.grad_clip, num(dt.grad_clip)),
       "clip the gradient norm to this (0: no clipping)")
      ("ema-rate", po::value<double>()->default_value(dt.ema_rate, num(dt.ema_rate)),
       "rate of the exponential moving average of the weights used for sampling")
      ("train-eps", po::value<double>(),
       "training times lie in [train-eps, T]; default: the SDE's sampling eps (1e-3 for vp and subvp, 1e-5 for ve), "
       "the earliest time `sample` and `likelihood` use by default")
      ("time-sampling", po::value<std::string>(),
       "how training times are drawn: uniform in t, log_snr (uniform in log alpha_t^2/sigma_t^2) or log_sigma "
       "(uniform in log sigma_t); default log_sigma for vp, uniform for subvp and ve")
      ("uniform-share", po::value<double>()->default_value(dt.uniform_share, num(dt.uniform_share)),
       "share of the training times drawn uniformly in t whatever --time-sampling says")
      ("loss-weighting", po::value<std::string>()->default_value(to_string(dt.weighting)),
       "sigma2 (|sigma_t s + z|^2) or likelihood (times g(t)^2 / sigma_t^2)")
      ("reduction", po::value<std::string>()->default_value(to_string(dt.reduction)),
       "mean or sum of the squared residual over the d coordinates")
      ("validation-fraction",
       po::value<double>()->default_value(dt.validation_fraction, num(dt.validation_fraction)),
       "share of the data held out for the validation loss")
      ("eval-every", po::value<long>()->default_value(dt.eval_every), "iterations between validation losses")
      ("seed", po::value<std::uint64_t>()->default_value(dt.seed),
       "fixes initial weights, data draws and minibatches")
      ("threads", po::value<int>()->default_value(dt.threads),
       "threads; the result depends on --seed and --threads");
  // clang-format on
  po::options_description visible;
  visible.add(data).add(sde_option_group()).add(network).add(optimiser);
  po::variables_map vm;
  if (!parse_arguments(args, visible, train_usage, vm, out)) return 0;

  if (!vm.count("out")) throw ConfigError("--out: required; name the checkpoint file to write");
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "model.ckpt");
  const SdeOptions sde_options = sde_options_from(vm);
  const auto sde = make_sde(sde_options);

  MlpArchitecture arch;
  const Index width = vm["width"].as<Index>();
  const int depth = vm["depth"].as<int>();
  require(depth >= 1 && depth <= 64, "--depth", std::to_string(depth), "must be in [1, 64]");
  require(width >= 1 && width <= 65536, "--width", std::to_string(width), "must be in [1, 65536]");
  arch.hidden.assign(static_cast<std::size_t>(depth), width);
  arch.time_embedding = time_embedding_from_string(vm["time-embedding"].as<std::string>());
  arch.time_input = time_input_from_string(vm["time-input"].as<std::string>());
  arch.fourier_features = vm["fourier-features"].as<Index>();
  arch.fourier_scale = vm["fourier-scale"].as<double>();
  arch.parameterization = vm.count("parameterization")
                              ? parameterization_from_string(vm["parameterization"].as<std::string>())
                              : default_parameterization(sde_options.kind);
  arch.precision = precision_from_string(vm["precision"].as<std::string>());

  TrainingOptions o;
  o.iterations = vm["iterations"].as<long>();
  o.batch_size = vm["batch-size"].as<Index>();
  o.lr = vm["lr"].as<double>();
  o.beta1 = vm["beta1"].as<double>();
  o.beta2 = vm["beta2"].as<double>();
  o.adam_eps = vm["adam-eps"].as<double>();
  o.warmup = vm["warmup"].as<long>();
  const std::string schedule = vm["lr-schedule"].as<std::string>();
  if (schedule != "constant" && schedule != "cosine")
    throw ConfigError(fmt::format("--lr-schedule = {}: choose constant or cosine", schedule));
  o.cosine_decay = schedule == "cosine";
  o.grad_clip = vm["grad-clip"].as<double>();
  o.ema_rate = vm["ema-rate"].as<double>();
  o.eps = vm.count("train-eps") ? vm["train-eps"].as<double>() : sde->default_eps();
  o.time_sampling = vm.count("time-sampling") ? time_sampling_from_string(vm["time-sampling"].as<std::string>())
                                              : default_time_sampling(sde_options.kind);
  o.uniform_share = vm["uniform-share"].as<double>();
  o.weighting = loss_weighting_from_string(vm["loss-weighting"].as<std::string>());
  o.reduction = loss_reduction_from_string(vm["reduction"].as<std::string>());
  o.validation_fraction = vm["validation-fraction"].as<double>();
  o.eval_every = vm["eval-every"].as<long>();
  o.seed = vm["seed"].as<std::uint64_t>();
  o.threads = vm["threads"].as<int>();
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

  nlohmann::ordered_json resolved;
  resolved["data"] = data_name;
  resolved["dim"] = arch.dim;
  resolved["data-samples"] = data_samples;
  resolved["out"] = out_path;
  record(sde_options, resolved);
  resolved["width"] = width;
  resolved["depth"] = depth;
  resolved["time-embedding"] = to_string(arch.time_embedding);
  resolved["time-input"] = to_string(arch.time_input);
  resolved["fourier-features"] = arch.fourier_features;
  resolved["fourier-scale"] = arch.fourier_scale;
  resolved["parameterization"] = to_string(arch.parameterization);
  resolved["precision"] = to_string(arch.precision);
  resolved["iterations"] = o.iterations;
  resolved["batch-size"] = o.batch_size;
  resolved["lr"] = o.lr;
  resolved["beta1"] = o.beta1;
  resolved["beta2"] = o.beta2;
  resolved["adam-eps"] = o.adam_eps;
  resolved["warmup"] = o.warmup;
  resolved["lr-schedule"] = schedule;
  resolved["grad-clip"] = o.grad_clip;
  resolved["ema-rate"] = o.ema_rate;
  resolved["train-eps"] = o.eps;
  resolved["time-sampling"] = to_string(o.time_sampling);
  resolved["uniform-share"] = o.uniform_share;
  resolved["loss-weighting"] = to_string(o.weighting);
  resolved["reduction"] = to_string(o.reduction);
  resolved["validation-fraction"] = o.validation_fraction;
  resolved["eval-every"] = o.eval_every;
  resolved["seed"] = o.seed;
  resolved["threads"] = o.threads;

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
