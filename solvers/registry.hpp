// The registry of steppers. Adding a sampler is one file (with its header block) plus one line here in
// registry.cpp; the generic tests (tests/test_samplers.cpp) iterate over these lists, so a new entry is covered
// by the order, reproducibility and bad-input tests without further work.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "solvers/options.hpp"
#include "solvers/sampler.hpp"

namespace scoresde {

struct PredictorEntry {
  std::string name;
  std::function<std::unique_ptr<Predictor>(const SamplerOptions&)> make;
};
struct CorrectorEntry {
  std::string name;
  std::function<std::unique_ptr<Corrector>(const SamplerOptions&)> make;
};
struct OdeMethodEntry {
  std::string name;
  bool adaptive;
  double order;
  // Fixed-step methods are predictors of the probability-flow ODE; adaptive ones are run by the driver's
  // adaptive path (solvers/ode.hpp) and have no factory here.
  std::function<std::unique_ptr<Predictor>(const SamplerOptions&)> make;
};

const std::vector<PredictorEntry>& predictor_registry();  // "none" is not listed
const std::vector<CorrectorEntry>& corrector_registry();  // "none" is not listed
const std::vector<OdeMethodEntry>& ode_method_registry();

std::vector<std::string> predictor_names();  // with "none"
std::vector<std::string> corrector_names();  // with "none"
std::vector<std::string> ode_method_names();

// nullptr for "none"; ConfigError naming the option and the valid names for an unknown name.
std::unique_ptr<Predictor> make_predictor(const std::string& name, const SamplerOptions& options);
std::unique_ptr<Corrector> make_corrector(const std::string& name, const SamplerOptions& options);
const OdeMethodEntry& find_ode_method(const std::string& name);

// Factories, one per sampler file.
std::unique_ptr<Predictor> make_euler_maruyama(const SamplerOptions&);
std::unique_ptr<Predictor> make_reverse_diffusion(const SamplerOptions&);
std::unique_ptr<Predictor> make_ancestral(const SamplerOptions&);
std::unique_ptr<Corrector> make_langevin(const SamplerOptions&);
std::unique_ptr<Corrector> make_annealed_langevin(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_euler(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_rk4(const SamplerOptions&);

}  // namespace scoresde
