#include "solvers/likelihood.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <numbers>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "solvers/odeint_eigen.hpp"

namespace scoresde {
namespace odeint = boost::numeric::odeint;

std::string to_string(DivergenceMethod method) {
  return std::string(enum_name(method));
}
std::vector<std::string> divergence_method_names() {
  return enum_names<DivergenceMethod>();
}
DivergenceMethod divergence_method_from_string(std::string_view name) {
  return enum_from_name<DivergenceMethod>(name, "divergence");
}
std::string to_string(ProbeDistribution distribution) {
  return std::string(enum_name(distribution));
}
ProbeDistribution probe_distribution_from_string(std::string_view name) {
  return enum_from_name<ProbeDistribution>(name, "probe-dist");
}
std::string to_string(Dequantization dequantization) {
  return std::string(enum_name(dequantization));
}
Dequantization dequantization_from_string(std::string_view name) {
  return enum_from_name<Dequantization>(name, "dequantize");
}

double bits_per_dim_offset(Dequantization dequantization) {
  switch (dequantization) {
    case Dequantization::none:
      return 0.0;
    case Dequantization::minus_one_one:
      return 7.0;  // log2(256 / 2)
    case Dequantization::zero_one:
      return 8.0;  // log2(256 / 1)
  }
  return 0.0;
}

std::string describe(DivergenceEvaluation evaluation) {
  switch (evaluation) {
    case DivergenceEvaluation::model_divergence:
      return "exact: the model's divergence";
    case DivergenceEvaluation::jacobian_columns:
      return "exact: trace of the Jacobian from d Jacobian-vector products";
    case DivergenceEvaluation::hutchinson_jvp:
      return "hutchinson: the model's Jacobian-vector products";
    case DivergenceEvaluation::hutchinson_central:
      return "hutchinson: Jacobian-vector products by central differences of the score";
  }
  return "?";
}

namespace {
ConfigError no_exact_divergence(const ScoreModel& model) {
  return ConfigError(
      fmt::format("--divergence = exact: the score model '{}' has neither an exact divergence "
                  "nor Jacobian-vector products; use --divergence hutchinson",
                  model.describe()));
}
}  // namespace

DivergenceMethod LikelihoodOptions::resolved_divergence(const ScoreModel& model) const {
  if (divergence == DivergenceMethod::automatic)
    return model.has_exact_divergence() ? DivergenceMethod::exact : DivergenceMethod::hutchinson;
  if (divergence == DivergenceMethod::exact && !model.has_exact_divergence() && !model.has_jvp())
    throw no_exact_divergence(model);
  return divergence;
}

DivergenceEvaluation divergence_evaluation(DivergenceMethod resolved, const ScoreModel& model) {
  if (resolved == DivergenceMethod::automatic)
    throw ConfigError("divergence_evaluation: resolve --divergence auto first");
  if (resolved == DivergenceMethod::hutchinson)
    return model.has_jvp() ? DivergenceEvaluation::hutchinson_jvp : DivergenceEvaluation::hutchinson_central;
  if (model.has_exact_divergence()) return DivergenceEvaluation::model_divergence;
  if (model.has_jvp()) return DivergenceEvaluation::jacobian_columns;
  throw no_exact_divergence(model);
}

const OptionTable<LikelihoodOptions>& likelihood_option_table() {
  using S = LikelihoodOptions;
  static const OptionTable<S> table = [] {
    OptionTable<S> t;
    t.push_back(option("divergence", &S::divergence,
                       "auto (exact when the model has it, else hutchinson), exact, or hutchinson"));
    t.push_back(option("probes", &S::probes, "hutchinson: probes per point, averaged", at_least(1)));
    t.push_back(option("probe-dist", &S::probe_distribution,
                       "hutchinson: rademacher (variance 2 sum_{i!=j} A_ij^2) or gaussian (2 |A|_F^2)"));
    t.push_back(option("rtol", &S::rtol, "dopri5 relative tolerance", positive<double>()));
    t.push_back(option("atol", &S::atol, "dopri5 absolute tolerance", positive<double>()));
    t.push_back(option("ode-control", &S::ode_control,
                       "dopri5 step control: chunk (one step size per chunk of points) or sample (per point)"));
    // Checked against the SDE's horizon by validate().
    t.push_back(option("eps", &S::eps, "start time of the integration (default 1e-3 for vp/subvp, 1e-5 for ve)"));
    t.push_back(
        option("dequantize", &S::dequantization, "bits/dim offset for 8-bit data: none, [-1,1] (+7) or [0,1] (+8)"));
    t.push_back(option("seed", &S::seed, "seed of the drawn points and the probes"));
    t.push_back(option("threads", &S::threads, "worker threads; results do not depend on it", at_least(1)));
    t.push_back(option("chunk", &S::chunk, "points per chunk", at_least(Index{1})));
    return t;
  }();
  return table;
}

void LikelihoodOptions::validate(const Sde& sde) const {
  // Values set in C++ get the checks of the command line.
  check_options(likelihood_option_table(), *this);
  require(ode_control != OdeControl::batched, "--ode-control", "batched",
          "is a sampler option; the likelihood has chunk or sample");
  const double e = resolved_eps(sde);
  require(std::isfinite(e) && e > 0 && e < sde.T(), "--eps", fmt::format("{}", e),
          fmt::format("must be in (0, T) = (0, {})", sde.T()));
}

NllSummary summarize_nll(ConstVectorRef log_p, Index dim, double offset) {
  NllSummary s;
  s.n = log_p.size();
  s.dim = dim;
  s.bits_per_dim_offset = offset;
  if (s.n == 0) return s;
  s.mean_nll = -log_p.mean();
  if (s.n > 1) {
    const double var = (log_p.array() + s.mean_nll).square().sum() / static_cast<double>(s.n - 1);
    s.nll_se = std::sqrt(var / static_cast<double>(s.n));
  }
  const double per_bit = static_cast<double>(dim) * std::numbers::ln2;
  s.bits_per_dim = s.mean_nll / per_bit + offset;
  s.bits_per_dim_se = s.nll_se / per_bit;
  return s;
}

void replace_terminal_log_density(LikelihoodResult& r, ConstVectorRef terminal_log_p) {
  if (terminal_log_p.size() != r.delta.size())
    throw ConfigError(
        fmt::format("terminal log-density: {} values for {} points", terminal_log_p.size(), r.delta.size()));
  r.prior_log_p = terminal_log_p;
  r.log_p = (r.prior_log_p + r.delta).array() + r.log_jacobian;
  r.summary = summarize_nll(r.log_p, r.summary.dim, r.summary.bits_per_dim_offset);
}

void check_points(ConstMatrixRef points, Index dim, const std::string& what) {
  if (points.cols() < 1) throw ConfigError(fmt::format("{}: holds no points", what));
  if (points.rows() != dim)
    throw ConfigError(
        fmt::format("{}: points of dimension {}, but the score model is {}-dimensional", what, points.rows(), dim));
  for (Index j = 0; j < points.cols(); ++j)
    for (Index i = 0; i < points.rows(); ++i)
      if (!std::isfinite(points(i, j)))
        throw ConfigError(fmt::format("{}: point {} (row {} of the array) has the non-finite coordinate {} = {}", what,
                                      j, j, i, points(i, j)));
}

namespace {

using Dopri5 = odeint::runge_kutta_dopri5<Vector, double, Vector, double, odeint::vector_space_algebra>;

// The augmented probability-flow system for m columns (points first .. first + m - 1). The state is one
// vector: x as a d x m column-major block, then the m integrals delta. Buffers are allocated once per solve.
class AugmentedFlow {
 public:
  AugmentedFlow(const ScoreModel& model, const Sde& sde, DivergenceEvaluation evaluation, const Matrix& probes, int K,
                Index first, Index d, Index m)
      : model_(model),
        reverse_(sde, /*probability_flow=*/true),
        evaluation_(evaluation),
        probes_(probes),
        K_(K),
        first_(first),
        d_(d),
        m_(m),
        score_(d, m),
        div_(m),
        times_(m) {
    switch (evaluation_) {
      case DivergenceEvaluation::model_divergence:
        break;
      case DivergenceEvaluation::jacobian_columns:
        jv_.resize(d, m);
        basis_.resize(d, m);
        break;
      case DivergenceEvaluation::hutchinson_jvp:
        jv_.resize(d, m);
        break;
      case DivergenceEvaluation::hutchinson_central:
        jv_.resize(d, 2 * m);
        shifted_.resize(d, 2 * m);
        shifted_times_.resize(2 * m);
        step_.resize(m);
        break;
    }
  }

  // dstate = [f x - g^2 s / 2; d f - g^2 div s / 2] at time t.
  void operator()(const Vector& state, Vector& dstate, double t) {
    ++rhs_evaluations;
    last_t = t;
    const Eigen::Map<const Matrix> x(state.data(), d_, m_);
    Eigen::Map<Matrix> dx(dstate.data(), d_, m_);
    times_.setConstant(t);
    switch (evaluation_) {
      case DivergenceEvaluation::model_divergence:
        model_.score_and_divergence(x, times_, score_, div_);
        break;
      case DivergenceEvaluation::jacobian_columns:
        // div s = sum_i e_i^T J e_i: row i of J e_i.
        div_.setZero();
        for (Index i = 0; i < d_; ++i) {
          basis_.setZero();
          basis_.row(i).setOnes();
          model_.score_and_jvp(x, times_, basis_, score_, jv_);
          div_ += jv_.row(i).transpose();
        }
        break;
      case DivergenceEvaluation::hutchinson_jvp:
        div_.setZero();
        for (int k = 0; k < K_; ++k) {
          const auto v = probes_.middleCols(k * m_, m_);
          model_.score_and_jvp(x, times_, v, score_, jv_);
          div_ += (v.array() * jv_.array()).colwise().sum().transpose().matrix();
        }
        div_ /= static_cast<double>(K_);
        break;
      case DivergenceEvaluation::hutchinson_central:
        central_difference_hutchinson(x, t);
        break;
    }
    check_finite(t);
    reverse_.drift(x, score_, t, dx);
    const double g = reverse_.sde().g(t);
    dstate.segment(d_ * m_, m_) = (static_cast<double>(d_) * reverse_.sde().f(t)) - (0.5 * g * g) * div_.array();
  }

  long long rhs_evaluations = 0;
  double last_t = 0;

 private:
  // v^T J v with J v = (s(x + h v) - s(x - h v)) / (2 h) + O(h^2), h = cbrt(machine epsilon) (1 + |x|_inf) /
  // |v|_inf per column: the step that balances the truncation and rounding errors of a central difference.
  void central_difference_hutchinson(const Eigen::Map<const Matrix>& x, double t) {
    model_.score(x, times_, score_);
    shifted_times_.setConstant(t);
    const double rel = std::cbrt(std::numeric_limits<double>::epsilon());
    div_.setZero();
    for (int k = 0; k < K_; ++k) {
      const auto v = probes_.middleCols(k * m_, m_);
      for (Index j = 0; j < m_; ++j) {
        step_(j) = rel * (1.0 + x.col(j).cwiseAbs().maxCoeff()) / v.col(j).cwiseAbs().maxCoeff();
        shifted_.col(j) = x.col(j) + step_(j) * v.col(j);
        shifted_.col(m_ + j) = x.col(j) - step_(j) * v.col(j);
      }
      model_.score(shifted_, shifted_times_, jv_);
      div_.array() += (v.array() * (jv_.leftCols(m_) - jv_.rightCols(m_)).array()).colwise().sum().transpose() /
                      (2.0 * step_.array());
    }
    div_ /= static_cast<double>(K_);
  }

  void check_finite(double t) const {
    for (Index j = 0; j < m_; ++j) {
      if (!score_.col(j).allFinite())
        throw NumericalError(fmt::format("the score turned non-finite for point {} at t = {:.6g}", first_ + j, t),
                             first_ + j, -1, t);
      if (!std::isfinite(div_(j)))
        throw NumericalError(fmt::format("the divergence turned non-finite for point {} at t = {:.6g}", first_ + j, t),
                             first_ + j, -1, t);
    }
  }

  const ScoreModel& model_;
  ReverseSde reverse_;
  DivergenceEvaluation evaluation_;
  const Matrix& probes_;  // d x (K m): probe k of column j in column k m + j
  int K_;
  Index first_, d_, m_;
  Matrix score_, jv_, basis_, shifted_;
  Vector div_, times_, shifted_times_, step_;
};

// odeint copies the system it is given; this forwards to one AugmentedFlow so that its counters survive.
struct FlowRef {
  AugmentedFlow* flow;
  void operator()(const Vector& state, Vector& dstate, double t) const { (*flow)(state, dstate, t); }
};

// Probe k of point i comes from the probe stream at counter (i, k, 0): it is the same whatever the chunk, the
// thread or the number of points.
Matrix make_probes(const LikelihoodOptions& o, Index first, Index d, Index m, int K) {
  Matrix probes(d, K * m);
  const CounterRng rng(o.seed, NoisePurpose::probe);
  for (int k = 0; k < K; ++k) {
    auto block = probes.middleCols(k * m, m);
    if (o.probe_distribution == ProbeDistribution::gaussian) {
      rng.normal_columns(static_cast<std::uint64_t>(first), static_cast<std::uint64_t>(k), 0, block);
    } else {
      // Uniforms in (0, 1] with 53 random bits: u <= 1/2 exactly half the time.
      for (Index j = 0; j < m; ++j) {
        rng.uniforms(static_cast<std::uint64_t>(first + j), static_cast<std::uint64_t>(k), 0, block.col(j).data(), d);
        block.col(j) = (block.col(j).array() <= 0.5).select(-1.0, Vector::Ones(d));
      }
    }
  }
  return probes;
}

// What stopped a chunk: a numerical failure (point, time, message), or any other error, rethrown as it is.
struct ChunkFailure {
  Index point;
  double time;
  std::string what;
  std::exception_ptr other;
};

}  // namespace

LikelihoodResult compute_log_likelihood(const ScoreModel& model, const Sde& sde, ConstMatrixRef points,
                                        const LikelihoodOptions& options, const ProgressFn& progress) {
  options.validate(sde);
  const Index d = model.dim();
  check_points(points, d, "points");
  const DivergenceMethod method = options.resolved_divergence(model);
  const DivergenceEvaluation evaluation = divergence_evaluation(method, model);
  const int K = method == DivergenceMethod::hutchinson ? options.probes : 0;
  const auto start_time = std::chrono::steady_clock::now();
  const long long calls0 = model.calls(), columns0 = model.columns();

  const Index n = points.cols();
  const Index C = options.chunk;
  const Index chunks = (n + C - 1) / C;
  const double eps = options.resolved_eps(sde), T = sde.T();
  const double dt0 = (T - eps) / 100.0;

  LikelihoodResult r;
  r.divergence = method;
  r.evaluation = evaluation;
  r.eps = eps;
  r.T = T;
  r.latents.resize(d, n);
  r.delta.resize(n);
  r.nfe.resize(n);
  std::vector<std::optional<ChunkFailure>> failures(static_cast<std::size_t>(chunks));
  Index chunks_done = 0;

  // Integrates m columns (points first ..) from eps to T in `state`; returns the right-hand-side evaluations.
  auto solve = [&](Index first, Index m, const Matrix& probes, Vector& state) {
    AugmentedFlow flow(model, sde, evaluation, probes, K, first, d, m);
    try {
      auto stepper = odeint::make_controlled(options.atol, options.rtol, Dopri5());
      odeint::integrate_adaptive(stepper, FlowRef{&flow}, state, eps, T, dt0);
    } catch (const odeint::odeint_error& e) {
      const std::string points_text =
          m == 1 ? fmt::format("point {}", first) : fmt::format("the chunk of points {} to {}", first, first + m - 1);
      throw NumericalError(fmt::format("dopri5 could not meet --rtol {} --atol {} for {} near t = {:.6g} ({})",
                                       options.rtol, options.atol, points_text, flow.last_t, e.what()),
                           first, -1, flow.last_t);
    }
    for (Index j = 0; j < m; ++j)
      if (!std::isfinite(state(d * m + j)) || !state.segment(j * d, d).allFinite())
        throw NumericalError(fmt::format("point {} turned non-finite by t = {:.6g}", first + j, T), first + j, -1, T);
    return flow.rhs_evaluations;
  };

#pragma omp parallel for schedule(dynamic, 1) num_threads(options.threads)
  for (Index chunk = 0; chunk < chunks; ++chunk) {
    const Index first = chunk * C;
    const Index m = std::min(C, n - first);
    try {
      const Matrix probes = make_probes(options, first, d, m, K);
      if (options.ode_control == OdeControl::chunk) {
        Vector state(d * m + m);
        Eigen::Map<Matrix>(state.data(), d, m) = points.middleCols(first, m);
        state.tail(m).setZero();
        const long long nfe = solve(first, m, probes, state);
        r.latents.middleCols(first, m) = Eigen::Map<const Matrix>(state.data(), d, m);
        r.delta.segment(first, m) = state.tail(m);
        r.nfe.segment(first, m).setConstant(static_cast<double>(nfe));
      } else {
        Vector state(d + 1);
        Matrix probe(d, K);
        for (Index j = 0; j < m; ++j) {
          state.head(d) = points.col(first + j);
          state(d) = 0.0;
          for (int k = 0; k < K; ++k) probe.col(k) = probes.col(k * m + j);
          const long long nfe = solve(first + j, 1, probe, state);
          r.latents.col(first + j) = state.head(d);
          r.delta(first + j) = state(d);
          r.nfe(first + j) = static_cast<double>(nfe);
        }
      }
    } catch (const NumericalError& e) {
      failures[chunk] = ChunkFailure{static_cast<Index>(e.sample), e.time, e.what(), nullptr};
    } catch (...) {
      failures[chunk] = ChunkFailure{first, eps, "", std::current_exception()};
    }
    if (progress) {
#pragma omp critical(scoresde_progress)
      progress(++chunks_done, chunks);
    }
  }
  // The failure of the lowest-indexed point, so that the message does not depend on thread timing.
  for (const auto& f : failures) {
    if (!f) continue;
    if (f->other) std::rethrow_exception(f->other);
    throw NumericalError(f->what, f->point, -1, f->time);
  }

  r.prior_log_p.resize(n);
  sde.prior_log_density(r.latents, r.prior_log_p);
  r.log_p = r.prior_log_p + r.delta;
  r.summary = summarize_nll(r.log_p, d, bits_per_dim_offset(options.dequantization));
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  r.score_calls = model.calls() - calls0;
  r.score_columns = model.columns() - columns0;
  return r;
}

LikelihoodResult model_log_likelihood(const ScoreModel& model, const Sde& sde, const DataScaling& scaling,
                                      ConstMatrixRef points, const LikelihoodOptions& options,
                                      const ProgressFn& progress) {
  const Index d = model.dim();
  if (scaling.mean.size() != d || scaling.scale.size() != d)
    throw ConfigError(fmt::format("data scaling: mean and scale of sizes {} and {} for a {}-dimensional model",
                                  scaling.mean.size(), scaling.scale.size(), d));
  for (Index i = 0; i < d; ++i)
    if (!(std::isfinite(scaling.mean(i)) && std::isfinite(scaling.scale(i)) && scaling.scale(i) > 0))
      throw ConfigError(
          fmt::format("data scaling: coordinate {} has mean {} and scale {}; the scale must be "
                      "positive and both finite",
                      i, scaling.mean(i), scaling.scale(i)));
  check_points(points, d, "points");
  LikelihoodResult r = compute_log_likelihood(model, sde, scaling.to_standard(points), options, progress);
  r.log_jacobian = -scaling.scale.array().log().sum();
  r.log_p.array() += r.log_jacobian;
  r.summary = summarize_nll(r.log_p, d, r.summary.bits_per_dim_offset);
  return r;
}

}  // namespace scoresde
