// Regressions of the file parsers found by the fuzz targets (tests/fuzz/, scripts/fuzz.sh): each input that made a
// parser crash, allocate gigabytes or escape with another exception type is refused here with an InputError naming the
// file, and the valid files next to them still read.
#include <doctest/doctest.h>

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/time_grid.hpp"
#include "experiments/study/study_internal.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#include "models/idx.hpp"

using namespace scoresde;
using scoresde::test::TempDir;

namespace {

// An .npy file of format 1.0 with the header dictionary `dict`, padded with spaces to `header_length` bytes (the last a
// newline; 10 + header_length a multiple of 64 as numpy writes), then `data`.
std::string npy_v1(const std::string& dict, std::size_t header_length, const std::string& data) {
  std::string header = dict;
  header.resize(header_length - 1, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY\x01";
  bytes += '\0';
  bytes += static_cast<char>(header_length & 0xFF);
  bytes += static_cast<char>(header_length >> 8);
  return bytes + header + data;
}

std::string doubles(std::initializer_list<double> values) {
  std::string bytes;
  for (const double v : values) bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  return bytes;
}

// The message of the InputError that f throws (fails the test when it throws nothing or something else).
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  FAIL("no InputError");
  return {};
}

}  // namespace

TEST_CASE("npy: a header longer than 127 bytes is read (its length is unsigned)") {
  TempDir dir("parsers");
  // 182 = 0xB6: taken as a signed byte, the length became 0xFFB6 and the data was read as part of the header.
  const std::string path = dir.write(
      "long.npy", npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", 182, doubles({0.5, -2})));
  const Matrix x = read_samples_npy(path);
  REQUIRE(x.rows() == 2);
  REQUIRE(x.cols() == 1);
  CHECK(x(0, 0) == 0.5);
  CHECK(x(1, 0) == -2);
}

TEST_CASE(
    "npy: a shape larger than the file is refused before anything is "
    "allocated") {
  TempDir dir("parsers");
  const std::string huge = dir.write("huge.npy", npy_v1("{'descr': '<f8', 'fortran_order': False, "
                                                        "'shape': (4294967296, 4294967296), }",
                                                        118, doubles({1, 2})));
  const std::string message = input_error([&] { read_samples_npy(huge); });
  CHECK(message.find(huge) != std::string::npos);
  CHECK(message.find("needs more than the 16 bytes") != std::string::npos);
  const std::string vector = dir.write("vector.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, "
                                                            "'shape': (1099511627776,), }",
                                                            118, "abcd"));
  CHECK(input_error([&] { read_vector_npy(vector); }).find("more than the 4 bytes") != std::string::npos);
  // The same through --time-grid, which reads 1-d .npy arrays.
  CHECK(input_error([&] { read_time_grid_file(vector, 1.0); }).find("more than the 4 bytes") != std::string::npos);
  // And an .npz entry (read_npz reads each entry with read_npy_array).
  std::istringstream entry(
      npy_v1("{'descr': '<f8', 'fortran_order': False, "
             "'shape': (1152921504606846976,), }",
             118, ""));
  CHECK(input_error([&] { read_npy_array(entry, entry.str().size(), "w.npz: array W1"); }).find("w.npz: array W1") !=
        std::string::npos);
}

TEST_CASE(
    "npy: a version 2 header length with high bytes is checked against "
    "the file") {
  TempDir dir("parsers");
  // Length bytes 8a ff 7b 27 (as signed chars, a length of about 4 GiB): the file has 40 bytes.
  std::string bytes = "\x93NUMPY\x02";
  bytes += '\0';
  bytes += "\x8a\xff\x7b\x27{'descr': '<f4', 'shape': (2,)}";
  const std::string path = dir.write("v2.npy", bytes);
  CHECK(input_error([&] { read_vector_npy(path); }).find("not a readable .npy file (a header of") != std::string::npos);
}

TEST_CASE(
    "npy: a malformed header dictionary is an InputError, not a read "
    "past its end") {
  TempDir dir("parsers");
  for (const std::string dict : {"{'descr': '<f8', 'fortran_order': False, 'shape'C (2, 2), }",
                                 "{'descr': '<f8', 'fortran_order': False, 'shape': }", "{}", "{'shape': (1,",
                                 "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (1,), }", ""}) {
    CAPTURE(dict);
    const std::string path = dir.write("bad.npy", npy_v1(dict, 118, doubles({1, 2, 3, 4})));
    CHECK(input_error([&] { read_samples_npy(path); }).find("not a readable .npy file") != std::string::npos);
  }
}

TEST_CASE("npz: zip64 offsets near 2^64 are refused, not wrapped around") {
  TempDir dir("parsers");
  const auto le = [](std::uint64_t v, int bytes) {
    std::string out;
    for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
    return out;
  };
  // A zip64 end record (56 bytes) announcing one entry whose directory starts at 2^64 - 16, its locator, and the end
  // record that sends there (entries 0xFFFF, directory offset 0xFFFFFFFF). offset + 46 wrapped to 30, inside the file,
  // and the directory was read from 2^64 - 16.
  std::string zip = le(0x06064b50u, 4) + std::string(28, '\0') + le(1, 8) + le(0, 8) + le(0xFFFFFFFFFFFFFFF0ull, 8);
  zip += le(0x07064b50u, 4) + le(0, 4) + le(0, 8) + le(1, 4);
  zip += le(0x06054b50u, 4) + std::string(6, '\0') + le(0xFFFF, 2) + le(0, 4) + le(0xFFFFFFFFu, 4) + le(0, 2);
  const std::string path = dir.write("zip64.npz", zip);
  CHECK(input_error([&] { read_npz(path); }).find("zip64.npz: corrupted zip directory") != std::string::npos);
  // The zip64 end record itself placed at 2^64 - 8.
  zip.replace(56 + 8, 8, le(0xFFFFFFFFFFFFFFF8ull, 8));
  dir.write("zip64.npz", zip);
  CHECK(input_error([&] { read_npz(path); }).find("corrupted zip64 directory") != std::string::npos);
}

TEST_CASE("mixture file: a number beyond double's range is an InputError") {
  // nlohmann's parser throws out_of_range (not parse_error) for 1e999; it escaped as an unexpected error.
  const std::string message =
      input_error([&] { parse_mixture_json(R"({"weights": [1], "means": [[2e308]], "stds": [1]})", "m.json"); });
  CHECK(message.find("m.json: not valid JSON") != std::string::npos);
}

TEST_CASE("study results.json: parts of the wrong type are refused by name") {
  TempDir dir("parsers");
  const auto problem = [&](const std::string& text) {
    const std::string path = dir.write("results.json", text);
    const std::string message = input_error([&] { read_study_results(path); });
    CHECK(message.find(path + ": not a study's results file") != std::string::npos);
    return message;
  };
  CHECK(problem(R"({"study": 5, "rows": []})").find("\"study\" is not an object") != std::string::npos);
  CHECK(problem(R"({"study": {}, "rows": [3]})").find("row 0") != std::string::npos);
  CHECK(problem(R"({"study": {}, "rows": [{"run": "a"}, {"w2": 1}]})").find("row 1") != std::string::npos);
  CHECK(problem(R"({"study": {}, "rows": [], "sessions": 1})").find("\"sessions\"") != std::string::npos);
  CHECK(problem("[1, 2]").find("no \"study\" or \"rows\"") != std::string::npos);
  const StudyResults fine =
      read_study_results(dir.write("results.json", R"({"study": {"threads": 2}, "rows": [{"run": "a", "w2": 0.5}]})"));
  REQUIRE(fine.rows.size() == 1);
  CHECK(fine.rows[0]["run"] == "a");
  CHECK(fine.sessions.is_array());
  // Another thread count is the same study; another value of a key is named.
  check_same_study(fine.study, {{"threads", 1}}, "dir", "dir/study.ini");
  CHECK_THROWS_WITH_AS(check_same_study({{"steps", "10"}}, {{"steps", "20"}}, "dir", "dir/study.ini"),
                       doctest::Contains("steps was \"10\" and is now \"20\""), ConfigError);
}

TEST_CASE("idx: a small gzip file that inflates far beyond its header's dimensions is not read whole") {
  TempDir dir("parsers");
  // Labels of 3 bytes, then 4 MiB of zeros: some 4 KiB compressed. The whole content was read into memory before the
  // length was compared with the header's (a file of a few MB could so ask for gigabytes).
  const std::string path = dir.file("bomb.gz");
  gzFile file = gzopen(path.c_str(), "wb9");
  REQUIRE(file);
  const std::string head("\0\0\x08\x01\0\0\0\x03\x01\x02\x03", 11);
  gzwrite(file, head.data(), static_cast<unsigned>(head.size()));
  const std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 4; ++i) gzwrite(file, zeros.data(), static_cast<unsigned>(zeros.size()));
  gzclose(file);
  CHECK(std::filesystem::file_size(path) < 100000);
  CHECK(input_error([&] { read_idx(path, 1); }).find("bomb.gz: more than 1048575 bytes after the IDX data") !=
        std::string::npos);
  // A file with a few bytes too many is still told by how many.
  const std::string longer = dir.write("long.idx", head + "ab");
  CHECK(input_error([&] { read_idx(longer, 1); }).find("2 bytes after the IDX data") != std::string::npos);
}

TEST_CASE("checkpoint: an empty array (raw time: no frequencies) loads without copying to a null pointer") {
  // load_checkpoint called memcpy(v.data(), ..., 0) with v empty, data() null: undefined behaviour that UBSan reports
  // (the sanitize preset, the fuzz build) on every raw-time checkpoint. Round trip of one.
  TempDir dir("parsers");
  Checkpoint c;
  c.architecture.dim = 2;
  c.architecture.hidden = {3};
  c.architecture.time_embedding = TimeEmbedding::raw;
  c.architecture.precision = Precision::float64;
  c.weights = Vector::LinSpaced(c.architecture.parameter_count(), -1.0, 1.0);
  c.ema = c.weights / 2;
  c.scaling.mean = Vector::Zero(2);
  c.scaling.scale = Vector::Ones(2);
  const std::string path = dir.file("raw.ckpt");
  save_checkpoint(path, c);
  const Checkpoint read = load_checkpoint(path);
  CHECK(read.frequencies.size() == 0);
  CHECK(read.weights == c.weights);
  CHECK(read.ema == c.ema);
}

TEST_CASE("checkpoint: a header without its SDE is an InputError") {
  // Found by fuzz_checkpoint: header.at("sde") was outside the try block that turns nlohmann's exceptions into
  // InputError, so the out_of_range escaped.
  TempDir dir("parsers");
  Checkpoint c;
  c.architecture.dim = 2;
  c.architecture.hidden = {3};
  c.architecture.time_embedding = TimeEmbedding::raw;
  c.weights = Vector::Zero(c.architecture.parameter_count());
  c.ema = c.weights;
  c.scaling.mean = Vector::Zero(2);
  c.scaling.scale = Vector::Ones(2);
  const std::string path = dir.file("no_sde.ckpt");
  save_checkpoint(path, c);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto key = bytes.find("\"sde\":");
  REQUIRE(key != std::string::npos);
  bytes[key + 1] = 'k';  // "kde": the same length, so the header's length and the arrays stay right
  // The checksum (FNV-1a 64 of everything before it) made valid again, so that the header is what is refused.
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i + 8 < bytes.size(); ++i) {
    h ^= static_cast<unsigned char>(bytes[i]);
    h *= 1099511628211ull;
  }
  for (int i = 0; i < 8; ++i) bytes[bytes.size() - 8 + i] = static_cast<char>((h >> (8 * i)) & 0xFF);
  dir.write("no_sde.ckpt", bytes);
  const std::string message = input_error([&] { load_checkpoint(path); });
  CHECK(message.find("no_sde.ckpt: malformed header") != std::string::npos);
  CHECK(message.find("'sde' not found") != std::string::npos);
}
