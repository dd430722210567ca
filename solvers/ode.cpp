#include "solvers/ode.hpp"

#include <fmt/format.h>
#include <cmath>

#include "core/errors.hpp"
#include "solvers/driver.hpp"
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
struct OdeScratch final : StepperScratch {
  Stepper stepper;
};

template <class Stepper>
class FixedStepOde final : public Predictor {
 public:
  explicit FixedStepOde(StepperInfo info) : info_(info) {}
  const StepperInfo& info() const override { return info_; }
  bool probability_flow() const override { return true; }
  std::unique_ptr<StepperScratch> make_scratch(Index, Index) const override {
    return std::make_unique<OdeScratch<Stepper>>();
  }
  void step(StepContext& c, Matrix& x, Index, double t, double t_next, bool) const override {
    auto& stepper = static_cast<OdeScratch<Stepper>*>(c.scratch.get())->stepper;
    stepper.do_step(ProbabilityFlow{&c}, x, t, t_next - t);
  }

 private:
  StepperInfo info_;
};

using Euler = odeint::euler<Matrix, double, Matrix, double, odeint::vector_space_algebra>;
using Rk4 = odeint::runge_kutta4<Matrix, double, Matrix, double, odeint::vector_space_algebra>;
using Dopri5 = odeint::runge_kutta_dopri5<Matrix, double, Matrix, double, odeint::vector_space_algebra>;

}  // namespace

std::unique_ptr<Predictor> make_ode_euler(const SamplerOptions&) {
  return std::make_unique<FixedStepOde<Euler>>(StepperInfo{
      "euler", "x + h [f x - g^2 s / 2]", "Song et al. 2021, eq. 13; odeint::euler", 1.0, 1.0, 1});
}

std::unique_ptr<Predictor> make_ode_rk4(const SamplerOptions&) {
  return std::make_unique<FixedStepOde<Rk4>>(
      StepperInfo{"rk4", "classical Runge-Kutta on dx/dt = f x - g^2 s / 2",
                  "Song et al. 2021, eq. 13; odeint::runge_kutta4", 4.0, 4.0, 4});
}

void integrate_adaptive_chunk(const Sde& sde, const ScoreModel& model, const SamplerOptions& options,
                              Index first_sample, Index valid, double T, double eps, Matrix& x,
                              VectorRef nfe_per_column, Observer* observer) {
  const Index d = x.rows();
  const double dt0 = -(T - eps) / 100.0;
  // Brownian noise is never drawn by the ODE; the context still wants a path, so give it one that is never
  // used.
  auto unused = make_brownian_path(NoiseKind::independent, 0, T, first_sample, d, 1);
  auto solve = [&](Index first, Index count, Matrix& state) {
    StepContext c(sde, model, /*probability_flow=*/true, first, d, state.cols(), *unused, options.seed);
    auto stepper = odeint::make_controlled(options.atol, options.rtol, Dopri5());
    // Odeint calls this at the start and after every accepted step; the driver's observer sees the accepted steps,
    // numbered 0, 1, ... as on the fixed-step path. It only reads the state.
    Index calls = 0;
    const auto observe = [&](const Matrix& state_now, double t) {
      if (observer && calls > 0) observer->on_step(first, count, calls - 1, t, state_now);
      ++calls;
    };
    odeint::integrate_adaptive(stepper, ProbabilityFlow{&c}, state, T, eps, dt0, observe);
    if (Index j = first_non_finite(state); j >= 0)
      throw NumericalError(fmt::format("sample {} turned non-finite", first + j), first + j, -1, eps);
    return c.nfe;
  };
  if (options.ode_control == OdeControl::chunk) {
    nfe_per_column.setConstant(static_cast<double>(solve(first_sample, valid, x)));
    return;
  }
  Matrix column(d, 1);
  nfe_per_column.setZero();
  for (Index j = 0; j < valid; ++j) {
    column = x.col(j);
    nfe_per_column(j) = static_cast<double>(solve(first_sample + j, 1, column));
    x.col(j) = column;
  }
}

}  // namespace scoresde
