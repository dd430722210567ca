#include "models/checkpoint.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/npy.hpp"

namespace scoresde {

namespace {

constexpr char magic[8] = {'S', 'S', 'D', 'E', 'C', 'K', 'P', 'T'};
constexpr std::size_t prefix_size = 20;  // magic, version, header length

std::uint64_t fnv1a(const char* data, std::size_t size) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

template <class T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  for (std::size_t i = 0; i < sizeof(T); ++i)
    bytes[i] = static_cast<char>((static_cast<std::uint64_t>(value) >> (8 * i)) & 0xFF);
  out.append(bytes, sizeof(T));
}

template <class T>
T get(const std::string& in, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return static_cast<T>(v);
}

// Little-endian float arrays: this library targets little-endian machines
// (x86-64, AArch64), checked here.
static_assert(std::endian::native == std::endian::little, "checkpoints assume a little-endian machine");

void put_array(std::string& out, const Vector& v, bool f4) {
  if (f4) {
    const Eigen::VectorXf f = v.cast<float>();
    out.append(reinterpret_cast<const char*>(f.data()), static_cast<std::size_t>(f.size()) * 4);
  } else {
    out.append(reinterpret_cast<const char*>(v.data()), static_cast<std::size_t>(v.size()) * 8);
  }
}

// True when `length` bytes from `offset` lie within a file of `size` bytes. The offsets and lengths of a zip
// directory are the file's own 32- or 64-bit values: written as a sum, offset + length could wrap around.
bool fits(std::uint64_t offset, std::uint64_t length, std::uint64_t size) {
  return offset <= size && length <= size - offset;
}

std::string read_file(const std::string& path, const std::string& what) {
  refuse_directory(path, "a " + what);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open the {} ({})", path, what, std::strerror(errno)));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

nlohmann::ordered_json architecture_json(const MlpArchitecture& a) {
  nlohmann::ordered_json j;
  j["dim"] = a.dim;
  j["hidden"] = a.hidden;
  j["time_embedding"] = to_string(a.time_embedding);
  j["time_input"] = to_string(a.time_input);
  j["fourier_features"] = a.fourier_features;
  j["fourier_scale"] = a.fourier_scale;
  j["parameterization"] = to_string(a.parameterization);
  j["precision"] = to_string(a.precision);
  j["activation"] = "silu";
  return j;
}

MlpArchitecture architecture_from_json(const nlohmann::json& j) {
  MlpArchitecture a;
  a.dim = j.at("dim").get<Index>();
  a.hidden = j.at("hidden").get<std::vector<Index>>();
  a.time_embedding = time_embedding_from_string(j.at("time_embedding").get<std::string>());
  a.time_input = time_input_from_string(j.at("time_input").get<std::string>());
  a.fourier_features = j.at("fourier_features").get<Index>();
  a.fourier_scale = j.at("fourier_scale").get<double>();
  a.parameterization = parameterization_from_string(j.at("parameterization").get<std::string>());
  a.precision = precision_from_string(j.at("precision").get<std::string>());
  a.validate();
  return a;
}

}  // namespace

bool is_checkpoint_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::memcmp(head, magic, 8) == 0;
}

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  const auto& a = c.architecture;
  a.validate();
  if (c.weights.size() != a.parameter_count() || c.ema.size() != a.parameter_count())
    throw ConfigError(fmt::format("checkpoint: {} weights and {} EMA weights for {} parameters", c.weights.size(),
                                  c.ema.size(), a.parameter_count()));
  const bool f4 = a.precision == Precision::float32;
  const std::string dtype = f4 ? "f4" : "f8";
  nlohmann::ordered_json header;
  header["format"] = "scoresde checkpoint";
  header["version"] = checkpoint_version;
  header["architecture"] = architecture_json(a);
  header["sde"] = to_json(c.sde);
  header["scaling"] = {
      {"mean", std::vector<double>(c.scaling.mean.data(), c.scaling.mean.data() + c.scaling.mean.size())},
      {"scale", std::vector<double>(c.scaling.scale.data(), c.scaling.scale.data() + c.scaling.scale.size())}};
  header["training"] = c.training;
  header["arrays"] =
      nlohmann::ordered_json::array({{{"name", "frequencies"}, {"dtype", "f8"}, {"count", c.frequencies.size()}},
                                     {{"name", "weights"}, {"dtype", dtype}, {"count", c.weights.size()}},
                                     {{"name", "ema"}, {"dtype", dtype}, {"count", c.ema.size()}}});
  const std::string text = header.dump();
  std::string bytes(magic, 8);
  put<std::uint32_t>(bytes, checkpoint_version);
  put<std::uint64_t>(bytes, text.size());
  bytes += text;
  put_array(bytes, c.frequencies, false);
  put_array(bytes, c.weights, f4);
  put_array(bytes, c.ema, f4);
  put<std::uint64_t>(bytes, fnv1a(bytes.data(), bytes.size()));
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw InputError(fmt::format("{}: cannot write the checkpoint", path));
  });
}

Checkpoint load_checkpoint(const std::string& path) {
  const std::string bytes = read_file(path, "checkpoint");
  const auto fail = [&](const std::string& problem) -> InputError {
    return InputError(fmt::format("{}: {}", path, problem));
  };
  if (bytes.size() < 8 || std::memcmp(bytes.data(), magic, 8) != 0)
    throw fail("not a scoresde checkpoint (the file does not start with SSDECKPT)");
  if (bytes.size() < prefix_size + 8) throw fail("truncated (the file ends inside its fixed-size prefix)");
  const auto version = get<std::uint32_t>(bytes, 8);
  if (version != checkpoint_version)
    throw fail(fmt::format("checkpoint format version {}; this build reads version {}", version, checkpoint_version));
  const auto header_size = get<std::uint64_t>(bytes, 12);
  if (header_size > bytes.size() - prefix_size - 8) throw fail("truncated (the file ends inside its header)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + prefix_size,
                                   bytes.begin() + prefix_size + static_cast<long>(header_size));
  } catch (const nlohmann::json::exception&) {
    throw fail("corrupted (the header is not valid JSON)");
  }
  // Sizes of the arrays from the header, then the file size they imply.
  struct ArraySpec {
    std::string name;
    bool f4;
    std::size_t count;
  };
  std::vector<ArraySpec> specs;
  try {
    for (const auto& e : header.at("arrays")) {
      const auto dtype = e.at("dtype").get<std::string>();
      if (dtype != "f4" && dtype != "f8") throw fail(fmt::format("corrupted (array dtype {})", dtype));
      specs.push_back({e.at("name").get<std::string>(), dtype == "f4", e.at("count").get<std::size_t>()});
      if (specs.back().count > bytes.size()) throw fail("truncated (an array is larger than the file)");
    }
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("corrupted (the header's array list: {})", e.what()));
  }
  std::size_t expected = prefix_size + header_size + 8;
  for (const auto& s : specs) expected += s.count * (s.f4 ? 4 : 8);
  if (bytes.size() < expected)
    throw fail(fmt::format("truncated ({} bytes; the header announces {})", bytes.size(), expected));
  if (bytes.size() > expected)
    throw fail(fmt::format("corrupted ({} bytes; the header announces {})", bytes.size(), expected));
  if (fnv1a(bytes.data(), expected - 8) != get<std::uint64_t>(bytes, expected - 8))
    throw fail("corrupted (checksum mismatch)");

  Checkpoint c;
  std::map<std::string, Vector> arrays;
  std::size_t at = prefix_size + header_size;
  for (const auto& s : specs) {
    Vector v(static_cast<Index>(s.count));
    if (s.count == 0) {
      // An empty array (the frequencies of a raw-time network) has no storage: memcpy to its null data() is undefined.
    } else if (s.f4) {
      Eigen::VectorXf f(static_cast<Index>(s.count));
      std::memcpy(f.data(), bytes.data() + at, s.count * 4);
      v = f.cast<double>();
    } else {
      std::memcpy(v.data(), bytes.data() + at, s.count * 8);
    }
    at += s.count * (s.f4 ? 4 : 8);
    arrays[s.name] = std::move(v);
  }
  try {
    if (header.at("version").get<std::uint32_t>() != version) throw fail("corrupted (two different versions)");
    c.architecture = architecture_from_json(header.at("architecture"));
    const auto mean = header.at("scaling").at("mean").get<std::vector<double>>();
    const auto scale = header.at("scaling").at("scale").get<std::vector<double>>();
    c.scaling.mean = Eigen::Map<const Vector>(mean.data(), static_cast<Index>(mean.size()));
    c.scaling.scale = Eigen::Map<const Vector>(scale.data(), static_cast<Index>(scale.size()));
    c.training = header.value("training", nlohmann::ordered_json::object());
    c.sde = sde_options_from_json(header.at("sde"), path);
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("malformed header ({})", e.what()));
  } catch (const ConfigError& e) {
    throw fail(fmt::format("invalid architecture in the header ({})", e.what()));
  }
  const Index d = c.architecture.dim;
  if (c.scaling.mean.size() != d || c.scaling.scale.size() != d || !c.scaling.mean.allFinite() ||
      !(c.scaling.scale.array() > 0).all())
    throw fail(fmt::format("invalid data scaling for dimension {}", d));
  for (const char* name : {"frequencies", "weights", "ema"})
    if (!arrays.count(name)) throw fail(fmt::format("corrupted (no array \"{}\")", name));
  c.frequencies = arrays["frequencies"];
  c.weights = arrays["weights"];
  c.ema = arrays["ema"];
  const Index P = c.architecture.parameter_count();
  if (c.weights.size() != P || c.ema.size() != P)
    throw fail(
        fmt::format("the architecture has {} parameters, the file holds "
                    "{} weights and {} EMA weights",
                    P, c.weights.size(), c.ema.size()));
  const Index F = c.architecture.time_embedding == TimeEmbedding::fourier ? c.architecture.fourier_features : 0;
  if (c.frequencies.size() != F)
    throw fail(fmt::format("{} Fourier frequencies for an architecture with {}", c.frequencies.size(), F));
  if (!c.weights.allFinite() || !c.ema.allFinite() || !c.frequencies.allFinite())
    throw fail("the weights hold non-finite values");
  return c;
}

// ------------------------------------------------------------------------------------------------
// .npz

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  const std::string z = read_file(path, ".npz archive");
  const auto fail = [&](const std::string& problem) -> InputError {
    return InputError(fmt::format("{}: {}", path, problem));
  };
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22
  // bytes.
  if (z.size() < 22) throw fail("not an .npz (zip) archive: too short");
  std::size_t eocd = std::string::npos;
  for (std::size_t i = z.size() - 22 + 1; i-- > 0 && z.size() - i <= 65557;)
    if (get<std::uint32_t>(z, i) == 0x06054b50u) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) throw fail("not an .npz (zip) archive, or truncated (no end-of-directory record)");
  std::uint64_t entries = get<std::uint16_t>(z, eocd + 10);
  std::uint64_t dir_at = get<std::uint32_t>(z, eocd + 16);
  // Zip64: the locator sits just before the end record and points at the zip64
  // end record.
  if ((entries == 0xFFFF || dir_at == 0xFFFFFFFFu) && eocd >= 20 && get<std::uint32_t>(z, eocd - 20) == 0x07064b50u) {
    const auto z64 = get<std::uint64_t>(z, eocd - 20 + 8);
    if (!fits(z64, 56, z.size()) || get<std::uint32_t>(z, z64) != 0x06064b50u) throw fail("corrupted zip64 directory");
    entries = get<std::uint64_t>(z, z64 + 32);
    dir_at = get<std::uint64_t>(z, z64 + 48);
  }
  std::map<std::string, NpyArray> arrays;
  std::size_t at = dir_at;
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (!fits(at, 46, z.size()) || get<std::uint32_t>(z, at) != 0x02014b50u) throw fail("corrupted zip directory");
    const auto method = get<std::uint16_t>(z, at + 10);
    std::uint64_t compressed = get<std::uint32_t>(z, at + 20);
    std::uint64_t uncompressed = get<std::uint32_t>(z, at + 24);
    const auto name_len = get<std::uint16_t>(z, at + 28), extra_len = get<std::uint16_t>(z, at + 30),
               comment_len = get<std::uint16_t>(z, at + 32);
    std::uint64_t local = get<std::uint32_t>(z, at + 42);
    if (!fits(at, 46 + std::uint64_t{name_len} + extra_len, z.size())) throw fail("corrupted zip directory");
    std::string name = z.substr(at + 46, name_len);
    // Zip64 extra field (id 1): the 64-bit values of the fields that hold
    // 0xFFFFFFFF, in this order.
    for (std::size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const auto id = get<std::uint16_t>(z, x), size = get<std::uint16_t>(z, x + 2);
      if (x + 4 + size > z.size()) throw fail("corrupted zip directory");
      if (id == 1) {
        std::size_t y = x + 4;
        if (uncompressed == 0xFFFFFFFFu && y + 8 <= x + 4 + size) uncompressed = get<std::uint64_t>(z, y), y += 8;
        if (compressed == 0xFFFFFFFFu && y + 8 <= x + 4 + size) compressed = get<std::uint64_t>(z, y), y += 8;
        if (local == 0xFFFFFFFFu && y + 8 <= x + 4 + size) local = get<std::uint64_t>(z, y);
      }
      x += 4 + size;
    }
    at += 46 + name_len + extra_len + comment_len;
    if (method != 0)
      throw fail(
          fmt::format("entry {} is compressed (method {}); save with "
                      "numpy.savez, not savez_compressed",
                      name, method));
    if (compressed != uncompressed) throw fail(fmt::format("corrupted entry {}", name));
    if (!fits(local, 30, z.size()) || get<std::uint32_t>(z, local) != 0x04034b50u)
      throw fail(fmt::format("corrupted entry {}", name));
    const std::size_t data_at = local + 30 + get<std::uint16_t>(z, local + 26) + get<std::uint16_t>(z, local + 28);
    if (!fits(data_at, compressed, z.size())) throw fail(fmt::format("truncated (entry {})", name));
    if (name.size() > 4 && name.substr(name.size() - 4) == ".npy") name.resize(name.size() - 4);
    std::istringstream npy(z.substr(data_at, compressed));
    NpyArray a = read_npy_array(npy, compressed, fmt::format("{}: array {}", path, name));
    if (a.fortran_order) throw fail(fmt::format("array {} is in Fortran order; save C-ordered arrays", name));
      arrays[name] = std::move(a);
  }
  if (arrays.empty()) throw fail("the archive holds no arrays");
  return arrays;
}

ImportedMlp import_torch_npz(const std::string& path, Parameterization parameterization) {
  const auto arrays = read_npz(path);
  const auto fail = [&](const std::string& problem) -> InputError {
    return InputError(fmt::format("{}: {}", path, problem));
  };
  int L = 0;
  while (arrays.count(fmt::format("W{}", L + 1))) ++L;
  if (L < 2)
    throw fail(
        "expected keys W1, b1, ..., WL, bL with L >= 2 (an MLP with at "
        "least one hidden layer)");
  // Other arrays (inputs and outputs kept for a self-test, say) are not the
  // network's: ignored, with a note.
  std::vector<std::string> ignored;
  for (const auto& [key, value] : arrays) {
    bool known = false;
    for (int l = 1; l <= L; ++l) known |= key == fmt::format("W{}", l) || key == fmt::format("b{}", l);
    if (!known) ignored.push_back(key);
  }
  if (!ignored.empty())
    notice(fmt::format("{}: ignoring array{} {}, not among the MLP's W1, b1, ..., W{}, b{}", path,
                       ignored.size() > 1 ? "s" : "", fmt::join(ignored, ", "), L, L));
  std::vector<Index> outs, ins;
  for (int l = 1; l <= L; ++l) {
    const auto& W = arrays.at(fmt::format("W{}", l));
    if (W.shape.size() != 2)
      throw fail(fmt::format("W{}: expected a 2-d array (out, in); found {} dimensions", l, W.shape.size()));
    const auto bkey = fmt::format("b{}", l);
    if (!arrays.count(bkey)) throw fail(fmt::format("missing key \"{}\"", bkey));
    const auto& b = arrays.at(bkey);
    if (b.shape.size() != 1 || b.shape[0] != W.shape[0])
      throw fail(fmt::format("{}: expected shape ({}) to match W{} of shape ({}, {})", bkey, W.shape[0], l, W.shape[0],
                             W.shape[1]));
    outs.push_back(static_cast<Index>(W.shape[0]));
    ins.push_back(static_cast<Index>(W.shape[1]));
    if (l > 1 && ins.back() != outs[outs.size() - 2])
      throw fail(
          fmt::format("W{} takes {} inputs but W{} gives {} outputs", l, ins.back(), l - 1, outs[outs.size() - 2]));
  }
  ImportedMlp m;
  auto& a = m.architecture;
  a.dim = outs.back();
  if (ins[0] != a.dim + 1)
    throw fail(fmt::format("W1 takes {} inputs; with {} outputs from W{} the input [x, t] has {}", ins[0], a.dim, L,
                           a.dim + 1));
  a.hidden.assign(outs.begin(), outs.end() - 1);
  a.time_embedding = TimeEmbedding::raw;
  a.parameterization = parameterization;
  a.precision = Precision::float32;
  try {
    a.validate();
  } catch (const ConfigError& e) {
    throw fail(e.what());
  }
  m.weights.resize(a.parameter_count());
  Index at = 0;
  for (int l = 1; l <= L; ++l) {
    const auto& W = arrays.at(fmt::format("W{}", l));
    const auto& b = arrays.at(fmt::format("b{}", l));
    const Index out = outs[l - 1], in = ins[l - 1];
    // PyTorch's (out, in) row-major is this library's column-major out x in
    // transposed: copy element-wise.
    Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Wt(W.data.data(), out, in);
    Eigen::Map<Matrix>(m.weights.data() + at, out, in) = Wt;
    at += out * in;
    m.weights.segment(at, out) = Eigen::Map<const Vector>(b.data.data(), out);
    at += out;
  }
  if (!m.weights.allFinite()) throw fail("the weights hold non-finite values");
  return m;
}

}  // namespace scoresde
