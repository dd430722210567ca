// The sampler interface. The driver (solvers/driver.hpp) walks the time grid t_0 = T > t_1 > ... > t_N = eps
// and, at step k, calls the corrector at t_k and then the predictor from t_k to t_{k+1}. A sampler only says
// how one step is taken; it receives its noise (a Brownian increment, corrector normals) from the step
// context and evaluates the score through it, so every evaluation is counted. Options are fixed at construction;
// what a method keeps between steps (the history of a multistep method) is its typed per-chunk state.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "core/model_output.hpp"
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
  // True when, for a score affine in x (the exact score of Gaussian data), a fixed-step update is affine in the state
  // and in its noise jointly, with coefficients that depend on the grid alone, and draws all its noise from the
  // Brownian path (c.brownian): then the output of a Gaussian prior draw is Gaussian, and solvers/gaussian_law.hpp
  // computes its law exactly by propagating probes. False for the Langevin correctors (langevin's step size depends on
  // |z| / |s|; both draw their normals from c.corrector_noise, not from the path) and for adaptive methods, whose steps
  // depend on the state. The generic test (tests/test_gaussian_law.cpp) checks the claim of every registered stepper,
  // and gaussian_law checks affinity on every call.
  bool affine = true;
};

// Index of the first of the first `valid` columns of x holding a non-finite value, or -1. One vectorised pass
// in the usual all-finite case.
inline Index first_non_finite(const Matrix& x, Index valid) {
  // x * 0 is 0 for a finite x and NaN otherwise, and a sum with a NaN term is NaN: Eigen's packet reduction is one
  // vectorised pass, where allFinite() tests element by element.
  if ((Eigen::Map<const Eigen::ArrayXd>(x.data(), x.rows() * valid) * 0.0).sum() == 0.0) return -1;
  for (Index j = 0; j < valid; ++j)
    if (!x.col(j).allFinite()) return j;
  return -1;
}
inline Index first_non_finite(const Matrix& x) {
  return first_non_finite(x, x.cols());
}

// Where a step lies: the whole grid t_0 > t_1 > ... > t_N and the step's index k. A fixed-step method goes from
// t = grid[k] to t_next = grid[k + 1]; an adaptive one (whose grid holds only the two ends it integrates between)
// gets the trial step's own ends and the number k of steps it has accepted so far. Multistep methods read the
// earlier times off the grid, and every method knows whether its step is the first or the last.
struct StepPosition {
  std::span<const double> grid;
  Index k;
  double t, t_next;
  Index steps() const { return static_cast<Index>(grid.size()) - 1; }
  bool first() const { return k == 0; }
  bool last() const { return k + 1 == steps(); }
  Index steps_left() const { return steps() - k; }  // this one included
  // The order a multistep method of order `order` takes at this step: min(order, k + 1), as only k + 1 model outputs
  // exist (warm-up), and with lower_order_final on a grid of fewer than 10 steps at most steps_left() (the rule of
  // DPM-Solver's lower_order_final, Lu et al. 2022b; docs/samplers.md compares the reference codes' rules).
  int multistep_order(int order, bool lower_order_final) const {
    Index p = std::min<Index>(order, k + 1);
    if (lower_order_final && steps() < 10) p = std::min(p, steps_left());
    return static_cast<int>(p);
  }
};

// Everything one step needs for one chunk of samples (columns first_sample .. first_sample + cols - 1).
// Owned by the driver; the buffers are allocated once per chunk, never inside the step loop.
class StepContext {
 public:
  StepContext(const Sde& sde, const ScoreModel& model, bool probability_flow, Index first_sample, Index dim, Index cols,
              BrownianPath& brownian, std::uint64_t seed)
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

  // out = the model's output at (x, t) as the prediction `what` (core/model_output.hpp: score, noise eps = -sigma s,
  // data x0 = (x + sigma^2 s) / alpha, v); one evaluation. out may not alias x.
  void predict(Prediction what, ConstMatrixRef x, double t, MatrixRef out) {
    score(x, t, out);
    if (what != Prediction::score)
      convert_prediction(Prediction::score, what, x, out, KernelCoefficients{sde.alpha(t), sde.sigma(t)}, out);
  }

  // The model itself, for a method that evaluates it with one time per column (BatchedDopri5) and counts its own
  // evaluations per column.
  const ScoreModel& model() const { return model_; }

  const Sde& sde;
  ReverseSde reverse;
  Index first_sample;
  BrownianPath& brownian;
  CounterRng corrector_noise;
  Matrix score_buf, drift_buf, noise_buf;
  long long nfe = 0;

 private:
  const ScoreModel& model_;
  Vector times_;
};

// What a predictor keeps between the steps of one chunk: its history (earlier model outputs for multistep methods),
// stage buffers. Made once per chunk by Predictor::make_state, before the step loop.
class StepperState {
 public:
  virtual ~StepperState() = default;
};

// How the driver controls an adaptive method's step size (solvers/step_control.hpp): odeint's default rule (dopri5;
// per chunk or per sample by --ode-control), or the rule of Jolicoeur-Martineau et al. 2021 (ggf), always per sample.
enum class StepSizeRule { odeint, ggf };

// Advances the reverse SDE (or the probability-flow ODE) from at.t to at.t_next < at.t. With noise_free, returns the
// mean of the update without its noise: the final "denoising" step of Song et al. (2021), App. G.
//
// An adaptive method (error_order() > 0) returns the error estimate of its step, scaled so that a value <= 1 meets
// the tolerances; the driver's StepSizeController (solvers/step_control.hpp) accepts the step or calls reject() and
// retries with a smaller one. Fixed-step methods return nothing.
class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual const StepperInfo& info() const = 0;
  // Throws ConfigError when the predictor is not defined for this SDE.
  virtual void check(const Sde&) const {}
  // True for steppers of the probability-flow ODE: the driver then gives the step context the ODE's drift.
  virtual bool probability_flow() const { return false; }
  // The order of the error estimate an adaptive method returns (dopri5: 4); 0 for fixed-step methods.
  virtual int error_order() const { return 0; }
  virtual StepSizeRule step_size_rule() const { return StepSizeRule::odeint; }
  // Called once after an adaptive method's last accepted step when --denoise is on (ggf: its final denoising step).
  virtual void finish(StepContext& /*c*/, Matrix& /*x*/, double /*t_end*/) const {}
  // Called once per chunk, before the step loop; nullptr for a method without state.
  virtual std::unique_ptr<StepperState> make_state(Index /*dim*/, Index /*cols*/) const { return nullptr; }
  virtual std::optional<double> step(StepContext& c, StepperState* state, Matrix& x, const StepPosition& at,
                                     bool noise_free) const = 0;
  // The step just taken was rejected: restore x (and the state) to what they were before it. Adaptive methods only.
  virtual void reject(StepperState* /*state*/, Matrix& /*x*/) const {}
};

// A predictor whose per-chunk state is the type State: it writes initial_state and advance, and sees its own State
// at every step.
template <class State>
class StatefulPredictor : public Predictor {
 public:
  std::unique_ptr<StepperState> make_state(Index dim, Index cols) const final {
    return std::make_unique<Held>(initial_state(dim, cols));
  }
  std::optional<double> step(StepContext& c, StepperState* state, Matrix& x, const StepPosition& at,
                             bool noise_free) const final {
    return advance(c, held(state), x, at, noise_free);
  }
  void reject(StepperState* state, Matrix& x) const final { undo(held(state), x); }

 protected:
  virtual State initial_state(Index dim, Index cols) const = 0;
  virtual std::optional<double> advance(StepContext& c, State& state, Matrix& x, const StepPosition& at,
                                        bool noise_free) const = 0;
  virtual void undo(State& /*state*/, Matrix& /*x*/) const {}

 private:
  struct Held final : StepperState {
    explicit Held(State v) : value(std::move(v)) {}
    State value;
  };
  // The driver hands every step the state that this predictor's make_state made for the chunk.
  static State& held(StepperState* state) { return static_cast<Held*>(state)->value; }
};

// Moves x towards p_t at fixed t by MCMC (Song et al. 2021, sec. 4.2, Algorithms 4 and 5).
class Corrector {
 public:
  virtual ~Corrector() = default;
  virtual const StepperInfo& info() const = 0;
  virtual void correct(StepContext& c, Matrix& x, Index k, double t, double t_next) const = 0;
};

}  // namespace scoresde
