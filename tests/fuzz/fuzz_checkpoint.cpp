// scoresde checkpoints (models/checkpoint.hpp): load_checkpoint. The input is the file without its last 8 bytes,
// the FNV-1a checksum of all before it, which is appended here: otherwise almost every mutation would stop at the
// checksum and the header behind it would go unexplored. An input shorter than the fixed prefix is taken as it is.
#include <string>

#include "fuzz_input.hpp"
#include "models/checkpoint.hpp"

namespace {

std::uint64_t fnv1a(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace scoresde;
  std::string bytes(fuzz::as_text(data, size));
  if (bytes.size() >= 20) {
    const std::uint64_t h = fnv1a(bytes);
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((h >> (8 * i)) & 0xFF));
  }
  const std::string path = fuzz::write_input("input.ckpt", bytes);
  fuzz::expect_clean_refusal([&] { load_checkpoint(path); });
  return 0;
}
