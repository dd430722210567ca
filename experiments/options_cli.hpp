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

po::options_description sde_option_group();
SdeOptions sde_options_from(const po::variables_map& vm);
void record(const SdeOptions& o, nlohmann::ordered_json& out);

po::options_description sampler_option_group();
SamplerOptions sampler_options_from(const po::variables_map& vm);
void record(const SamplerOptions& o, const Sde& sde, nlohmann::ordered_json& out);

bool parse_on_off(const std::string& option, const std::string& value);

// Parses the command line, then --config FILE (INI, same keys without dashes); the command line wins.
// Returns false when --help was asked for (and printed).
bool parse_arguments(const std::vector<std::string>& args, const po::options_description& visible,
                     const std::string& usage, po::variables_map& vm, std::ostream& out);

// Refuses an --out that cannot be written (no file name, a directory, a missing or read-only directory)
// before any time is spent computing it. ConfigError naming --out.
void check_out_path(const std::string& path);

// "scoresde SUBCOMMAND --key value ..." from resolved options: the run, rerunnable.
std::string command_line(const std::string& subcommand, const nlohmann::ordered_json& resolved);

}  // namespace scoresde
