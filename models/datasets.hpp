// Data with a closed form: built-in distributions and mixture files.
//   eight_gaussians  8 equal-weight isotropic Gaussians, std 0.5, means at radius 4 on angles 2 pi k / 8
//   gaussian         standard normal in dimension --dim
//   FILE.json        {"weights": [...], "means": [[...], ...], "covariances": [[[...]], ...]}  or "stds":
//   [...]; or a header with "format": "scoresde-mixture-eig-1" and its arrays in a .npy beside it, as
//   `scoresde fit-mixture` writes (models/image_mixture.hpp)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"

namespace scoresde {

std::vector<std::string> builtin_data_names();

// A built-in name or a path ending in .json. `dim` is the dimension asked for with --dim (0: not given); it
// is required to match a file's dimension and sets the dimension of `gaussian`. Errors name the option or the
// file, the field and what is wrong.
std::shared_ptr<const GaussianMixture> load_data(const std::string& name_or_file, Index dim);
// A mixture file's weights need not sum to 1 ([1, 2] is a 1:2 mixture; GaussianMixture normalises them): when their
// sum S has |S - 1| > 1e-9, a notice (core/errors.hpp) names the file and S.
void note_weights_normalised(const std::string& source, const Vector& weights);

GaussianMixture parse_mixture_json(const std::string& text, const std::string& source);

// Training data, as a d x n batch:
//   eight_gaussians, gaussian (--dim)   exact draws from the mixture (load_data)
//   FILE.json                           draws from a mixture file
//   two_moons     sklearn's make_moons(noise = 0.1), scaled by 2 and shifted by (-1, -0.2) (as FFJORD)
//   swiss_roll    (tau cos tau, tau sin tau) / 5 + N(0, 0.2^2 I), tau = 1.5 pi (1 + 2 u)   (sklearn / FFJORD)
//   checkerboard  uniform on the 8 black squares of side 2 of a 4 x 4 board on [-4, 4]^2 (FFJORD)
//   rings         4 concentric circles of radii 0.75, 1.5, 2.25, 3, equally likely, + N(0, 0.08^2 I) (FFJORD)
//   fashion_mnist[:train|:test][:class=K]   Fashion-MNIST's 60,000 training (or 10,000 test) images, 28 x 28 grey,
//                 flattened row-major to d = 784 and scaled to [-1, 1] (v / 127.5 - 1), all of them or those of
//                 class K; read from the Debian package dataset-fashion-mnist (models/idx.hpp)
//   FILE.npy      an (n, d) float64 or float32 array: the data themselves, in any dimension; image arrays (n, H, W)
//                 or (n, C, H, W) are flattened row-major to d = C H W
//   FILE.csv      n rows of d comma-separated numbers; an optional header row of names; '#' starts a comment
// Built-in sets and mixtures draw `count` samples keyed by (seed, index) (CounterRng, NoisePurpose::data);
// files give all their rows and ignore count. `dim` (0: not given) is checked against the data. InputError
// naming the file, the row and the problem for a bad file.
std::vector<std::string> training_data_names();
Matrix load_training_data(const std::string& name_or_file, Index count, std::uint64_t seed, Index dim);
// The dimension load_training_data(name_or_file, count, seed, dim) gives, with the same errors; for fashion_mnist
// without scaling its images (a study's validation asks only the dimension).
Index training_data_dimension(const std::string& name_or_file, Index dim);
Matrix read_samples_csv(const std::string& path);
// True for the names of training_data_names() and every fashion_mnist selection (fashion_mnist:class=3, ...):
// built-in data, no file.
bool is_builtin_training_data(const std::string& name);
// True for fashion_mnist and its well-formed selections (models/idx.hpp).
bool is_fashion_mnist(const std::string& name);
// True for the sources whose exact density is known (built-in mixtures and .json files).
bool has_exact_mixture(const std::string& name_or_file);
// name_or_file when it names a file, "" for a built-in data set (training_data_names()): the file a result records
// among its inputs (core/file_fingerprint.hpp).
std::string data_source_file(const std::string& name_or_file);

}  // namespace scoresde
