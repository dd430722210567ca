// Regression: GaussianMixture keeps per-thread scratch across calls. Asking a full-covariance mixture for log p_t
// alone, after a smaller mixture sized that scratch, once wrote past its end (heap corruption; caught by ASan and
// Eigen's asserts in the sanitize preset). The values must also not depend on what was evaluated before.
#include <doctest/doctest.h>

#include "core/sde.hpp"
#include "models/gaussian_mixture.hpp"

using namespace scoresde;

TEST_CASE("log p_t alone on a full-covariance mixture after a smaller mixture sized the scratch") {
  const auto sde = make_sde(SdeOptions{});
  Matrix small_means = Matrix::Zero(2, 1);
  const GaussianMixture small(Vector::Ones(1), small_means, {Matrix::Identity(2, 2)});
  Matrix means(5, 3);
  means.setRandom();
  std::vector<Matrix> cov;
  for (int k = 0; k < 3; ++k) {
    Matrix a = Matrix::Random(5, 5);
    cov.push_back(a * a.transpose() + Matrix::Identity(5, 5));
  }
  const GaussianMixture large(Vector::Constant(3, 1.0), means, cov);
  const Matrix x_small = Matrix::Random(2, 64), x = Matrix::Random(5, 64);
  Vector reference, lap, after, lp_small;
  Matrix score;
  large.evaluate(0.7, 0.6, x, &reference, &score, &lap);  // the full path, which sizes everything
  small.evaluate(0.7, 0.6, x_small, &lp_small, &score, &lap);  // shrinks the scratch
  large.evaluate(0.7, 0.6, x, &after, nullptr, nullptr);      // log p_t alone
  CHECK((after - reference).cwiseAbs().maxCoeff() <= 1e-12 * reference.cwiseAbs().maxCoeff());
}
