#include <doctest/doctest.h>

#include "core/sde.hpp"
#include "models/datasets.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;

TEST_CASE("every sampler runs end to end on eight_gaussians") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  for (const std::string name : {"euler_maruyama", "reverse_diffusion", "ancestral", "pc", "ode"}) {
    SamplerOptions o;
    o.sampler = name;
    o.steps = 20;
    const auto r = sample(*sde, model, o, 10);
    CHECK(r.samples.allFinite());
    CHECK(r.samples.cols() == 10);
  }
}
