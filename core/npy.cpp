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
  std::size_t data_bytes = 0;  // the bytes after the header
};

// Parses the header's dictionary, a Python literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }
// (keys in any order; single or double quotes; spaces anywhere). std::runtime_error saying what is wrong. Written
// here rather than taken from xtensor, whose parse_header reads past the end of an empty or truncated header.
void parse_npy_dictionary(const std::string& text, NpyHeader& h) {
  std::size_t at = 0;
  const auto skip_spaces = [&] {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n')) ++at;
  };
  const auto expect = [&](char c) {
    skip_spaces();
    if (at >= text.size() || text[at] != c) throw std::runtime_error(fmt::format("expected '{}' at byte {}", c, at));
    ++at;
  };
  const auto accept = [&](char c) {
    skip_spaces();
    if (at < text.size() && text[at] == c) return ++at, true;
    return false;
  };
  const auto quoted = [&] {
    skip_spaces();
    if (at >= text.size() || (text[at] != '\'' && text[at] != '"'))
      throw std::runtime_error(fmt::format("expected a quoted string at byte {}", at));
    const char quote = text[at++];
    const auto end = text.find(quote, at);
    if (end == std::string::npos) throw std::runtime_error("unterminated string");
    std::string value = text.substr(at, end - at);
    at = end + 1;
    return value;
  };
  bool have_descr = false, have_order = false, have_shape = false;
  expect('{');
  while (!accept('}')) {
    const std::string key = quoted();
    expect(':');
    skip_spaces();
    if (key == "descr") {
      h.typestring = quoted();
      have_descr = true;
    } else if (key == "fortran_order") {
      if (text.compare(at, 4, "True") == 0) {
        h.fortran_order = true, at += 4;
      } else if (text.compare(at, 5, "False") == 0) {
        h.fortran_order = false, at += 5;
      } else {
        throw std::runtime_error("fortran_order is neither True nor False");
      }
      have_order = true;
    } else if (key == "shape") {
      h.shape.clear();
      expect('(');
      while (!accept(')')) {
        skip_spaces();
        std::size_t n = 0, digits = 0;
        for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++digits) {
          if (n > (std::size_t{1} << 62) / 10) throw std::runtime_error("a dimension beyond 2^62");
          n = 10 * n + static_cast<std::size_t>(text[at] - '0');
        }
        if (digits == 0) throw std::runtime_error(fmt::format("expected a dimension at byte {}", at));
        h.shape.push_back(n);
        if (!accept(',')) {
          expect(')');
          break;
        }
      }
      have_shape = true;
    } else {
      throw std::runtime_error(fmt::format("unknown key '{}'", key));
    }
    if (!accept(',')) {
      expect('}');
      break;
    }
  }
  skip_spaces();
  if (at != text.size()) throw std::runtime_error(fmt::format("unexpected bytes after the dictionary at byte {}", at));
  if (!have_descr || !have_order || !have_shape)
    throw std::runtime_error("the header lacks one of 'descr', 'fortran_order', 'shape'");
}

// Reads the header of an .npy stream (xtensor's parser for the dictionary), leaving `in` at the first data byte;
// `available` is the number of bytes from the stream's position to its end. The prefix is read here rather than
// with xtensor's read_header_1_0/2_0, which take the header length's bytes as signed chars (a length byte >= 0x80
// turns into a length near 64 KiB, or 4 GiB in version 2) and allocate whatever length the file claims.
// Versions 2.0 and 3.0 differ only in the header's encoding (UTF-8 in 3.0), which holds ASCII for these types.
NpyHeader read_npy_header(std::istream& in, std::size_t available, const std::string& path) {
  const auto fail = [&](const std::string& problem) {
    return InputError(fmt::format("{}: not a readable .npy file ({})", path, problem));
  };
  unsigned char prefix[12] = {};
  const std::size_t magic_size = 6;
  if (available < magic_size + 4 || !in.read(reinterpret_cast<char*>(prefix), magic_size + 4))
    throw fail("shorter than the .npy prefix");
  if (std::memcmp(prefix, "\x93NUMPY", magic_size) != 0) throw fail("no .npy magic string \\x93NUMPY");
  const unsigned major = prefix[6], minor = prefix[7];
  std::size_t length = 0, prefix_size = magic_size + 4;
  if (major == 1 && minor == 0) {
    length = std::size_t{prefix[8]} | std::size_t{prefix[9]} << 8;
  } else if ((major == 2 || major == 3) && minor == 0) {
    if (available < magic_size + 6 || !in.read(reinterpret_cast<char*>(prefix + 10), 2))
      throw fail("shorter than the .npy prefix");
    length = std::size_t{prefix[8]} | std::size_t{prefix[9]} << 8 | std::size_t{prefix[10]} << 16 |
             std::size_t{prefix[11]} << 24;
    prefix_size += 2;
  } else {
    throw fail(fmt::format("format version {}.{}; expected 1.0, 2.0 or 3.0", major, minor));
  }
  if (length == 0 || length > available - prefix_size)
    throw fail(fmt::format("a header of {} bytes in a file of {}", length, available));
  std::string header(length, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(length))) throw fail("the header cannot be read");
  try {
    NpyHeader h;
    parse_npy_dictionary(header, h);
    h.data_bytes = available - prefix_size - length;
    return h;
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
}

// Opens an .npy file and reads its header, leaving `in` at the first data byte; InputError naming the file when it
// cannot be opened or parsed. The data is read by read_values straight into its destination: no second copy of a
// large array.
NpyHeader open_npy(const std::string& path, std::ifstream& in) {
  refuse_directory(path, "an .npy file");
  in.open(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  in.seekg(0);
  if (size < 0 || !in) throw InputError(fmt::format("{}: cannot read ({})", path, std::strerror(errno)));
  if (size == 0) throw InputError(fmt::format("{}: the file is empty; expected an .npy array", path));
  return read_npy_header(in, static_cast<std::size_t>(size), path);
}

// The element size of the supported types (float64, float32); InputError for any other.
std::size_t element_size(const std::string& path, const std::string& typestring) {
  if (typestring == "<f8") return 8;
  if (typestring == "<f4") return 4;
  throw InputError(
      fmt::format("{}: element type {} is not supported; expected float64 (<f8) or float32 (<f4)", path, typestring));
}

// The number of elements of the array, checked against the bytes after the header (`in` is at the first data byte):
// a header claiming a shape larger than the file is refused before anything is allocated for it (a damaged or
// hostile header would otherwise ask for gigabytes, or overflow the product of the dimensions).
std::size_t checked_element_count(const std::string& path, const NpyHeader& file) {
  const std::size_t size = element_size(path, file.typestring), available = file.data_bytes;
  std::size_t count = 1;
  for (const std::size_t n : file.shape) {
    if (n != 0 && count > available / size / n)
      throw InputError(
          fmt::format("{}: the shape ({}) needs more than the {} bytes of data the file holds (truncated?)", path,
                      fmt::join(file.shape, ", "), available));
    count *= n;
  }
  if (count * size > available)
    throw InputError(fmt::format("{}: the shape ({}) needs {} bytes of data; the file holds {} (truncated?)", path,
                                 fmt::join(file.shape, ", "), count * size, available));
  return count;
}

// Reads `count` float64 or float32 values from `in` into out as doubles.
void read_values(std::istream& in, const std::string& path, const std::string& typestring, double* out,
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
  const std::size_t count = checked_element_count(path, file);
  if (count == 0)
    throw InputError(fmt::format("{}: the array is empty (shape ({}))", path, fmt::join(file.shape, ", ")));
  // count > 0 fits the file, so n and d (each at most count) fit an Index.
  const auto n = static_cast<Index>(file.shape[0]);
  const auto d = static_cast<Index>(count / file.shape[0]);
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
  Vector v(static_cast<Index>(checked_element_count(path, file)));
  read_values(in, path, file.typestring, v.data(), static_cast<std::size_t>(v.size()));
  return v;
}

NpyArray read_npy_array(std::istream& in, std::size_t size, const std::string& source) {
  const NpyHeader file = read_npy_header(in, size, source);
  NpyArray a;
  a.shape = file.shape;
  a.fortran_order = file.fortran_order;
  a.data.resize(checked_element_count(source, file));
  read_values(in, source, file.typestring, a.data.data(), a.data.size());
  return a;
}

bool has_npy_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[6] = {};
  return in.read(magic, 6) && std::string_view(magic, 6) == "\x93NUMPY";
}

}  // namespace scoresde
