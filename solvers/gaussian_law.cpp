#include "solvers/gaussian_law.hpp"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "solvers/driver.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace {

// The Brownian increments a sampler draws per sample: (step, part) -> the interval (t, t_next) it covers, in the order
// of the keys. A sampler asks the path for each once per step, whatever the state (for an affine sampler).
// The space-time Levy area of step k (BrownianPath::increment_and_area) is the draw (k, area_part): a normal of
// variance (t - t_next) / 12, independent of the step's increment (k, 0).
using DrawKey = std::pair<Index, int>;
constexpr int area_part = -1;
double draw_std(const DrawKey& key, double t, double t_next) {
  return std::sqrt((t - t_next) / (key.second == area_part ? 12.0 : 1.0));
}
struct Interval {
  double t, t_next;
};

// What the paths of one pass saw: the draws (recording pass) and the first inconsistency. Written from worker threads.
struct PathLog {
  std::mutex mutex;
  std::map<DrawKey, Interval> draws;
  std::string problem;
  void note(std::string what) {
    const std::lock_guard lock(mutex);
    if (problem.empty()) problem = std::move(what);
  }
};

// Zero noise everywhere; records every (step, part) asked for and its interval.
class RecordingPath final : public BrownianPath {
 public:
  explicit RecordingPath(PathLog& log) : log_(log) {}
  void increment(Index step, double t, double t_next, MatrixRef out, int part) override {
    out.setZero();
    record(step, t, t_next, part);
  }
  void increment_and_area(Index step, double t, double t_next, MatrixRef dw, MatrixRef area) override {
    dw.setZero();
    area.setZero();
    record(step, t, t_next, 0);
    record(step, t, t_next, area_part);
  }

 private:
  void record(Index step, double t, double t_next, int part) {
    const std::lock_guard lock(log_.mutex);
    const auto [it, inserted] = log_.draws.try_emplace({step, part}, Interval{t, t_next});
    if (!inserted && (it->second.t != t || it->second.t_next != t_next) && log_.problem.empty())
      log_.problem = fmt::format("it asks for step {} part {} over two intervals ([{}, {}] and [{}, {}])", step, part,
                                 t_next, t, it->second.t_next, it->second.t);
  }

  PathLog& log_;
};

// The probe columns' noise. Global column layout (n = 2 + d + Q d):
//   0                      the prior mean, no noise (gives c)
//   1 + i                  x_T = prior_std e_i, no noise (gives prior_std A e_i)
//   1 + d + q d + i        draw q's coordinate i is its standard deviation s_q (sqrt(t - t_next), or sqrt((t - t_next)
//   / 12)
//                          for an area), everything else 0 (gives s_q B_q e_i)
//   n - 1                  x_T = prior_std a and draw q = s_q b_q: the affinity check
struct ProbeLayout {
  Index d = 0, draws = 0;
  std::map<DrawKey, Index> index;  // (step, part) -> q
  std::vector<Interval> intervals;
  Vector a;  // d
  Matrix b;  // d x Q
  Index columns() const { return 2 + d + draws * d; }
  Index impulse(Index q) const { return 1 + d + q * d; }
};

class ProbePath final : public BrownianPath {
 public:
  ProbePath(const ProbeLayout& layout, PathLog& log, Index first, Index cols)
      : layout_(layout), log_(log), first_(first), cols_(cols) {}
  void increment(Index step, double t, double t_next, MatrixRef out, int part) override {
    fill({step, part}, t, t_next, out);
  }
  void increment_and_area(Index step, double t, double t_next, MatrixRef dw, MatrixRef area) override {
    fill({step, 0}, t, t_next, dw);
    fill({step, area_part}, t, t_next, area);
  }

 private:
  void fill(const DrawKey& key, double t, double t_next, MatrixRef out) {
    const auto [step, part] = key;
    out.setZero();
    const auto it = layout_.index.find(key);
    if (it == layout_.index.end()) {
      log_.note(
          fmt::format("it draws noise at step {} part {}, which it did not draw from the prior mean: its draws "
                      "depend on the state",
                      step, part));
      return;
    }
    const Index q = it->second;
    const Interval& iv = layout_.intervals[static_cast<std::size_t>(q)];
    if (iv.t != t || iv.t_next != t_next)
      log_.note(fmt::format("it asks for step {} part {} over [{}, {}] here and over [{}, {}] from the prior mean",
                            step, part, t_next, t, iv.t_next, iv.t));
    const double s = draw_std(key, t, t_next);
    const Index lo = layout_.impulse(q);
    for (Index g = std::max(lo, first_); g < std::min(lo + layout_.d, first_ + cols_); ++g) out(g - lo, g - first_) = s;
    const Index check = layout_.columns() - 1;
    if (check >= first_ && check < first_ + cols_) out.col(check - first_) = s * layout_.b.col(q);
  }

  const ProbeLayout& layout_;
  PathLog& log_;
  Index first_, cols_;
};

ConfigError not_affine(const SamplerOptions& options, const std::string& why) {
  return ConfigError(fmt::format(
      "--sampler = {}: the exact Gaussian law does not apply: {} (the sampler's output must be affine in the prior "
      "draw and the Brownian increments for the exact score of a Gaussian)",
      options.sampler, why));
}

// The sampler from the prior mean with zero noise, one sample: the draws it makes, and its output.
std::pair<std::map<DrawKey, Interval>, Vector> record_draws(const Sde& sde, const ScoreModel& model,
                                                            SamplerOptions options, std::uint64_t seed) {
  options.seed = seed;
  options.chunk = 1;
  options.threads = 1;
  PathLog log;
  const Matrix init = Matrix::Zero(model.dim(), 1);
  const auto report = sample(sde, model, options, 1, &init, nullptr, {},
                             [&](Index, Index, Index) { return std::make_unique<RecordingPath>(log); });
  if (!log.problem.empty()) throw not_affine(options, log.problem);
  return {std::move(log.draws), report.samples.col(0)};
}

}  // namespace

std::optional<std::string> gaussian_law_not_applicable(const SamplerOptions& options) {
  const auto why = [](const Predictor& p) -> std::optional<std::string> {
    if (p.error_order() > 0)
      return fmt::format("{} is adaptive (its steps depend on the state, so its output is not Gaussian)",
                         p.info().name);
    if (!p.info().affine)
      return fmt::format("{} is not affine in the state and its noise (StepperInfo::affine)", p.info().name);
    return std::nullopt;
  };
  if (options.sampler == ode_sampler) {
    if (is_adaptive(options))
      return fmt::format(
          "--ode-method = {}: adaptive (its steps depend on the state, so its output is not Gaussian); "
          "the exact law applies to the fixed-step methods",
          options.ode_method);
    if (const auto w = why(*find_ode_method(options.ode_method).make(options)))
      return fmt::format("--ode-method = {}: {}", options.ode_method, *w);
    return std::nullopt;
  }
  const std::string predictor_option = options.sampler == pc_sampler ? "--predictor" : "--sampler";
  if (const auto p = make_predictor(options.resolved_predictor(), options))
    if (const auto w = why(*p)) return fmt::format("{} = {}: {}", predictor_option, p->info().name, *w);
  if (const auto c = make_corrector(options.resolved_corrector(), options))
    if (!c->info().affine)
      return fmt::format(
          "--corrector = {}: the Langevin correctors are not affine in the state and the Brownian noise "
          "(langevin's step size depends on |z| / |s|; both draw their normals outside the Brownian path); use "
          "--corrector none",
          c->info().name);
  return std::nullopt;
}

GaussianLaw gaussian_output_law(const Sde& sde, const ScoreModel& model, const SamplerOptions& options) {
  options.validate(sde);  // a --time-grid FILE must start at T, where the prior law holds
  if (const auto why = gaussian_law_not_applicable(options)) throw ConfigError(*why);
  const Index d = model.dim();

  // Pass 1: the draws. Twice, under two seeds: a sampler that draws noise outside the Brownian path (c.corrector_noise)
  // gives different outputs, and its law is not the one computed here.
  auto [draws, y0] = record_draws(sde, model, options, 0x9e3779b97f4a7c15ULL);
  const auto [draws_again, y1] = record_draws(sde, model, options, 0x5851f42d4c957f2dULL);
  if (y0 != y1 || draws.size() != draws_again.size())
    throw not_affine(options,
                     "its output from the prior mean with zero Brownian noise depends on the seed, so it "
                     "draws noise outside the Brownian path");

  // Pass 2: the probes.
  ProbeLayout layout;
  layout.d = d;
  layout.draws = static_cast<Index>(draws.size());
  for (const auto& [key, interval] : draws) {
    layout.index.emplace(key, static_cast<Index>(layout.intervals.size()));
    layout.intervals.push_back(interval);
  }
  const CounterRng rng(0, NoisePurpose::probe);
  layout.a.resize(d);
  rng.normals(0, 0, 0, layout.a.data(), d);
  layout.b.resize(d, layout.draws);
  if (layout.draws > 0) rng.normal_columns(1, 0, 0, layout.b);
  const double coefficient_scale = 1.0 / std::sqrt(static_cast<double>(1 + layout.draws));
  layout.a *= coefficient_scale;
  layout.b *= coefficient_scale;

  const Index n = layout.columns();
  const double prior_std = sde.prior_std();
  Matrix init = Matrix::Zero(d, n);
  for (Index i = 0; i < d; ++i) init(i, 1 + i) = prior_std;
  init.col(n - 1) = prior_std * layout.a;
  PathLog log;
  const auto report = sample(sde, model, options, n, &init, nullptr, {}, [&](Index first, Index, Index cols) {
    return std::make_unique<ProbePath>(layout, log, first, cols);
  });
  if (!log.problem.empty()) throw not_affine(options, log.problem);

  GaussianLaw law;
  law.mean = report.samples.col(0);
  const Matrix factor = report.samples.middleCols(1, n - 2).colwise() - law.mean;
  law.covariance.noalias() = factor * factor.transpose();
  law.nfe = report.nfe(0);
  law.draws = layout.draws;

  // The check column: the affine map's prediction against the sampler's output.
  Vector coefficients(n - 2);
  coefficients.head(d) = layout.a;
  coefficients.tail(n - 2 - d) = Eigen::Map<const Vector>(layout.b.data(), layout.b.size());
  const Vector predicted = law.mean + factor * coefficients;
  const double error = (report.samples.col(n - 1) - predicted).norm();
  const double scale = law.mean.norm() + std::sqrt(law.covariance.trace()) + 1e-300;
  if (!(error <= 1e-8 * scale) || (law.mean - y0).norm() > 1e-10 * (law.mean.norm() + 1e-300))
    throw not_affine(options, fmt::format("a combination of probes differs from the combination of their outputs by "
                                          "{:.3g} (relative to the output's scale {:.3g})",
                                          error, scale));
  return law;
}

}  // namespace scoresde
