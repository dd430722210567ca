#include "solvers/options.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/errors.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

std::string to_string(LangevinNorm norm) {
  return std::string(enum_name(norm));
}
LangevinNorm langevin_norm_from_string(std::string_view name) {
  return enum_from_name<LangevinNorm>(name, "langevin-norm");
}
std::string to_string(OdeControl control) {
  return std::string(enum_name(control));
}
OdeControl ode_control_from_string(std::string_view name) {
  return enum_from_name<OdeControl>(name, "ode-control");
}

const std::vector<OrderRange>& order_ranges() {
  static const std::vector<OrderRange> ranges{
      {"dpm_solver", 1, 3, 2}, {"unipc", 1, 3, 2}, {"deis", 1, 3, 2}, {"lms", 1, 4, 4}, {"sa_solver", 1, 3, 3}};
  return ranges;
}

int SamplerOptions::resolved_order() const {
  // The predictor's name, so that --sampler pc --predictor lms reads lms's default too.
  const std::string name = sampler == pc_sampler ? predictor : sampler;
  for (const auto& r : order_ranges())
    if (r.sampler == name) return order ? order : r.default_order;
  return 0;
}

const std::vector<EtaDefault>& eta_defaults() {
  static const std::vector<EtaDefault> defaults{
      {"ddim", 0.0}, {"euler_ancestral", 1.0}, {"dpmpp_2m_sde", 1.0}, {"dpmpp_3m_sde", 1.0}, {"dpmpp_sde", 1.0}};
  return defaults;
}

double eta_for(const SamplerOptions& options, std::string_view name) {
  for (const auto& e : eta_defaults())
    if (e.sampler == name) return options.eta >= 0 ? options.eta : e.default_eta;
  return 0.0;
}

double SamplerOptions::resolved_eta() const {
  return eta_for(*this, sampler == pc_sampler ? predictor : sampler);
}

std::vector<std::string> sampler_names() {
  // Every predictor alone, then predictor-corrector and the probability-flow ODE.
  std::vector<std::string> names;
  for (const auto& e : predictor_registry()) names.push_back(e.name);
  names.emplace_back(pc_sampler);
  names.emplace_back(ode_sampler);
  return names;
}

bool is_adaptive(const SamplerOptions& o) {
  if (o.sampler != ode_sampler) {
    const auto& predictors = predictor_registry();
    const std::string name = o.resolved_predictor();
    return std::any_of(predictors.begin(), predictors.end(),
                       [&](const PredictorEntry& e) { return e.name == name && e.adaptive; });
  }
  const auto& methods = ode_method_registry();
  return std::any_of(methods.begin(), methods.end(),
                     [&](const OdeMethodEntry& e) { return e.name == o.ode_method && e.adaptive; });
}

namespace {

// --time-grid: a grid's name, or a file that can be opened (its content is checked against the SDE by validate).
std::optional<std::string> time_grid_problem(const std::string& text) {
  if (enum_from_name<TimeGridKind>(text)) return std::nullopt;
  const auto choose = fmt::format("choose one of {}, or name a file of times", fmt::join(time_grid_names(), ", "));
  std::error_code ec;
  if (text.empty() || !std::filesystem::exists(text, ec))
    return fmt::format("unknown time grid and no such file; {}", choose);
  if (std::filesystem::is_directory(text, ec)) return fmt::format("is a directory; {}", choose);
  if (!std::ifstream(text)) return fmt::format("cannot open the file ({})", std::strerror(errno));
  return std::nullopt;
}

// A file grid in labels and run ids: the file's stem, characters outside [A-Za-z0-9_-] dropped.
std::string time_grid_label(const SamplerOptions& o) {
  if (!o.grid_from_file()) return o.time_grid;
  std::string out;
  for (char c : std::filesystem::path(o.time_grid).stem().string())
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') out += c;
  return out.empty() ? "file" : out;
}

}  // namespace

const OptionTable<SamplerOptions>& sampler_option_table() {
  using S = SamplerOptions;
  using json = nlohmann::ordered_json;
  static const OptionTable<S> table = [] {
    const std::vector<std::string> pc{std::string(pc_sampler)}, ode{std::string(ode_sampler)};
    const auto with_corrector = [](const S& o) { return o.corrector != no_stepper; };
    OptionTable<S> t;
    auto& sampler = t.emplace_back(choice("sampler", &S::sampler, "", sampler_names, "unknown sampler"));
    sampler.help = fmt::format("{}   (scoresde list describes them)", fmt::join(sampler_names(), " | "));
    sampler.as_axis("sampler", "{}", "{}");

    t.emplace_back(choice("predictor", &S::predictor, fmt::format("pc: {}", fmt::join(predictor_names(), " | ")),
                          predictor_names, "unknown predictor"))
        .for_samplers(pc)
        .as_axis("predictor", " {}", "_{}")
        .cell = [](const S& o) {
      const auto p = o.resolved_predictor();
      return p.empty() ? json() : json(p);
    };
    t.emplace_back(choice("corrector", &S::corrector, fmt::format("pc: {}", fmt::join(corrector_names(), " | ")),
                          corrector_names, "unknown corrector"))
        .for_samplers(pc)
        .as_axis("corrector", "+{}", "_{}")
        .cell = [](const S& o) { return json(o.resolved_corrector()); };
    t.emplace_back(option("snr", &S::snr, "corrector signal-to-noise ratio r", positive<double>()))
        .for_samplers(pc)
        .when(with_corrector)
        .as_axis("snr", " snr {}", "_snr{}");
    t.emplace_back(option("corrector-steps", &S::corrector_steps, "corrector iterations per step", at_least(1)))
        .for_samplers(pc)
        .when(with_corrector)
        .as_axis("corrector_steps", " x{}", "_x{}")
        .shown_when([](const S& o) { return o.corrector_steps > 1; });
    t.emplace_back(option("langevin-norm", &S::langevin_norm,
                          "langevin step norms: chunk (|z|, |s| averaged over the --chunk samples of a chunk, as the "
                          "reference averages over its batch) or sample (per sample: biased, for comparison)"))
        .for_samplers(pc);
    t.emplace_back(choice("ode-method", &S::ode_method, fmt::format("ode: {}", fmt::join(ode_method_names(), " | ")),
                          ode_method_names, "unknown ODE method"))
        .for_samplers(ode)
        .as_axis("ode_method", " {}", "_{}");

    const auto fixed_step = [](const S& o) { return !is_adaptive(o); };
    t.emplace_back(option("steps", &S::steps, "time steps N from T down to eps (fixed-step methods)", at_least(1)))
        .when(fixed_step)
        .as_budget("steps", "n{}");
    auto& grid = t.emplace_back(option("time-grid", &S::time_grid,
                                       fmt::format("{} (docs/samplers.md), or a FILE of times t_0 > ... > t_N > 0 "
                                                   "(.npy or text) that fixes --steps and --eps; dopri5 uses the "
                                                   "grid's ends only",
                                                   fmt::join(time_grid_names(), " | ")),
                                       ValueCheck<std::string>(time_grid_problem)))
                     .when(fixed_step)
                     .as_axis("time_grid", " {}", "_{}")
                     .shown_when([](const S& o) { return o.time_grid != to_string(TimeGridKind::uniform); });
    grid.value_name = "NAME|FILE";
    grid.label_value = time_grid_label;
    t.emplace_back(
         option("rho", &S::rho, "karras grid: the exponent rho (Karras et al. 2022, eq. 5)", positive<double>()))
        .when([](const S& o) { return o.time_grid == to_string(TimeGridKind::karras) && !is_adaptive(o); })
        .as_axis("", " rho {}", "_rho{}")
        .shown_when([](const S& o) { return o.rho != 7.0; });

    std::vector<std::string> with_order;
    std::string order_help = "method order (0: the sampler's default):";
    for (const auto& r : order_ranges()) {
      with_order.emplace_back(r.sampler);
      order_help += fmt::format(" {} {}..{} (default {}){}", r.sampler, r.min, r.max, r.default_order,
                                &r == &order_ranges().back() ? "" : ",");
    }
    auto& order = t.emplace_back(option("order", &S::order, order_help, at_least(0)))
                      .for_samplers(with_order)
                      .as_axis("order", " order {}", "_o{}");
    order.cell = [](const S& o) { return json(o.resolved_order()); };
    order.label_value = [](const S& o) { return std::to_string(o.resolved_order()); };
    t.emplace_back(option("solver-method", &S::solver_method,
                          "dpm_solver: multistep (1 evaluation per step) or singlestep (--order evaluations per step)"))
        .for_samplers({"dpm_solver"})
        .as_axis("solver_method", " {}", "_{}");
    t.emplace_back(option("solver-type", &S::solver_type,
                          "second-order multistep form: midpoint or heun (dpmpp_2m, dpmpp_2m_sde, dpm_solver "
                          "multistep order 2; the order-2 warm-up step of dpmpp_3m, dpmpp_3m_sde and dpm_solver "
                          "multistep order 3, where k-diffusion's sample_dpmpp_3m_sde takes heun)"))
        .for_samplers({"dpm_solver", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "dpmpp_3m_sde"})
        .when([](const S& o) {
          return o.sampler != "dpm_solver" || (o.solver_method == SolverMethod::multistep && o.resolved_order() >= 2);
        })
        .as_axis("solver_type", " {}", "_{}")
        .shown_when([](const S& o) { return o.solver_type != SolverType::midpoint; });
    t.emplace_back(option("dpmpp3m-form", &S::dpmpp3m_form,
                          "the order-3 multistep update of dpmpp_3m and of dpm_solver (multistep, --order 3): "
                          "third_order (converges at order 3) or reference (the authors' weight on the second "
                          "difference, order 2; to reproduce published numbers)"))
        .for_samplers({"dpmpp_3m", "dpmpp_3m_sde", "dpm_solver"})
        .when([](const S& o) {
          return o.sampler != "dpm_solver" || (o.solver_method == SolverMethod::multistep && o.resolved_order() == 3);
        })
        .as_axis("dpmpp3m_form", " {}", "_{}")
        .shown_when([](const S& o) { return o.dpmpp3m_form != Dpmpp3mForm::third_order; });
    t.emplace_back(option("unipc-variant", &S::unipc_variant, "unipc: B(h) = h (bh1) or e^h - 1 (bh2)"))
        .for_samplers({"unipc"})
        .as_axis("unipc_variant", " {}", "_{}")
        .shown_when([](const S& o) { return o.unipc_variant != UnipcVariant::bh2; });
    t.emplace_back(option("unic", &S::unic, "unipc: on (corrector UniC, order + 1 at no extra evaluation) or off"))
        .for_samplers({"unipc"})
        .as_axis("unic", " unic {}", "_unic{}")
        .shown_when([](const S& o) { return !o.unic; });
    std::vector<std::string> with_eta;
    std::string eta_help =
        "stochasticity: 0 the probability-flow ODE (the deterministic sampler), 1 the reverse SDE (ddim: the DDPM "
        "posterior step; ddim, euler_ancestral, dpmpp_sde: the ancestral step's sigma_up scales with eta; "
        "dpmpp_2m_sde, dpmpp_3m_sde: the noise variance 1 - e^(-2 eta h)); -1: the sampler's default";
    for (const auto& e : eta_defaults()) with_eta.emplace_back(e.sampler);
    auto& eta = t.emplace_back(option("eta", &S::eta, eta_help,
                                      check_that<double>([](const double& v) { return v == -1 || (v >= 0 && v <= 1); },
                                                         "must be in [0, 1], or -1 for the sampler's default")))
                    .for_samplers(with_eta)
                    .as_axis("eta", " eta {}", "_eta{}")
                    .shown_when([](const S& o) {
                      for (const auto& e : eta_defaults())
                        if (e.sampler == o.sampler) return o.resolved_eta() != e.default_eta;
                      return false;
                    });
    for (const auto& e : eta_defaults()) eta.sampler_defaults.emplace_back(e.sampler, fmt::format("{}", e.default_eta));
    eta.cell = [](const S& o) { return json(o.resolved_eta()); };
    eta.label_value = [](const S& o) { return fmt::format("{}", o.resolved_eta()); };
    t.emplace_back(option("tau", &S::tau,
                          "sa_solver: the noise scale tau (Xue et al. 2023): each step adds noise of variance "
                          "sigma^2 (1 - e^(-2 tau^2 h)), h the step in log-SNR; 1 the reverse SDE, 0 the "
                          "probability-flow ODE",
                          check_that<double>([](const double& v) { return std::isfinite(v) && v >= 0 && v <= 10; },
                                             "must be in [0, 10]")))
        .for_samplers({"sa_solver"})
        .as_axis("tau", " tau {}", "_tau{}")
        .shown_when([](const S& o) { return o.tau != 1; });
    const std::vector<std::string> edm{"edm_euler", "edm_heun"};
    const auto non_negative = check_that<double>([](const double& v) { return v >= 0; }, "must be >= 0");
    const auto churning = [](const S& o) { return o.s_churn > 0; };
    t.emplace_back(option("s-churn", &S::s_churn,
                          "edm_euler, edm_heun: Karras et al.'s S_churn (Alg. 2): before each step with sigma~ in "
                          "[s-tmin, s-tmax] the noise level rises to sigma~ (1 + gamma), gamma = min(S_churn / N, "
                          "sqrt(2) - 1), by fresh noise; 0 is the deterministic Alg. 1",
                          check_that<double>([](const double& v) { return std::isfinite(v) && v >= 0; },
                                             "must be >= 0 and finite")))
        .for_samplers(edm)
        .as_axis("s_churn", " churn {}", "_churn{}")
        .shown_when(churning);
    t.emplace_back(
         option("s-tmin", &S::s_tmin, "edm_euler, edm_heun with --s-churn: lowest sigma~ that churns", non_negative))
        .for_samplers(edm)
        .as_axis("s_tmin", " tmin {}", "_tmin{}")
        .shown_when([churning](const S& o) { return churning(o) && o.s_tmin != 0; });
    t.emplace_back(option("s-tmax", &S::s_tmax,
                          "edm_euler, edm_heun with --s-churn: highest sigma~ that churns (inf: no limit)",
                          non_negative))
        .for_samplers(edm)
        .as_axis("s_tmax", " tmax {}", "_tmax{}")
        .shown_when([churning](const S& o) { return churning(o) && !std::isinf(o.s_tmax); });
    t.emplace_back(option("s-noise", &S::s_noise,
                          "edm_euler, edm_heun with --s-churn: Karras et al.'s S_noise, the churn noise's scale",
                          check_that<double>([](const double& v) { return std::isfinite(v) && v >= 0; },
                                             "must be >= 0 and finite")))
        .for_samplers(edm)
        .as_axis("s_noise", " snoise {}", "_snoise{}")
        .shown_when([churning](const S& o) { return churning(o) && o.s_noise != 1; });
    auto multistep = with_order;
    multistep.insert(multistep.end(), {"dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "dpmpp_3m_sde"});
    t.emplace_back(option("lower-order-final", &S::lower_order_final,
                          "multistep methods: on (lower the order on the final steps when there are fewer than 10 in "
                          "all, as DPM-Solver does) or off"))
        .for_samplers(multistep)
        .when([](const S& o) { return o.sampler != "dpm_solver" || o.solver_method == SolverMethod::multistep; })
        .as_axis("lower_order_final", " lof {}", "_lof{}")
        .shown_when([](const S& o) { return !o.lower_order_final; });
    t.emplace_back(option("denoise-to-zero", &S::denoise_to_zero,
                          "on: one more evaluation at t_N returns the data prediction x0_hat there (DPM-Solver's "
                          "denoise_to_zero); off"))
        .as_axis("denoise_to_zero", " dz {}", "_dz{}")
        .shown_when([](const S& o) { return o.denoise_to_zero; });

    // The adaptive methods' tolerances: unset, each sampler's own default (SamplerOptions::resolved_rtol).
    auto& rtol = t.emplace_back(option("rtol", &S::rtol,
                                       fmt::format("relative tolerance of the adaptive methods (dopri5, ggf), {} "
                                                   "unless the sampler has its own default",
                                                   default_tolerance),
                                       positive<double>()))
                     .when(is_adaptive)
                     .as_budget("rtol", "tol{}");
    rtol.sampler_defaults = {{"ggf", "0.05"}};
    rtol.label_value = [](const S& o) { return fmt::format("{}", o.resolved_rtol()); };
    rtol.cell = [](const S& o) { return json(o.resolved_rtol()); };
    auto& atol = t.emplace_back(option("atol", &S::atol,
                                       fmt::format("absolute tolerance of the adaptive methods, {} unless the "
                                                   "sampler has its own default",
                                                   default_tolerance),
                                       positive<double>()))
                     .when(is_adaptive)
                     .as_budget("atol", "_atol{}")
                     .shown_when([](const S& o) { return o.resolved_atol() != o.resolved_rtol(); });
    atol.sampler_defaults = {{"ggf", "0.0078"}};
    atol.label_value = [](const S& o) { return fmt::format("{}", o.resolved_atol()); };
    atol.cell = [](const S& o) { return json(o.resolved_atol()); };
    atol.paired_with = "rtol";

    t.emplace_back(
         option("ode-control", &S::ode_control,
                "dopri5 step control: chunk (one step size per chunk), sample (per sample, one sample at a time) or "
                "batched (per sample, the chunk stepped together: each sample its own time and step size, "
                "the results of sample)"))
        .for_samplers(ode)
        .when(is_adaptive);

    t.push_back(option("eps", &S::eps, "final time (default 1e-3 for vp/subvp, 1e-5 for ve)"));
    t.push_back(option("denoise", &S::denoise, "on: the last step returns the noise-free mean; off"));
    t.emplace_back(option("noise", &S::noise,
                          "independent (fresh increments per step) or brownian_tree (one Brownian path shared by "
                          "every step count)"))
        .column = "noise";
    auto& seed = t.emplace_back(option("seed", &S::seed, "fixes every random number"));
    seed.study = StudyRole::own;
    seed.column = "seed";
    t.emplace_back(option("threads", &S::threads, "worker threads; results do not depend on it", at_least(1))).study =
        StudyRole::own;
    t.push_back(option("chunk", &S::chunk, "samples per chunk (see docs/reproducibility.md)", at_least(Index{1})));
    // An option that names its samplers applies only to them, whatever else its condition says.
    for (auto& spec : t) {
      if (spec.samplers.empty()) continue;
      spec.applies = [samplers = spec.samplers, condition = spec.applies](const S& o) {
        return std::find(samplers.begin(), samplers.end(), o.sampler) != samplers.end() && (!condition || condition(o));
      };
    }
    return t;
  }();
  return table;
}

nlohmann::ordered_json to_json(const SamplerOptions& options, const Sde& sde) {
  SamplerOptions resolved = options;
  resolved.eps = options.resolved_eps(sde);
  resolved.rtol = options.resolved_rtol();
  resolved.atol = options.resolved_atol();
  if (const int order = options.resolved_order()) resolved.order = order;
  const std::string name = options.sampler == pc_sampler ? options.predictor : options.sampler;
  if (options.eta < 0)
    for (const auto& e : eta_defaults())
      if (e.sampler == name) resolved.eta = e.default_eta;
  nlohmann::ordered_json j;
  record_options(sampler_option_table(), resolved, j);
  return j;
}

namespace {
double resolved_tolerance(const std::optional<double>& given, const char* key, const std::string& sampler) {
  if (given) return *given;
  if (const auto value = find_option(sampler_option_table(), key)->default_for(sampler)) return std::stod(*value);
  return default_tolerance;
}
}  // namespace

double SamplerOptions::resolved_rtol() const {
  return resolved_tolerance(rtol, "rtol", sampler);
}
double SamplerOptions::resolved_atol() const {
  return resolved_tolerance(atol, "atol", sampler);
}

std::string SamplerOptions::resolved_predictor() const {
  if (sampler == pc_sampler) return predictor;
  if (sampler == ode_sampler) return "";
  return sampler;
}

std::string SamplerOptions::resolved_corrector() const {
  return sampler == pc_sampler ? corrector : std::string(no_stepper);
}

bool SamplerOptions::grid_from_file() const {
  return !enum_from_name<TimeGridKind>(time_grid).has_value();
}

namespace {

TimeGrid read_grid_file(const SamplerOptions& o, const Sde& sde) {
  try {
    return read_time_grid_file(o.time_grid, sde.T());
  } catch (const InputError& e) {
    throw InputError(fmt::format("--time-grid: {}", e.what()));
  }
}

std::string steps_problem(const TimeGrid& g) {
  return fmt::format("--time-grid {} has {} steps ({} times); leave --steps out or give {}", g.name, g.steps(),
                     g.t.size(), g.steps());
}

std::string eps_problem(const TimeGrid& g) {
  return fmt::format("--time-grid {} ends at t_N = {}; leave --eps out or give {}", g.name, g.t.back(), g.t.back());
}

}  // namespace

void SamplerOptions::adopt_grid_file(const Sde& sde, bool steps_given) {
  if (!grid_from_file()) return;
  const TimeGrid g = read_grid_file(*this, sde);
  require(!steps_given || steps == g.steps(), "--steps", std::to_string(steps), steps_problem(g));
  require(!eps || *eps == g.t.back(), "--eps", eps ? fmt::format("{}", *eps) : "", eps_problem(g));
  steps = g.steps();
  eps = g.t.back();
}

TimeGrid SamplerOptions::grid(const Sde& sde) const {
  if (grid_from_file()) return read_grid_file(*this, sde);
  return make_time_grid(*enum_from_name<TimeGridKind>(time_grid), sde, sde.T(), resolved_eps(sde), steps, rho);
}

std::vector<double> SamplerOptions::walked_times(const Sde& sde) const {
  if (!is_adaptive(*this)) return grid(sde).t;
  if (!grid_from_file()) return {sde.T(), resolved_eps(sde)};
  const auto t = grid(sde).t;
  return {t.front(), t.back()};
}

void SamplerOptions::validate(const Sde& sde, bool with_init) const {
  // Every name and value is checked whichever sampler is chosen: a typo in an option the chosen sampler ignores
  // would otherwise be recorded in the result file as if it had been used.
  check_options(sampler_option_table(), *this);
  const double e = resolved_eps(sde);
  require(std::isfinite(e) && e > 0 && e < sde.T(), "--eps", fmt::format("{}", e),
          fmt::format("must be in (0, T) = (0, {})", sde.T()));
  if (!grid_from_file()) {
    walked_times(sde);  // a named grid's own checks (rho, spacing), where it is used
  } else {
    const TimeGrid g = grid(sde);
    require(steps == g.steps(), "--steps", std::to_string(steps), steps_problem(g));
    if (!eps)
      throw ConfigError(fmt::format("--eps: not set; {} (SamplerOptions::adopt_grid_file sets both)", eps_problem(g)));
    require(*eps == g.t.back(), "--eps", fmt::format("{}", *eps), eps_problem(g));
    require(with_init || g.t.front() == sde.T(), "--time-grid", time_grid,
            fmt::format("starts at t_0 = {}, not at T = {}; the samples start from the prior at T, so begin the file "
                        "at T, or give --init with samples at t_0",
                        g.t.front(), sde.T()));
  }
  if (order)
    for (const auto& r : order_ranges())
      if (r.sampler == sampler)
        require(order >= r.min && order <= r.max, "--order", std::to_string(order),
                fmt::format("{} takes orders {} to {}", sampler, r.min, r.max));
  make_predictor(predictor, *this);
  make_corrector(corrector, *this);
  if (sampler == ode_sampler) return;
  require(
      sampler != pc_sampler || !is_adaptive(*this), "--predictor", predictor,
      fmt::format("is adaptive: it takes its own steps, between which no corrector runs; use --sampler {}", predictor));
  const auto used = make_predictor(resolved_predictor(), *this);
  if (used) used->check(sde);
  require(used || resolved_corrector() != no_stepper, "--predictor", "none",
          "with --corrector none there is nothing to run; name one of them");
}

}  // namespace scoresde
