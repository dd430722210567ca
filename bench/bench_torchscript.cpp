// One score evaluation of a TorchScript module through scoresde (ScoreModel::score: the states copied once into a
// tensor of the module's type, the module's forward, its output copied once back and turned into the score), for
// the comparison with the same module called from Python in bench/reference_torchscript.py
// (bench/run_torchscript_benchmarks.sh runs both, docs/benchmarks.md "TorchScript models").
//
//   bench_torchscript [--batches 512,10000] [--threads 1,2] [--repeats R] [--json FILE] NAME=MODEL.pt ...
//
// Per module, batch and thread count: R timed evaluations after one warm-up, the best reported, in ms. With T
// threads the batch is cut into T equal chunks evaluated at once on T OpenMP threads, each a module call with one
// LibTorch intra-op thread: how the sampling driver spreads a batch over --threads (solvers/driver.cpp). The states
// are N(0, I) draws at t = 0.5 (the time does not change the cost). Prints a line per case; with --json, appends
// them to FILE as JSON lines {"program": "scoresde", "net", "batch", "threads", "ms"}.
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/option_table.hpp"
#include "core/sde.hpp"
#include "models/score_factory.hpp"

namespace {

using namespace scoresde;

std::vector<long> numbers(const std::string& text) {
  std::vector<long> out;
  for (const auto& item : option_text::split_list(text)) out.push_back(std::stol(item));
  return out;
}

double evaluate_ms(const ScoreModel& model, const Matrix& x, const Vector& t, Matrix& out, int threads) {
  const Index n = x.cols(), chunk = (n + threads - 1) / threads;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static, 1) num_threads(threads)
  for (int c = 0; c < threads; ++c) {
    const Index begin = c * chunk, size = std::min(chunk, n - begin);
    if (size > 0) model.score(x.middleCols(begin, size), t.segment(begin, size), out.middleCols(begin, size));
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<long> batches{512, 10000}, thread_counts{1, 2};
  int repeats = 10;
  std::string json;
  std::vector<std::pair<std::string, std::string>> models;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw ConfigError(a + ": needs a value");
      return argv[++i];
    };
    if (a == "--batches") {
      batches = numbers(next());
    } else if (a == "--threads") {
      thread_counts = numbers(next());
    } else if (a == "--repeats") {
      repeats = std::stoi(next());
    } else if (a == "--json") {
      json = next();
    } else if (const auto eq = a.find('='); eq != std::string::npos) {
      models.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    } else {
      std::cerr << "bench_torchscript: unknown argument " << a << " (see the header of bench/bench_torchscript.cpp)\n";
      return 2;
    }
  }
  std::ofstream json_out;
  if (!json.empty()) json_out.open(json, std::ios::app);
  for (const auto& [name, path] : models) {
    const auto source = open_score(ScoreSpec::file(path));
    const auto sde = make_sde(*source->trained_sde());
    const auto model = source->make(*sde);
    for (const long batch : batches) {
      std::mt19937_64 gen(1);
      std::normal_distribution<double> normal;
      Matrix x(model->dim(), batch), out(model->dim(), batch);
      for (Index j = 0; j < x.size(); ++j) x.data()[j] = normal(gen);
      const Vector t = Vector::Constant(batch, 0.5);
      for (const long threads : thread_counts) {
        evaluate_ms(*model, x, t, out, static_cast<int>(threads));  // warm-up
        double best = std::numeric_limits<double>::infinity();
        for (int r = 0; r < repeats; ++r)
          best = std::min(best, evaluate_ms(*model, x, t, out, static_cast<int>(threads)));
        std::cout << fmt::format("scoresde {} batch {} threads {}: {:.3f} ms\n", name, batch, threads, best);
        if (json_out)
          json_out << fmt::format(
              "{{\"program\": \"scoresde\", \"net\": \"{}\", \"batch\": {}, \"threads\": {}, \"ms\": {}}}\n", name,
              batch, threads, best);
      }
    }
  }
  return 0;
}
