// run_study: the study's directory (opened, or resumed), one cell per run of the grid (the exact-samples baseline,
// or a sampler run scored by the metrics, model_nll and the exact-law metrics), the record rewritten after each, and
// the time left.
#include "experiments/study/study.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/metrics/path_error.hpp"
#include "experiments/study/study_internal.hpp"
#include "models/datasets.hpp"
#include "models/score_factory.hpp"
#include "solvers/driver.hpp"
#include "solvers/gaussian_law.hpp"
#include "solvers/likelihood.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace fs = std::filesystem;

namespace {

// Held-out exact points per model_nll.
constexpr Index model_nll_points = 1000;

// The exact reference set of (data, replicate seed) and the exact-samples baseline: independent of each other
// and of the samplers' draws, whose Philox keys are the seed itself.
std::uint64_t reference_seed(std::uint64_t seed) {
  return seed ^ 0x5eed5eed5eed5eedULL;
}
std::uint64_t baseline_seed(std::uint64_t seed) {
  return seed ^ 0xba5e1111ba5e1111ULL;
}

// ------------------------------------------------------------------------------------------------ the record

// The files of a study in its directory.
struct StudyFiles {
  std::string dir;  // as given
  fs::path out, json, csv, ini;
  explicit StudyFiles(const std::string& d)
      : dir(d), out(d), json(out / "results.json"), csv(out / "results.csv"), ini(out / "study.ini") {}
};

// What results.json holds: the study, its sessions (the build context of each start or resume) and the rows so far.
struct StudyRecord {
  std::string command;
  nlohmann::ordered_json study;                                      // the resolved configuration (StudySpec::to_json)
  nlohmann::ordered_json inputs = nlohmann::ordered_json::object();  // fingerprints of the files the study reads
  nlohmann::ordered_json sessions = nlohmann::ordered_json::array();
  std::vector<std::string> skipped, columns;
  std::vector<StudyRow> rows;

  // Writes results.json and results.csv, both atomically.
  void write(const StudyFiles& files) const {
    nlohmann::ordered_json j;
    j["command"] = command;
    j["context"] = sessions.front();
    j["sessions"] = sessions;
    j["study"] = study;
    j["inputs"] = inputs;
    j["skipped"] = skipped;
    j["columns"] = columns;
    j["rows"] = rows;
    std::string csv = fmt::format("{}\n", fmt::join(columns, ","));
    for (const auto& r : rows) csv += csv_line(r, columns) + "\n";
    // The JSON is the record --resume reads; the CSV is its table. Each is replaced whole, never appended to.
    write_text_atomically(files.json.string(), j.dump(1) + "\n");
    write_text_atomically(files.csv.string(), csv);
  }
};

// A new study's directory is created; with resume, an existing one's rows and sessions are read, and its study must
// be record.study but for threads (ConfigError naming the first key that differs; InputError for a file that is not
// a study's). Without resume an existing study is a ConfigError. Then this session's context is appended.
void open_study_directory(const StudyFiles& files, bool resume, int threads, StudyRecord& record) {
  std::error_code ec;
  if (fs::exists(files.json, ec)) {
    if (!resume)
      throw ConfigError(fmt::format(
          "--out = {}: already holds a study ({}); add --resume to continue it, or choose another directory", files.dir,
          files.json.string()));
    StudyResults previous = read_study_results(files.json.string());
    check_same_study(previous.study, record.study, files.dir, files.ini.string());
    record.rows = std::move(previous.rows);
    if (!previous.sessions.empty()) record.sessions = std::move(previous.sessions);
    // A killed session may have left the temporary file of a write it did not finish (results, samples).
    remove_stale_temporaries(files.out.string());
    remove_stale_temporaries((files.out / "samples").string());
  } else {
    fs::create_directories(files.out, ec);
    if (ec) throw ConfigError(fmt::format("--out = {}: cannot create the directory ({})", files.dir, ec.message()));
  }
  auto context = nlohmann::ordered_json::parse(build_context().dump());
  context["threads"] = threads;
  record.sessions.push_back(context);
}

// ------------------------------------------------------------------------------------------------ progress

// Cost of a run for the time-left estimate: score evaluations per sample, roughly.
double run_cost(const StudyRun& r) {
  if (r.exact_samples) return 1.0;
  if (r.adaptive) return 200.0;
  return static_cast<double>(evaluations_per_step(r.sampler)) * r.sampler.steps;
}

// The runs still to do, those finished since the start, and the time left: the elapsed time scaled by the cost
// still to do over the cost done.
class StudyClock {
 public:
  StudyClock(const std::vector<StudyRun>& runs, const std::set<std::string>& done) {
    for (const auto& r : runs)
      if (!done.count(r.id)) {
        total_cost_ += run_cost(r);
        ++total_;
      }
    started_ = std::chrono::steady_clock::now();
  }
  Index total() const { return total_; }
  Index finished() const { return finished_; }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count(); }
  // -1 until a run has finished.
  double left(double elapsed) const { return done_cost_ > 0 ? elapsed * (total_cost_ - done_cost_) / done_cost_ : -1; }
  void finished_run(const StudyRun& run) {
    done_cost_ += run_cost(run);
    ++finished_;
  }

 private:
  double total_cost_ = 0, done_cost_ = 0;
  Index total_ = 0, finished_ = 0;
  std::chrono::steady_clock::time_point started_;
};

// ------------------------------------------------------------------------------------------------ one cell

// The data of a run: a mixture (exact density, mixture metrics) or a generator such as two_moons (sample metrics).
struct RunData {
  const std::string& name;
  Index dim;                                       // --dim
  std::shared_ptr<const GaussianMixture> mixture;  // nullptr for a generator

  Matrix draw(std::uint64_t seed, Index count) const {
    if (!mixture) return load_training_data(name, count, seed, dim);
    Matrix x(mixture->dim(), count);
    mixture->sample(seed, 0, x);
    return x;
  }
};

// How many samples of dimension `dim` --save-samples keeps for the report's figures: all of 2-D data (scatter plots),
// the first 64 of square grey images of side 8 or more (image grids: Fashion-MNIST's 784), none otherwise.
Index kept_for_plots(Index dim) {
  if (dim == 2) return std::numeric_limits<Index>::max();
  const auto side = static_cast<Index>(std::lround(std::sqrt(static_cast<double>(dim))));
  return side >= 8 && side * side == dim ? 64 : 0;
}

// Runs the cells of a study, with what they share: the mixtures, the exact reference sets per (data, seed), the
// scores and the model_nll values per (data, score, SDE, seed).
class CellRunner {
 public:
  CellRunner(const StudySpec& spec, fs::path samples_dir)
      : spec_(spec),
        samples_dir_(std::move(samples_dir)),
        metric_names_(spec.resolved_metrics()),
        want_model_nll_(wants(model_nll_metric)),
        want_gaussian_law_(std::any_of(metric_names_.begin(), metric_names_.end(), is_gaussian_law_metric)),
        want_path_error_(wants(path_error_metric) || wants(path_error_max_metric)),
        reference_n_(spec.reference_samples > 0 ? spec.reference_samples : spec.samples) {}

  const std::vector<std::string>& metric_names() const { return metric_names_; }
  bool wants(const std::string& metric) const {
    return std::find(metric_names_.begin(), metric_names_.end(), metric) != metric_names_.end();
  }

  // The run's row, its columns in the order of `columns`.
  StudyRow run(const StudyRun& run, const std::vector<std::string>& columns) {
    auto& mixture = mixtures_[run.data];
    if (!mixture && has_exact_mixture(run.data)) mixture = load_data(run.data, spec_.dim);
    const RunData data{run.data, spec_.dim, mixture};
    const Matrix& reference = reference_set(run, data);

    StudyRow row = describe_run(run);
    const auto t0 = std::chrono::steady_clock::now();
    const MetricsOptions mo = metrics_options(run, data);
    const auto record_metrics = [&](ConstMatrixRef samples) {
      if (mo.metrics.empty()) return;  // only metrics the study computes itself (an empty list means every metric)
      for (const auto& [name, v] : evaluate_metrics(samples, reference, data.mixture.get(), mo)) {
        row[name] = v.value;
        row[name + "_se"] = v.std_error;
      }
    };
    if (run.exact_samples) {
      row["status"] = "ok";
      row["nfe"] = 0;
      row["nfe_max"] = 0;
      record_metrics(data.draw(baseline_seed(run.sampler.seed), run.samples));
    } else {
      sampler_cell(run, data, reference, row, record_metrics, !mo.metrics.empty());
    }
    row["wall_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Columns in the CSV order, whatever order they were filled in.
    StudyRow ordered;
    for (const auto& c : columns) ordered[c] = row.contains(c) ? row[c] : nullptr;
    return ordered;
  }

 private:
  // Under --save-samples, the first replicate's samples that the report's figures use (kept_for_plots).
  void keep_for_plots(const StudyRun& run, const fs::path& file, const Matrix& samples) const {
    const Index kept = kept_for_plots(samples.rows());
    if (spec_.save_samples && kept > 0 && run.replicate == 0)
      write_samples_npy(file.string(), samples.leftCols(std::min(samples.cols(), kept)));
  }

  // The exact reference set of (data, seed), drawn once; under --save-samples the first replicate's is kept (all of
  // 2-D data, the first 64 images of image data).
  const Matrix& reference_set(const StudyRun& run, const RunData& data) {
    auto& reference = references_[{run.data, run.sampler.seed}];
    if (reference.size() == 0) {
      reference = data.draw(reference_seed(run.sampler.seed), reference_n_);
      keep_for_plots(run, samples_dir_ / fmt::format("reference.{}.s{}.npy", id_part(run.data), run.sampler.seed),
                     reference);
    }
    return reference;
  }

  // The metrics of experiments/metrics/metrics.hpp the run's data allows (mixture metrics need a density).
  MetricsOptions metrics_options(const StudyRun& run, const RunData& data) const {
    MetricsOptions mo;
    for (const auto& name : metric_names_) {
      const auto& mixture_only = mixture_metric_names();
      const bool needs_mixture = std::find(mixture_only.begin(), mixture_only.end(), name) != mixture_only.end();
      if (!is_study_metric(name) && (data.mixture || !needs_mixture)) mo.metrics.push_back(name);
    }
    mo.seed = run.sampler.seed;
    mo.threads = run.sampler.threads;
    return mo;
  }

  // The score: exact, or a trained network that works in standardised units (docs/training.md): it samples
  // there, and its samples are mapped back to the data's units.
  std::shared_ptr<const ScoreSource> score_source(const StudyRun& run, const RunData& data) {
    auto& source = sources_[{run.data, run.score}];
    if (!source) source = is_exact_score(run.score) ? mixture_score(data.mixture) : score_file_source(run.score);
    return source;
  }

  // A sampler run: its samples in the data's units scored by record_metrics (and kept for the first replicate of 2-D
  // data), model_nll, and the exact-law metrics. A run whose exact law is known and that needs its samples for
  // nothing else (no sample metric, no plot) is not sampled: its NFE is the law's.
  void sampler_cell(const StudyRun& run, const RunData& data, const Matrix& reference, StudyRow& row,
                    const std::function<void(ConstMatrixRef)>& record_metrics, bool sample_metrics) {
    const auto sde = make_sde(run.sde);
    const auto source = score_source(run, data);
    const std::unique_ptr<ScoreModel> model = source->make(*sde);
    const ExactLaw* law = want_gaussian_law_ ? &exact_law(run, data, *sde, *model) : nullptr;
    if (law) {
      if (law->applies) {
        for (const auto& name : metric_names_)
          if (is_gaussian_law_metric(name)) {
            const double v = name == gaussian_w2_metric ? law->w2 : law->kl;
            row[name] = std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json();
            row[name + "_se"] = 0.0;  // exact: no sampling error
          }
      }
      if (!law->note.empty()) row["note"] = law->note;
    }
    const bool plotted = spec_.save_samples && kept_for_plots(model->dim()) > 0 && run.replicate == 0;
    if (law && law->applies && !sample_metrics && !plotted && !want_path_error_) {
      row["status"] = "ok";
      row["nfe"] = law->nfe;
      row["nfe_max"] = law->nfe;
    } else {
      sample_into(run, *sde, *model, *source, row, record_metrics);
    }
    if (want_model_nll_) {
      const MetricValue& nll = model_nll(run, *model, *sde, source->scaling(), reference);
      row[model_nll_metric] = nll.value;
      row[std::string(model_nll_metric) + "_se"] = nll.std_error;
    }
  }

  // The exact output law's metrics of a run, once per (data, SDE, sampler configuration): seeds, the noise source,
  // chunks and threads do not change the law.
  struct ExactLaw {
    bool applies = false;
    double w2 = 0, kl = 0, nfe = 0;
    std::string note;
  };
  const ExactLaw& exact_law(const StudyRun& run, const RunData& data, const Sde& sde, const ScoreModel& model) {
    SamplerOptions o = run.sampler;
    o.seed = 0;
    o.noise = NoiseKind::independent;
    o.chunk = SamplerOptions{}.chunk;
    o.threads = 1;
    const auto key = fmt::format("{}|{}|{}|{}", run.data, run.score, to_json(run.sde).dump(), to_json(o, sde).dump());
    auto it = exact_law_cache_.find(key);
    if (it != exact_law_cache_.end()) return it->second;
    ExactLaw law;
    if (!is_exact_score(run.score)) {
      law.note = "gaussian_w2, gaussian_kl: the exact law needs the exact score (--score exact)";
    } else if (!data.mixture || data.mixture->components() != 1) {
      law.note = fmt::format("gaussian_w2, gaussian_kl: --data {} is not a single Gaussian", run.data);
    } else if (const auto why = gaussian_law_not_applicable(run.sampler)) {
      law.note = fmt::format("gaussian_w2, gaussian_kl: not applicable: {}", *why);
    } else {
      try {
        const GaussianLaw g = gaussian_output_law(sde, model, run.sampler);
        const Vector m0 = data.mixture->means().col(0);
        const Matrix s0 = data.mixture->covariance(0);
        law.applies = true;
        law.w2 = gaussian_w2(g.mean, g.covariance, m0, s0);
        law.kl = gaussian_kl(g.mean, g.covariance, m0, s0);
        law.nfe = g.nfe;
        if (!std::isfinite(law.kl)) law.note = "gaussian_kl: infinite (the output's covariance is singular)";
      } catch (const NumericalError& e) {
        law.note = fmt::format("gaussian_w2, gaussian_kl: the exact law's probes turned non-finite: {}", e.what());
      } catch (const ConfigError& e) {
        law.note = fmt::format("gaussian_w2, gaussian_kl: not applicable: {}", e.what());
      }
    }
    return exact_law_cache_.emplace(key, std::move(law)).first->second;
  }

  void sample_into(const StudyRun& run, const Sde& sde, const ScoreModel& model, const ScoreSource& source,
                   StudyRow& row, const std::function<void(ConstMatrixRef)>& record_metrics) {
    try {
      auto report = sample(sde, model, run.sampler, run.samples);
      if (want_path_error_) path_error(run, sde, model, source.scaling(), report.samples, row);
      if (!is_exact_score(run.score)) report.samples = source.scaling().to_original(report.samples);
      row["status"] = "ok";
      row["nfe"] = report.nfe_mean();
      row["nfe_max"] = report.nfe_max();
      record_metrics(report.samples);
      keep_for_plots(run, samples_dir_ / (run.id + ".npy"), report.samples);
    } catch (const NumericalError& e) {
      // A diverging run is a result: recorded with where it diverged, and the study goes on.
      row["status"] = "diverged";
      row["failure"] = e.what();
    }
  }

  // path_error and path_error_max of the run's first path_n samples (--path-samples, at most the run's) in the model's
  // units against the reference solution from the same prior draws and Brownian path
  // (experiments/metrics/path_error.hpp), both mapped to the data's units. Sample i depends only on its index, so the
  // reference of the first path_n samples is a run of path_n samples. An ODE reference is computed once and shared by
  // the runs with the same grid ends, seed and chunk. Left empty where the path error does not apply (a Langevin
  // corrector, --noise independent for an SDE sampler) or the reference diverged.
  void path_error(const StudyRun& run, const Sde& sde, const ScoreModel& model, const DataScaling& scaling,
                  const Matrix& samples, StudyRow& row) {
    const auto kind = path_error_kind(run.sampler);
    if (!kind) return;
    const Index path_n = spec_.path_samples > 0 ? std::min(spec_.path_samples, run.samples) : run.samples;
    Matrix own;
    const Matrix* reference = &own;
    try {
      const std::string key = shared_reference_key(sde, run.sampler, path_n);
      if (key.empty()) {
        own = path_reference(sde, model, run.sampler, path_n);
      } else {
        Matrix& shared = path_references_[fmt::format("{}|{}|{}", run.data, run.score, key)];
        if (shared.size() == 0) shared = path_reference(sde, model, run.sampler, path_n);
        reference = &shared;
      }
    } catch (const NumericalError&) {
      return;
    }
    const Matrix first = samples.leftCols(path_n);
    const PathErrors e = is_exact_score(run.score)
                             ? path_errors(first, *reference)
                             : path_errors(scaling.to_original(first), scaling.to_original(*reference));
    row[path_error_metric] = e.rms.value;
    row[std::string(path_error_metric) + "_se"] = e.rms.std_error;
    row[path_error_max_metric] = e.max;
    row["path_kind"] = to_string(*kind);
  }

  // Once per (data, score, SDE, seed): held-out exact points (the reference set's first ones, never used
  // in training) through the probability-flow ODE of the score, exact divergence.
  const MetricValue& model_nll(const StudyRun& run, const ScoreModel& model, const Sde& sde, const DataScaling& scaling,
                               const Matrix& reference) {
    const auto key = fmt::format("{}|{}|{}|{}", run.data, run.score, sde.name(), run.sampler.seed);
    auto it = model_nll_cache_.find(key);
    if (it == model_nll_cache_.end()) {
      const Index m = std::min<Index>(model_nll_points, reference.cols());
      LikelihoodOptions lo;
      lo.seed = run.sampler.seed;
      lo.threads = run.sampler.threads;
      const auto result = model_log_likelihood(model, sde, scaling, reference.leftCols(m), lo);
      const auto& summary = result.summary;
      it = model_nll_cache_.emplace(key, MetricValue{summary.mean_nll, summary.nll_se}).first;
    }
    return it->second;
  }

  const StudySpec& spec_;
  fs::path samples_dir_;
  std::vector<std::string> metric_names_;
  bool want_model_nll_, want_gaussian_law_, want_path_error_;
  Index reference_n_;
  std::map<std::string, std::shared_ptr<const GaussianMixture>> mixtures_;
  std::map<std::pair<std::string, std::uint64_t>, Matrix> references_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const ScoreSource>> sources_;
  std::map<std::string, MetricValue> model_nll_cache_;
  std::map<std::string, ExactLaw> exact_law_cache_;
  std::map<std::string, Matrix> path_references_;  // shared ODE references, by data, score and shared_reference_key
};

}  // namespace

std::vector<StudyRow> run_study(const StudySpec& spec, const std::string& dir, bool resume, const std::string& command,
                                const StudyProgress& progress) {
  spec.validate();
  StudyRecord record;
  record.command = command;
  const auto runs = expand_study(spec, &record.skipped);
  if (std::all_of(runs.begin(), runs.end(), [](const StudyRun& r) { return r.exact_samples; }))
    throw ConfigError(fmt::format("the study grid has no runnable combination: {}", fmt::join(record.skipped, "; ")));

  const StudyFiles files(dir);
  record.study = spec.to_json();
  // The files the study reads (docs/reproducibility.md): one fingerprint per data file, per checkpoint and per
  // --time-grid file, in the order of their lists.
  for (const auto& d : spec.data)
    if (!data_source_file(d).empty()) record.inputs["data"].push_back(file_fingerprint(d));
  for (const auto& s : spec.all_scores())
    if (!is_exact_score(s)) record.inputs["score"].push_back(file_fingerprint(s));
  std::set<std::string> grid_files;  // the grid's and its blocks'
  for (const auto& grid : spec.grids())
    for (const auto& g : grid.axis("time-grid"))
      if (!enum_from_name<TimeGridKind>(g) && grid_files.insert(g).second)
        record.inputs["time-grid"].push_back(file_fingerprint(g));
  open_study_directory(files, resume, spec.sampler_base.threads, record);
  std::set<std::string> done;
  for (const auto& r : record.rows) done.insert(r["run"].get<std::string>());

  CellRunner cells(spec, files.out / "samples");
  record.columns = study_columns(cells.metric_names());
  if (spec.save_samples) {
    std::error_code ec;
    fs::create_directories(files.out / "samples", ec);
  }
  write_text_atomically(files.ini.string(), spec.to_ini());
  record.write(files);

  StudyClock clock(runs, done);
  for (const auto& run : runs) {
    if (done.count(run.id)) continue;
    if (progress.stop_requested && progress.stop_requested()) break;
    const double elapsed = clock.elapsed();
    if (progress.starting) progress.starting(run, clock.finished(), clock.total(), elapsed, clock.left(elapsed));
    record.rows.push_back(cells.run(run, record.columns));
    record.write(files);
    clock.finished_run(run);
    if (progress.finished) progress.finished(run, record.rows.back(), clock.finished(), clock.total());
  }
  return record.rows;
}

}  // namespace scoresde
