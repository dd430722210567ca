// A study's results.json as `scoresde study --resume` reads it (experiments/study/run_study.cpp): read_study_results,
// the comparison of its study with the one resumed (the default study here), and its rows as CSV lines, which the
// resumed study writes again.
#include "experiments/study/study_internal.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  static const StudySpec spec;
  static const nlohmann::ordered_json study = spec.to_json();
  static const std::vector<std::string> columns = study_columns(spec.resolved_metrics());
  const std::string path = fuzz::write_input("results.json", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] {
    const StudyResults results = read_study_results(path);
    for (const auto& row : results.rows) csv_line(row, columns);
    check_same_study(results.study, study, "study", "study/study.ini");
  });
  return 0;
}
