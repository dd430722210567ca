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

// A batch's coefficients as one flat array, so that element-wise work vectorises across samples instead of along
// a column of d (often 2) entries. Requires contiguous columns, which every batch buffer in the library has.
inline Eigen::Map<Eigen::ArrayXd> flat(MatrixRef m) {
  eigen_assert(m.outerStride() == m.rows() || m.cols() <= 1);
  return {m.data(), m.size()};
}
inline Eigen::Map<const Eigen::ArrayXd> flat(ConstMatrixRef m) {
  eigen_assert(m.outerStride() == m.rows() || m.cols() <= 1);
  return {m.data(), m.size()};
}
inline Eigen::Map<Eigen::ArrayXd> flat(Matrix& m) { return {m.data(), m.size()}; }
inline Eigen::Map<const Eigen::ArrayXd> flat(const Matrix& m) { return {m.data(), m.size()}; }

}  // namespace scoresde
