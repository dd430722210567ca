#include "experiments/cli/options_cli.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "core/errors.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

void CheckedValue::xparse(boost::any& store, const std::vector<std::string>& tokens) const {
  for (const auto& text : tokens)
    if (const auto problem = check_(text)) throw OptionValueError(display_name_, key_, text, *problem);
  po::typed_value<std::string>::xparse(store, tokens);
}

bool given(const po::variables_map& vm, const std::string& key) { return vm.count(key) && !vm[key].defaulted(); }

po::options_description sde_option_group() {
  return option_group<SdeOptions>("Forward SDE", sde_option_table(), SdeOptions{});
}

SdeOptions sde_options_from(const po::variables_map& vm) {
  SdeOptions o;
  read_group(sde_option_table(), vm, o);
  o.validate();
  return o;
}

void record(const SdeOptions& o, nlohmann::ordered_json& out) {
  const auto resolved = to_json(o);
  for (const auto& [key, value] : resolved.items()) out[key] = value;
}

po::options_description sampler_option_group() {
  return option_group<SamplerOptions>("Sampler", sampler_option_table(), SamplerOptions{});
}

std::vector<std::string> split_list(const std::string& text) { return option_text::split_list(text); }

SamplerOptions sampler_options_from(const po::variables_map& vm) {
  SamplerOptions o;
  read_group(sampler_option_table(), vm, o);
  apply_sampler_defaults(sampler_option_table(), vm, o.sampler, o);
  return o;  // validated against the SDE by SamplerOptions::validate
}

void record(const SamplerOptions& o, const Sde& sde, nlohmann::ordered_json& out) {
  const auto resolved = to_json(o, sde);
  for (const auto& [key, value] : resolved.items()) out[key] = value;
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

namespace {

// The substitutions of an error_with_option_name, a protected member: a pointer to it formed in a derived class applies
// to any error_with_option_name.
struct ErrorSubstitutions : po::error_with_option_name {
  static std::map<std::string, std::string>& of(po::error_with_option_name& e) {
    return e.*(&ErrorSubstitutions::m_substitutions);
  }
};

}  // namespace

std::string program_options_message(po::error& e) {
  auto* named = dynamic_cast<po::error_with_option_name*>(&e);
  if (!named) return e.what();
  // A byte no message template holds stands for '%' in the values while Boost forms the message.
  constexpr char stand_in = '\x1a';
  for (auto& [name, value] : ErrorSubstitutions::of(*named)) std::replace(value.begin(), value.end(), '%', stand_in);
  std::string message = named->what();
  std::replace(message.begin(), message.end(), stand_in, '%');
  return message;
}

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
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      throw InputError(fmt::format("--config = {}: is a directory, not an INI file", path));
    std::ifstream in(path);
    if (!in) throw InputError(fmt::format("--config = {}: cannot open the file", path));
    try {
      const auto parsed = po::parse_config_file(in, all);
      check_values(parsed, all, path);
      po::store(parsed, vm);
    } catch (const OptionValueError& e) {
      throw InputError(fmt::format("{}: key \"{}\" = {}: {}", path, e.key, e.text, e.problem));
    } catch (const po::unknown_option& e) {
      throw InputError(
          fmt::format("{}: unknown key \"{}\"; the keys are the long option names without dashes, as "
                      "--help lists them",
                      path, e.get_option_name()));
    } catch (po::error& e) {
      throw InputError(fmt::format("{}: {}", path, program_options_message(e)));
    }
  }
  po::notify(vm);
  return true;
}

void check_out_path(const std::string& path, const std::string& example, const std::string& option) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path out(path);
  if (path.empty() || !out.has_filename())
    throw ConfigError(fmt::format("{} = {}: name a file, such as {}", option, path, example));
  const auto status = fs::status(out, ec);
  if (fs::is_directory(status))
    throw ConfigError(fmt::format("{} = {}: is a directory; name a file in it", option, path));
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw ConfigError(fmt::format(
        "{} = {}: exists and is not a regular file (the output is written beside it and renamed into place, which "
        "would replace it); name a regular file",
        option, path));
  const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  if (!fs::exists(dir, ec))
    throw ConfigError(fmt::format("{} = {}: the directory {} does not exist", option, path, dir.string()));
  if (!fs::is_directory(dir, ec))
    throw ConfigError(fmt::format("{} = {}: {} is not a directory", option, path, dir.string()));
  if (::access(dir.c_str(), W_OK) != 0)
    throw ConfigError(fmt::format("{} = {}: the directory {} is not writable", option, path, dir.string()));
}

OutputDirectory::OutputDirectory(const std::string& dir, const std::string& option) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // The topmost missing ancestor is what create_directories creates and what a failure removes.
  fs::path missing;
  for (fs::path p = fs::path(dir).lexically_normal(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing = p;
    if (p == p.parent_path()) break;
  }
  fs::create_directories(dir, ec);
  if (ec) throw ConfigError(fmt::format("{} = {}: cannot create the directory ({})", option, dir, ec.message()));
  created_ = missing.string();
}

OutputDirectory::~OutputDirectory() {
  if (created_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(created_, ec);
}

std::string command_line(const std::string& subcommand, const nlohmann::ordered_json& resolved) {
  std::string cmd = "scoresde " + subcommand;
  for (auto it = resolved.begin(); it != resolved.end(); ++it) {
    const auto& v = it.value();
    if (v.is_null()) continue;
    const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    // Single quotes around a value the shell would change (an array's brackets: the discrete schedule's values).
    const bool special = text.find_first_of(" \t\"$`!*?[](){}<>|&;#~\\") != std::string::npos;
    cmd += fmt::format(" --{} {}", it.key(), special && text.find('\'') == std::string::npos ? "'" + text + "'" : text);
  }
  return cmd;
}

}  // namespace scoresde
