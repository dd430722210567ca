#include "experiments/study/study.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/errors.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/study/study_internal.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
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

}  // namespace

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

namespace {

// A data set the study can draw from: a built-in set or a mixture file (not a file of fixed points).
bool can_draw(const std::string& data) {
  const auto names = training_data_names();
  return has_exact_mixture(data) || std::find(names.begin(), names.end(), data) != names.end();
}

}  // namespace

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

namespace {

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

}  // namespace scoresde
