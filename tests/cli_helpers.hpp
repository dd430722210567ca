// Helpers for tests that call the command line in-process: a temporary directory per test, run_cli with
// captured output, and a substring check that prints both strings when it fails.
#pragma once

#include <doctest/doctest.h>

#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "experiments/cli/cli.hpp"

namespace scoresde::test {

// A fresh directory, removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "cli") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            fmt::format("scoresde-test-{}-{}-{}", tag, ::getpid(), counter++);
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

inline void check_contains(const std::string& text, const std::string& needle) {
  INFO("looking for: " << needle);
  INFO("in: " << text);
  CHECK(text.find(needle) != std::string::npos);
}

}  // namespace scoresde::test
