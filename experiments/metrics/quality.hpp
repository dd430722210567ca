// Sample quality against a Gaussian mixture with known density. Each statistic has its sampling error, so that
// two samplers can be told apart from noise (issue "Experiment drivers" extends this into the metric suite).
#pragma once

#include "models/gaussian_mixture.hpp"

namespace scoresde {

struct MixtureQuality {
  double nll = 0, nll_se = 0;            // mean of -log p_0(x) over the samples, and its standard error
  double modes_covered = 0;              // share of components that are the nearest (highest-responsibility) one
                                         // for at least 10% of the samples their weight predicts
  double in_mode = 0, in_mode_se = 0;    // share of samples within Mahalanobis distance 3 of their component
};

MixtureQuality mixture_quality(const GaussianMixture& mixture, ConstMatrixRef samples);

}  // namespace scoresde
