#include "experiments/cli/model_cli.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <ostream>
#include <vector>

#include "core/errors.hpp"

namespace scoresde {

void add_model_options(po::options_description& group, const std::string& model_help) {
  // clang-format off
  group.add_options()
      ("model", po::value<std::string>(), model_help.c_str())
      ("parameterization", po::value<std::string>(),
       "--model FILE.npz or FILE.pt: how to read the network output: noise (score = -output / sigma_t; default "
       "for vp, subvp) or scaled_score (score = output / sigma_t; default for ve); for FILE.pt also data (x_0 "
       "prediction) and v (vp only), and by default what the file declares")
      ("time-input", po::value<std::string>(),
       "--model FILE.pt: what the module's time argument is: t (the SDE's time), log_sigma (log sigma_t), sigma "
       "(sigma~_t = sigma_t / alpha_t, EDM's) or index (the DDPM step (t - 1/N) N of --schedule discrete); by "
       "default what the file declares, else t")
      ("weights", po::value<std::string>()->default_value("ema"),
       "--model checkpoint: ema (default) or raw weights");
  // clang-format on
}

void LoadedModel::record(nlohmann::ordered_json& resolved) const {
  resolved["model"] = path;
  if (npz) resolved["parameterization"] = to_string(spec.resolved_parameterization(sde.kind));
  if (torchscript) {
    const auto p = spec.parameterization ? spec.parameterization : source->recorded_parameterization();
    if (p) resolved["parameterization"] = to_string(*p);
    resolved["time-input"] = to_string(spec.time_input.value_or(source->recorded_time_input().value_or(TimeInput::t)));
  }
  resolved["weights"] = spec.weights;
}

std::optional<LoadedModel> load_model_from(const po::variables_map& vm, const SdeOptions& cli_sde,
                                           const std::string& command, std::ostream& err) {
  if (!vm.count("model")) {
    if (vm.count("parameterization")) throw ConfigError("--parameterization: only with --model FILE.npz or FILE.pt");
    if (vm.count("time-input")) throw ConfigError("--time-input: only with --model FILE.pt");
    return std::nullopt;
  }
  LoadedModel m;
  m.path = vm["model"].as<std::string>();
  if (given(vm, "data"))
    throw ConfigError("--data: not used with --model (the model is the trained network, not a mixture); leave one out");
  m.spec = ScoreSpec::file(m.path, vm["weights"].as<std::string>());
  m.npz = m.spec.is_npz();
  m.torchscript = m.spec.is_torchscript();
  if (!m.npz && !m.torchscript && vm.count("parameterization"))
    throw ConfigError(
        fmt::format("--parameterization: only for .npz and .pt models; the checkpoint {} records its own", m.path));
  if (m.spec.weights != "ema" && m.spec.weights != "raw")
    throw ConfigError(fmt::format("--weights = {}: choose ema or raw", m.spec.weights));
  if (vm.count("parameterization"))
    m.spec.parameterization = parameterization_from_string(vm["parameterization"].as<std::string>());
  if (vm.count("time-input")) {
    if (!m.torchscript) throw ConfigError(fmt::format("--time-input: only with --model FILE.pt, not {}", m.path));
    m.spec.time_input = time_input_from_string(vm["time-input"].as<std::string>());
  }
  try {
    m.source = open_score(m.spec);
  } catch (const InputError& e) {
    throw InputError(fmt::format("--model: {}", e.what()));
  }
  m.sde = cli_sde;
  if (m.torchscript) {
    const auto recorded = m.source->recorded_parameterization();
    if (m.spec.parameterization && recorded && *m.spec.parameterization != *recorded)
      err << fmt::format("scoresde {}: warning: --parameterization = {} overrides what the model declares ({})\n",
                         command, to_string(*m.spec.parameterization), to_string(*recorded));
    const auto recorded_time = m.source->recorded_time_input();
    if (m.spec.time_input && recorded_time && *m.spec.time_input != *recorded_time)
      err << fmt::format("scoresde {}: warning: --time-input = {} overrides what the model declares ({})\n", command,
                         to_string(*m.spec.time_input), to_string(*recorded_time));
    if (!m.spec.parameterization && !recorded)
      throw ConfigError(fmt::format(
          "--parameterization: the TorchScript model {} declares none; give noise, scaled_score, data or v", m.path));
    if (!m.source->trained_sde() && !given(vm, "sde"))
      throw ConfigError(
          fmt::format("--sde: the TorchScript model {} declares no SDE; give --sde and its parameters", m.path));
  }
  if (m.source->trained_sde()) {
    // Only what was given replaces the checkpoint's values; a warning names those that change one (so that the
    // command recorded in a result file, which spells out every SDE option, reruns without one).
    const SdeOptions& trained = *m.source->trained_sde();
    SdeOptions merged = trained;
    std::vector<std::string> overrides;
    const auto cli_values = to_json(cli_sde), trained_values = to_json(trained);
    for (const auto& spec : sde_option_table()) {
      if (!given(vm, spec.key)) continue;
      spec.set(merged, spec.text(cli_sde));
      if (cli_values.value(spec.key, nlohmann::ordered_json()) !=
          trained_values.value(spec.key, nlohmann::ordered_json()))
        overrides.push_back(spec.display_name());
    }
    // A schedule other than discrete given over a discrete one drops its alphas_cumprod.
    if (merged.schedule != VpSchedule::discrete && !given(vm, "alphas-cumprod")) merged.alphas_cumprod.clear();
    merged.validate();
    if (!overrides.empty())
      err << fmt::format("scoresde {}: warning: {} override the SDE the model was trained with ({})\n", command,
                         fmt::join(overrides, ", "), to_string(trained.kind));
    m.sde = merged;
  }
  const Index dim_given = vm.count("dim") ? vm["dim"].as<Index>() : 0;
  if (dim_given != 0 && dim_given != m.dim())
    throw ConfigError(fmt::format("--dim = {}: the model {} is {}-dimensional", dim_given, m.path, m.dim()));
  return m;
}

GaussianMixture standardised_mixture(const GaussianMixture& mixture, const DataScaling& scaling) {
  const Vector inv = scaling.scale.cwiseInverse();
  std::vector<Matrix> covariances;
  for (Index k = 0; k < mixture.components(); ++k)
    covariances.push_back(inv.asDiagonal() * mixture.covariance(k) * inv.asDiagonal());
  return GaussianMixture(mixture.weights(), inv.asDiagonal() * (mixture.means().colwise() - scaling.mean), covariances);
}

}  // namespace scoresde
