#include "core/errors.hpp"

namespace scoresde {

void require(bool ok, const std::string& option, const std::string& value, const std::string& requirement) {
  if (!ok) throw ConfigError(option + " = " + value + ": " + requirement);
}

}  // namespace scoresde
