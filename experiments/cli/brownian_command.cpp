// scoresde brownian: the Brownian increments W(t) - W(t_next) that a stochastic sampler draws (BrownianPath, --noise
// and --seed as in `sample`), for a list of requests (step, part, t, t_next), so that other code can be run on the
// same noise (bench/reference_samplers.py feeds them to the authors' samplers). Sample j's increments are those of
// sample j of `scoresde sample` with the same --noise and --seed, whatever -n or --chunk.
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"

namespace scoresde {

namespace {
const char* brownian_usage =
    "Usage: scoresde brownian [--noise independent|brownian_tree] [--seed S] [--sde vp|subvp|ve ...] -n N --dim D\n"
    "                         --requests FILE --out INCREMENTS.npy\n\n"
    "Writes the Brownian increments W(t) - W(t_next) that the samplers of `scoresde sample` draw with the same\n"
    "--noise, --seed and SDE (its horizon T), for samples 0 .. N-1. FILE has one request a line, \"step part t\n"
    "t_next\" (t > t_next; '#' starts a comment): step k of the grid and the part of the step (0: the whole step;\n"
    "1, 2, ...: the sub-intervals a sampler asks for on its own; docs/reproducibility.md). independent noise keys the\n"
    "increment by (sample, step, part); brownian_tree by the times alone. INCREMENTS.npy is (R N, D) float64: row\n"
    "r N + j is request r for sample j.\n";

struct Request {
  Index step;
  int part;
  double t, t_next;
};

std::vector<Request> read_requests(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("--requests {}: cannot open the file", path));
  std::vector<Request> requests;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    Request r{};
    if (!(words >> r.step)) continue;
    std::string rest;
    if (!(words >> r.part >> r.t >> r.t_next) || (words >> rest) || r.step < 0 || r.part < 0 || !(r.t > r.t_next) ||
        !(r.t_next >= 0))
      throw InputError(
          fmt::format("--requests {}: line {}: expected \"step part t t_next\" with step, part >= 0 and "
                      "t > t_next >= 0",
                      path, number));
    requests.push_back(r);
  }
  if (requests.empty()) throw InputError(fmt::format("--requests {}: no requests", path));
  return requests;
}

}  // namespace

int brownian_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  (void)err;
  po::options_description opts("Brownian increments");
  // clang-format off
  opts.add_options()
      ("samples,n", po::value<Index>()->default_value(1), "samples 0 .. N-1")
      ("dim", po::value<Index>(), "dimension (required)")
      ("requests", po::value<std::string>(), "FILE of requests \"step part t t_next\" (required)")
      ("out", po::value<std::string>(), "output .npy (required)");
  // clang-format on
  const auto& table = sampler_option_table();
  po::options_description visible;
  visible.add(opts)
      .add(sde_option_group())
      .add(option_group<SamplerOptions>("Noise", table, SamplerOptions{},
                                        [](const auto& spec) { return spec.key == "noise" || spec.key == "seed"; }));
  po::variables_map vm;
  if (!parse_arguments(args, visible, brownian_usage, vm, out)) return 0;
  for (const char* key : {"dim", "requests", "out"})
    if (!vm.count(key)) throw ConfigError(fmt::format("--{}: required", key));
  const Index n = vm["samples"].as<Index>(), dim = vm["dim"].as<Index>();
  require(n >= 1, "-n/--samples", std::to_string(n), "must be >= 1");
  require(dim >= 1, "--dim", std::to_string(dim), "must be >= 1");
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "increments.npy");
  const auto sde = make_sde(sde_options_from(vm));
  SamplerOptions noise;
  read_group(table, vm, noise);
  const auto requests = read_requests(vm["requests"].as<std::string>());
  for (const auto& r : requests)
    require(r.t <= sde->T(), "--requests", vm["requests"].as<std::string>(),
            fmt::format("t = {} is beyond the SDE's horizon T = {}", r.t, sde->T()));

  const auto path = make_brownian_path(noise.noise, noise.seed, sde->T(), 0, dim, n);
  Matrix increments(dim, static_cast<Index>(requests.size()) * n);
  for (std::size_t r = 0; r < requests.size(); ++r) {
    Matrix w(dim, n);
    path->increment(requests[r].step, requests[r].t, requests[r].t_next, w, requests[r].part);
    increments.middleCols(static_cast<Index>(r) * n, n) = w;
  }
  write_samples_npy(out_path, increments);
  return 0;
}

}  // namespace scoresde
