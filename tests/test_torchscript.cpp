// TorchScript score models (models/torchscript_score.hpp), built only with LibTorch. The modules are written before
// this test by tests/data/make_torchscript_fixtures.py (a ctest fixture, Debian's python3-torch) into the directory
// SCORESDE_TORCHSCRIPT_DIR, with PyTorch's own evaluation in expected.json. Checked: scores against PyTorch for
// every parameterisation and both float types, divergences and JVPs against finite differences, every sampler,
// the same samples for any --threads, the command line (sample, likelihood, evaluate-score, study) and broken
// modules as named errors with exit status 2.
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
  for (const auto* name : {"noise_vp.pt", "data_ve.pt", "v_vp.pt", "scaled_ve_traced.pt"}) {
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
  for (const auto* name : {"data_ve.pt", "v_vp.pt"}) {  // float64 modules
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
