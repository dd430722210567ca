// scoresde brownian: the Brownian increments W(t) - W(t_next) that a sampler draws (BrownianPath through
// StepContext::brownian, --noise and --seed as in `sample`), each with the step, part and interval it was asked for,
// so that other code can be run on the same noise (bench/reference_samplers.py feeds them to the authors' samplers).
// The sampler's steps are taken on a zero score from x = 0: which increments a step asks for depends on the grid and
// the options, never on x or the score. Sample j's increments are those of sample j of `scoresde sample` with the
// same options, whatever -n or --chunk.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/score_model.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace {
const char* brownian_usage =
    "Usage: scoresde brownian --sampler NAME [its options] [--noise K] [--seed S] [--sde ...] [--steps N |\n"
    "                         --time-grid FILE] -n N --dim D --out INCREMENTS.npy\n\n"
    "Writes the Brownian increments W(t) - W(t_next) that the sampler draws in `scoresde sample` with the same\n"
    "options, for samples 0 .. N-1, in the order it draws them: INCREMENTS.npy is (R N, D) float64, row r N + j the\n"
    "r-th increment of sample j, and INCREMENTS.npy.json lists the R requests {step, part, t, t_next} (part 0: the\n"
    "whole step; 1, 2, ...: the sub-intervals of a step that draws more than once; docs/samplers.md). Corrector noise\n"
    "is not included. Used to run other implementations on scoresde's noise (bench/reference_samplers.py).\n";

// Returns zero: the steps are taken only for the noise they ask for.
class ZeroScore final : public ScoreModel {
 public:
  explicit ZeroScore(Index dim) : dim_(dim) {}
  Index dim() const override { return dim_; }
  std::string describe() const override { return "zero"; }

 protected:
  void evaluate(ConstMatrixRef, ConstVectorRef, MatrixRef out) const override { out.setZero(); }

 private:
  Index dim_;
};

// The path of a chunk, with every increment asked of it kept.
class RecordingPath final : public BrownianPath {
 public:
  explicit RecordingPath(std::unique_ptr<BrownianPath> path) : path_(std::move(path)) {}
  void increment(Index step, double t, double t_next, MatrixRef out, int part) override {
    path_->increment(step, t, t_next, out, part);
    requests.push_back({{"step", step}, {"part", part}, {"t", t}, {"t_next", t_next}});
    values.emplace_back(out);
  }
  // The step's increment (part 0) and then its space-time Levy area (part "area").
  void increment_and_area(Index step, double t, double t_next, MatrixRef dw, MatrixRef area) override {
    path_->increment_and_area(step, t, t_next, dw, area);
    requests.push_back({{"step", step}, {"part", 0}, {"t", t}, {"t_next", t_next}});
    values.emplace_back(dw);
    requests.push_back({{"step", step}, {"part", "area"}, {"t", t}, {"t_next", t_next}});
    values.emplace_back(area);
  }
  nlohmann::ordered_json requests = nlohmann::ordered_json::array();
  std::vector<Matrix> values;

 private:
  std::unique_ptr<BrownianPath> path_;
};

}  // namespace

int brownian_command(const std::vector<std::string>& args, std::ostream& out, std::ostream&) {
  po::options_description opts("Output");
  // clang-format off
  opts.add_options()
      ("samples,n", po::value<Index>()->default_value(1), "samples 0 .. N-1")
      ("dim", po::value<Index>(), "dimension (required)")
      ("out", po::value<std::string>(), "output .npy (required); OUT.json lists the requests");
  // clang-format on
  po::options_description visible;
  visible.add(opts).add(sde_option_group()).add(sampler_option_group());
  po::variables_map vm;
  if (!parse_arguments(args, visible, brownian_usage, vm, out)) return 0;
  for (const char* key : {"dim", "out"})
    if (!vm.count(key)) throw ConfigError(fmt::format("--{}: required", key));
  const Index n = vm["samples"].as<Index>(), dim = vm["dim"].as<Index>();
  require(n >= 1, "-n/--samples", std::to_string(n), "must be >= 1");
  require(dim >= 1, "--dim", std::to_string(dim), "must be >= 1");
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "increments.npy");
  const auto sde = make_sde(sde_options_from(vm));
  SamplerOptions o = sampler_options_from(vm);
  o.adopt_grid_file(*sde, given(vm, "steps"));
  o.validate(*sde, true);
  if (is_adaptive(o))
    throw ConfigError(
        "--sampler: an adaptive method (dopri5, ggf) is not available here: its steps, and so its increments, depend "
        "on the state");
  const auto predictor =
      o.sampler == ode_sampler ? find_ode_method(o.ode_method).make(o) : make_predictor(o.resolved_predictor(), o);
  if (!predictor) throw ConfigError("--predictor none: no predictor, no Brownian increments");

  const ZeroScore model(dim);
  RecordingPath path(make_brownian_path(o.noise, o.seed, sde->T(), 0, dim, n));
  StepContext c(*sde, model, predictor->probability_flow(), 0, dim, n, path, o.seed);
  const std::vector<double> grid = o.grid(*sde).t;
  const auto state = predictor->make_state(dim, n);
  Matrix x = Matrix::Zero(dim, n);
  for (Index k = 0; k + 1 < static_cast<Index>(grid.size()); ++k) {
    const StepPosition at{grid, k, grid[k], grid[k + 1]};
    predictor->step(c, state.get(), x, at, o.denoise && at.last());
  }
  if (path.values.empty()) throw ConfigError(fmt::format("--sampler {}: draws no Brownian increments", o.sampler));
  Matrix increments(dim, static_cast<Index>(path.values.size()) * n);
  for (std::size_t r = 0; r < path.values.size(); ++r)
    increments.middleCols(static_cast<Index>(r) * n, n) = path.values[r];
  nlohmann::ordered_json meta;
  meta["requests"] = path.requests;
  meta["samples"] = n;
  meta["dim"] = dim;
  nlohmann::ordered_json resolved;
  record(sde->options(), resolved);
  record(o, *sde, resolved);
  meta["options"] = resolved;
  write_npy_with_json(
      out_path, [&](const std::string& tmp) { dump_samples_npy(tmp, increments); }, meta.dump(1) + "\n");
  return 0;
}

}  // namespace scoresde
