#include "models/data_scaling.hpp"

#include <algorithm>

namespace scoresde {

DataScaling DataScaling::fit(const Matrix& x) {
  DataScaling s;
  s.mean = x.rowwise().mean();
  const Matrix centred = x.colwise() - s.mean;
  s.scale = (centred.array().square().rowwise().sum() / std::max<double>(1.0, static_cast<double>(x.cols()))).sqrt();
  for (Index i = 0; i < s.scale.size(); ++i)
    if (!(s.scale(i) > 0)) s.scale(i) = 1.0;
  return s;
}

Matrix DataScaling::to_standard(const Matrix& x) const {
  return ((x.colwise() - mean).array().colwise() / scale.array()).matrix();
}

Matrix DataScaling::to_original(const Matrix& y) const {
  return ((y.array().colwise() * scale.array()).matrix().colwise() + mean);
}

}  // namespace scoresde
