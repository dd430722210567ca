// Mixture files (--data FILE.json): load_data reads the file and parse_mixture_json the mixture written out in the
// JSON (weights, means, covariances or stds). The binary eigen-mixture has a target of its own (fuzz_eigen_mixture).
#include "fuzz_input.hpp"
#include "models/datasets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  static const bool quiet = (set_notice_sink({}), true);  // the weights-normalised notes, once per input otherwise
  (void)quiet;
  const std::string path = fuzz::write_input("mixture.json", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] { load_data(path, 0); });
  return 0;
}
