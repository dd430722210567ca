// The data scaling of a trained score model (docs/training.md); the identity for an exact score.
#pragma once

#include "core/types.hpp"

namespace scoresde {

// Per-dimension affine standardisation: y = (x - mean) / scale. Models are trained and sampled on y.
struct DataScaling {
  Vector mean, scale;
  static DataScaling identity(Index d) { return {Vector::Zero(d), Vector::Ones(d)}; }
  static DataScaling fit(const Matrix& x);  // scale = per-dimension std (1 where it is 0)
  Matrix to_standard(const Matrix& x) const;
  Matrix to_original(const Matrix& y) const;
};

}  // namespace scoresde
