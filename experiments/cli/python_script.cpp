#include "experiments/cli/python_script.hpp"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/errors.hpp"

extern char** environ;

namespace scoresde {

int run_python_script(const std::string& python, std::string_view script, const std::vector<std::string>& script_args) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) throw std::runtime_error(fmt::format("python: pipe: {}", std::strerror(errno)));
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
    throw ConfigError(fmt::format("--python = {}: cannot run it ({}); install python3 with python3-matplotlib", python,
                                  std::strerror(spawned)));
  }
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

}  // namespace scoresde
