// Langevin correctors (Song et al. 2021, Algorithms 4 and 5; Song & Ermon 2019, Algorithm 1). At fixed t_k,
// `corrector_steps` times:
//
//   x <- x + eps s(x, t_k) + sqrt(2 eps) z,     z ~ N(0, I) keyed by (sample, k, iteration)
//
// langevin  eps = 2 a (r |z| / |s|)^2, a = alpha_t^2 / alpha_{t_next}^2 (= 1 - beta_i) for vp and subvp, 1
// for ve.
//           The norms follow --langevin-norm (solvers/options.hpp): averaged over the chunk (default; the
//           reference code averages over its whole batch), or per sample. Per sample, |z|^2 is replaced by
//           its mean d: a step computed from the very z the move then adds makes the injected noise sqrt(2 c)
//           |z| z, whose second moment is (d + 2) / d times too large.
// ald       eps = 2 a (r sigma_t)^2 with sigma_t the perturbation kernel's std: annealed Langevin dynamics,
// the
//           step set by the noise level alone (the reference code's AnnealedLangevinDynamics).
//
// Correctors have no order in h: they are MCMC moves whose stationary law is p_t up to O(eps).
// One score evaluation per iteration.
#include <algorithm>
#include <cmath>

#include "solvers/registry.hpp"

namespace scoresde {
namespace {

// The mean of the column norms |v_j|, vectorised across columns in two dimensions, the common case.
double mean_column_norm(const Matrix& v) {
  if (v.rows() == 2) {
    const Eigen::Map<const Eigen::Array<double, 2, Eigen::Dynamic>> m(v.data(), 2, v.cols());
    return (m.row(0).square() + m.row(1).square()).sqrt().mean();
  }
  return v.colwise().norm().mean();
}

double step_scale(const StepContext& c, double t, double t_next) {
  if (c.sde.options().kind == SdeKind::ve) return 1.0;
  const double a = c.sde.transition(t_next, t).a;
  return a * a;
}

class Langevin final : public Corrector {
 public:
  Langevin(int steps, double snr, LangevinNorm norm) : steps_(steps), snr_(snr), norm_(norm) {}
  const StepperInfo& info() const override {
    static const StepperInfo i{"langevin",
                               "x + eps s + sqrt(2 eps) z, eps = 2 a (r |z| / |s|)^2",
                               "Song et al. 2021, Algorithm 5",
                               0.0,
                               0.0,
                               1,
                               false};
    return i;
  }

  void correct(StepContext& c, Matrix& x, Index k, double t, double t_next) const override {
    const double a = step_scale(c, t, t_next);
    for (int i = 0; i < steps_; ++i) {
      c.score(x, t, c.score_buf);
      c.corrector_noise.normal_columns(static_cast<std::uint64_t>(c.first_sample), static_cast<std::uint64_t>(k),
                                       static_cast<std::uint64_t>(i), c.noise_buf);
      if (norm_ == LangevinNorm::chunk) {
        const double z = mean_column_norm(c.noise_buf);
        const double s = mean_column_norm(c.score_buf);
        const double eps = 2.0 * a * (snr_ * z / s) * (snr_ * z / s);
        x += eps * c.score_buf + std::sqrt(2.0 * eps) * c.noise_buf;
        continue;
      }
      const double noise_norm2 = static_cast<double>(x.rows());  // E|z|^2 = d
      for (Index j = 0; j < x.cols(); ++j) {
        const double ratio = noise_norm2 / c.score_buf.col(j).squaredNorm();
        const double eps = 2.0 * a * snr_ * snr_ * ratio;
        x.col(j) += eps * c.score_buf.col(j) + std::sqrt(2.0 * eps) * c.noise_buf.col(j);
      }
    }
  }

 private:
  int steps_;
  double snr_;
  LangevinNorm norm_;
};

class AnnealedLangevin final : public Corrector {
 public:
  AnnealedLangevin(int steps, double snr) : steps_(steps), snr_(snr) {}
  const StepperInfo& info() const override {
    static const StepperInfo i{"ald",
                               "x + eps s + sqrt(2 eps) z, eps = 2 a (r sigma_t)^2",
                               "Song & Ermon 2019, Algorithm 1; Song et al. 2021, App. G",
                               0.0,
                               0.0,
                               1,
                               false};
    return i;
  }

  void correct(StepContext& c, Matrix& x, Index k, double t, double t_next) const override {
    const double sigma = c.sde.sigma(t);
    const double eps = 2.0 * step_scale(c, t, t_next) * snr_ * snr_ * sigma * sigma;
    for (int i = 0; i < steps_; ++i) {
      c.score(x, t, c.score_buf);
      c.corrector_noise.normal_columns(static_cast<std::uint64_t>(c.first_sample), static_cast<std::uint64_t>(k),
                                       static_cast<std::uint64_t>(i), c.noise_buf);
      x += eps * c.score_buf + std::sqrt(2.0 * eps) * c.noise_buf;
    }
  }

 private:
  int steps_;
  double snr_;
};

}  // namespace

std::unique_ptr<Corrector> make_langevin(const SamplerOptions& o) {
  return std::make_unique<Langevin>(o.corrector_steps, o.snr, o.langevin_norm);
}

std::unique_ptr<Corrector> make_annealed_langevin(const SamplerOptions& o) {
  return std::make_unique<AnnealedLangevin>(o.corrector_steps, o.snr);
}

}  // namespace scoresde
