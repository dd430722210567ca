// A study's results.json as --resume reads it: read_study_results and check_same_study (study_internal.hpp). Apart
// from run_study.cpp so that the fuzz target of results.json (tests/fuzz/fuzz_results_json.cpp) links without the
// samplers and metrics.
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/errors.hpp"
#include "experiments/study/study_internal.hpp"

namespace scoresde {

StudyResults read_study_results(const std::string& path) {
  const auto not_results = [&](const std::string& problem) {
    return InputError(fmt::format("{}: not a study's results file ({})", path, problem));
  };
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("{}: cannot open the study's results file", path));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::ordered_json doc;
  try {
    doc = nlohmann::ordered_json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw not_results(e.what());
  }
  // Every part --resume uses is checked here, so that a damaged file is refused by name rather than failing later
  // in a JSON accessor with nlohmann's message.
  if (!doc.is_object() || !doc.contains("study") || !doc.contains("rows"))
    throw not_results("no \"study\" or \"rows\"");
  StudyResults results;
  results.study = std::move(doc["study"]);
  if (!results.study.is_object()) throw not_results("\"study\" is not an object");
  if (!doc["rows"].is_array()) throw not_results("\"rows\" is not an array");
  for (auto& row : doc["rows"]) {
    if (!row.is_object() || !row.contains("run") || !row["run"].is_string())
      throw not_results(fmt::format("row {} is not an object with a \"run\" name", results.rows.size()));
    results.rows.push_back(std::move(row));
  }
  if (doc.contains("sessions")) {
    if (!doc["sessions"].is_array()) throw not_results("\"sessions\" is not an array");
    results.sessions = std::move(doc["sessions"]);
  } else {
    results.sessions = nlohmann::ordered_json::array();
  }
  return results;
}

void check_same_study(const nlohmann::ordered_json& before_with_threads, const nlohmann::ordered_json& now_with_threads,
                      const std::string& dir, const std::string& ini) {
  const auto without_threads = [](nlohmann::ordered_json j) {
    if (j.is_object()) j.erase("threads");
    return j;
  };
  const auto before = without_threads(before_with_threads), now = without_threads(now_with_threads);
  if (nlohmann::json(before) == nlohmann::json(now)) return;  // key order is presentation, not content
  if (before.is_object() && now.is_object())
    for (const auto& [key, value] : now.items())
      if (!before.contains(key) || before[key] != value)
        throw ConfigError(
            fmt::format("--resume: {} holds a different study: {} was {} and is now {}; resume with --config {}", dir,
                        key, before.contains(key) ? before[key].dump() : "absent", value.dump(), ini));
  throw ConfigError(fmt::format("--resume: {} holds a different study; resume with --config {}", dir, ini));
}

}  // namespace scoresde
