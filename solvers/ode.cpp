// Probability-flow ODE solvers on Boost.Odeint (Song et al. 2021, eq. 13, App. D.2):
//
//   dx/dt = f(t) x - g(t)^2 s(x, t) / 2,   integrated from T down to eps.
//
// euler   odeint::euler, order 1, 1 evaluation per step
// rk4     odeint::runge_kutta4, order 4, 4 evaluations per step
// dopri5  odeint::runge_kutta_dopri5, order 5 with an embedded order-4 error estimate, first-same-as-last:
//         6 evaluations per accepted step. The error is odeint's default_error_checker, the max norm over the state of
//         |err| / (atol + rtol (|x| + |h| |dx/dt|)); with --ode-control chunk the state is a whole chunk (as a solver
//         run on a whole batch does; the reference code with scipy's RK45 uses an RMS norm over its batch), and the
//         driver's StepSizeController accepts or rejects. With --ode-control sample and batched, BatchedDopri5
//         (below) gives every sample its own controller, one sample at a time or a chunk's samples together.
#include "solvers/ode.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/errors.hpp"
#include "core/sde_batch.hpp"
#include "solvers/driver.hpp"
#include "solvers/odeint_eigen.hpp"
#include "solvers/registry.hpp"
#include "solvers/step_control.hpp"

namespace scoresde {
namespace odeint = boost::numeric::odeint;
namespace {

// The probability-flow vector field for odeint: dxdt = f x - g^2 s / 2, evaluated through the step context so
// that evaluations are counted.
struct ProbabilityFlow {
  StepContext* c;
  void operator()(const Matrix& x, Matrix& dxdt, double t) const {
    c->score(x, t, c->score_buf);
    if (Index j = first_non_finite(c->score_buf); j >= 0)
      throw NumericalError(
          fmt::format("the score turned non-finite for sample {} at t = {:.6g}", c->first_sample + j, t),
          c->first_sample + j, -1, t);
    c->reverse.drift(x, c->score_buf, t, dxdt);
  }
};

template <class Stepper>
class FixedStepOde final : public StatefulPredictor<Stepper> {
 public:
  explicit FixedStepOde(StepperInfo info) : info_(info) {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return true; }

 protected:
  Stepper initial_state(Index, Index) const override { return Stepper(); }
  std::optional<double> advance(StepContext& c, Stepper& stepper, Matrix& x, const StepPosition& at,
                                bool) const override {
    stepper.do_step(ProbabilityFlow{&c}, x, at.t, at.t_next - at.t);
    return std::nullopt;
  }

 private:
  StepperInfo info_;
};

using Euler = odeint::euler<Matrix, double, Matrix, double, odeint::vector_space_algebra>;
using Rk4 = odeint::runge_kutta4<Matrix, double, Matrix, double, odeint::vector_space_algebra>;
using Dopri5 = odeint::runge_kutta_dopri5<Matrix, double, Matrix, double, odeint::vector_space_algebra>;
using ErrorChecker = odeint::default_error_checker<double, odeint::vector_space_algebra, odeint::default_operations>;

// dopri5's state: odeint's stepper, the derivative at the current state (first-same-as-last: the last stage of an
// accepted step is the first of the next), and the proposal of the step under trial.
struct Dopri5State {
  Dopri5 stepper;
  Matrix dxdt, x_old, dxdt_new, x_err;
  bool have_dxdt = false;  // dxdt holds f(x, t) for the current state
  bool pending = false;    // the last step's proposal is in x (its old state in x_old) and not yet rejected
};

class Dopri5Ode final : public StatefulPredictor<Dopri5State> {
 public:
  Dopri5Ode(double atol, double rtol) : checker_(atol, rtol) {}
  const StepperInfo& info() const override {
    static const StepperInfo i{"dopri5",
                               "Dormand-Prince 5(4) on dx/dt = f x - g^2 s / 2, error-controlled",
                               "Song et al. 2021, eq. 13; Dormand & Prince 1980; odeint::runge_kutta_dopri5",
                               5.0,
                               5.0,
                               6,
                               false};
    return i;
  }
  bool probability_flow() const override { return true; }
  int error_order() const override { return 4; }

 protected:
  Dopri5State initial_state(Index dim, Index cols) const override {
    Dopri5State s;
    s.dxdt.resize(dim, cols);
    s.x_old.resize(dim, cols);
    s.dxdt_new.resize(dim, cols);
    s.x_err.resize(dim, cols);
    return s;
  }

  std::optional<double> advance(StepContext& c, Dopri5State& s, Matrix& x, const StepPosition& at,
                                bool) const override {
    const ProbabilityFlow flow{&c};
    if (s.pending) s.dxdt.swap(s.dxdt_new);  // the previous step was accepted
    if (!s.have_dxdt) flow(x, s.dxdt, at.t);
    s.have_dxdt = true;
    s.x_old.swap(x);
    const double h = at.t_next - at.t;
    s.stepper.do_step(flow, s.x_old, s.dxdt, at.t, x, s.dxdt_new, h, s.x_err);
    s.pending = true;
    return checker_.error(s.stepper.algebra(), s.x_old, s.dxdt, s.x_err, h);
  }

  void undo(Dopri5State& s, Matrix& x) const override {
    s.x_old.swap(x);
    s.pending = false;
  }

 private:
  ErrorChecker checker_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------- BatchedDopri5

namespace {

// Dormand & Prince's coefficients as odeint's runge_kutta_dopri5 computes them (the same divisions, so the same
// doubles): the stage times a, the stage weights b, the order-5 weights c and the error weights dc = c - c*.
namespace dp {
constexpr double a2 = 1.0 / 5, a3 = 3.0 / 10, a4 = 4.0 / 5, a5 = 8.0 / 9;
constexpr double b21 = 1.0 / 5;
constexpr double b31 = 3.0 / 40, b32 = 9.0 / 40;
constexpr double b41 = 44.0 / 45, b42 = -56.0 / 15, b43 = 32.0 / 9;
constexpr double b51 = 19372.0 / 6561, b52 = -25360.0 / 2187, b53 = 64448.0 / 6561, b54 = -212.0 / 729;
constexpr double b61 = 9017.0 / 3168, b62 = -355.0 / 33, b63 = 46732.0 / 5247, b64 = 49.0 / 176, b65 = -5103.0 / 18656;
constexpr double c1 = 35.0 / 384, c3 = 500.0 / 1113, c4 = 125.0 / 192, c5 = -2187.0 / 6784, c6 = 11.0 / 84;
constexpr double dc1 = c1 - 5179.0 / 57600, dc3 = c3 - 7571.0 / 16695, dc4 = c4 - 393.0 / 640,
                 dc5 = c5 - -92097.0 / 339200, dc6 = c6 - 187.0 / 2100, dc7 = -1.0 / 40;
}  // namespace dp

enum SlotState : char { running = 0, finished = 1, failed = 2 };

}  // namespace

BatchedDopri5::BatchedDopri5(const ReverseSde& reverse, const ScoreModel& model, double atol, double rtol, Index dim,
                             Index cols)
    : reverse_(reverse),
      model_(model),
      atol_(atol),
      rtol_(rtol),
      x_(dim, cols),
      k1_(dim, cols),
      k2_(dim, cols),
      k3_(dim, cols),
      k4_(dim, cols),
      k5_(dim, cols),
      k6_(dim, cols),
      k7_(dim, cols),
      x_stage_(dim, cols),
      x_new_(dim, cols),
      x_err_(dim, cols),
      score_(dim, cols),
      dt_elements_(dim * cols),
      f_elements_(dim * cols),
      c_elements_(dim * cols),
      times_(cols),
      f_(cols),
      g_(cols),
      t_(cols),
      h_(cols),
      dt_(cols),
      error_(cols),
      column_(static_cast<std::size_t>(cols)),
      accepted_(static_cast<std::size_t>(cols)),
      rejections_(static_cast<std::size_t>(cols)),
      state_(static_cast<std::size_t>(cols)) {}

void BatchedDopri5::fail(Index slot, Index step, double time, std::string what) {
  state_[slot] = SlotState::failed;
  const Index sample = first_sample_ + column_[slot];
  if (!failure_ || sample < failure_->sample) failure_ = SampleFailure{sample, step, time, std::move(what)};
}

void BatchedDopri5::swap_slots(Index a, Index b) {
  x_.col(a).swap(x_.col(b));
  k1_.col(a).swap(k1_.col(b));
  std::swap(t_(a), t_(b));
  std::swap(h_(a), h_(b));
  std::swap(column_[a], column_[b]);
  std::swap(accepted_[a], accepted_[b]);
  std::swap(rejections_[a], rejections_[b]);
  std::swap(state_[a], state_[b]);
}

namespace {

// out[s D + i] = in[s] for s < m, i < D, with D known to the compiler so that the copy vectorises.
template <int D>
void spread_fixed(const double* __restrict in, Index m, double* __restrict out) {
  for (Index s = 0; s < m; ++s)
    for (int i = 0; i < D; ++i) out[s * D + i] = in[s];
}

}  // namespace

void BatchedDopri5::spread(const Vector& per_slot, Index m, Vector& per_element) const {
  const Index d = x_.rows();
  const double* in = per_slot.data();
  double* out = per_element.data();
  switch (d) {
    case 1:
      return spread_fixed<1>(in, m, out);
    case 2:
      return spread_fixed<2>(in, m, out);
    case 3:
      return spread_fixed<3>(in, m, out);
    default:
      for (Index s = 0; s < m; ++s) std::fill_n(out + s * d, d, in[s]);
  }
}

void BatchedDopri5::flow(const Matrix& xs, Index m, Matrix& k) {
  model_.score(xs.leftCols(m), times_.head(m), score_.leftCols(m));
  sde_f_and_g(reverse_.sde(), times_.data(), m, f_.data(), g_.data());
  if (first_non_finite(score_, m) >= 0)
    for (Index s = 0; s < m; ++s)
      if (state_[s] == SlotState::running && !score_.col(s).allFinite())
        fail(s, accepted_[s], times_(s),
             fmt::format("the score turned non-finite for sample {} at t = {:.6g}", first_sample_ + column_[s],
                         times_(s)));
  // ReverseSde::drift with c = 1/2, as one loop over the slots' elements (see run()): k = f x - (c g g) s.
  for (Index s = 0; s < m; ++s) g_(s) = 0.5 * g_(s) * g_(s);
  spread(f_, m, f_elements_);
  spread(g_, m, c_elements_);
  const double *f = f_elements_.data(), *c = c_elements_.data(), *x = xs.data(), *score = score_.data();
  double* out = k.data();
  for (Index e = 0, size = m * xs.rows(); e < size; ++e) out[e] = f[e] * x[e] - c[e] * score[e];
}

std::optional<SampleFailure> BatchedDopri5::run(Index first_sample, double t0, double t_end, MatrixRef x, VectorRef nfe,
                                                Observer* observer) {
  const Index n = x.cols();
  eigen_assert(n <= x_.cols() && x.rows() == x_.rows());
  first_sample_ = first_sample;
  failure_.reset();
  nfe.setZero();
  if (!StepSizeController::more_to_go(t0, t_end)) return std::nullopt;
  const StepSizeController control(5, 4);  // dopri5's orders, as the driver gives Dopri5Ode
  const double h0 = StepSizeController::clamp(t0, t_end, control.initial_step(t0, t_end));
  for (Index s = 0; s < n; ++s) {
    x_.col(s) = x.col(s);
    column_[s] = s;
    t_(s) = t0;
    h_(s) = h0;
    accepted_[s] = 0;
    rejections_[s] = 0;
    state_[s] = SlotState::running;
  }
  // The derivative at the start, which --ode-control sample evaluates before its first trial step.
  times_.head(n).setConstant(t0);
  flow(x_, n, k1_);
  nfe.head(n).array() += 1;

  Index m = n;
  for (;;) {
    // Finished and failed columns leave the batch: the last running slot takes their place.
    for (Index s = 0; s < m;) {
      if (state_[s] == SlotState::running) {
        ++s;
      } else {
        swap_slots(s, m - 1);
        --m;
      }
    }
    if (m == 0) break;

    // One trial step for every slot, from t to t + h. The step is (t + h) - t, as Dopri5Ode computes it from the
    // driver's StepPosition; the controller and the time advance with h itself.
    // The stage combinations are plain loops over the m slots' elements as one array (slot s holds elements
    // [s d, (s + 1) d)), each element with its slot's dt beside it in dt_elements_, not Eigen expressions on column
    // blocks: Eigen peels elements off a block to reach an aligned address, so which elements take its scalar or
    // vector path would depend on the column's position in the work matrix, and with FMA contraction the two paths
    // can round differently. A plain loop gives every element the same operations wherever it lies (the compiler's
    // vector body and scalar tail compute the same expression), and one loop over the whole batch vectorises where
    // a loop per column of d = 2 elements could not. A weight dt b is formed per element, the same product as once
    // per column.
    using namespace dp;
    const Index d = x_.rows(), size = m * d;
    for (Index s = 0; s < m; ++s) dt_(s) = (t_(s) + h_(s)) - t_(s);
    spread(dt_, m, dt_elements_);
    const double* dt = dt_elements_.data();
    const double *y = x_.data(), *k1 = k1_.data(), *k2 = k2_.data(), *k3 = k3_.data(), *k4 = k4_.data(),
                 *k5 = k5_.data(), *k6 = k6_.data(), *k7 = k7_.data();
    double *stage = x_stage_.data(), *proposal = x_new_.data();
    const auto stage_times = [&](double a) {
      for (Index s = 0; s < m; ++s) times_(s) = t_(s) + dt_(s) * a;
    };
    for (Index e = 0; e < size; ++e) stage[e] = 1.0 * y[e] + (dt[e] * b21) * k1[e];
    stage_times(a2);
    flow(x_stage_, m, k2_);
    for (Index e = 0; e < size; ++e) stage[e] = 1.0 * y[e] + (dt[e] * b31) * k1[e] + (dt[e] * b32) * k2[e];
    stage_times(a3);
    flow(x_stage_, m, k3_);
    for (Index e = 0; e < size; ++e)
      stage[e] = 1.0 * y[e] + (dt[e] * b41) * k1[e] + (dt[e] * b42) * k2[e] + (dt[e] * b43) * k3[e];
    stage_times(a4);
    flow(x_stage_, m, k4_);
    for (Index e = 0; e < size; ++e)
      stage[e] =
          1.0 * y[e] + (dt[e] * b51) * k1[e] + (dt[e] * b52) * k2[e] + (dt[e] * b53) * k3[e] + (dt[e] * b54) * k4[e];
    stage_times(a5);
    flow(x_stage_, m, k5_);
    for (Index e = 0; e < size; ++e)
      stage[e] = 1.0 * y[e] + (dt[e] * b61) * k1[e] + (dt[e] * b62) * k2[e] + (dt[e] * b63) * k3[e] +
                 (dt[e] * b64) * k4[e] + (dt[e] * b65) * k5[e];
    for (Index s = 0; s < m; ++s) times_(s) = t_(s) + dt_(s);
    flow(x_stage_, m, k6_);
    for (Index e = 0; e < size; ++e)
      proposal[e] = 1.0 * y[e] + (dt[e] * c1) * k1[e] + (dt[e] * c3) * k3[e] + (dt[e] * c4) * k4[e] +
                    (dt[e] * c5) * k5[e] + (dt[e] * c6) * k6[e];
    flow(x_new_, m, k7_);
    for (Index s = 0; s < m; ++s) nfe(column_[s]) += 6;

    // odeint's default_error_checker on each column alone: max |err| / (atol + rtol (|x| + |dt| |dx/dt|)); a NaN
    // anywhere makes the error NaN (accepted, then reported as a non-finite state, as odeint's loop does).
    double* err = x_err_.data();
    for (Index e = 0; e < size; ++e) {
      const double error = (dt[e] * dc1) * k1[e] + (dt[e] * dc3) * k3[e] + (dt[e] * dc4) * k4[e] +
                           (dt[e] * dc5) * k5[e] + (dt[e] * dc6) * k6[e] + (dt[e] * dc7) * k7[e];
      err[e] = std::abs(error) / (atol_ + rtol_ * (1.0 * std::abs(y[e]) + (1.0 * std::abs(dt[e])) * std::abs(k1[e])));
    }
    for (Index s = 0; s < m; ++s) {
      double error = 0;
      bool nan = false;
      for (Index i = s * d; i < (s + 1) * d; ++i) {
        nan = nan || std::isnan(err[i]);
        error = std::max(error, err[i]);
      }
      error_(s) = nan ? std::numeric_limits<double>::quiet_NaN() : error;
    }

    // Accept or reject each column's step, as the driver's loop does for a sample alone.
    for (Index s = 0; s < m; ++s) {
      if (state_[s] != SlotState::running) continue;
      const double error = error_(s);
      const Index sample = first_sample_ + column_[s];
      if (!control.accepts(error)) {
        h_(s) = control.after_reject(h_(s), error);
        if (++rejections_[s] == StepSizeController::max_rejections)
          fail(s, accepted_[s], t_(s),
               fmt::format("dopri5 rejected {} step sizes in a row at accepted step {} (t = {:.6g}, last step size "
                           "{:.3g}): the tolerances cannot be met there",
                           rejections_[s], accepted_[s] + 1, t_(s), h_(s)));
        continue;
      }
      const Index k = accepted_[s]++;
      rejections_[s] = 0;
      t_(s) += h_(s);
      h_(s) = control.after_accept(h_(s), error);
      x_.col(s) = x_new_.col(s);
      k1_.col(s) = k7_.col(s);  // first same as last
      if (!x_.col(s).allFinite()) {
        fail(s, k, t_(s),
             fmt::format("sample {} turned non-finite at accepted step {} (t = {:.6g})", sample, k + 1, t_(s)));
        continue;
      }
      if (observer) observer->on_step(sample, 1, k, t_(s), x_.col(s));
      if (StepSizeController::more_to_go(t_(s), t_end)) {
        h_(s) = StepSizeController::clamp(t_(s), t_end, h_(s));
      } else {
        x.col(column_[s]) = x_.col(s);
        state_[s] = SlotState::finished;
      }
    }
  }
  return failure_;
}

std::unique_ptr<Predictor> make_ode_euler(const SamplerOptions&) {
  return std::make_unique<FixedStepOde<Euler>>(
      StepperInfo{"euler", "x + h [f x - g^2 s / 2]", "Song et al. 2021, eq. 13; odeint::euler", 1.0, 1.0, 1});
}

std::unique_ptr<Predictor> make_ode_rk4(const SamplerOptions&) {
  return std::make_unique<FixedStepOde<Rk4>>(StepperInfo{"rk4", "classical Runge-Kutta on dx/dt = f x - g^2 s / 2",
                                                         "Song et al. 2021, eq. 13; odeint::runge_kutta4", 4.0, 4.0,
                                                         4});
}

std::unique_ptr<Predictor> make_ode_dopri5(const SamplerOptions& options) {
  return std::make_unique<Dopri5Ode>(options.resolved_atol(), options.resolved_rtol());
}

}  // namespace scoresde
