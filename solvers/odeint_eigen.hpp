// Boost.Odeint with Eigen matrices as states. The external/eigen header supplies the vector-space algebra and
// resizing for Eigen types (without it an Eigen state compiles and then fails at run time). Eigen 3.4 gave
// matrices begin()/end(), which makes odeint's generic copy treat a matrix as a range of the wrong shape; the
// specialisations below copy by assignment instead (for vectors too, which also resizes).
#pragma once

#include <boost/numeric/odeint.hpp>
#include <boost/numeric/odeint/external/eigen/eigen.hpp>

#include "core/types.hpp"

namespace boost::numeric::odeint {

template <>
struct copy_impl<scoresde::Matrix, scoresde::Matrix> {
  static void copy(const scoresde::Matrix& from, scoresde::Matrix& to) { to = from; }
};

template <>
struct copy_impl<scoresde::Vector, scoresde::Vector> {
  static void copy(const scoresde::Vector& from, scoresde::Vector& to) { to = from; }
};

}  // namespace boost::numeric::odeint
