// A study: a grid of sampling runs (data x score x SDE x sampler configuration x steps x replicate seed),
// each scored by the sample-quality metrics against an exact reference, with one result row per run. The grid
// is resolved into a flat, deterministic list of runs, so that a study can be listed (--dry-run), resumed
// after a kill (rows already recorded are skipped), and rerun from its resolved configuration (study.ini)
// with the same deterministic columns. docs/studies.md describes the grid, the files and the pairing of runs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/sde.hpp"
#include "models/gaussian_mixture.hpp"
#include "solvers/options.hpp"

namespace scoresde {

// The grid. Lists are axes of the grid; single values apply to every run.
struct StudySpec {
  std::vector<std::string> data{"eight_gaussians"};
  Index dim = 0;                            // for `gaussian`; checked against mixture files
  std::vector<std::string> score{"exact"};  // "exact" (the data's exact score) or checkpoints of scoresde train
  std::vector<std::string> sde{"vp", "ve"};
  SdeOptions sde_parameters;  // schedule, beta, sigma, T: shared by every SDE of the grid

  std::vector<std::string> sampler{"euler_maruyama", "reverse_diffusion", "ancestral", "pc", "ode"};
  std::vector<std::string> predictor{"reverse_diffusion"};  // pc only
  std::vector<std::string> corrector{"langevin"};           // pc only
  std::vector<double> snr{0.16};                            // pc only
  std::vector<int> corrector_steps{1};                      // pc only
  std::vector<std::string> ode_method{"rk4", "dopri5"};     // ode only
  std::vector<double> rtol{1e-2, 1e-3, 1e-4, 1e-5};         // adaptive ODE methods only
  std::vector<double> atol;                                 // paired with rtol; empty: equal to rtol
  std::vector<int> steps{10, 30, 100, 300, 1000};           // fixed-step samplers only
  int seeds = 3;                                            // replicate seeds first_seed, first_seed + 1, ...
  std::uint64_t first_seed = 0;
  Index samples = 10000;  // per run

  SamplerOptions sampler_base;  // noise, eps, denoise, langevin norm, ODE control, chunk, threads

  std::vector<std::string> metrics;  // empty: every metric (experiments/metrics/metrics.hpp) and model_nll
  Index reference_samples = 0;       // exact reference points per (data, seed); 0: as many as samples
  bool save_samples = true;  // keep each first-seed run's samples (2-D data only) for the report's plots

  StudySpec() { sampler_base.noise = NoiseKind::brownian_tree; }

  // Throws ConfigError naming the key and what is allowed (empty lists, unknown names, out-of-range values).
  void validate() const;
  // The resolved configuration as INI text with the command-line keys, and as JSON (same keys and values).
  std::string to_ini() const;
  nlohmann::ordered_json to_json() const;
  // The metric columns: `metrics`, or by default every metric of experiments/metrics/metrics.hpp and model_nll (the
  // negative log-likelihood of held-out exact data under the probability-flow ODE of the run's score).
  std::vector<std::string> resolved_metrics() const;
};

// One run of the grid.
struct StudyRun {
  std::string id;     // unique, readable, and a valid file name: "vp.euler_maruyama.n100.s0"
  std::string label;  // the sampler configuration without steps and seed: one line in a plot
  std::string data, score;
  SdeOptions sde;
  SamplerOptions sampler;  // complete, seed included
  bool adaptive = false;   // steps do not apply
  bool exact_samples = false;  // the baseline: exact draws from the data, scored like a sampler's output
  int replicate = 0;
};

// The runs of the grid in a fixed order: first, per data set and seed, the exact-samples baseline (n exact draws
// scored against the reference: the floor a metric shows for perfect samples of this size), then the sampler runs.
// Combinations that cannot run (ancestral on sub-VP, for one) are left
// out and described in `skipped`.
std::vector<StudyRun> expand_study(const StudySpec& spec, std::vector<std::string>* skipped = nullptr);

// One finished run: every CSV column, in order (null where a column does not apply).
using StudyRow = nlohmann::ordered_json;

// The row of a run before it runs: the columns that describe it (run, data, score, sde, sampler, ..., seed, n).
StudyRow describe_run(const StudyRun& run, Index n);

// The CSV header for a study with these metric names, and a row as a CSV line.
std::vector<std::string> study_columns(const std::vector<std::string>& metrics);
std::string csv_line(const StudyRow& row, const std::vector<std::string>& columns);

struct StudyProgress {
  std::function<void(const StudyRun& run, Index done, Index total, double elapsed, double left)> starting;
  std::function<void(const StudyRun& run, const StudyRow& row, Index done, Index total)> finished;
};

// Runs the study into `dir` (created if missing): results.csv, results.json, study.ini and, for 2-D data,
// samples/*.npy. With resume, rows already in dir/results.json are kept and their runs skipped; the study in
// dir must then be the same. Every finished run is recorded atomically before the next one starts. `command`
// is recorded in results.json. Returns the rows.
std::vector<StudyRow> run_study(const StudySpec& spec, const std::string& dir, bool resume,
                                const std::string& command, const StudyProgress& progress = {});

}  // namespace scoresde
