// The MLP score network: gradients against central finite differences on every parameter block (double), the
// Jacobian-vector product and exact divergence against finite differences, thread safety, PyTorch .npz import
// against values computed by PyTorch (tests/data/make_torch_mlp.py), and checkpoints: round trip, truncated,
// corrupted and mismatched files.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <unistd.h>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "core/sde.hpp"
#include "models/checkpoint.hpp"
#include "models/mlp.hpp"
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
        const auto loss_at = [&](const Vector& q) {
          return dsm_loss_sum<double>(net, q.data(), *sde, options, x0, t, z, ws, nullptr, 1.0);
        };
        // Central differences with h = 1e-6: truncation O(h^2) ~ 1e-12, rounding ~ 1e-16 |L| / h ~ 1e-9
        // relative.
        for (int l = 0; l < net.layers(); ++l) {
          for (const bool bias : {false, true}) {
            const Index begin = bias ? net.bias_offset(l) : net.weight_offset(l);
            const Index end =
                bias ? net.weight_offset(l) + arch.fan_out(l) * (arch.fan_in(l) + 1) : net.bias_offset(l);
            double max_err = 0, max_grad = 0;
            for (Index i = begin; i < end; ++i) {
              const double h = 1e-6;
              Vector q = params;
              q(i) += h;
              const double up = loss_at(q);
              q(i) -= 2 * h;
              const double down = loss_at(q);
              const double fd = (up - down) / (2 * h);
              max_err = std::max(max_err, std::abs(fd - grad(i)));
              max_grad = std::max(max_grad, std::abs(grad(i)));
            }
            CAPTURE(to_string(time));
            CAPTURE(to_string(p));
            CAPTURE(to_string(weighting));
            CAPTURE(l);
            CAPTURE(bias);
            MESSAGE(fmt::format(
                "gradient check {} {} {} layer {} {}: max |fd - grad| = {:.2e}, max |grad| = {:.2e}",
                to_string(time), to_string(p), to_string(weighting), l, bias ? "b" : "W", max_err, max_grad));
            CHECK(max_grad > 0);
            CHECK(max_err <= 1e-6 * std::max(1.0, max_grad));
          }
        }
      }
    }
  }
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
