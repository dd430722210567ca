// An SDE's coefficients at many times at once: the times of a batch whose columns each have their own (an adaptive
// solver with a step size per sample, solvers/ode.hpp). Free functions over Sde (core/sde.hpp), dispatching in
// core/sde.cpp to the VP and sub-VP SDEs' loops and to the scalar methods for the others.
#pragma once

#include "core/sde.hpp"

namespace scoresde {

// f[j] = sde.f(t[j]) and g[j] = sde.g(t[j]) for j < n, the same values (without a virtual call per time for VP and
// sub-VP).
void sde_f_and_g(const Sde& sde, const double* t, Index n, double* f, double* g);

// alpha[j] = alpha_t and sigma[j] = sigma_t at t = t[j], j < n. Element j depends on t[j] alone, never on n or j: one
// time alone gets the bits it gets in any batch. VP and sub-VP take exp and expm1 from libmvec on whole vector
// registers (core/vector_math.hpp), within a few ulp of sde.alpha() and sde.sigma(); the other SDEs return those.
// A score model whose columns may have different times computes its per-time parameters from these, also for one
// time, so that a column's result does not depend on whether its batch-mates share its time.
void sde_alpha_sigma(const Sde& sde, const double* t, Index n, double* alpha, double* sigma);

}  // namespace scoresde
