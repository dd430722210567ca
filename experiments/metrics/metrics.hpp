// Sample-quality metrics: how far a set of samples (d x n, one column per point) is from a reference, either
// a set of points (d x m) or a Gaussian mixture whose exact density is known. Every value comes with a
// standard error for the sampling error of BOTH the samples and the reference points, so that two samplers
// can be told apart from noise. docs/metrics.md gives each formula; in short (X the samples, Y the reference,
// P and Q their laws):
//
//   sliced_w2      SW_2^2 = mean over L random unit directions theta of W_2^2(theta.X, theta.Y), each
//                  exact (sorted projections, quantile functions merged). The SQUARED distance, like
//                  frechet and mmd2. Directions come in independent randomly rotated groups (2-D: 16
//                  equally spaced angles; otherwise orthonormal frames), see sliced_w2_directions.
//                  SE: delta method (influence function: the 1-D Kantorovich potentials, averaged over
//                  the directions, of samples and reference) plus the Monte Carlo variance over the
//                  directions (spread of the group means).
//   mmd2           unbiased MMD^2, Gaussian kernel exp(-|x - y|^2 / (2 h^2)), as a U-statistic over N
//                  pairs (x_i, y_i). SE: the unbiased estimate of the U-statistic's exact variance
//                  (first- and second-order terms), valid also when P = Q.
//   energy         energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo), the same
//                  U-statistic with the kernel -|x - y|; same SE.
//   frechet        |m_X - m_Y|^2 + tr(S_X + S_Y - 2 (S_X^{1/2} S_Y S_X^{1/2})^{1/2}) between the
//                  Gaussian fits. SE: delta method (influence functions of means and covariances).
//   mean_error     |m_X - m_Y|. SE: delta method.
//   cov_error      |S_X - S_Y|_F (Frobenius). SE: delta method.
//   nll            mean of -log p_0(x) over the samples under the mixture (nats). SE: std / sqrt(n).
//   nll_gap        nll(samples) - nll(reference points). SE: the two SEs added in quadrature.
//   bpd            bits per dimension, nll / (d ln 2) + 7: 8-bit data (images) scaled to [-1, 1], whose bins are
//                  2/256 wide (solvers/likelihood.hpp, Dequantization::minus_one_one). SE: nll's, scaled. Not
//                  among the defaults: asked for by name.
//   mode_coverage  share of components k whose count (each sample assigned to its highest-
//                  responsibility component) is at least half its expected count w_k n. SE: plug-in
//                  binomial (normal approximation) for each component's indicator.
//   mode_chi2      Pearson chi-square of the counts against n w_k, K - 1 degrees of freedom
//                  (mode_counts gives the p-value). SE: sqrt(2 (K - 1 + 2 lambda)), the non-central
//                  chi-square's standard deviation at lambda = max(chi2 - (K - 1), 0).
//   fd_fmnist      Fashion-MNIST images only (d = 784), asked for by name (never a default): the Frechet
//                  distance between the samples and the 10,000 test images in the feature space of a
//                  classifier; the reference points are not used. SE: bootstrap over the samples
//                  (experiments/metrics/fd_fmnist.hpp).
//
// Quadratic metrics (mmd2, energy) use N = min(n, m, max_quadratic) points of each set; a larger set is
// subsampled without replacement, deterministically (see subsample_indices). Random numbers (directions,
// subsamples) come from CounterRng(seed, NoisePurpose::metric); results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/option_table.hpp"
#include "core/types.hpp"
#include "models/gaussian_mixture.hpp"

namespace scoresde {

struct MetricValue {
  double value = 0;
  double std_error = 0;
};

struct MetricsOptions {
  std::vector<std::string> metrics;  // empty = default_metrics(mixture given)
  double mmd_bandwidth = 0;    // h > 0; 0 = median heuristic: the median of |y_i - y_j| over the pairs of the
                               // first min(N, 1000) points of the reference subsample (resolve_mmd_bandwidth)
  int projections = 128;       // sliced W2 directions L (rounded up: sliced_w2_directions)
  Index max_quadratic = 4000;  // N = min(n, m, max_quadratic) points of each set for mmd2 and energy
  std::uint64_t seed = 0;      // directions and subsamples
  int threads = 0;             // OpenMP threads; 0 = OpenMP's default. Results do not depend on it.
  // fd_fmnist (experiments/metrics/fd_fmnist.hpp): the classifier's weights (empty: the default file), the
  // directory of the test images' IDX files, the bootstrap replicates of its standard error.
  std::string fd_classifier;
  std::string fd_data_dir = "/usr/share/datasets/fashion-mnist";
  int fd_replicates = 50;
  // ConfigError naming the option (--metrics, --mmd-bandwidth, --projections, --max-quadratic, --threads) and
  // what is allowed: every name known, every value against its entry in metrics_option_table().
  void validate() const;
};

// The metrics' options, described once (core/option_table.hpp): the command line of `evaluate`, its checks and the
// options its result file records. --metrics has no default: absent, every metric the reference allows.
const OptionTable<MetricsOptions>& metrics_option_table();

// Every metric, in the order evaluate_metrics returns them.
std::vector<std::string> metric_names();
// The metrics that need a mixture reference (nll, nll_gap, bpd, mode_coverage, mode_chi2).
std::vector<std::string> mixture_metric_names();
// The metrics of images, computed only when named (fd_fmnist); not in metric_names() nor any default.
std::vector<std::string> image_metric_names();
// All metrics but bpd with a mixture reference; the sample-based ones (no nll or mode metrics) without.
std::vector<std::string> default_metrics(bool mixture_reference);
// One line per metric for help texts and tables, e.g. "squared sliced Wasserstein-2 distance".
std::string metric_description(const std::string& name);

// The metrics options.metrics asks for (default_metrics when empty), after options.validate(); ConfigError
// naming
// --metrics when a mixture metric is asked for without a mixture reference.
std::vector<std::string> requested_metrics(const MetricsOptions& options, bool mixture_reference);

// samples and reference: d x n and d x m (one column per point). mixture may be null (reference given as
// points only); when given, `reference` should be exact samples from it (reference_points). Returns the
// metrics in the order of metric_names() then image_metric_names(), each once. Throws ConfigError for unknown names or mixture metrics
// without a mixture (or invalid options), InputError for non-finite points, dimension mismatches and fewer
// than 2 points in a set.
std::vector<std::pair<std::string, MetricValue>> evaluate_metrics(ConstMatrixRef samples,
                                                                  ConstMatrixRef reference,
                                                                  const GaussianMixture* mixture,
                                                                  const MetricsOptions& options);

// ---------------------------------------------------------------------------------------------- building
// blocks

// The exact reference set for a mixture: GaussianMixture::sample(seed, first = reference_first_index, count).
// The offset keeps it apart from exact samples 0, 1, ... drawn with the same seed (compare's "exact
// samples").
inline constexpr Index reference_first_index = Index{1} << 31;
Matrix reference_points(const GaussianMixture& mixture, std::uint64_t seed, Index count);
// Reference size when none is asked for: min(10 n, 100000), so that the reference adds at most a tenth of the
// samples' variance while 10,000 samples are evaluated in seconds.
Index default_reference_count(Index n);

// `count` of the indices 0 .. size - 1, without replacement, in increasing order: the indices with the
// `count` smallest Philox keys u_i = uniform(seed, metric; i, stream). All of them when count >= size.
std::vector<Index> subsample_indices(Index size, Index count, std::uint64_t seed, std::uint64_t stream);
// The number of sliced W2 directions used: `projections` rounded up to whole groups (16 in 2-D, d otherwise;
// 1 in 1-D, where every direction gives the same value).
Index sliced_w2_directions(Index dim, int projections);
// N = min(n, m, max_quadratic): the points per set of the quadratic metrics.
Index quadratic_count(Index n, Index m, const MetricsOptions& options);
// The Gaussian-kernel bandwidth mmd2 uses: options.mmd_bandwidth, or the median heuristic when it is 0.
double resolve_mmd_bandwidth(ConstMatrixRef reference, Index n_samples, const MetricsOptions& options);

// Each sample's highest-responsibility component (argmax_k log w_k + log N(x; mu_k, S_k)), and its squared
// Mahalanobis distance to that component.
struct ModeAssignment {
  std::vector<Index> component;
  Vector mahalanobis2;
};
ModeAssignment assign_modes(const GaussianMixture& mixture, ConstMatrixRef samples, int threads = 0);

// The nll metric: mean of -log p_0(x) over the samples under the mixture (nats), with its standard error
// std / sqrt(n). Needs no reference points.
MetricValue mixture_nll(const GaussianMixture& mixture, ConstMatrixRef samples, int threads = 0);
// The bpd metric from the nll metric in dimension dim: nll / (d ln 2) + 7, its SE scaled alike.
MetricValue bits_per_dim(const MetricValue& nll, Index dim);

struct ModeCounts {
  Vector counts;    // samples assigned to each component
  Vector expected;  // n w_k
  double chi2 = 0;  // Pearson: sum_k (counts_k - expected_k)^2 / expected_k
  int dof = 0;      // K - 1
  double p_value = 1;
  double coverage = 0, coverage_se = 0;  // mode_coverage
  double chi2_se = 0;                    // mode_chi2's standard error
};
ModeCounts mode_counts(const GaussianMixture& mixture, ConstMatrixRef samples, int threads = 0);

// Closed forms between two Gaussians, the first N(m1, S1) (a sampler's exact output law, solvers/gaussian_law.hpp),
// the second N(m0, S0) with S0 positive definite (the data law p_0): the study metrics gaussian_w2 and gaussian_kl.
//   gaussian_w2  the squared 2-Wasserstein distance |m1 - m0|^2 + tr(S1 + S0 - 2 (S0^{1/2} S1 S0^{1/2})^{1/2}),
//                computed as |m1 - m0|^2 + |S0^{-1/2} (M^{1/2} - S0)|_F^2 with M = S0^{1/2} S1 S0^{1/2} (the same
//                value: expand the square and use tr(S0^{-1} M) = tr(S1)); a sum of squares, so that it keeps its
//                relative precision down to values of 1e-20 and below, where the trace form cancels.
//   gaussian_kl  KL(N(m1, S1) || N(m0, S0)) = (sum_i (mu_i - 1 - log mu_i) + (m1 - m0)^T S0^{-1} (m1 - m0)) / 2, mu
//                the eigenvalues of S0^{-1/2} S1 S0^{-1/2}, each term as (mu - 1) - log1p(mu - 1); +infinity when S1
//                is singular.
// InputError for mismatched dimensions.
double gaussian_w2(const Vector& m1, const Matrix& s1, const Vector& m0, const Matrix& s0);
double gaussian_kl(const Vector& m1, const Matrix& s1, const Vector& m0, const Matrix& s0);

// The statistic of one quadratic metric on paired sets x, y (d x N each): the U-statistic
//   U = 1 / (N (N - 1)) sum_{i != j} H_ij,  H_ij = k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i),
// and the unbiased estimate of its variance (docs/metrics.md).
enum class QuadraticKernel { gaussian, energy };
MetricValue paired_u_statistic(ConstMatrixRef x, ConstMatrixRef y, QuadraticKernel kernel, double bandwidth,
                               int threads = 0);

}  // namespace scoresde
