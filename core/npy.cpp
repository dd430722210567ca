#include "core/npy.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string_view>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>

#include "core/errors.hpp"
#include "core/input_file.hpp"

namespace scoresde {

namespace {

// Temporary files being written, removed when the process is stopped by SIGINT, SIGTERM or SIGHUP (Ctrl-C, kill),
// so that a long write (`sample` streams its samples into one for as long as it runs) leaves nothing behind. The
// paths sit in fixed slots, complete before they are armed, so that the handler reads only whole paths and calls
// only async-signal-safe functions (unlink, signal, raise).
constexpr int cleanup_slots = 8;
constexpr std::size_t cleanup_path_max = 4096;
char cleanup_paths[cleanup_slots][cleanup_path_max];
std::atomic<bool> cleanup_claimed[cleanup_slots];
std::atomic<bool> cleanup_armed[cleanup_slots];
constexpr int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};

extern "C" void remove_temporaries_and_reraise(int sig) {
  for (int k = 0; k < cleanup_slots; ++k)
    if (cleanup_armed[k].load()) ::unlink(cleanup_paths[k]);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Registers a temporary file for removal on those signals while it is written. The handler goes only where the
// signal's disposition is the default (a command with its own SIGINT handler, as `train`, keeps it), and the
// default comes back when the outermost write ends.
class TemporaryFileGuard {
 public:
  explicit TemporaryFileGuard(const std::string& tmp) {
    if (tmp.size() < cleanup_path_max) {
      for (int k = 0; k < cleanup_slots && slot_ < 0; ++k) {
        bool expected = false;
        if (!cleanup_claimed[k].compare_exchange_strong(expected, true)) continue;
        std::memcpy(cleanup_paths[k], tmp.c_str(), tmp.size() + 1);
        cleanup_armed[k].store(true);
        slot_ = k;
      }
    }
    for (std::size_t i = 0; i < std::size(cleanup_signals); ++i) {
      struct sigaction current {};
      if (::sigaction(cleanup_signals[i], nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction cleanup {};
      cleanup.sa_handler = remove_temporaries_and_reraise;
      sigemptyset(&cleanup.sa_mask);
      if (::sigaction(cleanup_signals[i], &cleanup, nullptr) == 0) installed_[i] = true;
    }
  }
  ~TemporaryFileGuard() {
    for (std::size_t i = 0; i < std::size(cleanup_signals); ++i)
      if (installed_[i]) std::signal(cleanup_signals[i], SIG_DFL);
    if (slot_ < 0) return;
    cleanup_armed[slot_].store(false);
    cleanup_claimed[slot_].store(false);
  }
  TemporaryFileGuard(const TemporaryFileGuard&) = delete;
  TemporaryFileGuard& operator=(const TemporaryFileGuard&) = delete;

 private:
  int slot_ = -1;
  bool installed_[std::size(cleanup_signals)] = {};
};

// xt::dump_npy through a stream of our own, checked after it is closed: xtensor does not look at the stream after
// writing, so a full disk would leave a truncated array that looks written.
template <class E>
void dump_npy_checked(const std::string& path, const E& array) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  xt::detail::dump_npy_stream(out, array);
  out.close();
  if (!out) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
}

}  // namespace

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  // The rename below replaces whatever `path` names: a directory would be refused by rename, but a device such as
  // /dev/full or /dev/null, or a pipe, would be replaced by a regular file (root may write in /dev). Outputs are
  // regular files.
  std::error_code status_error;
  const auto status = std::filesystem::status(path, status_error);
  if (std::filesystem::is_directory(status))
    throw InputError(fmt::format("{}: is a directory; give the path of a file to write", path));
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw InputError(
        fmt::format("{}: is not a regular file (a device, pipe or socket); outputs are written to a "
                    "temporary file and renamed into place, so give the path of a regular file",
                    path));
  const std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
  const TemporaryFileGuard guard(tmp);
  {
    // Name the destination, not the temporary file, when the directory is missing or read-only.
    std::ofstream probe(tmp, std::ios::binary);
    if (!probe) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  }
  try {
    write(tmp);
  } catch (const InputError& e) {
    // The user named `path`; the temporary file's name would only puzzle them.
    std::remove(tmp.c_str());
    std::string what = e.what();
    for (auto at = what.find(tmp); at != std::string::npos; at = what.find(tmp, at + path.size()))
      what.replace(at, tmp.size(), path);
    throw InputError(what);
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
    if (!out) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
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
  dump_npy_checked(path, view);
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
  dump_npy_checked(path, view);
}

namespace {

struct NpyHeader {
  std::vector<std::size_t> shape;
  bool fortran_order = false;
  std::string typestring;
};

// Opens an .npy file and reads its header (xtensor's parser), leaving `in` at the first data byte; InputError
// naming the file when it cannot be opened or parsed. The data is read by read_values straight into its
// destination: no second copy of a large array.
NpyHeader open_npy(const std::string& path, std::ifstream& in) {
  refuse_directory(path, "an .npy file");
  in.open(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  if (in.peek() == std::ifstream::traits_type::eof())
    throw InputError(fmt::format("{}: the file is empty; expected an .npy array", path));
  try {
    unsigned char major = 0, minor = 0;
    xt::detail::read_magic(in, &major, &minor);
    std::string header;
    if (major == 1 && minor == 0)
      header = xt::detail::read_header_1_0(in);
    else if (major == 2 && minor == 0)
      header = xt::detail::read_header_2_0(in);
    else
      throw std::runtime_error("unsupported file format version");
    NpyHeader h;
    xt::detail::parse_header(header, h.typestring, &h.fortran_order, h.shape);
    return h;
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: not a readable .npy file ({})", path, e.what()));
  }
}

// Reads `count` float64 or float32 values from `in` into out as doubles.
void read_values(std::ifstream& in, const std::string& path, const std::string& typestring, double* out,
                 std::size_t count) {
  if (typestring == "<f8") {
    in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(count * sizeof(double)));
  } else if (typestring == "<f4") {
    std::vector<float> block(std::min<std::size_t>(count, std::size_t{1} << 16));
    for (std::size_t done = 0; done < count && in;) {
      const std::size_t m = std::min(block.size(), count - done);
      in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(m * sizeof(float)));
      std::copy(block.begin(), block.begin() + static_cast<std::ptrdiff_t>(m), out + done);
      done += m;
    }
  } else {
    throw InputError(
        fmt::format("{}: element type {} is not supported; expected float64 (<f8) or float32 (<f4)", path, typestring));
  }
  if (!in) throw InputError(fmt::format("{}: the file ends before its {} values (truncated?)", path, count));
}

}  // namespace

Matrix read_samples_npy(const std::string& path) {
  std::ifstream in;
  const NpyHeader file = open_npy(path, in);
  const std::size_t rank = file.shape.size();
  if (rank < 2 || rank > 4)
    throw InputError(
        fmt::format("{}: expected a 2-d array of shape (n, d), or images (n, H, W) or (n, C, H, W); found "
                    "{} dimensions",
                    path, rank));
  if (file.fortran_order) throw InputError(fmt::format("{}: expected C (row-major) order; found Fortran order", path));
  // Images are flattened row-major, d = C H W: in C order each image is already one contiguous row, and the
  // (n, d) rows are the columns of the column-major d x n batch.
  const auto n = static_cast<Index>(file.shape[0]);
  Index d = 1;
  for (std::size_t i = 1; i < rank; ++i) d *= static_cast<Index>(file.shape[i]);
  if (n < 1 || d < 1)
    throw InputError(fmt::format("{}: the array is empty (shape ({}))", path, fmt::join(file.shape, ", ")));
  if (file.typestring != "<f8" && file.typestring != "<f4")
    throw InputError(fmt::format("{}: element type {} is not supported; expected float64 (<f8) or float32 (<f4)", path,
                                 file.typestring));
  Matrix x(d, n);
  read_values(in, path, file.typestring, x.data(), static_cast<std::size_t>(x.size()));
  for (Index j = 0; j < n; ++j)
    if (!x.col(j).allFinite()) throw InputError(fmt::format("{}: row {} holds a non-finite value", path, j));
  return x;
}

Vector read_vector_npy(const std::string& path) {
  std::ifstream in;
  const NpyHeader file = open_npy(path, in);
  if (file.shape.size() != 1)
    throw InputError(
        fmt::format("{}: expected a 1-d array of shape (n,); found {} dimensions", path, file.shape.size()));
  Vector v(static_cast<Index>(file.shape[0]));
  read_values(in, path, file.typestring, v.data(), static_cast<std::size_t>(v.size()));
  return v;
}

bool has_npy_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[6] = {};
  return in.read(magic, 6) && std::string_view(magic, 6) == "\x93NUMPY";
}

}  // namespace scoresde
