// Shared array types. A batch of states is a d x n matrix: one column per sample, so that a score network's
// layers are single matrix products and the column of sample i is contiguous in memory.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace scoresde {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;  // column-major, d x n
using Vector = Eigen::Matrix<double, Eigen::Dynamic, 1>;
using MatrixRef = Eigen::Ref<Matrix>;
using ConstMatrixRef = Eigen::Ref<const Matrix>;
using VectorRef = Eigen::Ref<Vector>;
using ConstVectorRef = Eigen::Ref<const Vector>;
using Index = Eigen::Index;

}  // namespace scoresde
