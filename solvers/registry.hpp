// The registry of steppers. Adding a sampler is one file in solvers/ (with its header block and a factory
// function) plus its entry in registry.cpp: the factory's declaration and one line in the list. CMake builds every
// solvers/*.cpp, a new predictor is also a --sampler of the same name, and the generic tests
// (tests/test_samplers.cpp, tests/test_sampler_orders_slow.cpp) iterate over these lists, so a new entry is
// covered by the order, reproducibility and bad-input tests without further work.
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
  bool adaptive = false;  // takes its own steps under --rtol/--atol (the predictor's error_order() > 0)
};
struct CorrectorEntry {
  std::string name;
  std::function<std::unique_ptr<Corrector>(const SamplerOptions&)> make;
};
struct OdeMethodEntry {
  std::string name;
  bool adaptive;
  double order;
  // Every method is a predictor of the probability-flow ODE; the driver runs the adaptive ones (error_order() > 0)
  // with its step-size controller.
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

// Score evaluations per grid step of a fixed-step configuration (the predictor's, plus the corrector's times its
// iterations), from the steppers' declared StepperInfo; 0 for adaptive ones, whose count is not known in advance.
int evaluations_per_step(const SamplerOptions& options);

}  // namespace scoresde
