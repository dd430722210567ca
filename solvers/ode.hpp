// Probability-flow ODE solvers (solvers/ode.cpp): euler, rk4 and the error-controlled dopri5, all run by the driver
// loop (solvers/driver.cpp), dopri5 with its StepSizeController.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "solvers/options.hpp"
#include "solvers/sampler.hpp"

namespace scoresde {

class Observer;

std::unique_ptr<Predictor> make_ode_euler(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_rk4(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_dopri5(const SamplerOptions&);

// Where a sample stopped under --ode-control batched: its index, accepted steps, time and the message.
struct SampleFailure {
  Index sample;
  Index step;
  double time;
  std::string what;
};

// dopri5 on the probability-flow ODE with one step-size controller per column: --ode-control batched runs it on a
// chunk's columns stepped together, --ode-control sample on one column at a time. Every column keeps its own time t
// and step size h; every stage evaluates the score once for all unfinished columns with one time per column, a
// rejected column retries with its smaller h while the others go on, and a column that reaches t_end (or fails)
// leaves the batch, so it is evaluated no more. A column's arithmetic is that of odeint's runge_kutta_dopri5 step,
// its default_error_checker over that column alone and the driver's StepSizeController (the same coefficients,
// expressions and rules as Dopri5Ode under the driver), written as plain loops over the elements of the running
// columns, each element with its column's step size beside it, so that it does not depend on where the column lies
// in memory (Eigen's block expressions peel elements to reach an aligned address, and its scalar and vector paths can
// round differently under FMA contraction). Hence `sample` and `batched` give the same result bit for bit, as long as
// the score model's column j depends only on column j and its time, whatever the batch (ScoreModel's contract). The
// work buffers are sized once, for `cols` columns: nothing is allocated in the step loop.
class BatchedDopri5 {
 public:
  BatchedDopri5(const ReverseSde& reverse, const ScoreModel& model, double atol, double rtol, Index dim, Index cols);

  // Integrates the columns of x (at most `cols`) from t0 down to t_end in place; nfe(j) = the evaluations column j
  // took part in (1 + 6 per trial step, as with --ode-control sample). Column j is sample first_sample + j. Returns
  // the failure of the lowest sample whose score or state turned non-finite or whose step size was rejected
  // StepSizeController::max_rejections times in a row; the other columns run to the end. `observer`, when given, is
  // called after every accepted step of every column with that column alone (valid = 1).
  std::optional<SampleFailure> run(Index first_sample, double t0, double t_end, MatrixRef x, VectorRef nfe,
                                   Observer* observer);

 private:
  // k = f(times) xs - g(times)^2 score(xs, times) / 2 for the first m slots; marks the slots whose score is not finite.
  void flow(const Matrix& xs, Index m, Matrix& k);
  void fail(Index slot, Index step, double time, std::string what);
  // per_element(s d + i) = per_slot(s) for the first m slots and i < d.
  void spread(const Vector& per_slot, Index m, Vector& per_element) const;
  void swap_slots(Index a, Index b);

  const ReverseSde& reverse_;
  const ScoreModel& model_;
  double atol_, rtol_;
  Index first_sample_ = 0;
  // Per slot (slot s holds column column_[s] of x while it is in the batch): the state, the derivative at it
  // (first-same-as-last), the stages of the trial step, its proposal and error.
  Matrix x_, k1_, k2_, k3_, k4_, k5_, k6_, k7_, x_stage_, x_new_, x_err_, score_;
  Vector dt_elements_, f_elements_, c_elements_;  // per element of the first m slots: the slot's dt, f and g^2 / 2
  Vector times_, f_, g_, t_, h_, dt_, error_;  // f_, g_: the SDE's coefficients at times_
  std::vector<Index> column_, accepted_, rejections_;
  std::vector<char> state_;
  std::optional<SampleFailure> failure_;
};

}  // namespace scoresde
