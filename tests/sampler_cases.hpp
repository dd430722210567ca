// Every registered stepper as a sampler configuration, so that generic tests cover new entries automatically:
// each SDE predictor alone, each stochastic sampler (--eta, --s-churn) in its stochastic setting and every variant
// its options offer, each corrector after reverse_diffusion, each ODE method, and each deterministic sampler
// (a predictor of the probability-flow ODE) in every variant its options offer.
#pragma once

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "solvers/options.hpp"
#include "solvers/registry.hpp"
#include "solvers/sampler.hpp"

namespace scoresde::testing {

inline bool bitwise_equal(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * a.size()) == 0;
}

// Every SDE with its default parameters, and VP with the cosine schedule.
inline std::vector<SdeOptions> all_sdes() {
  std::vector<SdeOptions> out;
  for (const SdeKind kind : {SdeKind::vp, SdeKind::subvp, SdeKind::ve}) {
    SdeOptions o;
    o.kind = kind;
    out.push_back(o);
  }
  SdeOptions cosine;
  cosine.kind = SdeKind::vp;
  cosine.schedule = VpSchedule::cosine;
  out.push_back(cosine);
  return out;
}

struct SamplerCase {
  std::string label;
  SamplerOptions options;
  double strong_order = 0;  // declared; 0 where not applicable
  double weak_order = 0;
  // A stochastic sampler's steps converge, on the grids of the order tests, to the SDE
  //   dx = [f x - (1 + limit_eta^2) g^2 s / 2] dt + limit_eta g dW
  // (limit_eta = 1: the reverse SDE), whose moments on Gaussian data the weak-order test has in closed form.
  double limit_eta = 1;
  // Options that depend on the SDE, set by the order tests before they run the case (for_sde(options, sde)).
  std::function<void(SamplerOptions&, const Sde&)> for_sde = {};
};

// The options whose every value a sampler is tested with, in the order they are expanded (an option's condition of
// use may depend on those before it: --solver-type only for multistep order 2).
inline const std::vector<std::string>& variant_keys() {
  static const std::vector<std::string> keys{"order",        "solver-method", "solver-type",
                                             "dpmpp3m-form", "unipc-variant", "unic"};
  return keys;
}

// `o` (for --sampler `name`) once per combination of the values of the options in variant_keys() that apply to it
// (--order over its range), with labels.
inline std::vector<std::pair<SamplerOptions, std::string>> variants(const SamplerOptions& o, const std::string& name,
                                                                    const std::string& label) {
  const auto& table = sampler_option_table();
  std::vector<std::pair<SamplerOptions, std::string>> out{{o, label}};
  for (const auto& key : variant_keys()) {
    const auto* spec = find_option(table, key);
    std::vector<std::pair<SamplerOptions, std::string>> next;
    for (const auto& [v, l] : out) {
      if (!spec->used_by(v)) {
        next.emplace_back(v, l);
        continue;
      }
      std::vector<std::string> values;
      if (key == "order") {
        for (const auto& r : order_ranges())
          if (r.sampler == name)
            for (int k = r.min; k <= r.max; ++k) values.push_back(std::to_string(k));
      } else if (spec->choices) {
        values = spec->choices();
      } else {
        values = {"on", "off"};
      }
      for (const auto& value : values) {
        SamplerOptions w = v;
        spec->set(w, value);
        next.emplace_back(w, l + " --" + key + " " + value);
      }
    }
    out = std::move(next);
  }
  return out;
}

// True for a sampler with a stochastic knob (--eta, --s-churn or --tau) in sampler_option_table().
inline bool has_stochastic_knob(const std::string& name) {
  SamplerOptions o;
  o.sampler = name;
  const auto& table = sampler_option_table();
  return find_option(table, "eta")->used_by(o) || find_option(table, "s-churn")->used_by(o) ||
         find_option(table, "tau")->used_by(o);
}

// Every sampler with --eta or --s-churn, as --sampler NAME in its stochastic setting, in every variant, on logsnr
// grids: these samplers step in log-SNR lambda (or log sigma~), and on a grid uniform in t the last step's lambda
// increment shrinks only like log(1 / (N eps)) / 2 (about 0.8 at N = 256 on VP), which keeps the order tests' step
// counts out of their asymptotic range (measured strong slopes 0.7 on VE, 0.8-1.5 on VP). Their stochastic settings:
//   --eta: its default where that is > 0, else 1. The ancestral samplers (ddim, euler_ancestral, dpmpp_sde) and the
//     SDE multistep ones (dpmpp_2m_sde, dpmpp_3m_sde) all converge to the reverse SDE at eta = 1.
//   --tau: its default 1 (sa_solver: the reverse SDE).
//   --s-churn: on a grid uniform in log sigma~ (logsnr), gamma = S_churn / N is a constant multiple of the step in
//     log sigma~, Lambda / N, and the churn adds 2 gamma sigma~^2 of variance per step where the reverse SDE adds
//     2 sigma~^2 (Lambda / N): the steps converge to the family above with limit_eta^2 = S_churn / Lambda (Karras et
//     al. 2022, eq. 6, beta = limit_eta^2 dlog sigma~ / dt). S_churn = Lambda / 2 keeps gamma below its cap sqrt(2) - 1
//     from N = 16 steps on the test SDEs. (On other grids the limit is an SDE of the same family with a
//     time-dependent eta, which the weak test's closed form does not cover.)
inline std::vector<SamplerCase> stochastic_cases() {
  std::vector<SamplerCase> cases;
  const auto& table = sampler_option_table();
  for (const auto& e : predictor_registry()) {
    if (!has_stochastic_knob(e.name)) continue;
    SamplerOptions o;
    o.sampler = e.name;
    o.time_grid = "logsnr";
    std::string label = e.name;
    double limit_eta = 1;
    std::function<void(SamplerOptions&, const Sde&)> for_sde;
    if (find_option(table, "eta")->used_by(o) && o.resolved_eta() == 0) {
      o.eta = 1;
      label += " --eta 1";
    }
    if (find_option(table, "s-churn")->used_by(o)) {
      static constexpr double share = 0.5;  // static: the lambda uses it without a capture (clang and GCC alike)
      o.s_churn = 1;  // stochastic at construction; for_sde sets the value
      limit_eta = std::sqrt(share);
      for_sde = [](SamplerOptions& s, const Sde& sde) {
        s.s_churn = share * (sde.lambda(s.resolved_eps(sde)) - sde.lambda(sde.T()));
      };
      label += " --s-churn Lambda/2";
    }
    for (auto [v, l] : variants(o, e.name, label + " --time-grid logsnr")) {
      const auto info = e.make(v)->info();
      cases.push_back({l, v, info.strong_order, info.weak_order, limit_eta, for_sde});
    }
  }
  return cases;
}

// The SDE predictors alone (--sampler pc --predictor NAME --corrector none), then stochastic_cases().
inline std::vector<SamplerCase> predictor_cases() {
  std::vector<SamplerCase> cases;
  for (const auto& e : predictor_registry()) {
    if (has_stochastic_knob(e.name)) continue;  // stochastic_cases()
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
  for (auto& c : stochastic_cases()) cases.push_back(c);
  return cases;
}

// The deterministic sampler that a stochastic one is with --eta 0, --s-churn 0 and --tau 0, bit for bit: the same
// options with this --sampler (itself for ddim, edm_euler, edm_heun and sa_solver).
inline std::string deterministic_counterpart(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> pairs{{"euler_ancestral", "edm_euler"},
                                                                      {"dpmpp_sde", "dpmpp_2s"},
                                                                      {"dpmpp_2m_sde", "dpmpp_2m"},
                                                                      {"dpmpp_3m_sde", "dpmpp_3m"}};
  for (const auto& [stochastic, deterministic] : pairs)
    if (stochastic == name) return deterministic;
  return name;
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

// Every predictor of the probability-flow ODE as --sampler NAME, once per combination of the values of the options
// in variant_keys() that apply to it (--order over its range), with the declared order of that variant.
inline std::vector<SamplerCase> deterministic_cases() {
  std::vector<SamplerCase> cases;
  for (const auto& e : predictor_registry()) {
    SamplerOptions o;
    o.sampler = e.name;
    if (!e.make(o)->probability_flow()) continue;
    for (const auto& [v, label] : variants(o, e.name, e.name)) {
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
