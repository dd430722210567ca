// CSV data files (--data FILE.csv): read_samples_csv.
#include "fuzz_input.hpp"
#include "models/datasets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  const std::string path = fuzz::write_input("input.csv", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] { read_samples_csv(path); });
  return 0;
}
