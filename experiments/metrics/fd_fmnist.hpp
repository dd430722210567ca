// fd_fmnist: the Frechet distance between generated Fashion-MNIST images and the 10,000 test images in the feature
// space of a small classifier (the FID of Heusel et al. 2017, with a network trained on the data at hand in place
// of Inception; docs/images.md, "Feature space and fd_fmnist").
//
//   features   f(x) = relu(W2 relu(W1 x + b1) + b2), 256-D: the penultimate layer of the MLP 784-512-256-10 of
//              examples/fashion_mnist/train_classifier.py (weights in assets/fashion_mnist/classifier.npz),
//              x the image flattened row by row, pixels in [-1, 1]. Evaluated in double precision from the stored
//              float32 weights, so that it agrees with PyTorch's float64 forward pass to rounding.
//   distance   FD = |m_X - m_T|^2 + tr(S_X + S_T - 2 (S_T^{1/2} S_X S_T^{1/2})^{1/2}), X the generated images'
//              features, T the test images' (means m, covariances S with denominator n - 1). S_T^{1/2} comes from
//              one symmetric eigendecomposition of S_T (eigenvalues clamped at 0: ReLU features may have a singular
//              covariance) and the trace of the inner root is the sum of the square roots of the (clamped)
//              eigenvalues of the symmetric S_T^{1/2} S_X S_T^{1/2}: no non-symmetric matrix square root.
//   std error  bootstrap over the generated images, the test images held fixed (they are the common reference
//              of every run): B replicates, each the FD of n images drawn with replacement from the n generated
//              ones; the standard error is the replicates' standard deviation. Replicate b draws its indices
//              from CounterRng(seed, NoisePurpose::metric) at counter (b, stream 4, j), so the value does not
//              depend on the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/types.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/idx.hpp"

namespace scoresde {

inline constexpr Index fmnist_pixels = 784;  // 28 x 28
inline constexpr Index fmnist_feature_dim = 256;
inline constexpr const char* fmnist_default_data_dir = fashion_mnist_package_directory;  // models/idx.hpp

// The classifier of examples/fashion_mnist/train_classifier.py: W1 (512 x 784), W2 (256 x 512), W3 (10 x 256) as
// nn.Linear holds them, and the biases.
struct FmnistClassifier {
  Matrix w1, w2, w3;
  Vector b1, b2, b3;
  std::string path;
  // The 256 features (the penultimate layer, after its ReLU) of the images, 784 x n -> 256 x n.
  Matrix features(ConstMatrixRef images, int threads = 0) const;
  // The 10 logits, 784 x n -> 10 x n.
  Matrix logits(ConstMatrixRef images, int threads = 0) const;
};

// Reads the classifier from an .npz (numpy.savez: W1, b1, W2, b2, W3, b3). InputError naming the file and the key
// for a missing file, a missing array or one of the wrong shape.
FmnistClassifier load_fmnist_classifier(const std::string& path);
// The classifier file used when none is given: $SCORESDE_FMNIST_CLASSIFIER, else assets/fashion_mnist/classifier.npz
// of the source tree this program was built from, else the installed copy (share/scoresde/fashion_mnist/). ConfigError
// naming --fd-classifier when none exists.
std::string default_fmnist_classifier_path();
// A committed Fashion-MNIST asset (assets/fashion_mnist/NAME: classifier.npz, unet.pt) of the source tree this
// program was built from, else its installed copy; empty when neither exists.
std::string find_fmnist_asset(const std::string& name);

// The images of an IDX file of unsigned bytes (gzipped or not), (n, 28, 28), as a 784 x n batch scaled to [-1, 1]
// (scaled_pixel). InputError naming the file for a missing file, and read_idx's errors (models/idx.hpp) for a
// truncated or malformed one.
Matrix read_fmnist_idx_images(const std::string& path);

// A reference set's feature moments, with S^{1/2} precomputed.
struct FrechetReference {
  Vector mean;
  Matrix cov;
  Matrix cov_root;  // S^{1/2}, eigenvalues clamped at 0
  double cov_trace = 0;
  Index count = 0;
};
FrechetReference frechet_reference(const Vector& mean, const Matrix& cov, Index count = 0);
// From points (d x n, n >= 2): sample mean and covariance (denominator n - 1).
FrechetReference frechet_reference(ConstMatrixRef points);
// |m - m_T|^2 + tr(S + S_T - 2 (S_T^{1/2} S S_T^{1/2})^{1/2}), clamped at 0. InputError for mismatched dimensions.
double frechet_to_reference(const Vector& mean, const Matrix& cov, const FrechetReference& reference);
// The Frechet distance of the points (d x n) to the reference, with its bootstrap standard error (B = replicates
// >= 2; see the top of this file). InputError for fewer than 2 points or mismatched dimensions.
MetricValue frechet_bootstrap(ConstMatrixRef points, const FrechetReference& reference, int replicates,
                              std::uint64_t seed, int threads = 0);

// The test images' features and their moments, for one classifier file and data directory; computed once per
// process (later calls with the same pair return the same object).
std::shared_ptr<const FrechetReference> fmnist_test_reference(const std::string& classifier_path,
                                                              const std::string& data_dir, int threads = 0);

// fd_fmnist of images (784 x n, pixels in [-1, 1]) against the test images: options.fd_classifier (empty: the
// default file), options.fd_data_dir, options.fd_replicates, options.seed, options.threads. InputError when the
// images are not 784-dimensional or a file is missing.
MetricValue fd_fmnist(ConstMatrixRef images, const MetricsOptions& options);

}  // namespace scoresde
