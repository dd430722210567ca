// scoresde sample: draws samples with any sampler and writes SAMPLES.npy and SAMPLES.npy.json (the resolved
// options, NFE, wall time, build context), both atomically.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/model_cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/datasets.hpp"
#include "models/score_factory.hpp"
#include "solvers/driver.hpp"

namespace scoresde {

namespace {
const char* sample_usage =
    "Usage: scoresde sample --data NAME|FILE.json [--sde vp|subvp|ve] [--sampler NAME] [--steps N]\n"
    "                       -n COUNT [--seed S] [--threads T] --out SAMPLES.npy\n"
    "       scoresde sample --model MODEL.ckpt|WEIGHTS.npz|MODULE.pt [--sampler NAME] ... --out SAMPLES.npy\n\n"
    "Draws COUNT samples by solving the reverse-time SDE or the probability-flow ODE with the exact score of the\n"
    "data (a Gaussian mixture) or a trained network (--model), and writes them as an (n, d) float64 .npy with\n"
    "SAMPLES.npy.json beside it.\n"
    "Sample i depends only on (seed, i, options): not on -n, --threads or the machine's load.\n\n"
    "Examples:\n"
    "  scoresde sample --data eight_gaussians --sde vp --sampler euler_maruyama --steps 1000 -n 10000 --out em.npy\n"
    "  scoresde sample --data eight_gaussians --sde ve --sampler pc --predictor reverse_diffusion \\\n"
    "                  --corrector langevin --snr 0.16 --steps 500 -n 10000 --out pc.npy\n"
    "  scoresde sample --model eg.ckpt --sampler pc --steps 500 -n 10000 --out learned.npy\n"
    "  scoresde sample --data mix.json --sampler ode --ode-method dopri5 --rtol 1e-5 --atol 1e-5 -n 1000 --out "
    "ode.npy\n";

}

int sample_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description data("Data and output");
  // clang-format off
  data.add_options()
      ("data", po::value<std::string>()->default_value("eight_gaussians"),
       "eight_gaussians, gaussian (with --dim), or a mixture file FILE.json")
      ("dim", po::value<Index>()->default_value(0), "dimension for gaussian; checked against a mixture file")
      ("samples,n", po::value<Index>()->default_value(10000), "number of samples")
      ("init", po::value<std::string>(), "start from these prior samples (.npy of shape (n, d)) instead of drawing them")
      ("out", po::value<std::string>(), "output .npy (required); OUT.json is written beside it")
      ("quiet", po::bool_switch(), "print nothing on success")
      ("write-block", po::value<Index>()->default_value(0),
       "samples computed before they are written to --out (rounded up to whole chunks; 0: about 8 MB of them); "
       "bounds the memory, never changes the samples");
  // clang-format on
  add_model_options(data,
                    "a trained score network instead of the exact score: MODEL.ckpt from `scoresde train` (its SDE is "
                    "used unless SDE options are given, with a warning) or PyTorch weights FILE.npz "
                    "or a TorchScript module FILE.pt (its declared SDE and scaling; docs/training.md)");
  po::options_description visible;
  visible.add(data).add(sde_option_group()).add(sampler_option_group());
  po::variables_map vm;
  if (!parse_arguments(args, visible, sample_usage, vm, out)) return 0;

  if (!vm.count("out")) throw ConfigError("--out: required; name the .npy file to write");
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "samples.npy");
  SdeOptions sde_options = sde_options_from(vm);
  // The score: the exact score of --data, or a trained network (--model) whose SDE comes from its checkpoint.
  const std::optional<LoadedModel> loaded = load_model_from(vm, sde_options, "sample", err);
  if (loaded) sde_options = loaded->sde;
  const auto sde = make_sde(sde_options);
  SamplerOptions sampler_options = sampler_options_from(vm);
  // A --time-grid FILE gives the step count and the final time, unless --steps or --eps say otherwise (an error).
  sampler_options.adopt_grid_file(*sde, given(vm, "steps"));
  sampler_options.validate(*sde, vm.count("init") > 0);
  const std::vector<double> walked = sampler_options.walked_times(*sde);  // recorded in result.time_grid
  const std::unique_ptr<ScoreModel> model =
      loaded ? loaded->make_score(*sde)
             : make_score_model(ScoreSpec::exact(vm["data"].as<std::string>(), vm["dim"].as<Index>()), *sde).model;
  const Index dim = model->dim();
  Index n = vm["samples"].as<Index>();
  require(n >= 1, "-n/--samples", std::to_string(n), "must be >= 1");
  std::optional<Matrix> init;
  if (vm.count("init")) {
    const auto path = vm["init"].as<std::string>();
    try {
      init = read_samples_npy(path);
    } catch (const InputError& e) {
      throw InputError(fmt::format("--init: {}", e.what()));
    }
    if (init->rows() != dim)
      throw ConfigError(
          fmt::format("--init = {}: samples of dimension {}, but {} is {}-dimensional", path, init->rows(),
                      loaded ? "--model " + loaded->path : "--data " + vm["data"].as<std::string>(), dim));
    if (!vm["samples"].defaulted() && n != init->cols())
      throw ConfigError(
          fmt::format("-n = {}: --init {} holds {} samples; leave -n out or make them agree", n, path, init->cols()));
    n = init->cols();
  }

  // Progress on one line of the terminal for runs that take more than a moment; nothing when stderr is not a
  // terminal (files, CI logs) or with --quiet.
  const bool show_progress = !vm["quiet"].as<bool>() && isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  auto last_shown = started;
  ProgressFn progress = [&](Index done, Index total) {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - started).count();
    if (done < total && (elapsed < 1.0 || now - last_shown < std::chrono::milliseconds(200))) return;
    last_shown = now;
    const double left = elapsed * static_cast<double>(total - done) / static_cast<double>(done);
    err << fmt::format("\rsampling: {:3.0f}% ({} of {} chunks), {:.1f} s elapsed, about {:.0f} s left   ",
                       100.0 * done / total, done, total, elapsed, left);
    if (done == total) err << "\r" << std::string(80, ' ') << "\r";
    err << std::flush;
  };
  const Index write_block = vm["write-block"].as<Index>();
  require(write_block >= 0, "--write-block", std::to_string(write_block), "must be >= 0 (0: about 8 MB of samples)");

  nlohmann::ordered_json resolved;
  if (loaded) {
    loaded->record(resolved);
  } else {
    resolved["data"] = vm["data"].as<std::string>();
  }
  resolved["dim"] = dim;
  resolved["samples"] = n;
  if (init) resolved["init"] = vm["init"].as<std::string>();
  resolved["out"] = out_path;
  record(sde_options, resolved);
  record(sampler_options, *sde, resolved);

  nlohmann::ordered_json meta;
  meta["command"] = command_line("sample", resolved);
  meta["options"] = resolved;
  meta["inputs"] = input_files({{"model", loaded ? loaded->path : ""},
                                {"data", loaded ? "" : data_source_file(vm["data"].as<std::string>())},
                                {"init", init ? vm["init"].as<std::string>() : ""},
                                {"time-grid", sampler_options.grid_from_file() ? sampler_options.time_grid : ""}});
  // The samples go to the file a block at a time as they are computed (docs/reproducibility.md: the same bits
  // as one in-memory batch), so memory stays bounded whatever -n; the record follows with the run's NFE and time.
  // A failure removes the temporary file: nothing is written.
  SampleReport report;
  const auto sample_into = [&](const std::string& tmp) {
    NpySamplesWriter writer(tmp, n, dim);
    // A trained model works on standardised data (docs/training.md): its samples, and --init, are in
    // standardised units; the samples are mapped back to the data's units here.
    const SampleSink write = [&](Index, Matrix& samples, Vector&) {
      if (loaded) samples = loaded->scaling().to_original(samples);
      writer.append(samples);
    };
    report = sample_blocks(*sde, *model, sampler_options, n, write_block, write, init ? &*init : nullptr, nullptr,
                           show_progress ? progress : ProgressFn{});
    writer.finish();
  };
  const auto record_text = [&] {
    meta["result"] = {{"n", n},
                      {"dim", dim},
                      {"nfe", report.nfe_mean()},
                      {"nfe_max", report.nfe_max()},
                      {"score_calls", report.score_calls},
                      {"score_columns", report.score_columns},
                      {"wall_seconds", report.wall_seconds},
                      {"time_grid", walked}};
    meta["model"] = model->describe();
    if (loaded) meta["model_training"] = loaded->training_command();
    meta["context"] = build_context();
    meta["context"]["threads"] = sampler_options.threads;
    return meta.dump(2) + "\n";
  };
  write_npy_with_json(out_path, sample_into, std::function<std::string()>(record_text));
  if (!vm["quiet"].as<bool>())
    out << fmt::format("wrote {} ({} samples of dimension {}); NFE {:.1f}; {:.3f} s; options in {}.json\n", out_path, n,
                       dim, report.nfe_mean(), report.wall_seconds, out_path);
  return 0;
}

}  // namespace scoresde
