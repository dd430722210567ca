#include "solvers/options.hpp"

#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/errors.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::string to_string(LangevinNorm norm) { return std::string(enum_name(norm)); }
LangevinNorm langevin_norm_from_string(std::string_view name) {
  return enum_from_name<LangevinNorm>(name, "langevin-norm");
}
std::string to_string(OdeControl control) { return std::string(enum_name(control)); }
OdeControl ode_control_from_string(std::string_view name) { return enum_from_name<OdeControl>(name, "ode-control"); }

std::vector<std::string> sampler_names() {
  // Every predictor alone, then predictor-corrector and the probability-flow ODE.
  std::vector<std::string> names;
  for (const auto& e : predictor_registry()) names.push_back(e.name);
  names.emplace_back(pc_sampler);
  names.emplace_back(ode_sampler);
  return names;
}

bool is_adaptive(const SamplerOptions& o) {
  if (o.sampler != ode_sampler) return false;
  const auto& methods = ode_method_registry();
  return std::any_of(methods.begin(), methods.end(),
                     [&](const OdeMethodEntry& e) { return e.name == o.ode_method && e.adaptive; });
}

const OptionTable<SamplerOptions>& sampler_option_table() {
  using S = SamplerOptions;
  using json = nlohmann::ordered_json;
  static const OptionTable<S> table = [] {
    const std::vector<std::string> pc{std::string(pc_sampler)}, ode{std::string(ode_sampler)};
    const auto with_corrector = [](const S& o) { return o.corrector != no_stepper; };
    OptionTable<S> t;
    auto& sampler = t.emplace_back(choice("sampler", &S::sampler, "", sampler_names, "unknown sampler"));
    sampler.help = fmt::format("{}   (scoresde list describes them)", fmt::join(sampler_names(), " | "));
    sampler.study = StudyRole::axis;
    sampler.column = "sampler";
    sampler.label_format = sampler.id_format = "{}";

    auto& predictor = t.emplace_back(
        choice("predictor", &S::predictor, fmt::format("pc: {}", fmt::join(predictor_names(), " | ")),
               predictor_names, "unknown predictor"));
    predictor.samplers = pc;
    predictor.study = StudyRole::axis;
    predictor.column = "predictor";
    predictor.cell = [](const S& o) {
      const auto p = o.resolved_predictor();
      return p.empty() ? json() : json(p);
    };
    predictor.label_format = " {}";
    predictor.id_format = "_{}";

    auto& corrector = t.emplace_back(
        choice("corrector", &S::corrector, fmt::format("pc: {}", fmt::join(corrector_names(), " | ")),
               corrector_names, "unknown corrector"));
    corrector.samplers = pc;
    corrector.study = StudyRole::axis;
    corrector.column = "corrector";
    corrector.cell = [](const S& o) { return json(o.resolved_corrector()); };
    corrector.label_format = "+{}";
    corrector.id_format = "_{}";

    auto& snr = t.emplace_back(option("snr", &S::snr, "corrector signal-to-noise ratio r", positive<double>()));
    snr.samplers = pc;
    snr.applies = with_corrector;
    snr.study = StudyRole::axis;
    snr.column = "snr";
    snr.label_format = " snr {}";
    snr.id_format = "_snr{}";

    auto& corrector_steps = t.emplace_back(
        option("corrector-steps", &S::corrector_steps, "corrector iterations per step", at_least(1)));
    corrector_steps.samplers = pc;
    corrector_steps.applies = with_corrector;
    corrector_steps.study = StudyRole::axis;
    corrector_steps.column = "corrector_steps";
    corrector_steps.label_format = " x{}";
    corrector_steps.id_format = "_x{}";
    corrector_steps.in_label = [](const S& o) { return o.corrector_steps > 1; };

    auto& norm = t.emplace_back(option("langevin-norm", &S::langevin_norm,
                                       "langevin step norms: chunk (|z|, |s| averaged over the --chunk samples of a "
                                       "chunk, as the reference averages over its batch) or sample (per sample: "
                                       "biased, for comparison)"));
    norm.samplers = pc;

    auto& method = t.emplace_back(choice("ode-method", &S::ode_method,
                                         fmt::format("ode: {}", fmt::join(ode_method_names(), " | ")),
                                         ode_method_names, "unknown ODE method"));
    method.samplers = ode;
    method.study = StudyRole::axis;
    method.column = "ode_method";
    method.label_format = " {}";
    method.id_format = "_{}";

    auto& steps = t.emplace_back(
        option("steps", &S::steps, "time steps N from T down to eps (fixed-step methods)", at_least(1)));
    steps.applies = [](const S& o) { return !is_adaptive(o); };
    steps.study = StudyRole::budget;
    steps.column = "steps";
    steps.id_format = "n{}";

    for (const auto& [key, member, help] :
         {std::tuple{"rtol", &S::rtol, "dopri5 relative tolerance"},
          std::tuple{"atol", &S::atol, "dopri5 absolute tolerance"}}) {
      auto& tol = t.emplace_back(option(key, member, help, positive<double>()));
      tol.samplers = ode;
      tol.applies = is_adaptive;
      tol.study = StudyRole::budget;
      tol.column = key;
    }
    t[t.size() - 2].id_format = "tol{}";
    auto& atol = t.back();
    atol.id_format = "_atol{}";
    atol.in_label = [](const S& o) { return o.atol != o.rtol; };
    atol.paired_with = "rtol";

    auto& control = t.emplace_back(option("ode-control", &S::ode_control,
                                          "dopri5 step control: chunk (one step size per chunk) or sample (per "
                                          "sample)"));
    control.samplers = ode;
    control.applies = is_adaptive;

    t.push_back(option("eps", &S::eps, "final time (default 1e-3 for vp/subvp, 1e-5 for ve)"));
    t.push_back(option("denoise", &S::denoise, "on: the last step returns the noise-free mean; off"));
    auto& noise = t.emplace_back(option("noise", &S::noise,
                                        "independent (fresh increments per step) or brownian_tree (one Brownian "
                                        "path shared by every step count)"));
    noise.column = "noise";
    auto& seed = t.emplace_back(option("seed", &S::seed, "fixes every random number"));
    seed.study = StudyRole::own;
    seed.column = "seed";
    auto& threads =
        t.emplace_back(option("threads", &S::threads, "worker threads; results do not depend on it", at_least(1)));
    threads.study = StudyRole::own;
    t.push_back(option("chunk", &S::chunk, "samples per chunk (see docs/reproducibility.md)", at_least(Index{1})));
    // An option that names its samplers applies only to them, whatever else its condition says.
    for (auto& spec : t) {
      if (spec.samplers.empty()) continue;
      spec.applies = [samplers = spec.samplers, condition = spec.applies](const S& o) {
        return std::find(samplers.begin(), samplers.end(), o.sampler) != samplers.end() &&
               (!condition || condition(o));
      };
    }
    return t;
  }();
  return table;
}

nlohmann::ordered_json to_json(const SamplerOptions& options, const Sde& sde) {
  SamplerOptions resolved = options;
  resolved.eps = options.resolved_eps(sde);
  nlohmann::ordered_json j;
  record_options(sampler_option_table(), resolved, j);
  return j;
}

std::string SamplerOptions::resolved_predictor() const {
  if (sampler == pc_sampler) return predictor;
  if (sampler == ode_sampler) return "";
  return sampler;
}

std::string SamplerOptions::resolved_corrector() const {
  return sampler == pc_sampler ? corrector : std::string(no_stepper);
}

void SamplerOptions::validate(const Sde& sde) const {
  // Every name and value is checked whichever sampler is chosen: a typo in an option the chosen sampler ignores
  // would otherwise be recorded in the result file as if it had been used.
  for (const auto& spec : sampler_option_table()) {
    const std::string text = spec.text(*this);
    if (spec.optional && text.empty()) continue;
    SamplerOptions scratch;
    spec.set(scratch, text);
  }
  const double e = resolved_eps(sde);
  require(std::isfinite(e) && e > 0 && e < sde.T(), "--eps", fmt::format("{}", e),
          fmt::format("must be in (0, T) = (0, {})", sde.T()));
  make_predictor(predictor, *this);
  make_corrector(corrector, *this);
  if (sampler == ode_sampler) return;
  const auto used = make_predictor(resolved_predictor(), *this);
  if (used) used->check(sde);
  require(used || resolved_corrector() != no_stepper, "--predictor", "none",
          "with --corrector none there is nothing to run; name one of them");
}

}  // namespace scoresde
