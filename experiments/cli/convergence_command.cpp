// scoresde convergence: measured convergence orders of samplers beside their declared ones
// (experiments/metrics/convergence.hpp), written as DIR/orders.csv, DIR/errors.csv, DIR/convergence.json and a
// log-log figure DIR/convergence.png.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <utility>
#include <thread>

#include <Eigen/Cholesky>

#include "convergence_script.hpp"  // generated at configure time from experiments/cli/convergence_plot.py
#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "experiments/cli/python_script.hpp"
#include "experiments/metrics/convergence.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/datasets.hpp"
#include "models/score_factory.hpp"
#include "solvers/gaussian_law.hpp"

namespace scoresde {

namespace {

// clang-format off
const char* convergence_usage =
    "Usage: scoresde convergence --sde S --data D --sampler LIST [sampler options] --steps 10,20,40,80,160\n"
    "                            [-n 1000] --out DIR\n\n"
    "Runs each sampler of LIST at each step count from the same latents (the prior draws of --seed) and on the same\n"
    "Brownian path (--noise brownian_tree, the default here), measures its error, and fits the order as the\n"
    "least-squares slope of log(error) against log(1/N), with the slope's standard error from the regression:\n"
    "  path    probability-flow samplers: RMS |x - x_ref| against dopri5 at rtol = atol = --reference-tol\n"
    "  strong  SDE samplers: RMS |x - x_ref| against the same sampler on its grid refined --refine times, on the\n"
    "          same Brownian path (under --denoise on the last, noise-free step is kept whole in both)\n"
    "  weak    W2 (not squared) between the exact output law and the exact law at t_N, where the exact Gaussian\n"
    "          law applies\n"
    "Writes\n"
    "  DIR/orders.csv        sampler,label,kind,declared_order,measured_order,slope_se\n"
    "  DIR/errors.csv        sampler,label,kind,steps,nfe,error,error_se,error_max (the points of the fits)\n"
    "  DIR/convergence.json  the command, every resolved option, each configuration's options, the results and\n"
    "                        the build context (version, git revision)\n"
    "  DIR/convergence.png   error against NFE, log-log (matplotlib under --python)\n"
    "Sampler options apply to every sampler of LIST that uses them. On a single Gaussian a method may converge\n"
    "faster than declared (some error terms vanish for an affine score): the slope is reported, not clipped.\n"
    "Not measurable: Langevin correctors (pc with a corrector), adaptive methods (dopri5), SDE samplers under\n"
    "--noise independent.\n\n"
    "Examples:\n"
    "  scoresde convergence --sde vp --data eight_gaussians --sampler ddim,dpmpp_2m,dpmpp_3m,unipc \\\n"
    "                       --time-grid logsnr --lower-order-final off --steps 20,40,80,160,320 --out runs/orders\n"
    "  scoresde convergence --sde ve --sampler dpm_solver,lms --order 3 --time-grid logsnr --lower-order-final off \\\n"
    "                       --short-start on --steps 80,160,320,640 -n 64 --out runs/order3\n"
    "  scoresde convergence --sde vp --data gaussian --dim 2 --sampler euler_maruyama,reverse_diffusion,ancestral \\\n"
    "                       --denoise off --steps 32,64,128,256 -n 512 --out runs/strong\n";
// clang-format on

// The weak error's hook (ConvergenceSettings::weak_error): on a single Gaussian N(m, S), W2 (not squared) between the
// exact output law of a configuration (solvers/gaussian_law.hpp, no sampling) and the exact law it approximates: p at
// the grid's end t_N, N(alpha m, V) with V = alpha^2 S + sigma^2 I, or under --denoise-to-zero the law of the exact
// data prediction x0_hat = (x + sigma^2 s(x)) / alpha of x ~ p_{t_N}, N(m, alpha^2 S V^{-1} S). Empty for other data;
// nullopt for a configuration the exact law does not apply to (gaussian_law_not_applicable).
std::function<std::optional<double>(const SamplerOptions&)> exact_law_weak_error(const std::string& data, Index dim,
                                                                                 const Sde& sde,
                                                                                 const ScoreModel& model) {
  if (!has_exact_mixture(data)) return {};
  const auto mixture = load_data(data, dim);
  if (mixture->components() != 1) return {};
  const Vector m = mixture->means().col(0);
  const Matrix s = mixture->covariance(0);
  return [&sde, &model, m, s](const SamplerOptions& options) -> std::optional<double> {
    if (gaussian_law_not_applicable(options)) return std::nullopt;
    const GaussianLaw law = gaussian_output_law(sde, model, options);
    const double t = options.grid(sde).t.back(), alpha = sde.alpha(t), sigma = sde.sigma(t);
    const Matrix v = alpha * alpha * s + sigma * sigma * Matrix::Identity(s.rows(), s.cols());
    const bool tweedie = options.denoise_to_zero;
    const Vector target_mean = tweedie ? m : Vector(alpha * m);
    const Matrix target_cov = tweedie ? Matrix(alpha * alpha * s * v.llt().solve(s)) : v;
    return std::sqrt(std::max(0.0, gaussian_w2(law.mean, law.covariance, target_mean, target_cov)));
  };
}

// Writes text files as a set: each is complete in its temporary file before any is renamed into place (the later
// ones first), and if anything fails none of them is left.
void write_texts_from(const std::vector<std::pair<std::string, std::string>>& files, std::size_t first,
                      std::vector<std::string>& renamed) {
  if (first == files.size()) return;
  // Named references rather than a structured binding: clang 14 (the sanitized tree) cannot capture bindings.
  const std::string& path = files[first].first;
  const std::string& text = files[first].second;
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
    write_texts_from(files, first + 1, renamed);
  });
  renamed.push_back(path);
}

void write_texts_atomically(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<std::string> renamed;
  try {
    write_texts_from(files, 0, renamed);
  } catch (...) {
    for (const auto& path : renamed) std::remove(path.c_str());
    throw;
  }
}

}  // namespace

int convergence_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  SamplerOptions defaults;
  defaults.noise = NoiseKind::brownian_tree;
  defaults.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const ConvergenceSettings default_settings;
  po::options_description data("Data, measurement and output");
  // clang-format off
  data.add_options()
      ("data", po::value<std::string>()->default_value("eight_gaussians"),
       "eight_gaussians, gaussian (with --dim), or a mixture file FILE.json (its exact score)")
      ("dim", po::value<Index>()->default_value(0), "dimension for gaussian; checked against a mixture file")
      ("sampler", po::value<std::string>(), "comma-separated samplers (required), e.g. ddim,dpmpp_2m,unipc")
      ("steps", po::value<std::string>()->default_value("10,20,40,80,160"),
       "comma-separated increasing step counts, at least 3")
      ("samples,n", po::value<Index>()->default_value(default_settings.samples), "samples per run")
      ("refine", po::value<int>()->default_value(default_settings.path.refine),
       "steps of an SDE sampler's reference per step of the run")
      ("reference-tol", po::value<double>()->default_value(default_settings.path.rtol),
       "rtol = atol of the dopri5 reference of probability-flow samplers")
      ("short-start", po::value<std::string>()->default_value("off"),
       "on: cut each grid's first step into three of min(dl^2, dl/4) in log-SNR (dl its log-SNR length): the multistep "
       "methods' lower-order warm-up steps then no longer cap their order at 2")
      ("out", po::value<std::string>(), "output directory (required; created if missing)")
      ("python", po::value<std::string>()->default_value("/usr/bin/python3"), "the interpreter that draws the figure")
      ("quiet", po::bool_switch(), "print nothing on success");
  // clang-format on
  po::options_description visible;
  visible.add(data).add(sde_option_group());
  visible.add(option_group<SamplerOptions>(
      "Sampler options (for every sampler of --sampler)", sampler_option_table(), defaults,
      [](const OptionSpec<SamplerOptions>& spec) { return spec.key != "sampler" && spec.key != "steps"; }));
  po::variables_map vm;
  if (!parse_arguments(args, visible, convergence_usage, vm, out)) return 0;

  if (!vm.count("sampler")) throw ConfigError("--sampler: required; name the samplers to measure, e.g. ddim,unipc");
  if (!vm.count("out")) throw ConfigError("--out: required; name the directory to write");
  const std::string dir = vm["out"].as<std::string>();
  {
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
      throw ConfigError(fmt::format("--out = {}: exists and is not a directory", dir));
  }
  ConvergenceSettings settings;
  settings.samples = vm["samples"].as<Index>();
  settings.path.refine = vm["refine"].as<int>();
  settings.path.rtol = settings.path.atol = vm["reference-tol"].as<double>();
  const std::string short_start = vm["short-start"].as<std::string>();
  require(short_start == "on" || short_start == "off", "--short-start", short_start, "give on or off");
  settings.short_start = short_start == "on";
  settings.steps.clear();
  const std::string steps_text = vm["steps"].as<std::string>();
  for (const auto& item : split_list(steps_text)) {
    std::size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item.empty())
      throw ConfigError(fmt::format("--steps = {}: \"{}\" is not an integer", steps_text, item));
    settings.steps.push_back(value);
  }
  settings.validate();

  const SdeOptions sde_options = sde_options_from(vm);
  const auto sde = make_sde(sde_options);
  const std::string data_name = vm["data"].as<std::string>();
  const auto scored = make_score_model(ScoreSpec::exact(data_name, vm["dim"].as<Index>()), *sde);
  const ScoreModel& model = *scored.model;

  SamplerOptions base = defaults;
  for (const auto& spec : sampler_option_table())  // --sampler and --steps are this command's lists
    if (spec.key != "sampler" && spec.key != "steps" && vm.count(spec.key))
      spec.set(base, vm[spec.key].as<std::string>());
  if (base.grid_from_file())
    throw ConfigError(
        fmt::format("--time-grid = {}: a file fixes the step count; give a named grid ({}) so that "
                    "--steps can vary it",
                    base.time_grid, fmt::join(time_grid_names(), ", ")));
  const auto& sampler_spec = *find_option(sampler_option_table(), "sampler");
  std::vector<ConvergenceCase> cases;
  const std::string sampler_text = vm["sampler"].as<std::string>();
  for (const auto& name : split_list(sampler_text)) {
    SamplerOptions o = base;
    if (const auto problem = sampler_spec.parse(o, name))
      throw ConfigError(fmt::format("--sampler = {}: \"{}\": {}", sampler_text, name, *problem));
    apply_sampler_defaults(sampler_option_table(), vm, name, o);
    o.steps = settings.steps.front();
    o.validate(*sde);
    cases.push_back(convergence_case(o));
  }
  if (cases.empty()) throw ConfigError(fmt::format("--sampler = {}: names no sampler", sampler_text));
  settings.weak_error = exact_law_weak_error(data_name, vm["dim"].as<Index>(), *sde, model);
  const bool quiet = vm["quiet"].as<bool>();
  if (!quiet)
    settings.progress = [&](const std::string& label, int steps) {
      err << fmt::format("\rconvergence: {} at {} steps ...{}", label, steps, std::string(20, ' ')) << std::flush;
    };

  const auto started = std::chrono::steady_clock::now();
  const auto results = measure_convergence(*sde, model, cases, settings);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!quiet) err << "\r" << std::string(80, ' ') << "\r" << std::flush;

  // The record: every resolved option, each configuration's options, the results, the build context.
  nlohmann::ordered_json resolved;
  resolved["data"] = data_name;
  resolved["dim"] = model.dim();
  resolved["sampler"] = sampler_text;
  resolved["steps"] = fmt::format("{}", fmt::join(settings.steps, ","));
  resolved["samples"] = settings.samples;
  resolved["refine"] = settings.path.refine;
  resolved["reference-tol"] = settings.path.rtol;
  resolved["short-start"] = short_start;
  resolved["out"] = dir;
  record(sde_options, resolved);
  const auto shared_options = to_json(base, *sde);
  for (const auto& [key, value] : shared_options.items())
    if (key != "sampler" && key != "steps") resolved[key] = value;
  nlohmann::ordered_json record;
  record["command"] = command_line("convergence", resolved);
  record["options"] = resolved;
  record["inputs"] = input_files({{"data", data_source_file(data_name)}});
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& r : results) {
    nlohmann::ordered_json row;
    row["sampler"] = r.sampler;
    row["label"] = r.label;
    row["kind"] = to_string(r.kind);
    row["declared_order"] = r.declared_order;
    row["measured_order"] = r.measured.order;
    row["slope_se"] =
        std::isfinite(r.measured.order_se) ? nlohmann::ordered_json(r.measured.order_se) : nlohmann::ordered_json();
    row["reference"] = r.reference;
    for (const auto& c : cases)
      if (c.label == r.label) row["options"] = to_json(c.options, *sde);
    for (const auto& p : r.points)
      row["points"].push_back({{"steps", p.steps},
                               {"nfe", p.nfe},
                               {"error", p.error.value},
                               {"error_se", p.error.std_error},
                               {"error_max", p.error_max}});
    rows.push_back(row);
  }
  record["results"] = rows;
  record["wall_seconds"] = seconds;
  record["context"] = build_context();
  record["context"]["threads"] = base.threads;

  // The three files as a set, in a directory this run may create: a failed write leaves neither files nor the
  // directory.
  OutputDirectory output(dir);
  const std::filesystem::path d(dir);
  write_texts_atomically({{(d / "orders.csv").string(), orders_csv(results)},
                          {(d / "errors.csv").string(), errors_csv(results)},
                          {(d / "convergence.json").string(), record.dump(2) + "\n"}});
  output.commit();
  if (!quiet) {
    out << fmt::format("{:<44} {:<6} {:>8} {:>9} {:>8}\n", "configuration", "kind", "declared", "measured", "se");
    for (const auto& r : results)
      out << fmt::format("{:<44} {:<6} {:>8} {:>9.3f} {:>8.3f}\n", r.label, to_string(r.kind), r.declared_order,
                         r.measured.order, r.measured.order_se);
    out << fmt::format("wrote {}/orders.csv, errors.csv and convergence.json ({:.1f} s)\n", dir, seconds);
  }
  out << std::flush;
  err << std::flush;
  std::cout << std::flush;
  const int status = run_python_script(vm["python"].as<std::string>(), convergence_script, {dir, quiet ? "quiet" : ""});
  if (status != 0) {
    err << fmt::format("convergence: the plotting script failed (exit status {}); the CSV and JSON files are written\n",
                       status);
    return status == 2 ? 2 : 1;
  }
  return 0;
}

}  // namespace scoresde
