// Generic tests over the sampler registry (tests/sampler_cases.hpp): reproducibility, NFE accounting, the
// Euler-Maruyama stationary-variance oracle, and every sampler on every time grid (core/time_grid.hpp). The convergence
// orders are in test_sampler_orders_slow.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/time_grid.hpp"
#include "models/datasets.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;
using namespace scoresde::testing;

namespace {

bool bitwise_equal(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * a.size()) == 0;
}

// For every sampler, VP and VE, independent and Brownian-tree noise, on `grid` (with `rho`): sample i is bitwise the
// same for n = 100 and n = 300, and for one and two threads.
void check_batch_and_thread_invariance(const std::string& grid, double rho, std::uint64_t seed) {
  const auto mixture = load_data("eight_gaussians", 0);
  for (const SdeKind kind : {SdeKind::vp, SdeKind::ve}) {
    SdeOptions so;
    so.kind = kind;
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    for (auto c : all_cases()) {
      for (const NoiseKind noise : {NoiseKind::independent, NoiseKind::brownian_tree}) {
        if (c.options.sampler == "ode" && noise == NoiseKind::brownian_tree) continue;  // no noise to vary
        CAPTURE(c.label);
        CAPTURE(to_string(kind));
        CAPTURE(to_string(noise));
        c.options.time_grid = grid;
        c.options.rho = rho;
        c.options.steps = 8;
        c.options.noise = noise;
        c.options.seed = seed;
        c.options.chunk = 64;
        c.options.threads = 1;
        const Matrix small = sample(*sde, model, c.options, 100).samples;
        const Matrix large = sample(*sde, model, c.options, 300).samples;
        c.options.threads = 2;
        const Matrix threaded = sample(*sde, model, c.options, 100).samples;
        CHECK(small.allFinite());
        CHECK(bitwise_equal(small, large.leftCols(100)));
        CHECK(bitwise_equal(small, threaded));
      }
    }
  }
}

}  // namespace

TEST_CASE("sample i is bitwise identical for any n and any thread count, for every sampler") {
  check_batch_and_thread_invariance("uniform", 7, 7);
}

TEST_CASE("a different seed gives different samples; the same seed the same") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o;
  o.steps = 10;
  o.seed = 1;
  const Matrix a = sample(*sde, model, o, 50).samples;
  const Matrix b = sample(*sde, model, o, 50).samples;
  o.seed = 2;
  const Matrix c = sample(*sde, model, o, 50).samples;
  CHECK(bitwise_equal(a, b));
  CHECK((a - c).cwiseAbs().minCoeff() > 0.0);
}

TEST_CASE("NFE is counted exactly: predictor and corrector evaluations per step, adaptive counts per sample") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  for (const auto& c : predictor_cases()) {
    auto o = c.options;
    o.steps = 13;
    const auto r = sample(*sde, model, o, 40);
    CAPTURE(c.label);
    const double per_step = make_predictor(o.predictor, o)->info().evals_per_step;
    CHECK(r.nfe_mean() == 13.0 * per_step);
    CHECK(r.nfe_max() == 13.0 * per_step);
  }
  for (const auto& c : corrector_cases()) {
    auto o = c.options;
    o.steps = 13;
    o.corrector_steps = 3;
    const auto r = sample(*sde, model, o, 40);
    CAPTURE(c.label);
    CHECK(r.nfe_mean() == 13.0 * (3 + 1));
  }
  SamplerOptions o;
  o.sampler = "ode";
  o.ode_method = "rk4";
  o.steps = 13;
  CHECK(sample(*sde, model, o, 40).nfe_mean() == 13.0 * 4);
  // dopri5: every column's count equals the calls the model saw for its chunk (one chunk here).
  o.ode_method = "dopri5";
  o.chunk = 64;
  const long long before = model.calls();
  const auto r = sample(*sde, model, o, 40);
  CHECK(r.nfe_max() == static_cast<double>(model.calls() - before));
  CHECK(r.nfe_mean() == r.nfe_max());
  o.ode_control = OdeControl::sample;
  const auto per_sample = sample(*sde, model, o, 40);
  CHECK(per_sample.nfe.minCoeff() >= 7);  // at least one dopri5 step: 1 + 6 evaluations
  // Per-sample control evaluates one column per call: the calls are the per-sample counts of the whole chunk
  // (the 40 samples and the 24 columns that fill the chunk of 64).
  CHECK(per_sample.score_calls >= static_cast<long long>(per_sample.nfe.sum()));
  CHECK(per_sample.score_columns == per_sample.score_calls);
}

TEST_CASE("the last step is noise-free with --denoise on and noisy with it off") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  for (const auto& c : predictor_cases()) {
    CAPTURE(c.label);
    auto o = c.options;
    o.steps = 200;
    o.noise = NoiseKind::brownian_tree;
    o.denoise = true;
    const Matrix clean = sample(*sde, model, o, 20).samples;
    o.denoise = false;
    const Matrix noisy = sample(*sde, model, o, 20).samples;
    // The runs share every step but the last one's noise G z, G ~ sqrt(beta(eps) h) = sqrt(0.12 / 200) =
    // 0.025: 40 normals stay below 4.5 sd, so the difference is nonzero and below 0.12.
    CHECK((clean - noisy).cwiseAbs().maxCoeff() > 0.0);
    CHECK((clean - noisy).cwiseAbs().maxCoeff() < 0.12);
  }
}

TEST_CASE("Euler-Maruyama stationary variance is 1 / (1 - beta h / 4) (shared/ORACLES.md)") {
  // VP with constant beta on N(0, I) data: p_t = N(0, I) and the score is -x at every t, so one reverse EM
  // step is x <- (1 - beta h / 2) x + sqrt(beta h) z, whose stationary variance is exactly 1 / (1 - beta h /
  // 4).
  SdeOptions so;
  so.beta_min = so.beta_max = 20.0;
  const auto sde = make_sde(so);
  const MixtureScore model(load_data("gaussian", 1), *sde);
  SamplerOptions o;
  o.sampler = "euler_maruyama";
  o.steps = 50;
  o.eps = 1e-3;
  o.denoise = false;
  o.threads = 2;
  const Index n = 200000;
  const Matrix x = sample(*sde, model, o, n).samples;
  const double h = (1.0 - 1e-3) / 50;
  const double expected = 1.0 / (1.0 - 20.0 * h / 4.0);  // 1.111
  const double var = x.squaredNorm() / n - std::pow(x.mean(), 2);
  // The start N(0, 1) relaxes by (1 - beta h / 2)^2 = 0.64 per step: after 50 steps the transient is 1e-10.
  // Standard error of a sample variance of a Gaussian: var sqrt(2 / n) = 0.0035; allow 4 of them.
  const double se = expected * std::sqrt(2.0 / n);
  CHECK(std::abs(var - expected) < 4 * se);
  CHECK(std::abs(var - 1.0) > 20 * se);  // the O(h) bias is resolved, not noise
}

TEST_CASE("correctors leave p_t invariant up to their O(eps) bias") {
  // N(0, I) data under VP: p_t = N(0, I) for every t, and the prior is exact. A corrector alone (no
  // predictor) must keep the variance at 1 up to the Langevin discretisation bias. Unadjusted Langevin on
  // N(0, 1) with step eps, x <- (1 - eps) x + sqrt(2 eps) z, has stationary variance 1 / (1 - eps / 2); both
  // step rules give eps <= 2 r^2 here (a <= 1, sigma_t <= 1, and E|z| / E|s| ~ 1 for s = -x), so the bias is
  // at most 1 / (1 - r^2) - 1 = 0.026. A step that depends on each sample's own norms (time change) or a
  // noise term correlated with the step would be off by O(1).
  const auto sde = make_sde(SdeOptions{});
  for (const Index d : {1, 2, 8}) {
    const MixtureScore model(load_data("gaussian", d), *sde);
    for (const std::string corrector : {"ald", "langevin"}) {
      CAPTURE(d);
      CAPTURE(corrector);
      SamplerOptions o;
      o.sampler = "pc";
      o.predictor = "none";
      o.corrector = corrector;
      o.corrector_steps = 2;
      o.steps = 50;
      o.threads = 2;
      const Index n = 40000;
      const Matrix x = sample(*sde, model, o, n).samples;
      const double var = x.squaredNorm() / (n * d);
      const double se = std::sqrt(2.0 / (n * d));
      const double r = o.snr;
      CHECK(std::abs(var - 1.0) < (1.0 / (1.0 - r * r) - 1.0) + 4 * se);
    }
  }
}

TEST_CASE("a sampler that diverges reports the sample, step and time, and returns nothing") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o;
  o.sampler = "pc";
  o.snr = 1e100;
  o.langevin_norm = LangevinNorm::sample;
  o.steps = 5;
  try {
    sample(*sde, model, o, 30);
    FAIL("expected a NumericalError");
  } catch (const NumericalError& e) {
    CHECK(e.sample >= 0);
    CHECK(e.sample < 30);
    CHECK(e.step >= 0);
    CHECK(std::string(e.what()).find("t = ") != std::string::npos);
  }
}

namespace {

// The exact score, except that it is NaN below t = 0.3 for samples whose first coordinate is positive.
class PoisonedScore final : public ScoreModel {
 public:
  explicit PoisonedScore(const MixtureScore& exact) : exact_(exact) {}
  Index dim() const override { return exact_.dim(); }
  std::string describe() const override { return "poisoned"; }

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override {
    exact_.score(x, t, out);
    for (Index j = 0; j < x.cols(); ++j)
      if (t(j) < 0.3 && x(0, j) > 0) out.col(j).setConstant(std::nan(""));
  }

 private:
  const MixtureScore& exact_;
};

}  // namespace

TEST_CASE("every sampler, dopri5 included, reports a non-finite score with the sample, step and time") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore exact(load_data("eight_gaussians", 0), *sde);
  const PoisonedScore model(exact);
  for (auto c : all_cases()) {
    CAPTURE(c.label);
    c.options.steps = 10;
    c.options.chunk = 8;
    try {
      sample(*sde, model, c.options, 30);
      FAIL("expected a NumericalError");
    } catch (const NumericalError& e) {
      CHECK(e.sample >= 0);
      CHECK(e.sample < 30);
      CHECK(e.step >= 0);
      CHECK(e.time < 0.3 + 1e-12);
      CHECK(std::string(e.what()).find("t = ") != std::string::npos);
    }
  }
}

TEST_CASE("options are validated with messages naming the option") {
  const auto sde = make_sde(SdeOptions{});
  auto message = [&](SamplerOptions o) -> std::string {
    try {
      o.validate(*sde);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  SamplerOptions o;
  o.steps = 0;
  CHECK(message(o).find("--steps") != std::string::npos);
  o = {};
  o.eps = 1.5;
  CHECK(message(o).find("--eps") != std::string::npos);
  o = {};
  o.sampler = "pc";
  o.predictor = "none";
  o.corrector = "none";
  CHECK(message(o).find("--predictor") != std::string::npos);
  o = {};
  o.sampler = "nope";
  CHECK(message(o).find("euler_maruyama") != std::string::npos);
  SdeOptions subvp;
  subvp.kind = SdeKind::subvp;
  const auto sub = make_sde(subvp);
  o = {};
  o.sampler = "ancestral";
  CHECK_THROWS_AS(o.validate(*sub), ConfigError);
}

// ------------------------------------------------------------------------------------------ time grids

namespace {

// The times each chunk's steps reached, by first sample.
class TimeRecorder final : public Observer {
 public:
  void on_step(Index first_sample, Index, Index step, double t, ConstMatrixRef) override {
    const std::lock_guard<std::mutex> lock(mutex_);
    auto& times = reached[first_sample];
    CHECK(step == static_cast<Index>(times.size()));
    times.push_back(t);
  }
  std::map<Index, std::vector<double>> reached;

 private:
  std::mutex mutex_;
};

// The grids every sampler must run on: the named ones and a file.
std::vector<std::string> grid_values(const std::string& file) {
  auto grids = time_grid_names();
  grids.push_back(file);
  return grids;
}

}  // namespace

TEST_CASE("every sampler runs on every time grid, and the driver walks exactly the grid's times") {
  scoresde::test::TempDir dir("grids");
  const auto mixture = load_data("eight_gaussians", 0);
  const auto file = dir.write("grid.txt", "1 0.6 0.3 0.12 0.05 0.01 0.002 0.001\n");
  for (const SdeKind kind : {SdeKind::vp, SdeKind::subvp, SdeKind::ve}) {
    SdeOptions so;
    so.kind = kind;
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    // Each --sampler with its defaults, and every predictor, corrector and ODE method (tests/sampler_cases.hpp).
    std::vector<SamplerCase> cases;
    for (const auto& name : sampler_names()) {
      SamplerOptions o;
      o.sampler = name;
      cases.push_back({"--sampler " + name, o});
    }
    for (auto& c : all_cases()) cases.push_back(c);
    for (auto c : cases) {
      if (kind == SdeKind::subvp && c.options.resolved_predictor() == "ancestral") continue;  // rejected
      for (const auto& grid : grid_values(file)) {
        CAPTURE(c.label);
        CAPTURE(to_string(kind));
        CAPTURE(grid);
        SamplerOptions o = c.options;
        o.time_grid = grid;
        o.steps = 7;
        o.eps = kind == SdeKind::ve ? 1e-5 : 1e-3;
        if (o.grid_from_file()) {
          o.eps.reset();  // from the file, as `sample` does when --eps is not given
          o.adopt_grid_file(*sde, false);
        }
        o.chunk = 16;
        o.threads = 2;
        TimeRecorder recorder;
        const auto r = sample(*sde, model, o, 40, nullptr, &recorder);
        CHECK(r.samples.allFinite());
        if (is_adaptive(o)) continue;  // dopri5 takes its own steps between the grid's ends
        const auto expected = o.grid(*sde).t;
        CHECK(expected.size() == 8);
        for (const auto& [first, times] : recorder.reached)
          CHECK(times == std::vector<double>(expected.begin() + 1, expected.end()));
      }
    }
  }
}

TEST_CASE("a file holding the uniform grid gives bitwise the samples of --time-grid uniform") {
  scoresde::test::TempDir dir("grids");
  const auto mixture = load_data("eight_gaussians", 0);
  for (const SdeKind kind : {SdeKind::vp, SdeKind::ve}) {
    SdeOptions so;
    so.kind = kind;
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    SamplerOptions base;
    base.steps = 23;
    const auto uniform = base.grid(*sde);
    Vector v(static_cast<Index>(uniform.t.size()));
    for (std::size_t i = 0; i < uniform.t.size(); ++i) v(static_cast<Index>(i)) = uniform.t[i];
    dump_vector_npy(dir.file("uniform.npy"), v);
    for (const auto& name : sampler_names()) {
      for (const NoiseKind noise : {NoiseKind::independent, NoiseKind::brownian_tree}) {
        CAPTURE(name);
        CAPTURE(to_string(kind));
        CAPTURE(to_string(noise));
        SamplerOptions o = base;
        o.sampler = name;
        o.noise = noise;
        o.seed = 5;
        if (kind == SdeKind::subvp && name == "ancestral") continue;
        const Matrix a = sample(*sde, model, o, 50).samples;
        o.time_grid = dir.file("uniform.npy");
        o.adopt_grid_file(*sde, true);
        CHECK(o.eps == sde->default_eps());
        const Matrix b = sample(*sde, model, o, 50).samples;
        CHECK(bitwise_equal(a, b));
      }
    }
  }
}

TEST_CASE("on a karras grid too, sample i is bitwise identical for any n and any thread count") {
  check_batch_and_thread_invariance("karras", 5, 11);
}

TEST_CASE("the grid changes fixed-step samples but not dopri5's, which uses the grid's ends only") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o;
  o.steps = 10;
  const Matrix uniform = sample(*sde, model, o, 30).samples;
  o.time_grid = "logsnr";
  CHECK((sample(*sde, model, o, 30).samples - uniform).cwiseAbs().maxCoeff() > 1e-3);
  o.sampler = "ode";
  o.ode_method = "dopri5";
  o.time_grid = "uniform";
  const Matrix adaptive = sample(*sde, model, o, 30).samples;
  for (const auto& grid : time_grid_names()) {
    o.time_grid = grid;
    CHECK(bitwise_equal(sample(*sde, model, o, 30).samples, adaptive));
  }
}

TEST_CASE("brownian_tree on non-uniform grids: one path, increments of variance t - t_next") {
  // The tree is evaluated by time, not by step index: on any grid the increments sum to W(T) - W(eps) of the
  // same path, and each has variance t_k - t_{k+1}.
  const auto sde = make_sde(SdeOptions{});
  const Index d = 2, cols = 4096;
  const auto one_step = make_brownian_path(NoiseKind::brownian_tree, 3, 1.0, 0, d, cols);
  Matrix total(d, cols);
  one_step->increment(0, 1.0, 1e-3, total);
  for (const auto& name : time_grid_names()) {
    CAPTURE(name);
    const auto grid = make_time_grid(*enum_from_name<TimeGridKind>(name), *sde, 1.0, 1e-3, 37);
    const auto path = make_brownian_path(NoiseKind::brownian_tree, 3, 1.0, 0, d, cols);
    Matrix sum = Matrix::Zero(d, cols), dw(d, cols);
    double chi2 = 0;
    for (int k = 0; k < grid.steps(); ++k) {
      path->increment(k, grid.t[k], grid.t[k + 1], dw);
      sum += dw;
      chi2 += dw.squaredNorm() / (grid.t[k] - grid.t[k + 1]);
    }
    CHECK((sum - total).cwiseAbs().maxCoeff() <= 1e-12);
    // chi^2 with 37 d cols degrees of freedom, divided by them: mean 1, sd sqrt(2 / 303104) = 0.0026.
    CHECK(std::abs(chi2 / (37.0 * d * cols) - 1.0) < 5 * std::sqrt(2.0 / (37.0 * d * cols)));
  }
}
