// Speed of the MLP score network (models/mlp.hpp, models/training.hpp) next to Eigen's sgemm on the same
// shapes, for the two networks of docs/benchmarks.md ("MLP score network"): 2-128-128-2 and 2-256-256-256-2,
// raw time appended to x (input [x, t], 3 rows), SiLU, float32, noise parameterisation, VP SDE (beta 0.1..20).
//
//   sgemm/NET/BATCH          the network's products W_l H_l alone (Eigen, float, no bias or activation): the
//                            machine's measured sgemm rate on these shapes, the denominator of every
//                            fraction_of_sgemm counter
//   forward/NET/BATCH        Mlp<float>::forward on a BATCH-column input (no derivatives kept)
//   score/NET/BATCH          MlpScore::score: double in and out, network times and the 1 / sigma_t scaling
//   sample/NET/BATCH/T       scoresde::sample: Euler-Maruyama on the reverse VP SDE, kSteps steps, BATCH
//                            samples, T threads, default chunk of 256 samples (prior draws and noise included)
//   train/NET/BATCH/T        Trainer::step: minibatch draws, DSM loss (sigma^2 weighting, mean reduction) and
//                            gradient, global-norm clipping, Adam and the EMA, T threads
//
// Counters: GFLOPs = floating-point rate with 2 m n k per product of m x k by k x n (forward: the L layer
// products; training: forward plus, in backward, the weight gradients of every layer and the input
// gradients of layers 1..L-1, i.e. 3x forward minus the first layer's input gradient), fraction_of_sgemm =
// GFLOPs / the sgemm rate of the same network and batch (measured once per process, best of 10),
// sample_evals_per_s = columns x steps per second, iterations_per_s for training. Each benchmark runs after
// a warm-up, three repetitions, reported as the best ("min" aggregate; its rate counters are those of the
// slowest repetition, take rates from the min time as bench/run_mlp_benchmarks.sh does).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/build_info.hpp"
#include "core/noise.hpp"
#include "core/sde.hpp"
#include "models/datasets.hpp"
#include "models/mlp.hpp"
#include "models/training.hpp"
#include "solvers/driver.hpp"
#include "solvers/options.hpp"

namespace {

using namespace scoresde;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;

constexpr int kSteps = 20;  // sampling steps per run; the rate per sample evaluation does not depend on it

MlpArchitecture architecture(int net) {
  MlpArchitecture a;
  a.dim = 2;
  a.hidden = net == 0 ? std::vector<Index>{128, 128} : std::vector<Index>{256, 256, 256};
  a.time_embedding = TimeEmbedding::raw;
  a.precision = Precision::float32;
  a.parameterization = Parameterization::noise;
  return a;
}

std::string net_name(int net) {
  return net == 0 ? "2-128-128-2" : "2-256-256-256-2";
}

// Floating-point operations of one forward pass over one column.
double forward_flops(const MlpArchitecture& a) {
  double f = 0;
  for (int l = 0; l < a.layers(); ++l) f += 2.0 * static_cast<double>(a.fan_in(l) * a.fan_out(l));
  return f;
}

// One training step's products per column: forward, weight gradients, input gradients of layers >= 1.
double training_flops(const MlpArchitecture& a) {
  return 3.0 * forward_flops(a) - 2.0 * static_cast<double>(a.fan_in(0) * a.fan_out(0));
}

struct Inputs {
  Matrix x;
  Vector t;
};

Inputs inputs(Index d, Index n) {
  Inputs in{Matrix(d, n), Vector(n)};
  const CounterRng rng(1, NoisePurpose::metric);
  rng.normals(0, 0, 0, in.x.data(), in.x.size());
  rng.uniforms(0, 1, 0, in.t.data(), n);
  in.t = (1e-3 + (1.0 - 1e-3) * in.t.array()).matrix();
  return in;
}

const Sde& vp() {
  static const std::unique_ptr<Sde> sde = make_sde(SdeOptions{});
  return *sde;
}

// The network's products W_l H_l (out x in by in x n) with Eigen, no bias or activation.
struct SgemmShapes {
  std::vector<MatF> w, h, out;
  SgemmShapes(const MlpArchitecture& a, Index n) {
    for (int l = 0; l < a.layers(); ++l) {
      w.push_back(MatF::Random(a.fan_out(l), a.fan_in(l)));
      h.push_back(MatF::Random(a.fan_in(l), n));
      out.push_back(MatF(a.fan_out(l), n));
    }
  }
  void run() {
    for (std::size_t l = 0; l < w.size(); ++l) out[l].noalias() = w[l] * h[l];
  }
};

// sgemm GFLOP/s for (net, batch), measured once per process: best of 10 timings of at least 0.05 s each.
double sgemm_rate(int net, Index n) {
  static std::map<std::pair<int, Index>, double> cache;
  const auto key = std::make_pair(net, n);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const MlpArchitecture a = architecture(net);
  SgemmShapes s(a, n);
  s.run();
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {
    long runs = 0;
    const auto start = std::chrono::steady_clock::now();
    double seconds = 0;
    do {
      s.run();
      ++runs;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } while (seconds < 0.05);
    best = std::max(best, forward_flops(a) * static_cast<double>(n) * static_cast<double>(runs) / seconds / 1e9);
  }
  return cache[key] = best;
}

void set_counters(benchmark::State& state, int net, Index n, double flops_per_iteration,
                  double sample_evals_per_iteration) {
  state.counters["GFLOPs"] =
      benchmark::Counter(flops_per_iteration / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  if (sample_evals_per_iteration > 0)
    state.counters["sample_evals_per_s"] =
        benchmark::Counter(sample_evals_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
  const double sgemm = sgemm_rate(net, n);
  state.counters["sgemm_GFLOPs"] = sgemm;
  state.counters["fraction_of_sgemm"] =
      benchmark::Counter(flops_per_iteration / 1e9 / sgemm, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(net_name(net));
}

void BM_Sgemm(benchmark::State& state) {
  const int net = static_cast<int>(state.range(0));
  const Index n = state.range(1);
  const MlpArchitecture a = architecture(net);
  SgemmShapes s(a, n);
  for (auto _ : state) {
    s.run();
    benchmark::ClobberMemory();
  }
  set_counters(state, net, n, forward_flops(a) * static_cast<double>(n), 0);
}

void BM_Forward(benchmark::State& state) {
  const int net = static_cast<int>(state.range(0));
  const Index n = state.range(1);
  const MlpArchitecture a = architecture(net);
  const Mlp<float> mlp(a, Vector());
  const Eigen::VectorXf params = initial_weights(a, 0).cast<float>();
  const Inputs in = inputs(a.dim, n);
  Mlp<float>::Workspace ws;
  for (auto _ : state) {
    mlp.forward(params.data(), in.x, in.t, ws, false);
    benchmark::DoNotOptimize(ws.output(mlp).data());
    benchmark::ClobberMemory();
  }
  set_counters(state, net, n, forward_flops(a) * static_cast<double>(n), static_cast<double>(n));
}

void BM_Score(benchmark::State& state) {
  const int net = static_cast<int>(state.range(0));
  const Index n = state.range(1);
  const MlpArchitecture a = architecture(net);
  const MlpScore model(a, Vector(), initial_weights(a, 0), vp());
  const Inputs in = inputs(a.dim, n);
  Matrix out(a.dim, n);
  for (auto _ : state) {
    model.score(in.x, in.t, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, net, n, forward_flops(a) * static_cast<double>(n), static_cast<double>(n));
}

void BM_Sample(benchmark::State& state) {
  const int net = static_cast<int>(state.range(0));
  const Index n = state.range(1);
  const MlpArchitecture a = architecture(net);
  const MlpScore model(a, Vector(), initial_weights(a, 0), vp());
  SamplerOptions o;
  o.sampler = "euler_maruyama";
  o.steps = kSteps;
  o.threads = static_cast<int>(state.range(2));
  for (auto _ : state) {
    SampleReport report = sample(vp(), model, o, n);
    benchmark::DoNotOptimize(report.samples.data());
    benchmark::ClobberMemory();
  }
  // Columns evaluated include the padding of the last chunk; the rate counts the n requested samples.
  const double evals = static_cast<double>(n) * kSteps;
  set_counters(state, net, n, forward_flops(a) * evals, evals);
}

void BM_Train(benchmark::State& state) {
  const int net = static_cast<int>(state.range(0));
  const Index n = state.range(1);
  const MlpArchitecture a = architecture(net);
  TrainingOptions o;
  o.batch_size = n;
  o.threads = static_cast<int>(state.range(2));
  o.iterations = 1000000;
  o.validation_fraction = 0;
  Trainer trainer(a, vp(), o, load_training_data("two_moons", 100000, 0, 2), Matrix(2, 0));
  for (auto _ : state) {
    trainer.step();
    benchmark::DoNotOptimize(trainer.last_loss());
  }
  set_counters(state, net, n, training_flops(a) * static_cast<double>(n), 0);
  state.counters["iterations_per_s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}

double best(const std::vector<double>& v) {
  return *std::min_element(v.begin(), v.end());
}

void common(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(0.1)
      ->MinTime(0.3)
      ->Repetitions(3)
      ->ComputeStatistics("min", best)
      ->DisplayAggregatesOnly(true);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"net", "batch"});
  for (int net : {0, 1})
    for (int n : {512, 10000}) b->Args({net, n});
  common(b);
}

void threaded(benchmark::internal::Benchmark* b) {
  b->ArgNames({"net", "batch", "threads"});
  for (int net : {0, 1})
    for (int n : {512, 10000})
      for (int threads : {1, 2}) b->Args({net, n, threads});
  common(b);
}

BENCHMARK(BM_Sgemm)->Name("sgemm")->Apply(shapes);
BENCHMARK(BM_Forward)->Name("forward")->Apply(shapes);
BENCHMARK(BM_Score)->Name("score")->Apply(shapes);
BENCHMARK(BM_Sample)->Name("sample")->Apply(threaded);
BENCHMARK(BM_Train)->Name("train")->Apply(threaded);

}  // namespace

// BENCHMARK_MAIN plus scoresde's build context in the JSON "context" block (see bench_sampling.cpp).
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const nlohmann::json context = scoresde::build_context();
  for (const auto& [key, value] : context.items())
    benchmark::AddCustomContext("scoresde_" + key, value.is_string() ? value.get<std::string>() : value.dump());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
