// Forward SDEs against closed forms (shared/ORACLES.md, "Linear forward SDEs"):
//   - alpha_t, sigma_t, f, g and the prior against the published formulas, evaluated independently here in
//     long double (64-bit mantissa), so the oracle's own rounding is ~1e-19 and cannot hide a library error;
//   - f and g against numerical derivatives of the library's own marginals: f = d log(alpha)/dt and
//     g^2 = d(sigma^2)/dt - 2 f sigma^2 (consistency of the SDE with its perturbation kernel);
//   - Sde::transition against alpha_t / alpha_s and sigma_t^2 - a^2 sigma_s^2, and the Chapman-Kolmogorov
//     composition s < u < t;
//   - SdeOptions::validate messages, ReverseSde::drift;
//   - sigma~_t = sigma_t / alpha_t and lambda_t = log(alpha_t / sigma_t) against long double closed forms, and their
//     closed-form inverses against a bracketing root finder (TOMS 748), round trips, monotonicity and limits
//     (shared/ORACLES.md, "Time grids and their inverses").
#include <doctest/doctest.h>

#include <algorithm>
#include <boost/math/tools/toms748_solve.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <numbers>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/npy.hpp"
#include "core/sde.hpp"
#include "core/sde_batch.hpp"

using namespace scoresde;

namespace {

using ld = long double;
constexpr double eps = std::numeric_limits<double>::epsilon();
constexpr ld pi_ld = std::numbers::pi_v<long double>;

struct Case {
  std::string label;
  SdeOptions options;
};

SdeOptions vp(VpSchedule schedule, double b0, double b1, std::optional<double> T = {}, double s = 0.008,
              SdeKind kind = SdeKind::vp) {
  SdeOptions o;
  o.kind = kind;
  o.schedule = schedule;
  o.beta_min = b0;
  o.beta_max = b1;
  o.cosine_s = s;
  o.T = T;
  return o;
}

SdeOptions ve(double smin, double smax, std::optional<double> T = {}) {
  SdeOptions o;
  o.kind = SdeKind::ve;
  o.sigma_min = smin;
  o.sigma_max = smax;
  o.T = T;
  return o;
}

// A discrete schedule (DDPM's alphas_cumprod).
SdeOptions discrete(std::vector<double> alphas_cumprod, SdeKind kind = SdeKind::vp) {
  SdeOptions o;
  o.kind = kind;
  o.schedule = VpSchedule::discrete;
  o.alphas_cumprod = std::move(alphas_cumprod);
  return o;
}

// DDPM's linear schedule (Ho et al. 2020): beta_n = 1e-4 + n (0.02 - 1e-4) / (N - 1), alpha-bar_n =
// prod_{m <= n} (1 - beta_m).
std::vector<double> ddpm_linear(int N) {
  std::vector<double> a(N);
  double prod = 1;
  for (int n = 0; n < N; ++n) {
    prod *= 1.0 - (1e-4 + n * (0.02 - 1e-4) / (N - 1));
    a[n] = prod;
  }
  return a;
}

// A short schedule (N = 7) with segments long enough for finite differences inside them.
std::vector<double> short_schedule() {
  std::vector<double> a;
  for (int n = 0; n < 7; ++n) a.push_back(std::exp(-0.1 * (n + 1) * (n + 1)));
  return a;
}

// The discrete schedule's segment [k/N, (k+1)/N] holding t, decided in double as the library does (which side of
// a node is a convention, not a matter of accuracy), and its end values log alpha at k/N and (k+1)/N in long
// double: 0 at t = 0, log(alpha-bar_{k-1}) / 2 at k/N.
struct Segment {
  int k;
  ld low, high;
};
Segment discrete_segment(const SdeOptions& o, double t) {
  const int N = static_cast<int>(o.alphas_cumprod.size());
  const int k = std::clamp(static_cast<int>(std::floor(t * N)), 0, N - 1);
  const auto node = [&](int i) { return i == 0 ? 0.0L : 0.5L * std::log(static_cast<ld>(o.alphas_cumprod[i - 1])); };
  return {k, node(k), node(k + 1)};
}
ld discrete_log_alpha(const SdeOptions& o, ld t) {
  const Segment s = discrete_segment(o, static_cast<double>(t));
  return s.low + (t * static_cast<ld>(o.alphas_cumprod.size()) - s.k) * (s.high - s.low);
}

// Every family with its reference defaults and with non-default parameters.
std::vector<Case> all_cases() {
  return {
      {"vp linear default", vp(VpSchedule::linear, 0.1, 20.0)},
      {"vp linear b0=0.5 b1=7.5 T=0.8", vp(VpSchedule::linear, 0.5, 7.5, 0.8)},
      {"vp linear constant beta=3", vp(VpSchedule::linear, 3.0, 3.0)},
      {"vp cosine default", vp(VpSchedule::cosine, 0.1, 20.0)},
      {"vp cosine s=0.02 T=0.95", vp(VpSchedule::cosine, 0.1, 20.0, 0.95, 0.02)},
      {"subvp linear default", vp(VpSchedule::linear, 0.1, 20.0, {}, 0.008, SdeKind::subvp)},
      {"subvp linear b0=0.3 b1=12 T=0.9", vp(VpSchedule::linear, 0.3, 12.0, 0.9, 0.008, SdeKind::subvp)},
      {"subvp cosine default", vp(VpSchedule::cosine, 0.1, 20.0, {}, 0.008, SdeKind::subvp)},
      {"vp discrete DDPM linear N=1000", discrete(ddpm_linear(1000))},
      {"vp discrete N=7", discrete(short_schedule())},
      {"subvp discrete N=7", discrete(short_schedule(), SdeKind::subvp)},
      {"ve default", ve(0.01, 50.0)},
      {"ve smin=0.05 smax=348 T=0.9", ve(0.05, 348.0, 0.9)},
  };
}

// Closed forms from shared/ORACLES.md, written from the formulas (not from the library), in long double.
struct Oracle {
  SdeOptions o;
  bool cosine() const { return o.kind != SdeKind::ve && o.schedule == VpSchedule::cosine; }
  bool discrete() const { return o.kind != SdeKind::ve && o.schedule == VpSchedule::discrete; }
  ld phi(ld t) const { return (t + o.cosine_s) / (1 + static_cast<ld>(o.cosine_s)) * pi_ld / 2; }
  ld beta(ld t) const {
    if (discrete()) {
      // -2 d log(alpha)/dt on the segment.
      const Segment s = discrete_segment(o, static_cast<double>(t));
      return -2 * static_cast<ld>(o.alphas_cumprod.size()) * (s.high - s.low);
    }
    if (!cosine()) return o.beta_min + t * (static_cast<ld>(o.beta_max) - o.beta_min);
    // alpha_bar = cos^2(phi)/cos^2(phi0) and beta = -d log(alpha_bar)/dt = pi/(1+s) tan(phi).
    return pi_ld / (1 + static_cast<ld>(o.cosine_s)) * std::tan(phi(t));
  }
  ld log_alpha(ld t) const {
    if (o.kind == SdeKind::ve) return 0;
    if (discrete()) return discrete_log_alpha(o, t);
    if (!cosine()) return -t * t * (static_cast<ld>(o.beta_max) - o.beta_min) / 4 - t * o.beta_min / 2;
    // alpha_t^2 = alpha_bar(t) = cos^2(phi(t)) / cos^2(phi(0)).
    return 0.5L * std::log(std::pow(std::cos(phi(t)), 2) / std::pow(std::cos(phi(0)), 2));
  }
  ld alpha(ld t) const { return std::exp(log_alpha(t)); }
  ld variance(ld t) const {
    const ld a2 = alpha(t) * alpha(t);
    switch (o.kind) {
      case SdeKind::vp:
        return 1 - a2;
      case SdeKind::subvp:
        return (1 - a2) * (1 - a2);  // std = 1 - alpha^2
      case SdeKind::ve: {
        // Exact kernel variance sigma(t)^2 - sigma_min^2, sigma(t) = smin (smax/smin)^t.
        const ld s = o.sigma_min * std::pow(static_cast<ld>(o.sigma_max) / o.sigma_min, t);
        return s * s - static_cast<ld>(o.sigma_min) * o.sigma_min;
      }
    }
    return 0;
  }
  ld f(ld t) const { return o.kind == SdeKind::ve ? 0 : -beta(t) / 2; }
  ld g2(ld t) const {
    switch (o.kind) {
      case SdeKind::vp:
        return beta(t);
      case SdeKind::subvp: {
        // beta(t) (1 - exp(-2 int_0^t beta)), and int_0^t beta = -2 log(alpha_t).
        return beta(t) * (1 - std::exp(4 * log_alpha(t)));
      }
      case SdeKind::ve: {
        const ld r = std::log(static_cast<ld>(o.sigma_max) / o.sigma_min);
        const ld s = o.sigma_min * std::exp(t * r);
        return s * s * 2 * r;
      }
    }
    return 0;
  }
  ld prior_std() const { return o.kind == SdeKind::ve ? o.sigma_max : 1; }
  double r() const { return std::log(o.sigma_max / o.sigma_min); }

  // Error model of the library's double evaluation (what a correct implementation of the documented formulas
  // achieves; 64 eps stands for "a few ulps per elementary operation" with a generous margin).
  // cond: relative conditioning of beta = pi/(1+s) tan(phi): tan loses ~2 phi |tan phi| ulps near the pole.
  // Discrete: beta is a difference of node values, which carry ~eps relative each: 1 + (|L_k| + |L_k+1|) /
  // |L_k+1 - L_k|.
  double cond(double t) const {
    if (discrete()) {
      const Segment s = discrete_segment(o, t);
      return static_cast<double>(1 + (std::abs(s.low) + std::abs(s.high)) / std::abs(s.high - s.low));
    }
    return cosine() ? 1.0 + 2.0 * std::abs(static_cast<double>(std::tan(phi(t)))) : 1.0;
  }
  // Absolute error of log(alpha_t). Linear schedule: a polynomial with positive coefficients, a few ulps of
  // |log alpha|. Cosine: log(cos(phi)/cos(phi0)) is the log of a ratio near 1 at small t, so its error is
  // ~eps absolute (not relative to |log alpha|), and cos(phi) near the pole adds ~|tan phi| ulps.
  // VE: exactly 0.
  double la_err(double t) const {
    const double la = std::abs(static_cast<double>(log_alpha(t)));
    if (o.kind == SdeKind::ve) return 0;
    return 64 * eps * (la + (cosine() ? cond(t) : 0.0));
  }
  // Absolute error of sigma_t^2, propagated from la_err through sigma^2 = 1 - alpha^2 (d/d la = -2 alpha^2),
  // subVP's (1 - alpha^2)^2 (twice that, times 1 - alpha^2), and VE's sigma_min^2 expm1(2 t r) (the argument
  // carries a few ulps, amplified by (1 + x) for x = 2 t r).
  double var_err(double t) const {
    const double a2 = static_cast<double>(alpha(t) * alpha(t)), v = static_cast<double>(variance(t));
    switch (o.kind) {
      case SdeKind::vp:
        return 2 * a2 * la_err(t) + 64 * eps * v;
      case SdeKind::subvp:
        return 2 * std::sqrt(v) * (2 * a2 * la_err(t)) + 64 * eps * v;
      case SdeKind::ve:
        return 64 * eps * v * (1 + 2 * t * r());
    }
    return 0;
  }
  // Relative error of g^2: beta's conditioning, and subVP's factor 1 - alpha^4 (d/d la = -4 alpha^4).
  double g2_rel_err(double t) const {
    const double a4 = static_cast<double>(std::pow(alpha(t), 4));
    switch (o.kind) {
      case SdeKind::vp:
        return 64 * eps * cond(t);
      case SdeKind::subvp:
        return 64 * eps * cond(t) + 4 * a4 * la_err(t) / (1 - a4);
      case SdeKind::ve:
        return 64 * eps * (1 + 2 * t * r());
    }
    return 0;
  }
  // Transition(s, t): a = exp(la_t - la_s) and variance sigma_t^2 - a^2 sigma_s^2, errors propagated term by
  // term (for VP the library's 1 - a^2 is exactly this expression, with a smaller error).
  double a_rel_err(double s, double t) const { return la_err(t) + la_err(s) + 64 * eps; }
  double transition_var_err(double s, double t) const {
    const double a = static_cast<double>(alpha(t) / alpha(s)), vs = static_cast<double>(variance(s));
    return var_err(t) + a * a * var_err(s) + 2 * a * a * vs * a_rel_err(s, t) +
           64 * eps * static_cast<double>(variance(t));
  }
};

// Test times: small, interior, and close to the horizon.
std::vector<double> times(double T) {
  return {1e-3, 0.02, 0.1, 0.25, 0.5, 0.77, 0.9 * T, T - 1e-3, T};
}

double rel_err(double x, ld ref) {
  return static_cast<double>(std::abs(x - ref) / std::abs(ref));
}

}  // namespace

TEST_CASE("alpha_t, sigma_t, f, g and the prior std match the closed forms") {
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    const Oracle o{c.options};
    CHECK(sde->prior_std() == static_cast<double>(o.prior_std()));
    for (double t : times(sde->T())) {
      CAPTURE(t);
      // Tolerances: the error model above (la_err, var_err, g2_rel_err); the long double oracle's own error
      // (~1e-19 relative, 1e-19 absolute for 1 - alpha^2) is negligible next to it.
      const ld la = o.log_alpha(t);
      CHECK(std::abs(sde->log_alpha(t) - la) <= o.la_err(t));
      CHECK(rel_err(sde->alpha(t), o.alpha(t)) <= o.la_err(t) + 64 * eps);
      CHECK(std::abs(sde->sigma(t) * sde->sigma(t) - o.variance(t)) <= o.var_err(t));
      if (c.options.kind == SdeKind::ve)
        CHECK(sde->f(t) == 0.0);
      else
        CHECK(rel_err(sde->f(t), o.f(t)) <= 64 * eps * o.cond(t));
      CHECK(rel_err(sde->g(t) * sde->g(t), o.g2(t)) <= o.g2_rel_err(t));
    }
  }
}

TEST_CASE("sde_f_and_g is f and g bit for bit; both batch forms give a time the same bits at every position") {
  // Times in batches of every length up to 19 (whole vector blocks and tails) and at every offset: element j must not
  // depend on n or j, since an adaptive solver's columns are batched with whichever others are still running.
  std::vector<double> t(40);
  for (std::size_t j = 0; j < t.size(); ++j) t[j] = 1e-3 + 0.97 * std::fmod(0.618034 * static_cast<double>(j), 1.0);
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    std::vector<double> times = t;
    for (double& v : times) v = std::min(v, sde->T());
    std::vector<double> alpha_one(times.size()), sigma_one(times.size());
    for (std::size_t j = 0; j < times.size(); ++j) sde_alpha_sigma(*sde, &times[j], 1, &alpha_one[j], &sigma_one[j]);
    for (Index n = 1; n <= 19; ++n)
      for (Index first = 0; first + n <= static_cast<Index>(times.size()); first += 3) {
        std::vector<double> f(n), g(n), alpha(n), sigma(n);
        sde_f_and_g(*sde, times.data() + first, n, f.data(), g.data());
        sde_alpha_sigma(*sde, times.data() + first, n, alpha.data(), sigma.data());
        for (Index j = 0; j < n; ++j) {
          const double tj = times[first + j];
          CAPTURE(n);
          CAPTURE(tj);
          CHECK(f[j] == sde->f(tj));
          CHECK(g[j] == sde->g(tj));
          CHECK(alpha[j] == alpha_one[first + j]);
          CHECK(sigma[j] == sigma_one[first + j]);
        }
      }
  }
}

TEST_CASE("the marginals vanish correctly at t = 0: alpha_0 = 1, sigma_0 = 0") {
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    CHECK(sde->alpha(0.0) == 1.0);
    CHECK(sde->sigma(0.0) == 0.0);  // VE too: the kernel variance is sigma(t)^2 - sigma_min^2
  }
}

TEST_CASE("defaults: T = 1, or 0.999 for the cosine schedule; VE prior std sigma_max") {
  CHECK(make_sde(vp(VpSchedule::linear, 0.1, 20.0))->T() == 1.0);
  CHECK(make_sde(vp(VpSchedule::cosine, 0.1, 20.0))->T() == 0.999);
  CHECK(make_sde(vp(VpSchedule::cosine, 0.1, 20.0, {}, 0.008, SdeKind::subvp))->T() == 0.999);
  CHECK(make_sde(ve(0.01, 50.0))->T() == 1.0);
  CHECK(make_sde(ve(0.01, 348.0))->prior_std() == 348.0);
  CHECK(make_sde(SdeOptions{})->prior_std() == 1.0);
}

namespace {
// Fourth-order central difference: error h^4/30 |F^(5)| + rounding (3/2) |dF| / h for value errors dF.
double derivative(const std::function<double(double)>& F, double t, double h) {
  return (-F(t + 2 * h) + 8 * F(t + h) - 8 * F(t - h) + F(t - 2 * h)) / (12 * h);
}
}  // namespace

TEST_CASE(
    "f and g are consistent with the marginals: f = d log(alpha)/dt, g^2 = d(sigma^2)/dt - 2 f sigma^2") {
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    const Oracle o{c.options};
    const bool cosine = o.cosine();
    auto ts = times(sde->T());
    if (o.discrete()) ts.insert(ts.end(), {4e-4, 0.2345, 0.6789});  // off the nodes of N = 1000
    for (double t : ts) {
      if (t >= sde->T()) continue;  // keep the stencil inside [0, T]
      CAPTURE(t);
      // Steps relative to the local length scale l of each function, so that the truncation error
      // (h/l)^4 C / 30 is negligible (C = |F^(5)| l^4 / |F'| = O(1..100) for these smooth F: <= 4e-12):
      //   log alpha: l = 1, or the distance 1 - t to the cosine schedule's pole at t = 1;
      //   sigma^2: also l <= t (subVP's (1 - alpha^2)^2 ~ t^2 has F'(0) = 0), and l <= 1/(2r) for VE.
      // h = 1e-3 l. Rounding: the values carry the errors la_err / var_err of the first test case, giving
      // 1.5 err / (h |F'|): <= ~1e-8 (worst: subVP cosine at t = 1e-3, where 1 - alpha^2 has relative error
      // ~eps / |log alpha| = 1e-11, F / F' = t / 2: 1.5e-11 t / 2 / (1e-3 t) ~ 1e-8).
      // Tolerance 1e-7 relative: >= 10x those bounds; a wrong coefficient (a factor 2 in beta, g vs g^2, the
      // square of subVP's std) is an O(1) error.
      // Discrete schedules: log alpha is linear on each segment [k/N, (k+1)/N], so the stencil stays inside one
      // (l <= a third of the distance to the nearest node; points on a node, where f jumps, are skipped).
      const double tol = 1e-7;
      double l_alpha = cosine ? std::min(1.0, 1.0 - t) : 1.0;
      if (o.discrete()) {
        const double N = static_cast<double>(c.options.alphas_cumprod.size());
        const double to_node = std::abs(t - std::round(t * N) / N);
        if (to_node < 1e-9) continue;
        l_alpha = std::min(l_alpha, 1e3 * to_node / 3);
      }
      double l_var = std::min(l_alpha, t);
      if (c.options.kind == SdeKind::ve) l_var = std::min(l_var, 1.0 / (2 * o.r()));
      const double fd_f = derivative([&](double s) { return sde->log_alpha(s); }, t, 1e-3 * l_alpha);
      if (c.options.kind == SdeKind::ve) {
        CHECK(sde->f(t) == 0.0);
        CHECK(fd_f == 0.0);
      } else {
        CHECK(std::abs(fd_f - sde->f(t)) <= tol * std::abs(sde->f(t)));
      }
      auto var = [&](double s) { return sde->sigma(s) * sde->sigma(s); };
      const double fd_var = derivative(var, t, 1e-3 * l_var);
      // Both terms of g^2 are >= 0 (f <= 0), so there is no cancellation: the relative error of the sum is at
      // most that of d(sigma^2)/dt.
      const double g2 = fd_var - 2 * sde->f(t) * var(t);
      CHECK(std::abs(g2 - sde->g(t) * sde->g(t)) <= tol * sde->g(t) * sde->g(t));
    }
  }
}

TEST_CASE("transition(s, t): a = alpha_t / alpha_s, variance = sigma_t^2 - a^2 sigma_s^2, and it composes") {
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    const Oracle o{c.options};
    const double T = sde->T();
    const std::vector<std::pair<double, double>> pairs = {{0.0, 0.5 * T},  {1e-3, 0.01}, {0.1, 0.2},
                                                          {0.3, 0.31},     {0.5, T},     {0.6, 0.9 * T},
                                                          {0.2, T - 1e-3}, {0.0, T}};
    for (auto entry : pairs) {
      auto s = std::get<0>(entry);
      auto t = std::get<1>(entry);
      CAPTURE(s);
      CAPTURE(t);
      const Transition tr = sde->transition(s, t);
      const ld a = o.alpha(t) / o.alpha(s);
      const ld var = o.variance(t) - a * a * o.variance(s);
      // Tolerances: the error model (a_rel_err, transition_var_err), propagated from log alpha and sigma^2.
      CHECK(rel_err(tr.a, a) <= o.a_rel_err(s, t));
      CHECK(std::abs(tr.variance - var) <= o.transition_var_err(s, t));
      CHECK(tr.variance > 0);
    }
    // Chapman-Kolmogorov: x_t = a_ut (a_su x_s + G_su z1) + G_ut z2, so
    // a = a_ut a_su and G^2 = a_ut^2 G_su^2 + G_ut^2.
    for (auto entry : std::vector<std::tuple<double, double, double>>{
             {0.0, 0.3, T}, {1e-3, 0.05, 0.5}, {0.2, 0.6, 0.9 * T}, {0.45, 0.46, 0.47}}) {
      auto s = std::get<0>(entry);
      auto u = std::get<1>(entry);
      auto t = std::get<2>(entry);
      CAPTURE(s);
      CAPTURE(u);
      CAPTURE(t);
      const Transition su = sde->transition(s, u), ut = sde->transition(u, t), st = sde->transition(s, t);
      // Each side carries the errors of its transitions (error model above).
      const double a_tol = o.a_rel_err(s, u) + o.a_rel_err(u, t) + o.a_rel_err(s, t);
      CHECK(std::abs(su.a * ut.a - st.a) <= a_tol * st.a);
      const double composed = ut.a * ut.a * su.variance + ut.variance;
      const double var_tol =
          ut.a * ut.a * (o.transition_var_err(s, u) + 2 * o.a_rel_err(u, t) * su.variance) +
          o.transition_var_err(u, t) + o.transition_var_err(s, t);
      CHECK(std::abs(composed - st.variance) <= var_tol);
    }
  }
}

TEST_CASE("prior_log_density is log N(x; 0, prior_std^2 I)") {
  std::mt19937_64 gen(42);
  std::normal_distribution<double> normal;
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    for (Index d : {1, 2, 7}) {
      const Index n = 5;
      Matrix x(d, n);
      for (Index j = 0; j < n; ++j)
        for (Index i = 0; i < d; ++i) x(i, j) = sde->prior_std() * (1.0 + j) * normal(gen);
      Vector out(n);
      sde->prior_log_density(x, out);
      const ld s = sde->prior_std();
      for (Index j = 0; j < n; ++j) {
        ld q = 0;
        for (Index i = 0; i < d; ++i) q += static_cast<ld>(x(i, j)) * x(i, j);
        const ld ref = -q / (2 * s * s) - 0.5L * d * std::log(2 * pi_ld * s * s);
        // A sum of d squares and two logs in double: a few ulps of the largest term.
        CHECK(std::abs(out(j) - static_cast<double>(ref)) <=
              64 * eps * static_cast<double>(1 + std::abs(ref)));
      }
    }
  }
}

namespace {
// The exception's message, or "" when none was thrown.
std::string config_error(const SdeOptions& o) {
  try {
    o.validate();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}
}  // namespace

TEST_CASE("SdeOptions::validate rejects bad values with a ConfigError naming the option") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Bad {
    SdeOptions options;
    std::string option;
  };
  std::vector<Bad> bad = {
      {vp(VpSchedule::linear, 0.0, 20.0), "--beta-min"},
      {vp(VpSchedule::linear, -0.1, 20.0), "--beta-min"},
      {vp(VpSchedule::linear, nan, 20.0), "--beta-min"},
      {vp(VpSchedule::linear, 0.1, 0.05), "--beta-max"},
      {vp(VpSchedule::linear, 0.1, inf), "--beta-max"},
      {vp(VpSchedule::linear, 0.1, nan), "--beta-max"},
      {vp(VpSchedule::linear, 0.1, 0.05, {}, 0.008, SdeKind::subvp), "--beta-max"},
      {vp(VpSchedule::linear, 0.1, 20.0, 0.0), "--T"},
      {vp(VpSchedule::linear, 0.1, 20.0, -1.0), "--T"},
      {vp(VpSchedule::linear, 0.1, 20.0, nan), "--T"},
      {vp(VpSchedule::linear, 0.1, 20.0, inf), "--T"},
      {vp(VpSchedule::cosine, 0.1, 20.0, 1.0), "--T"},  // alpha vanishes at t = 1
      {vp(VpSchedule::cosine, 0.1, 20.0, 1.5), "--T"},
      {vp(VpSchedule::cosine, 0.1, 20.0, 1.0, 0.008, SdeKind::subvp), "--T"},
      {vp(VpSchedule::cosine, 0.1, 20.0, {}, 0.0), "--cosine-s"},
      {vp(VpSchedule::cosine, 0.1, 20.0, {}, 1.0), "--cosine-s"},
      {ve(0.0, 50.0), "--sigma-min"},
      {ve(-1.0, 50.0), "--sigma-min"},
      {ve(nan, 50.0), "--sigma-min"},
      {ve(0.01, 0.01), "--sigma-max"},
      {ve(0.01, 0.005), "--sigma-max"},
      {ve(0.01, inf), "--sigma-max"},
      {ve(0.01, 50.0, 0.0), "--T"},
  };
  // Every value is validated, including those the chosen SDE ignores (they are recorded in result files).
  SdeOptions ve_bad_beta = ve(0.01, 50.0);
  ve_bad_beta.beta_min = 0.0;
  SdeOptions vp_bad_sigma = vp(VpSchedule::linear, 0.1, 20.0);
  vp_bad_sigma.sigma_max = 0.001;
  bad.push_back({ve_bad_beta, "--beta-min"});
  bad.push_back({vp_bad_sigma, "--sigma-max"});
  for (const auto& b : bad) {
    const std::string msg = config_error(b.options);
    CAPTURE(msg);
    CAPTURE(b.option);
    // require() formats "<option> = <value>: <requirement>"; the message must start with the option so that a
    // --beta-max error that mentions --beta-min in its requirement is not mistaken for a --beta-min error.
    CHECK(starts_with(msg, b.option + " = "));
    CHECK_THROWS_AS(make_sde(b.options), ConfigError);
  }
  // Valid edge values are accepted.
  for (const auto& c : all_cases()) CHECK(config_error(c.options).empty());
  CHECK(config_error(vp(VpSchedule::cosine, 0.1, 20.0, 0.999)).empty());
  CHECK(config_error(vp(VpSchedule::linear, 0.1, 20.0, 2.0)).empty());  // linear allows T > 1
}

TEST_CASE("names map to enums and back; unknown names are ConfigErrors naming the option") {
  for (const auto& n : sde_names()) CHECK(to_string(sde_kind_from_string(n)) == n);
  CHECK(vp_schedule_from_string("cosine") == VpSchedule::cosine);
  CHECK(vp_schedule_from_string("linear") == VpSchedule::linear);
  try {
    sde_kind_from_string("vpp");
    FAIL("no exception");
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    CHECK(starts_with(msg, "--sde"));
    for (const auto& n : sde_names()) CHECK(msg.find(n) != std::string::npos);
  }
  try {
    vp_schedule_from_string("quadratic");
    FAIL("no exception");
  } catch (const ConfigError& e) {
    CHECK(starts_with(e.what(), "--schedule"));
  }
}

TEST_CASE("ReverseSde::drift is f x - g^2 s (SDE) and f x - g^2 s / 2 (probability flow)") {
  std::mt19937_64 gen(7);
  std::normal_distribution<double> normal;
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    const Oracle o{c.options};
    const Index d = 3, n = 4;
    Matrix x(d, n), s(d, n);
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < d; ++i) {
        x(i, j) = normal(gen);
        s(i, j) = normal(gen);
      }
    for (double t : {0.01, 0.4, 0.9 * sde->T()}) {
      CAPTURE(t);
      for (bool pf : {false, true}) {
        CAPTURE(pf);
        const ReverseSde rev = sde->reverse(pf);
        CHECK(rev.probability_flow() == pf);
        CHECK(rev.diffusion(t) == (pf ? 0.0 : sde->g(t)));
        Matrix out(d, n);
        rev.drift(x, s, t, out);
        const ld c2 = pf ? 0.5L : 1.0L;
        for (Index j = 0; j < n; ++j)
          for (Index i = 0; i < d; ++i) {
            const ld ref = o.f(t) * x(i, j) - c2 * o.g2(t) * s(i, j);
            // f and g^2 carry a few ulps (see the first test); the difference of the two terms is conditioned
            // by their magnitudes, not by the result.
            const double scale =
                static_cast<double>(std::abs(o.f(t) * x(i, j)) + std::abs(c2 * o.g2(t) * s(i, j)));
            CHECK(std::abs(out(i, j) - static_cast<double>(ref)) <= 64 * eps * o.cond(t) * scale);
          }
        // out may alias score.
        Matrix aliased = s;
        rev.drift(x, aliased, t, aliased);
        CHECK((aliased - out).cwiseAbs().maxCoeff() == 0.0);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ lambda and sigma~

namespace {

// log alpha_t in long double, the cosine schedule as log1p of a product of sines (as accurate at small t as the
// library's own form, unlike the Oracle's log of a ratio of cosines near 1).
ld log_alpha_ld(const SdeOptions& o, ld t) {
  if (o.kind == SdeKind::ve) return 0;
  if (o.schedule == VpSchedule::discrete) return discrete_log_alpha(o, t);
  if (o.schedule == VpSchedule::linear)
    return -t * t * (static_cast<ld>(o.beta_max) - o.beta_min) / 4 - t * static_cast<ld>(o.beta_min) / 2;
  const ld s = o.cosine_s, phi0 = s / (1 + s) * pi_ld / 2, half_gap = t / (1 + s) * pi_ld / 4;
  return std::log1p(-2 * std::sin(phi0 + half_gap) * std::sin(half_gap) / std::cos(phi0));
}

// sigma~_t = sigma_t / alpha_t from the kernels of shared/ORACLES.md, in long double with expm1 (full relative
// precision at small t): VP sqrt(1 - alpha^2) / alpha, sub-VP (1 - alpha^2) / alpha, VE sqrt(sigma(t)^2 - s_min^2).
ld sigma_tilde_ld(const SdeOptions& o, ld t) {
  const ld la = log_alpha_ld(o, t);
  switch (o.kind) {
    case SdeKind::vp:
      return std::sqrt(-std::expm1(2 * la)) / std::exp(la);
    case SdeKind::subvp:
      return -std::expm1(2 * la) / std::exp(la);
    case SdeKind::ve: {
      const ld r = std::log(static_cast<ld>(o.sigma_max) / o.sigma_min);
      return o.sigma_min * std::sqrt(std::expm1(2 * t * r));
    }
  }
  return 0;
}

// Test times: 40 log-spaced from 1e-6 T to T and 40 evenly spaced in (0, T].
std::vector<double> many_times(double T) {
  std::vector<double> ts;
  for (int i = 0; i < 40; ++i) ts.push_back(T * std::pow(1e-6, 1.0 - i / 39.0));
  for (int i = 1; i <= 40; ++i) ts.push_back(T * i / 40.0);
  ts.back() = T;
  return ts;
}

// The root in [low, T] of the increasing function F(t) - target, by TOMS 748 (Alefeld, Potra & Shi 1995) to a
// relative bracket width of 2^-50: a numerical inverse of the library's own forward function.
double root(const std::function<double(double)>& F, double target, double low, double T) {
  std::uintmax_t iterations = 400;
  const auto [a, b] = boost::math::tools::toms748_solve([&](double t) { return F(t) - target; }, low, T,
                                                        boost::math::tools::eps_tolerance<double>(50), iterations);
  REQUIRE(iterations < 400);
  return 0.5 * (a + b);
}

}  // namespace

TEST_CASE("sigma~_t = sigma_t / alpha_t and lambda_t = log(alpha_t / sigma_t) match the closed forms") {
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    double worst = 0;
    for (double t : many_times(sde->T())) {
      CAPTURE(t);
      const ld ref = sigma_tilde_ld(c.options, t);
      // Measured: at most ~1.5e-15 relative (a few ulps through log alpha, expm1 and sqrt) but for the cosine
      // schedule at small t, where Sde::log_alpha forms phi - phi0 as a difference and so carries a relative
      // error of ~eps (s + t) / t (4e-13 at t = 1e-6), which sigma~ inherits (d log sigma~ / d log alpha ~ 1 there).
      // log_alpha is left as it is: changing it would change every cosine-schedule result. Tolerance: 1e-13
      // (room for other libms) plus that term; a wrong formula (the reference's VE kernel sigma(t), subVP's square
      // root) is O(1) off.
      const bool cosine = c.options.kind != SdeKind::ve && c.options.schedule == VpSchedule::cosine;
      const double tol = 1e-13 + (cosine ? 4 * eps * (c.options.cosine_s + t) / t : 0.0);
      worst = std::max(worst, rel_err(sde->sigma_tilde(t), ref));
      CHECK(rel_err(sde->sigma_tilde(t), ref) <= tol);
      CHECK(std::abs(sde->lambda(t) - static_cast<double>(-std::log(ref))) <= tol);
      // The same kernels as the Oracle above (whose 1 - alpha^2 loses digits at small t).
      const Oracle o{c.options};
      if (t >= 1e-3) CHECK(rel_err(sde->sigma_tilde(t), std::sqrt(o.variance(t)) / o.alpha(t)) <= 1e-9);
    }
    MESSAGE(c.label << ": worst relative error of sigma~ " << worst);
  }
}

TEST_CASE("t_of_lambda and t_of_sigma_tilde invert lambda and sigma~: against root finding, round trips, limits") {
  for (const auto& c : all_cases()) {
    CAPTURE(c.label);
    const auto sde = make_sde(c.options);
    const double T = sde->T();
    const auto sigma_tilde = [&](double t) { return sde->sigma_tilde(t); };
    const auto minus_lambda = [&](double t) { return -sde->lambda(t); };
    const bool cosine = c.options.kind != SdeKind::ve && c.options.schedule == VpSchedule::cosine;
    for (double t : many_times(T)) {
      CAPTURE(t);
      const double s = sde->sigma_tilde(t), l = sde->lambda(t);
      // The closed-form inverses against a numerical inverse of the forward functions: both must find the same
      // time to ~1e-12 relative (the forward functions are well conditioned: |d log sigma~ / d log t| >= ~1/2
      // near 0, and |d lambda / dt| >= ~1 elsewhere, so rounding in them moves the root by a few ulps). For the
      // cosine schedule at small t the forward values carry log_alpha's relative error ~eps (s + t) / t (see the
      // test above), which moves the time by as much: 2e-12 at t = 1e-6.
      const double tol = 1e-12 + (cosine ? 8 * eps * (c.options.cosine_s + t) / t : 0.0);
      CHECK(rel_err(sde->t_of_sigma_tilde(s), root(sigma_tilde, s, 1e-3 * t, T)) <= tol);
      CHECK(rel_err(sde->t_of_lambda(l), root(minus_lambda, -l, 1e-3 * t, T)) <= tol);
      // Round trips t -> sigma~ -> t and t -> lambda -> t.
      CHECK(rel_err(sde->t_of_sigma_tilde(s), t) <= tol);
      CHECK(rel_err(sde->t_of_lambda(l), t) <= tol);
      // lambda -> t -> lambda, absolute near lambda = 0.
      CHECK(std::abs(sde->lambda(sde->t_of_lambda(l)) - l) <= 1e-12 * (1 + std::abs(l)));
      CHECK(std::abs(sde->lambda(t) + std::log(s)) <= 4 * eps * (1 + std::abs(l)));  // lambda = -log sigma~
    }
    // Monotone on a fine grid: sigma~ strictly increasing, lambda strictly decreasing, and so their inverses.
    double previous_s = sde->sigma_tilde(0.0), previous_l = sde->lambda(0.0);
    for (int i = 1; i <= 2000; ++i) {
      const double t = T * i / 2000.0, s = sde->sigma_tilde(t), l = sde->lambda(t);
      CHECK(s > previous_s);
      CHECK(l < previous_l);
      previous_s = s;
      previous_l = l;
    }
    // The limits at t = 0: sigma~ = 0, lambda = +inf, and back.
    CHECK(sde->sigma_tilde(0.0) == 0.0);
    CHECK(sde->lambda(0.0) == std::numeric_limits<double>::infinity());
    CHECK(sde->t_of_sigma_tilde(0.0) == 0.0);
    CHECK(sde->t_of_lambda(std::numeric_limits<double>::infinity()) == 0.0);
    // Far outside the grid's range the inverses stay finite (no overflow of sigma~^2 or e^{-2 lambda}).
    CHECK(std::isfinite(sde->t_of_lambda(-800.0)));
    CHECK(std::isfinite(sde->t_of_sigma_tilde(1e200)));
    CHECK(sde->t_of_lambda(800.0) >= 0.0);
  }
}

TEST_CASE("the inverses agree with the published formulas: DPM-Solver's inverse_lambda (VP linear), VE's log1p") {
  // VP linear (Lu et al. 2022, NoiseScheduleVP.inverse_lambda): tmp = 2 (b1 - b0) logaddexp(-2 lambda, 0),
  // t = tmp / (sqrt(b0^2 + tmp) + b0) / (b1 - b0). In long double.
  for (const auto& [b0, b1] : std::vector<std::pair<double, double>>{{0.1, 20.0}, {0.5, 7.5}}) {
    const auto sde = make_sde(vp(VpSchedule::linear, b0, b1));
    for (double l : {-6.0, -2.0, 0.0, 1.5, 4.0, 9.0}) {
      CAPTURE(l);
      const ld tmp = 2 * (static_cast<ld>(b1) - b0) * std::log1p(std::exp(-2 * static_cast<ld>(l)));
      const ld t = tmp / (std::sqrt(static_cast<ld>(b0) * b0 + tmp) + b0) / (static_cast<ld>(b1) - b0);
      CHECK(rel_err(sde->t_of_lambda(l), t) <= 1e-14);
    }
  }
  // VE with this project's kernel sigma_t^2 = sigma(t)^2 - s_min^2: t = log1p(sigma~^2 / s_min^2) / (2 log(s_max /
  // s_min)); the reference's sigma_t = sigma(t) would give log(sigma~ / s_min) / log(s_max / s_min) instead.
  const auto sde = make_sde(ve(0.01, 50.0));
  for (double s : {1e-4, 0.01, 0.3, 5.0, 49.0}) {
    CAPTURE(s);
    const ld t = std::log1p(static_cast<ld>(s) * s / (0.01L * 0.01L)) / (2 * std::log(50.0L / 0.01L));
    CHECK(rel_err(sde->t_of_sigma_tilde(s), t) <= 1e-14);
  }
}

// ------------------------------------------------------------------------------------------ the discrete schedule

namespace {
const nlohmann::json& dpm_solver_discrete() {
  static const nlohmann::json j = [] {
    const char* dir = std::getenv("SCORESDE_SOURCE_DIR");
    const std::string path = std::string(dir ? dir : ".") + "/tests/data/golden/discrete_schedule.json";
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open ", path);
    return nlohmann::json::parse(in);
  }();
  return j;
}
}  // namespace

TEST_CASE("the discrete schedule agrees with DPM-Solver's NoiseScheduleVP('discrete') on [1/N, 1]") {
  // tests/data/golden/discrete_schedule.json: DPM-Solver's own code in float64 (bench/reference_discrete_schedule.py).
  // Tolerance 1e-12: both interpolate the same node values log(alpha-bar_n) / 2 on the same segments, so they
  // differ by rounding only: a few ulps of log alpha (|log alpha| <= 5.1), which DPM-Solver's sigma = sqrt(1 -
  // exp(2 log alpha)) amplifies by 1 / sigma^2 <= 1e4 at t = 1/N (no expm1 there): ~1e-13.
  for (const auto& entry : dpm_solver_discrete()["schedules"].items()) {
    const auto& name = entry.key();
    const auto& s = entry.value();
    CAPTURE(name);
    const auto sde = make_sde(discrete(s["alphas_cumprod"].get<std::vector<double>>()));
    const auto times = s["times"].get<std::vector<double>>();
    double worst = 0;
    for (std::size_t i = 0; i < times.size(); ++i) {
      const double t = times[i];
      CAPTURE(t);
      const double la = s["log_alpha"][i], alpha = s["alpha"][i], sigma = s["sigma"][i], lambda = s["lambda"][i];
      for (const auto& [got, want] : {std::pair{sde->log_alpha(t), la}, std::pair{sde->alpha(t), alpha},
                                      std::pair{sde->sigma(t), sigma}, std::pair{sde->lambda(t), lambda}}) {
        const double err = std::abs(got - want) / std::max(1.0, std::abs(want));
        worst = std::max(worst, err);
        CHECK(err <= 1e-12);
      }
    }
    const auto lambdas = s["lambdas"].get<std::vector<double>>(), inverse = s["inverse"].get<std::vector<double>>();
    for (std::size_t i = 0; i < lambdas.size(); ++i) {
      CAPTURE(lambdas[i]);
      const double err = std::abs(sde->t_of_lambda(lambdas[i]) - inverse[i]) / inverse[i];
      worst = std::max(worst, err);
      CHECK(err <= 1e-12);
    }
    MESSAGE(name << ": worst difference from DPM-Solver " << worst);
    // DPM-Solver stops discrete models at t = 1/N: so does the default eps.
    CHECK(sde->default_eps() == 1.0 / static_cast<double>(s["alphas_cumprod"].size()));
    CHECK(sde->T() == 1.0);
  }
}

TEST_CASE("the discrete schedule: log alpha linear between the nodes, alpha_0 = 1, beta constant per segment") {
  const auto a = short_schedule();
  const auto sde = make_sde(discrete(a));
  const double N = 7;
  for (int n = 0; n < 7; ++n) {
    CAPTURE(n);
    const double t = (n + 1) / N;
    CHECK(std::abs(sde->log_alpha(t) - 0.5 * std::log(a[n])) <= 4 * eps * std::abs(std::log(a[n])));
    // The time back from the node's lambda.
    CHECK(std::abs(sde->t_of_lambda(sde->lambda(t)) - t) <= 1e-14);
    // beta on the segment ending at the node: -2 N (log alpha_{n} - log alpha_{n-1}).
    const double left = n == 0 ? 0.0 : 0.5 * std::log(a[n - 1]);
    const double beta = -2 * N * (0.5 * std::log(a[n]) - left);
    CHECK(std::abs(sde->g(t - 0.5 / N) * sde->g(t - 0.5 / N) - beta) <= 1e-12 * beta);
  }
  // The first segment runs from alpha_0 = 1 (DPM-Solver's interpolate_fn would extend its first segment instead).
  CHECK(sde->log_alpha(0.0) == 0.0);
  CHECK(std::abs(sde->log_alpha(0.5 / N) - 0.25 * std::log(a[0])) <= 4 * eps);
}

TEST_CASE("--alphas-cumprod: a file (.npy or text) or a JSON array; records hold the array; bad values are named") {
  const auto& spec = *find_option(sde_option_table(), "alphas-cumprod");
  const std::string dir = std::filesystem::temp_directory_path() / "scoresde-test-sde-alphas";
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/a.txt") << "0.9, 0.8\n0.5 0.25\n"; }
  SdeOptions o;
  o.schedule = VpSchedule::discrete;
  spec.set(o, dir + "/a.txt");
  CHECK(o.alphas_cumprod == std::vector<double>{0.9, 0.8, 0.5, 0.25});
  Vector v(3);
  v << 0.99, 0.7, 0.1;
  dump_vector_npy(dir + "/a.npy", v);
  spec.set(o, dir + "/a.npy");
  CHECK(o.alphas_cumprod == std::vector<double>{0.99, 0.7, 0.1});
  CHECK_NOTHROW(o.validate());
  // The record holds the values; reading it back gives the same schedule.
  const auto j = to_json(o);
  CHECK(j["alphas-cumprod"].is_array());
  CHECK(j["schedule"] == "discrete");
  const SdeOptions back = sde_options_from_json(j, "record");
  CHECK(back.alphas_cumprod == o.alphas_cumprod);
  // Other schedules record none, and old records without the key still read.
  CHECK(!to_json(SdeOptions{}).contains("alphas-cumprod"));
  CHECK(sde_options_from_json(to_json(SdeOptions{}), "record").alphas_cumprod.empty());
  spec.set(o, "[0.5, 0.4]");
  CHECK(o.alphas_cumprod == std::vector<double>{0.5, 0.4});
  for (const auto& entry : std::vector<std::pair<std::string, std::string>>{{"[0.5, 0.6]", "decrease"},
                                                                            {"[1.0, 0.6]", "(0, 1)"},
                                                                            {"[0.5, 0.0]", "(0, 1)"},
                                                                            {"[]", "no values"},
                                                                            {"[0.5, \"x\"]", "array of numbers"},
                                                                            {dir + "/missing.txt", "no such file"}}) {
    const auto& text = std::get<0>(entry);
    const auto& needle = std::get<1>(entry);
    CAPTURE(text);
    try {
      spec.set(o, text);
      FAIL("no exception");
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      CHECK(starts_with(msg, "--alphas-cumprod = "));
      CHECK(msg.find(needle) != std::string::npos);
    }
  }
  { std::ofstream(dir + "/bad.txt") << "0.9\n0.8 zero\n"; }
  CHECK_THROWS_WITH_AS(spec.set(o, dir + "/bad.txt"), doctest::Contains("line 2"), ConfigError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("SdeOptions::validate: the discrete schedule needs its alphas_cumprod, T <= 1, and nothing else takes it") {
  SdeOptions none = discrete({});
  CHECK(starts_with(config_error(none), "--alphas-cumprod = "));
  SdeOptions rising = discrete({0.5, 0.6});
  CHECK(starts_with(config_error(rising), "--alphas-cumprod = "));
  SdeOptions late = discrete(short_schedule());
  late.T = 1.5;
  CHECK(starts_with(config_error(late), "--T = "));
  SdeOptions linear = vp(VpSchedule::linear, 0.1, 20.0);
  linear.alphas_cumprod = short_schedule();
  CHECK(starts_with(config_error(linear), "--alphas-cumprod = "));
  SdeOptions shorter = discrete(short_schedule());
  shorter.T = 0.5;
  CHECK(config_error(shorter).empty());
  // VE ignores the schedule (a study shares the SDE parameters between vp and ve).
  SdeOptions ve_discrete = ve(0.01, 50.0);
  ve_discrete.schedule = VpSchedule::discrete;
  CHECK(config_error(ve_discrete).empty());
}
