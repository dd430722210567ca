// The eigen-mixture of `scoresde fit-mixture` (models/image_mixture.hpp): a JSON header and the .npy of its arrays
// beside it. The input is both: the header, a NUL byte, then the arrays file (which the seeds' headers name
// "arrays.npy"; without a NUL the arrays file is empty). The header goes through load_data as a user's file does.
#include <string>

#include "fuzz_input.hpp"
#include "models/datasets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  static const bool quiet = (set_notice_sink({}), true);
  (void)quiet;
  const std::string_view input = fuzz::as_text(data, size);
  const auto nul = input.find('\0');
  const std::string_view header = input.substr(0, nul);
  const std::string_view arrays = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  fuzz::write_input("arrays.npy", arrays);
  const std::string path = fuzz::write_input("mixture.json", header);
  fuzz::expect_clean_refusal([&] { load_data(path, 0); });
  return 0;
}
