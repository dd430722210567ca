// Command-line and INI option groups shared by the subcommands: each group maps flags onto an options struct
// (core/sde.hpp, solvers/options.hpp) in one small setter, and writes the resolved values back out so that a
// result file records every option, defaults included.
#pragma once

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/sde.hpp"
#include "solvers/options.hpp"

namespace scoresde {

namespace po = boost::program_options;

po::options_description sde_option_group();  // --sde and its parameters
SdeOptions sde_options_from(const po::variables_map& vm);
// The parameters alone (schedule, beta, sigma, T), for commands where --sde is a list; not validated.
po::options_description sde_parameter_group();
SdeOptions sde_parameters_from(const po::variables_map& vm);
void record(const SdeOptions& o, nlohmann::ordered_json& out);

po::options_description sampler_option_group();
SamplerOptions sampler_options_from(const po::variables_map& vm);
void record(const SamplerOptions& o, const Sde& sde, nlohmann::ordered_json& out);

bool parse_on_off(const std::string& option, const std::string& value);

// Comma-separated lists ("vp,ve", "10,100,1000"): items trimmed, empty items dropped. Numbers that do not
// parse are a ConfigError naming --option and the item.
std::vector<std::string> split_list(const std::string& text);
std::vector<double> parse_number_list(const std::string& option, const std::string& text);
std::vector<int> parse_integer_list(const std::string& option, const std::string& text);

// Parses the command line, then --config FILE (INI, same keys without dashes); the command line wins.
// Returns false when --help was asked for (and printed).
bool parse_arguments(const std::vector<std::string>& args, const po::options_description& visible,
                     const std::string& usage, po::variables_map& vm, std::ostream& out);

// Refuses an --out that cannot be written (empty, a directory, a missing or read-only directory) before any
// work is spent on it: ConfigError naming --out. `example` names a suitable file, such as "samples.npy".
void check_out_path(const std::string& path, const std::string& example);

// "scoresde SUBCOMMAND --key value ..." from resolved options: the run, rerunnable.
std::string command_line(const std::string& subcommand, const nlohmann::ordered_json& resolved);

}  // namespace scoresde
