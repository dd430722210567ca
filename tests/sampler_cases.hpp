// Every registered stepper as a sampler configuration, so that generic tests cover new entries automatically:
// each predictor alone, each corrector after reverse_diffusion, each ODE method.
#pragma once

#include <string>
#include <vector>

#include "solvers/options.hpp"
#include "solvers/registry.hpp"

namespace scoresde::testing {

struct SamplerCase {
  std::string label;
  SamplerOptions options;
  double strong_order = 0;  // declared; 0 where not applicable
  double weak_order = 0;
};

inline std::vector<SamplerCase> predictor_cases() {
  std::vector<SamplerCase> cases;
  for (const auto& e : predictor_registry()) {
    SamplerOptions o;
    o.sampler = "pc";
    o.predictor = e.name;
    o.corrector = "none";
    const auto info = e.make(o)->info();
    cases.push_back({"predictor " + e.name, o, info.strong_order, info.weak_order});
  }
  return cases;
}

inline std::vector<SamplerCase> corrector_cases() {
  std::vector<SamplerCase> cases;
  for (const auto& e : corrector_registry()) {
    SamplerOptions o;
    o.sampler = "pc";
    o.predictor = "reverse_diffusion";
    o.corrector = e.name;
    cases.push_back({"corrector " + e.name, o});
    if (e.name == "langevin") {
      for (auto norm : {LangevinNorm::sample}) {
        o.langevin_norm = norm;
        cases.push_back({"corrector langevin, norm " + to_string(norm), o});
      }
    }
  }
  return cases;
}

inline std::vector<SamplerCase> ode_cases() {
  std::vector<SamplerCase> cases;
  for (const auto& e : ode_method_registry()) {
    SamplerOptions o;
    o.sampler = "ode";
    o.ode_method = e.name;
    cases.push_back({"ode " + e.name, o, e.order, e.order});
    if (e.adaptive) {
      o.ode_control = OdeControl::sample;
      cases.push_back({"ode " + e.name + ", per-sample control", o, e.order, e.order});
    }
  }
  return cases;
}

inline std::vector<SamplerCase> all_cases() {
  auto cases = predictor_cases();
  for (auto& c : corrector_cases()) cases.push_back(c);
  for (auto& c : ode_cases()) cases.push_back(c);
  return cases;
}

}  // namespace scoresde::testing
