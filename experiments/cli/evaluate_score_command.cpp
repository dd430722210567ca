// scoresde evaluate-score: how far a trained model's score is from the exact score of its data, at chosen
// times. For each t: x_0 ~ p_0 (the data's mixture), y_t = alpha_t y_0 + sigma_t z in the model's
// standardised units (y_0 = (x_0 - mean) / scale), and
//     relative L2 error = sqrt( sum_j |s_model(y_t,j, t) - s_exact(y_t,j, t)|^2 / sum_j |s_exact(y_t,j, t)|^2
//     ),
// where s_exact is the exact score of the standardised mixture (means (mu_k - mean) / scale, covariances
// D^-1 S_k D^-1, D = diag(scale)) diffused by the model's SDE.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sstream>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/noise.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/model_cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/score_factory.hpp"

namespace scoresde {

namespace {

const char* evaluate_usage =
    "Usage: scoresde evaluate-score --model MODEL.ckpt [--data NAME|FILE.json] [--times 0.1,0.5,0.9]\n"
    "                               [-n COUNT] [--seed S] [--json OUT.json]\n\n"
    "Relative L2 error of the model's score against the exact score, on points x_t drawn from p_t, at each "
    "time.\n"
    "The data must have an exact score (eight_gaussians, gaussian, or a mixture FILE.json); by default the "
    "data\n"
    "the model was trained on.\n\n"
    "Example:\n"
    "  scoresde evaluate-score --model eg.ckpt --times 0.1,0.5,0.9 -n 10000\n";

std::vector<double> parse_times(const std::string& text, double T) {
  std::vector<double> times;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double t = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size())
      throw ConfigError(fmt::format("--times = {}: '{}' is not a number", text, item));
    require(t > 0 && t <= T, "--times", text, fmt::format("every time must be in (0, T] = (0, {}]", T));
    times.push_back(t);
  }
  if (times.empty()) throw ConfigError(fmt::format("--times = {}: give at least one time", text));
  return times;
}

}  // namespace

int evaluate_score_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  // clang-format off
  po::options_description opts("Evaluation");
  opts.add_options()
      ("model", po::value<std::string>(),
       "MODEL.ckpt from scoresde train, WEIGHTS.npz with --parameterization and the SDE options, or a TorchScript FILE.pt")
      ("parameterization", po::value<std::string>(), "for .npz models: noise or scaled_score; for .pt models also data or v (default: what the file declares)")
      ("time-input", po::value<std::string>(), "for .pt models: t, log_sigma, sigma or index (default: what the file declares, else t)")
      ("data", po::value<std::string>(),
       "eight_gaussians, gaussian or FILE.json (default: the model's training data)")
      ("dim", po::value<Index>()->default_value(0), "dimension for gaussian")
      ("times", po::value<std::string>()->default_value("0.1,0.5,0.9"), "comma-separated times in (0, T]")
      ("samples,n", po::value<Index>()->default_value(10000), "points per time")
      ("seed", po::value<std::uint64_t>()->default_value(0), "fixes the points")
      ("weights", po::value<std::string>()->default_value("ema"), "ema or raw weights of a checkpoint")
      ("json", po::value<std::string>(), "also write the results to this JSON file");
  // clang-format on
  po::options_description visible;
  visible.add(opts).add(sde_option_group());
  po::variables_map vm;
  if (!parse_arguments(args, visible, evaluate_usage, vm, out)) return 0;
  (void)err;

  if (!vm.count("model")) throw ConfigError("--model: required; name the checkpoint to evaluate");
  const std::string path = vm["model"].as<std::string>();
  if (vm.count("json")) check_out_path(vm["json"].as<std::string>(), "score-errors.json", "--json");
  const SdeOptions cli_sde = sde_options_from(vm);
  ScoreSpec spec = ScoreSpec::file(path, vm["weights"].as<std::string>());
  if (vm.count("parameterization"))
    spec.parameterization = parameterization_from_string(vm["parameterization"].as<std::string>());
  if (vm.count("time-input")) spec.time_input = time_input_from_string(vm["time-input"].as<std::string>());
  const auto source = open_score(spec);
  // The SDE the checkpoint records; for an .npz, the command line's.
  const auto sde = make_sde(source->trained_sde().value_or(cli_sde));
  const auto& training = source->training();
  std::string data_name;
  if (vm.count("data")) {
    data_name = vm["data"].as<std::string>();
  } else {
    data_name = training.contains("options") ? training["options"].value("data", "") : "";
    if (data_name.empty())
      throw ConfigError(fmt::format("--data: required; {} does not record its data", path));
  }
  if (!has_exact_mixture(data_name))
    throw ConfigError(
        fmt::format("--data = {}: no exact score is known for it; use eight_gaussians, gaussian or a "
                    "mixture FILE.json",
                    data_name));
  Index dim = vm["dim"].as<Index>();
  if (dim == 0 && data_name == "gaussian") dim = source->dim();
  const auto mixture = load_data(data_name, dim);
  if (mixture->dim() != source->dim())
    throw ConfigError(fmt::format("--data = {}: {}-dimensional, but the model {} is {}-dimensional", data_name,
                                  mixture->dim(), path, source->dim()));
  const std::vector<double> times = parse_times(vm["times"].as<std::string>(), sde->T());
  const Index n = vm["samples"].as<Index>();
  require(n >= 1 && n <= 100000000, "-n/--samples", std::to_string(n), "must be in [1, 10^8]");
  const std::string& which = spec.weights;
  if (which != "ema" && which != "raw")
    throw ConfigError(fmt::format("--weights = {}: choose ema or raw", which));
  const std::unique_ptr<ScoreModel> model = source->make(*sde);

  // The data's mixture in the model's standardised units.
  const GaussianMixture standard = standardised_mixture(*mixture, source->scaling());

  const std::uint64_t seed = vm["seed"].as<std::uint64_t>();
  const Index d = source->dim();
  Matrix y0(d, n), z(d, n);
  standard.sample(seed, 0, y0);
  const CounterRng rng(seed, NoisePurpose::metric);
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  out << fmt::format("{:>8}  {:>14}  {:>12}  {:>12}\n", "t", "relative L2", "RMS error", "RMS exact");
  for (std::size_t k = 0; k < times.size(); ++k) {
    const double t = times[k];
    rng.normal_columns(0, 7, k, z);
    const double alpha = sde->alpha(t), sigma = sde->sigma(t);
    const Matrix yt = alpha * y0 + sigma * z;
    Matrix exact(d, n), learned(d, n);
    standard.score_into(alpha, sigma, yt, exact);
    model->score(yt, Vector::Constant(n, t), learned);
    const double err2 = (learned - exact).squaredNorm(), ref2 = exact.squaredNorm();
    const double rel = std::sqrt(err2 / ref2);
    out << fmt::format("{:>8.4g}  {:>14.6f}  {:>12.6g}  {:>12.6g}\n", t, rel, std::sqrt(err2 / n),
                       std::sqrt(ref2 / n));
    results.push_back({{"t", t},
                       {"relative_l2", rel},
                       {"rms_error", std::sqrt(err2 / n)},
                       {"rms_exact", std::sqrt(ref2 / n)}});
  }
  if (vm.count("json")) {
    nlohmann::ordered_json doc;
    doc["model"] = path;
    doc["data"] = data_name;
    doc["weights"] = which;
    doc["samples"] = n;
    doc["seed"] = seed;
    doc["iterations"] = training.value("iterations_done", 0L);
    doc["results"] = results;
    doc["inputs"] = input_files({{"model", path}, {"data", data_source_file(data_name)}});
    doc["context"] = build_context();
    write_text_atomically(vm["json"].as<std::string>(), doc.dump(2) + "\n");
  }
  return 0;
}

}  // namespace scoresde
