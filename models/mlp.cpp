#include "models/mlp.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/errors.hpp"
#include "core/noise.hpp"

namespace scoresde {

std::string to_string(TimeEmbedding e) {
  return std::string(enum_name(e));
}
std::string to_string(Parameterization p) {
  return std::string(enum_name(p));
}
std::string to_string(Precision p) {
  return std::string(enum_name(p));
}
std::string to_string(TimeInput i) {
  return std::string(enum_name(i));
}
TimeInput time_input_from_string(std::string_view name) {
  return enum_from_name<TimeInput>(name, "time-input");
}
TimeEmbedding time_embedding_from_string(std::string_view name) {
  return enum_from_name<TimeEmbedding>(name, "time-embedding");
}
Parameterization parameterization_from_string(std::string_view name) {
  return enum_from_name<Parameterization>(name, "parameterization");
}
Precision precision_from_string(std::string_view name) {
  return enum_from_name<Precision>(name, "precision");
}

void network_times(const MlpArchitecture& arch, const Sde& sde, ConstVectorRef t, VectorRef out) {
  if (arch.time_input == TimeInput::t) {
    out = t;
    return;
  }
  for (Index j = 0; j < t.size(); ++j) out(j) = std::log(sde.sigma(t(j)));
}

Parameterization default_parameterization(SdeKind kind) {
  return kind == SdeKind::ve ? Parameterization::scaled_score : Parameterization::noise;
}

Index MlpArchitecture::parameter_count() const {
  Index count = 0;
  for (int l = 0; l < layers(); ++l) count += fan_out(l) * (fan_in(l) + 1);
  return count;
}

namespace {

// The checks of --depth and --width, on the command line and in validate().
std::optional<std::string> depth_problem(const int& depth) {
  if (depth >= 1 && depth <= 64) return std::nullopt;
  return std::string("must be in [1, 64]");
}
std::optional<std::string> width_problem(const Index& width) {
  if (width >= 1 && width <= 65536) return std::nullopt;
  return std::string("must be in [1, 65536]");
}

// The MLP's time inputs: t and log_sigma (sigma and index are for TorchScript modules).
ValueCheck<TimeInput> time_input_check() {
  return check_that<TimeInput>([](const TimeInput& i) { return i == TimeInput::t || i == TimeInput::log_sigma; },
                               "the MLP network takes t or log_sigma (sigma and index are for TorchScript models)");
}

}  // namespace

void MlpArchitecture::validate() const {
  require(parameterization == Parameterization::noise || parameterization == Parameterization::scaled_score,
          "--parameterization", to_string(parameterization),
          "the MLP network predicts noise or scaled_score (data and v are for TorchScript models)");
  require(dim >= 1 && dim <= 100000, "dimension", std::to_string(dim), "must be in [1, 100000]");
  if (const auto problem = time_input_check()(time_input))
    throw ConfigError(fmt::format("--time-input = {}: {}", to_string(time_input), *problem));
  if (const auto problem = depth_problem(static_cast<int>(hidden.size())))
    throw ConfigError(fmt::format("--depth = {}: {}", hidden.size(), *problem));
  for (Index w : hidden)
    if (const auto problem = width_problem(w)) throw ConfigError(fmt::format("--width = {}: {}", w, *problem));
  if (time_embedding == TimeEmbedding::fourier) {
    require(fourier_features >= 1 && fourier_features <= 4096, "--fourier-features",
            std::to_string(fourier_features), "must be in [1, 4096]");
    require(std::isfinite(fourier_scale) && fourier_scale > 0, "--fourier-scale",
            fmt::format("{}", fourier_scale), "must be > 0");
  }
}

const OptionTable<MlpArchitecture>& mlp_option_table() {
  using S = MlpArchitecture;
  static const OptionTable<S> table = [] {
    OptionTable<S> t;
    // `hidden` as --depth layers of --width units: either may be read first.
    t.push_back(derived_option<S, Index>(
        "width", [](const S& s) { return s.hidden.empty() ? Index{0} : s.hidden.front(); },
        [](S& s, const Index& width) { std::fill(s.hidden.begin(), s.hidden.end(), width); }, "hidden layer width",
        width_problem));
    t.push_back(derived_option<S, int>(
        "depth", [](const S& s) { return static_cast<int>(s.hidden.size()); },
        [](S& s, const int& depth) {
          s.hidden.resize(static_cast<std::size_t>(depth), s.hidden.empty() ? S{}.hidden.front() : s.hidden.front());
        },
        "number of hidden layers", depth_problem));
    t.push_back(option("time-embedding", &S::time_embedding,
                       "fourier (Gaussian Fourier features) or raw (the time coordinate appended to x)"));
    t.push_back(option("time-input", &S::time_input,
                       "what the time embedding sees: t, or log_sigma (the log of the kernel std sigma_t)",
                       time_input_check()));
    t.push_back(option("fourier-features", &S::fourier_features, "Fourier frequencies F (2F features)"));
    t.push_back(option("fourier-scale", &S::fourier_scale, "standard deviation of the Fourier frequencies"));
    auto& parameterization = t.emplace_back(option("parameterization", &S::parameterization,
                                                   "noise (score = -output / sigma_t) or scaled_score (score = "
                                                   "output / sigma_t); default noise for vp and subvp, "
                                                   "scaled_score for ve"));
    parameterization.optional = true;  // no default on the command line: the SDE's (default_parameterization)
    t.push_back(option("precision", &S::precision, "float32 or float64"));
    return t;
  }();
  return table;
}

Vector initial_frequencies(const MlpArchitecture& arch, std::uint64_t seed) {
  if (arch.time_embedding != TimeEmbedding::fourier) return Vector();
  Vector w(arch.fourier_features);
  CounterRng(seed, NoisePurpose::weights).normals(0, 0, 0, w.data(), w.size());
  return w * arch.fourier_scale;
}

Vector initial_weights(const MlpArchitecture& arch, std::uint64_t seed) {
  const CounterRng rng(seed, NoisePurpose::weights);
  Vector p(arch.parameter_count());
  Index at = 0;
  for (int l = 0; l < arch.layers(); ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(arch.fan_in(l)));
    const Index nw = arch.fan_out(l) * arch.fan_in(l), nb = arch.fan_out(l);
    rng.uniforms(static_cast<std::uint64_t>(l) + 1, 0, 0, p.data() + at, nw);
    rng.uniforms(static_cast<std::uint64_t>(l) + 1, 1, 0, p.data() + at + nw, nb);
    p.segment(at, nw + nb) = (2.0 * p.segment(at, nw + nb).array() - 1.0) * bound;
    at += nw + nb;
  }
  return p;
}

// ------------------------------------------------------------------------------------------------ kernel

namespace {

namespace ei = Eigen::internal;

// The forward pass's dense layer, Z = act(W H + b), as register tiles of MR rows x NR columns: for each k,
// two packets of W's column k times NR broadcast entries of H, accumulated in 2 NR registers that start at the
// bias; then the activation (silu and its derivative through Eigen's packet exp) on the registers and one
// store. A column's results come from the same instruction sequence whichever of the NR slots it occupies, and
// nothing depends on alignment (unaligned loads and stores throughout), so a column's bits depend on its own
// values only. Layers whose rows are not a multiple of MR run on a zero-padded copy of W and b; an output layer
// of at most dot_rows rows runs as per-column dot products against W^T (vectorised over k, reduced in a fixed
// order) instead of tiles that would be mostly padding.
template <class S>
struct DenseKernel {
  using Packet = typename ei::packet_traits<S>::type;
  static constexpr int P = ei::unpacket_traits<Packet>::size;
  static constexpr int MR = 2 * P;
  static constexpr int NR = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32 ? 8 : 6;
  static constexpr Index dot_rows = 4;
  enum Activation { linear, silu, silu_derivative, times };  // times: out = (A B) .* der, der given
  enum Start { from_bias, from_zero, from_out };              // initial accumulators: bias, 0 or out += A B

  // MR x NR of act(A B + start) into out (leading dimension ld); silu' into der for silu_derivative. A: MR
  // rows of a column-major matrix with leading dimension lda, k columns; B: k x NR, entry (kk, c) at
  // B[c ldb + kk], or at B[kk ldb + c] when RowMajorB (B is then the transpose of a column-major matrix).
  template <bool RowMajorB = false>
  static void tile(Start start, Activation act, const S* A, Index lda, Index k, const S* B, Index ldb,
                   const S* bias, S* out, S* der, Index ld) {
    Packet c0[NR], c1[NR];
    for (int c = 0; c < NR; ++c) {
      if (start == from_out) {
        c0[c] = ei::ploadu<Packet>(out + c * ld);
        c1[c] = ei::ploadu<Packet>(out + c * ld + P);
      } else if (start == from_bias) {
        c0[c] = ei::ploadu<Packet>(bias);
        c1[c] = ei::ploadu<Packet>(bias + P);
      } else {
        c0[c] = c1[c] = ei::pset1<Packet>(S(0));
      }
    }
    for (Index kk = 0; kk < k; ++kk) {
      const Packet a0 = ei::ploadu<Packet>(A + kk * lda), a1 = ei::ploadu<Packet>(A + kk * lda + P);
      for (int c = 0; c < NR; ++c) {
        const Packet bc = ei::pset1<Packet>(RowMajorB ? B[kk * ldb + c] : B[c * ldb + kk]);
        c0[c] = ei::pmadd(a0, bc, c0[c]);
        c1[c] = ei::pmadd(a1, bc, c1[c]);
      }
    }
    for (int c = 0; c < NR; ++c) {
      store(act, c0[c], out + c * ld, der ? der + c * ld : nullptr);
      store(act, c1[c], out + c * ld + P, der ? der + c * ld + P : nullptr);
    }
  }

  static void store(Activation act, const Packet& z, S* out, S* der) {
    if (act == linear) {
      ei::pstoreu(out, z);
      return;
    }
    if (act == times) {
      ei::pstoreu(out, ei::pmul(z, ei::ploadu<Packet>(der)));
      return;
    }
    const Packet one = ei::pset1<Packet>(S(1));
    const Packet sig = ei::pdiv(one, ei::padd(one, ei::pexp(ei::pnegate(z))));
    ei::pstoreu(out, ei::pmul(z, sig));
    if (act == silu_derivative) ei::pstoreu(der, ei::pmul(sig, ei::padd(one, ei::pmul(z, ei::psub(one, sig)))));
  }

  // Z (m x n) = WT^T H + b, WT: k x m (row i of W contiguous), H: k x n.
  static void dot_columns(const S* WT, const S* b, Index m, Index k, const S* H, Index n, S* Z) {
    const Index kp = k / P * P;
    for (Index j = 0; j < n; ++j) {
      const S* h = H + j * k;
      for (Index i = 0; i < m; ++i) {
        const S* w = WT + i * k;
        Packet acc = ei::pset1<Packet>(S(0));
        for (Index kk = 0; kk < kp; kk += P)
          acc = ei::pmadd(ei::ploadu<Packet>(w + kk), ei::ploadu<Packet>(h + kk), acc);
        S sum = ei::predux(acc);
        for (Index kk = kp; kk < k; ++kk) sum += w[kk] * h[kk];
        Z[j * m + i] = sum + b[i];
      }
    }
  }
};

}  // namespace

// ------------------------------------------------------------------------------------------------ Mlp<S>

template <class S>
Mlp<S>::Mlp(MlpArchitecture arch, Vector frequencies)
    : arch_(std::move(arch)), frequencies_(std::move(frequencies)) {
  arch_.validate();
  if (arch_.time_embedding == TimeEmbedding::fourier && frequencies_.size() != arch_.fourier_features)
    throw ConfigError(fmt::format("Fourier frequencies: {} given, the architecture has {}",
                                  frequencies_.size(), arch_.fourier_features));
  offsets_.push_back(0);
  for (int l = 0; l < layers(); ++l)
    offsets_.push_back(offsets_.back() + arch_.fan_out(l) * (arch_.fan_in(l) + 1));
}

template <class S>
void Mlp<S>::Workspace::reserve(const Mlp& net, Index n) {
  const auto& a = net.arch_;
  const int L = a.layers();
  Index max_width = a.dim;
  for (Index w : a.hidden) max_width = std::max(max_width, w);
  input_at_.assign(L, 0);
  derivative_at_.assign(L, 0);
  Index at = 0;
  // Round every block up to 16 scalars so that columns of every buffer start 64-byte aligned when n is even.
  const auto take = [&](Index size) {
    const Index start = at;
    at += (size + 15) / 16 * 16;
    return start;
  };
  for (int l = 0; l < L; ++l) input_at_[l] = take(a.fan_in(l) * n);
  for (int l = 0; l + 1 < L; ++l) derivative_at_[l] = take(a.fan_out(l) * n);
  output_at_ = take(a.dim * n);
  scratch_at_[0] = take(max_width * n);
  scratch_at_[1] = take(max_width * n);
  if (static_cast<Index>(storage_.size()) < at) storage_.resize(static_cast<std::size_t>(at));
  n_ = n;

  using K = DenseKernel<S>;
  packed_at_.assign(L, 0);
  packed_ld_.assign(L, 0);
  Index kat = 0, max_in = 1;
  for (int l = 0; l < L; ++l) {
    const Index m = a.fan_out(l), k = a.fan_in(l);
    max_in = std::max(max_in, k);
    if (l + 1 == L && m <= K::dot_rows) {  // W^T, for the per-column dot products of the output layer
      packed_at_[l] = kat;
      packed_ld_[l] = k;
      kat += m * k;
    } else if (m % K::MR != 0) {  // W and b with rows padded to whole tiles
      const Index mp = (m + K::MR - 1) / K::MR * K::MR;
      packed_at_[l] = kat;
      packed_ld_[l] = mp;
      kat += mp * (k + 1);
    }
  }
  transposed_at_.assign(L, -1);
  for (int l = 1; l < L; ++l) {
    if (a.fan_in(l) % K::MR != 0) continue;
    transposed_at_[l] = kat;
    kat += a.fan_in(l) * a.fan_out(l);
  }
  tail_at_ = kat;
  kat += max_in * K::NR;
  tile_at_ = kat;
  kat += 2 * K::MR * K::NR;
  if (static_cast<Index>(kernel_.size()) < kat) kernel_.resize(static_cast<std::size_t>(kat));
}

template <class S>
typename Mlp<S>::MapMat Mlp<S>::Workspace::input(const Mlp& net, int l) {
  return MapMat(storage_.data() + input_at_[l], net.arch_.fan_in(l), n_);
}
template <class S>
typename Mlp<S>::MapMat Mlp<S>::Workspace::derivative(const Mlp& net, int l) {
  return MapMat(storage_.data() + derivative_at_[l], net.arch_.fan_out(l), n_);
}
template <class S>
typename Mlp<S>::MapMat Mlp<S>::Workspace::output(const Mlp& net) {
  return MapMat(storage_.data() + output_at_, net.arch_.dim, n_);
}
template <class S>
typename Mlp<S>::MapMat Mlp<S>::Workspace::scratch(int which, Index rows) {
  return MapMat(storage_.data() + scratch_at_[which], rows, n_);
}

template <class S>
void Mlp<S>::embed(ConstMatrixRef x, ConstVectorRef t, MapMat h0) const {
  const Index d = arch_.dim, n = x.cols();
  h0.topRows(d) = x.template cast<S>();
  if (arch_.time_embedding == TimeEmbedding::raw) {
    h0.row(d) = t.transpose().template cast<S>();
    return;
  }
  const Index F = arch_.fourier_features;
  for (Index j = 0; j < n; ++j) {
    for (Index k = 0; k < F; ++k) {
      const double angle = 2.0 * std::numbers::pi * frequencies_(k) * t(j);
      h0(d + k, j) = static_cast<S>(std::sin(angle));
      h0(d + F + k, j) = static_cast<S>(std::cos(angle));
    }
  }
}

template <class S>
void Mlp<S>::dense(const S* params, int l, const S* H, Index n, S* Z, S* D, Workspace& ws) const {
  using K = DenseKernel<S>;
  const Index m = arch_.fan_out(l), k = arch_.fan_in(l);
  const S* b = params + bias_offset(l);
  if (l + 1 == layers() && m <= K::dot_rows) {
    K::dot_columns(ws.kernel_.data() + ws.packed_at_[l], b, m, k, H, n, Z);
    return;
  }
  const bool packed = ws.packed_ld_[l] != 0;
  const Index lda = packed ? ws.packed_ld_[l] : m;
  const S* A = packed ? ws.kernel_.data() + ws.packed_at_[l] : params + weight_offset(l);
  const S* bias = packed ? A + lda * k : b;
  const auto act = l + 1 == layers() ? K::linear : D ? K::silu_derivative : K::silu;
  S* tail = ws.kernel_.data() + ws.tail_at_;
  S* tile = ws.kernel_.data() + ws.tile_at_;
  for (Index j = 0; j < n; j += K::NR) {
    const Index cols = std::min<Index>(K::NR, n - j);
    const S* B = H + j * k;
    if (cols < K::NR) {  // the last columns, zero-padded to a whole panel: the same arithmetic as the others
      std::fill(tail, tail + k * K::NR, S(0));
      std::copy(B, B + k * cols, tail);
      B = tail;
    }
    for (Index i = 0; i < lda; i += K::MR) {
      const Index rows = std::min<Index>(K::MR, m - i);
      if (cols == K::NR && rows == K::MR) {
        K::tile(K::from_bias, act, A + i, lda, k, B, k, bias + i, Z + j * m + i, D ? D + j * m + i : nullptr, m);
        continue;
      }
      K::tile(K::from_bias, act, A + i, lda, k, B, k, bias + i, tile, tile + K::MR * K::NR, K::MR);
      for (Index c = 0; c < cols; ++c) {
        std::copy(tile + c * K::MR, tile + c * K::MR + rows, Z + (j + c) * m + i);
        if (D) std::copy(tile + (K::NR + c) * K::MR, tile + (K::NR + c) * K::MR + rows, D + (j + c) * m + i);
      }
    }
  }
}

template <class S>
void Mlp<S>::forward(const S* params, ConstMatrixRef x, ConstVectorRef t, Workspace& ws, bool keep) const {
  using K = DenseKernel<S>;
  const Index n = x.cols();
  eigen_assert(x.rows() == arch_.dim && t.size() == n);
  ws.reserve(*this, n);
  const int L = layers();
  for (int l = 0; l < L; ++l) {
    const Index m = arch_.fan_out(l), k = arch_.fan_in(l);
    if (ws.packed_ld_[l] == 0) continue;
    S* to = ws.kernel_.data() + ws.packed_at_[l];
    const S* W = params + weight_offset(l);
    if (l + 1 == L && m <= K::dot_rows) {
      for (Index i = 0; i < m; ++i)
        for (Index c = 0; c < k; ++c) to[i * k + c] = W[c * m + i];
      continue;
    }
    const Index lda = ws.packed_ld_[l];
    std::fill(to, to + lda * (k + 1), S(0));
    for (Index c = 0; c < k; ++c) std::copy(W + c * m, W + (c + 1) * m, to + c * lda);
    std::copy(params + bias_offset(l), params + bias_offset(l) + m, to + lda * k);
  }
  embed(x, t, ws.input(*this, 0));
  // Blocks of columns through all layers, so that a block's activations stay in L2 from one layer to the
  // next. Every column goes through the same kernel code whatever its position (see DenseKernel), so results
  // do not depend on the batch size, the block a column falls in, or buffer addresses.
  constexpr Index block = 32 * K::NR;
  for (Index c0 = 0; c0 < n; c0 += block) {
    const Index cols = std::min(block, n - c0);
    for (int l = 0; l < L; ++l) {
      const S* H = ws.input(*this, l).data() + c0 * arch_.fan_in(l);
      S* Z = (l + 1 < L ? ws.input(*this, l + 1).data() : ws.output(*this).data()) + c0 * arch_.fan_out(l);
      S* D = keep && l + 1 < L ? ws.derivative(*this, l).data() + c0 * arch_.fan_out(l) : nullptr;
      dense(params, l, H, cols, Z, D, ws);
    }
  }
}

template <class S>
void Mlp<S>::backward(const S* params, Workspace& ws, const ConstMapMat& output_gradient, S* grad) const {
  using K = DenseKernel<S>;
  const int L = layers();
  const Index n = ws.columns(), d = arch_.dim;
  // W_l^T for the input gradients of the layers that the kernel takes (see below).
  for (int l = 1; l < L; ++l) {
    if (ws.transposed_at_[l] < 0) continue;
    const Index m = arch_.fan_out(l), k = arch_.fan_in(l);
    const S* W = params + weight_offset(l);
    S* to = ws.kernel_.data() + ws.transposed_at_[l];
    constexpr Index t = 16;  // in t x t blocks, which stay in L1 where whole rows and columns would not
    for (Index r0 = 0; r0 < m; r0 += t)
      for (Index c0 = 0; c0 < k; c0 += t)
        for (Index c = c0; c < std::min(k, c0 + t); ++c)
          for (Index r = r0; r < std::min(m, r0 + t); ++r) to[r * k + c] = W[c * m + r];
  }
  // Blocks of columns through all layers, as in forward, so that a block's deltas, activations and
  // derivatives stay in L2; the weight gradients sum the blocks in order. delta lives in scratch 0 / 1
  // alternately; the first one is the given output gradient. Products whose shapes fit whole register tiles
  // run on the forward kernel: gW += delta H^T (rows of gW in tiles of MR, its columns in panels of NR, the
  // block's columns as the inner dimension) and delta_prev = (W^T delta) .* silu' (with the derivative
  // applied in registers); the others (the output layer's few rows, the input layer's few columns) on
  // Eigen.
  constexpr Index block = 256;
  for (Index c0 = 0; c0 < n; c0 += block) {
    const Index cols = std::min(block, n - c0);
    ConstMapMat delta(output_gradient.data() + c0 * d, d, cols);
    int next = 0;
    for (int l = L - 1; l >= 0; --l) {
      const Index in = arch_.fan_in(l), out = arch_.fan_out(l);
      MapMat gW(grad + weight_offset(l), out, in);
      Eigen::Map<Vec> gb(grad + bias_offset(l), out);
      const ConstMapMat H(ws.input(*this, l).data() + c0 * in, in, cols);
      if (out % K::MR == 0 && in % K::NR == 0) {
        for (Index j = 0; j < in; j += K::NR)
          for (Index i = 0; i < out; i += K::MR)
            K::template tile<true>(K::from_out, K::linear, delta.data() + i, out, cols, H.data() + j, in, nullptr,
                                   gW.data() + j * out + i, nullptr, out);
      } else {
        gW.noalias() += delta * H.transpose();
      }
      gb += delta.rowwise().sum();
      if (l == 0) break;
      MapMat prev(ws.scratch(next, in).data(), in, cols);
      S* D = ws.derivative(*this, l - 1).data() + c0 * in;
      Index done = 0;
      if (ws.transposed_at_[l] >= 0) {
        const S* WT = ws.kernel_.data() + ws.transposed_at_[l];
        for (; done + K::NR <= cols; done += K::NR)
          for (Index i = 0; i < in; i += K::MR)
            K::tile(K::from_zero, K::times, WT + i, in, out, delta.data() + done * out, out, nullptr,
                    prev.data() + done * in + i, D + done * in + i, in);
      }
      if (done < cols) {
        auto rest = prev.middleCols(done, cols - done);
        rest.noalias() = weight(params, l).transpose() * delta.middleCols(done, cols - done);
        rest.array() *= ConstMapMat(D + done * in, in, cols - done).array();
      }
      new (&delta) ConstMapMat(prev.data(), in, cols);
      next = 1 - next;
    }
  }
}

template <class S>
int Mlp<S>::propagate_tangent(const S* params, Workspace& ws) const {
  const int L = layers();
  int cur = 0;
  for (int l = 1; l < L; ++l) {
    MapMat t = ws.scratch(cur, arch_.fan_in(l));  // pre-activation tangent of layer l - 1
    t.array() *= ws.derivative(*this, l - 1).array();
    MapMat next = ws.scratch(1 - cur, arch_.fan_out(l));
    next.noalias() = weight(params, l) * t;
    cur = 1 - cur;
  }
  return cur;
}

template <class S>
void Mlp<S>::tangent(const S* params, Workspace& ws, ConstMatrixRef v, MatrixRef tangent_out) const {
  const Index d = arch_.dim;
  MapMat t0 = ws.scratch(0, arch_.fan_out(0));
  t0.noalias() = weight(params, 0).leftCols(d) * v.template cast<S>();
  const int cur = propagate_tangent(params, ws);
  tangent_out = ws.scratch(cur, d).template cast<double>();
}

template <class S>
void Mlp<S>::jacobian_diagonal(const S* params, Workspace& ws, MatrixRef diag_out) const {
  const Index d = arch_.dim;
  const auto W0 = weight(params, 0);
  for (Index i = 0; i < d; ++i) {
    MapMat t0 = ws.scratch(0, arch_.fan_out(0));
    t0.colwise() = W0.col(i);
    const int cur = propagate_tangent(params, ws);
    diag_out.row(i) = ws.scratch(cur, d).row(i).template cast<double>();
  }
}

template class Mlp<float>;
template class Mlp<double>;

// ------------------------------------------------------------------------------------------------ MlpScore

struct MlpScore::Impl {
  virtual ~Impl() = default;
  virtual const MlpArchitecture& architecture() const = 0;
  // out = network output; with v: jv = tangent; with diag: Jacobian diagonal.
  virtual void run(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, const ConstMatrixRef* v, MatrixRef* jv,
                   MatrixRef* diag) const = 0;
};

template <class S>
struct MlpScore::TypedImpl final : MlpScore::Impl {
  TypedImpl(const MlpArchitecture& arch, const Vector& frequencies, const Vector& weights, const Sde& sde_)
      : net(arch, frequencies), params(weights.cast<S>()), sde(&sde_) {
    if (weights.size() != net.parameter_count())
      throw ConfigError(fmt::format("MLP weights: {} given, the architecture has {} parameters",
                                    weights.size(), net.parameter_count()));
  }
  const MlpArchitecture& architecture() const override { return net.architecture(); }
  void run(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, const ConstMatrixRef* v, MatrixRef* jv,
           MatrixRef* diag) const override {
    // One workspace per thread for all MLPs of this precision: it grows to the largest batch and stays.
    thread_local typename Mlp<S>::Workspace ws;
    thread_local Vector tau;
    tau.resize(t.size());  // allocates only when the batch size changes
    network_times(net.architecture(), *sde, t, tau);
    const bool keep = v != nullptr || diag != nullptr;
    net.forward(params.data(), x, tau, ws, keep);
    out = ws.output(net).template cast<double>();
    if (v) net.tangent(params.data(), ws, *v, *jv);
    if (diag) net.jacobian_diagonal(params.data(), ws, *diag);
  }
  Mlp<S> net;
  typename Mlp<S>::Vec params;
  const Sde* sde;
};

MlpScore::MlpScore(const MlpArchitecture& arch, const Vector& frequencies, const Vector& weights,
                   const Sde& sde)
    : sde_(&sde), sign_(arch.parameterization == Parameterization::noise ? -1.0 : 1.0) {
  if (arch.precision == Precision::float32)
    impl_ = std::make_unique<TypedImpl<float>>(arch, frequencies, weights, sde);
  else
    impl_ = std::make_unique<TypedImpl<double>>(arch, frequencies, weights, sde);
}

MlpScore::~MlpScore() = default;

Index MlpScore::dim() const {
  return impl_->architecture().dim;
}
const MlpArchitecture& MlpScore::architecture() const {
  return impl_->architecture();
}

std::string MlpScore::describe() const {
  const auto& a = architecture();
  return fmt::format("mlp(d={}, hidden=[{}], time={}({}), parameterization={}, {}, sde={})", a.dim,
                     fmt::join(a.hidden, ","), to_string(a.time_embedding), to_string(a.time_input),
                     to_string(a.parameterization), to_string(a.precision), sde_->name());
}

void MlpScore::network_output(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const {
  impl_->run(x, t, out, nullptr, nullptr, nullptr);
}

void MlpScore::evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const {
  impl_->run(x, t, out, nullptr, nullptr, nullptr);
  for (Index j = 0; j < x.cols(); ++j) out.col(j) *= sign_ / sde_->sigma(t(j));
}

void MlpScore::evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out,
                                   VectorRef divergence) const {
  thread_local Matrix diag;
  diag.resize(x.rows(), x.cols());  // no reallocation once the size is stable
  MatrixRef diag_ref(diag);
  impl_->run(x, t, out, nullptr, nullptr, &diag_ref);
  for (Index j = 0; j < x.cols(); ++j) {
    const double c = sign_ / sde_->sigma(t(j));
    out.col(j) *= c;
    divergence(j) = c * diag.col(j).sum();
  }
}

void MlpScore::evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out,
                            MatrixRef jv) const {
  impl_->run(x, t, out, &v, &jv, nullptr);
  for (Index j = 0; j < x.cols(); ++j) {
    const double c = sign_ / sde_->sigma(t(j));
    out.col(j) *= c;
    jv.col(j) *= c;
  }
}

}  // namespace scoresde
