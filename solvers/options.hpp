// Sampling options: plain values with defaults, printed into every result file, and one validator whose
// messages name the option and the allowed values (in the style of ceres' Solver::Options::IsValid).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/noise.hpp"
#include "core/sde.hpp"
#include "core/time_grid.hpp"

namespace scoresde {

// How the Langevin corrector's step eps = 2 a (snr |z| / |s|)^2 measures the norms (docs/samplers.md):
//   chunk   |z| and |s| averaged over the chunk of --chunk samples, as the reference code averages over its whole
//           batch (default). Chunks are fixed sets of sample indices, so sample i still depends only on
//           (seed, i, options), never on n or the thread count; with --chunk equal to n it is the reference's rule.
//   sample  per sample. Batch-free, but a step that depends on x time-changes the Langevin diffusion, whose
//           invariant density becomes p / eps(x): biased at O(1), and unstable in low dimension where |s| -> 0
//           near a mode. Offered for comparison only.
enum class LangevinNorm { chunk, sample };
template <>
struct EnumNames<LangevinNorm> {
  static constexpr std::array<std::pair<LangevinNorm, std::string_view>, 2> values{
      {{LangevinNorm::chunk, "chunk"}, {LangevinNorm::sample, "sample"}}};
};
std::string to_string(LangevinNorm norm);
LangevinNorm langevin_norm_from_string(std::string_view name);

// Step-size control for adaptive ODE methods: one controller per chunk of samples (the error norm is taken over
// the chunk, as a solver run on a whole batch does), or one per sample (results depend on nothing but the sample),
// run either sample by sample (sample) or with the chunk's samples stepped together, each column with its own time
// and step size and the score evaluated once per stage for all of them (batched; `sample`'s results, bit for bit
// when the score model's columns are independent, docs/samplers.md). `sampler` only: the likelihood has chunk and
// sample.
enum class OdeControl { chunk, sample, batched };
template <>
struct EnumNames<OdeControl> {
  static constexpr std::array<std::pair<OdeControl, std::string_view>, 3> values{
      {{OdeControl::chunk, "chunk"}, {OdeControl::sample, "sample"}, {OdeControl::batched, "batched"}}};
};
std::string to_string(OdeControl control);
OdeControl ode_control_from_string(std::string_view name);

// dpm_solver: singlestep (order K at every step, K evaluations per step; Lu et al. 2022, Alg. 1) or multistep
// (one evaluation per step, earlier outputs reused; Lu et al. 2022b, Alg. 2).
enum class SolverMethod { singlestep, multistep };
template <>
struct EnumNames<SolverMethod> {
  static constexpr std::string_view what = "solver method";
  static constexpr std::array<std::pair<SolverMethod, std::string_view>, 2> values{
      {{SolverMethod::singlestep, "singlestep"}, {SolverMethod::multistep, "multistep"}}};
};

// The second-order multistep update's form: midpoint (the DPM-Solver papers' D = (1/2r) (x0_k - x0_{k-1})) or heun
// (D = (1/r) ... weighted by the exact phi_2 coefficient), as in the authors' code and k-diffusion.
enum class SolverType { midpoint, heun };
template <>
struct EnumNames<SolverType> {
  static constexpr std::string_view what = "solver type";
  static constexpr std::array<std::pair<SolverType, std::string_view>, 2> values{
      {{SolverType::midpoint, "midpoint"}, {SolverType::heun, "heun"}}};
};

// The order-3 multistep update (dpmpp_3m; dpm_solver multistep --order 3): third_order (the weights a third-order
// method needs; docs/samplers.md) or reference (the authors' form, which k-diffusion and diffusers copy, converging at
// order 2).
enum class Dpmpp3mForm { third_order, reference };
template <>
struct EnumNames<Dpmpp3mForm> {
  static constexpr std::string_view what = "DPM-Solver++(3M) form";
  static constexpr std::array<std::pair<Dpmpp3mForm, std::string_view>, 2> values{
      {{Dpmpp3mForm::third_order, "third_order"}, {Dpmpp3mForm::reference, "reference"}}};
};

// UniPC's B(h) (Zhao et al. 2023, sec. 3.3): bh1 = h, bh2 = e^h - 1.
enum class UnipcVariant { bh1, bh2 };
template <>
struct EnumNames<UnipcVariant> {
  static constexpr std::string_view what = "UniPC variant";
  static constexpr std::array<std::pair<UnipcVariant, std::string_view>, 2> values{
      {{UnipcVariant::bh1, "bh1"}, {UnipcVariant::bh2, "bh2"}}};
};

// The --sampler names that are not a predictor of the registry, and the stepper name that means "no stepper".
inline constexpr std::string_view pc_sampler = "pc";    // a predictor and a corrector (--predictor, --corrector)
inline constexpr std::string_view ode_sampler = "ode";  // the probability-flow ODE (--ode-method)
inline constexpr std::string_view no_stepper = "none";  // --predictor none, --corrector none

struct SamplerOptions {
  std::string sampler = "euler_maruyama";       // a predictor's name, pc or ode (sampler_names)
  std::string predictor = "reverse_diffusion";  // pc only
  std::string corrector = "langevin";           // pc only
  double snr = 0.16;                            // Langevin signal-to-noise ratio r
  int corrector_steps = 1;                      // corrector iterations per noise level
  LangevinNorm langevin_norm = LangevinNorm::chunk;
  std::string ode_method = "dopri5";  // ode only: euler | rk4 | dopri5
  // Tolerances of the adaptive methods (dopri5, ggf); unset means the sampler's default (resolved_rtol).
  std::optional<double> rtol;
  std::optional<double> atol;
  OdeControl ode_control = OdeControl::chunk;
  int steps = 1000;           // grid steps N (fixed-step methods; ignored by dopri5)
  std::optional<double> eps;  // final time; default 1e-3 (vp, subvp) or 1e-5 (ve)
  // uniform | quadratic | logsnr | karras (core/time_grid.hpp), or the path of a file of times, which fixes steps and
  // eps (adopt_grid_file). dopri5 uses the grid's ends only.
  std::string time_grid = "uniform";
  double rho = 7.0;  // karras only
  // The few-step deterministic samplers (solvers/*.cpp; docs/samplers.md). order 0 means the sampler's own default
  // (resolved_order).
  int order = 0;  // dpm_solver, unipc, deis (1..3, default 2); lms (1..4, 4); sa_solver (1..3, 3)
  SolverMethod solver_method = SolverMethod::multistep;  // dpm_solver
  SolverType solver_type = SolverType::midpoint;         // dpm_solver (multistep, order 2), dpmpp_2m
  Dpmpp3mForm dpmpp3m_form = Dpmpp3mForm::third_order;   // dpmpp_3m; dpm_solver multistep order 3
  UnipcVariant unipc_variant = UnipcVariant::bh2;        // unipc
  bool unic = true;                                      // unipc: the corrector UniC
  bool lower_order_final = true;  // multistep methods: lower the order on the last steps when fewer than 10 in all
  // The stochastic samplers (docs/samplers.md, "Stochastic samplers"). eta: 0 is the probability-flow ODE, 1 the
  // reverse SDE; negative means the sampler's default (resolved_eta, eta_defaults).
  double eta = -1;  // ddim (default 0), euler_ancestral, dpmpp_2m_sde, dpmpp_3m_sde, dpmpp_sde (default 1)
  // edm_euler, edm_heun: Karras et al. 2022, Alg. 2. gamma = min(s_churn / N, sqrt(2) - 1) where sigma~ is in
  // [s_tmin, s_tmax], else 0; s_churn = 0 is Alg. 1 (deterministic).
  double s_churn = 0;
  double s_tmin = 0;
  double s_tmax = std::numeric_limits<double>::infinity();
  double s_noise = 1;
  // sa_solver (Xue et al. 2023): the noise scale tau, eta = tau^2 in the family of dpmpp_2m_sde; 0 is the ODE.
  double tau = 1;
  bool denoise_to_zero = false;  // one more evaluation at t_N: return the data prediction x0_hat there
  bool denoise = true;           // last step returns the noise-free mean
  NoiseKind noise = NoiseKind::independent;
  std::uint64_t seed = 0;
  int threads = 1;
  Index chunk = 256;  // samples per chunk; see docs/reproducibility.md

  // The predictor and corrector that `sampler` stands for ("none" when absent); empty predictor for ode.
  std::string resolved_predictor() const;
  std::string resolved_corrector() const;
  double resolved_eps(const Sde& sde) const { return eps.value_or(sde.default_eps()); }
  // --rtol and --atol as the sampler uses them: the values given, or the sampler's defaults (the sampler_defaults of
  // their entries in sampler_option_table(): ggf 0.05 and 0.0078, the paper's), else default_tolerance (dopri5: the
  // reference code's 1e-5).
  double resolved_rtol() const;
  double resolved_atol() const;
  // --order as the sampler uses it: the value given, or the sampler's default (order_range); 0 for a sampler
  // without --order.
  int resolved_order() const;
  // --eta as the sampler uses it: the value given, or the sampler's default (eta_defaults); 0 for a sampler without
  // --eta.
  double resolved_eta() const;
  // True when time_grid names a file rather than one of time_grid_names().
  bool grid_from_file() const;
  // For a --time-grid FILE: steps = N and eps = t_N from the file. A value the user gave that disagrees is a
  // ConfigError naming it (--steps when steps_given; --eps when eps is set); InputError naming --time-grid and the
  // file for a file that cannot be read or is not a grid in (0, T]. Nothing for a named grid.
  void adopt_grid_file(const Sde& sde, bool steps_given);
  // The grid the fixed-step samplers walk: the named grid from T to resolved_eps in `steps` steps, or the file's.
  TimeGrid grid(const Sde& sde) const;
  // The times the sampler walks: grid(sde).t for fixed-step methods; for an adaptive method (dopri5) only the ends it
  // integrates between, T and resolved_eps for a named grid (not built: --steps plays no part) or a file's first and
  // last times.
  std::vector<double> walked_times(const Sde& sde) const;
  // Every value against its entry in sampler_option_table() (the same checks as on the command line), then the
  // combinations: eps in (0, T), a predictor defined for this SDE, something to run, and a --time-grid FILE that is
  // a grid in (0, T] agreeing with steps and eps and starting at T (or below it when with_init: the samples given
  // by --init start there). ConfigError naming the option; InputError naming --time-grid and its file.
  void validate(const Sde& sde, bool with_init = false) const;
};

std::vector<std::string> sampler_names();

// The samplers that take --order, with their allowed range and default.
struct OrderRange {
  std::string_view sampler;
  int min, max, default_order;
};
const std::vector<OrderRange>& order_ranges();

// The samplers that take --eta, with their default (0: the ODE sampler; 1: the reverse SDE).
struct EtaDefault {
  std::string_view sampler;
  double default_eta;
};
const std::vector<EtaDefault>& eta_defaults();
// --eta for the sampler `name`: options.eta when set (>= 0), else name's default; 0 for a sampler without --eta.
double eta_for(const SamplerOptions& options, std::string_view name);

// True for a configuration run by the adaptive path (step-size control by --rtol/--atol, no --steps): dopri5 and ggf.
bool is_adaptive(const SamplerOptions& options);

// --rtol and --atol of a sampler that declares no default of its own.
inline constexpr double default_tolerance = 1e-5;

// The sampler's options, described once (core/option_table.hpp): the command line of `sample` and `likelihood`,
// the study's axes, results.csv columns and run labels, result records and `scoresde list` are derived from it.
// Each entry says which samplers use it.
const OptionTable<SamplerOptions>& sampler_option_table();

// The resolved options as JSON (eps resolved for `sde`): what a result file records.
nlohmann::ordered_json to_json(const SamplerOptions& options, const Sde& sde);

}  // namespace scoresde
