// Helpers for tests that call the command line in-process: a temporary directory per test, run_cli with
// captured output, a substring check that prints both strings when it fails, and the real program started as a
// child process (for tests that signal or kill it, or give it a file-size limit or a full standard output).
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
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

// How spawn_scoresde starts the child.
struct SpawnOptions {
  std::string err_file;  // its standard error goes into this file (empty: the test's own)
  std::string out_file;  // its standard output goes into this file or device, such as /dev/full (empty: the test's)
  // RLIMIT_FSIZE in bytes, with SIGXFSZ ignored, so that a write past it fails with EFBIG as on a full disk: the
  // program's own handling of the error is what is tested, not the signal's default (which kills it). Only the
  // child has the limit; its standard error should go to a file smaller than it (the limit applies there too).
  std::optional<rlim_t> file_size_limit;
};

// Starts the scoresde program ($SCORESDE_BINARY, which ctest sets) with `args` (no program name) as a child process.
// Returns the child's pid.
inline pid_t spawn_scoresde(std::vector<std::string> args, const SpawnOptions& options) {
  const char* binary = std::getenv("SCORESDE_BINARY");
  REQUIRE_MESSAGE(binary != nullptr, "SCORESDE_BINARY is set by ctest");
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child: only async-signal-safe calls between fork and exec.
    const auto redirect = [](const std::string& file, int fd) {
      if (file.empty()) return;
      const int opened = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (opened < 0 || ::dup2(opened, fd) < 0) ::_exit(126);
      ::close(opened);
    };
    redirect(options.err_file, STDERR_FILENO);
    redirect(options.out_file, STDOUT_FILENO);
    if (options.file_size_limit) {
      const struct rlimit limit = {*options.file_size_limit, *options.file_size_limit};
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0 || ::sigaction(SIGXFSZ, &ignore, nullptr) != 0) ::_exit(126);
    }
    ::execve(binary, argv.data(), environ);
    ::_exit(127);
  }
  return pid;
}

// The same, with its standard error into `err_file` when one is given.
inline pid_t spawn_scoresde(std::vector<std::string> args, const std::string& err_file = "") {
  SpawnOptions options;
  options.err_file = err_file;
  return spawn_scoresde(std::move(args), options);
}

// Runs the scoresde program as a child (spawn_scoresde) and waits for it. Its standard error, and its standard
// output unless options.out_file sends that elsewhere, are captured in files in `capture_dir` and returned; the
// code is the exit status, or 128 + N when signal N ended it.
inline Result run_scoresde(const std::vector<std::string>& args, SpawnOptions options, const std::string& capture_dir) {
  static std::atomic<int> counter{0};
  const int k = counter++;
  const std::string err_file = fmt::format("{}/stderr-{}", capture_dir, k);
  const std::string out_file = fmt::format("{}/stdout-{}", capture_dir, k);
  options.err_file = err_file;
  const bool capture_out = options.out_file.empty();
  if (capture_out) options.out_file = out_file;
  const pid_t pid = spawn_scoresde(args, options);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  const auto slurp = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  Result r{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), capture_out ? slurp(out_file) : "",
           slurp(err_file)};
  std::filesystem::remove(err_file);
  std::filesystem::remove(out_file);
  return r;
}

inline void check_contains(const std::string& text, const std::string& needle) {
  INFO("looking for: " << needle);
  INFO("in: " << text);
  CHECK(text.find(needle) != std::string::npos);
}

}  // namespace scoresde::test
