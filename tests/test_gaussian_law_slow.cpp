// The exact output law against 10^6 samples of the same sampler: the mean's coordinates and the covariance's entries
// within 4 standard errors, on a 3-D Gaussian with full covariance, 10 steps (few enough that the output law is far
// from p_0, so that the check can fail: the law's distance to p_0 is checked to be many standard errors).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>

#include "core/sde.hpp"
#include "gaussian_law_cases.hpp"
#include "solvers/driver.hpp"
#include "solvers/registry.hpp"

using namespace scoresde;

TEST_CASE(
    "the exact law of euler_maruyama, ancestral, reverse_diffusion, ddim, dpmpp_2m (and the stochastic samplers "
    "where registered) matches 10^6 samples") {
  const auto mixture = scoresde::testing::full_covariance_gaussian();
  SdeOptions so;
  const auto sde = make_sde(so);
  const MixtureScore model(mixture, *sde);
  const Index n = 1000000;
  // The stochastic samplers of the stochastic-sampler work join when they are registered (dpmpp_sde draws twice per
  // step: parts 1 and 2).
  std::vector<std::string> names;
  const auto registered = predictor_names();
  for (const std::string name : {"euler_maruyama", "ancestral", "reverse_diffusion", "ddim", "dpmpp_2m",
                                 "euler_ancestral", "dpmpp_sde", "dpmpp_2m_sde"})
    if (std::find(registered.begin(), registered.end(), name) != registered.end()) names.push_back(name);
  for (const auto& name : names)
    for (const auto noise : {NoiseKind::independent, NoiseKind::brownian_tree}) {
      SamplerOptions o;
      o.sampler = name;
      o.steps = 10;
      o.noise = noise;
      o.threads = 2;
      o.seed = 7;
      CAPTURE(name);
      CAPTURE(to_string(noise));
      const auto law = gaussian_output_law(*sde, model, o);
      const auto report = sample(*sde, model, o, n);
      const auto z = scoresde::testing::moment_z(law, report.samples);
      MESSAGE(fmt::format("{} ({} noise): max |z| mean {:.2f}, covariance {:.2f}", name, to_string(noise), z.mean_z,
                          z.cov_z));
      CHECK(z.mean_z < 4.0);
      CHECK(z.cov_z < 4.0);
      // Power: the output law is far from p_0 at 10 steps, in units of the same standard errors.
      GaussianLaw data_law{mixture->means().col(0), mixture->covariance(0)};
      const Matrix exact = [&] {
        Matrix x(3, n);
        mixture->sample(11, 0, x);
        return x;
      }();
      const auto far = scoresde::testing::moment_z(data_law, report.samples);
      CHECK(std::max(far.mean_z, far.cov_z) > 20.0);
      const auto near = scoresde::testing::moment_z(data_law, exact);
      CHECK(std::max(near.mean_z, near.cov_z) < 4.0);
    }
}
