// Gaussian mixtures in any dimension, with isotropic or full covariances, and their exact diffused densities.
// Under a linear SDE with kernel N(alpha_t x_0, sigma_t^2 I),
//     p_0 = sum_k w_k N(mu_k, S_k)   =>   p_t = sum_k w_k N(alpha_t mu_k, C_k),  C_k = alpha_t^2 S_k + sigma_t^2 I,
// so the score, log-density and Laplacian of log p_t are known in closed form for every t (shared/ORACLES.md;
// docs/maths.md). Each S_k is diagonalised once, S_k = U_k diag(lambda_k) U_k^T, so that C_k^{-1} at any t is
// U_k diag(1 / (alpha^2 lambda_k + sigma^2)) U_k^T with no factorisation per call. Mixtures of components are
// combined with log-sum-exp throughout.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/noise.hpp"
#include "core/sde.hpp"
#include "models/score_model.hpp"

namespace scoresde {

struct IsotropicMixture;

class GaussianMixture {
 public:
  // weights (K, positive, normalised here), means (d x K), covariances (K matrices d x d, symmetric positive
  // definite). Throws ConfigError describing the first problem found.
  GaussianMixture(Vector weights, Matrix means, std::vector<Matrix> covariances);
  // Isotropic components: S_k = stds(k)^2 I.
  static GaussianMixture isotropic(Vector weights, Matrix means, const Vector& stds);
  // Components given by their eigendecompositions S_k = U_k diag(eigenvalues.col(k)) U_k^T, as a fitted mixture file
  // stores them (models/image_mixture.hpp): nothing is factorised, so a 784-dimensional mixture loads in the time
  // its arrays take to read. U_k must have orthonormal columns (checked on one probe vector, |U^T v| = |v| and
  // U U^T v = v to 1e-8, at O(d^2) per component) and the eigenvalues must be positive; ConfigError otherwise.
  static GaussianMixture from_eigendecomposition(Vector weights, Matrix means, std::vector<Matrix> eigenvectors,
                                                 Matrix eigenvalues);

  Index dim() const { return means_.rows(); }
  Index components() const { return means_.cols(); }
  const Vector& weights() const { return weights_; }
  const Matrix& means() const { return means_; }
  Matrix covariance(Index k) const;
  bool is_isotropic() const { return isotropic_; }

  // Exact samples from p_0 for the columns [first, first + out.cols()), keyed by sample index.
  void sample(std::uint64_t seed, Index first, MatrixRef out) const;

  // The diffused density p_t for alpha = alpha_t, sigma = sigma_t, at every column of x.
  // score and laplacian may be null when not wanted. log_density is log p_t; laplacian is the Laplacian of log p_t.
  void evaluate(double alpha, double sigma, ConstMatrixRef x, Vector* log_density, Matrix* score,
                Vector* laplacian) const;
  // The score alone, written into out (d x n). For full covariances in dimension >= float32_dim (Fashion-MNIST's 784)
  // the two projections per component, U_k^T (x - alpha mu_k) and U_k z_k, are float32 GEMMs over all components at
  // once (one (K d) x d by d x n product each way); everything else (offsets, 1/c, logits, log-sum-exp,
  // responsibilities) stays float64. That cuts the CPU time of sampling by a third (docs/images.md has the timings);
  // the score is the fitted mixture's to float32 round-off of the projections (measured: 1e-6 to 1e-5 of the score;
  // checked against a worst-case bound in tests/test_images.cpp). log p_t, the Laplacian and Hessian-vector
  // products are float64 throughout.
  // set_score_precision(float64) turns the float32 path off for this mixture.
  void score_into(double alpha, double sigma, ConstMatrixRef x, MatrixRef out) const;
  // The score with column j at its own time, alpha(j) and sigma(j) (an adaptive solver's per-column times). For an
  // isotropic mixture, one pass over the columns through score_into's kernel, each lane of a vector register with
  // its own time: column j's result is score_into's at alpha(j), sigma(j) bit for bit, whatever the other columns
  // (core/vector_math.hpp). Otherwise one score_into per run of columns sharing a time.
  void score_at_times_into(ConstVectorRef alpha, ConstVectorRef sigma, ConstMatrixRef x, MatrixRef out) const;
  enum class ScorePrecision { float64, float32 };
  static constexpr Index float32_dim = 256;
  void set_score_precision(ScorePrecision precision);
  ScorePrecision score_precision() const { return float32_ ? ScorePrecision::float32 : ScorePrecision::float64; }
  // The score and the Laplacian of log p_t (the divergence of the score), written into score (d x n) and
  // laplacian (n).
  void score_and_laplacian_into(double alpha, double sigma, ConstMatrixRef x, MatrixRef score,
                                VectorRef laplacian) const;
  // The score and the Hessian-vector products hv.col(j) = H_j v.col(j), H_j the Hessian of log p_t at column
  // j (the Jacobian of the score):
  //     H v = sum_k gamma_k (-C_k^{-1} v + s_k (s_k . v)) - s (s . v),
  // from grad gamma_k = gamma_k (s_k - s) and grad s_k = -C_k^{-1}. Two more products with U_k per component
  // than the score alone; none for an isotropic mixture.
  void score_and_hessian_vector_into(double alpha, double sigma, ConstMatrixRef x, ConstMatrixRef v, MatrixRef score,
                                     MatrixRef hv) const;

 private:
  GaussianMixture() = default;
  // weights: finite, positive, normalised here; means finite. ConfigError otherwise.
  void set_weights_and_means(Vector weights, Matrix means, Index covariances);
  // v and hv are both null or both set.
  void evaluate_into(double alpha, double sigma, ConstMatrixRef x, Vector* log_density, double* score,
                     Vector* laplacian, const ConstMatrixRef* v = nullptr, double* hv = nullptr) const;

  // The kernel's view of an isotropic mixture (core/vector_math.hpp).
  IsotropicMixture isotropic_kernel() const;

  // The float32 score: out = score for the columns of x, through stacked_f32_.
  void score_float32(double alpha, double sigma, ConstMatrixRef x, double* out) const;

  Vector weights_, log_weights_;
  bool float32_ = false;
  Eigen::MatrixXf stacked_f32_;  // d x (K d): [U_1 ... U_K] in float32, when float32_
  Matrix projected_means_;       // d x K: U_k^T mu_k, when float32_
  Matrix means_;
  std::vector<Matrix> eigenvectors_;  // U_k; empty when isotropic_
  Matrix eigenvalues_;                // d x K: lambda_k
  bool isotropic_ = false;
  Vector isotropic_variances_;  // K: lambda_k, when isotropic_
};

// The exact score of a mixture diffused by an SDE: a ScoreModel, with its exact divergence (the Laplacian of
// log p_t) and exact Jacobian-vector products (Hessian-vector products of log p_t).
class MixtureScore final : public ScoreModel {
 public:
  MixtureScore(std::shared_ptr<const GaussianMixture> mixture, const Sde& sde)
      : mixture_(std::move(mixture)), sde_(&sde) {}
  Index dim() const override { return mixture_->dim(); }
  std::string describe() const override;
  const GaussianMixture& mixture() const { return *mixture_; }

  void log_density(ConstMatrixRef x, double t, Vector& out) const;
  void laplacian(ConstMatrixRef x, double t, Vector& out) const;

  bool has_exact_divergence() const override { return true; }
  bool has_jvp() const override { return true; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override;
  void evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, VectorRef divergence) const override;
  void evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out, MatrixRef jv) const override;

 private:
  std::shared_ptr<const GaussianMixture> mixture_;
  const Sde* sde_;
};

}  // namespace scoresde
