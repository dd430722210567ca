// Output files: an .npy and its .json record are written as a pair (both complete before either appears,
// neither left behind on failure).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

#include "cli_helpers.hpp"
#include "core/npy.hpp"

using namespace scoresde;
using scoresde::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("write_npy_with_json writes the array and PATH.json, and nothing else") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  const Matrix x = Matrix::Constant(2, 3, 1.5);
  write_npy_with_json(
      path, [&](const std::string& tmp) { dump_samples_npy(tmp, x); }, "{\"a\": 1}\n");
  CHECK(dir.entries() == std::set<std::string>{"x.npy", "x.npy.json"});
  CHECK(read_samples_npy(path) == x);
  CHECK(read_file(path + ".json") == "{\"a\": 1}\n");
}

TEST_CASE("write_npy_with_json: the .json is not there while the array is written") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  bool json_seen = true;
  write_npy_with_json(
      path,
      [&](const std::string& tmp) {
        json_seen = fs::exists(path + ".json");
        dump_vector_npy(tmp, Vector::Ones(4));
      },
      "{}\n");
  CHECK_FALSE(json_seen);
  CHECK(fs::exists(path));
  CHECK(fs::exists(path + ".json"));
}

TEST_CASE("write_npy_with_json: when the array cannot be written, neither file remains") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  CHECK_THROWS_AS(write_npy_with_json(
                      path, [](const std::string&) { throw std::runtime_error("disk full"); }, "{}\n"),
                  std::runtime_error);
  CHECK(dir.entries().empty());
}

TEST_CASE("write_npy_with_json: when the .json cannot be written, neither file remains") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  // A directory where the .json should go: its rename fails after the array is complete.
  fs::create_directories(path + ".json/inside");
  CHECK_THROWS(write_npy_with_json(
      path, [&](const std::string& tmp) { dump_samples_npy(tmp, Matrix::Zero(2, 2)); }, "{}\n"));
  CHECK(dir.entries() == std::set<std::string>{"x.npy.json", "x.npy.json/inside"});
}

TEST_CASE("write_npy_with_json: when the array cannot be renamed into place, the .json goes too") {
  TempDir dir;
  const auto path = dir.file("x.npy");
  // A non-empty directory where the array should go: the .json is renamed into place, then the array's rename
  // fails.
  fs::create_directories(path + "/inside");
  CHECK_THROWS(write_npy_with_json(
      path, [&](const std::string& tmp) { dump_samples_npy(tmp, Matrix::Zero(2, 2)); }, "{}\n"));
  CHECK(dir.entries() == std::set<std::string>{"x.npy", "x.npy/inside"});
}
