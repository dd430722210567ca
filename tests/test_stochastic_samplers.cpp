// Generic tests of the stochastic samplers (tests/sampler_cases.hpp, stochastic_cases: every sampler with --eta or
// --s-churn, in every variant): eta = 0 and --s-churn 0 give their deterministic counterparts bit for bit; on
// point-mass data, where every model prediction is exact, each gives exactly the law N(alpha_N mu, sigma_N^2 I);
// --eta's sampler-dependent default for C++ callers, the command line and records; `scoresde brownian`. Their
// convergence orders are measured by the generic tests of test_sampler_orders_slow.cpp (predictor_cases includes
// stochastic_cases), agreement with the authors' code in test_reference_agreement.cpp.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/time_grid.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;
using namespace scoresde::testing;

namespace {

// The exact score of data at one point mu: p_t = N(alpha_t mu, sigma_t^2 I), every prediction exact (x0_hat = mu).
class PointMassScore final : public ScoreModel {
 public:
  PointMassScore(Vector mu, const Sde& sde) : mu_(std::move(mu)), sde_(sde) {}
  Index dim() const override { return mu_.size(); }
  std::string describe() const override { return "point mass"; }

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

// The stochastic setting of a case with its stochastic knobs at 0.
SamplerOptions without_noise(SamplerOptions o) {
  const auto& table = sampler_option_table();
  if (find_option(table, "eta")->used_by(o)) o.eta = 0;
  if (find_option(table, "s-churn")->used_by(o)) o.s_churn = 0;
  if (find_option(table, "tau")->used_by(o)) o.tau = 0;
  return o;
}

}  // namespace

TEST_CASE("the stochastic samplers are registered, and each sampler with --eta or --s-churn is covered") {
  std::vector<std::string> names;
  for (const auto& c : stochastic_cases()) names.push_back(c.options.sampler);
  for (const char* name :
       {"ddim", "euler_ancestral", "edm_euler", "edm_heun", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "sa_solver"}) {
    CAPTURE(name);
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
  }
  for (const auto& c : stochastic_cases()) {
    CAPTURE(c.label);
    const auto stochastic = make_predictor(c.options.sampler, c.options);
    CHECK_FALSE(stochastic->probability_flow());
    CHECK(stochastic->info().strong_order > 0);
    CHECK(stochastic->info().weak_order > 0);
    CHECK(make_predictor(c.options.sampler, without_noise(c.options))->probability_flow());
  }
}

TEST_CASE("--eta 0 and --s-churn 0 give the deterministic counterpart bit for bit, on every SDE, grid and noise") {
  const auto mixture = load_data("eight_gaussians", 0);
  int compared = 0;
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    for (const auto& grid : time_grid_names()) {
      for (const auto& c : stochastic_cases()) {
        for (const NoiseKind noise : {NoiseKind::independent, NoiseKind::brownian_tree}) {
          for (const bool lof : {true, false}) {
            CAPTURE(c.label);
            CAPTURE(sde->name());
            CAPTURE(grid);
            SamplerOptions o = without_noise(c.options);
            o.time_grid = grid;
            o.steps = 7;
            o.noise = noise;
            o.lower_order_final = lof;
            o.seed = 4;
            SamplerOptions deterministic = o;
            deterministic.sampler = deterministic_counterpart(o.sampler);
            deterministic.eta = -1;
            deterministic.s_churn = 0;
            CHECK(make_predictor(deterministic.sampler, deterministic)->probability_flow());
            const Matrix a = sample(*sde, model, o, 24).samples;
            const Matrix b = sample(*sde, model, deterministic, 24).samples;
            CHECK(bitwise_equal(a, b));
            ++compared;
          }
        }
      }
    }
  }
  CHECK(compared > 0);
}

TEST_CASE("point-mass data: every stochastic sampler gives exactly N(alpha_N mu, sigma_N^2 I) from p_T") {
  // With x0_hat = mu exact, each step maps x_k = alpha_k mu + sigma_k e (e ~ N(0, I)) to alpha_{k+1} mu + sigma_{k+1}
  // e' with e' ~ N(0, I): the deterministic part keeps the predicted noise's share and the fresh noise makes up the
  // rest (ancestral split, the exact SDE solution of the DPM-Solver++ SDE forms, the churn followed by an exact ODE
  // step). So (x_N - alpha_N mu) / sigma_N is standard normal on any grid with any step count.
  Vector mu(3);
  mu << 0.7, -1.2, 2.0;
  const Index n = 4000;
  for (const auto& so : all_sdes()) {
    const auto sde = make_sde(so);
    const PointMassScore model(mu, *sde);
    Matrix init(3, n);
    CounterRng(21, NoisePurpose::prior).normal_columns(0, 0, 0, init);
    init = (sde->sigma(sde->T()) * init).colwise() + sde->alpha(sde->T()) * mu;
    for (auto c : stochastic_cases()) {
      CAPTURE(c.label);
      CAPTURE(sde->name());
      if (c.for_sde) c.for_sde(c.options, *sde);
      c.options.time_grid = "karras";
      c.options.steps = 6;
      c.options.denoise = false;
      c.options.noise = NoiseKind::brownian_tree;
      c.options.seed = 8;
      const double t_N = c.options.resolved_eps(*sde);
      const Matrix e =
          (sample(*sde, model, c.options, n, &init).samples.colwise() - sde->alpha(t_N) * mu) / sde->sigma(t_N);
      // 3 n standard normals: mean within 5 / sqrt(3 n), mean square within 5 sqrt(2 / (3 n)) of 1.
      const double m = e.mean(), ms = e.squaredNorm() / static_cast<double>(e.size());
      CHECK(std::abs(m) < 5.0 / std::sqrt(3.0 * n));
      CHECK(std::abs(ms - 1.0) < 5.0 * std::sqrt(2.0 / (3.0 * n)));
    }
  }
}

TEST_CASE("--eta: the sampler's default for C++ callers, the command line and the record; values outside [0, 1]") {
  SamplerOptions o;
  o.sampler = "ddim";
  CHECK(o.resolved_eta() == 0.0);
  for (const char* name : {"euler_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"}) {
    o.sampler = name;
    CHECK(o.resolved_eta() == 1.0);
    o.sampler = "pc";
    o.predictor = name;
    CHECK(o.resolved_eta() == 1.0);  // as the predictor of --sampler pc
  }
  o.sampler = "euler_maruyama";
  CHECK(o.resolved_eta() == 0.0);  // no --eta
  o.sampler = "ddim";
  o.eta = 0.5;
  CHECK(o.resolved_eta() == 0.5);

  const auto sde = make_sde(SdeOptions{});
  SamplerOptions unset;
  unset.sampler = "dpmpp_2m_sde";
  const auto record = to_json(unset, *sde);
  CHECK(record["eta"].get<double>() == 1.0);
  for (const double bad : {-0.5, 1.5}) {
    SamplerOptions b;
    b.sampler = "euler_ancestral";
    b.eta = bad;
    CAPTURE(bad);
    std::string message;
    try {
      b.validate(*sde);
    } catch (const ConfigError& e) {
      message = e.what();
    }
    CHECK(message.find("--eta") != std::string::npos);
    CHECK(message.find("[0, 1]") != std::string::npos);
  }

  // The command line: --help states the defaults; a run records the resolved eta; --eta 0 for euler_ancestral is
  // edm_euler.
  const scoresde::test::TempDir dir("eta");
  std::string help;  // --help with its line breaks and indentation collapsed to single spaces
  for (const char ch : scoresde::test::run({"sample", "--help"}).out)
    if (!std::isspace(static_cast<unsigned char>(ch)))
      help += ch;
    else if (!help.empty() && help.back() != ' ')
      help += ' ';
  CHECK(help.find("default 0 for ddim, 1 for euler_ancestral") != std::string::npos);
  const auto run = [&](std::vector<std::string> args, const std::string& name) {
    args.insert(args.begin(), "sample");
    for (const char* a : {"--steps", "5", "-n", "20", "--quiet"}) args.emplace_back(a);
    args.insert(args.end(), {"--out", dir.file(name)});
    const auto r = scoresde::test::run(args);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return read_samples_npy(dir.file(name));
  };
  run({"--sampler", "ddim"}, "ddim.npy");
  std::ifstream meta(dir.file("ddim.npy.json"));
  CHECK(nlohmann::json::parse(meta)["options"]["eta"].get<double>() == 0.0);
  CHECK(bitwise_equal(run({"--sampler", "euler_ancestral", "--eta", "0"}, "a.npy"),
                      run({"--sampler", "edm_euler"}, "b.npy")));
  CHECK(run({"--sampler", "euler_ancestral"}, "c.npy") !=
        run({"--sampler", "euler_ancestral", "--eta", "0.5"}, "d.npy"));
}

TEST_CASE("--s-churn: Karras et al.'s gamma with its cap, the window and S_noise; options checked") {
  // One step with S_noise = 0: x~_hat = x~_0 at sigma~_hat = (1 + gamma) sigma~_0, and with point-mass data the Euler
  // step gives x~_1 = mu + sigma~_1 (x~_0 - mu) / sigma~_hat, gamma = min(S_churn / N, sqrt(2) - 1).
  Vector mu(2);
  mu << 0.3, -0.4;
  const auto sde = make_sde(SdeOptions{});
  const PointMassScore model(mu, *sde);
  const Index n = 16;
  Matrix init(2, n);
  CounterRng(3, NoisePurpose::prior).normal_columns(0, 0, 0, init);
  SamplerOptions o;
  o.sampler = "edm_euler";
  o.steps = 1;
  o.denoise = false;
  o.s_noise = 0;
  const double T = sde->T(), t_N = o.resolved_eps(*sde);
  for (const double churn : {0.2, 5.0}) {
    CAPTURE(churn);
    o.s_churn = churn;
    const double gamma = std::min(churn, std::sqrt(2.0) - 1.0);
    const Matrix e = ((init / sde->alpha(T)).colwise() - mu) / sde->sigma_tilde(T);  // x~_0 = mu + sigma~_0 e
    const Matrix expected = sde->alpha(t_N) * ((e * (sde->sigma_tilde(t_N) / (1 + gamma))).colwise() + mu);
    CHECK((sample(*sde, model, o, n, &init).samples - expected).cwiseAbs().maxCoeff() < 1e-12);
  }
  // A window that holds no grid level is no churn at all, bit for bit.
  o.steps = 4;
  o.s_noise = 1;
  o.s_churn = 3;
  SamplerOptions plain = o;
  plain.s_churn = 0;
  const Matrix y = sample(*sde, model, plain, n).samples;
  o.s_tmin = 1e6;
  CHECK(bitwise_equal(sample(*sde, model, o, n).samples, y));
  o.s_tmin = 0;
  o.s_tmax = 1e-9;
  CHECK(bitwise_equal(sample(*sde, model, o, n).samples, y));
  o.s_tmax = std::numeric_limits<double>::infinity();
  CHECK_FALSE(bitwise_equal(sample(*sde, model, o, n).samples, y));
  for (const auto& entry : std::vector<std::pair<std::string, std::string>>{
           {"s-churn", "-1"}, {"s-churn", "inf"}, {"s-tmin", "-1"}, {"s-tmax", "-1"}, {"s-noise", "-1"}}) {
    const auto& key = std::get<0>(entry);
    const auto& value = std::get<1>(entry);
    CAPTURE(key);
    const auto r = scoresde::test::run({"sample", "--sampler", "edm_heun", "--" + key, value, "--out", "x.npy"});
    CHECK(r.code == 2);
    CHECK(r.err.find("--" + key) != std::string::npos);
  }
}

TEST_CASE("scoresde brownian: the increments a sampler draws, with their steps, parts and intervals") {
  const scoresde::test::TempDir dir("brownian");
  const auto sde = make_sde(SdeOptions{});
  const auto grid = make_time_grid(TimeGridKind::logsnr, *sde, sde->T(), 1e-3, 5).t;
  for (const NoiseKind noise : {NoiseKind::independent, NoiseKind::brownian_tree}) {
    for (const std::string sampler : {"euler_ancestral", "dpmpp_sde"}) {
      for (const bool denoise : {false, true}) {
        CAPTURE(to_string(noise));
        CAPTURE(sampler);
        CAPTURE(denoise);
        const auto r = scoresde::test::run(
            {"brownian", "--sampler", sampler, "--noise", to_string(noise), "--seed", "5", "--time-grid", "logsnr",
             "--steps", "5", "--denoise", denoise ? "on" : "off", "-n", "7", "--dim", "3", "--out", dir.file("w.npy")});
        REQUIRE_MESSAGE(r.code == 0, r.err);
        const Matrix w = read_samples_npy(dir.file("w.npy"));
        std::ifstream meta_file(dir.file("w.npy.json"));
        const auto requests = nlohmann::json::parse(meta_file)["requests"];
        const std::size_t parts = sampler == "dpmpp_sde" ? 2 : 1;
        const std::size_t steps = denoise ? 4 : 5;  // --denoise on: the last step draws nothing
        REQUIRE(requests.size() == parts * steps);
        REQUIRE(w.cols() == static_cast<Index>(requests.size()) * 7);
        // The same numbers as the path a sampler's chunk sees, here for samples 3 .. 6 in a chunk of their own.
        const auto path = make_brownian_path(noise, 5, sde->T(), 3, 3, 4);
        Matrix expected(3, 4);
        for (std::size_t q = 0; q < requests.size(); ++q) {
          const auto& req = requests[q];
          const Index k = req["step"].get<Index>();
          CHECK(k == static_cast<Index>(q / parts));
          CHECK(req["part"].get<std::size_t>() == (parts == 1 ? 0 : 1 + q % 2));
          CHECK(req["t"].get<double>() == (q % parts == 0 ? grid[k] : requests[q - 1]["t_next"].get<double>()));
          CHECK(req["t_next"].get<double>() ==
                (q % parts == parts - 1 ? grid[k + 1] : requests[q + 1]["t"].get<double>()));
          path->increment(k, req["t"].get<double>(), req["t_next"].get<double>(), expected, req["part"].get<int>());
          CHECK(bitwise_equal(expected, Matrix(w.middleCols(static_cast<Index>(q) * 7 + 3, 4))));
        }
      }
    }
  }
  const auto r = scoresde::test::run(
      {"brownian", "--sampler", "ddim", "--dim", "2", "--out", dir.file("x.npy")});  // eta 0: no noise
  CHECK(r.code == 2);
  CHECK(r.err.find("draws no Brownian increments") != std::string::npos);
}
