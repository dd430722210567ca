// Data with a closed form: built-in distributions and mixture files.
//   eight_gaussians  8 equal-weight isotropic Gaussians, std 0.5, means at radius 4 on angles 2 pi k / 8
//   gaussian         standard normal in dimension --dim
//   FILE.json        {"weights": [...], "means": [[...], ...], "covariances": [[[...]], ...]}  or "stds": [...]
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/gaussian_mixture.hpp"

namespace scoresde {

std::vector<std::string> builtin_data_names();

// A built-in name or a path ending in .json. `dim` is the dimension asked for with --dim (0: not given); it is
// required to match a file's dimension and sets the dimension of `gaussian`. Errors name the option or the file,
// the field and what is wrong.
std::shared_ptr<const GaussianMixture> load_data(const std::string& name_or_file, Index dim);

GaussianMixture parse_mixture_json(const std::string& text, const std::string& source);

}  // namespace scoresde
