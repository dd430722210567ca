// scoresde fit-mixture: a class-conditional Gaussian mixture fitted to Fashion-MNIST (models/image_mixture.hpp),
// written as a JSON header with its eigendecompositions in a .npy beside it, so that `sample --data FILE.json` and
// every other command taking a mixture file get its exact score.
#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/idx.hpp"
#include "models/image_mixture.hpp"

namespace scoresde {

namespace {

// clang-format off
const char* fit_mixture_usage =
    "Usage: scoresde fit-mixture --data fashion_mnist[:train|:test] [--components K] [--regularization LAMBDA]\n"
    "                            [--max-images N] --out FILE.json\n\n"
    "Fits one Gaussian with a full covariance to each class 0 .. K-1 of Fashion-MNIST (pixels scaled to [-1, 1],\n"
    "d = 784), weighted by the class frequencies; each covariance S is regularised as (1 - LAMBDA) S +\n"
    "LAMBDA tr(S)/d I. Writes FILE.json (weights, dimensions, how it was fitted) and FILE.npy beside it (means and\n"
    "eigendecompositions, float64; docs/images.md). FILE.json is a mixture file like any other: its exact score\n"
    "serves `sample`, `study`, `likelihood` and `evaluate` (nll, bpd).\n\n"
    "Example:\n"
    "  scoresde fit-mixture --data fashion_mnist --components 10 --out fmnist10.json\n"
    "  scoresde sample --data fmnist10.json --sde vp --sampler dpmpp_2m --steps 20 -n 10000 --threads 2 \\\n"
    "                  --out x.npy\n";
// clang-format on

}  // namespace

int fit_mixture_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& /*err*/) {
  po::options_description io("Data and output");
  // clang-format off
  io.add_options()
      ("data", po::value<std::string>()->default_value("fashion_mnist"),
       "fashion_mnist (= fashion_mnist:train, 60,000 images) or fashion_mnist:test (10,000)")
      ("out", po::value<std::string>(), "output FILE.json; FILE.npy is written beside it (required)")
      ("quiet", po::bool_switch(), "print nothing on success");
  // clang-format on
  po::options_description visible;
  visible.add(io).add(option_group("Fit", mixture_fit_option_table(), MixtureFitOptions{}));
  po::variables_map vm;
  if (!parse_arguments(args, visible, fit_mixture_usage, vm, out)) return 0;

  if (!vm.count("out")) throw ConfigError("--out: required; name the FILE.json to write (FILE.npy goes beside it)");
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "mixture.json");
  if (out_path.size() < 5 || out_path.substr(out_path.size() - 5) != ".json")
    throw ConfigError(fmt::format("--out = {}: must end in .json (the arrays go beside it, ending in .npy)", out_path));
  MixtureFitOptions options;
  read_group(mixture_fit_option_table(), vm, options);
  options.validate();
  const std::string data_name = vm["data"].as<std::string>();
  const auto selection = parse_fashion_mnist_name(data_name);
  if (!selection)
    throw ConfigError(fmt::format(
        "--data = {}: fit-mixture fits labelled images; give fashion_mnist, fashion_mnist:train or fashion_mnist:test",
        data_name));
  if (selection->label)
    throw ConfigError(fmt::format(
        "--data = {}: fit-mixture fits one component per class itself; give the whole split (fashion_mnist, "
        "fashion_mnist:train or fashion_mnist:test) and --components",
        data_name));

  const auto started = std::chrono::steady_clock::now();
  LabelledImages data = load_fashion_mnist(*selection);
  if (options.max_images > 0 && options.max_images < data.images.cols()) {
    data.images.conservativeResize(Eigen::NoChange, options.max_images);
    data.labels.resize(static_cast<std::size_t>(options.max_images));
  }
  const double read_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const FittedMixture fit = fit_class_mixture(data.images, data.labels, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  nlohmann::ordered_json resolved;
  resolved["data"] = data_name;
  record_options(mixture_fit_option_table(), options, resolved);
  resolved["out"] = out_path;
  nlohmann::ordered_json record;
  record["data"] = data_name;
  record["images"] = data.images.cols();
  record["class_counts"] = fit.counts;
  record["covariance"] = "maximum likelihood (1/n_k), shrunk: (1 - lambda) S + lambda tr(S)/d I";
  record["traces"] = std::vector<double>(fit.traces.data(), fit.traces.data() + fit.traces.size());
  record["pixel_scaling"] = "v / 127.5 - 1, v in 0..255; images flattened row-major";
  record["seconds"] = seconds;
  record["read_seconds"] = read_seconds;
  record["command"] = command_line("fit-mixture", resolved);
  record["options"] = resolved;
  record["inputs"] = input_files(
      {{"images", fashion_mnist_images_file(selection->test)}, {"labels", fashion_mnist_labels_file(selection->test)}});
  record["context"] = build_context();
  nlohmann::ordered_json extra;
  extra["image_shape"] = {1, data.rows, data.columns};
  extra["fit"] = record;
  write_eigen_mixture(out_path, fit, extra);
  if (!vm["quiet"].as<bool>())
    out << fmt::format("wrote {} and its arrays: {} components in {} dimensions from {} images ({:.1f} s)\n", out_path,
                       fit.means.cols(), fit.means.rows(), data.images.cols(), seconds);
  return 0;
}

}  // namespace scoresde
