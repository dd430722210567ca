#include "models/gaussian_mixture.hpp"

#include <fmt/format.h>
#include <Eigen/Eigenvalues>
#include <cmath>
#include <numbers>

#include "core/errors.hpp"
#include "core/sde_batch.hpp"
#include "core/vector_math.hpp"

namespace scoresde {

void GaussianMixture::set_weights_and_means(Vector weights, Matrix means, Index covariances) {
  weights_ = std::move(weights);
  means_ = std::move(means);
  const Index K = means_.cols(), d = means_.rows();
  if (K < 1 || d < 1) throw ConfigError("mixture: needs at least one component of dimension >= 1");
  if (weights_.size() != K) throw ConfigError(fmt::format("mixture: {} weights for {} means", weights_.size(), K));
  if (covariances != K) throw ConfigError(fmt::format("mixture: {} covariances for {} means", covariances, K));
  for (Index k = 0; k < K; ++k)
    if (!(weights_(k) > 0) || !std::isfinite(weights_(k)))
      throw ConfigError(fmt::format("mixture: weights[{}] = {}: must be > 0", k, weights_(k)));
  if (!means_.allFinite()) throw ConfigError("mixture: means contain a non-finite value");
  weights_ /= weights_.sum();
  log_weights_ = weights_.array().log();
}

GaussianMixture::GaussianMixture(Vector weights, Matrix means, std::vector<Matrix> covariances) {
  set_weights_and_means(std::move(weights), std::move(means), static_cast<Index>(covariances.size()));
  const Index K = means_.cols(), d = means_.rows();
  eigenvalues_.resize(d, K);
  isotropic_ = true;
  for (Index k = 0; k < K; ++k) {
    const Matrix& S = covariances[k];
    if (S.rows() != d || S.cols() != d)
      throw ConfigError(fmt::format("mixture: covariances[{}] is {}x{}; expected {}x{}", k, S.rows(), S.cols(), d, d));
    if (!S.allFinite() || (S - S.transpose()).cwiseAbs().maxCoeff() > 1e-12 * (1.0 + S.cwiseAbs().maxCoeff()))
      throw ConfigError(fmt::format("mixture: covariances[{}] must be finite and symmetric", k));
    const bool diagonal_equal = (S - S(0, 0) * Matrix::Identity(d, d)).cwiseAbs().maxCoeff() == 0.0;
    isotropic_ = isotropic_ && diagonal_equal;
  }
  for (Index k = 0; k < K; ++k) {
    Eigen::SelfAdjointEigenSolver<Matrix> eig(covariances[k]);
    if (eig.info() != Eigen::Success || !(eig.eigenvalues().minCoeff() > 0))
      throw ConfigError(fmt::format("mixture: covariances[{}] is not positive definite", k));
    if (isotropic_) {
      eigenvalues_.col(k).setConstant(covariances[k](0, 0));
    } else {
      eigenvalues_.col(k) = eig.eigenvalues();
      eigenvectors_.push_back(eig.eigenvectors());
    }
  }
  if (isotropic_) isotropic_variances_ = eigenvalues_.row(0).transpose();
  if (!isotropic_ && d >= float32_dim) set_score_precision(ScorePrecision::float32);
}

void GaussianMixture::set_score_precision(ScorePrecision precision) {
  float32_ = precision == ScorePrecision::float32 && !isotropic_;
  if (!float32_) {
    stacked_f32_.resize(0, 0);
    projected_means_.resize(0, 0);
    return;
  }
  const Index d = dim(), K = components();
  stacked_f32_.resize(d, K * d);
  projected_means_.resize(d, K);
  for (Index k = 0; k < K; ++k) {
    stacked_f32_.middleCols(k * d, d) = eigenvectors_[static_cast<std::size_t>(k)].cast<float>();
    projected_means_.col(k) = eigenvectors_[static_cast<std::size_t>(k)].transpose() * means_.col(k);
  }
}

GaussianMixture GaussianMixture::isotropic(Vector weights, Matrix means, const Vector& stds) {
  std::vector<Matrix> cov;
  const Index d = means.rows();
  for (Index k = 0; k < stds.size(); ++k) {
    if (!(stds(k) > 0) || !std::isfinite(stds(k)))
      throw ConfigError(fmt::format("mixture: stds[{}] = {}: must be > 0", k, stds(k)));
    cov.push_back(stds(k) * stds(k) * Matrix::Identity(d, d));
  }
  return GaussianMixture(std::move(weights), std::move(means), std::move(cov));
}

GaussianMixture GaussianMixture::from_eigendecomposition(Vector weights, Matrix means, std::vector<Matrix> eigenvectors,
                                                         Matrix eigenvalues) {
  GaussianMixture m;
  m.set_weights_and_means(std::move(weights), std::move(means), static_cast<Index>(eigenvectors.size()));
  const Index K = m.means_.cols(), d = m.means_.rows();
  if (eigenvalues.rows() != d || eigenvalues.cols() != K)
    throw ConfigError(
        fmt::format("mixture: eigenvalues are {}x{}; expected {}x{}", eigenvalues.rows(), eigenvalues.cols(), d, K));
  const Vector probe = Vector::LinSpaced(d, 1.0, 2.0);
  for (Index k = 0; k < K; ++k) {
    const Matrix& U = eigenvectors[static_cast<std::size_t>(k)];
    if (U.rows() != d || U.cols() != d)
      throw ConfigError(fmt::format("mixture: eigenvectors[{}] is {}x{}; expected {}x{}", k, U.rows(), U.cols(), d, d));
    if (!U.allFinite() || !eigenvalues.col(k).allFinite() || !(eigenvalues.col(k).minCoeff() > 0))
      throw ConfigError(fmt::format("mixture: component {}: eigenvalues must be finite and > 0", k));
    const Vector w = U.transpose() * probe;
    const double scale = probe.norm();
    if (std::abs(w.norm() - scale) > 1e-8 * scale || (U * w - probe).norm() > 1e-8 * scale)
      throw ConfigError(fmt::format("mixture: component {}: the eigenvectors are not orthonormal", k));
  }
  m.eigenvalues_ = std::move(eigenvalues);
  m.eigenvectors_ = std::move(eigenvectors);
  m.isotropic_ = false;
  if (d >= float32_dim) m.set_score_precision(ScorePrecision::float32);
  return m;
}

Matrix GaussianMixture::covariance(Index k) const {
  if (isotropic_) return eigenvalues_(0, k) * Matrix::Identity(dim(), dim());
  return eigenvectors_[k] * eigenvalues_.col(k).asDiagonal() * eigenvectors_[k].transpose();
}

void GaussianMixture::sample(std::uint64_t seed, Index first, MatrixRef out) const {
  const CounterRng rng(seed, NoisePurpose::data);
  const Index d = dim(), K = components();
  Vector z(d);
  for (Index j = 0; j < out.cols(); ++j) {
    const auto i = static_cast<std::uint64_t>(first + j);
    double u;
    rng.uniforms(i, 0, 0, &u, 1);
    Index k = 0;
    double cumulative = weights_(0);
    while (k + 1 < K && u > cumulative) cumulative += weights_(++k);
    rng.normals(i, 1, 0, z.data(), d);
    z.array() *= eigenvalues_.col(k).array().sqrt();
    out.col(j) = means_.col(k) + (isotropic_ ? z : Vector(eigenvectors_[k] * z));
  }
}

namespace {
// Row-major scratch: row i holds coordinate i of every sample, so the per-sample work of each component runs
// along contiguous rows and vectorises across samples whatever the dimension.
using RowArray = Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace

IsotropicMixture GaussianMixture::isotropic_kernel() const {
  return {dim(), components(), means_.data(), log_weights_.data(), isotropic_variances_.data()};
}

void GaussianMixture::evaluate(double alpha, double sigma, ConstMatrixRef x, Vector* log_density, Matrix* score,
                               Vector* laplacian) const {
  if (score) score->resize(x.rows(), x.cols());
  evaluate_into(alpha, sigma, x, log_density, score ? score->data() : nullptr, laplacian);
}

void GaussianMixture::score_into(double alpha, double sigma, ConstMatrixRef x, MatrixRef out) const {
  if (out.outerStride() == out.rows()) return evaluate_into(alpha, sigma, x, nullptr, out.data(), nullptr);
  Matrix contiguous(out.rows(), out.cols());
  evaluate_into(alpha, sigma, x, nullptr, contiguous.data(), nullptr);
  out = contiguous;
}

void GaussianMixture::score_at_times_into(ConstVectorRef alpha, ConstVectorRef sigma, ConstMatrixRef x,
                                          MatrixRef out) const {
  const Index n = x.cols();
  eigen_assert(alpha.size() == n && sigma.size() == n);
  if (!isotropic_) {
    // Full covariances: one score_into per run of columns sharing their (alpha, sigma).
    for (Index start = 0; start < n;) {
      Index end = start + 1;
      while (end < n && alpha(end) == alpha(start) && sigma(end) == sigma(start)) ++end;
      score_into(alpha(start), sigma(start), x.middleCols(start, end - start), out.middleCols(start, end - start));
      start = end;
    }
    return;
  }
  const Index d = dim();
  const double* xs = x.data();
  Matrix contiguous_x;
  if (x.outerStride() != d) {
    contiguous_x = x;
    xs = contiguous_x.data();
  }
  if (out.outerStride() == d)
    return isotropic_mixture_score(isotropic_kernel(), alpha.data(), sigma.data(), xs, n, out.data());
  Matrix contiguous(d, n);
  isotropic_mixture_score(isotropic_kernel(), alpha.data(), sigma.data(), xs, n, contiguous.data());
  out = contiguous;
}

void GaussianMixture::score_and_laplacian_into(double alpha, double sigma, ConstMatrixRef x, MatrixRef score,
                                               VectorRef laplacian) const {
  thread_local Vector lap;
  if (score.outerStride() == score.rows()) {
    evaluate_into(alpha, sigma, x, nullptr, score.data(), &lap);
  } else {
    Matrix contiguous(score.rows(), score.cols());
    evaluate_into(alpha, sigma, x, nullptr, contiguous.data(), &lap);
    score = contiguous;
  }
  laplacian = lap;
}

void GaussianMixture::score_and_hessian_vector_into(double alpha, double sigma, ConstMatrixRef x, ConstMatrixRef v,
                                                    MatrixRef score, MatrixRef hv) const {
  const bool direct = score.outerStride() == score.rows() && hv.outerStride() == hv.rows();
  if (direct) return evaluate_into(alpha, sigma, x, nullptr, score.data(), nullptr, &v, hv.data());
  Matrix s(score.rows(), score.cols()), h(hv.rows(), hv.cols());
  evaluate_into(alpha, sigma, x, nullptr, s.data(), nullptr, &v, h.data());
  score = s;
  hv = h;
}

void GaussianMixture::evaluate_into(double alpha, double sigma, ConstMatrixRef x, Vector* log_density, double* score,
                                    Vector* laplacian, const ConstMatrixRef* v, double* hv) const {
  const Index d = dim(), K = components(), n = x.cols();
  if (float32_ && score && !log_density && !laplacian && !hv) return score_float32(alpha, sigma, x, score);
  if (isotropic_ && score && !log_density && !laplacian && !hv) {
    // The score alone: one fused pass (core/vector_math.hpp), the hot path of sampling.
    const double* xs = x.data();
    Matrix contiguous;
    if (x.outerStride() != d) {
      contiguous = x;
      xs = contiguous.data();
    }
    isotropic_mixture_score(isotropic_kernel(), alpha, sigma, xs, n, score);
    return;
  }
  // Scratch kept per thread, so that repeated calls on batches of one size allocate nothing.
  thread_local RowArray xr, y, logits, z_all, acc;
  thread_local Eigen::Array<double, 1, Eigen::Dynamic> row_max, row_sum;
  thread_local Eigen::ArrayXd c, inv_c;
  thread_local Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rotated;
  thread_local Eigen::ArrayXd trace_inv, log_norm;
  thread_local Eigen::ArrayXXd inv_c_all;
  xr = x.array();
  logits.resize(K, n);
  trace_inv.resize(K);
  log_norm.resize(K);
  // The whitened offsets z_k = C_k^{-1} (x - m_k) (in U_k's basis) are kept when the Laplacian, the
  // Hessian-vector products or a rotated score need them; for an isotropic mixture the score is rebuilt from
  // x directly.
  const bool keep_z = laplacian != nullptr || hv != nullptr || (score != nullptr && !isotropic_);
  if (keep_z) {
    z_all.resize(K * d, n);
    inv_c_all.resize(d, K);
  }
  const double log_2pi = std::log(2.0 * std::numbers::pi);
  for (Index k = 0; k < K; ++k) {
    // C_k = U diag(c) U^T, c = alpha^2 lambda_k + sigma^2;  y = U^T (x - alpha mu_k).
    c = alpha * alpha * eigenvalues_.col(k).array() + sigma * sigma;
    inv_c = c.inverse();
    log_norm(k) = log_weights_(k) - 0.5 * (d * log_2pi + c.log().sum());
    auto logit = logits.row(k);
    if (isotropic_ && !keep_z) {
      // Squared distance accumulated row by row, without materialising x - alpha mu_k.
      logit = (xr.row(0) - alpha * means_(0, k)).square();
      for (Index i = 1; i < d; ++i) logit += (xr.row(i) - alpha * means_(i, k)).square();
      logit = log_norm(k) - (0.5 * inv_c(0)) * logit;
      continue;
    }
    y = xr.colwise() - alpha * means_.col(k).array();
    if (!isotropic_) {
      rotated.noalias() = eigenvectors_[k].transpose() * y.matrix();
      y = rotated.array();
    }
    logit = y.row(0).square() * inv_c(0);
    for (Index i = 1; i < d; ++i) logit += y.row(i).square() * inv_c(i);
    logit = log_norm(k) - 0.5 * logit;
    if (keep_z) {
      z_all.middleRows(k * d, d) = y.colwise() * inv_c;
      trace_inv(k) = inv_c.sum();
      inv_c_all.col(k) = inv_c;
    }
  }
  // Responsibilities gamma_k = e_k / sum_j e_j with e_k = exp(logit_k - max_j logit_j): log-sum-exp.
  row_max = logits.row(0);
  for (Index k = 1; k < K; ++k) row_max = row_max.max(logits.row(k));
  logits.rowwise() -= row_max;
  exp_in_place(logits.data(), logits.size());  // libmvec: see core/vector_math.hpp
  row_sum = logits.row(0);
  for (Index k = 1; k < K; ++k) row_sum += logits.row(k);
  if (log_density) *log_density = (row_max + row_sum.log()).transpose();
  if (!score && !laplacian && !hv) return;
  row_sum = row_sum.inverse();  // one division per sample; everything after multiplies

  // score = sum_k gamma_k s_k with s_k = -C_k^{-1} (x - alpha mu_k).
  acc.setZero(d, n);
  if (isotropic_ && !keep_z) {
    // s_k = (alpha mu_k - x) / c_k: score = [alpha sum_k (e_k / c_k) mu_k - x sum_k e_k / c_k] / sum_k e_k.
    row_max.setZero(n);  // reused: sum_k e_k / c_k
    for (Index k = 0; k < K; ++k) {
      auto e = logits.row(k);
      e *= 1.0 / (alpha * alpha * eigenvalues_(0, k) + sigma * sigma);
      row_max += e;
      for (Index i = 0; i < d; ++i) acc.row(i) += (alpha * means_(i, k)) * e;
    }
    for (Index i = 0; i < d; ++i) acc.row(i) = (acc.row(i) - xr.row(i) * row_max) * row_sum;
  } else {
    for (Index k = 0; k < K; ++k) logits.row(k) *= row_sum;  // logits now holds gamma
    for (Index k = 0; k < K; ++k) {
      y = z_all.middleRows(k * d, d).rowwise() * logits.row(k);
      if (isotropic_) {
        acc -= y;
      } else {
        rotated.noalias() = eigenvectors_[k] * y.matrix();
        acc -= rotated.array();
      }
    }
  }
  if (score) Eigen::Map<Matrix>(score, d, n) = acc.matrix();
  if (laplacian) {
    // Laplacian of log p_t = sum_k gamma_k (|s_k|^2 - tr C_k^{-1}) - |score|^2   (shared/ORACLES.md)
    row_sum.setZero(n);
    for (Index k = 0; k < K; ++k)
      row_sum += logits.row(k) * (z_all.middleRows(k * d, d).square().colwise().sum() - trace_inv(k));
    row_sum -= acc.square().colwise().sum();
    *laplacian = row_sum.transpose();
  }
  if (hv) {
    // H v = sum_k gamma_k (-C_k^{-1} v + s_k (s_k . v)) - s (s . v). In U_k's basis, with w = U_k^T v and
    // s_k = -U_k z_k: -C_k^{-1} v + s_k (s_k . v) = U_k (-w / c_k + z_k (z_k . w)).
    thread_local RowArray vr, w, hacc;
    thread_local Eigen::Array<double, 1, Eigen::Dynamic> zw;
    vr = v->array();
    hacc.setZero(d, n);
    for (Index k = 0; k < K; ++k) {
      const auto z = z_all.middleRows(k * d, d);
      if (isotropic_) {
        w = vr;
      } else {
        rotated.noalias() = eigenvectors_[k].transpose() * vr.matrix();
        w = rotated.array();
      }
      zw = (z * w).colwise().sum();
      w = (z.rowwise() * zw - w.colwise() * inv_c_all.col(k)).rowwise() * logits.row(k);
      if (isotropic_) {
        hacc += w;
      } else {
        rotated.noalias() = eigenvectors_[k] * w.matrix();
        hacc += rotated.array();
      }
    }
    zw = (acc * vr).colwise().sum();  // s . v
    hacc -= acc.rowwise() * zw;
    Eigen::Map<Matrix>(hv, d, n) = hacc.matrix();
  }
}

void GaussianMixture::score_float32(double alpha, double sigma, ConstMatrixRef x, double* out) const {
  const Index d = dim(), K = components(), n = x.cols();
  thread_local Eigen::MatrixXf xf, projected, weighted, acc;
  thread_local Eigen::ArrayXXd logits;
  thread_local Eigen::ArrayXd c, inv_c;
  thread_local Eigen::Array<double, 1, Eigen::Dynamic> row_max, row_sum;
  const double log_2pi = std::log(2.0 * std::numbers::pi);
  xf = x.cast<float>();
  // U_k^T x for every k in one GEMM; U_k^T (x - alpha mu_k) = U_k^T x - alpha U_k^T mu_k, the offset in float64.
  projected.noalias() = stacked_f32_.transpose() * xf;
  logits.resize(K, n);
  weighted.resize(K * d, n);
  for (Index k = 0; k < K; ++k) {
    c = alpha * alpha * eigenvalues_.col(k).array() + sigma * sigma;
    inv_c = c.inverse();
    const double log_norm = log_weights_(k) - 0.5 * (static_cast<double>(d) * log_2pi + c.log().sum());
    const Vector offset = alpha * projected_means_.col(k);
    for (Index j = 0; j < n; ++j) {
      auto y = projected.col(j).segment(k * d, d);
      double quadratic = 0;
      for (Index i = 0; i < d; ++i) {
        const double yi = static_cast<double>(y(i)) - offset(i);
        const double zi = yi * inv_c(i);
        quadratic += yi * zi;
        weighted(k * d + i, j) = static_cast<float>(zi);
      }
      logits(k, j) = log_norm - 0.5 * quadratic;
    }
  }
  // Responsibilities by log-sum-exp, in float64.
  row_max = logits.colwise().maxCoeff();
  logits.rowwise() -= row_max;
  exp_in_place(logits.data(), logits.size());
  row_sum = logits.colwise().sum();
  for (Index j = 0; j < n; ++j) {
    const double inv = 1.0 / row_sum(j);
    for (Index k = 0; k < K; ++k) weighted.col(j).segment(k * d, d) *= static_cast<float>(logits(k, j) * inv);
  }
  // score = -sum_k gamma_k U_k z_k: one GEMM over the stacked components.
  acc.noalias() = stacked_f32_ * weighted;
  Eigen::Map<Matrix>(out, d, n) = -acc.cast<double>();
}

std::string MixtureScore::describe() const {
  return fmt::format("exact score of a {}-component Gaussian mixture in {} dimensions under the {} SDE",
                     mixture_->components(), mixture_->dim(), sde_->name());
}

void MixtureScore::log_density(ConstMatrixRef x, double t, Vector& out) const {
  mixture_->evaluate(sde_->alpha(t), sde_->sigma(t), x, &out, nullptr, nullptr);
}

void MixtureScore::laplacian(ConstMatrixRef x, double t, Vector& out) const {
  mixture_->evaluate(sde_->alpha(t), sde_->sigma(t), x, nullptr, nullptr, &out);
}

namespace {
// Calls fn(first, count, t) for each run of consecutive columns sharing a time: columns sharing a time (the
// usual case: a whole batch at one grid time) are evaluated together.
template <class Fn>
void for_each_time_run(ConstVectorRef t, Fn&& fn) {
  const Index n = t.size();
  for (Index start = 0; start < n;) {
    Index end = start + 1;
    while (end < n && t(end) == t(start)) ++end;
    fn(start, end - start, t(start));
    start = end;
  }
}
}  // namespace

void MixtureScore::evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const {
  // alpha_t and sigma_t come from sde_alpha_sigma (core/sde_batch.hpp) whether the columns share one time or not, and
  // the mixture's per-column path is its one-time kernel lane by lane: a column's score is the same bits in a batch at
  // one time, in a batch of mixed times (an adaptive solver with a step size per column) and alone.
  const Index n = x.cols();
  if (n == 0) return;
  if ((t.array() == t(0)).all()) {
    double alpha, sigma;
    sde_alpha_sigma(*sde_, t.data(), 1, &alpha, &sigma);
    return mixture_->score_into(alpha, sigma, x, out);
  }
  thread_local Vector alpha, sigma;
  alpha.resize(n);
  sigma.resize(n);
  sde_alpha_sigma(*sde_, t.data(), n, alpha.data(), sigma.data());
  mixture_->score_at_times_into(alpha, sigma, x, out);
}

void MixtureScore::evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, VectorRef divergence) const {
  for_each_time_run(t, [&](Index first, Index count, double ti) {
    mixture_->score_and_laplacian_into(sde_->alpha(ti), sde_->sigma(ti), x.middleCols(first, count),
                                       out.middleCols(first, count), divergence.segment(first, count));
  });
}

void MixtureScore::evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out,
                                MatrixRef jv) const {
  for_each_time_run(t, [&](Index first, Index count, double ti) {
    mixture_->score_and_hessian_vector_into(sde_->alpha(ti), sde_->sigma(ti), x.middleCols(first, count),
                                            v.middleCols(first, count), out.middleCols(first, count),
                                            jv.middleCols(first, count));
  });
}

}  // namespace scoresde
