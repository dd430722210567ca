// What every fuzz target shares: the input as a file (most parsers take a path) and the line between an expected
// refusal and a finding.
//
// A parser given a bad file must throw the project's errors (core/errors.hpp): InputError naming the file, or
// ConfigError for a value it names. Those are caught here. Anything else escaping it (another exception type, which
// the command line reports as an unexpected error with exit status 1) is a finding: it goes on to std::terminate and
// libFuzzer keeps the input, as for a crash, a sanitizer report, a hang (-timeout) or an excessive allocation
// (-rss_limit_mb, -malloc_limit_mb).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/errors.hpp"

namespace scoresde::fuzz {

// A directory of this process's own in /dev/shm (memory, not disk: every input is written there), removed at exit.
inline const std::filesystem::path& scratch_dir() {
  struct Dir {
    std::filesystem::path path;
    Dir() {
      const std::filesystem::path shm = "/dev/shm";
      path = (std::filesystem::exists(shm) ? shm : std::filesystem::temp_directory_path()) /
             ("scoresde-fuzz-" + std::to_string(::getpid()));
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// Writes bytes to scratch_dir()/name and returns the path.
inline std::string write_input(std::string_view name, std::string_view bytes) {
  const std::string path = (scratch_dir() / name).string();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("fuzz: cannot write " + path);
  if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return path;
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs parse(); the project's own refusals of a bad input are expected and swallowed.
template <class Parse>
void expect_clean_refusal(Parse&& parse) {
  try {
    parse();
  } catch (const InputError&) {
  } catch (const ConfigError&) {
  }
}

}  // namespace scoresde::fuzz
