// .npz archives (numpy.savez): read_npz, the zip directory and every array in it; import_torch_npz on top, which
// checks the arrays' keys and shapes.
#include "fuzz_input.hpp"
#include "models/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  const std::string path = fuzz::write_input("input.npz", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] { import_torch_npz(path, Parameterization::noise); });
  return 0;
}
