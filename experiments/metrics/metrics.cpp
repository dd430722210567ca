#include "experiments/metrics/metrics.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>
#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <algorithm>
#include <boost/math/special_functions/gamma.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <numeric>
#include <utility>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "experiments/metrics/fd_fmnist.hpp"
#include "solvers/likelihood.hpp"

namespace scoresde {
namespace {

// Counter word b of CounterRng(seed, NoisePurpose::metric): one stream per use.
constexpr std::uint64_t stream_samples = 1, stream_reference = 2, stream_directions = 3;
// Median heuristic: pairs among this many reference points.
constexpr Index median_points = 1000;
// Sliced W2: directions l, l + A, l + 2 A, ... accumulate into buffer l of A, so that the sums do not depend
// on the thread count.
constexpr Index direction_accumulators = 16;
// Sliced W2 in 2-D: equally spaced angles per group of directions.
constexpr Index lattice_2d = 16;
// Tiles of the N x N matrix H of the quadratic metrics.
constexpr Index tile = 128;

int thread_count(int threads) {
  return threads > 0 ? threads : omp_get_max_threads();
}

// Sample variance (denominator count - 1), summed in index order.
double sample_variance(const Eigen::ArrayXd& v) {
  if (v.size() < 2) return 0.0;
  const double mean = v.mean();
  return (v - mean).square().sum() / static_cast<double>(v.size() - 1);
}

bool contains(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

// ---------------------------------------------------------------------------------------------- moments

struct Moments {
  Vector mean;
  Matrix centred;  // x - mean
  Matrix cov;      // centred centred^T / (n - 1)
};

Moments moments(ConstMatrixRef x) {
  Moments m;
  m.mean = x.rowwise().mean();
  m.centred = x.colwise() - m.mean;
  m.cov.noalias() = m.centred * m.centred.transpose() / static_cast<double>(x.cols() - 1);
  return m;
}

// Symmetric positive semi-definite square root (eigenvalues clamped at 0) and its pseudo-inverse (eigenvalues
// below 1e-12 of the largest treated as 0).
void psd_sqrt(const Matrix& s, Matrix& root, Matrix& inverse_root) {
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(0.5 * (s + s.transpose()));
  const Vector lambda = eig.eigenvalues().cwiseMax(0.0);
  const double cutoff = 1e-12 * std::max(lambda.maxCoeff(), std::numeric_limits<double>::min());
  Vector r = lambda.cwiseSqrt(), inv(lambda.size());
  for (Index i = 0; i < lambda.size(); ++i) inv(i) = lambda(i) > cutoff ? 1.0 / r(i) : 0.0;
  root = eig.eigenvectors() * r.asDiagonal() * eig.eigenvectors().transpose();
  inverse_root = eig.eigenvectors() * inv.asDiagonal() * eig.eigenvectors().transpose();
}

// tr((a^{1/2} b a^{1/2})^{1/2}) and the optimal transport matrix T from N(0, a) to N(0, b),
// T = a^{-1/2} (a^{1/2} b a^{1/2})^{1/2} a^{-1/2}.
double bures_cross_trace(const Matrix& a, const Matrix& b, Matrix* transport) {
  Matrix root, inverse_root;
  psd_sqrt(a, root, inverse_root);
  const Matrix middle = root * b * root;
  Matrix middle_root, unused;
  psd_sqrt(middle, middle_root, unused);
  if (transport) *transport = inverse_root * middle_root * inverse_root;
  return middle_root.trace();
}

// Var of the influence function z^T A z + c^T z over the columns z of `centred`, divided by their number.
double quadratic_influence_variance(const Matrix& centred, const Matrix& a, const Vector& c) {
  const Matrix az = a * centred;
  Eigen::ArrayXd f = (centred.array() * az.array()).colwise().sum().transpose();
  f += (c.transpose() * centred).transpose().array();
  return sample_variance(f) / static_cast<double>(centred.cols());
}

// The eigen-decomposition of a symmetric positive definite s: s^{1/2} and s^{-1/2}; InputError when s is not.
void spd_roots(const Matrix& s, Matrix& root, Matrix& inverse_root) {
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(0.5 * (s + s.transpose()));
  const Vector lambda = eig.eigenvalues();
  if (!(lambda.minCoeff() > 0))
    throw InputError(fmt::format("the reference Gaussian's covariance is not positive definite (eigenvalue {:.3g})",
                                 lambda.minCoeff()));
  root = eig.eigenvectors() * lambda.cwiseSqrt().asDiagonal() * eig.eigenvectors().transpose();
  inverse_root = eig.eigenvectors() * lambda.cwiseSqrt().cwiseInverse().asDiagonal() * eig.eigenvectors().transpose();
}

void check_gaussians(const Vector& m1, const Matrix& s1, const Vector& m0, const Matrix& s0) {
  const Index d = m0.size();
  if (m1.size() != d || s1.rows() != d || s1.cols() != d || s0.rows() != d || s0.cols() != d)
    throw InputError(fmt::format("Gaussians of different dimensions ({} and {})", m1.size(), d));
}

MetricValue frechet(const Moments& x, const Moments& y) {
  const Index d = x.mean.size();
  const Vector diff = x.mean - y.mean;
  Matrix t_xy, t_yx;
  const double cross = bures_cross_trace(x.cov, y.cov, &t_xy);
  bures_cross_trace(y.cov, x.cov, &t_yx);
  MetricValue r;
  r.value = std::max(0.0, diff.squaredNorm() + x.cov.trace() + y.cov.trace() - 2.0 * cross);
  // d FD / d m_X = 2 (m_X - m_Y) and d FD / d S_X = I - T_{X->Y};
  // the influence of a point on (m, S) is (z, z z^T - S).
  const Matrix id = Matrix::Identity(d, d);
  const double var = quadratic_influence_variance(x.centred, id - t_xy, 2.0 * diff) +
                     quadratic_influence_variance(y.centred, id - t_yx, -2.0 * diff);
  r.std_error = std::sqrt(std::max(var, 0.0));
  return r;
}

MetricValue mean_error(const Moments& x, const Moments& y) {
  const Vector diff = x.mean - y.mean;
  const Matrix v =
      x.cov / static_cast<double>(x.centred.cols()) + y.cov / static_cast<double>(y.centred.cols());
  MetricValue r;
  r.value = diff.norm();
  // Delta method: gradient diff / |diff|; at diff = 0 exactly, the mean variance per coordinate.
  r.std_error = r.value > 0 ? std::sqrt(std::max(0.0, diff.dot(v * diff))) / r.value
                            : std::sqrt(v.trace() / static_cast<double>(diff.size()));
  return r;
}

MetricValue cov_error(const Moments& x, const Moments& y) {
  const Matrix diff = x.cov - y.cov;
  MetricValue r;
  r.value = diff.norm();
  const Index d = diff.rows();
  // Delta method: gradient U = diff / |diff|_F; at diff = 0 exactly, U = I / sqrt(d).
  const Matrix u =
      r.value > 0 ? Matrix(diff / r.value) : Matrix(Matrix::Identity(d, d) / std::sqrt(double(d)));
  const Vector zero = Vector::Zero(d);
  r.std_error = std::sqrt(std::max(0.0, quadratic_influence_variance(x.centred, u, zero) +
                                            quadratic_influence_variance(y.centred, u, zero)));
  return r;
}

// ---------------------------------------------------------------------------------------------- sliced W2

struct Keyed {
  double value;
  Index index;
  bool operator<(const Keyed& o) const { return value < o.value || (value == o.value && index < o.index); }
};

// The order-preserving unsigned image of a finite double: flip the sign bit of positives, every bit of
// negatives.
inline std::uint64_t sort_key(double x) {
  std::uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits >> 63) ? ~bits : bits | (std::uint64_t{1} << 63);
}

// Projections of the columns of x on `direction`, sorted by value, ties by index: a stable
// least-significant-digit radix sort (11-bit digits) of the records in index order, about three times faster
// than std::sort here; passes whose digit is the same for every record are skipped.
void sorted_projection(ConstMatrixRef x, const Vector& direction, Eigen::RowVectorXd& scratch,
                       std::vector<Keyed>& out, std::vector<Keyed>& buffer) {
  constexpr int digit_bits = 11, passes = 6;
  constexpr std::size_t buckets = std::size_t{1} << digit_bits;
  scratch.noalias() = direction.transpose() * x;
  const Index n = x.cols();
  out.resize(n);
  buffer.resize(n);
  std::vector<std::uint32_t> counts(passes * buckets, 0);
  for (Index i = 0; i < n; ++i) {
    out[i] = {scratch(i), i};
    const std::uint64_t key = sort_key(scratch(i));
    for (int p = 0; p < passes; ++p) ++counts[p * buckets + ((key >> (p * digit_bits)) & (buckets - 1))];
  }
  for (int p = 0; p < passes; ++p) {
    std::uint32_t* count = counts.data() + p * buckets;
    if (*std::max_element(count, count + buckets) == static_cast<std::uint32_t>(n)) continue;
    std::uint32_t offset = 0;
    for (std::size_t b = 0; b < buckets; ++b) offset += std::exchange(count[b], offset);
    for (Index i = 0; i < n; ++i) {
      const std::uint64_t key = sort_key(out[i].value);
      buffer[count[(key >> (p * digit_bits)) & (buckets - 1)]++] = out[i];
    }
    out.swap(buffer);
  }
}

// The 1-D Kantorovich potential of one sorted set, built point by point: phi(a_0) = 0; phi(a_{k+1}) = phi(a_k) +
// int 2 (t - T(t)) dt over [a_k, a_{k+1}] (trapezoid), with T(a_k) = count * map_k the barycentric projection.
struct Potential {
  double phi = 0, slope = 0;
  void add(const std::vector<Keyed>& a, Index k, Index count, double map, Eigen::ArrayXd& influence) {
    const double next_slope = a[k].value - count * map;
    if (k > 0) phi += (a[k].value - a[k - 1].value) * (slope + next_slope);
    slope = next_slope;
    influence(a[k].index) += phi;
  }
};

// Exact W2^2 between the empirical laws of sorted a (n) and b (m): the integral over u in (0, 1) of
// (A^{-1}(u) - B^{-1}(u))^2 for the step quantile functions, merged on the breakpoints i / n and j / m
// (integer numerators over n m). The 1-D Kantorovich potentials phi (of a) and psi (of b), whose gradients
// are 2 (t - T(t)) with T the monotone map (here its barycentric projection per point), are added to the
// points' influence buffers. A point's map is complete when the merge moves past it, so its potential is added
// then: no per-point map is stored.
double w2_1d(const std::vector<Keyed>& a, const std::vector<Keyed>& b, Eigen::ArrayXd& influence_a,
             Eigen::ArrayXd& influence_b) {
  const Index n = static_cast<Index>(a.size()), m = static_cast<Index>(b.size());
  const double nm = static_cast<double>(n) * static_cast<double>(m);
  double w2 = 0, map_i = 0, map_j = 0;
  Potential phi, psi;
  Index i = 0, j = 0, previous = 0;
  while (i < n && j < m) {
    const Index end_i = (i + 1) * m, end_j = (j + 1) * n;
    const Index next = std::min(end_i, end_j);
    const double w = static_cast<double>(next - previous) / nm;
    const double diff = a[i].value - b[j].value;
    w2 += w * diff * diff;
    map_i += w * b[j].value;
    map_j += w * a[i].value;
    previous = next;
    if (end_i == next) {
      phi.add(a, i++, n, map_i, influence_a);
      map_i = 0;
    }
    if (end_j == next) {
      psi.add(b, j++, m, map_j, influence_b);
      map_j = 0;
    }
  }
  return w2;
}

// The directions: G independent uniformly random rotations of a fixed design of s unit vectors, so that every
// direction is uniform on the sphere and the group means are independent: in 2-D, s = 16 equally spaced
// angles (a rotated lattice, which integrates the smooth periodic integrand almost exactly); otherwise an
// orthonormal frame, s = d (which integrates the mean-shift part (theta.(m_X - m_Y))^2 exactly). One
// direction in 1-D.
Matrix slice_directions(Index d, int projections, std::uint64_t seed, Index& group_size) {
  if (d == 1) {
    group_size = 1;
    return Matrix::Ones(1, 1);
  }
  group_size = d == 2 ? lattice_2d : d;
  const Index groups = (projections + group_size - 1) / group_size;
  const CounterRng rng(seed, NoisePurpose::metric);
  Matrix directions(d, groups * group_size);
  for (Index g = 0; g < groups; ++g) {
    const auto counter = static_cast<std::uint64_t>(g);
    if (d == 2) {
      double u;
      rng.uniforms(counter, stream_directions, 0, &u, 1);
      for (Index k = 0; k < group_size; ++k) {
        const double angle =
            std::numbers::pi * (u + static_cast<double>(k)) / static_cast<double>(group_size);
        directions.col(g * group_size + k) << std::cos(angle), std::sin(angle);
      }
      continue;
    }
    // A Haar-random orthogonal matrix: QR of a Gaussian matrix with the signs of R's diagonal moved into Q.
    Matrix z(d, d);
    rng.normals(counter, stream_directions, 0, z.data(), d * d);
    const Eigen::HouseholderQR<Matrix> qr(z);
    Matrix q = qr.householderQ() * Matrix::Identity(d, d);
    for (Index j = 0; j < d; ++j)
      if (qr.matrixQR()(j, j) < 0) q.col(j) = -q.col(j);
    directions.middleCols(g * group_size, d) = q;
  }
  return directions;
}

MetricValue sliced_w2(ConstMatrixRef x, ConstMatrixRef y, const MetricsOptions& o) {
  const Index d = x.rows(), n = x.cols(), m = y.cols();
  Index group_size = 1;
  const Matrix directions = slice_directions(d, o.projections, o.seed, group_size);
  const Index L = directions.cols(), groups = L / group_size;
  const Index accumulators = std::min(direction_accumulators, L);
  // Accumulator g sums the influences of directions g, g + 16, ...; the accumulators are added into the totals in
  // the order 0, 1, 2, ... whatever the threads (an ordered region), so a thread holds one accumulator's buffers at a
  // time and memory grows with the threads, not with the 16 accumulators (n = 10^6: 16 x 8 MB).
  Eigen::ArrayXd total_x, total_y;
  Eigen::ArrayXd per_direction(L);
#pragma omp parallel for ordered schedule(dynamic, 1) num_threads(thread_count(o.threads))
  for (Index g = 0; g < accumulators; ++g) {
    Eigen::ArrayXd influence_x = Eigen::ArrayXd::Zero(n), influence_y = Eigen::ArrayXd::Zero(m);
    {
      std::vector<Keyed> a, b, buffer;
      Eigen::RowVectorXd scratch;
      for (Index l = g; l < L; l += accumulators) {
        const Vector direction = directions.col(l);
        sorted_projection(x, direction, scratch, a, buffer);
        sorted_projection(y, direction, scratch, b, buffer);
        per_direction(l) = w2_1d(a, b, influence_x, influence_y);
      }
    }
#pragma omp ordered
    {
      if (g == 0) {
        total_x = std::move(influence_x);
        total_y = std::move(influence_y);
      } else {
        total_x += influence_x;
        total_y += influence_y;
      }
    }
  }
  const double inv_l = 1.0 / static_cast<double>(L);
  MetricValue r;
  r.value = per_direction.mean();
  // Monte Carlo variance over the directions: from the spread of the independent group means; with a single
  // group, from the spread of the directions as if they were independent.
  double direction_variance = 0;
  if (groups >= 2) {
    const Eigen::ArrayXd group_means =
        per_direction.reshaped(group_size, groups).colwise().mean().transpose();
    direction_variance = sample_variance(group_means) / static_cast<double>(groups);
  } else if (L >= 2) {
    direction_variance = sample_variance(per_direction) * inv_l;
  }
  const double var = sample_variance(total_x * inv_l) / static_cast<double>(n) +
                     sample_variance(total_y * inv_l) / static_cast<double>(m) + direction_variance;
  r.std_error = std::sqrt(var);
  return r;
}

// ---------------------------------------------------------------------------------------------- quadratic

Matrix gather(ConstMatrixRef x, const std::vector<Index>& indices) {
  Matrix out(x.rows(), static_cast<Index>(indices.size()));
  for (std::size_t k = 0; k < indices.size(); ++k) out.col(static_cast<Index>(k)) = x.col(indices[k]);
  return out;
}

struct QuadraticSums {
  Eigen::ArrayXd row_sums;  // R_i = sum_{j != i} H_ij
  double sum_squares = 0;   // S2 = sum_{i != j} H_ij^2
};

// The row sums and the sum of squares of H for up to two kernels at once (the distances are shared).
// Tiles (I, J) with I <= J run in parallel; each writes its own slots, and the slots are summed in a fixed
// order.
std::vector<QuadraticSums> quadratic_sums(ConstMatrixRef x, ConstMatrixRef y,
                                          const std::vector<QuadraticKernel>& kernels, double bandwidth,
                                          int threads) {
  const Index N = x.cols(), nb = (N + tile - 1) / tile, nk = static_cast<Index>(kernels.size());
  // Centring on one point makes |u|^2 + |v|^2 - 2 u.v lose less to cancellation.
  const Vector centre = 0.5 * (x.rowwise().mean() + y.rowwise().mean());
  const Matrix xc = x.colwise() - centre, yc = y.colwise() - centre;
  const Eigen::ArrayXd xx = xc.colwise().squaredNorm().transpose(),
                       yy = yc.colwise().squaredNorm().transpose();
  std::vector<std::pair<Index, Index>> tiles;
  for (Index I = 0; I < nb; ++I)
    for (Index J = I; J < nb; ++J) tiles.emplace_back(I, J);
  std::vector<Matrix> partial(nk, Matrix::Zero(N, nb));
  std::vector<Matrix> squares(nk, Matrix::Zero(nb, nb));
  const double gamma = bandwidth > 0 ? 0.5 / (bandwidth * bandwidth) : 0.0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads))
  for (std::size_t t = 0; t < tiles.size(); ++t) {
    const auto [I, J] = tiles[t];
    const Index i0 = I * tile, j0 = J * tile, bi = std::min(tile, N - i0), bj = std::min(tile, N - j0);
    const auto xi = xc.middleCols(i0, bi), xj = xc.middleCols(j0, bj);
    const auto yi = yc.middleCols(i0, bi), yj = yc.middleCols(j0, bj);
    auto distances = [&](const auto& u, const auto& v, const Eigen::ArrayXd& uu, const Eigen::ArrayXd& vv,
                         Index u0, Index v0) {
      Eigen::ArrayXXd dist = (-2.0 * (u.transpose() * v)).array();
      dist.colwise() += uu.segment(u0, u.cols());
      dist.rowwise() += vv.segment(v0, v.cols()).transpose();
      return Eigen::ArrayXXd(dist.max(0.0));
    };
    const Eigen::ArrayXXd dxx = distances(xi, xj, xx, xx, i0, j0), dyy = distances(yi, yj, yy, yy, i0, j0);
    const Eigen::ArrayXXd dxy = distances(xi, yj, xx, yy, i0, j0), dyx = distances(yi, xj, yy, xx, i0, j0);
    for (Index k = 0; k < nk; ++k) {
      Eigen::ArrayXXd h;
      if (kernels[k] == QuadraticKernel::gaussian) {
        h = (-gamma * dxx).exp() + (-gamma * dyy).exp() - (-gamma * dxy).exp() - (-gamma * dyx).exp();
      } else {
        h = dxy.sqrt() + dyx.sqrt() - dxx.sqrt() - dyy.sqrt();
      }
      if (I == J) h.matrix().diagonal().setZero();
      partial[k].block(i0, J, bi, 1) = h.rowwise().sum().matrix();
      if (I != J) partial[k].block(j0, I, bj, 1) = h.colwise().sum().transpose().matrix();
      squares[k](I, J) = (I == J ? 1.0 : 2.0) * h.square().sum();
    }
  }
  std::vector<QuadraticSums> out(nk);
  for (Index k = 0; k < nk; ++k) {
    out[k].row_sums = partial[k].rowwise().sum().array();
    out[k].sum_squares = squares[k].sum();
  }
  return out;
}

// U = S1 / P2 and the unbiased estimate of Var U = (4 (N - 2) zeta_1 + 2 zeta_2) / (N (N - 1)) from the sums
// over ordered distinct index tuples: S2 / P2 estimates zeta_2 + theta^2, T3 / P3 estimates zeta_1 + theta^2,
// T4 / P4 estimates theta^2, with T3 = sum_i R_i^2 - S2 and T4 = S1^2 - 2 S2 - 4 T3.
MetricValue u_statistic(const QuadraticSums& s) {
  const double N = static_cast<double>(s.row_sums.size());
  const double p2 = N * (N - 1), p3 = p2 * (N - 2), p4 = p3 * (N - 3);
  const double s1 = s.row_sums.sum(), s2 = s.sum_squares, t3 = s.row_sums.square().sum() - s2;
  const double t4 = s1 * s1 - 2 * s2 - 4 * t3;
  const double var = 4 * (N - 2) / p2 * (t3 / p3 - t4 / p4) + 2 / p2 * (s2 / p2 - t4 / p4);
  return {s1 / p2, std::sqrt(std::max(var, 0.0))};
}

// ---------------------------------------------------------------------------------------------- mixtures

Eigen::ArrayXd log_density(const GaussianMixture& mixture, ConstMatrixRef x, int threads) {
  constexpr Index chunk = 4096;
  const Index n = x.cols(), chunks = (n + chunk - 1) / chunk;
  Eigen::ArrayXd out(n);
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads))
  for (Index c = 0; c < chunks; ++c) {
    const Index first = c * chunk, count = std::min(chunk, n - first);
    Vector lp;
    mixture.evaluate(1.0, 0.0, x.middleCols(first, count), &lp, nullptr, nullptr);
    out.segment(first, count) = lp.array();
  }
  return out;
}

MetricValue nll(const Eigen::ArrayXd& log_p) {
  const double n = static_cast<double>(log_p.size());
  return {-log_p.mean(), std::sqrt(sample_variance(log_p) / n)};
}

double normal_cdf(double z) {
  return 0.5 * std::erfc(-z / std::numbers::sqrt2);
}

void require_points(ConstMatrixRef x, const std::string& what) {
  if (x.cols() < 4)
    throw InputError(fmt::format("{}: {} points; the metrics need at least 4", what, x.cols()));
  for (Index j = 0; j < x.cols(); ++j)
    if (!x.col(j).allFinite())
      throw InputError(fmt::format("{}: point {} holds a non-finite value", what, j));
}

}  // namespace

// ---------------------------------------------------------------------------------------------- public

void MetricsOptions::validate() const {
  auto known = metric_names();
  for (const auto& name : image_metric_names()) known.push_back(name);
  for (const auto& name : metrics)
    if (!contains(known, name))
      throw ConfigError(
          fmt::format("--metrics = {}: unknown metric; choose from {}", name, fmt::join(known, ", ")));
  // Values set in C++ get the checks of the command line.
  check_options(metrics_option_table(), *this);
}

const OptionTable<MetricsOptions>& metrics_option_table() {
  using S = MetricsOptions;
  static const OptionTable<S> table = [] {
    OptionTable<S> t;
    // The names are checked by validate(), one by one ("--metrics = fid: unknown metric"); here only that there is
    // at least one.
    auto& metrics = t.emplace_back();
    metrics.key = "metrics";
    metrics.value_name = "LIST";
    metrics.help = "comma-separated metrics, listed above (default: every metric the reference allows)";
    metrics.optional = true;
    metrics.choices = [] {
      auto names = metric_names();
      for (const auto& name : image_metric_names()) names.push_back(name);
      return names;
    };
    metrics.parse = [](S& s, const std::string& text) -> std::optional<std::string> {
      auto names = option_text::split_list(text);
      if (names.empty()) return fmt::format("name at least one of {}", fmt::join(metric_names(), ", "));
      s.metrics = std::move(names);
      return std::nullopt;
    };
    metrics.get = [](const S& s) {
      return s.metrics.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(option_text::join_list(s.metrics));
    };
    t.push_back(option("seed", &S::seed, "fixes the reference points, the sliced W2 directions and the subsamples"));
    t.push_back(option("mmd-bandwidth", &S::mmd_bandwidth,
                       "Gaussian kernel bandwidth h of mmd2; 0: the median distance between reference points",
                       check_that<double>([](const double& h) { return std::isfinite(h) && h >= 0; },
                                          "must be > 0, or 0 for the median heuristic")));
    t.push_back(option("projections", &S::projections, "sliced W2 directions",
                       check_that<int>([](const int& p) { return p >= 1 && p <= 100000; }, "must be in [1, 100000]")));
    t.push_back(option("max-quadratic", &S::max_quadratic,
                       "points per set for mmd2 and energy (larger sets are subsampled)", at_least(Index{4})));
    t.push_back(option("threads", &S::threads, "worker threads (0: OpenMP's default); results do not depend on it",
                       check_that<int>([](const int& n) { return n >= 0; }, "must be >= 0 (0: OpenMP's default)")));
    t.push_back(option("fd-classifier", &S::fd_classifier,
                       "fd_fmnist's classifier weights (.npz); empty: assets/fashion_mnist/classifier.npz"));
    t.push_back(option("fd-data-dir", &S::fd_data_dir, "fd_fmnist: the directory of t10k-images-idx3-ubyte.gz",
                       check_that<std::string>([](const std::string& s) { return !s.empty(); },
                                               "name a directory")));
    t.push_back(option("fd-replicates", &S::fd_replicates, "fd_fmnist: bootstrap replicates of its standard error",
                       check_that<int>([](const int& b) { return b >= 2 && b <= 100000; }, "must be in [2, 100000]")));
    return t;
  }();
  return table;
}

std::vector<std::string> metric_names() {
  return {"sliced_w2", "mmd2",    "energy", "frechet",       "mean_error", "cov_error",
          "nll",       "nll_gap", "bpd",    "mode_coverage", "mode_chi2"};
}

std::vector<std::string> mixture_metric_names() {
  return {"nll", "nll_gap", "bpd", "mode_coverage", "mode_chi2"};
}

std::vector<std::string> image_metric_names() {
  return {"fd_fmnist"};
}

std::vector<std::string> default_metrics(bool mixture_reference) {
  std::vector<std::string> out;
  // bpd is asked for by name: it means something for 8-bit images only.
  for (const auto& name : metric_names())
    if (name != "bpd" && (mixture_reference || !contains(mixture_metric_names(), name))) out.push_back(name);
  return out;
}

std::string metric_description(const std::string& name) {
  if (name == "sliced_w2") return "squared sliced Wasserstein-2 distance";
  if (name == "mmd2") return "squared maximum mean discrepancy, Gaussian kernel (unbiased)";
  if (name == "energy") return "energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (unbiased)";
  if (name == "frechet") return "Frechet distance between Gaussian fits (squared)";
  if (name == "mean_error") return "|mean - reference mean|";
  if (name == "cov_error") return "|cov - reference cov| (Frobenius)";
  if (name == "nll") return "mean -log p_0(x) under the mixture (nats)";
  if (name == "nll_gap") return "nll(samples) - nll(reference points) (nats)";
  if (name == "bpd") return "bits per dimension of 8-bit data in [-1, 1]: nll / (d ln 2) + 7";
  if (name == "mode_coverage") return "share of modes with at least half their expected count";
  if (name == "mode_chi2") return "Pearson chi-square of mode counts against the weights";
  if (name == "fd_fmnist") return "Frechet distance to the Fashion-MNIST test images in classifier features";
  throw ConfigError(fmt::format("unknown metric {}", name));
}

Matrix reference_points(const GaussianMixture& mixture, std::uint64_t seed, Index count) {
  Matrix out(mixture.dim(), count);
  mixture.sample(seed, reference_first_index, out);
  return out;
}

Index default_reference_count(Index n) {
  return std::min<Index>(10 * n, 100000);
}

std::vector<Index> subsample_indices(Index size, Index count, std::uint64_t seed, std::uint64_t stream) {
  std::vector<Index> out;
  if (count >= size) {
    out.resize(size);
    std::iota(out.begin(), out.end(), Index{0});
    return out;
  }
  const CounterRng rng(seed, NoisePurpose::metric);
  std::vector<Keyed> keys(size);
  for (Index i = 0; i < size; ++i) {
    double u;
    rng.uniforms(static_cast<std::uint64_t>(i), stream, 0, &u, 1);
    keys[i] = {u, i};
  }
  std::nth_element(keys.begin(), keys.begin() + count, keys.end());
  for (Index k = 0; k < count; ++k) out.push_back(keys[k].index);
  std::sort(out.begin(), out.end());
  return out;
}

Index sliced_w2_directions(Index dim, int projections) {
  if (dim <= 1) return 1;
  const Index s = dim == 2 ? lattice_2d : dim;
  return (projections + s - 1) / s * s;
}

Index quadratic_count(Index n, Index m, const MetricsOptions& options) {
  return std::min({n, m, options.max_quadratic});
}

double resolve_mmd_bandwidth(ConstMatrixRef reference, Index n_samples, const MetricsOptions& options) {
  if (options.mmd_bandwidth > 0) return options.mmd_bandwidth;
  const Index N = quadratic_count(n_samples, reference.cols(), options);
  auto indices = subsample_indices(reference.cols(), N, options.seed, stream_reference);
  indices.resize(std::min(N, median_points));
  const Index p = static_cast<Index>(indices.size());
  std::vector<double> dist;
  dist.reserve(p * (p - 1) / 2);
  for (Index i = 0; i < p; ++i)
    for (Index j = i + 1; j < p; ++j)
      dist.push_back((reference.col(indices[i]) - reference.col(indices[j])).norm());
  if (dist.empty())
    throw InputError("the median heuristic for the MMD bandwidth needs at least 2 reference points");
  const std::size_t mid = dist.size() / 2;
  std::nth_element(dist.begin(), dist.begin() + mid, dist.end());
  double median = dist[mid];
  if (dist.size() % 2 == 0) median = 0.5 * (median + *std::max_element(dist.begin(), dist.begin() + mid));
  if (!(median > 0))
    throw InputError(
        "the median heuristic gives an MMD bandwidth of 0 (the reference points coincide); give "
        "--mmd-bandwidth");
  return median;
}

ModeAssignment assign_modes(const GaussianMixture& mixture, ConstMatrixRef samples, int threads) {
  const Index K = mixture.components(), n = samples.cols();
  std::vector<Matrix> lower(K);
  Vector log_weight_det(K);  // log w_k - (1/2) log det S_k
  for (Index k = 0; k < K; ++k) {
    const Eigen::LLT<Matrix> llt(mixture.covariance(k));
    lower[k] = llt.matrixL();
    log_weight_det(k) = std::log(mixture.weights()(k)) - lower[k].diagonal().array().log().sum();
  }
  ModeAssignment out;
  out.component.assign(n, 0);
  out.mahalanobis2.resize(n);
  constexpr Index chunk = 1024;
  const Index chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads))
  for (Index c = 0; c < chunks; ++c) {
    const Index first = c * chunk, count = std::min(chunk, n - first);
    Eigen::ArrayXd best = Eigen::ArrayXd::Constant(count, -INFINITY), best_d2(count);
    Matrix z;
    for (Index k = 0; k < K; ++k) {
      z = samples.middleCols(first, count).colwise() - mixture.means().col(k);
      lower[k].triangularView<Eigen::Lower>().solveInPlace(z);
      const Eigen::ArrayXd d2 = z.colwise().squaredNorm().transpose();
      const Eigen::ArrayXd logit = log_weight_det(k) - 0.5 * d2;
      for (Index j = 0; j < count; ++j)
        if (logit(j) > best(j)) {
          best(j) = logit(j);
          best_d2(j) = d2(j);
          out.component[first + j] = k;
        }
    }
    out.mahalanobis2.segment(first, count) = best_d2.matrix();
  }
  return out;
}

MetricValue mixture_nll(const GaussianMixture& mixture, ConstMatrixRef samples, int threads) {
  return nll(log_density(mixture, samples, threads));
}

MetricValue bits_per_dim(const MetricValue& nll, Index dim) {
  const double scale = 1.0 / (static_cast<double>(dim) * std::numbers::ln2);
  return {nll.value * scale + bits_per_dim_offset(Dequantization::minus_one_one), nll.std_error * scale};
}

ModeCounts mode_counts(const GaussianMixture& mixture, ConstMatrixRef samples, int threads) {
  const Index K = mixture.components(), n = samples.cols();
  const auto assignment = assign_modes(mixture, samples, threads);
  ModeCounts r;
  r.counts = Vector::Zero(K);
  for (const Index k : assignment.component) r.counts(k) += 1;
  r.expected = static_cast<double>(n) * mixture.weights();
  r.chi2 = ((r.counts - r.expected).array().square() / r.expected.array()).sum();
  r.dof = static_cast<int>(K - 1);
  r.p_value = r.dof > 0 ? boost::math::gamma_q(0.5 * r.dof, 0.5 * r.chi2) : 1.0;
  r.chi2_se = std::sqrt(2.0 * (r.dof + 2.0 * std::max(r.chi2 - r.dof, 0.0)));
  // Component k is covered when counts_k >= t_k = w_k n / 2. P(covered) at the observed share q: the normal
  // approximation to Binomial(n, q) with continuity correction.
  double covered = 0, variance = 0;
  for (Index k = 0; k < K; ++k) {
    const double threshold = std::ceil(0.5 * r.expected(k)), q = r.counts(k) / static_cast<double>(n);
    if (r.counts(k) >= threshold) covered += 1;
    const double sd = std::sqrt(n * q * (1 - q));
    const double p =
        sd > 0 ? normal_cdf((n * q - threshold + 0.5) / sd) : (r.counts(k) >= threshold ? 1.0 : 0.0);
    variance += p * (1 - p);
  }
  r.coverage = covered / static_cast<double>(K);
  r.coverage_se = std::sqrt(variance) / static_cast<double>(K);
  return r;
}

double gaussian_w2(const Vector& m1, const Matrix& s1, const Vector& m0, const Matrix& s0) {
  check_gaussians(m1, s1, m0, s0);
  Matrix root, inverse_root;
  spd_roots(s0, root, inverse_root);
  const Matrix middle = root * (0.5 * (s1 + s1.transpose())) * root;
  Matrix middle_root, unused;
  psd_sqrt(middle, middle_root, unused);
  return (m1 - m0).squaredNorm() + (inverse_root * (middle_root - s0)).squaredNorm();
}

double gaussian_kl(const Vector& m1, const Matrix& s1, const Vector& m0, const Matrix& s0) {
  check_gaussians(m1, s1, m0, s0);
  Matrix root, inverse_root;
  spd_roots(s0, root, inverse_root);
  const Matrix whitened = inverse_root * (0.5 * (s1 + s1.transpose())) * inverse_root;
  const Vector mu = Eigen::SelfAdjointEigenSolver<Matrix>(0.5 * (whitened + whitened.transpose())).eigenvalues();
  if (!(mu.minCoeff() > 0)) return std::numeric_limits<double>::infinity();
  double sum = (inverse_root * (m1 - m0)).squaredNorm();
  for (const double m : mu) sum += (m - 1.0) - std::log1p(m - 1.0);
  return 0.5 * sum;
}

MetricValue paired_u_statistic(ConstMatrixRef x, ConstMatrixRef y, QuadraticKernel kernel, double bandwidth,
                               int threads) {
  if (x.rows() != y.rows() || x.cols() != y.cols() || x.cols() < 4)
    throw InputError(
        fmt::format("paired sets must have one shape with at least 4 points: {} x {} and {} x {}", x.rows(),
                    x.cols(), y.rows(), y.cols()));
  return u_statistic(quadratic_sums(x, y, {kernel}, bandwidth, threads)[0]);
}

std::vector<std::string> requested_metrics(const MetricsOptions& options, bool mixture_reference) {
  options.validate();
  const auto wanted = options.metrics.empty() ? default_metrics(mixture_reference) : options.metrics;
  if (!mixture_reference)
    for (const auto& name : wanted)
      if (contains(mixture_metric_names(), name))
        throw ConfigError(
            fmt::format("--metrics = {}: needs a mixture reference (a built-in name or MIXTURE.json); with "
                        "reference points "
                        "only, choose from {}",
                        name, fmt::join(default_metrics(false), ", ")));
  std::vector<std::string> out;
  for (const auto& name : metric_names())
    if (contains(wanted, name)) out.push_back(name);
  for (const auto& name : image_metric_names())
    if (contains(wanted, name)) out.push_back(name);
  return out;
}

std::vector<std::pair<std::string, MetricValue>> evaluate_metrics(ConstMatrixRef samples,
                                                                  ConstMatrixRef reference,
                                                                  const GaussianMixture* mixture,
                                                                  const MetricsOptions& options) {
  const auto wanted = requested_metrics(options, mixture != nullptr);
  if (samples.rows() != reference.rows())
    throw InputError(fmt::format("the samples have dimension {} but the reference points {}", samples.rows(),
                                 reference.rows()));
  if (mixture && mixture->dim() != samples.rows())
    throw InputError(
        fmt::format("the samples have dimension {} but the mixture {}", samples.rows(), mixture->dim()));
  require_points(samples, "samples");
  require_points(reference, "reference");
  auto want = [&](const char* name) { return contains(wanted, name); };

  const int threads = options.threads;
  std::vector<std::pair<std::string, MetricValue>> out;
  auto put = [&](const std::string& name, MetricValue v) { out.emplace_back(name, v); };

  if (want("sliced_w2")) put("sliced_w2", sliced_w2(samples, reference, options));
  if (want("mmd2") || want("energy")) {
    const Index N = quadratic_count(samples.cols(), reference.cols(), options);
    const Matrix xs = gather(samples, subsample_indices(samples.cols(), N, options.seed, stream_samples));
    const Matrix ys =
        gather(reference, subsample_indices(reference.cols(), N, options.seed, stream_reference));
    std::vector<QuadraticKernel> kernels;
    if (want("mmd2")) kernels.push_back(QuadraticKernel::gaussian);
    if (want("energy")) kernels.push_back(QuadraticKernel::energy);
    const double h = want("mmd2") ? resolve_mmd_bandwidth(reference, samples.cols(), options) : 0.0;
    const auto sums = quadratic_sums(xs, ys, kernels, h, threads);
    for (std::size_t k = 0; k < kernels.size(); ++k)
      put(kernels[k] == QuadraticKernel::gaussian ? "mmd2" : "energy", u_statistic(sums[k]));
  }
  if (want("frechet") || want("mean_error") || want("cov_error")) {
    const Moments mx = moments(samples), my = moments(reference);
    if (want("frechet")) put("frechet", frechet(mx, my));
    if (want("mean_error")) put("mean_error", mean_error(mx, my));
    if (want("cov_error")) put("cov_error", cov_error(mx, my));
  }
  if (want("nll") || want("nll_gap") || want("bpd")) {
    const MetricValue s = mixture_nll(*mixture, samples, threads);
    if (want("nll")) put("nll", s);
    if (want("bpd")) put("bpd", bits_per_dim(s, samples.rows()));
    if (want("nll_gap")) {
      const MetricValue r = nll(log_density(*mixture, reference, threads));
      put("nll_gap", {s.value - r.value, std::hypot(s.std_error, r.std_error)});
    }
  }
  if (want("mode_coverage") || want("mode_chi2")) {
    const ModeCounts c = mode_counts(*mixture, samples, threads);
    if (want("mode_coverage")) put("mode_coverage", {c.coverage, c.coverage_se});
    if (want("mode_chi2")) put("mode_chi2", {c.chi2, c.chi2_se});
  }
  if (want("fd_fmnist")) put("fd_fmnist", fd_fmnist(samples, options));
  return out;
}

}  // namespace scoresde
