#include "core/sde.hpp"

#include <cmath>
#include <fmt/format.h>
#include <numbers>

#include "core/errors.hpp"

namespace scoresde {
namespace {

// beta(t) and its integral for the two VP schedules; alpha_t = exp(-B(t)/2) with B = int_0^t beta.
struct Schedule {
  const SdeOptions& o;
  double beta(double t) const {
    if (o.schedule == VpSchedule::linear) return o.beta_min + t * (o.beta_max - o.beta_min);
    // Cosine (Nichol & Dhariwal 2021, eq. 17): alpha_bar = cos^2(phi)/cos^2(phi_0), phi = (t+s)/(1+s) pi/2,
    // so beta = -d log(alpha_bar)/dt = pi/(1+s) tan(phi).
    const double phi = (t + o.cosine_s) / (1.0 + o.cosine_s) * std::numbers::pi / 2;
    return std::numbers::pi / (1.0 + o.cosine_s) * std::tan(phi);
  }
  double log_alpha(double t) const {
    if (o.schedule == VpSchedule::linear) return -0.25 * t * t * (o.beta_max - o.beta_min) - 0.5 * t * o.beta_min;
    const double phi = (t + o.cosine_s) / (1.0 + o.cosine_s) * std::numbers::pi / 2;
    const double phi0 = o.cosine_s / (1.0 + o.cosine_s) * std::numbers::pi / 2;
    // log(cos phi / cos phi0) = log1p((cos phi - cos phi0) / cos phi0), with the difference of cosines as a
    // product of sines: no cancellation for small t, where sigma_t^2 = 1 - alpha_t^2 needs log alpha to full
    // relative precision.
    return std::log1p(-2.0 * std::sin(0.5 * (phi + phi0)) * std::sin(0.5 * (phi - phi0)) / std::cos(phi0));
  }
  // The inverse of log_alpha, for la <= 0.
  double t_of_log_alpha(double la) const {
    if (o.schedule == VpSchedule::linear) {
      // The root of (b1 - b0)/4 t^2 + b0/2 t + la = 0, (-b0 + sqrt(b0^2 - 4 (b1 - b0) la)) / (b1 - b0), written
      // without the cancellation for small t and valid for b1 = b0 (DPM-Solver's NoiseScheduleVP.inverse_lambda).
      const double b0 = o.beta_min, db = o.beta_max - o.beta_min;
      return -4.0 * la / (b0 + std::sqrt(b0 * b0 - 4.0 * db * la));
    }
    // cos(phi) = cos(phi0) e^la; t = (phi - phi0) (1 + s) 2/pi with phi - phi0 from atan2 of its sine and cosine,
    // both formed without cancellation: sin(phi)^2 = sin(phi0)^2 - cos(phi0)^2 expm1(2 la), and
    // sin(phi - phi0) = cos(phi0) (sin(phi) - e^la sin(phi0)) = cos(phi0) (-expm1(2 la)) / (sin(phi) + e^la sin(phi0)).
    const double phi0 = o.cosine_s / (1.0 + o.cosine_s) * std::numbers::pi / 2;
    const double c0 = std::cos(phi0), s0 = std::sin(phi0), a = std::exp(la), one_minus_a2 = -std::expm1(2.0 * la);
    const double sin_phi = std::sqrt(s0 * s0 + c0 * c0 * one_minus_a2);
    const double sin_delta = c0 * one_minus_a2 / (sin_phi + a * s0);
    const double cos_delta = a * c0 * c0 + sin_phi * s0;
    return std::atan2(sin_delta, cos_delta) * (1.0 + o.cosine_s) * 2.0 / std::numbers::pi;
  }
};

// log(1 + e^x) without overflow.
double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

class VpSde final : public Sde {
 public:
  using Sde::Sde;
  double f(double t) const override { return -0.5 * Schedule{options()}.beta(t); }
  double g(double t) const override { return std::sqrt(Schedule{options()}.beta(t)); }
  double log_alpha(double t) const override { return Schedule{options()}.log_alpha(t); }
  // sigma^2 = 1 - alpha^2, computed with expm1 to keep precision for small t.
  double sigma(double t) const override { return std::sqrt(-std::expm1(2.0 * log_alpha(t))); }
  // sigma~^2 = (1 - alpha^2) / alpha^2 = expm1(-2 log alpha), so log alpha = -log1p(sigma~^2) / 2 =
  // -softplus(-2 lambda) / 2.
  double sigma_tilde(double t) const override { return std::sqrt(std::expm1(-2.0 * log_alpha(t))); }
  double t_of_sigma_tilde(double s) const override {
    if (s > 1e150) return t_of_lambda(-std::log(s));  // s^2 would overflow
    return Schedule{options()}.t_of_log_alpha(-0.5 * std::log1p(s * s));
  }
  double t_of_lambda(double lambda) const override {
    return Schedule{options()}.t_of_log_alpha(-0.5 * softplus(-2.0 * lambda));
  }
  double prior_std() const override { return 1.0; }
  double default_eps() const override { return 1e-3; }
};

class SubVpSde final : public Sde {
 public:
  using Sde::Sde;
  double f(double t) const override { return -0.5 * Schedule{options()}.beta(t); }
  // g^2 = beta(t) (1 - exp(-2 int_0^t beta)) = beta (1 - alpha^4)   (Song et al. 2021, eq. 11)
  double g(double t) const override {
    return std::sqrt(Schedule{options()}.beta(t) * -std::expm1(4.0 * log_alpha(t)));
  }
  double log_alpha(double t) const override { return Schedule{options()}.log_alpha(t); }
  // The kernel std is 1 - alpha^2 itself, not its square root (Song et al. 2021, eq. 29).
  double sigma(double t) const override { return -std::expm1(2.0 * log_alpha(t)); }
  // sigma~ = (1 - alpha^2) / alpha = 1/alpha - alpha = 2 sinh(-log alpha), so log alpha = -asinh(sigma~ / 2).
  double sigma_tilde(double t) const override { return 2.0 * std::sinh(-log_alpha(t)); }
  double t_of_sigma_tilde(double s) const override { return Schedule{options()}.t_of_log_alpha(-std::asinh(0.5 * s)); }
  double t_of_lambda(double lambda) const override {
    // asinh(e^x / 2) = x + log(1/2 + sqrt(1/4 + e^{-2x})), which is x to double precision for x > 700.
    const double x = -lambda;
    return Schedule{options()}.t_of_log_alpha(x > 700.0 ? -x : -std::asinh(0.5 * std::exp(x)));
  }
  double prior_std() const override { return 1.0; }
  double default_eps() const override { return 1e-3; }
};

// Variance exploding (SMLD). The kernel variance is the exact sigma(t)^2 - sigma_min^2 (so that sigma_0 = 0 and
// the exact mixture score is the score of the process simulated), not the reference code's sigma(t)^2; the prior
// is N(0, sigma_max^2 I) as in the reference. See docs/maths.md.
class VeSde final : public Sde {
 public:
  using Sde::Sde;
  double log_ratio() const { return std::log(options().sigma_max / options().sigma_min); }
  double sigma_of(double t) const { return options().sigma_min * std::exp(t * log_ratio()); }
  double f(double) const override { return 0.0; }
  double g(double t) const override { return sigma_of(t) * std::sqrt(2.0 * log_ratio()); }
  double log_alpha(double) const override { return 0.0; }
  double sigma(double t) const override {
    return options().sigma_min * std::sqrt(std::expm1(2.0 * t * log_ratio()));
  }
  // alpha = 1: sigma~ = sigma_t, and sigma_t^2 = sigma_min^2 expm1(2 t r), r = log(sigma_max / sigma_min), gives
  // t = log1p(sigma~^2 / sigma_min^2) / (2 r) (the reference's kernel sigma(t) would give log(sigma~ / sigma_min) / r).
  double sigma_tilde(double t) const override { return sigma(t); }
  double t_of_sigma_tilde(double s) const override {
    const double q = s / options().sigma_min;
    if (q > 1e150) return std::log(q) / log_ratio();  // q^2 would overflow; log1p(q^2) = 2 log q
    return std::log1p(q * q) / (2.0 * log_ratio());
  }
  double t_of_lambda(double lambda) const override {
    return softplus(-2.0 * (lambda + std::log(options().sigma_min))) / (2.0 * log_ratio());
  }
  double prior_std() const override { return options().sigma_max; }
  double default_eps() const override { return 1e-5; }
};

}  // namespace

std::string to_string(SdeKind kind) { return std::string(enum_name(kind)); }
std::string to_string(VpSchedule schedule) { return std::string(enum_name(schedule)); }
std::vector<std::string> sde_names() { return enum_names<SdeKind>(); }
SdeKind sde_kind_from_string(std::string_view name) { return enum_from_name<SdeKind>(name, "sde"); }
VpSchedule vp_schedule_from_string(std::string_view name) { return enum_from_name<VpSchedule>(name, "schedule"); }

const OptionTable<SdeOptions>& sde_option_table() {
  using S = SdeOptions;
  static const OptionTable<S> table = [] {
    OptionTable<S> t;
    t.push_back(option("sde", &S::kind, "vp (variance preserving), subvp, or ve (variance exploding)"));
    t.push_back(option("schedule", &S::schedule, "vp/subvp noise schedule: linear or cosine"));
    t.push_back(option("beta-min", &S::beta_min, "linear schedule: beta(0)"));
    t.push_back(option("beta-max", &S::beta_max, "linear schedule: beta(T)"));
    t.push_back(option("cosine-s", &S::cosine_s, "cosine schedule offset s"));
    t.push_back(option("sigma-min", &S::sigma_min, "ve: sigma(0)"));
    t.push_back(option("sigma-max", &S::sigma_max, "ve: sigma(T); the prior is N(0, sigma_max^2 I)"));
    t.push_back(option("T", &S::T, "time horizon (default 1; 0.999 for the cosine schedule)"));
    return t;
  }();
  return table;
}

nlohmann::ordered_json to_json(const SdeOptions& o) {
  SdeOptions resolved = o;
  resolved.T = o.horizon();
  nlohmann::ordered_json j;
  record_options(sde_option_table(), resolved, j);
  return j;
}

SdeOptions sde_options_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw InputError(fmt::format("{}: the SDE in the header is malformed (not an object)", source));
  for (const auto& spec : sde_option_table())
    if (!j.contains(spec.key))
      throw InputError(fmt::format("{}: the SDE in the header is malformed (no \"{}\")", source, spec.key));
  SdeOptions o;
  read_options(sde_option_table(), j, o, source);
  try {
    o.validate();
  } catch (const ConfigError& e) {
    throw InputError(fmt::format("{}: the SDE in the header is invalid ({})", source, e.what()));
  }
  return o;
}

double SdeOptions::horizon() const {
  if (T) return *T;
  return (kind != SdeKind::ve && schedule == VpSchedule::cosine) ? 0.999 : 1.0;
}

void SdeOptions::validate() const {
  // Every value is checked, including those the chosen SDE ignores: they are recorded in result files.
  const double t = horizon();
  require(std::isfinite(t) && t > 0, "--T", fmt::format("{}", t), "must be > 0");
  require(sigma_min > 0 && std::isfinite(sigma_min), "--sigma-min", fmt::format("{}", sigma_min), "must be > 0");
  require(sigma_max > sigma_min && std::isfinite(sigma_max), "--sigma-max", fmt::format("{}", sigma_max),
          fmt::format("must be > --sigma-min ({})", sigma_min));
  require(beta_min > 0 && std::isfinite(beta_min), "--beta-min", fmt::format("{}", beta_min), "must be > 0");
  require(beta_max >= beta_min && std::isfinite(beta_max), "--beta-max", fmt::format("{}", beta_max),
          fmt::format("must be >= --beta-min ({})", beta_min));
  require(cosine_s > 0 && cosine_s < 1, "--cosine-s", fmt::format("{}", cosine_s), "must be in (0, 1)");
  if (kind != SdeKind::ve && schedule == VpSchedule::cosine)
    require(t < 1.0, "--T", fmt::format("{}", t), "must be < 1 for the cosine schedule (alpha vanishes at t = 1)");
}

double Sde::alpha(double t) const { return std::exp(log_alpha(t)); }
double Sde::lambda(double t) const {
  return -std::log(sigma_tilde(t));
}

Transition Sde::transition(double s, double t) const {
  const double log_a = log_alpha(t) - log_alpha(s);
  const double a = std::exp(log_a);
  if (options_.kind == SdeKind::vp) return {a, -std::expm1(2.0 * log_a)};  // 1 - a^2, the exact discrete beta
  const double st = sigma(t), ss = sigma(s);
  return {a, st * st - a * a * ss * ss};
}

void Sde::prior_log_density(ConstMatrixRef x, VectorRef out) const {
  const double s = prior_std();
  const double d = static_cast<double>(x.rows());
  out = -0.5 * x.colwise().squaredNorm().transpose() / (s * s);
  out.array() -= 0.5 * d * std::log(2.0 * std::numbers::pi * s * s);
}

ReverseSde Sde::reverse(bool probability_flow) const { return ReverseSde(*this, probability_flow); }

void ReverseSde::drift(ConstMatrixRef x, ConstMatrixRef score, double t, MatrixRef out) const {
  const double g = sde_->g(t);
  const double c = probability_flow_ ? 0.5 : 1.0;
  flat(out) = sde_->f(t) * flat(x) - (c * g * g) * flat(score);
}

std::unique_ptr<Sde> make_sde(const SdeOptions& options) {
  options.validate();
  switch (options.kind) {
    case SdeKind::vp: return std::make_unique<VpSde>(options);
    case SdeKind::subvp: return std::make_unique<SubVpSde>(options);
    case SdeKind::ve: return std::make_unique<VeSde>(options);
  }
  throw ConfigError("--sde: unknown kind");
}

}  // namespace scoresde
