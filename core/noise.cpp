#include "core/noise.hpp"

#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>
#include <Random123/uniform.hpp>
#include <cmath>
#include <fmt/format.h>

#include "core/errors.hpp"

namespace scoresde {
namespace {
using Philox = r123::Philox4x64;
}

CounterRng::CounterRng(std::uint64_t seed, NoisePurpose purpose)
    : key_{seed, static_cast<std::uint64_t>(purpose)} {}

void CounterRng::normals(std::uint64_t a, std::uint64_t b, std::uint64_t c, double* out, Index count) const {
  Philox philox;
  const Philox::key_type key = {{key_[0], key_[1]}};
  for (Index block = 0; 4 * block < count; ++block) {
    const Philox::ctr_type ctr = {{a, b, c, static_cast<std::uint64_t>(block)}};
    const Philox::ctr_type r = philox(ctr, key);
    const r123::double2 z01 = r123::boxmuller(r[0], r[1]);
    const r123::double2 z23 = r123::boxmuller(r[2], r[3]);
    const double z[4] = {z01.x, z01.y, z23.x, z23.y};
    const Index n = std::min<Index>(4, count - 4 * block);
    for (Index j = 0; j < n; ++j) out[4 * block + j] = z[j];
  }
}

void CounterRng::uniforms(std::uint64_t a, std::uint64_t b, std::uint64_t c, double* out, Index count) const {
  Philox philox;
  const Philox::key_type key = {{key_[0], key_[1]}};
  for (Index block = 0; 4 * block < count; ++block) {
    const Philox::ctr_type ctr = {{a, b, c, static_cast<std::uint64_t>(block)}};
    const Philox::ctr_type r = philox(ctr, key);
    const Index n = std::min<Index>(4, count - 4 * block);
    // u01 maps to (0, 1]; 1 - u lies in [0, 1) and is never used for a logarithm, so keep (0, 1].
    for (Index j = 0; j < n; ++j) out[4 * block + j] = r123::u01<double>(r[j]);
  }
}

void CounterRng::normal_columns(std::uint64_t first, std::uint64_t b, std::uint64_t c, MatrixRef out) const {
  for (Index j = 0; j < out.cols(); ++j) normals(first + static_cast<std::uint64_t>(j), b, c, out.col(j).data(), out.rows());
}

std::string to_string(NoiseKind kind) { return kind == NoiseKind::independent ? "independent" : "brownian_tree"; }
std::vector<std::string> noise_names() { return {"independent", "brownian_tree"}; }

NoiseKind noise_kind_from_string(std::string_view name) {
  if (name == "independent") return NoiseKind::independent;
  if (name == "brownian_tree") return NoiseKind::brownian_tree;
  throw ConfigError(fmt::format("--noise = {}: unknown noise source; choose one of independent, brownian_tree", name));
}

namespace {

class IndependentPath final : public BrownianPath {
 public:
  IndependentPath(std::uint64_t seed, Index first) : rng_(seed, NoisePurpose::brownian), first_(first) {}
  void increment(Index step, double t, double t_next, MatrixRef out) override {
    rng_.normal_columns(static_cast<std::uint64_t>(first_), static_cast<std::uint64_t>(step), 0, out);
    out *= std::sqrt(t - t_next);
  }

 private:
  CounterRng rng_;
  Index first_;
};

// Virtual Brownian tree (Gaines & Lyons 1997; Li et al., "Scalable gradients for SDEs", AISTATS 2020, sec. 5):
// node (level l, index j) covers [j, j + 1] T / 2^l and draws the value at its midpoint from the Brownian bridge
// N((W_a + W_b) / 2, (b - a) / 4) with normals keyed by the node's heap number 2^l + j. W(T) ~ N(0, T).
class BrownianTreePath final : public BrownianPath {
 public:
  BrownianTreePath(std::uint64_t seed, double T, Index first, Index dim, Index cols)
      : rng_(seed, NoisePurpose::brownian), T_(T), first_(first), wa_(dim), wb_(dim), z_(dim),
        cached_t_(-1.0), cached_w_(dim, cols), next_w_(dim, cols) {}

  void increment(Index, double t, double t_next, MatrixRef out) override {
    // Grids are walked downwards, so W(t) is usually the W(t_next) of the previous step.
    if (t != cached_t_) evaluate(t, cached_w_);
    evaluate(t_next, next_w_);
    out = cached_w_ - next_w_;
    cached_w_.swap(next_w_);
    cached_t_ = t_next;
  }

 private:
  void evaluate(double t, Matrix& w) {
    for (Index j = 0; j < w.cols(); ++j) evaluate_column(static_cast<std::uint64_t>(first_ + j), t, w.col(j));
  }

  void evaluate_column(std::uint64_t sample, double t, Eigen::Ref<Vector> w) {
    const Index d = w.size();
    if (t <= 0.0) {
      w.setZero();
      return;
    }
    double a = 0.0, b = T_;
    wa_.setZero();
    rng_.normals(sample, 1, 0, wb_.data(), d);
    wb_ *= std::sqrt(T_);
    std::uint64_t node = 1;
    for (int level = 0; level < brownian_tree_depth; ++level) {
      if (t >= b) break;
      const double mid = 0.5 * (a + b);
      rng_.normals(sample, node, 1, z_.data(), d);
      // The midpoint's bridge value, computed in place into whichever end it replaces.
      if (t < mid) {
        wb_ = 0.5 * (wa_ + wb_) + std::sqrt(0.25 * (b - a)) * z_;
        b = mid;
        node = 2 * node;
      } else {
        wa_ = 0.5 * (wa_ + wb_) + std::sqrt(0.25 * (b - a)) * z_;
        a = mid;
        node = 2 * node + 1;
      }
      if (t == a) break;
    }
    if (t >= b) {
      w = wb_;
    } else if (t == a) {
      w = wa_;
    } else {
      w = wa_ + ((t - a) / (b - a)) * (wb_ - wa_);
    }
  }

  CounterRng rng_;
  double T_;
  Index first_;
  Vector wa_, wb_, z_;
  double cached_t_;
  Matrix cached_w_, next_w_;
};

}  // namespace

std::unique_ptr<BrownianPath> make_brownian_path(NoiseKind kind, std::uint64_t seed, double T, Index first,
                                                 Index dim, Index cols) {
  if (kind == NoiseKind::independent) return std::make_unique<IndependentPath>(seed, first);
  return std::make_unique<BrownianTreePath>(seed, T, first, dim, cols);
}

}  // namespace scoresde
