#include "core/errors.hpp"

#include <iostream>
#include <mutex>
#include <set>

namespace scoresde {

void require(bool ok, const std::string& option, const std::string& value, const std::string& requirement) {
  if (!ok) throw ConfigError(option + " = " + value + ": " + requirement);
}

namespace {

struct Notices {
  std::mutex mutex;
  NoticeSink sink = [](const std::string& text) { std::cerr << "scoresde: note: " << text << "\n"; };
  std::set<std::string> given;
};

Notices& notices() {
  static Notices n;
  return n;
}

}  // namespace

NoticeSink set_notice_sink(NoticeSink sink) {
  auto& n = notices();
  const std::lock_guard lock(n.mutex);
  n.given.clear();
  std::swap(n.sink, sink);
  return sink;
}

void notice(const std::string& text) {
  auto& n = notices();
  const std::lock_guard lock(n.mutex);
  if (n.sink && n.given.insert(text).second) n.sink(text);
}

}  // namespace scoresde
