// Wall time of scoresde::sample on the job of docs/benchmarks.md: n = 10,000 samples of eight_gaussians from
// the VP SDE (beta 0.1..20, T = 1, eps = 1e-3) with the exact score (MixtureScore), N = 1000 steps, on 1 and
// 2 threads.
//
//   em          euler_maruyama; 1 score evaluation per step
//   pc          pc = reverse_diffusion + langevin, snr 0.16, one corrector step; 2 per step. Default Langevin
//               norms: averaged over each chunk, as the reference code averages them over its whole batch.
//   ode_dopri5  probability-flow ODE, dopri5, rtol = atol = 1e-5, one step-size controller per chunk
//
// Each iteration runs the whole job; a repetition runs as many iterations as fill 0.1 s (one, at the times
// seen so far), three repetitions follow a warm-up run, and "min" is the best repetition (the PyTorch
// baseline also reports its best of 3 after a warm-up). Counters: samples_steps_per_s = n N / time
// (fixed-step samplers), samples_per_s = n / time, nfe = score evaluations per sample, cpu_all_threads_s =
// CPU seconds of the whole process per run (Google Benchmark's CPU column is the main thread's). Run with
// --benchmark_out=FILE.json --benchmark_out_format=json for the context block and every repetition. The "min"
// row applies min to the counters too, so its rates are those of the slowest repetition: take rates from the
// min time (bench/run_benchmarks.sh does).
#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/build_info.hpp"
#include "core/sde.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "solvers/driver.hpp"
#include "solvers/options.hpp"

namespace {

using namespace scoresde;

constexpr Index kSamples = 10000;
constexpr int kSteps = 1000;

struct Problem {
  std::unique_ptr<Sde> sde = make_sde(SdeOptions{});  // vp, linear, beta 0.1..20, T = 1
  std::shared_ptr<const GaussianMixture> data = load_data("eight_gaussians", 0);
  MixtureScore model{data, *sde};
};

const Problem& problem() {
  static const Problem p;
  return p;
}

SamplerOptions options_for(const std::string& job, int threads) {
  SamplerOptions o;
  o.steps = kSteps;
  o.threads = threads;
  if (job == "em") {
    o.sampler = "euler_maruyama";
  } else if (job == "pc") {
    o.sampler = "pc";
    o.predictor = "reverse_diffusion";
    o.corrector = "langevin";
    o.snr = 0.16;
    o.corrector_steps = 1;
  } else if (job == "ode_dopri5") {
    o.sampler = "ode";
    o.ode_method = "dopri5";
    o.rtol = 1e-5;
    o.atol = 1e-5;
  }
  return o;
}

// CPU time of the whole process, all threads: with threads = 2 and no other load it is close to the 1-thread
// figure when the parallel split adds no work, whatever the wall time shows on a machine shared with others.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void BM_Sample(benchmark::State& state, const std::string& job) {
  const Problem& p = problem();
  const SamplerOptions options = options_for(job, static_cast<int>(state.range(0)));
  double nfe = 0, process_cpu = 0;
  for (auto _ : state) {
    const double cpu0 = process_cpu_seconds();
    SampleReport report = sample(*p.sde, p.model, options, kSamples);
    benchmark::DoNotOptimize(report.samples.data());
    benchmark::ClobberMemory();
    process_cpu += process_cpu_seconds() - cpu0;
    nfe = report.nfe_mean();
  }
  state.counters["cpu_all_threads_s"] = benchmark::Counter(process_cpu, benchmark::Counter::kAvgIterations);
  state.counters["samples_per_s"] =
      benchmark::Counter(static_cast<double>(kSamples), benchmark::Counter::kIsRate);
  if (job != "ode_dopri5")
    state.counters["samples_steps_per_s"] =
        benchmark::Counter(static_cast<double>(kSamples) * kSteps, benchmark::Counter::kIsRate);
  state.counters["nfe"] = nfe;
  state.SetLabel(job);
}

double best(const std::vector<double>& v) {
  return *std::min_element(v.begin(), v.end());
}

void configure(benchmark::internal::Benchmark* b) {
  b->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(0.05)  // at least one untimed run of the whole job
      ->MinTime(0.1)
      ->Repetitions(3)
      ->ComputeStatistics("min", best)
      ->DisplayAggregatesOnly(true);
}

BENCHMARK_CAPTURE(BM_Sample, em, std::string("em"))->Apply(configure);
BENCHMARK_CAPTURE(BM_Sample, pc, std::string("pc"))->Apply(configure);
BENCHMARK_CAPTURE(BM_Sample, ode_dopri5, std::string("ode_dopri5"))->Apply(configure);

}  // namespace

// BENCHMARK_MAIN plus scoresde's own build context (git revision, compiler, build type, flags) in the JSON
// "context" block; the block's library_build_type describes the Google Benchmark library, not scoresde.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const nlohmann::json context = scoresde::build_context();  // items() refers to it: keep it alive
  for (const auto& [key, value] : context.items())
    benchmark::AddCustomContext("scoresde_" + key,
                                value.is_string() ? value.get<std::string>() : value.dump());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
