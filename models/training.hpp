// Denoising score matching in continuous time (Song et al. 2021, eq. 7; Vincent 2011), Adam, and an EMA of
// the weights.
//
//   t ~ U(eps, T),  z ~ N(0, I),  x_t = alpha_t x_0 + sigma_t z,  s = model score at (x_t, t)
//   loss(x_0) = w(t) |sigma_t s + z|^2            summed over the d coordinates (reduction "sum") or averaged
//                                                  over them ("mean"), then averaged over the batch
//   w(t) = 1                  default: lambda(t) = sigma_t^2, the reference code's continuous loss
//   w(t) = g(t)^2 / sigma_t^2 "likelihood": lambda(t) = g(t)^2, which makes the loss a bound on the negative
//                             log-likelihood (Song et al. 2021b, "Maximum likelihood training of score-based
//                             diffusion models")
//
// With the noise parameterisation (s = -o / sigma_t) the residual sigma_t s + z is z - o; with scaled_score
// (s = o / sigma_t) it is o + z. Both are what the network is asked to output, with no 1/sigma_t in the loss.
//
// Randomness: every draw comes from CounterRng(seed, NoisePurpose::training) keyed by the iteration
// (minibatch indices with replacement, times, noise), so a run is a pure function of (data, options, seed,
// threads). The batch is split into `threads` fixed column ranges whose gradients are summed in order:
// bitwise reproducible for a given thread count.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/sde.hpp"
#include "models/data_scaling.hpp"
#include "models/mlp.hpp"

namespace scoresde {

enum class LossWeighting { sigma2, likelihood };
enum class LossReduction { mean, sum };
template <>
struct EnumNames<LossWeighting> {
  static constexpr std::array<std::pair<LossWeighting, std::string_view>, 2> values{
      {{LossWeighting::sigma2, "sigma2"}, {LossWeighting::likelihood, "likelihood"}}};
  static constexpr std::array<std::pair<LossWeighting, std::string_view>, 1> aliases{
      {{LossWeighting::sigma2, "none"}}};  // w(t) = 1
};
template <>
struct EnumNames<LossReduction> {
  static constexpr std::array<std::pair<LossReduction, std::string_view>, 2> values{
      {{LossReduction::mean, "mean"}, {LossReduction::sum, "sum"}}};
};
std::string to_string(LossWeighting w);
std::string to_string(LossReduction r);
LossWeighting loss_weighting_from_string(std::string_view name);  // ConfigError naming --loss-weighting
LossReduction loss_reduction_from_string(std::string_view name);  // ConfigError naming --reduction

// How training times are drawn. Every choice has the same minimiser, the score itself; a sampling density acts
// as a weighting of the noise levels, so the choice moves effort between them (Kingma & Gao 2023,
// "Understanding diffusion objectives", sec. 4).
//   uniform    t ~ U(eps, T): the reference code's choice. Under VP it puts few samples at small noise levels
//              (sigma_t < 0.1 only for t < ~0.03), where the within-mode shape of the data is decided.
//   log_snr    the log signal-to-noise ratio lambda_t = log(alpha_t^2 / sigma_t^2) uniform between lambda_T
//              and lambda_eps. With the sigma2 weighting this is the importance-sampled likelihood weighting
//              of Song et al. 2021b (the density of t is proportional to g(t)^2 / sigma_t^2 = -d lambda / dt).
//   log_sigma  log sigma_t uniform between log sigma_eps and log sigma_T: equal effort per decade of noise, as
//              uniform t gives under VE (where log sigma_t is close to linear in t).
enum class TimeSampling { uniform, log_snr, log_sigma };
template <>
struct EnumNames<TimeSampling> {
  static constexpr std::array<std::pair<TimeSampling, std::string_view>, 3> values{
      {{TimeSampling::uniform, "uniform"}, {TimeSampling::log_snr, "log_snr"}, {TimeSampling::log_sigma, "log_sigma"}}};
};
std::string to_string(TimeSampling s);
TimeSampling time_sampling_from_string(std::string_view name);  // ConfigError naming --time-sampling
// The command line's default: log_sigma for vp, where uniform t starves the small noise levels (at 5000
// iterations on eight_gaussians the modes come out 25% too wide with uniform, within 10% with log_sigma and
// a uniform share of 0.25; docs/training.md); uniform for ve, whose uniform t is already close to log-uniform
// in sigma, and for subvp, whose sigma_t ~ beta_min t would put two thirds of a log_sigma law below
// sigma = 0.01 at eps = 1e-5.
TimeSampling default_time_sampling(SdeKind kind);

struct TrainingOptions {
  Index batch_size = 512;
  long iterations = 5000;
  std::uint64_t seed = 0;
  double lr = 2e-3;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  long warmup = 100;  // learning rate grows linearly from lr / warmup to lr over the first `warmup` steps
  bool cosine_decay = false;  // then decays as lr (1 + cos(pi k / iterations)) / 2 (Loshchilov & Hutter 2017)
  double grad_clip = 1.0;     // clip the global gradient norm to this; 0 disables
  double ema_rate = 0.999;
  double eps = 1e-5;  // training times lie in [eps, T]; `scoresde train` defaults to the SDE's default_eps()
  TimeSampling time_sampling = TimeSampling::uniform;  // `scoresde train` picks default_time_sampling(kind)
  double uniform_share = 0.25;  // share of the times drawn uniformly in t whatever time_sampling is
  LossWeighting weighting = LossWeighting::sigma2;
  LossReduction reduction = LossReduction::mean;
  double validation_fraction = 0.1;  // share of the data held out for the validation loss
  long eval_every = 250;             // iterations between validation losses
  int threads = 1;

  // Every value against its entry in training_option_table() (the same checks as on the command line), then eps
  // in (0, T). ConfigError naming the option.
  void validate(const Sde& sde) const;
};

// The optimiser's options of `scoresde train`, described once (core/option_table.hpp): the command line, its
// checks and the options recorded in the checkpoint. --train-eps and --time-sampling have no default on the
// command line: `scoresde train` takes the SDE's (default_eps, default_time_sampling) unless they are given, and
// records the values in effect. cosine_decay is --lr-schedule constant|cosine.
const OptionTable<TrainingOptions>& training_option_table();

// Training times t(u) in [eps, T] for uniform u in [0, 1) under a TimeSampling, mixed with a share
// `uniform_share` of times uniform in t: u < share maps to eps + (T - eps) u / share, the rest to the chosen
// law at (u - share) / (1 - share), which is inverse-CDF sampling of the mixture from one draw. The uniform
// share is defensive importance sampling (Hesterberg 1995): the density never falls below share / (T - eps),
// so no noise level is starved. uniform is eps + (T - eps) u exactly; the others invert the monotone map from t to
// lambda_t or log sigma_t through a table of 4097 nodes equally spaced in that coordinate (each found by bisection):
// exact at the nodes, linear in t between them, so the law is right to within one node interval (1/4096 of its mass).
class TrainingTimes {
 public:
  TrainingTimes(const Sde& sde, TimeSampling sampling, double eps, double uniform_share = 0);
  double operator()(double u) const;
  // The coordinate the draws are uniform in: t, lambda_t or log sigma_t.
  double coordinate(double t) const;

 private:
  const Sde* sde_;
  TimeSampling sampling_;
  double eps_, T_, uniform_share_;
  std::vector<double> nodes_;  // t at equally spaced values of the coordinate, from eps to T
};

// Splits the columns of `data` at random (keyed by seed) into (training, validation) with round(fraction n)
// validation columns (at least 1 when fraction > 0 and n >= 2).
std::pair<Matrix, Matrix> split_data(const Matrix& data, double validation_fraction, std::uint64_t seed);

// The DSM loss summed over the columns of one batch (x_0, t, z given), and when grad is not null, its
// gradient times `grad_scale` added to grad. Exposed for the gradient check.
template <class S>
double dsm_loss_sum(const Mlp<S>& net, const S* params, const Sde& sde, const TrainingOptions& options,
                    ConstMatrixRef x0, ConstVectorRef t, ConstMatrixRef z, typename Mlp<S>::Workspace& ws,
                    S* grad, double grad_scale);

// One training run: the state of the optimiser, the weights and their EMA.
class Trainer {
 public:
  // train and validation are standardised d x n batches; validation may be empty.
  Trainer(const MlpArchitecture& arch, const Sde& sde, const TrainingOptions& options, Matrix train,
          Matrix validation);
  ~Trainer();
  void step();  // one Adam step on one minibatch
  long iteration() const;
  double last_loss() const;  // minibatch loss of the last step
  double validation_loss()
      const;  // DSM loss of the EMA weights on the held-out data, with fixed t and z draws
  Vector raw_weights() const;
  Vector ema_weights() const;
  const Vector& frequencies() const;
  const MlpArchitecture& architecture() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace scoresde
