// Checks on a path that is about to be read as an input file, shared by the readers of every file kind.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

#include "core/errors.hpp"

namespace scoresde {

// Throws InputError("<path>: is a directory, not <what>") when `path` names a directory. The file streams open a
// directory without complaint and then read nothing, which the readers would report as an empty or malformed file.
inline void refuse_directory(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": is a directory, not " + what);
}

}  // namespace scoresde
