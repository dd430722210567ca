// What built this program and where it runs: the context block written into every result file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace scoresde {

std::string version();       // project version
std::string git_revision();  // `git describe --always --dirty` at configure time
// version, git revision, compiler, build type, flags, date (UTC), host, library versions.
nlohmann::json build_context();

}  // namespace scoresde
