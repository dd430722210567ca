// What a model predicts, and the conversions between the predictions, in one place (as diffusers'
// convert_model_output and k-diffusion's to_d): samplers ask for the form their update is written in, whatever the
// model returns. With the perturbation kernel x_t = alpha_t x_0 + sigma_t z (core/sde.hpp):
//
//   score   s     = grad_x log p_t(x)
//   noise   eps   = -sigma_t s                        E[z | x_t]   (Ho et al. 2020; Song et al. 2021, eq. 41)
//   data    x0    = (x + sigma_t^2 s) / alpha_t       E[x_0 | x_t] (Tweedie's formula; Efron 2011)
//   v             = alpha_t eps - sigma_t x0          (Salimans & Ho 2022, sec. 4), only where alpha_t^2 +
//                                                      sigma_t^2 = 1 (VP): there x0 = alpha x - sigma v and
//                                                      eps = sigma x + alpha v
//
// All four are affine in each other given x, so a conversion is exact up to rounding and costs one pass over the
// batch. sigma_t > 0 is required (every grid here ends at t_N > 0).
#pragma once

#include "core/option_table.hpp"
#include "core/types.hpp"

namespace scoresde {

enum class Prediction { score, noise, data, v };
template <>
struct EnumNames<Prediction> {
  static constexpr std::string_view what = "prediction";
  static constexpr std::array<std::pair<Prediction, std::string_view>, 4> values{
      {{Prediction::score, "score"}, {Prediction::noise, "noise"}, {Prediction::data, "data"}, {Prediction::v, "v"}}};
};

// The coefficients of the kernel at one time.
struct KernelCoefficients {
  double alpha;
  double sigma;
};

// out = the prediction `to` of the same model output `value`, given as `from`, at states x (d x n, one column per
// sample) whose kernel coefficients are `k`. out may alias value (not x). ConfigError for v where alpha^2 + sigma^2
// differs from 1 by more than 1e-12, or sigma <= 0.
void convert_prediction(Prediction from, Prediction to, ConstMatrixRef x, ConstMatrixRef value, KernelCoefficients k,
                        MatrixRef out);

}  // namespace scoresde
