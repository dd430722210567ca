// Every registered stepper as a sampler configuration, so that generic tests cover new entries automatically:
// each SDE predictor alone, each corrector after reverse_diffusion, each ODE method, and each deterministic sampler
// (a predictor of the probability-flow ODE) in every variant its options offer.
#pragma once

#include <string>
#include <vector>

#include "solvers/options.hpp"
#include "solvers/registry.hpp"
#include "solvers/sampler.hpp"

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
    const auto predictor = e.make(o);
    if (predictor->probability_flow()) continue;  // deterministic_cases()
    if (e.adaptive) continue;                     // adaptive_sde_cases()
    const auto info = predictor->info();
    cases.push_back({"predictor " + e.name, o, info.strong_order, info.weak_order});
  }
  return cases;
}

// The adaptive SDE predictors (ggf) as --sampler NAME at their default tolerances. They take their own steps, so
// the fixed-step tests (NFE per grid step, order against N) do not apply: tests/test_adaptive_sde.cpp checks them.
inline std::vector<SamplerCase> adaptive_sde_cases() {
  std::vector<SamplerCase> cases;
  for (const auto& e : predictor_registry()) {
    if (!e.adaptive) continue;
    SamplerOptions o;
    o.sampler = e.name;
    const auto info = e.make(o)->info();
    cases.push_back({"adaptive " + e.name, o, info.strong_order, info.weak_order});
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

// The options whose every value a deterministic sampler is tested with, in the order they are expanded (an option's
// condition of use may depend on those before it: --solver-type only for multistep order 2).
inline const std::vector<std::string>& variant_keys() {
  static const std::vector<std::string> keys{"order",        "solver-method", "solver-type",
                                             "dpmpp3m-form", "unipc-variant", "unic"};
  return keys;
}

// Every predictor of the probability-flow ODE as --sampler NAME, once per combination of the values of the options
// in variant_keys() that apply to it (--order over its range), with the declared order of that variant.
inline std::vector<SamplerCase> deterministic_cases() {
  std::vector<SamplerCase> cases;
  const auto& table = sampler_option_table();
  for (const auto& e : predictor_registry()) {
    SamplerOptions o;
    o.sampler = e.name;
    if (!e.make(o)->probability_flow()) continue;
    std::vector<std::pair<SamplerOptions, std::string>> variants{{o, e.name}};
    for (const auto& key : variant_keys()) {
      const auto* spec = find_option(table, key);
      std::vector<std::pair<SamplerOptions, std::string>> next;
      for (const auto& [v, label] : variants) {
        if (!spec->used_by(v)) {
          next.emplace_back(v, label);
          continue;
        }
        std::vector<std::string> values;
        if (key == "order") {
          for (const auto& r : order_ranges())
            if (r.sampler == e.name)
              for (int k = r.min; k <= r.max; ++k) values.push_back(std::to_string(k));
        } else if (spec->choices) {
          values = spec->choices();
        } else {
          values = {"on", "off"};
        }
        for (const auto& value : values) {
          SamplerOptions w = v;
          spec->set(w, value);
          next.emplace_back(w, label + " --" + key + " " + value);
        }
      }
      variants = std::move(next);
    }
    for (const auto& [v, label] : variants) {
      const auto info = e.make(v)->info();
      cases.push_back({label, v, info.strong_order, info.weak_order});
    }
  }
  return cases;
}

inline std::vector<SamplerCase> all_cases() {
  auto cases = predictor_cases();
  for (auto& c : deterministic_cases()) cases.push_back(c);
  for (auto& c : corrector_cases()) cases.push_back(c);
  for (auto& c : ode_cases()) cases.push_back(c);
  for (auto& c : adaptive_sde_cases()) cases.push_back(c);
  return cases;
}

}  // namespace scoresde::testing
