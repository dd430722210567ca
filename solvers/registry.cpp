#include "solvers/registry.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/errors.hpp"

namespace scoresde {

// The factories, one per sampler file.
std::unique_ptr<Predictor> make_euler_maruyama(const SamplerOptions&);
std::unique_ptr<Predictor> make_reverse_diffusion(const SamplerOptions&);
std::unique_ptr<Predictor> make_ancestral(const SamplerOptions&);
std::unique_ptr<Predictor> make_ddim(const SamplerOptions&);
std::unique_ptr<Predictor> make_edm_euler(const SamplerOptions&);
std::unique_ptr<Predictor> make_edm_heun(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpm_2(const SamplerOptions&);
std::unique_ptr<Predictor> make_lms(const SamplerOptions&);
std::unique_ptr<Predictor> make_unipc(const SamplerOptions&);
std::unique_ptr<Predictor> make_deis(const SamplerOptions&);
std::unique_ptr<Corrector> make_langevin(const SamplerOptions&);
std::unique_ptr<Corrector> make_annealed_langevin(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_euler(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_rk4(const SamplerOptions&);
std::unique_ptr<Predictor> make_ode_dopri5(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpm_solver(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpmpp_2s(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpmpp_2m(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpmpp_3m(const SamplerOptions&);
std::unique_ptr<Predictor> make_euler_ancestral(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpmpp_sde(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpmpp_2m_sde(const SamplerOptions&);
std::unique_ptr<Predictor> make_dpmpp_3m_sde(const SamplerOptions&);
std::unique_ptr<Predictor> make_ggf(const SamplerOptions&);
std::unique_ptr<Predictor> make_sra(const SamplerOptions&);
std::unique_ptr<Predictor> make_sa_solver(const SamplerOptions&);

const std::vector<PredictorEntry>& predictor_registry() {
  static const std::vector<PredictorEntry> registry = {
      {"euler_maruyama", make_euler_maruyama},
      {"reverse_diffusion", make_reverse_diffusion},
      {"ancestral", make_ancestral},
      {"ddim", make_ddim},
      {"edm_euler", make_edm_euler},
      {"edm_heun", make_edm_heun},
      {"dpm_2", make_dpm_2},
      {"lms", make_lms},
      {"dpm_solver", make_dpm_solver},
      {"dpmpp_2s", make_dpmpp_2s},
      {"dpmpp_2m", make_dpmpp_2m},
      {"dpmpp_3m", make_dpmpp_3m},
      {"unipc", make_unipc},
      {"deis", make_deis},
      {"euler_ancestral", make_euler_ancestral},
      {"dpmpp_sde", make_dpmpp_sde},
      {"dpmpp_2m_sde", make_dpmpp_2m_sde},
      {"dpmpp_3m_sde", make_dpmpp_3m_sde},
      {"ggf", make_ggf, true},
      {"sra", make_sra},
      {"sa_solver", make_sa_solver},
  };
  return registry;
}

const std::vector<CorrectorEntry>& corrector_registry() {
  static const std::vector<CorrectorEntry> registry = {
      {"langevin", make_langevin},
      {"ald", make_annealed_langevin},
  };
  return registry;
}

const std::vector<OdeMethodEntry>& ode_method_registry() {
  static const std::vector<OdeMethodEntry> registry = {
      {"euler", false, 1.0, make_ode_euler},
      {"rk4", false, 4.0, make_ode_rk4},
      {"dopri5", true, 5.0, make_ode_dopri5},
  };
  return registry;
}

std::vector<std::string> predictor_names() {
  std::vector<std::string> names;
  for (const auto& e : predictor_registry()) names.push_back(e.name);
  names.emplace_back(no_stepper);
  return names;
}

std::vector<std::string> corrector_names() {
  std::vector<std::string> names;
  for (const auto& e : corrector_registry()) names.push_back(e.name);
  names.emplace_back(no_stepper);
  return names;
}

std::vector<std::string> ode_method_names() {
  std::vector<std::string> names;
  for (const auto& e : ode_method_registry()) names.push_back(e.name);
  return names;
}

std::unique_ptr<Predictor> make_predictor(const std::string& name, const SamplerOptions& options) {
  if (name == no_stepper) return nullptr;
  for (const auto& e : predictor_registry())
    if (e.name == name) return e.make(options);
  throw ConfigError(
      fmt::format("--predictor = {}: unknown predictor; choose one of {}", name, fmt::join(predictor_names(), ", ")));
}

std::unique_ptr<Corrector> make_corrector(const std::string& name, const SamplerOptions& options) {
  if (name == no_stepper) return nullptr;
  for (const auto& e : corrector_registry())
    if (e.name == name) return e.make(options);
  throw ConfigError(
      fmt::format("--corrector = {}: unknown corrector; choose one of {}", name, fmt::join(corrector_names(), ", ")));
}

const OdeMethodEntry& find_ode_method(const std::string& name) {
  for (const auto& e : ode_method_registry())
    if (e.name == name) return e;
  throw ConfigError(fmt::format("--ode-method = {}: unknown ODE method; choose one of {}", name,
                                fmt::join(ode_method_names(), ", ")));
}

int evaluations_per_step(const SamplerOptions& options) {
  if (is_adaptive(options)) return 0;
  if (options.sampler == ode_sampler) return find_ode_method(options.ode_method).make(options)->info().evals_per_step;
  int n = 0;
  if (const auto p = make_predictor(options.resolved_predictor(), options)) n += p->info().evals_per_step;
  if (const auto c = make_corrector(options.resolved_corrector(), options))
    n += c->info().evals_per_step * options.corrector_steps;
  return n;
}

}  // namespace scoresde
