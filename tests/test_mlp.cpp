// The MLP score network: gradients against central finite differences on every parameter block (double), the
// Jacobian-vector product and exact divergence against finite differences, thread safety, PyTorch .npz import
// against values computed by PyTorch (tests/data/make_torch_mlp.py), checkpoints: round trip, truncated,
// corrupted and mismatched files, and the score factory (models/score_factory.hpp) building the same models.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli_helpers.hpp"
#include "core/errors.hpp"
#include "core/noise.hpp"
#include "core/sde.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "models/mlp.hpp"
#include "models/score_factory.hpp"
#include "models/training.hpp"

using namespace scoresde;
namespace fs = std::filesystem;

namespace {

MlpArchitecture small_architecture(TimeEmbedding time, Parameterization p, Precision precision) {
  MlpArchitecture a;
  a.dim = 3;
  a.hidden = {7, 5};
  a.time_embedding = time;
  a.fourier_features = 4;
  a.fourier_scale = 1.5;
  a.parameterization = p;
  a.precision = precision;
  return a;
}

Matrix normals(std::uint64_t seed, Index rows, Index cols) {
  Matrix m(rows, cols);
  CounterRng(seed, NoisePurpose::metric).normals(0, 0, 0, m.data(), m.size());
  return m;
}

Vector times(std::uint64_t seed, Index n, double lo, double hi) {
  Vector t(n);
  CounterRng(seed, NoisePurpose::metric).uniforms(1, 0, 0, t.data(), n);
  return (lo + (hi - lo) * t.array()).matrix();
}

// max |central difference - grad(i)| over parameters i in [begin, end) of the DSM loss sum, h = 1e-6.
double finite_difference_error(const Mlp<double>& net, const Vector& params, const Sde& sde,
                               const TrainingOptions& options, const Matrix& x0, const Vector& t, const Matrix& z,
                               Mlp<double>::Workspace& ws, const Vector& grad, Index begin, Index end) {
  const double h = 1e-6;
  double max_err = 0;
  Vector q = params;
  for (Index i = begin; i < end; ++i) {
    q(i) = params(i) + h;
    const double up = dsm_loss_sum<double>(net, q.data(), sde, options, x0, t, z, ws, nullptr, 1.0);
    q(i) = params(i) - h;
    const double down = dsm_loss_sum<double>(net, q.data(), sde, options, x0, t, z, ws, nullptr, 1.0);
    q(i) = params(i);
    max_err = std::max(max_err, std::abs((up - down) / (2 * h) - grad(i)));
  }
  return max_err;
}

}  // namespace

TEST_CASE("mlp: DSM loss gradient matches central finite differences on every parameter block") {
  for (const auto time : {TimeEmbedding::fourier, TimeEmbedding::raw}) {
    for (const auto p : {Parameterization::noise, Parameterization::scaled_score}) {
      for (const auto weighting : {LossWeighting::sigma2, LossWeighting::likelihood}) {
        const auto arch = small_architecture(time, p, Precision::float64);
        const auto sde = make_sde(SdeOptions{});
        TrainingOptions options;
        options.weighting = weighting;
        options.reduction = weighting == LossWeighting::sigma2 ? LossReduction::mean : LossReduction::sum;
        const Mlp<double> net(arch, initial_frequencies(arch, 3));
        const Vector params = initial_weights(arch, 3);
        const Index n = 6;
        const Matrix x0 = normals(1, arch.dim, n), z = normals(2, arch.dim, n);
        const Vector t = times(3, n, 0.05, 1.0);
        Mlp<double>::Workspace ws;
        Vector grad = Vector::Zero(params.size());
        dsm_loss_sum<double>(net, params.data(), *sde, options, x0, t, z, ws, grad.data(), 1.0);
        // Central differences with h = 1e-6: truncation O(h^2) ~ 1e-12, rounding ~ 1e-16 |L| / h ~ 1e-9
        // relative.
        for (int l = 0; l < net.layers(); ++l) {
          for (const bool bias : {false, true}) {
            const Index begin = bias ? net.bias_offset(l) : net.weight_offset(l);
            const Index end = bias ? net.weight_offset(l) + arch.fan_out(l) * (arch.fan_in(l) + 1) : net.bias_offset(l);
            const double max_err = finite_difference_error(net, params, *sde, options, x0, t, z, ws, grad, begin, end);
            const double max_grad = grad.segment(begin, end - begin).cwiseAbs().maxCoeff();
            CAPTURE(to_string(time));
            CAPTURE(to_string(p));
            CAPTURE(to_string(weighting));
            CAPTURE(l);
            CAPTURE(bias);
            MESSAGE(fmt::format("gradient check {} {} {} layer {} {}: max |fd - grad| = {:.2e}, max |grad| = {:.2e}",
                                to_string(time), to_string(p), to_string(weighting), l, bias ? "b" : "W", max_err,
                                max_grad));
            CHECK(max_grad > 0);
            CHECK(max_err <= 1e-6 * std::max(1.0, max_grad));
          }
        }
      }
    }
  }
}

TEST_CASE("mlp: gradients through the tiled backward products match finite differences and float32") {
  // Widths that are whole register tiles (multiples of 16 rows and of 6 and 8 columns) and more columns than
  // one panel, so that backward runs its kernel products and their Eigen remainder columns.
  const auto sde = make_sde(SdeOptions{});
  TrainingOptions options;
  auto arch = small_architecture(TimeEmbedding::raw, Parameterization::noise, Precision::float64);
  arch.hidden = {48, 96};
  const Mlp<double> net(arch, Vector());
  const Vector params = initial_weights(arch, 3);
  const Index n = 21;
  const Matrix x0 = normals(1, arch.dim, n), z = normals(2, arch.dim, n);
  const Vector t = times(3, n, 0.05, 1.0);
  Mlp<double>::Workspace ws;
  Vector grad = Vector::Zero(params.size());
  dsm_loss_sum<double>(net, params.data(), *sde, options, x0, t, z, ws, grad.data(), 1.0);
  const double max_err = finite_difference_error(net, params, *sde, options, x0, t, z, ws, grad, 0, params.size());
  const double max_grad = grad.cwiseAbs().maxCoeff();
  MESSAGE(fmt::format("tiled backward: max |fd - grad| = {:.2e}, max |grad| = {:.2e}", max_err, max_grad));
  CHECK(max_err <= 1e-6 * std::max(1.0, max_grad));
  // float32, widths of whole float tiles: the same gradient to float rounding.
  arch.hidden = {64, 64};
  arch.precision = Precision::float32;
  const Mlp<double> net64(arch, Vector());
  const Mlp<float> net32(arch, Vector());
  const Vector p64 = initial_weights(arch, 5);
  const Eigen::VectorXf p32 = p64.cast<float>();
  Mlp<double>::Workspace ws64;
  Mlp<float>::Workspace ws32;
  Vector g64 = Vector::Zero(p64.size());
  Eigen::VectorXf g32 = Eigen::VectorXf::Zero(p32.size());
  dsm_loss_sum<double>(net64, p32.cast<double>().eval().data(), *sde, options, x0, t, z, ws64, g64.data(), 1.0);
  dsm_loss_sum<float>(net32, p32.data(), *sde, options, x0, t, z, ws32, g32.data(), 1.0);
  const double rel = (g32.cast<double>() - g64).cwiseAbs().maxCoeff() / g64.cwiseAbs().maxCoeff();
  MESSAGE(fmt::format("float32 vs float64 gradient: max relative difference {:.1e}", rel));
  CHECK(rel < 1e-4);
}

TEST_CASE("mlp: float32 and float64 networks agree") {
  const auto arch64 = small_architecture(TimeEmbedding::fourier, Parameterization::noise, Precision::float64);
  auto arch32 = arch64;
  arch32.precision = Precision::float32;
  const auto sde = make_sde(SdeOptions{});
  const Vector w = initial_weights(arch64, 5), f = initial_frequencies(arch64, 5);
  const MlpScore a(arch64, f, w, *sde), b(arch32, f, w, *sde);
  const Index n = 37;
  const Matrix x = normals(7, 3, n);
  const Vector t = times(8, n, 0.01, 1.0);
  Matrix oa(3, n), ob(3, n);
  a.network_output(x, t, oa);
  b.network_output(x, t, ob);
  CHECK((oa - ob).cwiseAbs().maxCoeff() < 1e-5 * std::max(1.0, oa.cwiseAbs().maxCoeff()));
}

TEST_CASE("mlp: score is -output / sigma_t (noise) and output / sigma_t (scaled_score)") {
  const auto sde = make_sde(SdeOptions{});
  for (const auto p : {Parameterization::noise, Parameterization::scaled_score}) {
    const auto arch = small_architecture(TimeEmbedding::raw, p, Precision::float64);
    const MlpScore m(arch, Vector(), initial_weights(arch, 1), *sde);
    const Index n = 5;
    const Matrix x = normals(1, 3, n);
    const Vector t = times(2, n, 0.1, 0.9);
    Matrix o(3, n), s(3, n);
    m.network_output(x, t, o);
    m.score(x, t, s);
    for (Index j = 0; j < n; ++j)
      CHECK((s.col(j) - (p == Parameterization::noise ? -1.0 : 1.0) * o.col(j) / sde->sigma(t(j))).norm() <
            1e-12 * o.col(j).norm() / sde->sigma(t(j)));
  }
}

TEST_CASE("mlp: Jacobian-vector products and exact divergence match finite differences") {
  const auto sde = make_sde(SdeOptions{});
  for (const auto time : {TimeEmbedding::fourier, TimeEmbedding::raw}) {
    const auto arch = small_architecture(time, Parameterization::noise, Precision::float64);
    const MlpScore m(arch, initial_frequencies(arch, 2), initial_weights(arch, 2), *sde);
    CHECK(m.has_jvp());
    CHECK(m.has_exact_divergence());
    const Index n = 9, d = 3;
    const Matrix x = normals(3, d, n), v = normals(4, d, n);
    const Vector t = times(5, n, 0.1, 1.0);
    Matrix s(d, n), jv(d, n), s2(d, n), sp(d, n), sm(d, n);
    Vector div(n);
    m.score_and_jvp(x, t, v, s, jv);
    m.score_and_divergence(x, t, s2, div);
    m.score(x, t, sp);
    CHECK((s - sp).norm() == 0);
    CHECK((s2 - sp).norm() == 0);
    const double h = 1e-6;
    m.score(x + h * v, t, sp);
    m.score(x - h * v, t, sm);
    const Matrix fd = (sp - sm) / (2 * h);
    CHECK((fd - jv).cwiseAbs().maxCoeff() < 1e-6 * std::max(1.0, jv.cwiseAbs().maxCoeff()));
    Vector fd_div = Vector::Zero(n);
    for (Index i = 0; i < d; ++i) {
      Matrix e = Matrix::Zero(d, n);
      e.row(i).setOnes();
      m.score(x + h * e, t, sp);
      m.score(x - h * e, t, sm);
      fd_div += ((sp - sm) / (2 * h)).row(i).transpose();
    }
    MESSAGE(fmt::format("{}: max |jvp - fd| = {:.2e}, max |div - fd| = {:.2e}", to_string(time),
                        (fd - jv).cwiseAbs().maxCoeff(), (fd_div - div).cwiseAbs().maxCoeff()));
    CHECK((fd_div - div).cwiseAbs().maxCoeff() < 1e-6 * std::max(1.0, div.cwiseAbs().maxCoeff()));
  }
}

TEST_CASE("mlp: a column's output is bitwise the same whatever the batch size and its position") {
  // Widths that are and are not multiples of the forward kernel's row tile, batches that are and are not
  // multiples of its column panel, and single columns.
  const auto sde = make_sde(SdeOptions{});
  for (const auto precision : {Precision::float32, Precision::float64}) {
    for (const auto time : {TimeEmbedding::fourier, TimeEmbedding::raw}) {
      for (const std::vector<Index>& hidden : {std::vector<Index>{7, 5}, std::vector<Index>{64, 48, 32}}) {
        auto arch = small_architecture(time, Parameterization::noise, precision);
        arch.hidden = hidden;
        const MlpScore m(arch, initial_frequencies(arch, 4), initial_weights(arch, 4), *sde);
        const Index n = 300;
        const Matrix x = normals(6, arch.dim, n);
        const Vector t = times(7, n, 0.01, 1.0);
        Matrix all(arch.dim, n);
        m.network_output(x, t, all);
        for (const auto& entry :
             std::vector<std::pair<Index, Index>>{{0, 1}, {5, 1}, {299, 1}, {3, 9}, {100, 137}, {17, 256}, {0, 300}}) {
          const auto& first = std::get<0>(entry);
          const auto& count = std::get<1>(entry);
          CAPTURE(first);
          CAPTURE(count);
          Matrix part(arch.dim, count);
          m.network_output(x.middleCols(first, count), t.segment(first, count), part);
          CHECK(std::memcmp(part.data(), all.middleCols(first, count).eval().data(),
                            sizeof(double) * static_cast<std::size_t>(part.size())) == 0);
        }
      }
    }
  }
}

TEST_CASE("mlp: evaluation from several threads gives the single-thread result") {
  const auto sde = make_sde(SdeOptions{});
  const auto arch = small_architecture(TimeEmbedding::fourier, Parameterization::noise, Precision::float32);
  const MlpScore m(arch, initial_frequencies(arch, 2), initial_weights(arch, 2), *sde);
  const Index n = 64;
  const Matrix x = normals(3, 3, n);
  const Vector t = times(5, n, 0.1, 1.0);
  Matrix expected(3, n);
  m.score(x, t, expected);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&] {
      Matrix out(3, n);
      for (int rep = 0; rep < 50; ++rep) {
        m.score(x, t, out);
        if (out != expected) ++mismatches;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == 0);
}

// ------------------------------------------------------------------------------------------------ PyTorch
// .npz

namespace {

std::string data_file(const std::string& name) {
  const char* s = std::getenv("SCORESDE_SOURCE_DIR");
  return (fs::path(s ? s : ".") / "tests" / "data" / name).string();
}

Matrix as_batch(const NpyArray& a) {  // (n, d) C order -> d x n
  const Index n = static_cast<Index>(a.shape[0]), d = a.shape.size() > 1 ? static_cast<Index>(a.shape[1]) : 1;
  return Eigen::Map<const Matrix>(a.data.data(), d, n);
}

using scoresde::test::TempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class F>
void check_input_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    FAIL("no InputError");
  } catch (const InputError& e) {
    const std::string what = e.what();
    INFO("message: " << what);
    for (const auto& n : needles) CHECK(what.find(n) != std::string::npos);
  }
}

Checkpoint small_checkpoint() {
  Checkpoint c;
  c.architecture = small_architecture(TimeEmbedding::fourier, Parameterization::noise, Precision::float32);
  c.frequencies = initial_frequencies(c.architecture, 1);
  c.weights = initial_weights(c.architecture, 1).cast<float>().cast<double>();
  c.ema = initial_weights(c.architecture, 2).cast<float>().cast<double>();
  c.sde.kind = SdeKind::subvp;
  c.sde.beta_max = 15;
  c.scaling.mean = Vector::LinSpaced(3, -1, 1);
  c.scaling.scale = Vector::LinSpaced(3, 0.5, 2);
  c.training = {{"iterations_done", 7}};
  return c;
}

}  // namespace

TEST_CASE("mlp: PyTorch .npz import reproduces PyTorch's outputs, scores, JVPs and divergences") {
  const ImportedMlp m = import_torch_npz(data_file("torch_mlp.npz"), Parameterization::noise);
  CHECK(m.architecture.dim == 2);
  CHECK(m.architecture.hidden == std::vector<Index>{32, 24});
  CHECK(m.architecture.time_embedding == TimeEmbedding::raw);
  const auto expected = read_npz(data_file("torch_mlp_expected.npz"));
  const Matrix x = as_batch(expected.at("x")), v = as_batch(expected.at("v"));
  const Vector t = as_batch(expected.at("t")).transpose();
  const Matrix output = as_batch(expected.at("output")), score = as_batch(expected.at("score_vp")),
               jvp = as_batch(expected.at("jvp_vp"));
  const Vector divergence = as_batch(expected.at("divergence_vp")).transpose();
  const Index n = x.cols();
  const auto sde = make_sde(SdeOptions{});
  for (const auto precision : {Precision::float32, Precision::float64}) {
    auto arch = m.architecture;
    arch.precision = precision;
    const MlpScore model(arch, Vector(), m.weights, *sde);
    Matrix o(2, n), s(2, n), s2(2, n), jv(2, n);
    Vector div(n);
    model.network_output(x, t, o);
    model.score(x, t, s);
    model.score_and_jvp(x, t, v, s2, jv);
    model.score_and_divergence(x, t, s2, div);
    // float32: rounding of ~1e-7 relative per operation over 3 layers; float64 agrees to rounding.
    const double tol = precision == Precision::float32 ? 2e-5 : 1e-12;
    const auto rel = [](const auto& a, const auto& b) {
      return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
    };
    MESSAGE(fmt::format("{}: relative errors vs PyTorch: output {:.1e}, score {:.1e}, jvp {:.1e}, divergence {:.1e}",
                        to_string(precision), rel(o, output), rel(s, score), rel(jv, jvp), rel(div, divergence)));
    CHECK(rel(o, output) < tol);
    CHECK(rel(s, score) < tol);
    CHECK(rel(jv, jvp) < tol);
    CHECK(rel(div, divergence) < tol);
  }
}

TEST_CASE("mlp: malformed .npz files are refused with the file and the problem") {
  TempDir dir;
  check_input_error([&] { import_torch_npz(dir.file("missing.npz"), Parameterization::noise); },
                    {"missing.npz", "cannot open"});
  const std::string bytes = read_bytes(data_file("torch_mlp.npz"));
  write_bytes(dir.file("truncated.npz"), bytes.substr(0, bytes.size() / 2));
  check_input_error([&] { import_torch_npz(dir.file("truncated.npz"), Parameterization::noise); }, {"truncated.npz"});
  write_bytes(dir.file("text.npz"), "W1,b1\n1,2\n");
  check_input_error([&] { import_torch_npz(dir.file("text.npz"), Parameterization::noise); },
                    {"text.npz", "not an .npz"});
  // The expected-values archive is a valid .npz without W1, b1, ...
  check_input_error([&] { import_torch_npz(data_file("torch_mlp_expected.npz"), Parameterization::noise); },
                    {"torch_mlp_expected.npz", "W1"});
}

TEST_CASE("mlp: arrays of an .npz beside the weights are ignored with a note naming them" *
          doctest::skip(!fs::exists("/usr/bin/python3"))) {
  TempDir dir;
  // The weights of torch_mlp.npz and, in the same archive, the self-test arrays of torch_mlp_expected.npz.
  const std::string merged = dir.file("with_extras.npz");
  const std::string command = fmt::format(
      "/usr/bin/python3 -c \"import numpy as np, sys; a = dict(np.load(sys.argv[1])); e = dict(np.load(sys.argv[2])); "
      "np.savez(sys.argv[3], **a, x_in=next(iter(e.values())))\" {} {} {}",
      data_file("torch_mlp.npz"), data_file("torch_mlp_expected.npz"), merged);
  REQUIRE(std::system(command.c_str()) == 0);
  std::vector<std::string> notes;
  const NoticeSink previous = set_notice_sink([&](const std::string& text) { notes.push_back(text); });
  const ImportedMlp with_extras = import_torch_npz(merged, Parameterization::noise);
  set_notice_sink(previous);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("with_extras.npz: ignoring array x_in, not among the MLP's W1, b1") != std::string::npos);
  CHECK(with_extras.weights == import_torch_npz(data_file("torch_mlp.npz"), Parameterization::noise).weights);
}

// ------------------------------------------------------------------------------------------------
// checkpoints

TEST_CASE("checkpoint: round trip keeps every field") {
  TempDir dir;
  const Checkpoint c = small_checkpoint();
  save_checkpoint(dir.file("m.ckpt"), c);
  CHECK(is_checkpoint_file(dir.file("m.ckpt")));
  CHECK_FALSE(fs::exists(dir.file(fmt::format("m.ckpt.tmp-{}", ::getpid()))));
  const Checkpoint r = load_checkpoint(dir.file("m.ckpt"));
  CHECK(r.architecture.dim == c.architecture.dim);
  CHECK(r.architecture.hidden == c.architecture.hidden);
  CHECK(r.architecture.fourier_features == c.architecture.fourier_features);
  CHECK(r.architecture.fourier_scale == c.architecture.fourier_scale);
  CHECK(r.architecture.parameterization == c.architecture.parameterization);
  CHECK(r.architecture.precision == c.architecture.precision);
  CHECK(r.frequencies == c.frequencies);
  CHECK(r.weights == c.weights);
  CHECK(r.ema == c.ema);
  CHECK(r.sde.kind == SdeKind::subvp);
  CHECK(r.sde.beta_max == 15);
  CHECK(r.scaling.mean == c.scaling.mean);
  CHECK(r.scaling.scale == c.scaling.scale);
  CHECK(r.training["iterations_done"] == 7);
}

TEST_CASE("checkpoint: truncated, corrupted, wrong-version and foreign files are clear errors") {
  TempDir dir;
  save_checkpoint(dir.file("m.ckpt"), small_checkpoint());
  const std::string bytes = read_bytes(dir.file("m.ckpt"));
  check_input_error([&] { load_checkpoint(dir.file("missing.ckpt")); }, {"missing.ckpt", "cannot open"});
  for (const std::size_t keep :
       {std::size_t{0}, std::size_t{5}, std::size_t{15}, std::size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    CAPTURE(keep);
    write_bytes(dir.file("t.ckpt"), bytes.substr(0, keep));
    check_input_error([&] { load_checkpoint(dir.file("t.ckpt")); },
                      {"t.ckpt", keep < 8 ? "not a scoresde checkpoint" : "truncated"});
  }
  for (const std::size_t at : {std::size_t{30}, bytes.size() - 100, bytes.size() - 3}) {
    CAPTURE(at);
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x5A);
    write_bytes(dir.file("c.ckpt"), bad);
    check_input_error([&] { load_checkpoint(dir.file("c.ckpt")); }, {"c.ckpt", "corrupted"});
  }
  std::string v2 = bytes;
  v2[8] = 2;
  write_bytes(dir.file("v2.ckpt"), v2);
  check_input_error([&] { load_checkpoint(dir.file("v2.ckpt")); }, {"v2.ckpt", "version 2", "version 1"});
  write_bytes(dir.file("text.ckpt"), "hello, world");
  check_input_error([&] { load_checkpoint(dir.file("text.ckpt")); }, {"text.ckpt", "not a scoresde checkpoint"});
  write_bytes(dir.file("long.ckpt"), bytes + "x");
  check_input_error([&] { load_checkpoint(dir.file("long.ckpt")); }, {"long.ckpt", "corrupted"});
}

TEST_CASE("checkpoint and .npz readers: every truncation and every flipped byte is an InputError, never a crash") {
  TempDir dir;
  save_checkpoint(dir.file("m.ckpt"), small_checkpoint());
  for (const std::string source : {dir.file("m.ckpt"), data_file("torch_mlp.npz")}) {
    const bool npz = source.ends_with(".npz");
    const std::string bytes = read_bytes(source);
    const auto load = [&](const std::string& path) {
      if (npz)
        import_torch_npz(path, Parameterization::noise);
      else
        load_checkpoint(path);
    };
    const std::string path = dir.file(npz ? "x.npz" : "x.ckpt");
    int refused = 0, accepted = 0;
    for (std::size_t keep = 0; keep < bytes.size(); keep += npz ? 37 : 11) {
      write_bytes(path, bytes.substr(0, keep));
      try {
        load(path);
        ++accepted;
      } catch (const InputError&) {
        ++refused;
      }
    }
    CHECK(accepted == 0);
    for (std::size_t at = 0; at < bytes.size(); at += npz ? 23 : 7) {
      std::string bad = bytes;
      bad[at] = static_cast<char>(bad[at] ^ 0x41);
      write_bytes(path, bad);
      try {
        load(path);
        ++accepted;  // a flipped byte inside an .npz payload can still be a valid array: allowed for .npz
                     // only
      } catch (const InputError&) {
        ++refused;
      }
    }
    MESSAGE(fmt::format("{}: {} damaged files refused, {} accepted", source, refused, accepted));
    if (!npz) CHECK(accepted == 0);
  }
}

TEST_CASE("score factory: checkpoints, .npz weights and mixtures give the models built directly, bitwise") {
  TempDir dir;
  Checkpoint c = small_checkpoint();
  c.training["command"] = "scoresde train --out m.ckpt";
  save_checkpoint(dir.file("m.ckpt"), c);
  const auto sde = make_sde(c.sde);
  const auto evaluate = [](const ScoreModel& model) {
    const Index n = 37;
    const Matrix x = 2.0 * normals(5, model.dim(), n);
    const Vector t = Vector::LinSpaced(n, 0.01, 1.0);
    Matrix out(model.dim(), n);
    model.score(x, t, out);
    return out;
  };

  // A checkpoint: its SDE, scaling and training record; its EMA weights, or the raw ones.
  const auto source = open_score(ScoreSpec::file(dir.file("m.ckpt")));
  CHECK(source->dim() == c.architecture.dim);
  REQUIRE(source->trained_sde());
  CHECK(source->trained_sde()->kind == SdeKind::subvp);
  CHECK(source->trained_sde()->beta_max == 15);
  CHECK(source->scaling().mean == c.scaling.mean);
  CHECK(source->scaling().scale == c.scaling.scale);
  CHECK(source->training()["iterations_done"] == 7);
  CHECK(source->training_command() == "scoresde train --out m.ckpt");
  CHECK(source->mixture() == nullptr);
  CHECK(evaluate(*source->make(*sde)) == evaluate(MlpScore(c.architecture, c.frequencies, c.ema, *sde)));
  CHECK(evaluate(*open_score(ScoreSpec::file(dir.file("m.ckpt"), "raw"))->make(*sde)) ==
        evaluate(MlpScore(c.architecture, c.frequencies, c.weights, *sde)));
  CHECK(evaluate(*checkpoint_score(std::make_shared<const Checkpoint>(c))->make(*sde)) ==
        evaluate(MlpScore(c.architecture, c.frequencies, c.ema, *sde)));
  CHECK_THROWS_AS(open_score(ScoreSpec::file(dir.file("m.ckpt"), "best"))->make(*sde), ConfigError);
  check_input_error([&] { open_score(ScoreSpec::file(dir.file("missing.ckpt"))); }, {"missing.ckpt", "cannot open"});

  // PyTorch weights: no SDE of their own, identity scaling; the parameterisation given, or the SDE's convention.
  const std::string npz = data_file("torch_mlp.npz");
  const auto weights = open_score(ScoreSpec::file(npz));
  CHECK_FALSE(weights->trained_sde());
  CHECK(weights->scaling().mean == Vector::Zero(weights->dim()));
  CHECK(weights->scaling().scale == Vector::Ones(weights->dim()));
  CHECK(weights->training_command().empty());
  for (const SdeKind kind : {SdeKind::vp, SdeKind::ve}) {
    SdeOptions o;
    o.kind = kind;
    const auto s = make_sde(o);
    for (const Parameterization p : {Parameterization::noise, Parameterization::scaled_score}) {
      const ImportedMlp m = import_torch_npz(npz, p);
      CHECK(evaluate(*open_score(ScoreSpec::file(npz, "ema", p))->make(*s)) ==
            evaluate(MlpScore(m.architecture, Vector(), m.weights, *s)));
    }
    const ImportedMlp conventional = import_torch_npz(npz, default_parameterization(kind));
    CHECK(evaluate(*weights->make(*s)) ==
          evaluate(MlpScore(conventional.architecture, Vector(), conventional.weights, *s)));
  }

  // A mixture's exact score: any SDE, identity scaling.
  const ScaledScoreModel exact = make_score_model(ScoreSpec::exact("eight_gaussians"), *sde);
  CHECK(exact.scaling.mean == Vector::Zero(2));
  CHECK(exact.scaling.scale == Vector::Ones(2));
  CHECK(evaluate(*exact.model) == evaluate(MixtureScore(load_data("eight_gaussians", 0), *sde)));
  const auto gaussian = open_score(ScoreSpec::exact("gaussian", 3));
  CHECK(gaussian->dim() == 3);
  CHECK_FALSE(gaussian->trained_sde());
  REQUIRE(gaussian->mixture() != nullptr);
  CHECK(gaussian->mixture()->dim() == 3);
}
