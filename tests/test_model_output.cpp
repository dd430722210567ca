// Conversions between model predictions (core/model_output.hpp): round trips between every pair, and, for Gaussian
// data, the data prediction from the exact score against the closed-form posterior mean E[x_0 | x_t]
// (shared/ORACLES.md, "Exact flow map for Gaussian data": x0_hat = mu + alpha C (alpha^2 C + sigma^2 I)^{-1} (x - alpha mu)).
#include <doctest/doctest.h>

#include <Eigen/LU>

#include <memory>
#include <random>

#include "core/model_output.hpp"
#include "core/sde.hpp"
#include "models/gaussian_mixture.hpp"

using namespace scoresde;

namespace {

Matrix random_matrix(std::mt19937_64& gen, Index rows, Index cols) {
  std::normal_distribution<double> normal;
  Matrix m(rows, cols);
  for (Index j = 0; j < cols; ++j)
    for (Index i = 0; i < rows; ++i) m(i, j) = normal(gen);
  return m;
}

}  // namespace

TEST_CASE("every prediction converts to every other and back, to rounding") {
  std::mt19937_64 gen(3);
  const Matrix x = random_matrix(gen, 3, 17), value = random_matrix(gen, 3, 17);
  const KernelCoefficients vp{0.8, 0.6};  // alpha^2 + sigma^2 = 1: v is defined
  for (const auto from : {Prediction::score, Prediction::noise, Prediction::data, Prediction::v})
    for (const auto to : {Prediction::score, Prediction::noise, Prediction::data, Prediction::v}) {
      CAPTURE(enum_name(from));
      CAPTURE(enum_name(to));
      Matrix there(3, 17), back(3, 17);
      convert_prediction(from, to, x, value, vp, there);
      convert_prediction(to, from, x, there, vp, back);
      CHECK((back - value).cwiseAbs().maxCoeff() <= 1e-13);
    }
  // In place.
  Matrix y = value;
  convert_prediction(Prediction::noise, Prediction::score, x, y, vp, y);
  CHECK((y + value / 0.6).cwiseAbs().maxCoeff() <= 1e-15);
}

TEST_CASE("the identities: eps = -sigma s, x0 = (x + sigma^2 s) / alpha, v = alpha eps - sigma x0") {
  std::mt19937_64 gen(5);
  const Matrix x = random_matrix(gen, 2, 9), s = random_matrix(gen, 2, 9);
  const double alpha = std::sqrt(0.19), sigma = 0.9;  // VP: alpha^2 + sigma^2 = 1
  Matrix eps(2, 9), x0(2, 9), v(2, 9);
  convert_prediction(Prediction::score, Prediction::noise, x, s, {alpha, sigma}, eps);
  convert_prediction(Prediction::score, Prediction::data, x, s, {alpha, sigma}, x0);
  convert_prediction(Prediction::score, Prediction::v, x, s, {alpha, sigma}, v);
  CHECK((eps + sigma * s).cwiseAbs().maxCoeff() <= 1e-15);
  CHECK((x0 - (x + sigma * sigma * s) / alpha).cwiseAbs().maxCoeff() <= 1e-14);
  CHECK((v - (alpha * eps - sigma * x0)).cwiseAbs().maxCoeff() <= 1e-14);
  // The kernel reassembles x from the data and noise predictions: x = alpha x0 + sigma eps.
  CHECK((alpha * x0 + sigma * eps - x).cwiseAbs().maxCoeff() <= 1e-14);
}

TEST_CASE("Gaussian data: the data prediction from the exact score is the posterior mean, for every SDE") {
  // p_0 = N(mu, C) with a full covariance.
  Matrix mu(2, 1);
  mu << 0.7, -1.2;
  Matrix C(2, 2);
  C << 0.5, 0.2, 0.2, 0.3;
  const auto mixture = std::make_shared<const GaussianMixture>(Vector::Ones(1), mu, std::vector<Matrix>{C});
  std::mt19937_64 gen(7);
  for (const auto& name : sde_names()) {
    SdeOptions o;
    o.kind = sde_kind_from_string(name);
    const auto sde = make_sde(o);
    const MixtureScore model(mixture, *sde);
    for (const double t : {0.01, 0.3, 0.9}) {
      CAPTURE(name);
      CAPTURE(t);
      const double alpha = sde->alpha(t), sigma = sde->sigma(t);
      const Matrix x = 2.0 * random_matrix(gen, 2, 11);
      Matrix s(2, 11), x0(2, 11);
      model.score(x, Vector::Constant(11, t), s);
      convert_prediction(Prediction::score, Prediction::data, x, s, {alpha, sigma}, x0);
      const Matrix gain = alpha * C * (alpha * alpha * C + sigma * sigma * Matrix::Identity(2, 2)).inverse();
      const Matrix expected = (gain * (x.colwise() - alpha * mu.col(0))).colwise() + mu.col(0);
      CHECK((x0 - expected).cwiseAbs().maxCoeff() <= 1e-12 * (1.0 + expected.cwiseAbs().maxCoeff()));
    }
  }
}

TEST_CASE("v is refused where alpha^2 + sigma^2 != 1, and sigma must be positive") {
  const Matrix x = Matrix::Ones(2, 3), value = Matrix::Ones(2, 3);
  Matrix out(2, 3);
  CHECK_THROWS_WITH_AS(convert_prediction(Prediction::v, Prediction::score, x, value, {1.0, 3.0}, out),
                       doctest::Contains("--parameterization = v"), ConfigError);
  CHECK_THROWS_AS(convert_prediction(Prediction::noise, Prediction::score, x, value, {1.0, 0.0}, out), ConfigError);
  CHECK_NOTHROW(convert_prediction(Prediction::noise, Prediction::data, x, value, {1.0, 3.0}, out));  // VE
}
