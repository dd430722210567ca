// The sampler interface. The driver (solvers/driver.hpp) walks the time grid t_0 = T > t_1 > ... > t_N = eps
// and, at step k, calls the corrector at t_k and then the predictor from t_k to t_{k+1}. A sampler only says
// how one step is taken; it receives its noise (a Brownian increment, corrector normals) from the step
// context and evaluates the score through it, so every evaluation is counted. Steppers are stateless: options
// are fixed at construction, scratch buffers live in the StepContext.
#pragma once

#include <memory>
#include <string_view>

#include "core/noise.hpp"
#include "core/sde.hpp"
#include "models/score_model.hpp"

namespace scoresde {

// The declared properties that generic tests check: a stepper's measured convergence slopes must match these.
struct StepperInfo {
  std::string_view name;
  std::string_view summary;    // the update, as in the file's header block
  std::string_view reference;  // paper and equation
  double strong_order;         // pathwise, for the additive-noise reverse SDEs here; 0 when not applicable
  double weak_order;           // in distribution; 0 when not applicable
  int evals_per_step;          // score evaluations per step (per corrector iteration for correctors)
};

// Index of the first of the first `valid` columns of x holding a non-finite value, or -1. One vectorised pass
// in the usual all-finite case.
inline Index first_non_finite(const Matrix& x, Index valid) {
  if (Eigen::Map<const Eigen::ArrayXd>(x.data(), x.rows() * valid).allFinite()) return -1;
  for (Index j = 0; j < valid; ++j)
    if (!x.col(j).allFinite()) return j;
  return -1;
}
inline Index first_non_finite(const Matrix& x) {
  return first_non_finite(x, x.cols());
}

// Per-chunk state a stepper keeps between steps (for example an odeint stepper's stage buffers).
class StepperScratch {
 public:
  virtual ~StepperScratch() = default;
};

// Everything one step needs for one chunk of samples (columns first_sample .. first_sample + cols - 1).
// Owned by the driver; the buffers are allocated once per chunk, never inside the step loop.
class StepContext {
 public:
  StepContext(const Sde& sde, const ScoreModel& model, bool probability_flow, Index first_sample, Index dim,
              Index cols, BrownianPath& brownian, std::uint64_t seed)
      : sde(sde),
        reverse(sde, probability_flow),
        first_sample(first_sample),
        brownian(brownian),
        corrector_noise(seed, NoisePurpose::corrector),
        score_buf(dim, cols),
        drift_buf(dim, cols),
        noise_buf(dim, cols),
        model_(model),
        times_(cols) {}

  // out = score(x, t) for every column; counts one evaluation (NFE) for the chunk.
  void score(ConstMatrixRef x, double t, MatrixRef out) {
    times_.setConstant(t);
    model_.score(x, times_, out);
    ++nfe;
  }

  const Sde& sde;
  ReverseSde reverse;
  Index first_sample;
  BrownianPath& brownian;
  CounterRng corrector_noise;
  Matrix score_buf, drift_buf, noise_buf;
  std::unique_ptr<StepperScratch> scratch;  // from Predictor::make_scratch
  long long nfe = 0;

 private:
  const ScoreModel& model_;
  Vector times_;
};

// Advances the reverse SDE (or the probability-flow ODE) from t to t_next < t. With noise_free, returns the
// mean of the update without its noise: the final "denoising" step of Song et al. (2021), App. G.
class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual const StepperInfo& info() const = 0;
  // Throws ConfigError when the predictor is not defined for this SDE.
  virtual void check(const Sde&) const {}
  // True for steppers of the probability-flow ODE: the driver then gives the step context the ODE's drift.
  virtual bool probability_flow() const { return false; }
  // Called once per chunk, before the step loop.
  virtual std::unique_ptr<StepperScratch> make_scratch(Index /*dim*/, Index /*cols*/) const {
    return nullptr;
  }
  virtual void step(StepContext& c, Matrix& x, Index k, double t, double t_next, bool noise_free) const = 0;
};

// Moves x towards p_t at fixed t by MCMC (Song et al. 2021, sec. 4.2, Algorithms 4 and 5).
class Corrector {
 public:
  virtual ~Corrector() = default;
  virtual const StepperInfo& info() const = 0;
  virtual void correct(StepContext& c, Matrix& x, Index k, double t, double t_next) const = 0;
};

}  // namespace scoresde
