#include "models/image_mixture.hpp"

#include <fmt/format.h>
#include <Eigen/Eigenvalues>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "models/datasets.hpp"

namespace scoresde {

const OptionTable<MixtureFitOptions>& mixture_fit_option_table() {
  using S = MixtureFitOptions;
  static const OptionTable<S> table = [] {
    OptionTable<S> t;
    t.push_back(option("components", &S::components,
                       "K: one Gaussian per class 0 .. K-1, weighted by the class frequencies",
                       check_that<int>([](const int& k) { return k >= 1 && k <= 10; }, "must be in [1, 10]")));
    t.push_back(option("regularization", &S::regularization,
                       "lambda: each covariance S becomes (1 - lambda) S + lambda tr(S)/d I (shrinkage towards the "
                       "identity with the same trace; docs/images.md)",
                       check_that<double>([](const double& v) { return v > 0 && v <= 1; }, "must be in (0, 1]")));
    t.push_back(option("max-images", &S::max_images, "fit to the first N images of the split only (0: all of them)",
                       at_least(Index{0})));
    return t;
  }();
  return table;
}

void MixtureFitOptions::validate() const {
  check_options(mixture_fit_option_table(), *this);
}

FittedMixture fit_class_mixture(ConstMatrixRef x, const std::vector<int>& labels, const MixtureFitOptions& options) {
  options.validate();
  const Index d = x.rows(), n = x.cols(), K = options.components;
  if (static_cast<Index>(labels.size()) != n)
    throw ConfigError(fmt::format("fit-mixture: {} labels for {} points", labels.size(), n));
  FittedMixture fit;
  fit.counts.assign(static_cast<std::size_t>(K), 0);
  for (const int l : labels)
    if (l >= 0 && l < K) ++fit.counts[static_cast<std::size_t>(l)];
  for (Index k = 0; k < K; ++k)
    if (fit.counts[static_cast<std::size_t>(k)] < 2)
      throw ConfigError(
          fmt::format("--components = {}: class {} has {} image(s) in the data; a covariance needs at "
                      "least 2 (use fewer components or more images)",
                      K, k, fit.counts[static_cast<std::size_t>(k)]));
  fit.weights.resize(K);
  fit.means.resize(d, K);
  fit.eigenvalues.resize(d, K);
  fit.traces.resize(K);
  Index total = 0;
  for (const Index c : fit.counts) total += c;
  const double lambda = options.regularization;
  for (Index k = 0; k < K; ++k) {
    const Index nk = fit.counts[static_cast<std::size_t>(k)];
    Matrix centred(d, nk);
    for (Index j = 0, c = 0; j < n; ++j)
      if (labels[static_cast<std::size_t>(j)] == k) centred.col(c++) = x.col(j);
    fit.weights(k) = static_cast<double>(nk) / static_cast<double>(total);
    fit.means.col(k) = centred.rowwise().mean();
    centred.colwise() -= fit.means.col(k);
    // Two passes (mean, then centred products): no cancellation from E[x x^T] - mu mu^T.
    Matrix S = Matrix::Zero(d, d);
    S.selfadjointView<Eigen::Lower>().rankUpdate(centred, 1.0 / static_cast<double>(nk));
    S.triangularView<Eigen::StrictlyUpper>() = S.transpose();
    const Eigen::SelfAdjointEigenSolver<Matrix> eig(S);
    if (eig.info() != Eigen::Success)
      throw NumericalError(fmt::format("fit-mixture: the eigendecomposition of class {}'s covariance failed", k), k, 0,
                           0.0);
    fit.traces(k) = S.trace();
    // Eigenvalues of a positive semidefinite matrix come out as small as -1e-16 tr S by round-off: clamped at 0
    // before the shrinkage, which then keeps them >= lambda tr(S)/d.
    fit.eigenvalues.col(k) =
        (1.0 - lambda) * eig.eigenvalues().cwiseMax(0.0).array() + lambda * fit.traces(k) / static_cast<double>(d);
    fit.eigenvectors.push_back(eig.eigenvectors());
  }
  return fit;
}

GaussianMixture to_mixture(const FittedMixture& fit) {
  return GaussianMixture::from_eigendecomposition(fit.weights, fit.means, fit.eigenvectors, fit.eigenvalues);
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string npy_header(Index K, Index d) {
  std::string dict = fmt::format("{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}, {}), }}", K, d + 2, d);
  // Version 1.0: magic (6) + version (2) + header length (2) + dict padded with spaces and a newline to a multiple
  // of 64 bytes.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>((dict.size() >> 8) & 0xFF);
  return out + dict;
}

// The arrays as the .npy's bytes: header, then per component the mean, the eigenvalues and the eigenvectors as rows.
std::string arrays_bytes(const FittedMixture& fit) {
  const Index K = fit.means.cols(), d = fit.means.rows();
  std::string bytes = npy_header(K, d);
  const std::size_t header = bytes.size();
  bytes.resize(header + static_cast<std::size_t>(K * (d + 2) * d) * sizeof(double));
  auto* out = reinterpret_cast<double*>(bytes.data() + header);
  for (Index k = 0; k < K; ++k) {
    double* block = out + k * (d + 2) * d;
    Eigen::Map<Vector>(block, d) = fit.means.col(k);
    Eigen::Map<Vector>(block + d, d) = fit.eigenvalues.col(k);
    // Row i of the (d, d) row-major block is eigenvector i: the column-major U itself.
    Eigen::Map<Matrix>(block + 2 * d, d, d) = fit.eigenvectors[static_cast<std::size_t>(k)];
  }
  return bytes;
}

[[noreturn]] void bad_header(const std::string& source, const std::string& field, const std::string& problem) {
  throw InputError(fmt::format("{}: field \"{}\": {}", source, field, problem));
}

}  // namespace

void write_eigen_mixture(const std::string& header_path, const FittedMixture& fit,
                         const nlohmann::ordered_json& extra) {
  if (!ends_with(header_path, ".json"))
    throw ConfigError(
        fmt::format("--out = {}: must end in .json (the arrays go beside it, ending in .npy)", header_path));
  const std::string arrays_path = header_path.substr(0, header_path.size() - 5) + ".npy";
  const std::string bytes = arrays_bytes(fit);
  nlohmann::ordered_json header;
  header["format"] = eigen_mixture_format;
  header["dim"] = fit.means.rows();
  header["components"] = fit.means.cols();
  header["weights"] = std::vector<double>(fit.weights.data(), fit.weights.data() + fit.weights.size());
  header["arrays"] = std::filesystem::path(arrays_path).filename().string();
  header["arrays_layout"] =
      "float64 (K, d + 2, d): [k, 0] mean, [k, 1] eigenvalues of the regularised covariance, [k, 2 + i] its i-th "
      "unit eigenvector";
  header["arrays_bytes"] = bytes.size();
  header["arrays_sha256"] = sha256_hex(bytes);
  for (auto it = extra.begin(); it != extra.end(); ++it) header[it.key()] = it.value();
  const std::string text = header.dump(2) + "\n";
  bool header_written = false;
  try {
    write_atomically(arrays_path, [&](const std::string& tmp) {
      std::ofstream out(tmp, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      out.close();
      if (!out) throw InputError(fmt::format("{}: cannot write", arrays_path));
      write_text_atomically(header_path, text);
      header_written = true;
    });
  } catch (...) {
    if (header_written) std::remove(header_path.c_str());
    throw;
  }
}

std::string eigen_mixture_arrays_path(const std::string& header_path, const nlohmann::json& header) {
  if (!header.contains("arrays") || !header["arrays"].is_string())
    bad_header(header_path, "arrays", "missing; expected the name of the .npy file beside the header");
  const std::filesystem::path name = header["arrays"].get<std::string>();
  if (name.is_absolute()) return name.string();
  return (std::filesystem::path(header_path).parent_path() / name).string();
}

GaussianMixture read_eigen_mixture(const nlohmann::json& header, const std::string& source) {
  const auto count = [&](const char* field) {
    if (!header.contains(field) || !header[field].is_number_integer() || header[field].get<long long>() < 1)
      bad_header(source, field, "missing or not a positive integer");
    return static_cast<Index>(header[field].get<long long>());
  };
  const Index d = count("dim"), K = count("components");
  if (d > 100000 || K > 1000) bad_header(source, "dim", fmt::format("d = {}, K = {}: too large", d, K));
  if (!header.contains("weights") || !header["weights"].is_array() || static_cast<Index>(header["weights"].size()) != K)
    bad_header(source, "weights", fmt::format("expected an array of {} numbers", K));
  Vector weights(K);
  for (Index k = 0; k < K; ++k) {
    const auto& w = header["weights"][static_cast<std::size_t>(k)];
    if (!w.is_number() || !(w.get<double>() > 0))
      bad_header(source, fmt::format("weights[{}]", k), "must be a number > 0");
    weights(k) = w.get<double>();
  }
  note_weights_normalised(source, weights);
  const std::string path = eigen_mixture_arrays_path(source, header);
  refuse_directory(path, fmt::format("the arrays file named by the header {}", source));
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(
        fmt::format("{}: the arrays file {} named by its header cannot be opened ({}); the header and "
                    "its .npy travel together",
                    source, path, std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string bytes = buffer.str();
  const std::string expected_header = npy_header(K, d);
  const std::size_t expected_size = expected_header.size() + static_cast<std::size_t>(K * (d + 2) * d) * 8;
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw InputError(fmt::format("{}: not an .npy file", path));
  if (bytes.compare(0, expected_header.size(), expected_header) != 0)
    throw InputError(fmt::format("{}: expected a float64 C-order array of shape ({}, {}, {}) as the header {} says",
                                 path, K, d + 2, d, source));
  if (bytes.size() != expected_size)
    throw InputError(fmt::format("{}: {} bytes; the shape ({}, {}, {}) needs {}: the file is {}", path, bytes.size(), K,
                                 d + 2, d, expected_size, bytes.size() < expected_size ? "truncated" : "too long"));
  if (header.contains("arrays_sha256")) {
    if (!header["arrays_sha256"].is_string()) bad_header(source, "arrays_sha256", "expected a string");
    if (sha256_hex(bytes) != header["arrays_sha256"].get<std::string>())
      throw InputError(
          fmt::format("{}: its SHA-256 differs from the one recorded in {}: the arrays were changed or "
                      "belong to another header",
                      path, source));
  }
  const auto* data = reinterpret_cast<const double*>(bytes.data() + expected_header.size());
  Matrix means(d, K), eigenvalues(d, K);
  std::vector<Matrix> eigenvectors;
  for (Index k = 0; k < K; ++k) {
    const double* block = data + k * (d + 2) * d;
    means.col(k) = Eigen::Map<const Vector>(block, d);
    eigenvalues.col(k) = Eigen::Map<const Vector>(block + d, d);
    eigenvectors.emplace_back(Eigen::Map<const Matrix>(block + 2 * d, d, d));
  }
  try {
    return GaussianMixture::from_eigendecomposition(weights, means, std::move(eigenvectors), eigenvalues);
  } catch (const ConfigError& e) {
    throw InputError(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace scoresde
