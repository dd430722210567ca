// Probability-flow ODE solvers on Boost.Odeint (Song et al. 2021, eq. 13, App. D.2):
//
//   dx/dt = f(t) x - g(t)^2 s(x, t) / 2,   integrated from T down to eps.
//
// euler   odeint::euler, order 1, 1 evaluation per step
// rk4     odeint::runge_kutta4, order 4, 4 evaluations per step
// dopri5  odeint::runge_kutta_dopri5 with error control (--rtol, --atol), order 5(4), first-same-as-last:
//         6 evaluations per accepted step. Odeint measures the error with the max norm over the state; with
//         --ode-control chunk the state is a whole chunk (as a solver run on a whole batch does, the reference
//         code with scipy's RK45 uses an RMS norm over its batch), with --ode-control sample each sample has its
//         own step sizes.
// Fixed-step methods are predictors in the driver's loop; dopri5 runs through integrate_adaptive below.
#pragma once

#include "solvers/options.hpp"
#include "solvers/sampler.hpp"

namespace scoresde {

class Observer;

// Integrates the probability-flow ODE for the chunk x from T to eps with dopri5. nfe_per_column(j) receives the
// number of score evaluations column j took part in. With per-sample control only the first `valid` columns are
// integrated (the others only fill the chunk for per-chunk control). Throws NumericalError naming the sample and time
// where a state or score turns non-finite. `observer`, when given, is called after every accepted step
// (solvers/driver.hpp): with the chunk (first_sample, valid, x) under per-chunk control, with each sample's own column
// (first_sample + j, 1, column) under per-sample control.
void integrate_adaptive_chunk(const Sde& sde, const ScoreModel& model, const SamplerOptions& options,
                              Index first_sample, Index valid, double T, double eps, Matrix& x,
                              VectorRef nfe_per_column, Observer* observer = nullptr);

}  // namespace scoresde
