// Probability-flow ODE solvers (solvers/ode.cpp): euler, rk4 and the error-controlled dopri5, all run by the driver
// loop (solvers/driver.cpp), dopri5 with its StepSizeController.
#pragma once

#include "solvers/options.hpp"
#include "solvers/sampler.hpp"

namespace scoresde {

std::unique_ptr<Predictor> make_ode_euler(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_rk4(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_dopri5(const SamplerOptions&);

}  // namespace scoresde
