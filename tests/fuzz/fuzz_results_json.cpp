// A study's results.json as `scoresde study --resume` reads it (experiments/study/study_results.cpp):
// read_study_results, then the comparison of its study with the one resumed (that of the tiny seed, so that the
// comparison of equal studies is reached as well as the first differing key).
#include "experiments/study/study_internal.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  static const nlohmann::ordered_json resumed = {{"data", "eight_gaussians"},
                                                 {"sde", "vp"},
                                                 {"sampler", "ddim,euler_maruyama"},
                                                 {"steps", "5,10"},
                                                 {"seeds", 1},
                                                 {"samples", 200},
                                                 {"metrics", "mmd2,mean_error"},
                                                 {"threads", 1}};
  const std::string path = fuzz::write_input("results.json", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] {
    const StudyResults results = read_study_results(path);
    check_same_study(results.study, resumed, "study", "study/study.ini");
  });
  return 0;
}
