#include "models/training.hpp"

#include <fmt/format.h>
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "core/errors.hpp"
#include "core/noise.hpp"

namespace scoresde {

std::string to_string(LossWeighting w) {
  return std::string(enum_name(w));
}
std::string to_string(LossReduction r) {
  return std::string(enum_name(r));
}
LossWeighting loss_weighting_from_string(std::string_view name) {
  return enum_from_name<LossWeighting>(name, "loss-weighting");
}
LossReduction loss_reduction_from_string(std::string_view name) {
  return enum_from_name<LossReduction>(name, "reduction");
}
std::string to_string(TimeSampling s) {
  return std::string(enum_name(s));
}
TimeSampling time_sampling_from_string(std::string_view name) {
  return enum_from_name<TimeSampling>(name, "time-sampling");
}

TimeSampling default_time_sampling(SdeKind kind) {
  return kind == SdeKind::vp ? TimeSampling::log_sigma : TimeSampling::uniform;
}

TrainingTimes::TrainingTimes(const Sde& sde, TimeSampling sampling, double eps, double uniform_share)
    : sde_(&sde), sampling_(sampling), eps_(eps), T_(sde.T()), uniform_share_(uniform_share) {
  if (!(uniform_share_ >= 0 && uniform_share_ <= 1))
    throw ConfigError(fmt::format("--uniform-share = {}: must be in [0, 1]", uniform_share_));
  if (sampling_ == TimeSampling::uniform) return;
  constexpr int intervals = 4096;
  const double c0 = coordinate(eps_), c1 = coordinate(T_);
  if (!(std::isfinite(c0) && std::isfinite(c1) && c0 != c1))
    throw ConfigError(fmt::format("--time-sampling = {}: its coordinate is not finite and monotone on [{}, {}]",
                                  to_string(sampling_), eps_, T_));
  nodes_.resize(intervals + 1);
  nodes_.front() = eps_;
  nodes_.back() = T_;
  const bool increasing = c1 > c0;
  for (int k = 1; k < intervals; ++k) {
    const double target = c0 + (c1 - c0) * k / intervals;
    double lo = nodes_[k - 1], hi = T_;  // the nodes increase with k
    for (int it = 0; it < 100 && hi - lo > 1e-15 * T_; ++it) {
      const double mid = 0.5 * (lo + hi);
      ((coordinate(mid) < target) == increasing ? lo : hi) = mid;
    }
    nodes_[k] = 0.5 * (lo + hi);
  }
}

double TrainingTimes::coordinate(double t) const {
  switch (sampling_) {
    case TimeSampling::uniform:
      return t;
    case TimeSampling::log_snr:
      return 2.0 * (sde_->log_alpha(t) - std::log(sde_->sigma(t)));
    case TimeSampling::log_sigma:
      return std::log(sde_->sigma(t));
  }
  return t;
}

double TrainingTimes::operator()(double u) const {
  if (sampling_ == TimeSampling::uniform) return eps_ + (T_ - eps_) * u;
  if (u < uniform_share_) return eps_ + (T_ - eps_) * (u / uniform_share_);
  if (uniform_share_ > 0) u = std::min(1.0, (u - uniform_share_) / (1.0 - uniform_share_));
  const double pos = u * static_cast<double>(nodes_.size() - 1);
  const auto k = std::min(static_cast<std::size_t>(pos), nodes_.size() - 2);
  const double frac = pos - static_cast<double>(k);
  return nodes_[k] + (nodes_[k + 1] - nodes_[k]) * frac;
}

const OptionTable<TrainingOptions>& training_option_table() {
  using S = TrainingOptions;
  static const OptionTable<S> table = [] {
    const auto unit_interval_open = [] {  // [0, 1)
      return check_that<double>([](const double& v) { return v >= 0 && v < 1; }, "must be in [0, 1)");
    };
    OptionTable<S> t;
    t.push_back(
        option("iterations", &S::iterations, "optimiser steps",
               check_that<long>([](const long& v) { return v >= 0 && v < 4294967295L; }, "must be in [0, 2^32 - 1)")));
    t.push_back(
        option("batch-size", &S::batch_size, "samples per minibatch",
               check_that<Index>([](const Index& v) { return v >= 1 && v <= 10000000; }, "must be in [1, 10^7]")));
    t.push_back(option("lr", &S::lr, "Adam learning rate", positive<double>()));
    t.push_back(option("beta1", &S::beta1, "Adam beta1", unit_interval_open()));
    t.push_back(option("beta2", &S::beta2, "Adam beta2", unit_interval_open()));
    t.push_back(option("adam-eps", &S::adam_eps, "Adam epsilon",
                       check_that<double>([](const double& v) { return v > 0; }, "must be > 0")));
    t.push_back(option("warmup", &S::warmup, "linear learning-rate warm-up steps (0: none)", at_least(0L)));
    auto& schedule = t.emplace_back(derived_option<S, std::string>(
        "lr-schedule", [](const S& s) { return std::string(s.cosine_decay ? "cosine" : "constant"); },
        [](S& s, const std::string& name) { s.cosine_decay = name == "cosine"; },
        "constant, or cosine (decay to 0 over --iterations) after the warm-up",
        check_that<std::string>([](const std::string& v) { return v == "constant" || v == "cosine"; },
                                "choose constant or cosine")));
    schedule.value_name = "NAME";
    schedule.choices = [] { return std::vector<std::string>{"constant", "cosine"}; };
    t.push_back(
        option("grad-clip", &S::grad_clip, "clip the gradient norm to this (0: no clipping)",
               check_that<double>([](const double& v) { return v >= 0; }, "must be >= 0 (0 disables clipping)")));
    t.push_back(option("ema-rate", &S::ema_rate,
                       "rate of the exponential moving average of the weights used for sampling",
                       unit_interval_open()));
    // Checked against the SDE's horizon by validate().
    auto& eps = t.emplace_back(option("train-eps", &S::eps,
                                      "training times lie in [train-eps, T]; default: the SDE's sampling eps (1e-3 "
                                      "for vp and subvp, 1e-5 for ve), the earliest time `sample` and "
                                      "`likelihood` use by default"));
    eps.optional = true;  // no default on the command line: the SDE's default_eps()
    auto& sampling = t.emplace_back(option("time-sampling", &S::time_sampling,
                                           "how training times are drawn: uniform in t, log_snr (uniform in log "
                                           "alpha_t^2/sigma_t^2) or log_sigma (uniform in log sigma_t); default "
                                           "log_sigma for vp, uniform for subvp and ve"));
    sampling.optional = true;  // no default on the command line: default_time_sampling(kind)
    t.push_back(option("uniform-share", &S::uniform_share,
                       "share of the training times drawn uniformly in t whatever --time-sampling says",
                       check_that<double>([](const double& v) { return v >= 0 && v <= 1; }, "must be in [0, 1]")));
    t.push_back(
        option("loss-weighting", &S::weighting, "sigma2 (|sigma_t s + z|^2) or likelihood (times g(t)^2 / sigma_t^2)"));
    t.push_back(option("reduction", &S::reduction, "mean or sum of the squared residual over the d coordinates"));
    t.push_back(option("validation-fraction", &S::validation_fraction,
                       "share of the data held out for the validation loss", unit_interval_open()));
    t.push_back(option("eval-every", &S::eval_every, "iterations between validation losses", at_least(1L)));
    t.push_back(option("seed", &S::seed, "fixes initial weights, data draws and minibatches"));
    t.push_back(option("threads", &S::threads, "threads; the result depends on --seed and --threads",
                       check_that<int>([](const int& v) { return v >= 1 && v <= 1024; }, "must be in [1, 1024]")));
    return t;
  }();
  return table;
}

void TrainingOptions::validate(const Sde& sde) const {
  // Values set in C++ get the checks of the command line.
  check_options(training_option_table(), *this);
  require(eps > 0 && eps < sde.T(), "--train-eps", fmt::format("{}", eps),
          fmt::format("must be in (0, T) = (0, {})", sde.T()));
}

std::pair<Matrix, Matrix> split_data(const Matrix& data, double fraction, std::uint64_t seed) {
  const Index n = data.cols();
  Index held = static_cast<Index>(std::llround(fraction * static_cast<double>(n)));
  if (fraction > 0 && n >= 2) held = std::clamp<Index>(held, 1, n - 1);
  if (held <= 0) return {data, Matrix(data.rows(), 0)};
  // A random permutation: sort by keys drawn per column.
  Vector keys(n);
  CounterRng(seed, NoisePurpose::training).uniforms(0xFFFFFFFEu, 0, 0, keys.data(), n);
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index{0});
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return keys(a) < keys(b); });
  Matrix train(data.rows(), n - held), validation(data.rows(), held);
  for (Index j = 0; j < n - held; ++j) train.col(j) = data.col(order[j]);
  for (Index j = 0; j < held; ++j) validation.col(j) = data.col(order[n - held + j]);
  return {std::move(train), std::move(validation)};
}

template <class S>
double dsm_loss_sum(const Mlp<S>& net, const S* params, const Sde& sde, const TrainingOptions& options,
                    ConstMatrixRef x0, ConstVectorRef t, ConstMatrixRef z, typename Mlp<S>::Workspace& ws,
                    S* grad, double grad_scale) {
  const Index d = x0.rows(), n = x0.cols();
  thread_local Matrix xt;
  thread_local Vector tau;
  xt.resize(d, n);
  tau.resize(n);
  for (Index j = 0; j < n; ++j) xt.col(j) = sde.alpha(t(j)) * x0.col(j) + sde.sigma(t(j)) * z.col(j);
  network_times(net.architecture(), sde, t, tau);
  net.forward(params, xt, tau, ws, grad != nullptr);
  auto o = ws.output(net);  // overwritten with the output gradient
  const double sign = net.architecture().parameterization == Parameterization::noise ? -1.0 : 1.0;
  const double reduce = options.reduction == LossReduction::mean ? 1.0 / static_cast<double>(d) : 1.0;
  double total = 0;
  for (Index j = 0; j < n; ++j) {
    double w = reduce;
    if (options.weighting == LossWeighting::likelihood) {
      const double g = sde.g(t(j)), sigma = sde.sigma(t(j));
      w *= g * g / (sigma * sigma);
    }
    // residual sigma s + z = sign o + z; d/do of w |r|^2 = 2 w sign r.
    double sq = 0;
    for (Index i = 0; i < d; ++i) {
      const double r = sign * static_cast<double>(o(i, j)) + z(i, j);
      sq += r * r;
      o(i, j) = static_cast<S>(2.0 * w * sign * r * grad_scale);
    }
    total += w * sq;
  }
  if (grad) net.backward(params, ws, typename Mlp<S>::ConstMapMat(o.data(), d, n), grad);
  return total;
}

template double dsm_loss_sum<float>(const Mlp<float>&, const float*, const Sde&, const TrainingOptions&,
                                    ConstMatrixRef, ConstVectorRef, ConstMatrixRef, Mlp<float>::Workspace&,
                                    float*, double);
template double dsm_loss_sum<double>(const Mlp<double>&, const double*, const Sde&, const TrainingOptions&,
                                     ConstMatrixRef, ConstVectorRef, ConstMatrixRef, Mlp<double>::Workspace&,
                                     double*, double);

// ------------------------------------------------------------------------------------------------ Trainer

struct Trainer::Impl {
  virtual ~Impl() = default;
  virtual void step() = 0;
  virtual double validation_loss() const = 0;
  virtual Vector raw() const = 0;
  virtual Vector ema() const = 0;
  virtual const MlpArchitecture& architecture() const = 0;
  virtual const Vector& frequencies() const = 0;
  long iteration = 0;
  double last_loss = 0;
};

namespace {

// Counter words for the held-out draws: iterations stay below this.
constexpr std::uint64_t validation_counter = 0xFFFFFFFFu;

template <class S>
struct AdamConstants {
  S b1, b2, step_size, root_c2, eps, decay;
};

// One pass over the parameters for Adam and the EMA:
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,  p -= step_size m / (sqrt(v) / root_c2 + eps),
//   ema = decay ema + (1 - decay) p,
// packet by packet while the five arrays' entries are in registers, instead of one pass per array. Every
// operation is a correctly rounded multiply, add, divide or square root (no fused multiply-add), so packets
// and the scalar tail give the same bits as the array expressions of these formulas.
template <class S>
void adam_ema_update(Index n, const S* g, S* m, S* v, S* p, S* ema, const AdamConstants<S>& c) {
  namespace ei = Eigen::internal;
  using Packet = typename ei::packet_traits<S>::type;
  constexpr Index P = static_cast<Index>(sizeof(Packet) / sizeof(S));
  const Packet b1 = ei::pset1<Packet>(c.b1), b2 = ei::pset1<Packet>(c.b2), nb1 = ei::pset1<Packet>(S(1) - c.b1),
               nb2 = ei::pset1<Packet>(S(1) - c.b2), step = ei::pset1<Packet>(c.step_size),
               rc2 = ei::pset1<Packet>(c.root_c2), eps = ei::pset1<Packet>(c.eps), decay = ei::pset1<Packet>(c.decay),
               ndecay = ei::pset1<Packet>(S(1) - c.decay);
  Index i = 0;
  for (; i + P <= n; i += P) {
    const Packet gi = ei::ploadu<Packet>(g + i);
    const Packet mi = ei::padd(ei::pmul(b1, ei::ploadu<Packet>(m + i)), ei::pmul(nb1, gi));
    const Packet vi = ei::padd(ei::pmul(b2, ei::ploadu<Packet>(v + i)), ei::pmul(nb2, ei::pmul(gi, gi)));
    const Packet pi =
        ei::psub(ei::ploadu<Packet>(p + i), ei::pdiv(ei::pmul(step, mi), ei::padd(ei::pdiv(ei::psqrt(vi), rc2), eps)));
    ei::pstoreu(m + i, mi);
    ei::pstoreu(v + i, vi);
    ei::pstoreu(p + i, pi);
    ei::pstoreu(ema + i, ei::padd(ei::pmul(decay, ei::ploadu<Packet>(ema + i)), ei::pmul(ndecay, pi)));
  }
  for (; i < n; ++i) {
    m[i] = c.b1 * m[i] + (S(1) - c.b1) * g[i];
    v[i] = c.b2 * v[i] + (S(1) - c.b2) * (g[i] * g[i]);
    p[i] -= c.step_size * m[i] / (std::sqrt(v[i]) / c.root_c2 + c.eps);
    ema[i] = c.decay * ema[i] + (S(1) - c.decay) * p[i];
  }
}

template <class S>
struct TypedTrainer final : Trainer::Impl {
  using Vec = typename Mlp<S>::Vec;
  TypedTrainer(const MlpArchitecture& arch, const Sde& sde_, const TrainingOptions& o, Matrix train_,
               Matrix validation_)
      : net(arch, initial_frequencies(arch, o.seed)),
        sde(&sde_),
        options(o),
        train(std::move(train_)),
        validation(std::move(validation_)),
        rng(o.seed, NoisePurpose::training),
        times(sde_, o.time_sampling, o.eps, o.uniform_share) {
    params = initial_weights(arch, o.seed).cast<S>();
    ema_params = params;
    const Index P = params.size();
    m = Vec::Zero(P);
    v = Vec::Zero(P);
    const Index B = o.batch_size, d = arch.dim;
    parts.resize(static_cast<std::size_t>(std::min<Index>(o.threads, B)));
    for (auto& part : parts) part.grad = Vec::Zero(P);
    x0.resize(d, B);
    z.resize(d, B);
    t.resize(B);
    u.resize(B);
    // Fixed draws for the validation loss, so that its changes come from the weights only.
    const Index nv = validation.cols();
    if (nv > 0) {
      validation_t.resize(nv);
      validation_z.resize(d, nv);
      rng.uniforms(validation_counter, 1, 0, validation_t.data(), nv);
      for (Index j = 0; j < nv; ++j) validation_t(j) = times(validation_t(j));
      rng.normals(validation_counter, 2, 0, validation_z.data(), validation_z.size());
    }
  }

  void step() override {
    const Index B = options.batch_size, d = net.architecture().dim, n = train.cols();
    const auto k = static_cast<std::uint64_t>(iteration);
    rng.uniforms(k, 0, 0, u.data(), B);
    for (Index j = 0; j < B; ++j)
      x0.col(j) = train.col(std::min<Index>(n - 1, static_cast<Index>(u(j) * static_cast<double>(n))));
    rng.uniforms(k, 1, 0, t.data(), B);
    for (Index j = 0; j < B; ++j) t(j) = times(t(j));
    rng.normals(k, 2, 0, z.data(), d * B);

    const Index P = static_cast<Index>(parts.size());
    const double scale = 1.0 / static_cast<double>(B);
#pragma omp parallel for schedule(static, 1) num_threads(static_cast <int>(P))
    for (Index p = 0; p < P; ++p) {
      auto& part = parts[static_cast<std::size_t>(p)];
      const Index first = p * B / P, last = (p + 1) * B / P;
      part.grad.setZero();
      part.loss = dsm_loss_sum<S>(net, params.data(), *sde, options, x0.middleCols(first, last - first),
                                  t.segment(first, last - first), z.middleCols(first, last - first), part.ws,
                                  part.grad.data(), scale);
    }
    Vec& grad = parts[0].grad;
    double loss = parts[0].loss;
    for (Index p = 1; p < P; ++p) {
      grad += parts[static_cast<std::size_t>(p)].grad;
      loss += parts[static_cast<std::size_t>(p)].loss;
    }
    last_loss = loss * scale;

    if (options.grad_clip > 0) {
      const double norm = std::sqrt(grad.template cast<double>().squaredNorm());
      if (norm > options.grad_clip) grad *= static_cast<S>(options.grad_clip / norm);
    }
    // Adam (Kingma & Ba 2015) with bias correction, after a linear warm-up of the learning rate.
    const double step_number = static_cast<double>(iteration + 1);
    double lr = options.lr *
                (options.warmup > 0 ? std::min(1.0, step_number / static_cast<double>(options.warmup)) : 1.0);
    if (options.cosine_decay)
      lr *= 0.5 * (1.0 + std::cos(std::numbers::pi * static_cast<double>(iteration) /
                                  static_cast<double>(std::max(1L, options.iterations))));
    const S b1 = static_cast<S>(options.beta1), b2 = static_cast<S>(options.beta2);
    const double c1 = 1.0 - std::pow(options.beta1, step_number),
                 c2 = 1.0 - std::pow(options.beta2, step_number);
    const S step_size = static_cast<S>(lr / c1), root_c2 = static_cast<S>(std::sqrt(c2));
    const S adam_eps = static_cast<S>(options.adam_eps);
    // EMA with the usual warm-up of its rate (as TensorFlow's ExponentialMovingAverage with num_updates), so
    // that the initial weights do not linger in short runs.
    const S decay = static_cast<S>(std::min(options.ema_rate, (1.0 + step_number) / (10.0 + step_number)));
    adam_ema_update<S>(params.size(), grad.data(), m.data(), v.data(), params.data(), ema_params.data(),
                       {b1, b2, step_size, root_c2, adam_eps, decay});
    ++iteration;
  }

  double validation_loss() const override {
    const Index nv = validation.cols();
    if (nv == 0) return std::nan("");
    thread_local typename Mlp<S>::Workspace ws;
    double total = 0;
    const Index B = std::max<Index>(options.batch_size, 1024);
    for (Index first = 0; first < nv; first += B) {
      const Index cols = std::min(B, nv - first);
      total += dsm_loss_sum<S>(net, ema_params.data(), *sde, options, validation.middleCols(first, cols),
                               validation_t.segment(first, cols), validation_z.middleCols(first, cols), ws,
                               nullptr, 1.0);
    }
    return total / static_cast<double>(nv);
  }

  Vector raw() const override {
    return params.template cast<double>();
  }
  Vector ema() const override {
    return ema_params.template cast<double>();
  }
  const MlpArchitecture& architecture() const override {
    return net.architecture();
  }
  const Vector& frequencies() const override {
    return net.frequencies();
  }

  struct Part {
    typename Mlp<S>::Workspace ws;
    Vec grad;
    double loss = 0;
  };

  Mlp<S> net;
  const Sde* sde;
  TrainingOptions options;
  Matrix train, validation;
  CounterRng rng;
  TrainingTimes times;
  Vec params, ema_params, m, v;
  std::vector<Part> parts;
  Matrix x0, z;
  Vector t, u;
  Vector validation_t;
  Matrix validation_z;
};

}  // namespace

Trainer::Trainer(const MlpArchitecture& arch, const Sde& sde, const TrainingOptions& options, Matrix train,
                 Matrix validation) {
  arch.validate();
  options.validate(sde);
  if (train.cols() < 1) throw ConfigError("training data: no samples left for training");
  if (train.rows() != arch.dim)
    throw ConfigError(
        fmt::format("training data of dimension {} for a network of dimension {}", train.rows(), arch.dim));
  if (arch.precision == Precision::float32)
    impl_ =
        std::make_unique<TypedTrainer<float>>(arch, sde, options, std::move(train), std::move(validation));
  else
    impl_ =
        std::make_unique<TypedTrainer<double>>(arch, sde, options, std::move(train), std::move(validation));
}

Trainer::~Trainer() = default;
void Trainer::step() {
  impl_->step();
}
long Trainer::iteration() const {
  return impl_->iteration;
}
double Trainer::last_loss() const {
  return impl_->last_loss;
}
double Trainer::validation_loss() const {
  return impl_->validation_loss();
}
Vector Trainer::raw_weights() const {
  return impl_->raw();
}
Vector Trainer::ema_weights() const {
  return impl_->ema();
}
const Vector& Trainer::frequencies() const {
  return impl_->frequencies();
}
const MlpArchitecture& Trainer::architecture() const {
  return impl_->architecture();
}

}  // namespace scoresde
