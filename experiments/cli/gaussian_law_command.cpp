// scoresde gaussian-law: the exact law of a sampler's output on Gaussian data (solvers/gaussian_law.hpp), with its
// squared W2 distance and KL divergence to the data law p_0, written as LAW.json with the resolved options and the
// build context.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/datasets.hpp"
#include "models/score_factory.hpp"
#include "solvers/gaussian_law.hpp"

namespace scoresde {

namespace {

// clang-format off
const char* gaussian_law_usage =
    "Usage: scoresde gaussian-law --data gaussian|FILE.json [--dim D] [--sde vp|subvp|ve] --sampler NAME\n"
    "                             [its options] [--steps N] [--time-grid G] --out LAW.json\n\n"
    "The exact law of the sampler's output, started from the prior law, when the data are a single Gaussian\n"
    "(the built-in `gaussian` in dimension --dim, or a mixture FILE.json with one component). The exact score is\n"
    "then affine, so every fixed-step sampler (not the Langevin correctors, not the adaptive ones) maps the prior\n"
    "draw and its Brownian increments affinely to its output, and the output is Gaussian: its mean and covariance\n"
    "are read off the sampler itself by propagating probes (docs/exact-error.md), with no sampling error. Writes\n"
    "LAW.json: mean, covariance, gaussian_w2 (the squared 2-Wasserstein distance to p_0, closed form),\n"
    "gaussian_kl (KL(output || p_0)), nfe, and the resolved options and build context.\n\n"
    "Examples:\n"
    "  scoresde gaussian-law --data gaussian --dim 4 --sde vp --sampler euler_maruyama --steps 100 --out em.json\n"
    "  scoresde gaussian-law --data docs/data/gaussian10.json --sampler dpmpp_2m --time-grid logsnr --steps 10 \\\n"
    "                        --out dpmpp.json\n";
// clang-format on

nlohmann::ordered_json matrix_json(const Matrix& m) {
  auto rows = nlohmann::ordered_json::array();
  for (Index i = 0; i < m.rows(); ++i) {
    auto row = nlohmann::ordered_json::array();
    for (Index j = 0; j < m.cols(); ++j) row.push_back(m(i, j));
    rows.push_back(row);
  }
  return rows;
}

nlohmann::ordered_json vector_json(const Vector& v) {
  auto out = nlohmann::ordered_json::array();
  for (Index i = 0; i < v.size(); ++i) out.push_back(v(i));
  return out;
}

}  // namespace

int gaussian_law_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& /*err*/) {
  po::options_description data("Data and output");
  // clang-format off
  data.add_options()
      ("data", po::value<std::string>(), "gaussian (with --dim) or a mixture file FILE.json with one component")
      ("dim", po::value<Index>()->default_value(0), "dimension for gaussian; checked against a mixture file")
      ("out", po::value<std::string>(), "output LAW.json (required)")
      ("quiet", po::bool_switch(), "print nothing on success");
  // clang-format on
  po::options_description visible;
  visible.add(data).add(sde_option_group()).add(sampler_option_group());
  po::variables_map vm;
  if (!parse_arguments(args, visible, gaussian_law_usage, vm, out)) return 0;

  if (!vm.count("data"))
    throw ConfigError("--data: required; give gaussian (with --dim) or a mixture FILE.json with one component");
  if (!vm.count("out")) throw ConfigError("--out: required; name the LAW.json file to write");
  const std::string data_name = vm["data"].as<std::string>();
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "law.json");
  if (!has_exact_mixture(data_name))
    throw ConfigError(fmt::format(
        "--data = {}: has no closed-form density; the exact law needs a single Gaussian: gaussian (with --dim) or a "
        "mixture FILE.json with one component",
        data_name));
  const auto mixture = load_data(data_name, vm["dim"].as<Index>());
  if (mixture->components() != 1)
    throw ConfigError(fmt::format(
        "--data = {}: a mixture of {} components; the exact law needs a single Gaussian (the exact score is affine "
        "only then): gaussian (with --dim) or a mixture FILE.json with one component",
        data_name, mixture->components()));

  const SdeOptions sde_options = sde_options_from(vm);
  const auto sde = make_sde(sde_options);
  SamplerOptions sampler_options = sampler_options_from(vm);
  sampler_options.adopt_grid_file(*sde, given(vm, "steps"));
  sampler_options.validate(*sde);
  if (const auto why = gaussian_law_not_applicable(sampler_options)) throw ConfigError(*why);
  const std::vector<double> walked = sampler_options.walked_times(*sde);
  const auto model = mixture_score(mixture)->make(*sde);

  const auto started = std::chrono::steady_clock::now();
  const GaussianLaw law = gaussian_output_law(*sde, *model, sampler_options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const Vector m0 = mixture->means().col(0);
  const Matrix s0 = mixture->covariance(0);
  const double w2 = gaussian_w2(law.mean, law.covariance, m0, s0);
  const double kl = gaussian_kl(law.mean, law.covariance, m0, s0);
  // The exact law at the last grid time t_N: p_{t_N} = N(alpha m0, alpha^2 S0 + sigma^2 I).
  const double t_end = walked.back(), alpha = sde->alpha(t_end), sigma = sde->sigma(t_end);
  const Matrix s_end = alpha * alpha * s0 + sigma * sigma * Matrix::Identity(s0.rows(), s0.cols());
  const double w2_end = gaussian_w2(law.mean, law.covariance, alpha * m0, s_end);

  nlohmann::ordered_json resolved;
  resolved["data"] = data_name;
  resolved["dim"] = mixture->dim();
  resolved["out"] = out_path;
  record(sde_options, resolved);
  record(sampler_options, *sde, resolved);

  nlohmann::ordered_json result;
  result["mean"] = vector_json(law.mean);
  result["covariance"] = matrix_json(law.covariance);
  result["gaussian_w2"] = w2;
  // JSON has no infinity: a singular output covariance (KL infinite) is written as null.
  result["gaussian_kl"] = std::isfinite(kl) ? nlohmann::ordered_json(kl) : nlohmann::ordered_json();
  result["nfe"] = law.nfe;
  result["gaussian_w2_t_end"] = w2_end;
  result["t_end"] = t_end;
  result["brownian_draws"] = law.draws;
  result["data_law"] = {{"mean", vector_json(m0)}, {"covariance", matrix_json(s0)}};
  result["wall_seconds"] = seconds;
  result["command"] = command_line("gaussian-law", resolved);
  result["options"] = resolved;
  result["inputs"] = input_files({{"data", data_source_file(data_name)},
                                  {"time-grid", sampler_options.grid_from_file() ? sampler_options.time_grid : ""}});
  result["time_grid"] = walked;
  result["context"] = build_context();
  write_text_atomically(out_path, result.dump(2) + "\n");
  if (!vm["quiet"].as<bool>())
    out << fmt::format("wrote {}: gaussian_w2 {:.6g}, gaussian_kl {}, NFE {:.0f} ({} Brownian draws; {:.3f} s)\n",
                       out_path, w2, std::isfinite(kl) ? fmt::format("{:.6g}", kl) : "inf (singular covariance)",
                       law.nfe, law.draws, seconds);
  return 0;
}

}  // namespace scoresde
