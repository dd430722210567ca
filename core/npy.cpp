#include "core/npy.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
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
  write_npy_with_json(path, dump, std::function<std::string()>([&] { return json_text; }));
}

void write_npy_with_json(const std::string& path, const std::function<void(const std::string&)>& dump,
                         const std::function<std::string()>& json_text) {
  // The .npy is complete in its temporary file before the .json is written and renamed; if the last rename
  // fails, the .json goes too.
  const std::string json_path = path + ".json";
  bool json_written = false;
  try {
    write_atomically(path, [&](const std::string& tmp) {
      dump(tmp);
      write_text_atomically(json_path, json_text());
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

NpySamplesWriter::NpySamplesWriter(const std::string& path, Index n, Index d)
    : path_(path), n_(n), d_(d), out_(path, std::ios::binary) {
  if (!out_) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  // xtensor's own header writer, the one dump_samples_npy goes through, so the bytes agree.
  const std::vector<std::size_t> shape = {static_cast<std::size_t>(n), static_cast<std::size_t>(d)};
  xt::detail::write_header(out_, xt::detail::build_typestring<double>(), false, shape);
  check_stream();
}

void NpySamplesWriter::append(ConstMatrixRef block) {
  if (block.rows() != d_ || written_ + block.cols() > n_)
    throw std::logic_error(fmt::format("NpySamplesWriter({}): a {} x {} block after {} of {} samples of dimension {}",
                                       path_, block.rows(), block.cols(), written_, n_, d_));
  // Column-major d x m is row-major (m, d): the columns go out as they are stored.
  if (block.outerStride() == block.rows()) {
    out_.write(reinterpret_cast<const char*>(block.data()),
               static_cast<std::streamsize>(sizeof(double) * static_cast<std::size_t>(block.size())));
  } else {
    for (Index j = 0; j < block.cols(); ++j)
      out_.write(reinterpret_cast<const char*>(block.col(j).data()),
                 static_cast<std::streamsize>(sizeof(double) * static_cast<std::size_t>(d_)));
  }
  written_ += block.cols();
  check_stream();
}

void NpySamplesWriter::finish() {
  if (written_ != n_)
    throw std::logic_error(fmt::format("NpySamplesWriter({}): {} of {} samples written", path_, written_, n_));
  out_.close();
  check_stream();
}

void NpySamplesWriter::check_stream() const {
  if (!out_) throw InputError(fmt::format("{}: cannot write ({})", path_, std::strerror(errno)));
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
