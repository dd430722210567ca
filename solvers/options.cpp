#include "solvers/options.hpp"

#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/errors.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::string to_string(LangevinNorm norm) {
  return norm == LangevinNorm::chunk ? "chunk" : "sample";
}

LangevinNorm langevin_norm_from_string(std::string_view name) {
  for (auto n : {LangevinNorm::chunk, LangevinNorm::sample})
    if (to_string(n) == name) return n;
  throw ConfigError(fmt::format("--langevin-norm = {}: choose one of chunk, sample", name));
}

std::string to_string(OdeControl control) { return control == OdeControl::chunk ? "chunk" : "sample"; }

OdeControl ode_control_from_string(std::string_view name) {
  if (name == "chunk") return OdeControl::chunk;
  if (name == "sample") return OdeControl::sample;
  throw ConfigError(fmt::format("--ode-control = {}: choose one of chunk, sample", name));
}

std::vector<std::string> sampler_names() {
  // Every predictor alone, then predictor-corrector and the probability-flow ODE.
  std::vector<std::string> names;
  for (const auto& e : predictor_registry()) names.push_back(e.name);
  names.push_back("pc");
  names.push_back("ode");
  return names;
}

std::string SamplerOptions::resolved_predictor() const {
  if (sampler == "pc") return predictor;
  if (sampler == "ode") return "";
  return sampler;
}

std::string SamplerOptions::resolved_corrector() const { return sampler == "pc" ? corrector : "none"; }

void SamplerOptions::validate(const Sde& sde) const {
  const auto names = sampler_names();
  require(std::find(names.begin(), names.end(), sampler) != names.end(), "--sampler", sampler,
          fmt::format("unknown sampler; choose one of {}", fmt::join(names, ", ")));
  require(steps >= 1, "--steps", std::to_string(steps), "must be >= 1");
  require(threads >= 1, "--threads", std::to_string(threads), "must be >= 1");
  require(chunk >= 1, "--chunk", std::to_string(chunk), "must be >= 1");
  const double e = resolved_eps(sde);
  require(std::isfinite(e) && e > 0 && e < sde.T(), "--eps", fmt::format("{}", e),
          fmt::format("must be in (0, T) = (0, {})", sde.T()));
  // Every name and value is checked whichever sampler is chosen: a typo in an option the chosen sampler ignores
  // would otherwise be recorded in the result file as if it had been used.
  make_predictor(predictor, *this);
  make_corrector(corrector, *this);
  find_ode_method(ode_method);
  require(std::isfinite(snr) && snr > 0, "--snr", fmt::format("{}", snr), "must be > 0");
  require(corrector_steps >= 1, "--corrector-steps", std::to_string(corrector_steps), "must be >= 1");
  require(std::isfinite(rtol) && rtol > 0, "--rtol", fmt::format("{}", rtol), "must be > 0");
  require(std::isfinite(atol) && atol > 0, "--atol", fmt::format("{}", atol), "must be > 0");
  if (sampler == "ode") return;
  const auto used = make_predictor(resolved_predictor(), *this);
  if (used) used->check(sde);
  require(used || resolved_corrector() != "none", "--predictor", "none",
          "with --corrector none there is nothing to run; name one of them");
}

}  // namespace scoresde
