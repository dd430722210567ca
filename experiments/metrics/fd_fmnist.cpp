#include "experiments/metrics/fd_fmnist.hpp"
#include "models/idx.hpp"

#include <fmt/format.h>
#include <omp.h>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "models/checkpoint.hpp"

namespace scoresde {
namespace {

// Counter word b of CounterRng(seed, NoisePurpose::metric) for the bootstrap (metrics.cpp uses 1 to 3).
constexpr std::uint64_t stream_bootstrap = 4;
// Images per block of the feature computation: fixed, so that a feature does not depend on the thread count.
constexpr Index feature_block = 512;

int thread_count(int threads) {
  return threads > 0 ? threads : omp_get_max_threads();
}

Matrix npz_matrix(const std::map<std::string, NpyArray>& arrays, const std::string& path, const std::string& key,
                  Index rows, Index cols) {
  const auto it = arrays.find(key);
  if (it == arrays.end())
    throw InputError(
        fmt::format("{}: no array {} (a classifier of examples/fashion_mnist/train_classifier.py has "
                    "W1, b1, W2, b2, W3, b3)",
                    path, key));
  const auto& a = it->second;
  const bool matrix = cols > 0;
  const bool ok = matrix ? a.shape.size() == 2 && Index(a.shape[0]) == rows && Index(a.shape[1]) == cols
                         : a.shape.size() == 1 && Index(a.shape[0]) == rows;
  if (!ok) {
    std::string shape;
    for (const auto s : a.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(s);
    throw InputError(fmt::format("{}: array {} has shape ({}); expected ({})", path, key, shape,
                                 matrix ? fmt::format("{}, {}", rows, cols) : fmt::format("{}", rows)));
  }
  // (out, in) in C order -> an out x in column-major matrix.
  Matrix m(rows, matrix ? cols : 1);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < m.cols(); ++c) m(r, c) = a.data[r * m.cols() + c];
  return m;
}

// Runs `layer` on blocks of feature_block columns, in parallel over the blocks.
template <class Layer>
Matrix by_blocks(ConstMatrixRef images, Index out_rows, int threads, const Layer& layer) {
  if (images.rows() != fmnist_pixels)
    throw InputError(
        fmt::format("the Fashion-MNIST classifier takes 28 x 28 images ({} values per point); these "
                    "points have {}",
                    fmnist_pixels, images.rows()));
  const Index n = images.cols(), blocks = (n + feature_block - 1) / feature_block;
  Matrix out(out_rows, n);
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads))
  for (Index b = 0; b < blocks; ++b) {
    const Index first = b * feature_block, count = std::min(feature_block, n - first);
    out.middleCols(first, count) = layer(images.middleCols(first, count));
  }
  return out;
}

// Sample mean and covariance (denominator n - 1) of the columns.
std::pair<Vector, Matrix> mean_and_cov(ConstMatrixRef x) {
  const Vector mean = x.rowwise().mean();
  const Matrix centred = x.colwise() - mean;
  Matrix cov = Matrix::Zero(x.rows(), x.rows());
  cov.selfadjointView<Eigen::Lower>().rankUpdate(centred, 1.0 / static_cast<double>(x.cols() - 1));
  cov.triangularView<Eigen::StrictlyUpper>() = cov.transpose();
  return {mean, cov};
}

std::mutex cache_mutex;

std::shared_ptr<const FmnistClassifier> cached_classifier(const std::string& path) {
  static std::map<std::string, std::shared_ptr<const FmnistClassifier>> cache;
  const std::lock_guard lock(cache_mutex);
  auto& entry = cache[path];
  if (!entry) entry = std::make_shared<const FmnistClassifier>(load_fmnist_classifier(path));
  return entry;
}

}  // namespace

Matrix FmnistClassifier::features(ConstMatrixRef images, int threads) const {
  return by_blocks(images, w2.rows(), threads, [this](const auto& x) {
    const Matrix h1 = ((w1 * x).colwise() + b1).cwiseMax(0.0);
    return Matrix(((w2 * h1).colwise() + b2).cwiseMax(0.0));
  });
}

Matrix FmnistClassifier::logits(ConstMatrixRef images, int threads) const {
  return by_blocks(images, w3.rows(), threads, [this](const auto& x) {
    const Matrix h1 = ((w1 * x).colwise() + b1).cwiseMax(0.0);
    const Matrix f = ((w2 * h1).colwise() + b2).cwiseMax(0.0);
    return Matrix((w3 * f).colwise() + b3);
  });
}

FmnistClassifier load_fmnist_classifier(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw InputError(
        fmt::format("{}: no such file (the classifier of fd_fmnist: train it with "
                    "examples/fashion_mnist/train_classifier.py)",
                    path));
  const auto arrays = read_npz(path);
  FmnistClassifier c;
  c.path = path;
  c.w1 = npz_matrix(arrays, path, "W1", 512, fmnist_pixels);
  c.b1 = npz_matrix(arrays, path, "b1", 512, 0);
  c.w2 = npz_matrix(arrays, path, "W2", fmnist_feature_dim, 512);
  c.b2 = npz_matrix(arrays, path, "b2", fmnist_feature_dim, 0);
  c.w3 = npz_matrix(arrays, path, "W3", 10, fmnist_feature_dim);
  c.b3 = npz_matrix(arrays, path, "b3", 10, 0);
  return c;
}

namespace {

// Where the committed assets are: the source tree's assets/fashion_mnist, then the installed copy.
std::vector<std::filesystem::path> fmnist_asset_directories() {
  std::vector<std::filesystem::path> dirs;
#ifdef SCORESDE_FMNIST_ASSETS_SOURCE
  dirs.emplace_back(SCORESDE_FMNIST_ASSETS_SOURCE);
#endif
#ifdef SCORESDE_FMNIST_ASSETS_INSTALL
  dirs.emplace_back(SCORESDE_FMNIST_ASSETS_INSTALL);
#endif
  return dirs;
}

}  // namespace

std::string find_fmnist_asset(const std::string& name) {
  for (const auto& dir : fmnist_asset_directories())
    if (std::filesystem::exists(dir / name)) return (dir / name).string();
  return "";
}

std::string default_fmnist_classifier_path() {
  if (const char* env = std::getenv("SCORESDE_FMNIST_CLASSIFIER"); env && *env) return env;
  if (auto found = find_fmnist_asset("classifier.npz"); !found.empty()) return found;
  const auto dirs = fmnist_asset_directories();
  throw ConfigError(fmt::format(
      "--fd-classifier: no classifier file given, and none found at {} (or "
      "$SCORESDE_FMNIST_CLASSIFIER); train one with "
      "examples/fashion_mnist/train_classifier.py",
      dirs.empty() ? std::string("assets/fashion_mnist/classifier.npz") : (dirs.front() / "classifier.npz").string()));
}

Matrix read_fmnist_idx_images(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw InputError(
        fmt::format("{}: no such file (Fashion-MNIST: install the Debian package dataset-fashion-mnist)", path));
  const IdxArray raw = read_idx(path, 3);  // models/idx.hpp: named errors for a bad header, gzip or length
  if (raw.dims[1] != 28 || raw.dims[2] != 28)
    throw InputError(fmt::format("{}: images of {} x {} pixels; expected 28 x 28", path, raw.dims[1], raw.dims[2]));
  const Index n = raw.dims[0];
  Matrix images(fmnist_pixels, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < fmnist_pixels; ++i)
      images(i, j) = scaled_pixel(raw.data[static_cast<std::size_t>(j * fmnist_pixels + i)]);
  return images;
}

FrechetReference frechet_reference(const Vector& mean, const Matrix& cov, Index count) {
  if (cov.rows() != mean.size() || cov.cols() != mean.size())
    throw InputError(
        fmt::format("a reference mean of dimension {} with a {} x {} covariance", mean.size(), cov.rows(), cov.cols()));
  FrechetReference r;
  r.mean = mean;
  r.cov = 0.5 * (cov + cov.transpose());
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(r.cov);
  r.cov_root =
      eig.eigenvectors() * eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().asDiagonal() * eig.eigenvectors().transpose();
  r.cov_trace = r.cov.trace();
  r.count = count;
  return r;
}

FrechetReference frechet_reference(ConstMatrixRef points) {
  if (points.cols() < 2) throw InputError(fmt::format("the reference has {} points; at least 2 needed", points.cols()));
  const auto [mean, cov] = mean_and_cov(points);
  return frechet_reference(mean, cov, points.cols());
}

double frechet_to_reference(const Vector& mean, const Matrix& cov, const FrechetReference& reference) {
  const Index d = reference.mean.size();
  if (mean.size() != d || cov.rows() != d || cov.cols() != d)
    throw InputError(fmt::format("features of dimension {}, the reference's {}", mean.size(), d));
  Matrix middle = reference.cov_root * cov * reference.cov_root;
  middle = 0.5 * (middle + middle.transpose());
  const Vector lambda = Eigen::SelfAdjointEigenSolver<Matrix>(middle, Eigen::EigenvaluesOnly).eigenvalues();
  const double cross = lambda.cwiseMax(0.0).cwiseSqrt().sum();
  return std::max(0.0, (mean - reference.mean).squaredNorm() + cov.trace() + reference.cov_trace - 2.0 * cross);
}

MetricValue frechet_bootstrap(ConstMatrixRef points, const FrechetReference& reference, int replicates,
                              std::uint64_t seed, int threads) {
  const Index n = points.cols();
  if (n < 2) throw InputError(fmt::format("fd_fmnist: {} points; at least 2 needed", n));
  if (replicates < 2) throw ConfigError(fmt::format("--fd-replicates = {}: must be >= 2", replicates));
  if (points.rows() != reference.mean.size())
    throw InputError(fmt::format("features of dimension {}, the reference's {}", points.rows(), reference.mean.size()));
  MetricValue r;
  {
    const auto [mean, cov] = mean_and_cov(points);
    r.value = frechet_to_reference(mean, cov, reference);
  }
  const CounterRng rng(seed, NoisePurpose::metric);
  Eigen::ArrayXd values(replicates);
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads))
  for (int b = 0; b < replicates; ++b) {
    std::vector<double> u(static_cast<std::size_t>(n));
    rng.uniforms(static_cast<std::uint64_t>(b), stream_bootstrap, 0, u.data(), n);
    Matrix draw(points.rows(), n);
    for (Index j = 0; j < n; ++j) {
      // u in (0, 1]: ceil(u n) - 1 is uniform on 0 .. n - 1.
      const Index i = std::clamp<Index>(static_cast<Index>(std::ceil(u[j] * static_cast<double>(n))) - 1, 0, n - 1);
      draw.col(j) = points.col(i);
    }
    const auto [mean, cov] = mean_and_cov(draw);
    values(b) = frechet_to_reference(mean, cov, reference);
  }
  r.std_error = std::sqrt((values - values.mean()).square().sum() / static_cast<double>(replicates - 1));
  return r;
}

std::shared_ptr<const FrechetReference> fmnist_test_reference(const std::string& classifier_path,
                                                              const std::string& data_dir, int threads) {
  static std::map<std::pair<std::string, std::string>, std::shared_ptr<const FrechetReference>> cache;
  const auto classifier = cached_classifier(classifier_path);
  {
    const std::lock_guard lock(cache_mutex);
    const auto it = cache.find({classifier_path, data_dir});
    if (it != cache.end()) return it->second;
  }
  const Matrix images =
      read_fmnist_idx_images((std::filesystem::path(data_dir) / "t10k-images-idx3-ubyte.gz").string());
  auto reference = std::make_shared<const FrechetReference>(frechet_reference(classifier->features(images, threads)));
  const std::lock_guard lock(cache_mutex);
  return cache.try_emplace({classifier_path, data_dir}, std::move(reference)).first->second;
}

MetricValue fd_fmnist(ConstMatrixRef images, const MetricsOptions& options) {
  if (images.rows() != fmnist_pixels)
    throw InputError(
        fmt::format("fd_fmnist: needs Fashion-MNIST images (28 x 28 = {} values per point); the samples "
                    "have {}",
                    fmnist_pixels, images.rows()));
  const std::string path = options.fd_classifier.empty() ? default_fmnist_classifier_path() : options.fd_classifier;
  const auto reference = fmnist_test_reference(path, options.fd_data_dir, options.threads);
  const Matrix features = cached_classifier(path)->features(images, options.threads);
  return frechet_bootstrap(features, *reference, options.fd_replicates, options.seed, options.threads);
}

}  // namespace scoresde
