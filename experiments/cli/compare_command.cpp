// scoresde compare: the built-in samplers side by side on one data set with its exact score, one row per
// (SDE, sampler), with NFE, wall time and sample quality against exact samples drawn with the same seed. This is
// the README's first command; issue "Experiment drivers" grows it into `scoresde study`.
#include <fmt/format.h>
#include <iostream>
#include <sstream>
#include <unistd.h>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/datasets.hpp"
#include "solvers/driver.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace {

const char* compare_usage =
    "Usage: scoresde compare [--data eight_gaussians] [--sdes vp,ve] [--steps 1000] [-n 10000] [--seed 0]\n"
    "                        [--threads 2] [--out TABLE.md]\n\n"
    "Runs every registered sampler (each predictor alone, pc with its default predictor and corrector, ode\n"
    "with each ODE method; see scoresde list) with the exact score and prints NFE, wall time and quality:\n"
    "the metrics nll (mean negative log-likelihood of the samples under the exact data density; exact samples\n"
    "give the reference row) and mode_coverage (share of modes with at least half their expected count), each\n"
    "with its standard error (docs/metrics.md). Combinations an SDE does not support are left out.\n";

struct Row {
  std::string sde, sampler;
  double nfe, seconds;
  MetricValue nll, coverage;
  std::string failure;
};

// The quality columns: the metrics nll and mode_coverage (experiments/metrics/metrics.hpp).
Row scored(std::string sde, std::string sampler, double nfe, double seconds, const GaussianMixture& mixture,
           ConstMatrixRef samples, int threads) {
  const ModeCounts modes = mode_counts(mixture, samples, threads);
  return {std::move(sde),
          std::move(sampler),
          nfe,
          seconds,
          mixture_nll(mixture, samples, threads),
          {modes.coverage, modes.coverage_se},
          ""};
}

}  // namespace

int compare_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description opts("Comparison");
  opts.add_options()
      ("data", po::value<std::string>()->default_value("eight_gaussians"), "eight_gaussians, gaussian or FILE.json")
      ("dim", po::value<Index>()->default_value(0), "dimension for gaussian")
      ("sdes", po::value<std::string>()->default_value("vp,ve"), "comma-separated SDEs")
      ("steps", po::value<int>()->default_value(1000), "time steps for the fixed-step samplers")
      ("samples,n", po::value<Index>()->default_value(10000), "samples per sampler")
      ("seed", po::value<std::uint64_t>()->default_value(0), "seed (the exact reference samples use it too)")
      ("threads", po::value<int>()->default_value(2), "worker threads")
      ("out", po::value<std::string>(), "also write the table as Markdown, with the build context");
  po::variables_map vm;
  if (!parse_arguments(args, opts, compare_usage, vm, out)) return 0;
  // Before the samplers run, not after: the table is written last.
  if (vm.count("out")) check_out_path(vm["out"].as<std::string>(), "compare.md");
  const auto mixture = load_data(vm["data"].as<std::string>(), vm["dim"].as<Index>());
  const Index n = vm["samples"].as<Index>();
  require(n >= 2, "-n/--samples", std::to_string(n), "must be >= 2");
  const auto sdes = split_list(vm["sdes"].as<std::string>());
  require(!sdes.empty(), "--sdes", vm["sdes"].as<std::string>(), "name at least one of vp, subvp, ve");

  // Every sampler of the registry with its default options: each predictor alone, pc with the default
  // predictor and corrector, ode with each ODE method (solvers/registry.hpp). A new sampler appears here by itself.
  struct Config {
    std::string label;
    SamplerOptions o;
  };
  SamplerOptions base;
  base.steps = vm["steps"].as<int>();
  base.seed = vm["seed"].as<std::uint64_t>();
  base.threads = vm["threads"].as<int>();
  std::vector<Config> configs;
  for (const auto& name : sampler_names()) {
    SamplerOptions o = base;
    o.sampler = name;
    if (name == ode_sampler) {
      for (const auto& method : ode_method_registry()) {
        o.ode_method = method.name;
        configs.push_back({"ode " + method.name, o});
      }
    } else if (name == pc_sampler) {
      configs.push_back({fmt::format("pc ({} + {})", o.predictor, o.corrector), o});
    } else {
      configs.push_back({name, o});
    }
  }

  // Progress on one terminal line; nothing when stderr is a file or a pipe.
  const bool show_progress = isatty(STDERR_FILENO);
  std::vector<Row> rows;
  Matrix exact(mixture->dim(), n);
  mixture->sample(vm["seed"].as<std::uint64_t>(), 0, exact);
  const int threads = vm["threads"].as<int>();
  rows.push_back(scored("-", "exact samples", 0, 0, *mixture, exact, threads));
  for (const auto& sde_name : sdes) {
    SdeOptions so;
    so.kind = sde_kind_from_string(sde_name);
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    // The command's own options (--steps, --threads) are checked with the default sampler: a mistake there is
    // an error. A combination the SDE does not support (ancestral on subvp, for one) is left out.
    base.validate(*sde);
    for (const auto& c : configs) {
      try {
        c.o.validate(*sde);
      } catch (const ConfigError&) {
        continue;
      }
      if (show_progress) err << fmt::format("\r  {} {} ...{}", sde_name, c.label, std::string(20, ' ')) << std::flush;
      try {
        const auto r = sample(*sde, model, c.o, n);
        rows.push_back(scored(sde_name, c.label, r.nfe_mean(), r.wall_seconds, *mixture, r.samples, threads));
      } catch (const NumericalError& e) {
        rows.push_back({sde_name, c.label, 0, 0, {}, {}, e.what()});
      }
    }
  }
  if (show_progress) err << "\r" << std::string(70, ' ') << "\r" << std::flush;

  std::string table =
      fmt::format("| SDE | sampler | NFE | time (s) | NLL (nats) | mode coverage |\n|---|---|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    if (!r.failure.empty()) {
      table += fmt::format("| {} | {} | - | - | diverged: {} | |\n", r.sde, r.sampler, r.failure);
      continue;
    }
    table += fmt::format("| {} | {} | {} | {} | {:.4f} ± {:.4f} | {:.4f} ± {:.4f} |\n", r.sde, r.sampler,
                         r.nfe > 0 ? fmt::format("{:.0f}", r.nfe) : "-",
                         r.seconds > 0 ? fmt::format("{:.3f}", r.seconds) : "-", r.nll.value, r.nll.std_error,
                         r.coverage.value, r.coverage.std_error);
  }
  const auto ctx = build_context();
  const std::string header = fmt::format(
      "{} samples of {} per row, exact score, {} steps for fixed-step samplers, seed {}, {} threads.\n"
      "scoresde {} ({}), {}, {}.\n\n",
      n, vm["data"].as<std::string>(), vm["steps"].as<int>(), vm["seed"].as<std::uint64_t>(),
      vm["threads"].as<int>(), version(), git_revision(), ctx["compiler"].get<std::string>(),
      ctx["date_utc"].get<std::string>());
  out << header << table;
  if (vm.count("out")) write_text_atomically(vm["out"].as<std::string>(), header + table);
  return 0;
}

}  // namespace scoresde
