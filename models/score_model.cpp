#include "models/score_model.hpp"

#include "core/errors.hpp"

namespace scoresde {

void ScoreModel::evaluate_divergence(ConstMatrixRef, ConstVectorRef, MatrixRef, VectorRef) const {
  throw ConfigError("the score model '" + describe() +
                    "' has no exact divergence; use --divergence hutchinson");
}

void ScoreModel::evaluate_jvp(ConstMatrixRef, ConstVectorRef, ConstMatrixRef, MatrixRef, MatrixRef) const {
  throw ConfigError("the score model '" + describe() + "' provides no Jacobian-vector products");
}

}  // namespace scoresde
