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

#include "core/sde.hpp"
#include "models/mlp.hpp"

namespace scoresde {

enum class LossWeighting { sigma2, likelihood };
enum class LossReduction { mean, sum };
std::string to_string(LossWeighting w);
std::string to_string(LossReduction r);
LossWeighting loss_weighting_from_string(std::string_view name);  // ConfigError naming --loss-weighting
LossReduction loss_reduction_from_string(std::string_view name);  // ConfigError naming --reduction

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
  double eps = 1e-5;  // t ~ U(eps, T)
  LossWeighting weighting = LossWeighting::sigma2;
  LossReduction reduction = LossReduction::mean;
  double validation_fraction = 0.1;  // share of the data held out for the validation loss
  long eval_every = 250;             // iterations between validation losses
  int threads = 1;

  void validate(const Sde& sde) const;  // ConfigError naming the option
};

// Per-dimension affine standardisation: y = (x - mean) / scale. Models are trained and sampled on y.
struct DataScaling {
  Vector mean, scale;
  static DataScaling identity(Index d) { return {Vector::Zero(d), Vector::Ones(d)}; }
  static DataScaling fit(const Matrix& x);  // scale = per-dimension std (1 where it is 0)
  Matrix to_standard(const Matrix& x) const;
  Matrix to_original(const Matrix& y) const;
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
