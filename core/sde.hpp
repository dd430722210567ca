// Forward SDEs of Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
// ICLR 2021 (eqs. 5-11, App. B). All three families are linear with additive noise:
//
//     dx = f(t) x dt + g(t) dw,   p(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I),
//
// with f = d log(alpha)/dt and g^2 = d(sigma^2)/dt - 2 f sigma^2 (see docs/maths.md). Each SDE also builds its
// reverse-time SDE and probability-flow ODE from a score (ReverseSde), so samplers never re-derive f - g^2 s.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/option_table.hpp"
#include "core/types.hpp"

namespace scoresde {

enum class SdeKind { vp, subvp, ve };
enum class VpSchedule { linear, cosine, discrete };

template <>
struct EnumNames<SdeKind> {
  static constexpr std::string_view what = "SDE";
  static constexpr std::array<std::pair<SdeKind, std::string_view>, 3> values{
      {{SdeKind::vp, "vp"}, {SdeKind::subvp, "subvp"}, {SdeKind::ve, "ve"}}};
};
template <>
struct EnumNames<VpSchedule> {
  static constexpr std::string_view what = "schedule";
  static constexpr std::array<std::pair<VpSchedule, std::string_view>, 3> values{
      {{VpSchedule::linear, "linear"}, {VpSchedule::cosine, "cosine"}, {VpSchedule::discrete, "discrete"}}};
};

std::string to_string(SdeKind kind);
std::string to_string(VpSchedule schedule);
SdeKind sde_kind_from_string(std::string_view name);        // ConfigError naming --sde and the valid names
VpSchedule vp_schedule_from_string(std::string_view name);  // ConfigError naming --schedule
std::vector<std::string> sde_names();

struct SdeOptions {
  SdeKind kind = SdeKind::vp;
  VpSchedule schedule = VpSchedule::linear;  // vp and subvp only
  double beta_min = 0.1;                     // linear schedule: beta(t) = beta_min + t (beta_max - beta_min)
  double beta_max = 20.0;
  double cosine_s = 0.008;  // Nichol & Dhariwal (2021) offset
  double sigma_min = 0.01;  // ve: sigma(t) = sigma_min (sigma_max / sigma_min)^t
  double sigma_max = 50.0;
  // Discrete schedule: DDPM's alpha-bar_n = prod_{m <= n} (1 - beta_m), n = 0..N-1, strictly decreasing in (0, 1),
  // at the times t_n = (n + 1) / N, with log alpha_t piecewise linear in t between them (DPM-Solver's
  // NoiseScheduleVP('discrete'), Lu et al. 2022, App. D) and log alpha_0 = 0 at t = 0. Empty for the other schedules.
  std::vector<double> alphas_cumprod;
  std::optional<double> T;  // horizon; default 1, or 0.999 for the cosine schedule whose alpha vanishes at t = 1

  double horizon() const;
  void validate() const;  // throws ConfigError naming the option and the allowed range
};

// The SDE's options, described once: `sample`, `train`, `likelihood` and the study register them from this table,
// records and checkpoints write them with it (core/option_table.hpp).
const OptionTable<SdeOptions>& sde_option_table();
// The problem with a discrete schedule's alphas_cumprod (empty, a value outside (0, 1), not strictly decreasing), or
// nothing.
std::optional<std::string> alphas_cumprod_problem(const std::vector<double>& alphas_cumprod);
// The resolved options as JSON (T is the horizon in effect; alphas-cumprod as an array, only for the discrete
// schedule): what result files and checkpoints record.
nlohmann::ordered_json to_json(const SdeOptions& o);
// The inverse, validated; InputError naming `source` for a missing, malformed or invalid value.
SdeOptions sde_options_from_json(const nlohmann::json& j, const std::string& source);

// The exact forward transition between times s < t: x_t = a x_s + G z, z ~ N(0, I).
struct Transition {
  double a;         // alpha_t / alpha_s
  double variance;  // G^2 = sigma_t^2 - a^2 sigma_s^2
};

class ReverseSde;

class Sde {
 public:
  explicit Sde(const SdeOptions& options) : options_(options), T_(options.horizon()) {}
  virtual ~Sde() = default;

  const SdeOptions& options() const { return options_; }
  double T() const { return T_; }
  std::string name() const { return to_string(options_.kind); }

  virtual double f(double t) const = 0;          // drift coefficient: drift = f(t) x
  virtual double g(double t) const = 0;          // diffusion coefficient
  virtual double log_alpha(double t) const = 0;  // log of the mean coefficient alpha_t
  virtual double sigma(double t) const = 0;      // std of the perturbation kernel
  virtual double prior_std() const = 0;          // the prior at T is N(0, prior_std^2 I)
  virtual double default_eps() const = 0;        // where sampling stops by default

  // Noise-to-signal ratio sigma~_t = sigma_t / alpha_t and log-SNR lambda_t = log(alpha_t / sigma_t) = -log sigma~_t
  // (Karras et al. 2022, sec. 4; Lu et al. 2022, eq. 3.3), and their inverses, in closed form. sigma~ increases
  // and lambda decreases with t; sigma~(0) = 0 and lambda(0) = +inf. t_of_lambda(+inf) and t_of_sigma_tilde(0) are
  // 0. docs/samplers.md ("Time grids") has the formulas.
  virtual double sigma_tilde(double t) const = 0;
  virtual double t_of_sigma_tilde(double sigma_tilde) const = 0;
  virtual double t_of_lambda(double lambda) const = 0;
  double lambda(double t) const;

  double alpha(double t) const;
  Transition transition(double s, double t) const;
  // log N(x; 0, prior_std^2 I) for each column.
  void prior_log_density(ConstMatrixRef x, VectorRef out) const;

  ReverseSde reverse(bool probability_flow) const;

 private:
  SdeOptions options_;
  double T_;
};

// The reverse-time dynamics of Song et al. (2021), eqs. 6 and 13, and App. D.1:
//   reverse SDE          dx = [f x - g^2 s] dt + g dw_bar
//   probability flow ODE dx = [f x - g^2 s / 2] dt
class ReverseSde {
 public:
  ReverseSde(const Sde& sde, bool probability_flow) : sde_(&sde), probability_flow_(probability_flow) {}
  const Sde& sde() const { return *sde_; }
  bool probability_flow() const { return probability_flow_; }
  // out = f(t) x - c g(t)^2 score, with c = 1 (SDE) or 1/2 (ODE). out may alias score but not x.
  void drift(ConstMatrixRef x, ConstMatrixRef score, double t, MatrixRef out) const;
  // The drift's two coefficients, drift = x_coef x - score_coef score, for kernels that fuse it into an update.
  struct DriftCoefficients {
    double x_coef, score_coef;
  };
  DriftCoefficients drift_coefficients(double t) const {
    const double g = sde_->g(t);
    return {sde_->f(t), (probability_flow_ ? 0.5 : 1.0) * g * g};
  }
  double diffusion(double t) const { return probability_flow_ ? 0.0 : sde_->g(t); }

 private:
  const Sde* sde_;
  bool probability_flow_;
};

std::unique_ptr<Sde> make_sde(const SdeOptions& options);

}  // namespace scoresde
