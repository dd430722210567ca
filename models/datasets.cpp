#include "models/datasets.hpp"

#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>

#include "core/errors.hpp"

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
  if (size != 0 && v.size() != size) malformed(source, field, fmt::format("expected {} entries, found {}", size, v.size()));
  if (v.empty()) malformed(source, field, "must not be empty");
  return v;
}

}  // namespace

std::vector<std::string> builtin_data_names() { return {"eight_gaussians", "gaussian"}; }

GaussianMixture parse_mixture_json(const std::string& text, const std::string& source) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(fmt::format("{}: not valid JSON ({})", source, e.what()));
  }
  if (!doc.is_object()) throw InputError(fmt::format("{}: expected a JSON object with weights, means and covariances or stds", source));
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

std::shared_ptr<const GaussianMixture> load_data(const std::string& name, Index dim) {
  if (name == "eight_gaussians") {
    require(dim == 0 || dim == 2, "--dim", std::to_string(dim), "eight_gaussians is 2-dimensional");
    return std::make_shared<GaussianMixture>(eight_gaussians());
  }
  if (name == "gaussian") {
    require(dim >= 0 && dim <= 100000, "--dim", std::to_string(dim), "must be in [1, 100000]");
    return std::make_shared<GaussianMixture>(standard_normal(dim == 0 ? 2 : dim));
  }
  if (name.size() < 5 || name.substr(name.size() - 5) != ".json")
    throw ConfigError(fmt::format("--data = {}: not a built-in distribution ({}) nor a mixture file ending in .json",
                                  name, fmt::join(builtin_data_names(), ", ")));
  std::ifstream in(name);
  if (!in) throw InputError(fmt::format("{}: cannot open the mixture file", name));
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto mixture = std::make_shared<GaussianMixture>(parse_mixture_json(buffer.str(), name));
  require(dim == 0 || dim == mixture->dim(), "--dim", std::to_string(dim),
          fmt::format("{} is {}-dimensional", name, mixture->dim()));
  return mixture;
}

}  // namespace scoresde
