// scoresde report DIR: figures and a Markdown summary of a study, drawn by matplotlib. The Python script
// (experiments/study/report.py) is compiled into the program, so the report needs no file outside the binary; it
// runs under /usr/bin/python3, where Debian's numpy and matplotlib live.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/python_script.hpp"
#include "report_script.hpp"  // generated at configure time from experiments/study/report.py

namespace scoresde {

namespace {

// clang-format off
const char* report_usage =
    "Usage: scoresde report DIR [--python /usr/bin/python3]\n\n"
    "Draws the figures of a study (scoresde study --out DIR) and writes DIR/report.md:\n"
    "  DIR/figures/METRIC.png     each metric against NFE, log-log, 95% error bars, one line per sampler\n"
    "                             configuration, one panel per SDE\n"
    "  DIR/figures/samples_SDE.png  the first seed's 2-D samples per sampler and step count, beside exact samples\n"
    "  DIR/report.md              the best sampler per NFE budget; for the primary metric and path_error, the\n"
    "                             differences between configurations at equal NFE that are significant (paired\n"
    "                             t-test over the seeds, 5%); every cell's mean and standard error, the runs that\n"
    "                             diverged, and the commands that made the study and the report\n"
    "Needs Debian's python3-matplotlib and python3-numpy (scripts/setup.sh installs them).\n";
// clang-format on

}  // namespace

int report_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string dir, python = "/usr/bin/python3";
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      out << report_usage;
      return 0;
    }
    if (a == "--python") {
      if (i + 1 == args.size()) throw ConfigError("--python: give the path of a python3 interpreter");
      python = args[++i];
    } else if (!a.empty() && a[0] == '-') {
      throw ConfigError(fmt::format("{}: unknown option; scoresde report takes DIR and --python", a));
    } else if (dir.empty()) {
      dir = a;
    } else {
      throw ConfigError(fmt::format("{}: one study directory only (DIR is {})", a, dir));
    }
  }
  if (dir.empty()) throw ConfigError("DIR: required; name a study directory (scoresde study --out DIR)");
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    throw ConfigError(fmt::format("DIR = {}: not a directory; name a study directory (scoresde study --out DIR)", dir));
  const auto results = std::filesystem::path(dir) / "results.json";
  if (!std::filesystem::exists(results))
    throw InputError(fmt::format("{}: no such file; is {} a study directory (scoresde study --out {})?",
                                 results.string(), dir, dir));
  // Read here, so that a damaged file is named as such rather than as a traceback of the plotting script.
  {
    std::ifstream in(results);
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: not a study's results file ({})", results.string(), e.what()));
    }
    if (!record.is_object() || !record.contains("study") || !record.contains("rows") || !record["rows"].is_array())
      throw InputError(
          fmt::format("{}: not a study's results file (no \"study\" or \"rows\")", results.string()));
  }
  out << std::flush;
  err << std::flush;
  std::cout << std::flush;
  const int status = run_python_script(python, report_script,
                                       {dir, "scoresde report " + dir, version() + " (" + git_revision() + ")"});
  if (status != 0) {
    err << fmt::format(
        "report: the plotting script failed (exit status {}); figures already drawn are complete, report.md "
        "is written last\n",
        status);
    return status == 2 ? 2 : 1;
  }
  return 0;
}

}  // namespace scoresde
