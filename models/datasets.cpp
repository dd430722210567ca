#include "models/datasets.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <sstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/noise.hpp"
#include "core/npy.hpp"
#include "models/idx.hpp"
#include "models/image_mixture.hpp"

namespace scoresde {
namespace {

GaussianMixture eight_gaussians() {
  const Index K = 8;
  Matrix means(2, K);
  for (Index k = 0; k < K; ++k) {
    const double angle = 2.0 * std::numbers::pi * static_cast<double>(k) / K;
    means(0, k) = 4.0 * std::cos(angle);
    means(1, k) = 4.0 * std::sin(angle);
  }
  return GaussianMixture::isotropic(Vector::Ones(K), means, Vector::Constant(K, 0.5));
}

GaussianMixture standard_normal(Index dim) {
  return GaussianMixture::isotropic(Vector::Ones(1), Matrix::Zero(dim, 1), Vector::Ones(1));
}

[[noreturn]] void malformed(const std::string& source, const std::string& field, const std::string& problem) {
  throw InputError(fmt::format("{}: field \"{}\": {}", source, field, problem));
}

double number(const nlohmann::json& v, const std::string& source, const std::string& field) {
  if (!v.is_number()) malformed(source, field, fmt::format("expected a number, found {}", v.dump()));
  const double x = v.get<double>();
  if (!std::isfinite(x)) malformed(source, field, "must be finite");
  return x;
}

const nlohmann::json& array_of(const nlohmann::json& v, const std::string& source, const std::string& field,
                               std::size_t size) {
  if (!v.is_array()) malformed(source, field, fmt::format("expected an array, found {}", v.dump()));
  if (size != 0 && v.size() != size)
    malformed(source, field, fmt::format("expected {} entries, found {}", size, v.size()));
  if (v.empty()) malformed(source, field, "must not be empty");
  return v;
}

}  // namespace

std::vector<std::string> builtin_data_names() {
  return {"eight_gaussians", "gaussian"};
}

GaussianMixture parse_mixture_json(const std::string& text, const std::string& source) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // a syntax error, or a number JSON cannot hold, such as 1e999
    throw InputError(fmt::format("{}: not valid JSON ({})", source, e.what()));
  }
  if (!doc.is_object())
    throw InputError(fmt::format("{}: expected a JSON object with weights, means and covariances or stds", source));
  if (doc.contains("format")) {
    // A header with its arrays in a binary file beside it (models/image_mixture.hpp), as fit-mixture writes.
    if (!doc["format"].is_string() || doc["format"].get<std::string>() != eigen_mixture_format)
      malformed(source, "format",
                fmt::format("{}: unknown; allowed: {} (leave \"format\" out for a mixture written out in the JSON)",
                            doc["format"].dump(), eigen_mixture_format));
    return read_eigen_mixture(doc, source);
  }
  for (auto it = doc.begin(); it != doc.end(); ++it)
    if (it.key() != "weights" && it.key() != "means" && it.key() != "covariances" && it.key() != "stds")
      malformed(source, it.key(), "unknown field; allowed: weights, means, covariances, stds");
  if (!doc.contains("means")) malformed(source, "means", "missing");
  if (!doc.contains("weights")) malformed(source, "weights", "missing");
  if (doc.contains("covariances") == doc.contains("stds"))
    malformed(source, "covariances", "give exactly one of \"covariances\" and \"stds\"");
  const auto& jm = array_of(doc["means"], source, "means", 0);
  const std::size_t K = jm.size();
  const auto& jm0 = array_of(jm[0], source, "means[0]", 0);
  const std::size_t d = jm0.size();
  Matrix means(d, K);
  for (std::size_t k = 0; k < K; ++k) {
    const auto f = fmt::format("means[{}]", k);
    const auto& row = array_of(jm[k], source, f, d);
    for (std::size_t i = 0; i < d; ++i) means(i, k) = number(row[i], source, fmt::format("{}[{}]", f, i));
  }
  const auto& jw = array_of(doc["weights"], source, "weights", K);
  Vector weights(K);
  for (std::size_t k = 0; k < K; ++k) {
    weights(k) = number(jw[k], source, fmt::format("weights[{}]", k));
    if (!(weights(k) > 0)) malformed(source, fmt::format("weights[{}]", k), "must be > 0");
  }
  note_weights_normalised(source, weights);
  try {
    if (doc.contains("stds")) {
      const auto& js = array_of(doc["stds"], source, "stds", K);
      Vector stds(K);
      for (std::size_t k = 0; k < K; ++k) {
        stds(k) = number(js[k], source, fmt::format("stds[{}]", k));
        if (!(stds(k) > 0)) malformed(source, fmt::format("stds[{}]", k), "must be > 0");
      }
      return GaussianMixture::isotropic(weights, means, stds);
    }
    const auto& jc = array_of(doc["covariances"], source, "covariances", K);
    std::vector<Matrix> cov;
    for (std::size_t k = 0; k < K; ++k) {
      const auto f = fmt::format("covariances[{}]", k);
      const auto& rows = array_of(jc[k], source, f, d);
      Matrix S(d, d);
      for (std::size_t i = 0; i < d; ++i) {
        const auto& row = array_of(rows[i], source, fmt::format("{}[{}]", f, i), d);
        for (std::size_t j = 0; j < d; ++j) S(i, j) = number(row[j], source, fmt::format("{}[{}][{}]", f, i, j));
      }
      cov.push_back(S);
    }
    return GaussianMixture(weights, means, cov);
  } catch (const ConfigError& e) {
    // The mixture's own checks (symmetry, positive definiteness) phrased for the file.
    throw InputError(fmt::format("{}: {}", source, e.what()));
  }
}

void note_weights_normalised(const std::string& source, const Vector& weights) {
  const double sum = weights.sum();
  if (std::abs(sum - 1.0) > 1e-9)
    notice(fmt::format("{}: the weights sum to {:.17g}; each is divided by the sum", source, sum));
}

std::shared_ptr<const GaussianMixture> load_data(const std::string& name, Index dim) {
  if (name == "eight_gaussians") {
    require(dim == 0 || dim == 2, "--dim", std::to_string(dim), "eight_gaussians is 2-dimensional");
    return std::make_shared<GaussianMixture>(eight_gaussians());
  }
  if (name == "gaussian") {
    require(dim >= 0 && dim <= 100000, "--dim", std::to_string(dim), "must be in [1, 100000]");
    return std::make_shared<GaussianMixture>(standard_normal(dim == 0 ? 2 : dim));
  }
  if (is_fashion_mnist(name))
    throw ConfigError(fmt::format(
        "--data = {}: images have no closed-form density; fit one first (scoresde fit-mixture --data {} --out "
        "FILE.json) and give FILE.json, or train a model on them",
        name, name.rfind(":test", std::string::npos) != std::string::npos ? "fashion_mnist:test" : "fashion_mnist"));
  if (name.size() < 5 || name.substr(name.size() - 5) != ".json")
    throw ConfigError(fmt::format("--data = {}: not a built-in distribution ({}) nor a mixture file ending in .json",
                                  name, fmt::join(builtin_data_names(), ", ")));
  refuse_directory(name, "a mixture file");
  std::ifstream in(name);
  if (!in) throw InputError(fmt::format("{}: cannot open the mixture file", name));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (buffer.str().find_first_not_of(" \t\r\n") == std::string::npos)
    throw InputError(fmt::format(
        "{}: the mixture file is empty; expected a JSON object with weights, means and covariances or stds", name));
  auto mixture = std::make_shared<GaussianMixture>(parse_mixture_json(buffer.str(), name));
  require(dim == 0 || dim == mixture->dim(), "--dim", std::to_string(dim),
          fmt::format("{} is {}-dimensional", name, mixture->dim()));
  return mixture;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Two-dimensional toy sets, sample i from counters (i, 10.., 0) of the data stream.
Matrix toy_2d(const std::string& name, Index count, std::uint64_t seed) {
  const CounterRng rng(seed, NoisePurpose::data);
  const double pi = std::numbers::pi;
  Matrix x(2, count);
  for (Index j = 0; j < count; ++j) {
    const auto i = static_cast<std::uint64_t>(j);
    double u[4], z[2];
    rng.uniforms(i, 10, 0, u, 4);
    rng.normals(i, 11, 0, z, 2);
    double a = 0, b = 0;
    if (name == "two_moons") {
      const double theta = pi * u[1];
      if (u[0] <= 0.5) {
        a = std::cos(theta);
        b = std::sin(theta);
      } else {
        a = 1.0 - std::cos(theta);
        b = 0.5 - std::sin(theta);
      }
      a = 2.0 * (a + 0.1 * z[0]) - 1.0;
      b = 2.0 * (b + 0.1 * z[1]) - 0.2;
    } else if (name == "swiss_roll") {
      const double tau = 1.5 * pi * (1.0 + 2.0 * u[0]);
      a = tau * std::cos(tau) / 5.0 + 0.2 * z[0];
      b = tau * std::sin(tau) / 5.0 + 0.2 * z[1];
    } else if (name == "checkerboard") {
      const double x1 = 4.0 * u[0] - 2.0;
      const double x2 = u[1] - 2.0 * (u[2] <= 0.5 ? 0.0 : 1.0) + std::fmod(std::floor(x1) + 4.0, 2.0);
      a = 2.0 * x1;
      b = 2.0 * x2;
    } else {  // rings
      const double radius = 0.75 * (1.0 + std::min(3.0, std::floor(4.0 * (1.0 - u[0]))));
      const double theta = 2.0 * pi * u[1];
      a = radius * std::cos(theta) + 0.08 * z[0];
      b = radius * std::sin(theta) + 0.08 * z[1];
    }
    x(0, j) = a;
    x(1, j) = b;
  }
  return x;
}

bool is_toy_2d(const std::string& name) {
  return name == "two_moons" || name == "swiss_roll" || name == "checkerboard" || name == "rings";
}

}  // namespace

std::vector<std::string> training_data_names() {
  return {"eight_gaussians", "two_moons",     "swiss_roll",         "checkerboard",         "rings",
          "gaussian",        "fashion_mnist", "fashion_mnist:test", "fashion_mnist:class=K"};
}

bool is_builtin_training_data(const std::string& name) {
  const auto names = training_data_names();
  return std::find(names.begin(), names.end(), name) != names.end() || is_fashion_mnist(name);
}

bool is_fashion_mnist(const std::string& name) {
  if (name.rfind("fashion_mnist", 0) != 0) return false;
  try {
    return parse_fashion_mnist_name(name).has_value();
  } catch (const ConfigError&) {
    return false;
  }
}

bool has_exact_mixture(const std::string& name) {
  return name == "eight_gaussians" || name == "gaussian" || ends_with(name, ".json");
}

std::string data_source_file(const std::string& name_or_file) {
  return is_builtin_training_data(name_or_file) ? std::string() : name_or_file;
}

Matrix read_samples_csv(const std::string& path) {
  refuse_directory(path, "a data file");
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("{}: cannot open the data file", path));
  std::vector<double> values;
  Index d = 0, rows = 0;
  std::string line;
  long line_number = 0;
  bool header_allowed = true;
  const auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
  };
  while (std::getline(in, line)) {
    ++line_number;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    if (trim(line).empty()) continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, ',')) fields.push_back(trim(field));
    if (!line.empty() && line.back() == ',') fields.push_back("");
    std::vector<double> row;
    std::optional<std::size_t> bad;
    for (std::size_t c = 0; c < fields.size(); ++c) {
      const std::string& f = fields[c];
      char* end = nullptr;
      const double v = f.empty() ? 0.0 : std::strtod(f.c_str(), &end);
      if (f.empty() || end != f.c_str() + f.size()) {
        if (!bad) bad = c;
        continue;
      }
      row.push_back(v);
    }
    if (bad && header_allowed && row.empty()) {  // a header of column names
      header_allowed = false;
      d = static_cast<Index>(fields.size());
      continue;
    }
    header_allowed = false;
    const std::string where = fmt::format("{}: row {} (line {})", path, rows, line_number);
    if (bad) throw InputError(fmt::format("{}, column {}: '{}' is not a number", where, *bad + 1, fields[*bad]));
    if (d == 0) d = static_cast<Index>(fields.size());
    if (static_cast<Index>(fields.size()) != d)
      throw InputError(fmt::format("{}: {} columns, expected {}", where, fields.size(), d));
    for (std::size_t c = 0; c < row.size(); ++c)
      if (!std::isfinite(row[c]))
        throw InputError(fmt::format("{}, column {}: non-finite value '{}'", where, c + 1, fields[c]));
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) throw InputError(fmt::format("{}: no data rows", path));
  return Eigen::Map<const Matrix>(values.data(), d, rows);
}

namespace {

// --dim (0: not given) against the data's dimension d.
void check_data_dimension(const std::string& name, Index dim, Index d) {
  require(dim == 0 || dim == d, "--dim", std::to_string(dim), fmt::format("{} is {}-dimensional", name, d));
}

}  // namespace

Matrix load_training_data(const std::string& name, Index count, std::uint64_t seed, Index dim) {
  require(count >= 1, "--data-samples", std::to_string(count), "must be >= 1");
  Matrix x;
  if (is_toy_2d(name)) {
    require(dim == 0 || dim == 2, "--dim", std::to_string(dim), name + " is 2-dimensional");
    return toy_2d(name, count, seed);
  }
  if (ends_with(name, ".npy") || ends_with(name, ".csv")) {
    x = ends_with(name, ".npy") ? read_samples_npy(name) : read_samples_csv(name);
    check_data_dimension(name, dim, x.rows());
    return x;
  }
  if (const auto selection = parse_fashion_mnist_name(name)) {
    check_data_dimension(name, dim, fashion_mnist_dimension(*selection));
    return load_fashion_mnist(*selection).images;
  }
  if (!has_exact_mixture(name))
    throw ConfigError(fmt::format("--data = {}: not a built-in data set ({}) nor a file ending in .json, .npy or .csv",
                                  name, fmt::join(training_data_names(), ", ")));
  const auto mixture = load_data(name, dim);
  x.resize(mixture->dim(), count);
  mixture->sample(seed, 0, x);
  return x;
}

Index training_data_dimension(const std::string& name, Index dim) {
  if (const auto selection = parse_fashion_mnist_name(name)) {
    const Index d = fashion_mnist_dimension(*selection);
    check_data_dimension(name, dim, d);
    return d;
  }
  return load_training_data(name, 1, 0, dim).rows();
}

}  // namespace scoresde
