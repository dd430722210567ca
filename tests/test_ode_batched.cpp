// dopri5 with --ode-control batched (solvers/ode.hpp, BatchedDopri5): the chunk's samples stepped together, each
// column with its own step-size controller. Checked against running every sample alone (--ode-control sample, the same
// integrator on one column at a time: the batch, the compaction of finished columns and a column's position must
// change nothing, so samples and NFE agree bit for bit), against the exact probability-flow map of Gaussian data
// (shared/ORACLES.md), and for the absence of coupling: no sample's output depends on --chunk, --threads or another
// sample's prior draw.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/errors.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"
#include "solvers/likelihood.hpp"
#include "solvers/step_control.hpp"

using namespace scoresde;
using scoresde::testing::all_sdes;
using scoresde::testing::bitwise_equal;

namespace {

SamplerOptions dopri5(OdeControl control, double tolerance) {
  SamplerOptions o;
  o.sampler = "ode";
  o.ode_method = "dopri5";
  o.rtol = o.atol = tolerance;
  o.ode_control = control;
  return o;
}

// One Gaussian N(mu, s^2 I) in `dim` dimensions: the probability-flow map is closed-form (shared/ORACLES.md).
constexpr double data_std = 0.5;
std::shared_ptr<const GaussianMixture> gaussian_data(Index dim) {
  Matrix mu(dim, 1);
  for (Index i = 0; i < dim; ++i) mu(i, 0) = 1.0 - 0.3 * static_cast<double>(i);
  return std::make_shared<GaussianMixture>(
      GaussianMixture::isotropic(Vector::Ones(1), mu, Vector::Constant(1, data_std)));
}

// Three isotropic components in `dim` dimensions, unequal weights and widths: samples take different steps, and
// dimensions 1 and 3 take the mixture kernel's other fixed-dimension paths (core/vector_math.cpp).
std::shared_ptr<const GaussianMixture> mixture_data(Index dim) {
  Matrix mu(dim, 3);
  for (Index i = 0; i < dim; ++i) mu.row(i) << 2.0 - 0.5 * static_cast<double>(i), -1.5, 0.5 * static_cast<double>(i);
  Vector weights(3), stds(3);
  weights << 0.5, 0.3, 0.2;
  stds << 0.3, 0.6, 0.15;
  return std::make_shared<GaussianMixture>(GaussianMixture::isotropic(weights, mu, stds));
}

// x_eps = alpha_eps mu + sqrt(v_eps / v_T) (x_T - alpha_T mu), v_t = alpha_t^2 s^2 + sigma_t^2.
Matrix gaussian_flow_map(const Sde& sde, const GaussianMixture& data, double eps, const Matrix& latents) {
  const auto v = [&](double t) {
    return sde.alpha(t) * sde.alpha(t) * data_std * data_std + sde.sigma(t) * sde.sigma(t);
  };
  const Vector mu = data.means().col(0);
  return ((latents.colwise() - sde.alpha(sde.T()) * mu) * std::sqrt(v(eps) / v(sde.T()))).colwise() +
         sde.alpha(eps) * mu;
}

// Prior draws N(0, prior_std^2 I) keyed by sample index, as the driver draws them.
Matrix prior_draws(const Sde& sde, std::uint64_t seed, Index dim, Index n) {
  Matrix x(dim, n);
  CounterRng(seed, NoisePurpose::prior).normal_columns(0, 0, 0, x);
  return x * sde.prior_std();
}

// Every observer call as (sample, step, t, state), whatever the thread.
class Recorder final : public Observer {
 public:
  void on_step(Index first_sample, Index valid, Index step, double t, ConstMatrixRef x) override {
    const std::lock_guard<std::mutex> lock(mutex_);
    CHECK(valid == 1);
    calls[{first_sample, step}] = {t, x.col(0)};
  }
  std::map<std::pair<Index, Index>, std::pair<double, Vector>> calls;

 private:
  std::mutex mutex_;
};

// The score of a mixture, made non-finite for the columns whose first coordinate exceeds `threshold` once t is
// below `below`: a failure that some samples meet and others do not.
class FailingScore final : public ScoreModel {
 public:
  FailingScore(const ScoreModel& inner, double threshold, double below)
      : inner_(inner), threshold_(threshold), below_(below) {}
  Index dim() const override { return inner_.dim(); }
  std::string describe() const override { return "failing"; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override {
    inner_.score(x, t, out);
    for (Index j = 0; j < x.cols(); ++j)
      if (t(j) < below_ && x(0, j) > threshold_) out.col(j).setConstant(std::numeric_limits<double>::quiet_NaN());
  }

 private:
  const ScoreModel& inner_;
  double threshold_, below_;
};

}  // namespace

TEST_CASE("batched per-column control gives --ode-control sample's samples and NFE bit for bit, on every SDE") {
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    CAPTURE(sde->name());
    // eight_gaussians (d = 2), mixtures in 1 and 3 dimensions and one 11-dimensional Gaussian: every path of the
    // mixture kernel, whose lanes then hold columns at different times.
    for (const auto& data : {load_data("eight_gaussians", 0), mixture_data(1), mixture_data(3), gaussian_data(11)}) {
      const MixtureScore model(data, *sde);
      const Index d = data->dim();
      CAPTURE(d);
      for (const double tolerance : {1e-3, 1e-5}) {
        CAPTURE(tolerance);
        auto o = dopri5(OdeControl::sample, tolerance);
        o.chunk = 32;
        const Index n = 75;  // chunks of 32, 32 and 11 samples
        const auto alone = sample(*sde, model, o, n);
        o.ode_control = OdeControl::batched;
        const auto batched = sample(*sde, model, o, n);
        CHECK(bitwise_equal(alone.samples, batched.samples));
        CHECK(bitwise_equal(alone.nfe, batched.nfe));
        // On the mixture, samples take different numbers of steps: the comparison covers columns leaving the batch
        // early. (On one Gaussian the flow is linear and every sample takes the same steps.)
        if (d <= 3) CHECK(batched.nfe.minCoeff() < batched.nfe.maxCoeff());
      }
    }
  }
}

TEST_CASE("batched: the samples do not depend on --chunk or --threads, bit for bit") {
  const auto sde = make_sde(SdeOptions{});
  for (const auto& data : {load_data("eight_gaussians", 0), mixture_data(1), mixture_data(3)}) {
    CAPTURE(data->dim());
    const MixtureScore model(data, *sde);
    auto o = dopri5(OdeControl::batched, 1e-5);
    const Index n = 203;
    const auto reference = sample(*sde, model, o, n);  // one chunk of 256, one thread
    for (const auto& entry : std::vector<std::pair<Index, int>>{{1, 1}, {3, 1}, {7, 2}, {64, 2}, {1000, 1}}) {
      const auto& chunk = std::get<0>(entry);
      const auto& threads = std::get<1>(entry);
      CAPTURE(chunk);
      CAPTURE(threads);
      o.chunk = chunk;
      o.threads = threads;
      const auto r = sample(*sde, model, o, n);
      CHECK(bitwise_equal(r.samples, reference.samples));
      CHECK(bitwise_equal(r.nfe, reference.nfe));
    }
    // -n does not matter either: the first 50 samples of 50 and of 203 are the same.
    o.chunk = 64;
    CHECK(bitwise_equal(sample(*sde, model, o, 50).samples, reference.samples.leftCols(50)));
  }
}

TEST_CASE("batched: changing one sample's prior draw changes no other sample's output or NFE") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  auto o = dopri5(OdeControl::batched, 1e-5);
  o.chunk = 64;
  const Index n = 64;
  Matrix init = prior_draws(*sde, o.seed, 2, n);
  const auto before = sample(*sde, model, o, n, &init);
  for (const Index changed : {0, 17, 63}) {
    CAPTURE(changed);
    Matrix moved = init;
    moved.col(changed) << 3.0, -2.5;  // far from its draw: it takes other steps than before
    const auto after = sample(*sde, model, o, n, &moved);
    CHECK(!bitwise_equal(after.samples.col(changed), before.samples.col(changed)));
    for (Index j = 0; j < n; ++j) {
      if (j == changed) continue;
      CAPTURE(j);
      CHECK(bitwise_equal(after.samples.col(j), before.samples.col(j)));
      CHECK(after.nfe(j) == before.nfe(j));
    }
  }
}

TEST_CASE("batched: NFE is counted per sample, and the score is called once per stage for the whole chunk") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  auto o = dopri5(OdeControl::batched, 1e-5);
  o.chunk = 128;
  const Index n = 100;  // one chunk; its 28 padding columns are not integrated
  const auto r = sample(*sde, model, o, n);
  for (Index j = 0; j < n; ++j) CHECK(std::fmod(r.nfe(j) - 1.0, 6.0) == 0.0);  // 1 + 6 per trial step
  // Every column evaluated belongs to exactly one sample's count, and the calls are those of the longest sample:
  // one for the start and six per trial step while any sample is still running.
  CHECK(static_cast<double>(r.score_columns) == r.nfe.sum());
  CHECK(static_cast<double>(r.score_calls) == r.nfe_max());
  // --ode-control chunk evaluates every column at every call: at 1e-5 it pays more per sample than its mean.
  o.ode_control = OdeControl::chunk;
  const auto chunk = sample(*sde, model, o, n);
  MESSAGE(fmt::format("NFE per sample at 1e-5: batched mean {:.1f} max {}, chunk {}", r.nfe_mean(), r.nfe_max(),
                      chunk.nfe_max()));
  CHECK(r.nfe_mean() < chunk.nfe_mean());
}

TEST_CASE("batched: the error on Gaussian data follows the tolerance (exact probability-flow map)") {
  const auto data = gaussian_data(2);
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    CAPTURE(sde->name());
    const MixtureScore model(data, *sde);
    auto o = dopri5(OdeControl::batched, 1e-5);
    o.seed = 11;
    const Index n = 256;
    const Matrix init = prior_draws(*sde, o.seed, 2, n);
    const Matrix exact = gaussian_flow_map(*sde, *data, o.resolved_eps(*sde), init);
    std::vector<double> errors;
    for (const double tolerance : {1e-5, 1e-7, 1e-9}) {
      o.rtol = o.atol = tolerance;
      const double error = (sample(*sde, model, o, n, &init).samples - exact).cwiseAbs().maxCoeff();
      MESSAGE(fmt::format("{}: max error {:.2e} at tolerance {:.0e}", sde->name(), error, tolerance));
      // The local error per unit step is held near the tolerance; the map contracts (v_eps < v_T), so the global
      // error stays within a small multiple of it (the same bound as the per-chunk test in
      // test_sampler_orders_slow.cpp).
      CHECK(error < 100 * tolerance);
      errors.push_back(error);
    }
    // 100 times tighter tolerances give at least 10 times smaller errors (order 5: about 100^(5/5) = 100).
    CHECK(errors[1] < errors[0] / 10);
    CHECK(errors[2] < errors[1] / 10);
  }
}

TEST_CASE("batched: the observer sees each sample's own steps, as under --ode-control sample") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  auto o = dopri5(OdeControl::sample, 1e-3);
  o.chunk = 8;
  o.threads = 2;
  const Index n = 20;
  Recorder alone, batched;
  const Matrix a = sample(*sde, model, o, n, nullptr, &alone).samples;
  o.ode_control = OdeControl::batched;
  const Matrix b = sample(*sde, model, o, n, nullptr, &batched).samples;
  CHECK(bitwise_equal(a, b));
  REQUIRE(alone.calls.size() == batched.calls.size());
  for (const auto& entry : alone.calls) {
    const auto& key = std::get<0>(entry);
    const auto& value = std::get<1>(entry);
    CAPTURE(key.first);
    CAPTURE(key.second);
    REQUIRE(batched.calls.count(key) == 1);
    CHECK(batched.calls.at(key).first == value.first);
    CHECK(bitwise_equal(batched.calls.at(key).second, value.second));
  }
  for (Index j = 0; j < n; ++j) CHECK(batched.calls.count({j, 0}) == 1);
  CHECK(batched.calls.count({n, 0}) == 0);  // padding columns are not integrated
}

TEST_CASE("batched: a sample whose score turns non-finite is reported as under --ode-control sample") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore mixture(load_data("eight_gaussians", 0), *sde);
  const FailingScore model(mixture, 1.5, 0.3);
  auto o = dopri5(OdeControl::sample, 1e-4);
  o.chunk = 16;
  const Index n = 40;
  std::string alone;
  try {
    sample(*sde, model, o, n);
  } catch (const NumericalError& e) {
    alone = e.what();
  }
  REQUIRE(!alone.empty());
  MESSAGE(alone);
  o.ode_control = OdeControl::batched;
  for (const int threads : {1, 2}) {
    o.threads = threads;
    CHECK_THROWS_WITH_AS(sample(*sde, model, o, n), alone.c_str(), NumericalError);
  }
}

TEST_CASE("--ode-control batched is a sampler option: the likelihood names it and what it allows") {
  const auto sde = make_sde(SdeOptions{});
  LikelihoodOptions lo;
  lo.ode_control = OdeControl::batched;
  CHECK_THROWS_WITH_AS(lo.validate(*sde), doctest::Contains("--ode-control"), ConfigError);
  CHECK_THROWS_WITH_AS(lo.validate(*sde), doctest::Contains("chunk or sample"), ConfigError);
  CHECK(ode_control_from_string("batched") == OdeControl::batched);
}

TEST_CASE("StepSizeController proposes odeint's default_step_adjuster's step sizes bit for bit") {
  // The controller writes odeint's rule out with its constants computed once; every proposal must be the double
  // odeint's adjuster gives, so that a method under the driver takes exactly integrate_adaptive's steps.
  const boost::numeric::odeint::default_step_adjuster<double, double> odeint_adjuster;
  std::vector<double> errors = {0.0, 1e-300, 1e-20, 3.2e-4, 3.3e-4, 0.01, 0.25, 0.4999999, 0.5, 0.75, 1.0, 1.0000001,
                                2.0, 1e3, 1e300, std::numeric_limits<double>::infinity(),
                                std::numeric_limits<double>::quiet_NaN()};
  for (int i = 1; i <= 200; ++i) errors.push_back(std::pow(10.0, -8.0 + 0.05 * i) * (1.0 + 1e-3 * i));
  // dopri5's orders, and those the adaptive SDE methods give (an error order of 1 makes the decrease exponent -inf).
  const auto same_bits = [](double a, double b) {
    return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
  };
  for (const auto& orders : {std::pair{5, 4}, std::pair{1, 2}, std::pair{2, 1}, std::pair{3, 2}}) {
    const int order = orders.first, error_order = orders.second;
    const StepSizeController control(order, error_order);
    for (const double h : {-0.01, -1e-6, 0.3})
      for (const double error : errors) {
        CAPTURE(order);
        CAPTURE(error_order);
        CAPTURE(h);
        CAPTURE(error);
        CHECK(same_bits(control.after_accept(h, error), odeint_adjuster.increase_step(h, error, order)));
        CHECK(same_bits(control.after_reject(h, error), odeint_adjuster.decrease_step(h, error, error_order)));
      }
  }
}
