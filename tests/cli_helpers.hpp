// Helpers for tests that call the command line in-process: a temporary directory per test, run_cli with
// captured output, a substring check that prints both strings when it fails, and the real program started as a
// child process (for tests that signal or kill it).
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "experiments/cli/cli.hpp"

extern char** environ;

namespace scoresde::test {

// A fresh directory, removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "cli") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() / fmt::format("scoresde-test-{}-{}-{}", tag, ::getpid(), counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary) << text;
    return file(name);
  }
  std::set<std::string> entries() const {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::recursive_directory_iterator(path_))
      names.insert(e.path().lexically_relative(path_).string());
    return names;
  }

 private:
  std::filesystem::path path_;
};

struct Result {
  int code;
  std::string out, err;
};

inline Result run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

// Starts the scoresde program ($SCORESDE_BINARY, which ctest sets) with `args` (no program name) as a child process,
// its standard error into `err_file` when one is given. Returns the child's pid.
inline pid_t spawn_scoresde(std::vector<std::string> args, const std::string& err_file = "") {
  const char* binary = std::getenv("SCORESDE_BINARY");
  REQUIRE_MESSAGE(binary != nullptr, "SCORESDE_BINARY is set by ctest");
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!err_file.empty())
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int status = posix_spawn(&pid, binary, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(status == 0);
  return pid;
}

inline void check_contains(const std::string& text, const std::string& needle) {
  INFO("looking for: " << needle);
  INFO("in: " << text);
  CHECK(text.find(needle) != std::string::npos);
}

}  // namespace scoresde::test
