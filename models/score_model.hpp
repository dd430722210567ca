// The score-model interface: grad_x log p_t(x), evaluated on batches. States are d x n matrices (one column per
// sample) with one time per column; a model is called once per batch, so a virtual call costs nothing next to the
// work it dispatches. Every evaluation is counted.
#pragma once

#include <atomic>
#include <string>

#include "core/types.hpp"

namespace scoresde {

class ScoreModel {
 public:
  virtual ~ScoreModel() = default;
  virtual Index dim() const = 0;
  virtual std::string describe() const = 0;

  // out.col(j) = score(x.col(j), t(j)). Column j of the result depends only on column j of x and t(j).
  // Thread-safe: a model may be evaluated from several threads at once.
  void score(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const {
    calls_.fetch_add(1, std::memory_order_relaxed);
    columns_.fetch_add(x.cols(), std::memory_order_relaxed);
    evaluate(x, t, out);
  }

  // The score together with its divergence, the trace of the Jacobian d score / d x (the Laplacian of log p_t), per
  // column: what the probability-flow likelihood integrates (Song et al. 2021, eq. 39). Only models for which
  // has_exact_divergence() is true implement it; counts as one evaluation.
  virtual bool has_exact_divergence() const { return false; }
  void score_and_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, VectorRef divergence) const {
    calls_.fetch_add(1, std::memory_order_relaxed);
    columns_.fetch_add(x.cols(), std::memory_order_relaxed);
    evaluate_divergence(x, t, out, divergence);
  }

  // The score together with the Jacobian-vector products jv.col(j) = J_j v.col(j), J_j = d score / d x at column j:
  // what Hutchinson's trace estimator needs (v^T J v). Only models with has_jvp(); counts as one evaluation.
  virtual bool has_jvp() const { return false; }
  void score_and_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out, MatrixRef jv) const {
    calls_.fetch_add(1, std::memory_order_relaxed);
    columns_.fetch_add(x.cols(), std::memory_order_relaxed);
    evaluate_jvp(x, t, v, out, jv);
  }

  // Batch calls and single-column evaluations made so far.
  long long calls() const { return calls_.load(std::memory_order_relaxed); }
  long long columns() const { return columns_.load(std::memory_order_relaxed); }

 protected:
  virtual void evaluate(ConstMatrixRef x, ConstVectorRef t, MatrixRef out) const = 0;
  // Defaults throw ConfigError naming the model; override together with has_exact_divergence() / has_jvp().
  virtual void evaluate_divergence(ConstMatrixRef x, ConstVectorRef t, MatrixRef out, VectorRef divergence) const;
  virtual void evaluate_jvp(ConstMatrixRef x, ConstVectorRef t, ConstMatrixRef v, MatrixRef out,
                            MatrixRef jv) const;

 private:
  mutable std::atomic<long long> calls_{0};
  mutable std::atomic<long long> columns_{0};
};

}  // namespace scoresde
