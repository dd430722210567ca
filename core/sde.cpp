#include "core/sde.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numbers>
#include <sstream>

#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/sde_batch.hpp"
#include "core/vector_math.hpp"

namespace scoresde {
namespace {

// beta(t) and its integral for the VP schedules; alpha_t = exp(-B(t)/2) with B = int_0^t beta.
class Schedule {
 public:
  explicit Schedule(const SdeOptions& o) : o_{o.schedule, o.beta_min, o.beta_max, o.cosine_s} {
    if (o.schedule != VpSchedule::discrete) return;
    // DPM-Solver's discrete schedule (NoiseScheduleVP('discrete')): log alpha = log(alpha-bar_n) / 2 at the nodes
    // t_n = (n + 1) / N, linear in t between them. Node k of nodes_ is t = k / N: nodes_[0] = 0 (alpha_0 = 1, where
    // DPM-Solver would extrapolate its first segment to alpha_0 > 1), nodes_[k] = log(alpha-bar_{k-1}) / 2.
    const auto& a = o.alphas_cumprod;
    steps_ = static_cast<double>(a.size());
    nodes_.assign(a.size() + 1, 0.0);
    for (std::size_t k = 0; k < a.size(); ++k) nodes_[k + 1] = 0.5 * std::log(a[k]);
  }

  double beta(double t) const {
    if (o_.schedule == VpSchedule::linear) return o_.beta_min + t * (o_.beta_max - o_.beta_min);
    if (o_.schedule == VpSchedule::discrete) {
      // -2 d log(alpha)/dt, constant on each segment: the right-hand value at a node.
      const std::size_t k = segment(t);
      return -2.0 * steps_ * (nodes_[k + 1] - nodes_[k]);
    }
    // Cosine (Nichol & Dhariwal 2021, eq. 17): alpha_bar = cos^2(phi)/cos^2(phi_0), phi = (t+s)/(1+s) pi/2,
    // so beta = -d log(alpha_bar)/dt = pi/(1+s) tan(phi).
    const double phi = (t + o_.cosine_s) / (1.0 + o_.cosine_s) * std::numbers::pi / 2;
    return std::numbers::pi / (1.0 + o_.cosine_s) * std::tan(phi);
  }
  // beta and log alpha at the times t[j], j < n: the schedule's branch taken once for all, so that the linear
  // schedule's loop vectorises (an adaptive solver with a time per column asks for whole batches). Element j is the
  // scalar form's value at t[j], from the same expression.
  void beta(const double* t, Index n, double* out) const {
    if (o_.schedule != VpSchedule::linear) {
      for (Index j = 0; j < n; ++j) out[j] = beta(t[j]);
      return;
    }
    for (Index j = 0; j < n; ++j) out[j] = o_.beta_min + t[j] * (o_.beta_max - o_.beta_min);
  }
  void log_alpha(const double* t, Index n, double* out) const {
    if (o_.schedule != VpSchedule::linear) {
      for (Index j = 0; j < n; ++j) out[j] = log_alpha(t[j]);
      return;
    }
    for (Index j = 0; j < n; ++j) out[j] = -0.25 * t[j] * t[j] * (o_.beta_max - o_.beta_min) - 0.5 * t[j] * o_.beta_min;
  }
  double log_alpha(double t) const {
    if (o_.schedule == VpSchedule::linear) return -0.25 * t * t * (o_.beta_max - o_.beta_min) - 0.5 * t * o_.beta_min;
    if (o_.schedule == VpSchedule::discrete) {
      const std::size_t k = segment(t);
      return nodes_[k] + (t * steps_ - static_cast<double>(k)) * (nodes_[k + 1] - nodes_[k]);
    }
    const double phi = (t + o_.cosine_s) / (1.0 + o_.cosine_s) * std::numbers::pi / 2;
    const double phi0 = o_.cosine_s / (1.0 + o_.cosine_s) * std::numbers::pi / 2;
    // log(cos phi / cos phi0) = log1p((cos phi - cos phi0) / cos phi0), with the difference of cosines as a
    // product of sines: no cancellation for small t, where sigma_t^2 = 1 - alpha_t^2 needs log alpha to full
    // relative precision.
    return std::log1p(-2.0 * std::sin(0.5 * (phi + phi0)) * std::sin(0.5 * (phi - phi0)) / std::cos(phi0));
  }
  // The inverse of log_alpha, for la <= 0.
  double t_of_log_alpha(double la) const {
    if (o_.schedule == VpSchedule::linear) {
      // The root of (b1 - b0)/4 t^2 + b0/2 t + la = 0, (-b0 + sqrt(b0^2 - 4 (b1 - b0) la)) / (b1 - b0), written
      // without the cancellation for small t and valid for b1 = b0 (DPM-Solver's NoiseScheduleVP.inverse_lambda).
      const double b0 = o_.beta_min, db = o_.beta_max - o_.beta_min;
      return -4.0 * la / (b0 + std::sqrt(b0 * b0 - 4.0 * db * la));
    }
    if (o_.schedule == VpSchedule::discrete) {
      // The segment [k/N, (k+1)/N] whose node values bracket la (nodes_ decreases strictly), inverted linearly;
      // below the last node, the last segment extended (as DPM-Solver's interpolate_fn does).
      const auto first_below = std::upper_bound(nodes_.begin() + 1, nodes_.end(), la, std::greater<>());
      const std::size_t k = std::min<std::size_t>(first_below - nodes_.begin(), nodes_.size() - 1) - 1;
      return (static_cast<double>(k) + (la - nodes_[k]) / (nodes_[k + 1] - nodes_[k])) / steps_;
    }
    // cos(phi) = cos(phi0) e^la; t = (phi - phi0) (1 + s) 2/pi with phi - phi0 from atan2 of its sine and cosine,
    // both formed without cancellation: sin(phi)^2 = sin(phi0)^2 - cos(phi0)^2 expm1(2 la), and
    // sin(phi - phi0) = cos(phi0) (sin(phi) - e^la sin(phi0)) = cos(phi0) (-expm1(2 la)) / (sin(phi) + e^la sin(phi0)).
    const double phi0 = o_.cosine_s / (1.0 + o_.cosine_s) * std::numbers::pi / 2;
    const double c0 = std::cos(phi0), s0 = std::sin(phi0), a = std::exp(la), one_minus_a2 = -std::expm1(2.0 * la);
    const double sin_phi = std::sqrt(s0 * s0 + c0 * c0 * one_minus_a2);
    const double sin_delta = c0 * one_minus_a2 / (sin_phi + a * s0);
    const double cos_delta = a * c0 * c0 + sin_phi * s0;
    return std::atan2(sin_delta, cos_delta) * (1.0 + o_.cosine_s) * 2.0 / std::numbers::pi;
  }

 private:
  // The discrete schedule's segment [k/N, (k+1)/N] holding t; the first and last extended beyond [0, 1].
  std::size_t segment(double t) const {
    const double k = std::floor(t * steps_);
    if (!(k > 0)) return 0;  // also NaN
    return std::min(static_cast<std::size_t>(k), nodes_.size() - 2);
  }

  struct Parameters {
    VpSchedule schedule;
    double beta_min, beta_max, cosine_s;
  };
  Parameters o_;
  double steps_ = 0;           // discrete: N
  std::vector<double> nodes_;  // discrete: log alpha at t = k / N, k = 0..N
};

// log(1 + e^x) without overflow.
double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

class VpSde final : public Sde {
 public:
  explicit VpSde(const SdeOptions& o) : Sde(o), schedule_(o) {}
  double f(double t) const override { return -0.5 * schedule_.beta(t); }
  double g(double t) const override { return std::sqrt(schedule_.beta(t)); }
  // f = -beta / 2 and g = sqrt(beta), vectorised: every element is VpSde::f and VpSde::g's value whatever its
  // position (sqrt_in_place is correctly rounded).
  void f_and_g(const double* t, Index n, double* f, double* g) const {
    schedule_.beta(t, n, g);
    for (Index j = 0; j < n; ++j) f[j] = -0.5 * g[j];
    sqrt_in_place(g, n);
  }
  double log_alpha(double t) const override { return schedule_.log_alpha(t); }
  // sigma^2 = 1 - alpha^2, computed with expm1 to keep precision for small t.
  double sigma(double t) const override { return std::sqrt(-std::expm1(2.0 * log_alpha(t))); }
  void alpha_sigma(const double* t, Index n, double* alpha, double* sigma) const {
    schedule_.log_alpha(t, n, sigma);  // log alpha, overwritten in place
    alpha_and_one_minus_alpha_sq(sigma, n, alpha, sigma);
    sqrt_in_place(sigma, n);
  }
  // sigma~^2 = (1 - alpha^2) / alpha^2 = expm1(-2 log alpha), so log alpha = -log1p(sigma~^2) / 2 =
  // -softplus(-2 lambda) / 2.
  double sigma_tilde(double t) const override { return std::sqrt(std::expm1(-2.0 * log_alpha(t))); }
  double t_of_sigma_tilde(double s) const override {
    if (s > 1e150) return t_of_lambda(-std::log(s));  // s^2 would overflow
    return schedule_.t_of_log_alpha(-0.5 * std::log1p(s * s));
  }
  double t_of_lambda(double lambda) const override { return schedule_.t_of_log_alpha(-0.5 * softplus(-2.0 * lambda)); }
  double prior_std() const override { return 1.0; }
  // The discrete schedule's first node t_0 = 1/N, where DPM-Solver stops (its t_end for discrete models).
  double default_eps() const override {
    const auto& a = options().alphas_cumprod;
    return options().schedule == VpSchedule::discrete ? 1.0 / static_cast<double>(a.size()) : 1e-3;
  }

 private:
  Schedule schedule_;
};

class SubVpSde final : public Sde {
 public:
  explicit SubVpSde(const SdeOptions& o) : Sde(o), schedule_(o) {}
  double f(double t) const override { return -0.5 * schedule_.beta(t); }
  // g^2 = beta(t) (1 - exp(-2 int_0^t beta)) = beta (1 - alpha^4)   (Song et al. 2021, eq. 11)
  double g(double t) const override { return std::sqrt(schedule_.beta(t) * -std::expm1(4.0 * log_alpha(t))); }
  void f_and_g(const double* t, Index n, double* f, double* g) const {
    for (Index j = 0; j < n; ++j) {
      f[j] = SubVpSde::f(t[j]);
      g[j] = SubVpSde::g(t[j]);
    }
  }
  double log_alpha(double t) const override { return schedule_.log_alpha(t); }
  // The kernel std is 1 - alpha^2 itself, not its square root (Song et al. 2021, eq. 29).
  double sigma(double t) const override { return -std::expm1(2.0 * log_alpha(t)); }
  void alpha_sigma(const double* t, Index n, double* alpha, double* sigma) const {
    schedule_.log_alpha(t, n, sigma);  // log alpha, overwritten in place
    alpha_and_one_minus_alpha_sq(sigma, n, alpha, sigma);
  }
  // sigma~ = (1 - alpha^2) / alpha = 1/alpha - alpha = 2 sinh(-log alpha), so log alpha = -asinh(sigma~ / 2).
  double sigma_tilde(double t) const override { return 2.0 * std::sinh(-log_alpha(t)); }
  double t_of_sigma_tilde(double s) const override { return schedule_.t_of_log_alpha(-std::asinh(0.5 * s)); }
  double t_of_lambda(double lambda) const override {
    // asinh(e^x / 2) = x + log(1/2 + sqrt(1/4 + e^{-2x})), which is x to double precision for x > 700.
    const double x = -lambda;
    return schedule_.t_of_log_alpha(x > 700.0 ? -x : -std::asinh(0.5 * std::exp(x)));
  }
  double prior_std() const override { return 1.0; }
  // The discrete schedule's first node t_0 = 1/N, where DPM-Solver stops (its t_end for discrete models).
  double default_eps() const override {
    const auto& a = options().alphas_cumprod;
    return options().schedule == VpSchedule::discrete ? 1.0 / static_cast<double>(a.size()) : 1e-3;
  }

 private:
  Schedule schedule_;
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
  double sigma(double t) const override { return options().sigma_min * std::sqrt(std::expm1(2.0 * t * log_ratio())); }
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

// --alphas-cumprod: a JSON array (what records and checkpoints hold), or a file: a 1-d .npy, or text with the
// numbers separated by white space or commas.
std::optional<std::string> read_alphas_cumprod(const std::string& text, std::vector<double>& out) {
  std::vector<double> values;
  if (!text.empty() && text.front() == '[') {
    const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_array()) return std::string("not a JSON array of numbers");
    for (const auto& v : j) {
      if (!v.is_number()) return std::string("not a JSON array of numbers");
      values.push_back(v.get<double>());
    }
  } else if (!std::filesystem::is_regular_file(text)) {
    return std::string("no such file (give a 1-d .npy or a text file of numbers)");
  } else if (has_npy_magic(text)) {
    try {
      const Vector v = read_vector_npy(text);
      values.assign(v.data(), v.data() + v.size());
    } catch (const InputError& e) {
      return std::string(e.what());
    }
  } else {
    std::ifstream in(text);
    std::string item;
    std::size_t line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      std::replace(line.begin(), line.end(), ',', ' ');
      std::istringstream items(line);
      while (items >> item) {
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        if (end != item.c_str() + item.size()) return fmt::format("line {}: \"{}\" is not a number", line_number, item);
        values.push_back(v);
      }
    }
  }
  if (auto problem = alphas_cumprod_problem(values)) return problem;
  out = std::move(values);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> alphas_cumprod_problem(const std::vector<double>& a) {
  if (a.empty()) return std::string("no values; give DDPM's alpha-bar_n, n = 0..N-1");
  for (std::size_t n = 0; n < a.size(); ++n) {
    if (!(a[n] > 0 && a[n] < 1)) return fmt::format("alphas_cumprod[{}] = {}: must be in (0, 1)", n, a[n]);
    if (n > 0 && !(a[n] < a[n - 1]))
      return fmt::format("alphas_cumprod[{}] = {} is not below alphas_cumprod[{}] = {}: must decrease strictly", n,
                         a[n], n - 1, a[n - 1]);
  }
  return std::nullopt;
}

std::string to_string(SdeKind kind) {
  return std::string(enum_name(kind));
}
std::string to_string(VpSchedule schedule) {
  return std::string(enum_name(schedule));
}
std::vector<std::string> sde_names() {
  return enum_names<SdeKind>();
}
SdeKind sde_kind_from_string(std::string_view name) {
  return enum_from_name<SdeKind>(name, "sde");
}
VpSchedule vp_schedule_from_string(std::string_view name) {
  return enum_from_name<VpSchedule>(name, "schedule");
}

const OptionTable<SdeOptions>& sde_option_table() {
  using S = SdeOptions;
  static const OptionTable<S> table = [] {
    OptionTable<S> t;
    t.push_back(option("sde", &S::kind, "vp (variance preserving), subvp, or ve (variance exploding)"));
    t.push_back(option("schedule", &S::schedule,
                       "vp/subvp noise schedule: linear, cosine, or discrete (DDPM's alphas_cumprod, "
                       "--alphas-cumprod)"));
    t.push_back(option("beta-min", &S::beta_min, "linear schedule: beta(0)"));
    t.push_back(option("beta-max", &S::beta_max, "linear schedule: beta(T)"));
    t.push_back(option("cosine-s", &S::cosine_s, "cosine schedule offset s"));
    {
      OptionSpec<S> a;
      a.key = "alphas-cumprod";
      a.value_name = "FILE";
      a.help =
          "discrete schedule: DDPM's alpha-bar_n, n = 0..N-1, at t = (n + 1) / N (a 1-d .npy, a text file of "
          "numbers, or a JSON array)";
      a.optional = true;
      a.parse = [](S& s, const std::string& text) { return read_alphas_cumprod(text, s.alphas_cumprod); };
      a.get = [](const S& s) {
        return s.alphas_cumprod.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(s.alphas_cumprod);
      };
      t.push_back(std::move(a));
    }
    t.push_back(option("sigma-min", &S::sigma_min, "ve: sigma(0)"));
    t.push_back(option("sigma-max", &S::sigma_max, "ve: sigma(T); the prior is N(0, sigma_max^2 I)"));
    t.push_back(option("T", &S::T, "time horizon (default 1; 0.999 for the cosine schedule; at most 1 for discrete)"));
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
    if (!spec.optional && !j.contains(spec.key))
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
  const std::string values = fmt::format("({} values)", alphas_cumprod.size());
  if (schedule == VpSchedule::discrete) {
    require(!alphas_cumprod.empty() || kind == SdeKind::ve, "--alphas-cumprod", values,
            "required by --schedule discrete (DDPM's alpha-bar_n, n = 0..N-1)");
    if (!alphas_cumprod.empty())
      if (const auto problem = alphas_cumprod_problem(alphas_cumprod))
        require(false, "--alphas-cumprod", values, *problem);
    if (kind != SdeKind::ve)
      require(t <= 1.0, "--T", fmt::format("{}", t),
              "must be <= 1 for the discrete schedule (its last step is at t = 1)");
  } else {
    require(alphas_cumprod.empty(), "--alphas-cumprod", values,
            fmt::format("only with --schedule discrete, not {}", to_string(schedule)));
  }
}

void sde_f_and_g(const Sde& sde, const double* t, Index n, double* f, double* g) {
  if (const auto* vp = dynamic_cast<const VpSde*>(&sde)) return vp->f_and_g(t, n, f, g);
  if (const auto* subvp = dynamic_cast<const SubVpSde*>(&sde)) return subvp->f_and_g(t, n, f, g);
  for (Index j = 0; j < n; ++j) {
    f[j] = sde.f(t[j]);
    g[j] = sde.g(t[j]);
  }
}

void sde_alpha_sigma(const Sde& sde, const double* t, Index n, double* alpha, double* sigma) {
  if (const auto* vp = dynamic_cast<const VpSde*>(&sde)) return vp->alpha_sigma(t, n, alpha, sigma);
  if (const auto* subvp = dynamic_cast<const SubVpSde*>(&sde)) return subvp->alpha_sigma(t, n, alpha, sigma);
  for (Index j = 0; j < n; ++j) {
    alpha[j] = sde.alpha(t[j]);
    sigma[j] = sde.sigma(t[j]);
  }
}

double Sde::alpha(double t) const {
  return std::exp(log_alpha(t));
}
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

ReverseSde Sde::reverse(bool probability_flow) const {
  return ReverseSde(*this, probability_flow);
}

void ReverseSde::drift(ConstMatrixRef x, ConstMatrixRef score, double t, MatrixRef out) const {
  const DriftCoefficients d = drift_coefficients(t);
  flat(out) = d.x_coef * flat(x) - d.score_coef * flat(score);
}

std::unique_ptr<Sde> make_sde(const SdeOptions& options) {
  options.validate();
  switch (options.kind) {
    case SdeKind::vp:
      return std::make_unique<VpSde>(options);
    case SdeKind::subvp:
      return std::make_unique<SubVpSde>(options);
    case SdeKind::ve:
      return std::make_unique<VeSde>(options);
  }
  throw ConfigError("--sde: unknown kind");
}

}  // namespace scoresde
