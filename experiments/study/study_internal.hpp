// What the grid (study.cpp) and the runs (run_study.cpp) share; not part of the study's interface.
#pragma once

#include <memory>
#include <string>

#include "experiments/study/study.hpp"
#include "models/checkpoint.hpp"
#include "models/score_factory.hpp"

namespace scoresde {

// The metric the study computes itself: the mean negative log-likelihood (nats) of held-out data points under
// the probability-flow ODE of the run's score (docs/likelihood.md), a property of the score, not the sampler.
inline constexpr const char* model_nll_metric = "model_nll";

// The metrics of the exact output law on Gaussian data (solvers/gaussian_law.hpp), which the study computes itself,
// without sampling error: the squared W2 distance and the KL divergence from the run's exact output law to p_0
// (experiments/metrics/metrics.hpp: gaussian_w2, gaussian_kl), each with standard error 0. They need a single Gaussian
// as data and the exact score; other runs get an empty cell and a note.
inline constexpr const char* gaussian_w2_metric = "gaussian_w2";
inline constexpr const char* gaussian_kl_metric = "gaussian_kl";

// True for the metrics the study computes itself rather than from its samples by evaluate_metrics: model_nll,
// gaussian_w2 and gaussian_kl, and path_error and path_error_max (experiments/metrics/path_error.hpp), which need
// the run's sampler and score, not only its samples.
bool is_study_metric(const std::string& name);
bool is_gaussian_law_metric(const std::string& name);

// True when `data` is a single Gaussian (gaussian, or a mixture file with one component): the exact law applies.
bool is_single_gaussian(const std::string& data, Index dim);

// A readable file-name fragment: files (.json, .pt, .ckpt, .npz, .npy) by their stem, characters outside [A-Za-z0-9_-]
// dropped.
std::string id_part(const std::string& text);

// True for --score exact (the data's exact score); otherwise --score names a checkpoint.
bool is_exact_score(const std::string& score);

// Checkpoints named by --score, read once per process. ConfigError for a file that is not a checkpoint,
// InputError "--score: FILE: problem" for one that cannot be read.
std::shared_ptr<const Checkpoint> score_checkpoint(const std::string& path);

// The score a --score file names, opened once per process: a checkpoint (score_checkpoint) or a TorchScript
// module FILE.pt (models/torchscript_score.hpp; InputError "--score: FILE: problem").
std::shared_ptr<const ScoreSource> score_file_source(const std::string& path);

// What --resume continues from: a study's results.json.
struct StudyResults {
  nlohmann::ordered_json study;     // the resolved configuration the study ran with (an object)
  nlohmann::ordered_json sessions;  // the build context of each start or resume (an array, empty when absent)
  std::vector<StudyRow> rows;       // the finished runs, each an object with its "run" id
};
// Reads and checks results.json: InputError naming the file when it cannot be read, is not JSON, or its "study" is
// not an object, its "rows" not an array of objects with a string "run", or its "sessions" (optional) not an array.
StudyResults read_study_results(const std::string& path);
// ConfigError naming the first key in which the study `now` differs from `before` (threads aside: a resumed study
// may use another count), for --resume in `dir`, whose study.ini `ini` resumes it.
void check_same_study(const nlohmann::ordered_json& before, const nlohmann::ordered_json& now, const std::string& dir,
                      const std::string& ini);

}  // namespace scoresde
