// Command-line and INI option groups shared by the subcommands. A group is registered from an options struct's
// table (core/option_table.hpp), so every flag, its default, help, allowed values and check are those of the table;
// reading a group back fills the struct, and to_json(options) writes the resolved values into a result file.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/option_table.hpp"
#include "core/sde.hpp"
#include "solvers/options.hpp"

namespace scoresde {

namespace po = boost::program_options;

// A bad value of a table's option: "--key = text: problem" (parse_arguments words it for a --config file as
// "FILE: key "key" = text: problem").
class OptionValueError : public ConfigError {
 public:
  OptionValueError(const std::string& display_name, std::string key, std::string text, std::string problem)
      : ConfigError(fmt::format("{} = {}: {}", display_name, text, problem)),
        key(std::move(key)),
        text(std::move(text)),
        problem(std::move(problem)) {}
  std::string key, text, problem;
};

// A text value checked when boost stores it (from the command line or a --config file), so that a bad value is
// refused with the same words wherever it comes from.
class CheckedValue : public po::typed_value<std::string> {
 public:
  using Check = std::function<std::optional<std::string>(const std::string&)>;
  CheckedValue(std::string key, std::string display_name, Check check)
      : po::typed_value<std::string>(nullptr),
        key_(std::move(key)),
        display_name_(std::move(display_name)),
        check_(std::move(check)) {}
  void xparse(boost::any& store, const std::vector<std::string>& tokens) const override;

 private:
  std::string key_, display_name_;
  Check check_;
};

// "samples,n" for boost, from an entry's key and short name.
template <class S>
std::string boost_name(const OptionSpec<S>& spec) {
  return spec.short_name ? fmt::format("{},{}", spec.key, spec.short_name) : spec.key;
}

// An entry's --help text: its help and, where declared, its defaults per sampler.
template <class S>
std::string help_text(const OptionSpec<S>& spec) {
  std::string help = spec.help;
  if (!spec.sampler_defaults.empty()) {
    std::vector<std::string> parts;
    for (const auto& [sampler, value] : spec.sampler_defaults) parts.push_back(fmt::format("{} for {}", value, sampler));
    help += fmt::format(" (default {}; otherwise as shown)", fmt::join(parts, ", "));
  }
  return help;
}

// The entries of `table` accepted by `include` (all when empty), as command-line options whose defaults are the
// values in `defaults`; an std::optional member has none (absent unless given).
template <class S>
po::options_description option_group(const std::string& title, const OptionTable<S>& table, const S& defaults,
                                     const std::function<bool(const OptionSpec<S>&)>& include = {}) {
  po::options_description group(title);
  for (const auto& spec : table) {
    if (include && !include(spec)) continue;
    auto* value = new CheckedValue(spec.key, spec.display_name(), [&spec](const std::string& text) {
      S scratch;
      return spec.parse(scratch, text);
    });
    value->value_name(spec.value_name);
    if (!spec.optional) value->default_value(spec.text(defaults));
    group.add_options()(boost_name(spec).c_str(), value, help_text(spec).c_str());
  }
  return group;
}

// Every entry of `table` that `vm` holds (given or defaulted), into `s`. The values were checked when stored.
template <class S>
void read_group(const OptionTable<S>& table, const po::variables_map& vm, S& s) {
  for (const auto& spec : table)
    if (vm.count(spec.key)) spec.set(s, vm[spec.key].template as<std::string>());
}

// True when `key` was given on the command line or in a --config file (not merely defaulted).
bool given(const po::variables_map& vm, const std::string& key);

// The entries of `table` given on the command line or in a --config file, into `s` (defaults left as they are).
template <class S>
void read_given(const OptionTable<S>& table, const po::variables_map& vm, S& s) {
  for (const auto& spec : table)
    if (given(vm, spec.key)) spec.set(s, vm[spec.key].template as<std::string>());
}

// The entries with a sampler-dependent default that were not given take that default for `sampler`.
template <class S>
void apply_sampler_defaults(const OptionTable<S>& table, const po::variables_map& vm, const std::string& sampler,
                            S& s) {
  for (const auto& spec : table)
    if (!given(vm, spec.key))
      if (const auto value = spec.default_for(sampler)) spec.set(s, *value);
}

po::options_description sde_option_group();  // --sde and its parameters
SdeOptions sde_options_from(const po::variables_map& vm);
void record(const SdeOptions& o, nlohmann::ordered_json& out);  // to_json(o), merged into `out`

po::options_description sampler_option_group();
// The sampler's options; entries with a sampler-dependent default take it unless given.
SamplerOptions sampler_options_from(const po::variables_map& vm);
void record(const SamplerOptions& o, const Sde& sde, nlohmann::ordered_json& out);  // to_json(o, sde), merged

// Comma-separated lists ("vp,ve"): items trimmed, empty items dropped.
std::vector<std::string> split_list(const std::string& text);

// Parses the command line, then --config FILE (INI, same keys without dashes); the command line wins.
// Returns false when --help was asked for (and printed).
bool parse_arguments(const std::vector<std::string>& args, const po::options_description& visible,
                     const std::string& usage, po::variables_map& vm, std::ostream& out);

// Refuses an --out that cannot be written (empty, a directory, a missing or read-only directory) or that is not a
// regular file where it exists (a FIFO or a device such as /dev/null, which the atomic rename would replace) before
// any work is spent on it: ConfigError naming `option` (--out, or --json and the like). `example` names a suitable
// file, such as "samples.npy".
// e.what(), safe from Boost.Program_options 1.74's endless loop: it fills a message's %placeholder% with a value until
// no placeholder is left (error_with_option_name::replace_token), so a value that holds its own placeholder, such as
// the option --%canonical_option% or the INI line "x %invalid_line%", never ends. The values' '%' stand in for
// themselves while the message is formed (e is changed so; it is the caught exception).
std::string program_options_message(po::error& e);

void check_out_path(const std::string& path, const std::string& example, const std::string& option = "--out");

// The output directory of a command that writes several files into it (convergence, study): created with its missing
// parents, and removed again, with what is in it, if the command fails before commit(), so that a failed run leaves
// no half-written directory. A directory that existed before is never removed. ConfigError naming `option` when it
// cannot be created.
class OutputDirectory {
 public:
  explicit OutputDirectory(const std::string& dir, const std::string& option = "--out");
  ~OutputDirectory();
  OutputDirectory(const OutputDirectory&) = delete;
  OutputDirectory& operator=(const OutputDirectory&) = delete;
  // The directory is the command's result from now on: kept whatever happens next.
  void commit() { created_.clear(); }

 private:
  std::string created_;  // the topmost directory this object created; empty when it created none or was committed
};

// "scoresde SUBCOMMAND --key value ..." from resolved options: the run, rerunnable.
std::string command_line(const std::string& subcommand, const nlohmann::ordered_json& resolved);

}  // namespace scoresde
