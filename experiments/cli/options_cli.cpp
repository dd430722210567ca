#include "experiments/cli/options_cli.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>

#include "core/errors.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

po::options_description sde_parameter_group() {
  const SdeOptions d;
  po::options_description g("Forward SDE parameters");
  // clang-format off
  g.add_options()
      ("schedule", po::value<std::string>()->default_value("linear"), "vp/subvp noise schedule: linear or cosine")
      ("beta-min", po::value<double>()->default_value(d.beta_min, fmt::format("{}", d.beta_min)), "linear schedule: beta(0)")
      ("beta-max", po::value<double>()->default_value(d.beta_max, fmt::format("{}", d.beta_max)), "linear schedule: beta(T)")
      ("cosine-s", po::value<double>()->default_value(d.cosine_s, fmt::format("{}", d.cosine_s)), "cosine schedule offset s")
      ("sigma-min", po::value<double>()->default_value(d.sigma_min, fmt::format("{}", d.sigma_min)), "ve: sigma(0)")
      ("sigma-max", po::value<double>()->default_value(d.sigma_max, fmt::format("{}", d.sigma_max)), "ve: sigma(T); the prior is N(0, sigma_max^2 I)")
      ("T", po::value<double>(), "time horizon (default 1; 0.999 for the cosine schedule)");
  // clang-format on
  return g;
}

po::options_description sde_option_group() {
  po::options_description g("Forward SDE");
  g.add_options()("sde", po::value<std::string>()->default_value("vp"),
                  "vp (variance preserving), subvp, or ve (variance exploding)");
  g.add(sde_parameter_group());
  return g;
}

SdeOptions sde_parameters_from(const po::variables_map& vm) {
  SdeOptions o;
  o.schedule = vp_schedule_from_string(vm["schedule"].as<std::string>());
  o.beta_min = vm["beta-min"].as<double>();
  o.beta_max = vm["beta-max"].as<double>();
  o.cosine_s = vm["cosine-s"].as<double>();
  o.sigma_min = vm["sigma-min"].as<double>();
  o.sigma_max = vm["sigma-max"].as<double>();
  if (vm.count("T")) o.T = vm["T"].as<double>();
  return o;
}

SdeOptions sde_options_from(const po::variables_map& vm) {
  SdeOptions o = sde_parameters_from(vm);
  o.kind = sde_kind_from_string(vm["sde"].as<std::string>());
  o.validate();
  return o;
}

void record(const SdeOptions& o, nlohmann::ordered_json& out) {
  out["sde"] = to_string(o.kind);
  out["schedule"] = to_string(o.schedule);
  out["beta-min"] = o.beta_min;
  out["beta-max"] = o.beta_max;
  out["cosine-s"] = o.cosine_s;
  out["sigma-min"] = o.sigma_min;
  out["sigma-max"] = o.sigma_max;
  out["T"] = o.horizon();
}

po::options_description sampler_option_group() {
  const SamplerOptions d;
  po::options_description g("Sampler");
  // clang-format off
  g.add_options()
      ("sampler", po::value<std::string>()->default_value(d.sampler),
       fmt::format("{}   (scoresde list describes them)", fmt::join(sampler_names(), " | ")).c_str())
      ("predictor", po::value<std::string>()->default_value(d.predictor),
       fmt::format("pc: {}", fmt::join(predictor_names(), " | ")).c_str())
      ("corrector", po::value<std::string>()->default_value(d.corrector), 
       fmt::format("pc: {}", fmt::join(corrector_names(), " | ")).c_str())
      ("snr", po::value<double>()->default_value(d.snr, fmt::format("{}", d.snr)), "corrector signal-to-noise ratio r")
      ("corrector-steps", po::value<int>()->default_value(d.corrector_steps), "corrector iterations per step")
      ("langevin-norm", po::value<std::string>()->default_value(to_string(d.langevin_norm)),
       "langevin step norms: chunk (|z|, |s| averaged over the --chunk samples of a chunk, as the reference "
       "averages over its batch) or sample (per sample: biased, for comparison)")
      ("ode-method", po::value<std::string>()->default_value(d.ode_method), 
       fmt::format("ode: {}", fmt::join(ode_method_names(), " | ")).c_str())
      ("rtol", po::value<double>()->default_value(d.rtol, fmt::format("{}", d.rtol)), "dopri5 relative tolerance")
      ("atol", po::value<double>()->default_value(d.atol, fmt::format("{}", d.atol)), "dopri5 absolute tolerance")
      ("ode-control", po::value<std::string>()->default_value(to_string(d.ode_control)),
       "dopri5 step control: chunk (one step size per chunk) or sample (per sample)")
      ("steps", po::value<int>()->default_value(d.steps), "time steps N from T down to eps (fixed-step methods)")
      ("eps", po::value<double>(), "final time (default 1e-3 for vp/subvp, 1e-5 for ve)")
      ("denoise", po::value<std::string>()->default_value("on"), "on: the last step returns the noise-free mean; off")
      ("noise", po::value<std::string>()->default_value(to_string(d.noise)),
       "independent (fresh increments per step) or brownian_tree (one Brownian path shared by every step count)")
      ("seed", po::value<std::uint64_t>()->default_value(d.seed), "fixes every random number")
      ("threads", po::value<int>()->default_value(d.threads), "worker threads; results do not depend on it")
      ("chunk", po::value<Index>()->default_value(d.chunk), "samples per chunk (see docs/reproducibility.md)");
  // clang-format on
  return g;
}

bool parse_on_off(const std::string& option, const std::string& value) {
  if (value == "on" || value == "true" || value == "1" || value == "yes") return true;
  if (value == "off" || value == "false" || value == "0" || value == "no") return false;
  throw ConfigError(fmt::format("--{} = {}: choose on or off", option, value));
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return items;
}

std::vector<double> parse_number_list(const std::string& option, const std::string& text) {
  std::vector<double> values;
  for (const auto& item : split_list(text)) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (end != item.c_str() + item.size())
      throw ConfigError(fmt::format(
          "--{} = {}: \"{}\" is not a number; give a comma-separated list of numbers", option, text, item));
    values.push_back(v);
  }
  return values;
}

std::vector<int> parse_integer_list(const std::string& option, const std::string& text) {
  std::vector<int> values;
  for (const auto& item : split_list(text)) {
    int v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || end != item.data() + item.size())
      throw ConfigError(
          fmt::format("--{} = {}: \"{}\" is not an integer; give a comma-separated list of integers", option,
                      text, item));
    values.push_back(v);
  }
  return values;
}

SamplerOptions sampler_options_from(const po::variables_map& vm) {
  SamplerOptions o;
  o.sampler = vm["sampler"].as<std::string>();
  o.predictor = vm["predictor"].as<std::string>();
  o.corrector = vm["corrector"].as<std::string>();
  o.snr = vm["snr"].as<double>();
  o.corrector_steps = vm["corrector-steps"].as<int>();
  o.langevin_norm = langevin_norm_from_string(vm["langevin-norm"].as<std::string>());
  o.ode_method = vm["ode-method"].as<std::string>();
  o.rtol = vm["rtol"].as<double>();
  o.atol = vm["atol"].as<double>();
  o.ode_control = ode_control_from_string(vm["ode-control"].as<std::string>());
  o.steps = vm["steps"].as<int>();
  if (vm.count("eps")) o.eps = vm["eps"].as<double>();
  o.denoise = parse_on_off("denoise", vm["denoise"].as<std::string>());
  o.noise = noise_kind_from_string(vm["noise"].as<std::string>());
  o.seed = vm["seed"].as<std::uint64_t>();
  o.threads = vm["threads"].as<int>();
  o.chunk = vm["chunk"].as<Index>();
  return o;  // validated against the SDE by SamplerOptions::validate
}

void record(const SamplerOptions& o, const Sde& sde, nlohmann::ordered_json& out) {
  out["sampler"] = o.sampler;
  out["predictor"] = o.predictor;
  out["corrector"] = o.corrector;
  out["snr"] = o.snr;
  out["corrector-steps"] = o.corrector_steps;
  out["langevin-norm"] = to_string(o.langevin_norm);
  out["ode-method"] = o.ode_method;
  out["rtol"] = o.rtol;
  out["atol"] = o.atol;
  out["ode-control"] = to_string(o.ode_control);
  out["steps"] = o.steps;
  out["eps"] = o.resolved_eps(sde);
  out["denoise"] = o.denoise ? "on" : "off";
  out["noise"] = to_string(o.noise);
  out["seed"] = o.seed;
  out["threads"] = o.threads;
  out["chunk"] = o.chunk;
}

namespace {

// "-n/--samples" or "--steps": how the user may spell the option.
std::string display_name(const po::option_description& d) {
  const std::string shorter = d.canonical_display_name(po::command_line_style::allow_dash_for_short);
  const std::string longer = d.canonical_display_name(po::command_line_style::allow_long);
  return shorter != longer && shorter.size() == 2 ? shorter + "/" + longer : longer;
}

template <class T>
bool is_integer(const std::string& text) {
  T value;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

template <class T>
std::optional<std::string> integer_problem(const std::string& text) {
  if (is_integer<T>(text)) return std::nullopt;
  if (is_integer<long long>(text) || is_integer<unsigned long long>(text))
    return fmt::format("expected an integer in [{}, {}]", std::numeric_limits<T>::min(),
                       std::numeric_limits<T>::max());
  return std::string("expected an integer");
}

// What is wrong with `text` as a value of option `d`, for the value types the options use; nothing if it is
// fine. Boost would say "the argument ('abc') for option '--steps' is invalid", and would read "-1" as an
// unsigned 2^64 - 1.
std::optional<std::string> value_problem(const po::option_description& d, const std::string& text) {
  const po::value_semantic* s = d.semantic().get();
  if (dynamic_cast<const po::typed_value<int>*>(s)) return integer_problem<int>(text);
  if (dynamic_cast<const po::typed_value<Index>*>(s)) return integer_problem<Index>(text);
  if (dynamic_cast<const po::typed_value<std::uint64_t>*>(s)) return integer_problem<std::uint64_t>(text);
  if (dynamic_cast<const po::typed_value<double>*>(s)) {
    char* end = nullptr;
    std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) return std::string("expected a number");
  }
  return std::nullopt;
}

// Checks every value before boost converts it, so that the message names the option and what it takes.
// `source` is empty for the command line, or the --config file.
void check_values(const po::parsed_options& parsed, const po::options_description& all,
                  const std::string& source) {
  for (const auto& o : parsed.options) {
    if (o.unregistered || o.string_key.empty()) continue;
    const auto* d = all.find_nothrow(o.string_key, false);
    if (!d) continue;
    for (const auto& text : o.value) {
      const auto problem = value_problem(*d, text);
      if (!problem) continue;
      if (source.empty()) throw ConfigError(fmt::format("{} = {}: {}", display_name(*d), text, *problem));
      throw InputError(fmt::format("{}: key \"{}\" = {}: {}", source, o.string_key, text, *problem));
    }
  }
}

}  // namespace

bool parse_arguments(const std::vector<std::string>& args, const po::options_description& visible,
                     const std::string& usage, po::variables_map& vm, std::ostream& out) {
  po::options_description all = visible;
  all.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(), "INI file with the same keys (no dashes); the command line wins");
  const auto parsed = po::command_line_parser(args).options(all).run();
  check_values(parsed, all, "");
  po::store(parsed, vm);
  if (vm.count("help")) {
    out << usage << "\n" << all << "\n";
    return false;
  }
  if (vm.count("config")) {
    const auto path = vm["config"].as<std::string>();
    std::ifstream in(path);
    if (!in) throw InputError(fmt::format("--config = {}: cannot open the file", path));
    try {
      const auto parsed = po::parse_config_file(in, all);
      check_values(parsed, all, path);
      po::store(parsed, vm);
    } catch (const po::unknown_option& e) {
      throw InputError(
          fmt::format("{}: unknown key \"{}\"; the keys are the long option names without dashes, as "
                      "--help lists them",
                      path, e.get_option_name()));
    } catch (const po::error& e) {
      throw InputError(fmt::format("{}: {}", path, e.what()));
    }
  }
  po::notify(vm);
  return true;
}

void check_out_path(const std::string& path, const std::string& example) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path out(path);
  if (path.empty() || !out.has_filename())
    throw ConfigError(fmt::format("--out = {}: name a file, such as {}", path, example));
  if (fs::is_directory(out, ec))
    throw ConfigError(fmt::format("--out = {}: is a directory; name a file in it", path));
  const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  if (!fs::exists(dir, ec))
    throw ConfigError(fmt::format("--out = {}: the directory {} does not exist", path, dir.string()));
  if (!fs::is_directory(dir, ec))
    throw ConfigError(fmt::format("--out = {}: {} is not a directory", path, dir.string()));
  if (::access(dir.c_str(), W_OK) != 0)
    throw ConfigError(fmt::format("--out = {}: the directory {} is not writable", path, dir.string()));
}

std::string command_line(const std::string& subcommand, const nlohmann::ordered_json& resolved) {
  std::string cmd = "scoresde " + subcommand;
  for (auto it = resolved.begin(); it != resolved.end(); ++it) {
    const auto& v = it.value();
    if (v.is_null()) continue;
    const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    cmd += fmt::format(" --{} {}", it.key(), text);
  }
  return cmd;
}

}  // namespace scoresde
