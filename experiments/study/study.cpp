#include "experiments/study/study.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/npy.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#include "models/score_factory.hpp"
#include "solvers/likelihood.hpp"
#include "solvers/driver.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace fs = std::filesystem;

namespace {

template <class T>
std::string join(const std::vector<T>& values) {
  std::vector<std::string> parts;
  for (const auto& v : values) parts.push_back(fmt::format("{}", v));
  return fmt::format("{}", fmt::join(parts, ","));
}

bool contains(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

void require_nonempty(bool nonempty, const std::string& key, const std::string& allowed) {
  if (!nonempty) throw ConfigError(fmt::format("--{}: the list is empty; give {}", key, allowed));
}

void require_names(const std::vector<std::string>& values, const std::vector<std::string>& allowed,
                   const std::string& key) {
  require_nonempty(!values.empty(), key, fmt::format("one or more of {}", fmt::join(allowed, ", ")));
  for (const auto& v : values)
    if (!contains(allowed, v))
      throw ConfigError(fmt::format("--{} = {}: unknown; choose from {}", key, v, fmt::join(allowed, ", ")));
}

// A readable file-name fragment: data files by their stem, characters outside [A-Za-z0-9_-] dropped.
std::string id_part(const std::string& text) {
  std::string stem = text;
  if (stem.size() > 5 && stem.ends_with(".json")) stem = fs::path(stem).stem().string();
  std::string out;
  for (char c : stem)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') out += c;
  return out.empty() ? "x" : out;
}

bool is_exact_score(const std::string& score) { return score == "exact"; }

// A data set the study can draw from: a built-in set or a mixture file (not a file of fixed points).
bool can_draw(const std::string& data) {
  const auto names = training_data_names();
  return has_exact_mixture(data) || std::find(names.begin(), names.end(), data) != names.end();
}

// Checkpoints named by --score, read once per process.
std::shared_ptr<const Checkpoint> score_checkpoint(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Checkpoint>> cache;
  const std::lock_guard lock(mutex);
  auto& entry = cache[path];
  if (!entry) {
    if (!is_checkpoint_file(path))
      throw ConfigError(fmt::format(
          "--score = {}: not a scoresde checkpoint; give exact, or a model written by scoresde train", path));
    try {
      entry = std::make_shared<const Checkpoint>(load_checkpoint(path));
    } catch (const InputError& e) {
      throw InputError(fmt::format("--score: {}", e.what()));
    }
  }
  return entry;
}

// The metric the study computes itself: the mean negative log-likelihood (nats) of held-out data points under
// the probability-flow ODE of the run's score (docs/likelihood.md), a property of the score, not the sampler.
constexpr const char* model_nll_metric = "model_nll";
constexpr Index model_nll_points = 1000;

std::string sde_name(const SdeOptions& o) {
  return to_string(o.kind);
}

}  // namespace

void StudySpec::validate() const {
  require_nonempty(!data.empty(), "data", "eight_gaussians, gaussian or a mixture FILE.json");
  require_nonempty(!score.empty(), "score", "exact and/or checkpoints written by scoresde train");
  require_names(sde, sde_names(), "sde");
  require_names(sampler, sampler_names(), "sampler");
  if (contains(sampler, "pc")) {
    auto predictors = predictor_names();
    predictors.push_back("none");
    auto correctors = corrector_names();
    correctors.push_back("none");
    require_names(predictor, predictors, "predictor");
    require_names(corrector, correctors, "corrector");
    require_nonempty(!snr.empty(), "snr", "one or more numbers >= 0");
    for (double r : snr) require(r >= 0 && std::isfinite(r), "--snr", fmt::format("{}", r), "must be >= 0");
    require_nonempty(!corrector_steps.empty(), "corrector-steps", "one or more integers >= 1");
    for (int k : corrector_steps)
      require(k >= 1, "--corrector-steps", std::to_string(k), "must be an integer >= 1");
  }
  if (contains(sampler, "ode")) require_names(ode_method, ode_method_names(), "ode-method");
  require_nonempty(!steps.empty(), "steps", "one or more integers >= 1");
  for (int n : steps) require(n >= 1, "--steps", std::to_string(n), "must be an integer >= 1");
  require_nonempty(!rtol.empty(), "rtol", "one or more numbers > 0");
  for (double r : rtol) require(r > 0 && std::isfinite(r), "--rtol", fmt::format("{}", r), "must be > 0");
  for (double a : atol) require(a > 0 && std::isfinite(a), "--atol", fmt::format("{}", a), "must be > 0");
  if (!atol.empty() && atol.size() != rtol.size())
    throw ConfigError(fmt::format(
        "--atol = {}: give one value per --rtol value ({} of them), or leave --atol out to use --rtol's",
        join(atol), rtol.size()));
  require(seeds >= 1, "--seeds", std::to_string(seeds), "must be an integer >= 1 (replicates per cell)");
  require(samples >= 2, "-n/--samples", std::to_string(samples), "must be >= 2");
  require(reference_samples == 0 || reference_samples >= 2, "--reference-n",
          std::to_string(reference_samples), "must be >= 2, or 0 for as many as -n");
  sde_parameters.validate();
  MetricsOptions m;
  for (const auto& name : metrics)
    if (name != model_nll_metric) m.metrics.push_back(name);
  m.validate();
  for (const auto& name : data) {
    const bool exact = has_exact_mixture(name);
    Index data_dim = 0;
    if (exact) {
      data_dim = load_data(name, dim)->dim();
    } else {
      if (!can_draw(name))
        throw ConfigError(fmt::format("--data = {}: a study draws its data; give a built-in set ({}) or a mixture "
                                      "FILE.json",
                                      name, fmt::join(training_data_names(), ", ")));
      data_dim = load_training_data(name, 2, 0, dim).rows();
    }
    for (const auto& s : score) {
      if (is_exact_score(s)) {
        if (!exact)
          throw ConfigError(fmt::format("--score = exact: --data {} has no closed-form density, so no exact score; "
                                        "give a model trained on it (scoresde train --data {} --out MODEL.ckpt)",
                                        name, name));
        continue;
      }
      const auto model = score_checkpoint(s);
      if (model->architecture.dim != data_dim)
        throw ConfigError(fmt::format("--score = {}: the model is {}-dimensional, --data {} is {}-dimensional", s,
                                      model->architecture.dim, name, data_dim));
    }
    const auto mixture_only = mixture_metric_names();
    if (!exact)
      for (const auto& metric : metrics)
        if (std::find(mixture_only.begin(), mixture_only.end(), metric) != mixture_only.end())
          throw ConfigError(fmt::format("--metrics = {}: needs data with a closed-form density; --data {} has none",
                                        metric, name));
  }
}

nlohmann::ordered_json StudySpec::to_json() const {
  nlohmann::ordered_json j;
  j["data"] = join(data);
  j["dim"] = dim;
  j["score"] = join(score);
  j["sde"] = join(sde);
  j["schedule"] = to_string(sde_parameters.schedule);
  j["beta-min"] = sde_parameters.beta_min;
  j["beta-max"] = sde_parameters.beta_max;
  j["cosine-s"] = sde_parameters.cosine_s;
  j["sigma-min"] = sde_parameters.sigma_min;
  j["sigma-max"] = sde_parameters.sigma_max;
  if (sde_parameters.T) j["T"] = *sde_parameters.T;
  j["sampler"] = join(sampler);
  j["predictor"] = join(predictor);
  j["corrector"] = join(corrector);
  j["snr"] = join(snr);
  j["corrector-steps"] = join(corrector_steps);
  j["langevin-norm"] = to_string(sampler_base.langevin_norm);
  j["ode-method"] = join(ode_method);
  j["rtol"] = join(rtol);
  j["atol"] = join(atol.empty() ? rtol : atol);
  j["ode-control"] = to_string(sampler_base.ode_control);
  j["steps"] = join(steps);
  if (sampler_base.eps) j["eps"] = *sampler_base.eps;
  j["denoise"] = sampler_base.denoise ? "on" : "off";
  j["noise"] = to_string(sampler_base.noise);
  j["chunk"] = sampler_base.chunk;
  j["seeds"] = seeds;
  j["seed"] = first_seed;
  j["samples"] = samples;
  j["metrics"] = join(resolved_metrics());
  j["reference-n"] = reference_samples;
  j["save-samples"] = save_samples ? "on" : "off";
  j["threads"] = sampler_base.threads;
  return j;
}

std::string StudySpec::to_ini() const {
  std::string text =
      "# scoresde study: the resolved configuration. Rerun with\n"
      "#   scoresde study --config study.ini --out NEW_DIR\n"
      "# (the command line wins over this file; results do not depend on threads).\n";
  const auto resolved = to_json();
  for (const auto& [key, value] : resolved.items())
    text += fmt::format("{} = {}\n", key, value.is_string() ? value.get<std::string>() : value.dump());
  return text;
}

std::vector<std::string> StudySpec::resolved_metrics() const {
  if (!metrics.empty()) return metrics;
  auto all = metric_names();
  all.push_back(model_nll_metric);
  return all;
}

std::vector<StudyRun> expand_study(const StudySpec& spec, std::vector<std::string>* skipped) {
  std::vector<StudyRun> runs;
  std::set<std::string> ids;
  const auto atol = spec.atol.empty() ? spec.rtol : spec.atol;
  for (const auto& data : spec.data)
    for (int r = 0; r < spec.seeds; ++r) {
      if (!can_draw(data)) continue;
      StudyRun run;
      run.data = data;
      run.score = "-";
      run.label = "exact samples";
      run.exact_samples = true;
      run.replicate = r;
      run.sampler = spec.sampler_base;
      run.sampler.sampler = "exact";
      run.sampler.seed = spec.first_seed + static_cast<std::uint64_t>(r);
      run.id = fmt::format("{}exact.s{}", spec.data.size() > 1 ? id_part(data) + "." : "", run.sampler.seed);
      ids.insert(run.id);
      runs.push_back(std::move(run));
    }
  for (const auto& data : spec.data)
    for (const auto& score : spec.score)
      for (const auto& sde_text : spec.sde) {
        SdeOptions so = spec.sde_parameters;
        so.kind = sde_kind_from_string(sde_text);
        if (!is_exact_score(score)) {
          // A trained model brings its SDE: it runs under that SDE only, with the parameters it was trained with.
          const auto model = score_checkpoint(score);
          if (model->sde.kind != so.kind) {
            if (skipped)
              skipped->push_back(fmt::format("{} under {}: the model was trained under {}", score, sde_text,
                                             to_string(model->sde.kind)));
            continue;
          }
          so = model->sde;
        }
        const auto sde = make_sde(so);
        // One entry per sampler configuration; the steps (or tolerances) and seeds are the inner axes.
        struct Config {
          SamplerOptions o;
          std::string label, id;
          bool adaptive;
        };
        std::vector<Config> configs;
        for (const auto& name : spec.sampler) {
          SamplerOptions o = spec.sampler_base;
          o.sampler = name;
          if (name == "pc") {
            for (const auto& p : spec.predictor)
              for (const auto& c : spec.corrector)
                for (double r : (c == "none" ? std::vector<double>{spec.snr.front()} : spec.snr))
                  for (int k : (c == "none" ? std::vector<int>{1} : spec.corrector_steps)) {
                    o.predictor = p;
                    o.corrector = c;
                    o.snr = r;
                    o.corrector_steps = k;
                    std::string label = fmt::format("pc {}+{}", p, c);
                    std::string id = fmt::format("pc_{}_{}", p, c);
                    if (c != "none") {
                      label += fmt::format(" snr {}", r);
                      id += fmt::format("_snr{}", r);
                      if (k > 1) {
                        label += fmt::format(" x{}", k);
                        id += fmt::format("_x{}", k);
                      }
                    }
                    configs.push_back({o, label, id, false});
                  }
          } else if (name == "ode") {
            for (const auto& m : spec.ode_method) {
              o.ode_method = m;
              const bool adaptive = std::any_of(ode_method_registry().begin(), ode_method_registry().end(),
                                                [&](const auto& e) { return e.name == m && e.adaptive; });
              configs.push_back({o, "ode " + m, "ode_" + m, adaptive});
            }
          } else {
            configs.push_back({o, name, name, false});
          }
        }
        for (const auto& c : configs) {
          try {
            c.o.validate(*sde);
          } catch (const ConfigError& e) {
            if (skipped) skipped->push_back(fmt::format("{} {} ({}): {}", data, sde_text, c.label, e.what()));
            continue;
          }
          const std::size_t points = c.adaptive ? spec.rtol.size() : spec.steps.size();
          for (std::size_t i = 0; i < points; ++i)
            for (int r = 0; r < spec.seeds; ++r) {
              StudyRun run;
              run.data = data;
              run.score = score;
              run.sde = so;
              run.sampler = c.o;
              run.adaptive = c.adaptive;
              run.label = c.label;
              run.replicate = r;
              run.sampler.seed = spec.first_seed + static_cast<std::uint64_t>(r);
              std::string point;
              if (c.adaptive) {
                run.sampler.rtol = spec.rtol[i];
                run.sampler.atol = atol[i];
                point = fmt::format("tol{}", spec.rtol[i]);
                if (atol[i] != spec.rtol[i]) point += fmt::format("_atol{}", atol[i]);
              } else {
                run.sampler.steps = spec.steps[i];
                point = fmt::format("n{}", spec.steps[i]);
              }
              run.id = fmt::format("{}{}{}.{}.{}.s{}", spec.data.size() > 1 ? id_part(data) + "." : "",
                                   spec.score.size() > 1 ? id_part(score) + "." : "", sde_text, c.id, point,
                                   run.sampler.seed);
              if (!ids.insert(run.id).second)
                throw ConfigError(
                    fmt::format("the grid names run {} twice: remove repeated list entries", run.id));
              runs.push_back(std::move(run));
            }
        }
      }
  return runs;
}

std::vector<std::string> study_columns(const std::vector<std::string>& metrics) {
  std::vector<std::string> columns{"run",        "data",      "score",     "sde",  "sampler",
                                   "label",      "predictor", "corrector", "snr",  "corrector_steps",
                                   "ode_method", "steps",     "rtol",      "atol", "noise",
                                   "seed",       "n",         "status",    "nfe",  "nfe_max"};
  for (const auto& m : metrics) {
    columns.push_back(m);
    columns.push_back(m + "_se");
  }
  columns.push_back("wall_s");
  columns.push_back("failure");
  return columns;
}

std::string csv_line(const StudyRow& row, const std::vector<std::string>& columns) {
  std::string line;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (i) line += ',';
    const auto it = row.find(columns[i]);
    if (it == row.end() || it->is_null()) continue;
    std::string cell;
    if (it->is_string()) {
      cell = it->get<std::string>();
    } else if (it->is_number_float()) {
      cell = fmt::format("{}", it->get<double>());
    } else {
      cell = it->dump();
    }
    if (cell.find_first_of(",\"\n") != std::string::npos) {
      std::string quoted = "\"";
      for (char c : cell) quoted += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' ? ' ' : c);
      cell = quoted + "\"";
    }
    line += cell;
  }
  return line;
}

namespace {

StudyRow describe_run(const StudyRun& run, Index n) {
  StudyRow row;
  if (run.exact_samples) {
    row["run"] = run.id;
    row["data"] = run.data;
    row["sampler"] = "exact";
    row["label"] = run.label;
    row["seed"] = run.sampler.seed;
    row["n"] = n;
    return row;
  }
  const auto& o = run.sampler;
  const std::string predictor = o.resolved_predictor(), corrector = o.resolved_corrector();
  const bool pc_corrector = corrector != "none" && !corrector.empty();
  row["run"] = run.id;
  row["data"] = run.data;
  row["score"] = run.score;
  row["sde"] = sde_name(run.sde);
  row["sampler"] = o.sampler;
  row["label"] = run.label;
  row["predictor"] = predictor.empty() ? nullptr : nlohmann::ordered_json(predictor);
  row["corrector"] = corrector.empty() ? nullptr : nlohmann::ordered_json(corrector);
  row["snr"] = pc_corrector ? nlohmann::ordered_json(o.snr) : nullptr;
  row["corrector_steps"] = pc_corrector ? nlohmann::ordered_json(o.corrector_steps) : nullptr;
  row["ode_method"] = o.sampler == "ode" ? nlohmann::ordered_json(o.ode_method) : nullptr;
  row["steps"] = run.adaptive ? nullptr : nlohmann::ordered_json(o.steps);
  row["rtol"] = run.adaptive ? nlohmann::ordered_json(o.rtol) : nullptr;
  row["atol"] = run.adaptive ? nlohmann::ordered_json(o.atol) : nullptr;
  row["noise"] = to_string(o.noise);
  row["seed"] = o.seed;
  row["n"] = n;
  return row;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The exact reference set of (data, replicate seed) and the exact-samples baseline: independent of each other
// and of the samplers' draws, whose Philox keys are the seed itself.
std::uint64_t reference_seed(std::uint64_t seed) { return seed ^ 0x5eed5eed5eed5eedULL; }
std::uint64_t baseline_seed(std::uint64_t seed) { return seed ^ 0xba5e1111ba5e1111ULL; }

}  // namespace

std::vector<StudyRow> run_study(const StudySpec& spec, const std::string& dir, bool resume,
                                const std::string& command, const StudyProgress& progress) {
  spec.validate();
  std::vector<std::string> skipped;
  const auto runs = expand_study(spec, &skipped);
  if (std::all_of(runs.begin(), runs.end(), [](const StudyRun& r) { return r.exact_samples; }))
    throw ConfigError(
        fmt::format("the study grid has no runnable combination: {}", fmt::join(skipped, "; ")));

  const fs::path out(dir);
  const fs::path json_path = out / "results.json", csv_path = out / "results.csv",
                 ini_path = out / "study.ini";
  nlohmann::ordered_json study = spec.to_json();
  const auto without_threads = [](nlohmann::ordered_json j) {
    j.erase("threads");
    return j;
  };

  std::vector<StudyRow> rows;
  nlohmann::ordered_json sessions = nlohmann::ordered_json::array();
  std::error_code ec;
  if (fs::exists(json_path, ec)) {
    if (!resume)
      throw ConfigError(fmt::format(
          "--out = {}: already holds a study ({}); add --resume to continue it, or choose another directory",
          dir, json_path.string()));
    nlohmann::ordered_json previous;
    try {
      previous = nlohmann::ordered_json::parse(read_text(json_path));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: not a study's results file ({})", json_path.string(), e.what()));
    }
    if (!previous.contains("study") || !previous.contains("rows") || !previous["rows"].is_array())
      throw InputError(
          fmt::format("{}: not a study's results file (no \"study\" or \"rows\")", json_path.string()));
    const auto before = without_threads(previous["study"]), now = without_threads(study);
    if (before != now) {
      for (const auto& [key, value] : now.items())
        if (!before.contains(key) || before[key] != value)
          throw ConfigError(fmt::format(
              "--resume: {} holds a different study: {} was {} and is now {}; resume with --config {}", dir,
              key, before.contains(key) ? before[key].dump() : "absent", value.dump(), ini_path.string()));
      throw ConfigError(fmt::format("--resume: {} holds a different study; resume with --config {}", dir,
                                    ini_path.string()));
    }
    for (const auto& r : previous["rows"]) rows.push_back(r);
    if (previous.contains("sessions")) sessions = previous["sessions"];
  } else {
    fs::create_directories(out, ec);
    if (ec) throw ConfigError(fmt::format("--out = {}: cannot create the directory ({})", dir, ec.message()));
  }
  auto context = nlohmann::ordered_json::parse(build_context().dump());
  context["threads"] = spec.sampler_base.threads;
  sessions.push_back(context);

  std::set<std::string> done;
  for (const auto& r : rows) done.insert(r["run"].get<std::string>());

  const auto metric_names = spec.resolved_metrics();
  const auto columns = study_columns(metric_names);
  const bool want_model_nll =
      std::find(metric_names.begin(), metric_names.end(), model_nll_metric) != metric_names.end();
  const bool keep_samples = spec.save_samples;
  if (keep_samples) fs::create_directories(out / "samples", ec);

  const auto record = [&]() {
    nlohmann::ordered_json j;
    j["command"] = command;
    j["context"] = sessions.front();
    j["sessions"] = sessions;
    j["study"] = study;
    j["skipped"] = skipped;
    j["columns"] = columns;
    j["rows"] = rows;
    std::string csv = fmt::format("{}\n", fmt::join(columns, ","));
    for (const auto& r : rows) csv += csv_line(r, columns) + "\n";
    // The JSON is the record --resume reads; the CSV is its table. Each is replaced whole, never appended to.
    write_text_atomically(json_path.string(), j.dump(1) + "\n");
    write_text_atomically(csv_path.string(), csv);
  };
  write_text_atomically(ini_path.string(), spec.to_ini());
  record();

  std::map<std::string, std::shared_ptr<const GaussianMixture>> mixtures;
  std::map<std::pair<std::string, std::uint64_t>, Matrix> references;
  std::map<std::string, MetricValue> model_nll_cache;
  const Index n = spec.samples;
  const Index reference_n = spec.reference_samples > 0 ? spec.reference_samples : n;

  // Cost of a run for the time-left estimate: score evaluations per sample, roughly.
  const auto cost = [](const StudyRun& r) {
    if (r.exact_samples) return 1.0;
    if (r.adaptive) return 200.0;
    const double per_step = r.sampler.sampler == "pc" ? 1.0 + r.sampler.corrector_steps
                            : r.sampler.sampler == "ode" && r.sampler.ode_method == "rk4" ? 4.0
                                                                                          : 1.0;
    return per_step * r.sampler.steps;
  };
  double total_cost = 0, done_cost = 0;
  Index total = 0, finished = 0;
  for (const auto& r : runs)
    if (!done.count(r.id)) {
      total_cost += cost(r);
      ++total;
    }
  const auto started = std::chrono::steady_clock::now();

  for (const auto& run : runs) {
    if (done.count(run.id)) continue;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double left = done_cost > 0 ? elapsed * (total_cost - done_cost) / done_cost : -1;
    if (progress.starting) progress.starting(run, finished, total, elapsed, left);

    // The data: a mixture (exact density, mixture metrics) or a generator such as two_moons (sample metrics).
    const bool exact_data = has_exact_mixture(run.data);
    auto& mixture = mixtures[run.data];
    if (!mixture && exact_data) mixture = load_data(run.data, spec.dim);
    const auto draw = [&](std::uint64_t seed, Index count) {
      if (!exact_data) return load_training_data(run.data, count, seed, spec.dim);
      Matrix x(mixture->dim(), count);
      mixture->sample(seed, 0, x);
      return x;
    };
    auto& reference = references[{run.data, run.sampler.seed}];
    if (reference.size() == 0) {
      reference = draw(reference_seed(run.sampler.seed), reference_n);
      if (keep_samples && reference.rows() == 2 && run.replicate == 0)
        write_samples_npy(
            (out / "samples" / fmt::format("reference.{}.s{}.npy", id_part(run.data), run.sampler.seed))
                .string(),
            reference);
    }

    StudyRow row = describe_run(run, n);
    const auto t0 = std::chrono::steady_clock::now();
    MetricsOptions mo;
    for (const auto& name : metric_names) {
      const auto& mixture_only = mixture_metric_names();
      const bool needs_mixture = std::find(mixture_only.begin(), mixture_only.end(), name) != mixture_only.end();
      if (name != model_nll_metric && (exact_data || !needs_mixture)) mo.metrics.push_back(name);
    }
    mo.seed = run.sampler.seed;
    mo.threads = run.sampler.threads;
    const auto record_metrics = [&](ConstMatrixRef samples) {
      for (const auto& [name, v] : evaluate_metrics(samples, reference, exact_data ? mixture.get() : nullptr, mo)) {
        row[name] = v.value;
        row[name + "_se"] = v.std_error;
      }
    };
    if (run.exact_samples) {
      row["status"] = "ok";
      row["nfe"] = 0;
      row["nfe_max"] = 0;
      record_metrics(draw(baseline_seed(run.sampler.seed), n));
    } else {
      // The score: exact, or a trained network that works in standardised units (docs/training.md): it samples
      // there, and its samples are mapped back to the data's units.
      const auto sde = make_sde(run.sde);
      const auto source =
          is_exact_score(run.score) ? mixture_score(mixture) : checkpoint_score(score_checkpoint(run.score));
      const std::unique_ptr<ScoreModel> model = source->make(*sde);
      try {
        auto report = sample(*sde, *model, run.sampler, n);
        if (!is_exact_score(run.score)) report.samples = source->scaling().to_original(report.samples);
        row["status"] = "ok";
        row["nfe"] = report.nfe_mean();
        row["nfe_max"] = report.nfe_max();
        record_metrics(report.samples);
        if (keep_samples && report.samples.rows() == 2 && run.replicate == 0)
          write_samples_npy((out / "samples" / (run.id + ".npy")).string(), report.samples);
      } catch (const NumericalError& e) {
        // A diverging run is a result: recorded with where it diverged, and the study goes on.
        row["status"] = "diverged";
        row["failure"] = e.what();
      }
      if (want_model_nll) {
        // Once per (data, score, SDE, seed): held-out exact points (the reference set's first ones, never used
        // in training) through the probability-flow ODE of the score, exact divergence.
        const auto key = fmt::format("{}|{}|{}|{}", run.data, run.score, sde->name(), run.sampler.seed);
        auto it = model_nll_cache.find(key);
        if (it == model_nll_cache.end()) {
          const Index m = std::min<Index>(model_nll_points, reference.cols());
          LikelihoodOptions lo;
          lo.seed = run.sampler.seed;
          lo.threads = run.sampler.threads;
          const auto result = model_log_likelihood(*model, *sde, source->scaling(), reference.leftCols(m), lo);
          const auto& summary = result.summary;
          it = model_nll_cache.emplace(key, MetricValue{summary.mean_nll, summary.nll_se}).first;
        }
        row[model_nll_metric] = it->second.value;
        row[std::string(model_nll_metric) + "_se"] = it->second.std_error;
      }
    }
    row["wall_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Columns in the CSV order, whatever order they were filled in.
    StudyRow ordered;
    for (const auto& c : columns) ordered[c] = row.contains(c) ? row[c] : nullptr;
    rows.push_back(ordered);
    record();
    done_cost += cost(run);
    ++finished;
    if (progress.finished) progress.finished(run, rows.back(), finished, total);
  }
  return rows;
}

}  // namespace scoresde
