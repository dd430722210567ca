// scoresde evaluate: sample-quality metrics (experiments/metrics/metrics.hpp) of SAMPLES.npy against a reference, a
// built-in distribution or mixture file (exact reference points drawn with --seed; density metrics available)
// or a set of points REF.npy. Writes METRICS.json atomically (every metric with its standard error, the
// reference, the resolved options, the command and the build context) and prints a table.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/datasets.hpp"

namespace scoresde {

namespace {

const char* evaluate_usage =
    "Usage: scoresde evaluate --samples SAMPLES.npy --reference NAME|MIXTURE.json|REF.npy [--dim D]\n"
    "                         [--metrics LIST] [--reference-n N] [--seed S] [--mmd-bandwidth B]\n"
    "                         [--projections P] --out METRICS.json\n\n"
    "Measures how far SAMPLES.npy (an (n, d) array) is from a reference: a built-in distribution or a "
    "mixture\n"
    "file, from which --reference-n exact points are drawn with --seed and whose density gives nll, "
    "nll_gap,\n"
    "mode_coverage and mode_chi2; or the points of REF.npy (sample-based metrics only). Every metric comes "
    "with\n"
    "its standard error (docs/metrics.md). Writes METRICS.json and prints a table.\n\n"
    "Examples:\n"
    "  scoresde sample --data eight_gaussians -n 10000 --out em.npy\n"
    "  scoresde evaluate --samples em.npy --reference eight_gaussians --out em.metrics.json\n"
    "  scoresde evaluate --samples em.npy --reference exact.npy --metrics sliced_w2,mmd2 --out em.json\n";

bool contains_name(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Matrix read_points(const std::string& option, const std::string& path) {
  Matrix x;
  try {
    x = read_samples_npy(path);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", option, e.what()));
  }
  if (x.cols() < 4)
    throw InputError(fmt::format("{} = {}: {} points; the metrics need at least 4", option, path, x.cols()));
  return x;
}

// The usage text followed by one line per metric.
std::string usage_with_metrics() {
  std::string text = std::string(evaluate_usage) + "\nMetrics (--metrics; docs/metrics.md):\n";
  for (const auto& name : metric_names())
    text += fmt::format("  {:<14} {}\n", name, metric_description(name));
  for (const auto& name : image_metric_names())
    text += fmt::format("  {:<14} {} (only when named)\n", name, metric_description(name));
  return text;
}

}  // namespace

int evaluate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& /*err*/) {
  po::options_description opts("Evaluation");
  // clang-format off
  opts.add_options()
      ("samples", po::value<std::string>(), "samples to evaluate: .npy of shape (n, d) (required)")
      ("reference", po::value<std::string>(),
       fmt::format("{}, a mixture FILE.json, fashion_mnist[:train|:test][:class=K] (the images as points), or "
                   "points REF.npy of shape (m, d) (required)",
                   fmt::join(builtin_data_names(), ", ")).c_str())
      ("dim", po::value<Index>()->default_value(0), "dimension of gaussian (0: the samples'); checked otherwise")
      ("reference-n", po::value<Index>(),
       "exact reference points drawn from a distribution or mixture file (default min(10 n, 100000)); not with "
       "REF.npy")
      ("out", po::value<std::string>(), "output METRICS.json (required)")
      ("quiet", po::bool_switch(), "print nothing on success");
  // clang-format on
  po::options_description visible;
  visible.add(opts).add(option_group("Metrics", metrics_option_table(), MetricsOptions{}));
  po::variables_map vm;
  if (!parse_arguments(args, visible, usage_with_metrics(), vm, out)) return 0;

  // Options first, files next: a mistake in the options costs no reading.
  if (!vm.count("samples"))
    throw ConfigError("--samples: required; name the .npy file of samples to evaluate");
  if (!vm.count("reference"))
    throw ConfigError(
        fmt::format("--reference: required; name a built-in distribution ({}), a mixture file "
                    "FILE.json, or points REF.npy",
                    fmt::join(builtin_data_names(), ", ")));
  if (!vm.count("out")) throw ConfigError("--out: required; name the .json file to write");
  const std::string samples_path = vm["samples"].as<std::string>();
  const std::string reference = vm["reference"].as<std::string>();
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "metrics.json");

  MetricsOptions options;
  read_group(metrics_option_table(), vm, options);

  const bool images_reference = is_fashion_mnist(reference);  // the images themselves, as points
  const bool points_reference = ends_with(reference, ".npy") || images_reference;
  const bool builtin = contains_name(builtin_data_names(), reference);
  if (!points_reference && !builtin && !ends_with(reference, ".json"))
    throw ConfigError(
        fmt::format("--reference = {}: not a built-in distribution ({}), a mixture file ending in .json, "
                    "fashion_mnist[:train|:test][:class=K], nor points ending in .npy",
                    reference, fmt::join(builtin_data_names(), ", ")));
  const auto metrics = requested_metrics(options, !points_reference);
  Index dim = vm["dim"].as<Index>();
  require(dim >= 0, "--dim", std::to_string(dim), "must be >= 0 (0: the samples' dimension)");
  if (points_reference && vm.count("reference-n"))
    throw ConfigError(
        fmt::format("--reference-n: only for a distribution or mixture file; the points of {} are "
                    "used as they are",
                    reference));
  if (vm.count("reference-n")) {
    const Index m = vm["reference-n"].as<Index>();
    require(m >= 4 && m <= reference_first_index, "--reference-n", std::to_string(m),
            fmt::format("must be in [4, {}]", reference_first_index));
  }

  const Matrix samples = read_points("--samples", samples_path);
  const Index n = samples.cols(), d = samples.rows();
  if (dim != 0 && dim != d)
    throw ConfigError(fmt::format("--dim = {}: the samples in {} are {}-dimensional", dim, samples_path, d));
  if (dim == 0 && reference == "gaussian") dim = d;

  std::shared_ptr<const GaussianMixture> mixture;
  Matrix reference_set;
  nlohmann::ordered_json reference_json;
  if (points_reference) {
    reference_set = images_reference ? load_training_data(reference, 1, 0, 0) : read_points("--reference", reference);
    if (reference_set.rows() != d)
      throw ConfigError(
          fmt::format("--reference = {}: points of dimension {}, but the samples in {} are {}-dimensional",
                      reference, reference_set.rows(), samples_path, d));
    reference_json = {{"kind", "points"}, {"file", reference}, {"n", reference_set.cols()}, {"dim", d}};
  } else {
    try {
      mixture = load_data(reference, dim);
    } catch (const InputError& e) {
      throw InputError(fmt::format("--reference: {}", e.what()));
    }
    if (mixture->dim() != d)
      throw ConfigError(
          fmt::format("--samples = {}: points of dimension {}, but --reference {} is {}-dimensional",
                      samples_path, d, reference, mixture->dim()));
    const Index m = vm.count("reference-n") ? vm["reference-n"].as<Index>() : default_reference_count(n);
    reference_set = reference_points(*mixture, options.seed, m);
    reference_json = {
        {"kind", "mixture"},
        {"name", reference},
        {"components", mixture->components()},
        {"n", m},
        {"dim", d},
        {"points", fmt::format("exact samples {} .. {} of GaussianMixture::sample with seed {}",
                               reference_first_index, reference_first_index + m - 1, options.seed)}};
  }

  const auto started = std::chrono::steady_clock::now();
  const auto results = evaluate_metrics(samples, reference_set, mixture.get(), options);
  std::optional<ModeCounts> modes;
  if (mixture && (contains_name(metrics, "mode_coverage") || contains_name(metrics, "mode_chi2")))
    modes = mode_counts(*mixture, samples, options.threads);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  nlohmann::ordered_json resolved;
  resolved["samples"] = samples_path;
  resolved["reference"] = reference;
  resolved["dim"] = d;
  MetricsOptions as_run = options;  // the metrics resolved for the reference
  as_run.metrics = metrics;
  for (const auto& spec : metrics_option_table()) {
    resolved[spec.key] = spec.get(as_run);
    if (spec.key == "metrics")  // the reference points beside the metrics, as before
      resolved["reference-n"] =
          points_reference ? nlohmann::ordered_json() : nlohmann::ordered_json(reference_set.cols());
  }
  resolved["out"] = out_path;

  nlohmann::ordered_json meta;
  meta["command"] = command_line("evaluate", resolved);
  meta["options"] = resolved;
  meta["inputs"] = input_files({{"samples", samples_path}, {"reference", data_source_file(reference)}});
  meta["samples"] = {{"file", samples_path}, {"n", n}, {"dim", d}};
  meta["reference"] = reference_json;
  nlohmann::ordered_json used;
  if (contains_name(metrics, "sliced_w2"))
    used["sliced_w2_directions"] = sliced_w2_directions(d, options.projections);
  if (contains_name(metrics, "mmd2") || contains_name(metrics, "energy"))
    used["quadratic_n"] = quadratic_count(n, reference_set.cols(), options);
  if (contains_name(metrics, "mmd2"))
    used["mmd_bandwidth"] = resolve_mmd_bandwidth(reference_set, n, options);
  meta["resolved"] = used;
  nlohmann::ordered_json values;
  for (const auto& [name, v] : results) values[name] = {{"value", v.value}, {"std_error", v.std_error}};
  meta["metrics"] = values;
  if (modes) {
    meta["modes"] = {
        {"counts", std::vector<double>(modes->counts.begin(), modes->counts.end())},
        {"expected", std::vector<double>(modes->expected.begin(), modes->expected.end())},
        {"chi2", modes->chi2},
        {"dof", modes->dof},
        {"p_value", modes->p_value},
        {"coverage_rule",
         "count >= ceil(w_k n / 2), samples assigned to their highest-responsibility component"}};
  }
  meta["wall_seconds"] = seconds;
  meta["context"] = build_context();
  meta["context"]["threads"] = options.threads;
  write_text_atomically(out_path, meta.dump(2) + "\n");

  if (vm["quiet"].as<bool>()) return 0;
  out << fmt::format("{}: {} samples of dimension {}\n", samples_path, n, d);
  out << fmt::format(
      "reference {}: {} {}\n\n", reference, reference_set.cols(),
      points_reference ? "points" : fmt::format("exact points drawn with seed {}", options.seed));
  out << fmt::format("{:<14} {:>13} {:>11}  {}\n", "metric", "value", "std. error", "");
  for (const auto& [name, v] : results)
    out << fmt::format("{:<14} {:>13.6g} {:>11.3g}  {}\n", name, v.value, v.std_error,
                       metric_description(name));
  if (modes)
    out << fmt::format("modes: {} components, chi-square {:.4g} on {} dof, p = {:.3g}\n",
                       modes->counts.size(), modes->chi2, modes->dof, modes->p_value);
  out << fmt::format("wrote {} ({:.2f} s)\n", out_path, seconds);
  return 0;
}

}  // namespace scoresde
