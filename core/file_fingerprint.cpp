#include "core/file_fingerprint.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/errors.hpp"

namespace scoresde {
namespace {

// A SHA-256 computation over pieces of input.
class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("SHA-256: OpenSSL could not start a digest");
  }
  void update(const void* data, std::size_t size) {
    if (EVP_DigestUpdate(context_.get(), data, size) != 1) throw std::runtime_error("SHA-256: OpenSSL update failed");
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_DigestFinal_ex(context_.get(), digest, &size) != 1)
      throw std::runtime_error("SHA-256: OpenSSL could not finish the digest");
    std::string out;
    out.reserve(2 * size);
    for (unsigned int i = 0; i < size; ++i) out += fmt::format("{:02x}", digest[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context_;
};

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex();
}

nlohmann::ordered_json file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  Sha256 sha;
  std::vector<char> buffer(1 << 16);
  std::uint64_t bytes = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    sha.update(buffer.data(), got);
    bytes += got;
  }
  if (in.bad()) throw InputError(fmt::format("{}: cannot read", path));
  return {{"path", path}, {"bytes", bytes}, {"sha256", sha.hex()}};
}

nlohmann::ordered_json input_files(const std::vector<std::pair<std::string, std::string>>& files) {
  nlohmann::ordered_json inputs = nlohmann::ordered_json::object();
  for (const auto& [option, path] : files)
    if (!path.empty()) inputs[option] = file_fingerprint(path);
  return inputs;
}

}  // namespace scoresde
