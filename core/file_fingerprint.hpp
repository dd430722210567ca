// What a result file records of its input files, so that a rerun can tell whether it reads the same inputs: each
// file's path, size and SHA-256 (OpenSSL's EVP interface). docs/reproducibility.md describes the "inputs" record.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scoresde {

// The SHA-256 digest of `bytes` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

// {"path": path, "bytes": size, "sha256": digest of the content}. InputError naming the file when it cannot be
// read.
nlohmann::ordered_json file_fingerprint(const std::string& path);

// A result file's "inputs" object: {option: file_fingerprint(path)} for each (option, path) in order, leaving out
// empty paths (an option not given, or naming no file, such as a built-in data set).
nlohmann::ordered_json input_files(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace scoresde
