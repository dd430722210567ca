#include "core/npy.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <unistd.h>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>

#include "core/errors.hpp"

namespace scoresde {

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
  {
    // Name the destination, not the temporary file, when the directory is missing or read-only.
    std::ofstream probe(tmp, std::ios::binary);
    if (!probe) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  }
  try {
    write(tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw InputError(fmt::format("{}: cannot write ({})", path, reason));
  }
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    // write_atomically's names: PATH.tmp-PID.
    const std::string name = entry.path().filename().string();
    const auto at = name.rfind(".tmp-");
    if (at == std::string::npos || at + 5 == name.size()) continue;
    const std::string pid_text = name.substr(at + 5);
    if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) continue;
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still run
    if (std::filesystem::remove(entry.path(), ec)) removed.push_back(name);
  }
  return removed;
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) throw InputError(fmt::format("{}: cannot write", path));
  });
}

void write_npy_with_json(const std::string& path, const std::function<void(const std::string&)>& dump,
                         const std::string& json_text) {
  // The .npy is complete in its temporary file before the .json is written and renamed; if the last rename
  // fails, the .json goes too.
  const std::string json_path = path + ".json";
  bool json_written = false;
  try {
    write_atomically(path, [&](const std::string& tmp) {
      dump(tmp);
      write_text_atomically(json_path, json_text);
      json_written = true;
    });
  } catch (...) {
    if (json_written) std::remove(json_path.c_str());
    throw;
  }
}

void dump_samples_npy(const std::string& path, ConstMatrixRef x) {
  // A column-major d x n matrix is the row-major (n, d) array numpy expects: no copy, no transpose.
  const std::vector<std::size_t> shape = {static_cast<std::size_t>(x.cols()), static_cast<std::size_t>(x.rows())};
  if (x.outerStride() != x.rows()) return dump_samples_npy(path, Matrix(x));
  auto view = xt::adapt(x.data(), static_cast<std::size_t>(x.size()), xt::no_ownership(), shape);
  {
    std::ofstream probe(path, std::ios::binary);
    if (!probe) throw InputError(fmt::format("{}: cannot write (is the directory there and writable?)", path));
  }
  xt::dump_npy(path, view);
}

void write_samples_npy(const std::string& path, ConstMatrixRef x) {
  write_atomically(path, [&](const std::string& tmp) { dump_samples_npy(tmp, x); });
}

void dump_vector_npy(const std::string& path, ConstVectorRef v) {
  const Vector contiguous = v;
  const std::vector<std::size_t> shape = {static_cast<std::size_t>(contiguous.size())};
  auto view = xt::adapt(contiguous.data(), static_cast<std::size_t>(contiguous.size()), xt::no_ownership(), shape);
  {
    std::ofstream probe(path, std::ios::binary);
    if (!probe) throw InputError(fmt::format("{}: cannot write (is the directory there and writable?)", path));
  }
  xt::dump_npy(path, view);
}

namespace {

// The header and data of an .npy file; InputError naming the file when it cannot be opened or parsed.
std::optional<xt::detail::npy_file> open_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  std::optional<xt::detail::npy_file> loaded;
  try {
    loaded.emplace(xt::detail::load_npy_file(in));
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: not a readable .npy file ({})", path, e.what()));
  }
  return loaded;
}

}  // namespace

Matrix read_samples_npy(const std::string& path) {
  auto loaded = open_npy(path);
  auto& file = *loaded;
  const std::size_t rank = file.m_shape.size();
  if (rank < 2 || rank > 4)
    throw InputError(
        fmt::format("{}: expected a 2-d array of shape (n, d), or images (n, H, W) or (n, C, H, W); found "
                    "{} dimensions",
                    path, rank));
  if (file.m_fortran_order)
    throw InputError(fmt::format("{}: expected C (row-major) order; found Fortran order", path));
  // Images are flattened row-major, d = C H W: in C order each image is already one contiguous row.
  const auto n = static_cast<Index>(file.m_shape[0]);
  Index d = 1;
  for (std::size_t i = 1; i < rank; ++i) d *= static_cast<Index>(file.m_shape[i]);
  if (n < 1 || d < 1)
    throw InputError(fmt::format("{}: the array is empty (shape ({}))", path, fmt::join(file.m_shape, ", ")));
  Matrix x(d, n);
  if (file.m_typestring == "<f8") {
    auto a = std::move(file).cast<double>();
    std::copy(a.data(), a.data() + a.size(), x.data());
  } else if (file.m_typestring == "<f4") {
    auto a = std::move(file).cast<float>();
    std::copy(a.data(), a.data() + a.size(), x.data());
  } else {
    throw InputError(fmt::format("{}: element type {} is not supported; expected float64 (<f8) or float32 (<f4)", path,
                                 file.m_typestring));
  }
  for (Index j = 0; j < n; ++j)
    if (!x.col(j).allFinite()) throw InputError(fmt::format("{}: row {} holds a non-finite value", path, j));
  return x;
}

Vector read_vector_npy(const std::string& path) {
  auto loaded = open_npy(path);
  auto& file = *loaded;
  if (file.m_shape.size() != 1)
    throw InputError(
        fmt::format("{}: expected a 1-d array of shape (n,); found {} dimensions", path, file.m_shape.size()));
  Vector v(static_cast<Index>(file.m_shape[0]));
  if (file.m_typestring == "<f8") {
    auto a = std::move(file).cast<double>();
    std::copy(a.data(), a.data() + a.size(), v.data());
  } else if (file.m_typestring == "<f4") {
    auto a = std::move(file).cast<float>();
    std::copy(a.data(), a.data() + a.size(), v.data());
  } else {
    throw InputError(fmt::format("{}: element type {} is not supported; expected float64 (<f8) or float32 (<f4)", path,
                                 file.m_typestring));
  }
  return v;
}

bool has_npy_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[6] = {};
  return in.read(magic, 6) && std::string_view(magic, 6) == "\x93NUMPY";
}

}  // namespace scoresde
