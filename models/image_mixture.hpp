// Class-conditional Gaussian mixtures fitted to labelled images (`scoresde fit-mixture`), and the mixture file
// format that scales to them: a JSON header beside a binary .npy array of the components' eigendecompositions.
//
// The fit. For the classes k = 0 .. K-1, with n_k images x_j of class k:
//     w_k = n_k / sum_l n_l,   mu_k = mean of the x_j,   S_k = (1/n_k) sum_j (x_j - mu_k)(x_j - mu_k)^T  (ML),
// and the covariance is shrunk towards a multiple of the identity with the same trace (Ledoit & Wolf, J. Multivar.
// Anal. 88, 2004, whose target this is; lambda is given, not estimated):
//     S_k(lambda) = (1 - lambda) S_k + lambda (tr S_k / d) I.
// Why this and not S_k + eps I: many of Fashion-MNIST's border pixels are -1 in (nearly) every image of a class, so
// S_k is singular or nearly so and its small eigenvalues are noise; shrinkage is scale-free (lambda is a share, not
// a variance in pixel units), keeps the total variance tr S_k of each class, and shares S_k's eigenvectors, so one
// eigendecomposition S_k = U_k diag(l_k) U_k^T gives the regularised one as
// U_k diag((1 - lambda) l_k + lambda tr S_k / d) U_k^T.
// The smallest variance is then lambda tr S_k / d. The default lambda is chosen by the held-out likelihood
// (docs/images.md).
//
// The file. FILE.json is the header:
//     {"format": "scoresde-mixture-eig-1", "dim": d, "components": K, "weights": [...],
//      "arrays": "FILE.npy", "arrays_sha256": "...", "image_shape": [1, 28, 28], "fit": {...}}
// and FILE.npy beside it (its name is relative to the header's directory) a float64 array of shape (K, d + 2, d):
// [k, 0] is mu_k, [k, 1] the eigenvalues of the regularised S_k, and [k, 2 + i] its i-th unit eigenvector. numpy
// reads it with np.load. "fit" records how the file was made: data, options, class counts, the command, the build.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/option_table.hpp"
#include "core/types.hpp"
#include "models/gaussian_mixture.hpp"

namespace scoresde {

inline constexpr const char* eigen_mixture_format = "scoresde-mixture-eig-1";

struct MixtureFitOptions {
  int components = 10;  // classes 0 .. components - 1, one Gaussian each
  // lambda in (1 - lambda) S + lambda tr(S)/d I; 1e-4 maximises the likelihood of the dequantised test images
  // among 1e-5, 1e-4, 3e-4, 1e-3, ..., 0.3 (docs/images.md)
  double regularization = 1e-4;
  Index max_images = 0;  // use the first max_images images of the split only (0: all of them)
  // Every value against its entry in mixture_fit_option_table(). ConfigError naming the option.
  void validate() const;
};

// The options of `scoresde fit-mixture`, described once (core/option_table.hpp).
const OptionTable<MixtureFitOptions>& mixture_fit_option_table();

struct FittedMixture {
  Vector weights;                    // K, normalised class frequencies
  Matrix means;                      // d x K
  std::vector<Matrix> eigenvectors;  // U_k, d x d, orthonormal columns
  Matrix eigenvalues;                // d x K, of the regularised covariances, ascending
  std::vector<Index> counts;         // n_k
  Vector traces;                     // tr S_k of the unregularised covariances
};

// The fit above from x (d x n) and labels (n); images whose label is >= K are left out. ConfigError (naming
// --components) when a class 0 .. K-1 has fewer than 2 images.
FittedMixture fit_class_mixture(ConstMatrixRef x, const std::vector<int>& labels, const MixtureFitOptions& options);

// The mixture as GaussianMixture holds it (no factorisation: the eigendecompositions are used as they are).
GaussianMixture to_mixture(const FittedMixture& fit);

// Writes header_path (ending in .json) and its arrays file (the same name ending in .npy) as a pair: both complete
// before either is renamed into place; on failure neither remains. `extra` is merged into the header (the "fit"
// record, "image_shape").
void write_eigen_mixture(const std::string& header_path, const FittedMixture& fit, const nlohmann::ordered_json& extra);

// The arrays file a header names, resolved against the header's directory.
std::string eigen_mixture_arrays_path(const std::string& header_path, const nlohmann::json& header);

// Reads a header (already parsed from header_path) and its arrays file. InputError naming the file and the problem: a
// missing or unknown field, a missing arrays file, an arrays file that is truncated, of the wrong shape or type, or
// whose SHA-256 differs from the header's, eigenvectors that are not orthonormal, eigenvalues that are not positive.
GaussianMixture read_eigen_mixture(const nlohmann::json& header, const std::string& header_path);

}  // namespace scoresde
