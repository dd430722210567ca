// IDX files (models/idx.hpp), plain or gzip-compressed: read_idx as images (rank 3) and as labels (rank 1).
#include "fuzz_input.hpp"
#include "models/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  const std::string path = fuzz::write_input("input.idx", fuzz::as_text(data, size));
  fuzz::expect_clean_refusal([&] { read_idx(path, 3); });
  fuzz::expect_clean_refusal([&] { read_idx(path, 1); });
  return 0;
}
