// .npy arrays: read_samples_npy (data and samples, (n, d) or images) and read_vector_npy (1-d arrays) share the
// header parser; both read each input.
#include "core/npy.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  const std::string path = fuzz::write_input("input.npy", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] { read_samples_npy(path); });
  fuzz::expect_clean_refusal([&] { read_vector_npy(path); });
  return 0;
}
