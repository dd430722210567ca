// A multilayer-perceptron score network on Eigen, for d-dimensional data of any d.
//
//   input   h_0 = [x; e(c)],  c = t or log(sigma_t) (TimeInput),  e(t) = [sin(2 pi w t); cos(2 pi w t)]
//   Gaussian Fourier features, w_k ~ N(0, s^2)
//                                                                      fixed (Tancik et al. 2020; NCSN++ of
//                                                                      Song et al. 2021), or e(t) = t (raw
//                                                                      time)
//   hidden  h_{l+1} = silu(W_l h_l + b_l),  silu(z) = z sigmoid(z)     l = 0 .. L-2
//   output  o = W_{L-1} h_{L-1} + b_{L-1}                               d x n
//   score   s(x, t) = -o / sigma_t   (parameterisation "noise": o predicts the noise z of x_t = alpha_t x_0 +
//                                     sigma_t z; the reference code's VP / sub-VP convention)
//           s(x, t) =  o / sigma_t   ("scaled_score": o predicts sigma_t s; the VE convention)
//
// Batches are d x n with one column per sample. The forward pass takes blocks of columns through all layers
// (a block's activations stay in L2), each layer a register-tiled product that adds the bias and applies the
// activation and its derivative before anything is stored (DenseKernel in mlp.cpp); a column's result is the
// same bit for bit whatever the batch size and its position in the batch. Backward and tangent passes use
// Eigen's products. Compute is in the network's scalar type S (float by default, double on request); inputs
// and outputs of the ScoreModel interface are double. All buffers live in a Workspace that only ever grows:
// once it has seen the largest batch, no evaluation allocates.
//
// Parameters are one flat vector: for each layer l, W_l (out x in, column-major), then b_l. The same layout
// holds gradients, Adam moments and the EMA, so the optimiser works on flat arrays.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/sde.hpp"
#include "core/types.hpp"
#include "models/score_model.hpp"

namespace scoresde {

enum class TimeEmbedding { fourier, raw };
// What the time embedding is a function of: the time t itself, or the noise level log(sigma_t) of the SDE
// (as NCSN++ conditions on log sigma), which spreads the small times where the score changes fastest. TorchScript
// modules (models/torchscript_score.hpp) may also take sigma, the noise-to-signal ratio sigma~_t = sigma_t /
// alpha_t (EDM's sigma), or index, the DDPM step of the discrete schedule, (t - 1/N) s with s = N unless the module
// declares another scale (DPM-Solver's model_wrapper uses s = 1000 whatever N).
enum class TimeInput { t, log_sigma, sigma, index };
// What a network's output o means: noise (score = -o / sigma_t), scaled_score (score = o / sigma_t), data (o
// predicts x_0) or v (o = alpha_t eps - sigma_t x_0, VP only); the last two for TorchScript models only.
enum class Parameterization { noise, scaled_score, data, v };
enum class Precision { float32, float64 };

template <>
struct EnumNames<TimeEmbedding> {
  static constexpr std::array<std::pair<TimeEmbedding, std::string_view>, 2> values{
      {{TimeEmbedding::fourier, "fourier"}, {TimeEmbedding::raw, "raw"}}};
};
template <>
struct EnumNames<TimeInput> {
  static constexpr std::array<std::pair<TimeInput, std::string_view>, 4> values{{{TimeInput::t, "t"},
                                                                                 {TimeInput::log_sigma, "log_sigma"},
                                                                                 {TimeInput::sigma, "sigma"},
                                                                                 {TimeInput::index, "index"}}};
};
template <>
struct EnumNames<Parameterization> {
  static constexpr std::array<std::pair<Parameterization, std::string_view>, 4> values{
      {{Parameterization::noise, "noise"},
       {Parameterization::scaled_score, "scaled_score"},
       {Parameterization::data, "data"},
       {Parameterization::v, "v"}}};
};
template <>
struct EnumNames<Precision> {
  static constexpr std::array<std::pair<Precision, std::string_view>, 2> values{
      {{Precision::float32, "float32"}, {Precision::float64, "float64"}}};
  static constexpr std::array<std::pair<Precision, std::string_view>, 2> aliases{
      {{Precision::float32, "float"}, {Precision::float64, "double"}}};
};

std::string to_string(TimeEmbedding e);
std::string to_string(Parameterization p);
std::string to_string(Precision p);
std::string to_string(TimeInput i);
TimeInput time_input_from_string(std::string_view name);          // ConfigError naming --time-input
TimeEmbedding time_embedding_from_string(std::string_view name);  // ConfigError naming --time-embedding
Parameterization parameterization_from_string(
    std::string_view name);                              // ConfigError naming --parameterization
Precision precision_from_string(std::string_view name);  // ConfigError naming --precision
// The conventional parameterisation for an SDE: noise for vp and subvp, scaled_score for ve.
Parameterization default_parameterization(SdeKind kind);

struct MlpArchitecture {
  Index dim = 2;  // d: data dimension (input and output)
  std::vector<Index> hidden{128, 128,
                            128};  // widths of the hidden layers; L = hidden.size() + 1 linear layers
  TimeEmbedding time_embedding = TimeEmbedding::fourier;
  TimeInput time_input = TimeInput::t;
  Index fourier_features = 16;  // number of frequencies F; the embedding has 2F entries
  double fourier_scale = 4.0;   // standard deviation of the frequencies w (in cycles per unit time)
  Parameterization parameterization = Parameterization::noise;
  Precision precision = Precision::float32;

  Index embedding_size() const { return time_embedding == TimeEmbedding::fourier ? 2 * fourier_features : 1; }
  Index input_size() const { return dim + embedding_size(); }
  int layers() const { return static_cast<int>(hidden.size()) + 1; }
  Index fan_in(int l) const { return l == 0 ? input_size() : hidden[l - 1]; }
  Index fan_out(int l) const { return l + 1 == layers() ? dim : hidden[l]; }
  Index parameter_count() const;
  void validate() const;  // ConfigError naming the option
};

// The network's options of `scoresde train`, described once (core/option_table.hpp): --width and --depth (every
// hidden layer as wide), the time embedding and its input, the Fourier features, the parameterisation and the
// precision. The data dimension is not an option: it is the data's. --parameterization has no default on the
// command line (the struct's is noise): `scoresde train` takes default_parameterization of the SDE unless it is
// given, and records the value in effect.
const OptionTable<MlpArchitecture>& mlp_option_table();

// The network's time coordinate for each t: t, or log(sigma_t) under `sde`.
void network_times(const MlpArchitecture& arch, const Sde& sde, ConstVectorRef t, VectorRef out);

// Fourier frequencies w (F of them, N(0, scale^2)) and PyTorch-style initial weights (W and b uniform in
// +-1/sqrt(fan_in)), keyed by seed through CounterRng(seed, NoisePurpose::weights).
Vector initial_frequencies(const MlpArchitecture& arch, std::uint64_t seed);
Vector initial_weights(const MlpArchitecture& arch, std::uint64_t seed);

// The network in scalar type S: a layout plus kernels. It holds no weights: every call takes a parameter
// pointer, so one network serves the raw weights, the EMA and the perturbed copies of a gradient check.
template <class S>
class Mlp {
 public:
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
  using Vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;
  using MapMat = Eigen::Map<Mat>;
  using ConstMapMat = Eigen::Map<const Mat>;

  // frequencies: F entries for the Fourier embedding, ignored for raw time.
  Mlp(MlpArchitecture arch, Vector frequencies);
  const MlpArchitecture& architecture() const { return arch_; }
  const Vector& frequencies() const { return frequencies_; }
  int layers() const { return arch_.layers(); }
  Index parameter_count() const { return offsets_.back(); }
  Index weight_offset(int l) const { return offsets_[l]; }
  Index bias_offset(int l) const { return offsets_[l] + arch_.fan_out(l) * arch_.fan_in(l); }
  ConstMapMat weight(const S* p, int l) const {
    return ConstMapMat(p + weight_offset(l), arch_.fan_out(l), arch_.fan_in(l));
  }

  // Buffers for batches of up to n columns: the layer inputs H_l, the activation derivatives D_l, two scratch
  // matrices for backward and tangent passes, and the output. Grows only.
  class Workspace {
   public:
    void reserve(const Mlp& net, Index n);
    Index columns() const { return n_; }
    MapMat input(const Mlp& net, int l);       // H_l: fan_in(l) x n
    MapMat derivative(const Mlp& net, int l);  // D_l = silu'(z_l): fan_out(l) x n, hidden layers only
    MapMat output(const Mlp& net);             // o: d x n
    MapMat scratch(int which, Index rows);     // rows x n, which in {0, 1}

   private:
    friend class Mlp;
    std::vector<S> storage_;
    // The kernel's operands (see Mlp::forward and backward): weights repacked where a layer's shape needs it,
    // W^T for backward, a zero-padded column panel and an output tile for the last columns of a batch. Sized
    // by the architecture.
    std::vector<S> kernel_;
    std::vector<Index> packed_at_, packed_ld_;  // per layer; packed_ld_ = 0: W is used in place
    std::vector<Index> transposed_at_;          // per layer: W^T for backward, or -1
    Index tail_at_ = 0, tile_at_ = 0;
    std::vector<Index> input_at_, derivative_at_;
    Index output_at_ = 0, scratch_at_[2] = {0, 0};
    Index n_ = 0;
  };

  // Network output for x (d x n) and t (n) into ws.output(); keeps silu' in ws when `keep_derivatives`
  // (needed by backward and tangent).
  void forward(const S* params, ConstMatrixRef x, ConstVectorRef t, Workspace& ws,
               bool keep_derivatives) const;
  // After forward(keep_derivatives): grad += d/dparams sum_ij G_ij o_ij for G = output_gradient (d x n). G
  // may be ws.output() itself (overwritten).
  void backward(const S* params, Workspace& ws, const ConstMapMat& output_gradient, S* grad) const;
  // After forward(keep_derivatives): tangent_out (d x n) = (d o / d x) v column by column, v d x n.
  void tangent(const S* params, Workspace& ws, ConstMatrixRef v, MatrixRef tangent_out) const;
  // After forward(keep_derivatives): diag_out (d x n) holds d o_i / d x_i for every i and column (d tangent
  // passes).
  void jacobian_diagonal(const S* params, Workspace& ws, MatrixRef diag_out) const;

 private:
  void embed(ConstMatrixRef x, ConstVectorRef t, MapMat h0) const;
  // Layer l on n columns: Z = W_l H + b_l, through silu for hidden layers (and silu' into D when D is not
  // null). H: fan_in(l) x n, Z and D: fan_out(l) x n, column-major with no gaps.
  void dense(const S* params, int l, const S* H, Index n, S* Z, S* D, Workspace& ws) const;
  // From layer-1 pre-activation tangents T_1 (fan_out(0) x n, in scratch 0) to the output tangent (d x n);
  // returns the scratch index holding it.
  int propagate_tangent(const S* params, Workspace& ws) const;

  MlpArchitecture arch_;
  Vector frequencies_;
  std::vector<Index> offsets_;  // offsets_[l] = start of layer l; offsets_.back() = parameter count
};

extern template class Mlp<float>;
extern template class Mlp<double>;

// A trained network as a ScoreModel: s(x, t) = -o / sigma_t (noise) or o / sigma_t (scaled_score) with
// sigma_t from `sde`, which the caller keeps alive. Weights are given in double and stored in the
// architecture's precision. Thread-safe: each thread evaluates in its own thread_local workspace, allocated
// once. Has an exact divergence (d forward-mode tangent passes) and Jacobian-vector products (one tangent
// pass).
class MlpScore final : public ScoreModel {
 public:
  MlpScore(const MlpArchitecture& arch, const Vector& frequencies, const Vector& weights, const Sde& sde);
  ~MlpScore() override;
  Index dim() const override;
  std::string describe() const override;
  bool has_exact_divergence() const override { return true; }
  bool has_jvp() const override { return true; }
  const MlpArchitecture& architecture() const;

  // The raw network output o (d x n), for tests and interchange checks.
  void network_output(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const;

 protected:
  void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const override;
  void evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out,
                           VectorRef divergence) const override;
  void evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out,
                    MatrixRef jv) const override;

 private:
  struct Impl;
  template <class S>
  struct TypedImpl;
  std::unique_ptr<const Impl> impl_;
  const Sde* sde_;
  double sign_;  // -1 for noise, +1 for scaled_score
};

}  // namespace scoresde
