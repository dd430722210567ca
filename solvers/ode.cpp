// Probability-flow ODE solvers on Boost.Odeint (Song et al. 2021, eq. 13, App. D.2):
//
//   dx/dt = f(t) x - g(t)^2 s(x, t) / 2,   integrated from T down to eps.
//
// euler   odeint::euler, order 1, 1 evaluation per step
// rk4     odeint::runge_kutta4, order 4, 4 evaluations per step
// dopri5  odeint::runge_kutta_dopri5, order 5 with an embedded order-4 error estimate, first-same-as-last:
//         6 evaluations per accepted step. The error is odeint's default_error_checker, the max norm over the state of
//         |err| / (atol + rtol (|x| + |h| |dx/dt|)); with --ode-control chunk the state is a whole chunk (as a solver
//         run on a whole batch does; the reference code with scipy's RK45 uses an RMS norm over its batch), with
//         --ode-control sample the driver runs each sample alone. The driver's StepSizeController accepts or rejects.
#include "solvers/ode.hpp"

#include <fmt/format.h>
#include <cmath>

#include "core/errors.hpp"
#include "solvers/odeint_eigen.hpp"
#include "solvers/registry.hpp"

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
