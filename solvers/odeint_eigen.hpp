// Boost.Odeint with Eigen matrices as states. The external/eigen header supplies the vector-space algebra and
// resizing for Eigen types (without it an Eigen state compiles and then fails at run time). Eigen 3.4 gave
// matrices begin()/end(), which makes odeint's generic copy treat a matrix as a range of the wrong shape; the
// specialisation below copies by assignment instead.
#pragma once

#include <boost/numeric/odeint.hpp>
#include <boost/numeric/odeint/external/eigen/eigen.hpp>

#include "core/types.hpp"

namespace boost::numeric::odeint {

template <>
struct copy_impl<scoresde::Matrix, scoresde::Matrix> {
  static void copy(const scoresde::Matrix& from, scoresde::Matrix& to) { to = from; }
};

}  // namespace boost::numeric::odeint
