#include "core/model_output.hpp"

#include <cmath>

#include "core/errors.hpp"

namespace scoresde {

namespace {

void check(Prediction p, KernelCoefficients k) {
  if (!(k.sigma > 0) || !(k.alpha > 0))
    throw ConfigError(fmt::format("prediction conversion at alpha = {}, sigma = {}: needs alpha > 0 and sigma > 0",
                                  k.alpha, k.sigma));
  if (p == Prediction::v && std::abs(k.alpha * k.alpha + k.sigma * k.sigma - 1.0) > 1e-12)
    throw ConfigError(fmt::format("--parameterization = v: defined only where alpha_t^2 + sigma_t^2 = 1 (vp); here "
                                  "alpha^2 + sigma^2 = {}",
                                  k.alpha * k.alpha + k.sigma * k.sigma));
}

// Every prediction is affine in (x, eps): conversions go through the noise prediction eps.
struct Affine {
  double x, value;
};

// eps = c.x x + c.value value, for a value given as `from`.
Affine noise_from(Prediction from, KernelCoefficients k) {
  switch (from) {
    case Prediction::score: return {0.0, -k.sigma};                  // eps = -sigma s
    case Prediction::noise: return {0.0, 1.0};                       // eps
    case Prediction::data: return {1.0 / k.sigma, -k.alpha / k.sigma};  // eps = (x - alpha x0) / sigma
    case Prediction::v: return {k.sigma, k.alpha};                   // eps = sigma x + alpha v
  }
  return {0.0, 1.0};
}

// value = c.x x + c.value eps, for a value wanted as `to`.
Affine from_noise(Prediction to, KernelCoefficients k) {
  switch (to) {
    case Prediction::score: return {0.0, -1.0 / k.sigma};               // s = -eps / sigma
    case Prediction::noise: return {0.0, 1.0};
    case Prediction::data: return {1.0 / k.alpha, -k.sigma / k.alpha};  // x0 = (x - sigma eps) / alpha
    case Prediction::v: return {-k.sigma / k.alpha, 1.0 / k.alpha};     // v = alpha eps - sigma x0 = (eps - sigma x) / alpha
  }
  return {0.0, 1.0};
}

}  // namespace

void convert_prediction(Prediction from, Prediction to, ConstMatrixRef x, ConstMatrixRef value, KernelCoefficients k,
                        MatrixRef out) {
  check(from, k);
  check(to, k);
  if (from == to) {
    if (out.data() != value.data()) out = value;
    return;
  }
  const Affine in = noise_from(from, k), back = from_noise(to, k);
  // out = back.x x + back.value (in.x x + in.value value)
  const double cx = back.x + back.value * in.x, cv = back.value * in.value;
  if (cx == 0.0) {
    out = cv * value;
  } else {
    out = cx * x + cv * value;
  }
}

}  // namespace scoresde
