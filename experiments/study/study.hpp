// A study: a grid of sampling runs (data x score x SDE x sampler configuration x steps x replicate seed),
// each scored by the sample-quality metrics against an exact reference, with one result row per run. The grid
// is resolved into a flat, deterministic list of runs, so that a study can be listed (--dry-run), resumed
// after a kill (rows already recorded are skipped), and rerun from its resolved configuration (study.ini)
// with the same deterministic columns. docs/studies.md describes the grid, the files and the pairing of runs.
#pragma once

#include <fmt/format.h>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/sde.hpp"
#include "models/gaussian_mixture.hpp"
#include "solvers/options.hpp"

namespace scoresde {

// The score "exact" (the data's exact score), and the `sampler` value of the exact-samples baseline's rows.
inline constexpr std::string_view exact_score = "exact";
inline constexpr std::string_view exact_samples_sampler = "exact";

// The grid. Lists are axes of the grid; single values apply to every run. The sampler's part is derived from
// sampler_option_table(): an entry whose study role is `axis` or `budget` is a list here (axes[key], its values
// as text, each checked by the entry), a `shared` entry is one value for every run (sampler_base). A new sampler
// option is therefore a study option, a results.csv column and a part of run labels without edits here.
struct StudySpec {
  std::vector<std::string> data{"eight_gaussians"};
  Index dim = 0;                                             // for `gaussian`; checked against mixture files
  std::vector<std::string> score{std::string(exact_score)};  // or checkpoints of scoresde train
  std::vector<std::string> sde{"vp", "ve"};
  SdeOptions sde_parameters;  // schedule, beta, sigma, T: shared by every SDE of the grid

  // The sampler axes and budgets by option key ("sampler", "predictor", "snr", "steps", "rtol", ...). An axis
  // missing here takes the study's default below, or else sampler_base's value; "atol" left empty pairs with
  // "rtol". Use axis() to read one.
  std::map<std::string, std::vector<std::string>> axes;
  SamplerOptions sampler_base;  // the shared options: noise, eps, denoise, langevin norm, ODE control, chunk, threads
  // Further sub-grids: each replaces some sampler axes or budgets of the grid above ("sampler" -> few-step samplers,
  // "time-grid" -> logsnr,karras, "steps" -> 5,...,50) and keeps the rest. A block may also replace the score list
  // ("score" -> a network) and the sample count ("samples" -> one count), so that a costly score runs on a smaller
  // grid beside the exact one. The study runs the union of the grid and its blocks (a run that two of them name runs
  // once). As text: "key=LIST; key=LIST | key=LIST; ..." (--blocks).
  std::vector<std::map<std::string, std::vector<std::string>>> blocks;

  int seeds = 3;  // replicate seeds first_seed, first_seed + 1, ...
  std::uint64_t first_seed = 0;
  Index samples = 10000;  // per run

  std::vector<std::string> metrics;  // empty: every metric (experiments/metrics/metrics.hpp) and model_nll
  Index reference_samples = 0;       // exact reference points per (data, seed); 0: as many as samples
  // path_error and path_error_max over the first min(path_samples, samples) samples of each run (0: all): an SDE
  // sampler's reference walks 16 times its steps, so this bounds what the metric adds to a study's time.
  Index path_samples = 2000;
  bool save_samples = true;  // keep each first-seed run's samples (2-D data only) for the report's plots

  // The default study: five samplers, 10 to 1000 steps, dopri5 at four tolerances, one Brownian path per seed; and
  // a block of few-step samplers (ddim, dpmpp_2m, dpmpp_3m, unipc, edm_heun) on logsnr and karras grids at 5 to 50
  // steps.
  StudySpec();

  // The values of a sampler axis or budget, in order.
  std::vector<std::string> axis(const std::string& key) const;
  // The grid itself and then one spec per block (this spec with the block's axes, score and samples in place of its
  // own, no blocks).
  std::vector<StudySpec> grids() const;
  // The scores of the grid and of its blocks, each once, in order of first appearance.
  std::vector<std::string> all_scores() const;
  // Sets an axis from numbers or names, written as the option's text.
  template <class T>
  void set_axis(const std::string& key, const std::vector<T>& values) {
    auto& texts = axes[key];
    texts.clear();
    for (const auto& v : values) texts.push_back(fmt::format("{}", v));
  }

  // Throws ConfigError naming the key and what is allowed (empty lists, unknown names, out-of-range values).
  void validate() const;
  // The resolved configuration as INI text with the command-line keys, and as JSON (same keys and values).
  std::string to_ini() const;
  nlohmann::ordered_json to_json() const;
  // The metric columns: `metrics`, or by default every metric of experiments/metrics/metrics.hpp and model_nll (the
  // negative log-likelihood of held-out exact data under the probability-flow ODE of the run's score).
  std::vector<std::string> resolved_metrics() const;
};

// The study's options, described once: its own (data, score, SDE list, seeds, samples, metrics, ...), the SDE
// parameters from sde_option_table() and the sampler's from sampler_option_table() by study role. `scoresde study`
// registers them from here; to_json and study.ini are written from here. Entries carry a group for --help: grid,
// sde, shared, evaluation.
const OptionTable<StudySpec>& study_option_table();

// One run of the grid.
struct StudyRun {
  std::string id;     // unique, readable, and a valid file name: "vp.euler_maruyama.n100.s0"
  std::string label;  // the sampler configuration without steps and seed: one line in a plot
  std::string data, score;
  SdeOptions sde;
  SamplerOptions sampler;      // complete, seed included
  Index samples = 0;           // the run's sample count: its grid's (or block's) --samples
  bool adaptive = false;       // steps do not apply
  bool exact_samples = false;  // the baseline: exact draws from the data, scored like a sampler's output
  int replicate = 0;
};

// The runs of the grid in a fixed order: first, per data set, sample count and seed, the exact-samples baseline (n
// exact draws scored against the reference: the floor a metric shows for perfect samples of this size), then the
// sampler runs. Runs of a block whose sample count is not the grid's carry ".size{n}" in their ids.
// Combinations that cannot run (ancestral on sub-VP, for one) are left
// out and described in `skipped`.
std::vector<StudyRun> expand_study(const StudySpec& spec, std::vector<std::string>* skipped = nullptr);

// One finished run: every CSV column, in order (null where a column does not apply).
using StudyRow = nlohmann::ordered_json;

// The row of a run before it runs: the columns that describe it (run, data, score, sde, sampler, ..., seed, n).
StudyRow describe_run(const StudyRun& run);

// The CSV header for a study with these metric names, and a row as a CSV line.
std::vector<std::string> study_columns(const std::vector<std::string>& metrics);
std::string csv_line(const StudyRow& row, const std::vector<std::string>& columns);

struct StudyProgress {
  std::function<void(const StudyRun& run, Index done, Index total, double elapsed, double left)> starting;
  std::function<void(const StudyRun& run, const StudyRow& row, Index done, Index total)> finished;
  // Asked before each run: true stops the study there, between runs, with every finished run recorded (run_study
  // returns the rows so far; --resume continues). `scoresde study` answers it from SIGINT and SIGTERM.
  std::function<bool()> stop_requested;
};

// Runs the study into `dir` (created if missing): results.csv, results.json, study.ini and, for 2-D data,
// samples/*.npy. With resume, rows already in dir/results.json are kept and their runs skipped; the study in
// dir must then be the same. Every finished run is recorded atomically before the next one starts. `command`
// is recorded in results.json. Returns the rows (fewer than the grid's when progress.stop_requested stopped it).
std::vector<StudyRow> run_study(const StudySpec& spec, const std::string& dir, bool resume, const std::string& command,
                                const StudyProgress& progress = {});

}  // namespace scoresde
