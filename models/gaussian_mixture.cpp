#include "models/gaussian_mixture.hpp"

#include <Eigen/Eigenvalues>
#include <cmath>
#include <fmt/format.h>
#include <numbers>

#include "core/errors.hpp"

namespace scoresde {

GaussianMixture::GaussianMixture(Vector weights, Matrix means, std::vector<Matrix> covariances)
    : weights_(std::move(weights)), means_(std::move(means)) {
  const Index K = means_.cols(), d = means_.rows();
  if (K < 1 || d < 1) throw ConfigError("mixture: needs at least one component of dimension >= 1");
  if (weights_.size() != K)
    throw ConfigError(fmt::format("mixture: {} weights for {} means", weights_.size(), K));
  if (static_cast<Index>(covariances.size()) != K)
    throw ConfigError(fmt::format("mixture: {} covariances for {} means", covariances.size(), K));
  for (Index k = 0; k < K; ++k)
    if (!(weights_(k) > 0) || !std::isfinite(weights_(k)))
      throw ConfigError(fmt::format("mixture: weights[{}] = {}: must be > 0", k, weights_(k)));
  if (!means_.allFinite()) throw ConfigError("mixture: means contain a non-finite value");
  weights_ /= weights_.sum();
  log_weights_ = weights_.array().log();
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

void GaussianMixture::evaluate(double alpha, double sigma, ConstMatrixRef x, Vector* log_density, Matrix* score,
                               Vector* laplacian) const {
  const Index d = dim(), K = components(), n = x.cols();
  // Scratch kept per thread so that repeated calls on batches of one size do not allocate.
  thread_local Matrix logits, y, z_all, g;
  thread_local Vector trace_inv;
  logits.resize(K, n);
  y.resize(d, n);
  trace_inv.resize(K);
  const bool need_z = score != nullptr || laplacian != nullptr;
  if (need_z) z_all.resize(d * K, n);
  const double log_2pi = std::log(2.0 * std::numbers::pi);
  for (Index k = 0; k < K; ++k) {
    // C_k = U diag(c) U^T with c = alpha^2 lambda_k + sigma^2;  y = U^T (x - alpha mu_k);  z = C_k^{-1}-whitened y.
    const Eigen::ArrayXd c = alpha * alpha * eigenvalues_.col(k).array() + sigma * sigma;
    if (isotropic_) {
      y = x.colwise() - alpha * means_.col(k);
    } else {
      y.noalias() = eigenvectors_[k].transpose() * (x.colwise() - alpha * means_.col(k));
    }
    y.array().colwise() /= c.sqrt();  // y now holds C^{-1/2} (x - m) in the eigenbasis
    logits.row(k) = (-0.5 * y.colwise().squaredNorm()).array() +
                    (log_weights_(k) - 0.5 * (d * log_2pi + c.log().sum()));
    if (need_z) {
      z_all.middleRows(k * d, d) = y.array().colwise() / c.sqrt();  // C^{-1} (x - m) in the eigenbasis
      trace_inv(k) = c.inverse().sum();
    }
  }
  // Responsibilities gamma = softmax(logits) per column, by log-sum-exp.
  const Eigen::RowVectorXd max_logit = logits.colwise().maxCoeff();
  logits.rowwise() -= max_logit;
  logits = logits.array().exp();
  const Eigen::RowVectorXd total = logits.colwise().sum();
  if (log_density) *log_density = (max_logit.array() + total.array().log()).transpose();
  if (!need_z) return;
  logits.array().rowwise() /= total.array();  // logits now holds gamma
  Matrix& out = score ? *score : g;
  out.setZero(d, n);
  for (Index k = 0; k < K; ++k) {
    auto zk = z_all.middleRows(k * d, d);
    if (isotropic_) {
      out.array() -= zk.array().rowwise() * logits.row(k).array();
    } else {
      out.noalias() -= eigenvectors_[k] * (zk.array().rowwise() * logits.row(k).array()).matrix();
    }
  }
  if (laplacian) {
    // Laplacian of log p_t = sum_k gamma_k (|s_k|^2 - tr C_k^{-1}) - |score|^2   (shared/ORACLES.md)
    laplacian->setZero(n);
    for (Index k = 0; k < K; ++k) {
      const auto zk = z_all.middleRows(k * d, d);
      laplacian->array() +=
          logits.row(k).transpose().array() * (zk.colwise().squaredNorm().transpose().array() - trace_inv(k));
    }
    laplacian->array() -= out.colwise().squaredNorm().transpose().array();
  }
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

void MixtureScore::evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const {
  thread_local Matrix block;
  // Columns sharing a time (the usual case: a whole batch at one grid time) are evaluated together.
  const Index n = x.cols();
  for (Index start = 0; start < n;) {
    Index end = start + 1;
    while (end < n && t(end) == t(start)) ++end;
    const double ti = t(start);
    block.resize(x.rows(), end - start);
    mixture_->evaluate(sde_->alpha(ti), sde_->sigma(ti), x.middleCols(start, end - start), nullptr, &block, nullptr);
    out.middleCols(start, end - start) = block;
    start = end;
  }
}

}  // namespace scoresde
