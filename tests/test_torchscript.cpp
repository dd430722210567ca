// TorchScript score models (models/torchscript_score.hpp), built only with LibTorch. The modules are written before
// this test by tests/data/make_torchscript_fixtures.py (a ctest fixture, Debian's python3-torch) into the directory
// SCORESDE_TORCHSCRIPT_DIR, with PyTorch's own evaluation in expected.json. Checked: scores against PyTorch for
// every parameterisation and both float types and for an image-shaped (n, C, H, W) module, divergences and JVPs
// against finite differences, every sampler, the same samples for any --threads, modules on DDPM steps under a
// discrete schedule (the time input against DPM-Solver's model_wrapper, sampling against the exact score), the
// command line (sample, likelihood, evaluate-score, study) and broken modules as named errors with exit status 2.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/sde.hpp"
#include "models/score_factory.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;
namespace fs = std::filesystem;
using scoresde::test::check_contains;
using scoresde::test::Result;
using scoresde::test::run;
using scoresde::test::TempDir;

namespace {

std::string fixture(const std::string& name) {
  const char* dir = std::getenv("SCORESDE_TORCHSCRIPT_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "SCORESDE_TORCHSCRIPT_DIR: set by ctest (tests/CMakeLists.txt)");
  return (fs::path(dir) / name).string();
}

const nlohmann::json& expected() {
  static const nlohmann::json j = [] {
    std::ifstream in(fixture("expected.json"));
    return nlohmann::json::parse(in);
  }();
  return j;
}

Matrix rows_to_matrix(const nlohmann::json& rows) {
  const Index n = static_cast<Index>(rows.size()), d = static_cast<Index>(rows[0].size());
  Matrix m(d, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < d; ++i) m(i, j) = rows[j][i].get<double>();
  return m;
}

struct Opened {
  std::shared_ptr<const ScoreSource> source;
  std::unique_ptr<Sde> sde;
  std::unique_ptr<ScoreModel> model;
};

Opened open(const std::string& name) {
  Opened o;
  o.source = open_score(ScoreSpec::file(fixture(name)));
  REQUIRE(o.source->trained_sde());
  o.sde = make_sde(*o.source->trained_sde());
  o.model = o.source->make(*o.sde);
  return o;
}

}  // namespace

TEST_CASE("torchscript: scores match PyTorch's evaluation for each parameterisation and float type") {
  for (const auto* name : {"noise_vp.pt", "data_ve.pt", "v_vp.pt", "scaled_ve_traced.pt", "conv_image.pt"}) {
    CAPTURE(name);
    const auto& e = expected()[name];
    const Opened o = open(name);
    const Matrix x = rows_to_matrix(e["x"]), want = rows_to_matrix(e["score"]);
    Vector t(static_cast<Index>(e["t"].size()));
    for (Index j = 0; j < t.size(); ++j) t(j) = e["t"][j].get<double>();
    CHECK(o.model->dim() == x.rows());
    Matrix got(x.rows(), x.cols());
    o.model->score(x, t, got);
    for (Index j = 0; j < x.cols(); ++j) {
      CAPTURE(j);
      CHECK((got.col(j) - want.col(j)).norm() <= 1e-6 * std::max(1.0, want.col(j).norm()));
    }
    CHECK(o.model->calls() == 1);
    CHECK(o.model->has_exact_divergence());
    CHECK(o.model->has_jvp());
  }
}

TEST_CASE("torchscript: metadata gives the SDE, the scaling and the parameterisation") {
  const auto s = open_score(ScoreSpec::file(fixture("noise_vp.pt")));
  CHECK(s->dim() == 2);
  REQUIRE(s->trained_sde());
  CHECK(s->trained_sde()->kind == SdeKind::vp);
  CHECK(s->scaling().mean(0) == 0.5);
  CHECK(s->scaling().mean(1) == -0.25);
  CHECK(s->scaling().scale(0) == 2.0);
  CHECK(s->scaling().scale(1) == 1.5);
  REQUIRE(s->recorded_parameterization());
  CHECK(*s->recorded_parameterization() == Parameterization::noise);
  const auto ve = open_score(ScoreSpec::file(fixture("data_ve.pt")));
  CHECK(ve->trained_sde()->kind == SdeKind::ve);
  CHECK(ve->scaling().scale == Vector::Ones(3));
  const auto none = open_score(ScoreSpec::file(fixture("no_sde.pt")));
  CHECK(!none->trained_sde());
  // v only where alpha^2 + sigma^2 = 1.
  const auto v_ve = open_score(ScoreSpec::file(fixture("v_ve.pt")));
  const auto sde = make_sde(*v_ve->trained_sde());
  CHECK_THROWS_AS(v_ve->make(*sde), ConfigError);
}

TEST_CASE("torchscript: divergence and JVPs agree with finite differences") {
  for (const auto* name : {"data_ve.pt", "v_vp.pt", "gauss_ddpm_index.pt"}) {  // float64 modules
    CAPTURE(name);
    const Opened o = open(name);
    const Index d = o.model->dim(), n = 5;
    Matrix x = Matrix::Random(d, n), v = Matrix::Random(d, n);
    Vector t = Vector::LinSpaced(n, 0.1, 0.9);
    Matrix s(d, n), s2(d, n), jv(d, n), sp(d, n), sm(d, n);
    Vector div(n);
    o.model->score_and_divergence(x, t, s, div);
    o.model->score(x, t, s2);
    CHECK((s - s2).norm() <= 1e-12 * s2.norm());
    o.model->score_and_jvp(x, t, v, s2, jv);
    CHECK((s - s2).norm() <= 1e-12 * s2.norm());
    const double h = 1e-5;
    o.model->score(x + h * v, t, sp);
    o.model->score(x - h * v, t, sm);
    const Matrix fd = (sp - sm) / (2 * h);
    for (Index j = 0; j < n; ++j) {
      CAPTURE(j);
      CHECK((jv.col(j) - fd.col(j)).norm() <= 1e-6 * std::max(1.0, fd.col(j).norm()));
    }
    Vector fd_div = Vector::Zero(n);
    for (Index i = 0; i < d; ++i) {
      Matrix e = Matrix::Zero(d, n);
      e.row(i).setOnes();
      o.model->score(x + h * e, t, sp);
      o.model->score(x - h * e, t, sm);
      fd_div += ((sp - sm) / (2 * h)).row(i).transpose();
    }
    CHECK((div - fd_div).norm() <= 1e-6 * std::max(1.0, fd_div.norm()));
  }
}

TEST_CASE("torchscript: every sampler runs, and samples do not depend on --threads") {
  const Opened o = open("noise_vp.pt");
  for (auto c : testing::all_cases()) {
    CAPTURE(c.label);
    c.options.steps = 8;
    c.options.rtol = c.options.atol = 1e-3;
    c.options.chunk = 4;
    c.options.validate(*o.sde);
    const auto report = sample(*o.sde, *o.model, c.options, 10);
    CHECK(report.samples.allFinite());
    CHECK(report.samples.cols() == 10);
  }
  SamplerOptions options;
  options.steps = 10;
  options.chunk = 3;
  options.threads = 1;
  const auto one = sample(*o.sde, *o.model, options, 11);
  options.threads = 2;
  const auto two = sample(*o.sde, *o.model, options, 11);
  CHECK(one.samples == two.samples);
}

TEST_CASE("torchscript: sample, likelihood and evaluate-score from the command line") {
  TempDir dir("torchscript");
  const std::string model = fixture("noise_vp.pt");
  const std::string out = dir.file("s.npy");
  Result r = run({"sample", "--model", model, "--steps", "10", "-n", "6", "--out", out, "--quiet"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::ifstream in(out + ".json");
  const auto meta = nlohmann::json::parse(in);
  CHECK(meta.dump().find("\"parameterization\":\"noise\"") != std::string::npos);
  CHECK(r.err.find("warning") == std::string::npos);

  // An SDE value given replaces the declared one, with a warning naming it; so does --parameterization.
  r = run({"sample", "--model", model, "--beta-max", "15", "--parameterization", "scaled_score", "--steps", "5", "-n",
           "4", "--out", dir.file("o.npy"), "--quiet"});
  REQUIRE(r.code == 0);
  check_contains(r.err, "--beta-max");
  check_contains(r.err, "override the SDE");
  check_contains(r.err, "--parameterization = scaled_score overrides");

  // No SDE declared: --sde fills it in; without it, a named error.
  r = run({"sample", "--model", fixture("no_sde.pt"), "--sde", "subvp", "--steps", "5", "-n", "4", "--out",
           dir.file("n.npy"), "--quiet"});
  CHECK(r.code == 0);
  r = run({"sample", "--model", fixture("no_sde.pt"), "--steps", "5", "-n", "4", "--out", dir.file("m.npy")});
  CHECK(r.code == 2);
  check_contains(r.err, "--sde");

  r = run({"likelihood", "--model", model, "--points", "eight_gaussians", "-n", "8", "--out", dir.file("l.npy")});
  INFO(r.err);
  CHECK(r.code == 0);
  r = run({"likelihood", "--model", model, "--points", "eight_gaussians", "-n", "8", "--divergence", "hutchinson",
           "--out", dir.file("h.npy")});
  INFO(r.err);
  CHECK(r.code == 0);
  r = run({"evaluate-score", "--model", model, "--data", "eight_gaussians", "-n", "50", "--times", "0.5"});
  INFO(r.err);
  CHECK(r.code == 0);
}

TEST_CASE("torchscript: a study runs a TorchScript score") {
  TempDir dir("torchscript-study");
  const Result r = run({"study",
                        "--data",
                        "eight_gaussians",
                        "--score",
                        fixture("noise_vp.pt"),
                        "--sde",
                        "vp",
                        "--sampler",
                        "euler_maruyama",
                        "--steps",
                        "5",
                        "--seeds",
                        "1",
                        "-n",
                        "20",
                        "--metrics",
                        "mean_error",
                        "--out",
                        dir.file("study"),
                        "--quiet"});
  INFO(r.out);
  INFO(r.err);
  CHECK(r.code == 0);
}

TEST_CASE("torchscript: broken modules and impossible declarations are named errors with exit status 2") {
  TempDir dir("torchscript-bad");
  {
    std::ifstream in(fixture("noise_vp.pt"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    dir.write("truncated.pt", bytes.substr(0, bytes.size() / 2));
  }
  dir.write("text.pt", "not a TorchScript archive\n");
  struct Case {
    std::string path;
    std::vector<std::string> extra;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {fixture("no_metadata.pt"), {}, {"no_metadata.pt", "scoresde.json"}},
      {fixture("wrong_shape.pt"), {}, {"wrong_shape.pt", "shape"}},
      {fixture("wrong_dtype.pt"), {}, {"wrong_dtype.pt", "Double"}},
      {dir.file("truncated.pt"), {}, {"truncated.pt", "TorchScript"}},
      {dir.file("text.pt"), {}, {"text.pt", "TorchScript"}},
      {dir.file("missing.pt"), {}, {"missing.pt", "no such file"}},
      {fixture("v_ve.pt"), {}, {"--parameterization = v", "vp"}},
      {fixture("noise_vp.pt"), {"--sde", "ve", "--parameterization", "v"}, {"--parameterization = v"}},
      {fixture("noise_vp.pt"), {"--parameterization", "x0"}, {"--parameterization = x0"}},
      {fixture("noise_vp.pt"), {"--dim", "3"}, {"--dim = 3"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.path);
    std::vector<std::string> args = {"sample", "--model", c.path,  "--steps",          "3",
                                     "-n",     "2",       "--out", dir.file("bad.npy")};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const Result r = run(args);
    CHECK(r.code == 2);
    for (const auto& needle : c.needles) check_contains(r.err, needle);
    CHECK(!fs::exists(dir.file("bad.npy")));
  }
}

namespace {

const nlohmann::json& dpm_solver_discrete() {
  static const nlohmann::json j = [] {
    const char* dir = std::getenv("SCORESDE_SOURCE_DIR");
    std::ifstream in(std::string(dir ? dir : ".") + "/tests/data/golden/discrete_schedule.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

}  // namespace

TEST_CASE("torchscript: the index time input is DPM-Solver's model_wrapper time, (t - 1/N) 1000 for N = 1000") {
  // echo_index.pt returns its time input; read as a data prediction, the score at x = 0 is alpha o / sigma^2.
  const Opened o = open("echo_index.pt");
  const auto& golden = dpm_solver_discrete()["schedules"]["ddpm_linear_1000"];
  REQUIRE(o.source->trained_sde()->alphas_cumprod == golden["alphas_cumprod"].get<std::vector<double>>());
  REQUIRE(o.source->recorded_time_input() == TimeInput::index);
  const auto times = golden["times"].get<std::vector<double>>();
  const Index n = static_cast<Index>(times.size());
  const Matrix x = Matrix::Zero(2, n);
  Vector t(n);
  for (Index j = 0; j < n; ++j) t(j) = times[j];
  Matrix s(2, n);
  o.model->score(x, t, s);
  for (Index j = 0; j < n; ++j) {
    CAPTURE(t(j));
    const double sigma = o.sde->sigma(t(j)), got = s(0, j) * sigma * sigma / o.sde->alpha(t(j));
    const double want = golden["model_input"][j];
    CHECK(std::abs(got - want) <= 1e-12 * std::max(1.0, std::abs(want)));
  }
}

TEST_CASE("torchscript: log_sigma and sigma time inputs are log sigma_t and sigma_t / alpha_t") {
  for (const auto& [input, name] :
       {std::pair{TimeInput::log_sigma, "log_sigma"}, std::pair{TimeInput::sigma, "sigma"}}) {
    CAPTURE(name);
    auto spec = ScoreSpec::file(fixture("echo_index.pt"));
    spec.time_input = input;
    const auto source = open_score(spec);
    const auto sde = make_sde(*source->trained_sde());
    const auto model = source->make(*sde);
    const Vector t = Vector::LinSpaced(5, 0.01, 0.95);
    Matrix s(2, 5);
    model->score(Matrix::Zero(2, 5), t, s);
    for (Index j = 0; j < 5; ++j) {
      const double sigma = sde->sigma(t(j)), got = s(1, j) * sigma * sigma / sde->alpha(t(j));
      const double want = input == TimeInput::sigma ? sde->sigma_tilde(t(j)) : std::log(sigma);
      CHECK(std::abs(got - want) <= 1e-12 * std::max(1.0, std::abs(want)));
    }
  }
  // index needs a discrete schedule.
  const auto source = open_score(ScoreSpec::file(fixture("echo_index.pt")));
  const auto linear = make_sde(SdeOptions{});
  CHECK_THROWS_WITH_AS(source->make(*linear), doctest::Contains("--time-input = index"), ConfigError);
}

TEST_CASE("torchscript: a module on DDPM steps samples as the exact score under the same discrete schedule") {
  // gauss_*_index.pt compute the exact noise prediction of N(mu, s^2 I) (gaussian.json) from the DDPM step alone;
  // scoresde's exact score of that Gaussian under the same discrete SDE must give the same samples: the two differ
  // by the rounding of two evaluations of the same interpolation (~1e-15 in the score), which the samplers carry
  // to the end with a gain of O(1)-O(100). Tolerance 1e-9.
  const auto exact = open_score(ScoreSpec::exact(fixture("gaussian.json")));
  for (const auto* name : {"gauss_ddpm_index.pt", "gauss_short_index.pt"}) {
    CAPTURE(name);
    const Opened o = open(name);
    CHECK(o.sde->options().schedule == VpSchedule::discrete);
    CHECK(o.sde->default_eps() == 1.0 / static_cast<double>(o.sde->options().alphas_cumprod.size()));
    const auto reference = exact->make(*o.sde);
    // The scores first, on [0, 1] (below 1/N too, where both run the segment from alpha_0 = 1).
    const Index n = 40;
    Matrix x = 2.0 * Matrix::Random(2, n);
    Vector t = Vector::LinSpaced(n, 1e-4, 1.0);
    Matrix got(2, n), want(2, n);
    o.model->score(x, t, got);
    reference->score(x, t, want);
    for (Index j = 0; j < n; ++j) CHECK((got.col(j) - want.col(j)).norm() <= 1e-12 * (1 + want.col(j).norm()));
    for (const auto* sampler : {"euler_maruyama", "ode", "dpm_solver", "dpmpp_2m"}) {
      CAPTURE(sampler);
      SamplerOptions options;
      options.sampler = sampler;
      options.steps = 25;
      options.time_grid = "logsnr";
      options.seed = 11;
      options.validate(*o.sde);
      const auto a = sample(*o.sde, *o.model, options, 50);
      const auto b = sample(*o.sde, *reference, options, 50);
      CHECK(a.samples.allFinite());
      CHECK((a.samples - b.samples).cwiseAbs().maxCoeff() <= 1e-9);
    }
  }
}

TEST_CASE("torchscript: image-shaped modules, their divergence, samplers, and a shape they refuse") {
  const Opened o = open("conv_image.pt");
  CHECK(o.model->dim() == 32);
  const Index n = 3;
  Matrix x = Matrix::Random(32, n), v = Matrix::Random(32, n);
  const Vector t = Vector::LinSpaced(n, 0.2, 0.8);
  Matrix s(32, n), s2(32, n), jv(32, n), sp(32, n), sm(32, n);
  Vector div(n);
  o.model->score_and_divergence(x, t, s, div);
  o.model->score_and_jvp(x, t, v, s2, jv);
  CHECK((s - s2).norm() <= 1e-12 * s.norm());
  // A float32 module: central differences with h = 1e-2 (truncation ~h^2 against float32 rounding ~1e-7 / h).
  const double h = 1e-2;
  o.model->score(x + h * v, t, sp);
  o.model->score(x - h * v, t, sm);
  CHECK((jv - (sp - sm) / (2 * h)).norm() <= 1e-3 * jv.norm());
  Vector fd = Vector::Zero(n);
  for (Index i = 0; i < 32; ++i) {
    Matrix e = Matrix::Zero(32, n);
    e.row(i).setOnes();
    o.model->score(x + h * e, t, sp);
    o.model->score(x - h * e, t, sm);
    fd += ((sp - sm) / (2 * h)).row(i).transpose();
  }
  CHECK((div - fd).norm() <= 1e-3 * div.norm());
  // Outputs written into a strided block of a larger matrix.
  Matrix big = Matrix::Zero(40, n);
  o.model->score(x, t, big.topRows(32));
  CHECK((big.topRows(32) - s).norm() <= 1e-12 * s.norm());
  CHECK(big.bottomRows(8).norm() == 0.0);
  // In place: out is x.
  Matrix inplace = x;
  o.model->score(inplace, t, inplace);
  CHECK((inplace - s).norm() <= 1e-12 * s.norm());
  for (const auto* sampler : {"euler_maruyama", "ddim", "unipc"}) {
    SamplerOptions options;
    options.sampler = sampler;
    options.steps = 5;
    options.validate(*o.sde);
    CHECK(sample(*o.sde, *o.model, options, 7).samples.allFinite());
  }
  TempDir dir("torchscript-image");
  Result r = run({"sample", "--model", fixture("conv_image.pt"), "--steps", "4", "-n", "5", "--out", dir.file("i.npy"),
                  "--quiet"});
  INFO(r.err);
  CHECK(r.code == 0);
  r = run({"sample", "--model", fixture("conv_image_wrong.pt"), "--steps", "4", "-n", "5", "--out", dir.file("w.npy")});
  CHECK(r.code == 2);
  check_contains(r.err, "conv_image_wrong.pt");
  check_contains(r.err, "forward(x, t)");
  r = run({"sample", "--model", fixture("bad_shape_meta.pt"), "--steps", "4", "-n", "5", "--out", dir.file("b.npy")});
  CHECK(r.code == 2);
  check_contains(r.err, "\"shape\"");
}

TEST_CASE("torchscript: a discrete-schedule module from the command line; its SDE and time input in the record") {
  TempDir dir("torchscript-discrete");
  const std::string out = dir.file("s.npy");
  Result r = run({"sample", "--model", fixture("gauss_ddpm_index.pt"), "--sampler", "dpmpp_2m", "--time-grid", "logsnr",
                  "--steps", "10", "-n", "6", "--out", out, "--quiet"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::ifstream in(out + ".json");
  const auto meta = nlohmann::json::parse(in);
  const std::string text = meta.dump();
  CHECK(text.find("\"time-input\":\"index\"") != std::string::npos);
  CHECK(text.find("\"schedule\":\"discrete\"") != std::string::npos);
  CHECK(text.find("\"alphas-cumprod\":[") != std::string::npos);
  // The exact score under the same schedule from its file gives the same samples.
  r = run({"sample",
           "--data",
           fixture("gaussian.json"),
           "--sde",
           "vp",
           "--schedule",
           "discrete",
           "--alphas-cumprod",
           fixture("ddpm_alphas_cumprod.txt"),
           "--sampler",
           "dpmpp_2m",
           "--time-grid",
           "logsnr",
           "--steps",
           "10",
           "-n",
           "6",
           "--out",
           dir.file("e.npy"),
           "--quiet"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK((read_samples_npy(out) - read_samples_npy(dir.file("e.npy"))).cwiseAbs().maxCoeff() <= 1e-9);
  // Overriding the time input is a warning; index under another schedule a named error.
  r = run({"sample", "--model", fixture("gauss_ddpm_index.pt"), "--time-input", "t", "--steps", "3", "-n", "2", "--out",
           dir.file("o.npy"), "--quiet"});
  CHECK(r.code == 0);
  check_contains(r.err, "--time-input = t overrides what the model declares (index)");
  r = run({"sample", "--model", fixture("gauss_ddpm_index.pt"), "--schedule", "linear", "--steps", "3", "-n", "2",
           "--out", dir.file("l.npy")});
  CHECK(r.code == 2);
  check_contains(r.err, "--time-input = index");
  r = run({"sample", "--data", "eight_gaussians", "--time-input", "index", "--steps", "3", "-n", "2", "--out",
           dir.file("x.npy")});
  CHECK(r.code == 2);
  check_contains(r.err, "--time-input");
  r = run({"likelihood", "--model", fixture("gauss_ddpm_index.pt"), "--points", fixture("gaussian.json"), "-n", "4",
           "--out", dir.file("ll.npy")});
  INFO(r.err);
  CHECK(r.code == 0);
}

TEST_CASE("torchscript: scoresde's MLP converts both ways (scripts/scoresde_torch.py) and samples the same") {
  // A checkpoint of `scoresde train` -> an equivalent TorchScript module -> a checkpoint again. The module samples
  // as the checkpoint to float32 rounding: LibTorch's and scoresde's float32 kernels differ in the last bits
  // (~1e-7 relative per evaluation), carried to the end by a few tens of steps: 1e-5 relative. The round trip
  // back to a checkpoint is exact (float32 weights, float64 frequencies): the same samples bit for bit.
  TempDir dir("torchscript-convert");
  const char* source_dir = std::getenv("SCORESDE_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  const std::string script = std::string(source_dir) + "/scripts/scoresde_torch.py";
  struct Net {
    std::string name;
    std::vector<std::string> train;
  };
  const std::vector<Net> nets = {
      {"fourier_t", {"--data", "two_moons", "--width", "32", "--depth", "2"}},
      {"raw_logsigma_f64_ve",
       {"--data", "eight_gaussians", "--sde", "ve", "--width", "24", "--depth", "2", "--time-embedding", "raw",
        "--time-input", "log_sigma", "--precision", "float64"}},
  };
  for (const auto& net : nets) {
    CAPTURE(net.name);
    const std::string ckpt = dir.file(net.name + ".ckpt"), pt = dir.file(net.name + ".pt"),
                      back = dir.file(net.name + "_back.ckpt");
    std::vector<std::string> train = {"train", "--iterations", "200", "--batch-size", "64", "--out", ckpt, "--quiet"};
    train.insert(train.end(), net.train.begin(), net.train.end());
    Result r = run(train);
    INFO(r.err);
    REQUIRE(r.code == 0);
    REQUIRE(std::system(fmt::format("/usr/bin/python3 {} ckpt-to-pt {} {} >/dev/null", script, ckpt, pt).c_str()) == 0);
    REQUIRE(std::system(fmt::format("/usr/bin/python3 {} pt-to-ckpt {} {} >/dev/null", script, pt, back).c_str()) == 0);
    for (const auto* sampler : {"euler_maruyama", "dpmpp_2m"}) {
      CAPTURE(sampler);
      std::vector<Matrix> samples;
      for (const auto& model : {ckpt, pt, back}) {
        const std::string out = dir.file("s.npy");
        r = run({"sample", "--model", model, "--sampler", sampler, "--steps", "30", "-n", "64", "--seed", "3", "--out",
                 out, "--quiet"});
        INFO(r.err);
        REQUIRE(r.code == 0);
        samples.push_back(read_samples_npy(out));
      }
      const double scale = std::max(1.0, samples[0].cwiseAbs().maxCoeff());
      CHECK((samples[1] - samples[0]).cwiseAbs().maxCoeff() <= 1e-5 * scale);
      CHECK(samples[2] == samples[0]);
    }
  }
}
