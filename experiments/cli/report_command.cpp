// scoresde report DIR: figures and a Markdown summary of a study, drawn by matplotlib. The Python script
// (experiments/study/report.py) is compiled into the program, so the report needs no file outside the binary; it
// runs under /usr/bin/python3, where Debian's numpy and matplotlib live.
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "experiments/cli/cli.hpp"
#include "report_script.hpp"  // generated at configure time from experiments/study/report.py

extern char** environ;

namespace scoresde {

namespace {

// clang-format off
const char* report_usage =
    "Usage: scoresde report DIR [--python /usr/bin/python3]\n\n"
    "Draws the figures of a study (scoresde study --out DIR) and writes DIR/report.md:\n"
    "  DIR/figures/METRIC.png     each metric against NFE, log-log, 95% error bars, one line per sampler\n"
    "                             configuration, one panel per SDE\n"
    "  DIR/figures/samples_SDE.png  the first seed's 2-D samples per sampler and step count, beside exact samples\n"
    "  DIR/report.md              the best sampler per NFE budget, every cell's mean and standard error, the\n"
    "                             runs that diverged, and the commands that made the study and the report\n"
    "Needs Debian's python3-matplotlib and python3-numpy (scripts/setup.sh installs them).\n";
// clang-format on

// Runs `python - ARGS...` with the script on its standard input; returns the exit status.
int run_python(const std::string& python, const std::vector<std::string>& script_args) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) throw std::runtime_error(fmt::format("report: pipe: {}", std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], STDIN_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  std::vector<std::string> argv_text{python, "-"};
  argv_text.insert(argv_text.end(), script_args.begin(), script_args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, python.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[0]);
  if (spawned != 0) {
    close(pipe_fds[1]);
    throw ConfigError(
        fmt::format("--python = {}: cannot run it ({}); install python3 with python3-matplotlib", python,
                    std::strerror(spawned)));
  }
  const std::string_view script = report_script;
  std::size_t written = 0;
  while (written < script.size()) {
    const ssize_t w = write(pipe_fds[1], script.data() + written, script.size() - written);
    if (w <= 0) break;
    written += static_cast<std::size_t>(w);
  }
  close(pipe_fds[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

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
  const auto results = std::filesystem::path(dir) / "results.json";
  if (!std::filesystem::exists(results))
    throw InputError(fmt::format("{}: no such file; is {} a study directory (scoresde study --out {})?",
                                 results.string(), dir, dir));
  out << std::flush;
  err << std::flush;
  std::cout << std::flush;
  const int status =
      run_python(python, {dir, "scoresde report " + dir, version() + " (" + git_revision() + ")"});
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
