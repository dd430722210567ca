#include "experiments/cli/cli.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <boost/program_options/errors.hpp>
#include <iostream>
#include <new>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/noise.hpp"
#include "core/sde.hpp"
#include "core/time_grid.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/datasets.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace {
const char* main_usage =
    "scoresde: score-based generative modelling with stochastic differential equations\n\n"
    "Usage: scoresde COMMAND [options]     (scoresde COMMAND --help for a command's options)\n\n"
    "Commands:\n"
    "  sample          draw samples with a reverse-SDE or probability-flow ODE sampler; writes .npy + .json\n"
    "  study           a grid of runs (data x SDE x sampler x steps x seeds) scored by metrics; CSV, JSON, INI\n"
    "  report          figures and a summary of a study directory (matplotlib)\n"
    "  convergence     measured convergence orders of samplers beside the declared ones; CSV, JSON and a figure\n"
    "  evaluate        sample-quality metrics of samples against a distribution or reference points, with SEs\n"
    "  likelihood      per-point log p through the probability-flow ODE; writes .npy + .json (NLL, bits/dim)\n"
    "  train           fit an MLP score network by denoising score matching; writes a checkpoint\n"
    "  evaluate-score  relative L2 error of a trained model's score against the exact score\n"
    "  compare         every built-in sampler side by side on one data set: NFE, time, quality\n"
    "  fit-mixture     a class-conditional Gaussian mixture fitted to Fashion-MNIST (784-D, exact score)\n"
    "  gaussian-law    the exact law of a sampler's output on Gaussian data: mean, covariance, W2 and KL to p_0\n"
    "  brownian        the Brownian increments the stochastic samplers draw, for running other code on them\n"
    "  list            SDEs, samplers, predictors, correctors, ODE methods, noise sources and built-in data\n"
    "  version         version, git revision and compiler\n\n"
    "Documentation: docs/ in the source tree (docs/cli.md for every command, with examples).\n";
}

namespace {

// Which sampler options each sampler uses, from sampler_option_table(): the options every configuration uses, then
// each configuration's own (pc with a corrector; ode per method, as fixed-step and adaptive methods differ).
void list_sampler_options(std::ostream& out) {
  std::vector<std::pair<std::string, SamplerOptions>> configs;
  for (const auto& name : sampler_names()) {
    SamplerOptions o;
    o.sampler = name;
    if (name != ode_sampler) {
      configs.emplace_back(name, o);
      continue;
    }
    for (const auto& method : ode_method_registry()) {
      o.ode_method = method.name;
      configs.emplace_back(fmt::format("{} --ode-method {}", name, method.name), o);
    }
  }
  const auto& table = sampler_option_table();
  std::vector<std::string> common;
  for (const auto& spec : table)
    if (spec.key != "sampler" &&
        std::all_of(configs.begin(), configs.end(), [&](const auto& c) { return spec.used_by(c.second); }))
      common.push_back("--" + spec.key);
  out << "sampler options: (scoresde sample --help describes them; defaults apply where a sampler ignores one)\n";
  out << fmt::format("  {:<24} {}\n", "every sampler", fmt::join(common, " "));
  for (const auto& [label, o] : configs) {
    std::vector<std::string> own;
    for (const auto& spec : table)
      if (spec.key != "sampler" && spec.used_by(o) &&
          std::find(common.begin(), common.end(), "--" + spec.key) == common.end())
        own.push_back("--" + spec.key);
    out << fmt::format("  {:<24} {}\n", label, own.empty() ? "-" : fmt::format("{}", fmt::join(own, " ")));
  }
  // Options that no sampler uses at the other options' defaults (--rho: only with --time-grid karras).
  std::vector<std::string> conditional;
  for (const auto& spec : table)
    if (spec.key != "sampler" &&
        std::none_of(configs.begin(), configs.end(), [&](const auto& c) { return spec.used_by(c.second); }))
      conditional.push_back("--" + spec.key);
  if (!conditional.empty())
    out << fmt::format("  {:<24} {}   (see --help)\n", "with other options", fmt::join(conditional, " "));
}

}  // namespace

int list_command(std::ostream& out) {
  out << "SDEs:         " << fmt::format("{}", fmt::join(sde_names(), ", ")) << "\n";
  out << "samplers:     " << fmt::format("{}", fmt::join(sampler_names(), ", ")) << "\n";
  out << "predictors:   (for --sampler pc; the samplers of the same name use them alone)\n";
  for (const auto& e : predictor_registry()) {
    const auto p = e.make(SamplerOptions{});
    const auto& i = p->info();
    out << fmt::format("  {:<18} {}  [strong {}, weak {}, {} NFE/step; {}]\n", i.name, i.summary, i.strong_order,
                       i.weak_order, i.evals_per_step, i.reference);
  }
  out << "  none\n";
  out << "correctors:\n";
  for (const auto& e : corrector_registry()) {
    const auto c = e.make(SamplerOptions{});
    const auto& i = c->info();
    out << fmt::format("  {:<18} {}  [{} NFE/iteration; {}]\n", i.name, i.summary, i.evals_per_step, i.reference);
  }
  out << "  none\n";
  out << "ODE methods:  (for --sampler ode)\n";
  for (const auto& e : ode_method_registry()) {
    if (e.adaptive) {
      out << fmt::format(
          "  {:<18} adaptive Dormand-Prince 5(4), --rtol/--atol  [order {}; 1 + 6 NFE per attempted step]\n", e.name,
          e.order);
    } else {
      const auto p = e.make(SamplerOptions{});
      out << fmt::format("  {:<18} {}  [order {}, {} NFE/step]\n", e.name, p->info().summary, e.order,
                         p->info().evals_per_step);
    }
  }
  list_sampler_options(out);
  out << "noise:        " << fmt::format("{}", fmt::join(noise_names(), ", ")) << "\n";
  out << "time grids:   " << fmt::format("{}", fmt::join(time_grid_names(), ", "))
      << ", or a FILE of times (--time-grid; docs/samplers.md)\n";
  out << "data:         " << fmt::format("{}", fmt::join(builtin_data_names(), ", ")) << ", or a mixture FILE.json\n";
  out << "training data: " << fmt::format("{}", fmt::join(training_data_names(), ", "))
      << ", a mixture FILE.json, or samples in FILE.npy / FILE.csv\n";
  return 0;
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << main_usage;
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    out << main_usage;
    return 0;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  // The library's notes (core/errors.hpp: notice) go to this command's error stream while it runs.
  struct NoticesToErr {
    NoticeSink previous;
    explicit NoticesToErr(std::ostream& err)
        : previous(set_notice_sink([&err](const std::string& text) { err << "scoresde: note: " << text << "\n"; })) {}
    ~NoticesToErr() { set_notice_sink(std::move(previous)); }
  } notices_to_err(err);
  try {
    if (command == "sample") return sample_command(rest, out, err);
    if (command == "compare") return compare_command(rest, out, err);
    if (command == "study") return study_command(rest, out, err);
    if (command == "report") return report_command(rest, out, err);
    if (command == "convergence") return convergence_command(rest, out, err);
    if (command == "evaluate") return evaluate_command(rest, out, err);
    if (command == "likelihood") return likelihood_command(rest, out, err);
    if (command == "train") return train_command(rest, out, err);
    if (command == "evaluate-score") return evaluate_score_command(rest, out, err);
    if (command == "gaussian-law") return gaussian_law_command(rest, out, err);
    if (command == "brownian") return brownian_command(rest, out, err);
    if (command == "fit-mixture") return fit_mixture_command(rest, out, err);
    if ((command == "list" || command == "version") && !rest.empty()) {
      if (rest.size() == 1 && (rest[0] == "--help" || rest[0] == "-h")) {
        out << fmt::format("Usage: scoresde {}   (takes no options)\n", command);
        return 0;
      }
      err << fmt::format("scoresde {}: takes no options or arguments; found '{}'\n", command, rest[0]);
      return 2;
    }
    if (command == "list") return list_command(out);
    if (command == "version" || command == "--version") {
      out << fmt::format("scoresde {} ({}), {}\n", version(), git_revision(),
                         build_context()["compiler"].get<std::string>());
      return 0;
    }
    err << fmt::format(
        "scoresde: unknown command '{}'; choose one of sample, study, report, convergence, evaluate, likelihood, "
        "train, evaluate-score, fit-mixture, gaussian-law, compare, brownian, list, version\n",
        command);
    return 2;
  } catch (const ConfigError& e) {
    err << fmt::format("scoresde {}: {}\n", command, e.what());
    return 2;
  } catch (const InputError& e) {
    err << fmt::format("scoresde {}: {}\n", command, e.what());
    return 2;
  } catch (boost::program_options::error& e) {
    err << fmt::format("scoresde {}: {} (see scoresde {} --help)\n", command, program_options_message(e), command);
    return 2;
  } catch (const NumericalError& e) {
    err << fmt::format("scoresde {}: the sampler diverged: {}; nothing was written\n", command, e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    err << fmt::format(
        "scoresde {}: out of memory; the run needs more than this machine has (see -n, --dim, --chunk)\n", command);
    return 1;
  } catch (const std::exception& e) {
    err << fmt::format("scoresde {}: unexpected error: {}\n", command, e.what());
    return 1;
  }
}

}  // namespace scoresde
