// Generic tests of the deterministic (probability-flow) samplers over the registry, every variant of their options
// (tests/sampler_cases.hpp, deterministic_cases): exactness on point-mass data, the first-order equivalences, NFE
// accounting, --lower-order-final and --denoise-to-zero, and bad input. Convergence orders are measured in
// test_sampler_orders_slow.cpp, agreement with the authors' code in test_reference_agreement.cpp.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;
using namespace scoresde::testing;

namespace {

// The exact score of data concentrated at one point mu: p_t = N(alpha_t mu, sigma_t^2 I), so every prediction is
// exact and constant along the flow (x0_hat = mu, eps_hat = z), and x_t = alpha_t mu + sigma_t z is the exact
// probability-flow path through x_T.
class PointMassScore final : public ScoreModel {
 public:
  PointMassScore(Vector mu, const Sde& sde) : mu_(std::move(mu)), sde_(sde) {}
  Index dim() const override { return mu_.size(); }
  std::string describe() const override { return "point mass"; }
  Matrix exact_flow(const Matrix& x_T, double T, double t) const {
    const Matrix z = (x_T.colwise() - sde_.alpha(T) * mu_) / sde_.sigma(T);
    return (sde_.sigma(t) * z).colwise() + sde_.alpha(t) * mu_;
  }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override {
    for (Index j = 0; j < x.cols(); ++j) {
      const double s = sde_.sigma(t(j));
      out.col(j) = -(x.col(j) - sde_.alpha(t(j)) * mu_) / (s * s);
    }
  }

 private:
  Vector mu_;
  const Sde& sde_;
};

Matrix prior_draws(const Sde& sde, Index d, Index n, std::uint64_t seed) {
  Matrix x(d, n);
  CounterRng(seed, NoisePurpose::prior).normal_columns(0, 0, 0, x);
  return x * sde.prior_std();
}

}  // namespace

TEST_CASE("the few-step samplers of the deterministic-samplers issue are registered") {
  std::vector<std::string> names;
  for (const auto& c : deterministic_cases()) names.push_back(c.options.sampler);
  for (const char* name : {"ddim", "edm_euler", "edm_heun", "dpm_2", "lms", "dpm_solver", "dpmpp_2s", "dpmpp_2m",
                           "dpmpp_3m", "unipc", "deis"}) {
    CAPTURE(name);
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
  }
}

TEST_CASE("point-mass data: every deterministic sampler is exact to rounding on every grid and SDE") {
  // With exact, constant predictions every exponential integrator (ddim, dpm_solver, dpmpp_*, unipc, deis) and
  // every method in x~ = x / alpha and sigma~ (edm_*, dpm_2, lms: there dx~/dsigma~ = z is constant) integrates the
  // flow exactly. The 2021 ODE methods (euler, rk4 in t) are not exponential integrators and are not listed.
  Vector mu(3);
  mu << 0.7, -1.2, 2.0;
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    const PointMassScore model(mu, *sde);
    const Matrix init = prior_draws(*sde, 3, 32, 5);
    for (const auto& grid : time_grid_names()) {
      for (auto c : deterministic_cases()) {
        CAPTURE(c.label);
        CAPTURE(sde->name());
        CAPTURE(grid);
        c.options.time_grid = grid;
        c.options.steps = 7;
        c.options.lower_order_final = false;
        const auto out = sample(*sde, model, c.options, 32, &init).samples;
        const double t_N = c.options.resolved_eps(*sde);
        const Matrix exact = model.exact_flow(init, sde->T(), t_N);
        const double scale = std::max(1.0, init.cwiseAbs().maxCoeff());
        CHECK((out - exact).cwiseAbs().maxCoeff() <= 1e-11 * scale);
      }
    }
  }
}

TEST_CASE("first order: ddim = dpm_solver --order 1 = unipc --order 1 --unic off = deis --order 1 = edm_euler") {
  const auto mixture = load_data("eight_gaussians", 0);
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    const Matrix init = prior_draws(*sde, 2, 64, 9);
    for (const auto& grid : {"logsnr", "karras", "uniform"}) {
      SamplerOptions o;
      o.time_grid = grid;
      o.steps = 9;
      o.sampler = "ddim";
      const Matrix ddim = sample(*sde, model, o, 64, &init).samples;
      for (const auto& entry : std::vector<std::pair<std::string, std::function<void(SamplerOptions&)>>>{
               {"dpm_solver", [](SamplerOptions& s) { s.order = 1; }},
               {"unipc",
                [](SamplerOptions& s) {
                  s.order = 1;
                  s.unic = false;
                }},
               {"deis", [](SamplerOptions& s) { s.order = 1; }},
               {"edm_euler", [](SamplerOptions&) {}}}) {
        const auto& name = std::get<0>(entry);
        const auto& extra = std::get<1>(entry);
        CAPTURE(name);
        CAPTURE(sde->name());
        CAPTURE(grid);
        SamplerOptions other = o;
        other.sampler = name;
        extra(other);
        const Matrix out = sample(*sde, model, other, 64, &init).samples;
        CHECK((out - ddim).cwiseAbs().maxCoeff() <= 1e-10 * std::max(1.0, ddim.cwiseAbs().maxCoeff()));
      }
    }
  }
}

TEST_CASE("NFE is exactly the declared evaluations per step times the steps, plus one with --denoise-to-zero") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  for (auto c : deterministic_cases()) {
    CAPTURE(c.label);
    c.options.steps = 13;
    const int per_step = make_predictor(c.options.sampler, c.options)->info().evals_per_step;
    const auto r = sample(*sde, model, c.options, 40);
    CHECK(r.nfe_mean() == 13.0 * per_step);
    CHECK(r.nfe_max() == 13.0 * per_step);
    CHECK(evaluations_per_step(c.options) == per_step);
    // --denoise concerns the noise of stochastic samplers: no effect here.
    c.options.denoise = !c.options.denoise;
    CHECK(sample(*sde, model, c.options, 40).samples == r.samples);
    // --denoise-to-zero: one more evaluation, and the result is the data prediction at t_N.
    c.options.denoise_to_zero = true;
    const auto z = sample(*sde, model, c.options, 40);
    CHECK(z.nfe_mean() == 13.0 * per_step + 1);
    Matrix x0(2, 40);
    const double t_N = c.options.resolved_eps(*sde);
    model.score(r.samples, Vector::Constant(40, t_N), x0);
    x0 = (r.samples + sde->sigma(t_N) * sde->sigma(t_N) * x0) / sde->alpha(t_N);
    CHECK((z.samples - x0).cwiseAbs().maxCoeff() <= 1e-12 * std::max(1.0, x0.cwiseAbs().maxCoeff()));
  }
}

TEST_CASE("--lower-order-final lowers the order only on grids of fewer than 10 steps") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  const auto& table = sampler_option_table();
  const auto* lof = find_option(table, "lower-order-final");
  int affected = 0;
  for (auto c : deterministic_cases()) {
    if (!lof->used_by(c.options)) continue;
    CAPTURE(c.label);
    c.options.time_grid = "logsnr";
    for (const int steps : {5, 12}) {
      c.options.steps = steps;
      c.options.lower_order_final = true;
      const Matrix on = sample(*sde, model, c.options, 16).samples;
      c.options.lower_order_final = false;
      const Matrix off = sample(*sde, model, c.options, 16).samples;
      // With 10 steps or more the flag changes nothing; with fewer it lowers the last steps' order of every method
      // whose order exceeds 1 (the order it would use on the last step: its order, 2 for the 2M forms).
      if (steps >= 10) {
        CHECK(on == off);
      } else if ((c.options.resolved_order() ? c.options.resolved_order() : c.strong_order) > 1) {
        CHECK(on != off);
        ++affected;
      }
    }
  }
  CHECK(affected > 0);
}

TEST_CASE("bad orders and options of the deterministic samplers name the option and what is allowed") {
  const auto sde = make_sde(SdeOptions{});
  for (const auto& r : order_ranges()) {
    for (const int bad : {r.min - 1 == 0 ? -1 : r.min - 1, r.max + 1}) {
      SamplerOptions o;
      o.sampler = std::string(r.sampler);
      o.order = bad;
      CAPTURE(r.sampler);
      CAPTURE(bad);
      std::string message;
      try {
        o.validate(*sde);
      } catch (const ConfigError& e) {
        message = e.what();
      }
      CHECK(message.find("--order") != std::string::npos);
      if (bad > 0) CHECK(message.find(fmt::format("{} to {}", r.min, r.max)) != std::string::npos);
    }
  }
}
