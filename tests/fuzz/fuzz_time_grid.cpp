// --time-grid FILE: read_time_grid_file, times as text or as a 1-d .npy array (told apart by the .npy magic).
#include "core/time_grid.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  const std::string path = fuzz::write_input("times.txt", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] { read_time_grid_file(path, 1.0); });
  return 0;
}
