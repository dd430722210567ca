#include "experiments/study/study.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/errors.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/metrics/path_error.hpp"
#include "experiments/study/study_internal.hpp"
#include "models/checkpoint.hpp"
#include "models/datasets.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace fs = std::filesystem;

// A readable file-name fragment: files by their stem, characters outside [A-Za-z0-9_-] dropped.
std::string id_part(const std::string& text) {
  std::string stem = text;
  const auto extension = fs::path(text).extension().string();
  for (const char* file_kind : {".json", ".pt", ".ckpt", ".npz", ".npy"})
    if (extension == file_kind && fs::path(text).stem() != "") stem = fs::path(text).stem().string();
  std::string out;
  for (char c : stem)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') out += c;
  return out.empty() ? "x" : out;
}

bool is_exact_score(const std::string& score) {
  return score == exact_score;
}

bool is_gaussian_law_metric(const std::string& name) {
  return name == gaussian_w2_metric || name == gaussian_kl_metric;
}

bool is_study_metric(const std::string& name) {
  return name == model_nll_metric || is_gaussian_law_metric(name) || is_path_metric(name);
}

bool is_single_gaussian(const std::string& data, Index dim) {
  return has_exact_mixture(data) && load_data(data, dim)->components() == 1;
}

namespace {

// The study options a block may set besides the sampler's lists: the score list and the sample count.
constexpr const char* block_score_key = "score";
constexpr const char* block_samples_key = "samples";

// A data set the study can draw from: a built-in set or a mixture file (not a file of fixed points).
bool can_draw(const std::string& data) {
  return has_exact_mixture(data) || is_builtin_training_data(data);
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

std::shared_ptr<const ScoreSource> score_file_source(const std::string& path) {
  const ScoreSpec spec = ScoreSpec::file(path);
  if (!spec.is_torchscript()) return checkpoint_score(score_checkpoint(path));
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const ScoreSource>> cache;
  const std::lock_guard lock(mutex);
  auto& entry = cache[path];
  if (!entry) {
    try {
      entry = open_score(spec);
    } catch (const InputError& e) {
      throw InputError(fmt::format("--score: {}", e.what()));
    }
    if (!entry->recorded_parameterization())
      throw ConfigError(
          fmt::format("--score = {}: the TorchScript model declares no parameterization (a study "
                      "reads it from the file's metadata)",
                      path));
  }
  return entry;
}

StudySpec::StudySpec() {
  sampler_base.noise = NoiseKind::brownian_tree;
  axes["sampler"] = {"euler_maruyama", "reverse_diffusion", "ancestral", "pc", "ode"};
  axes["ode-method"] = {"rk4", "dopri5"};
  axes["steps"] = {"10", "30", "100", "300", "1000"};
  axes["rtol"] = {"0.01", "0.001", "0.0001", "1e-05"};
  blocks.push_back({{"sampler", {"ddim", "dpmpp_2m", "dpmpp_3m", "unipc", "edm_heun"}},
                    {"time-grid", {"logsnr", "karras"}},
                    {"steps", {"5", "10", "20", "50"}}});
}

std::vector<StudySpec> StudySpec::grids() const {
  std::vector<StudySpec> out{*this};
  out.front().blocks.clear();
  for (const auto& block : blocks) {
    StudySpec g = out.front();
    for (const auto& [key, values] : block) {
      if (key == block_score_key) {
        g.score = values;
      } else if (key == block_samples_key) {
        const auto problem = values.size() == 1 ? find_option(study_option_table(), "samples")->parse(g, values.front())
                                                : std::optional<std::string>("give one count");
        if (problem)
          throw ConfigError(fmt::format("--blocks: samples = {}: {}", option_text::join_list(values), *problem));
      } else {
        g.axes[key] = values;
      }
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<std::string> StudySpec::all_scores() const {
  std::vector<std::string> out;
  for (const auto& g : grids())
    for (const auto& s : g.score)
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  return out;
}

namespace {

// A sampler axis or budget's list, each value checked by the sampler's entry and kept in its canonical text.
std::optional<std::string> read_axis_list(const std::string& key, const std::string& text,
                                          std::vector<std::string>& values) {
  const auto& item_spec = *find_option(sampler_option_table(), key);
  return option_text::read_list(text, values, [&](std::string& item) {
    SamplerOptions scratch;
    auto item_problem = item_spec.parse(scratch, item);
    if (!item_problem) item = item_spec.text(scratch);
    return item_problem;
  });
}

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// --blocks: "key=LIST; key=LIST | key=LIST ...", keys the sampler's list-valued study options.
std::optional<std::string> read_blocks(const std::string& text,
                                       std::vector<std::map<std::string, std::vector<std::string>>>& out) {
  std::vector<std::map<std::string, std::vector<std::string>>> blocks;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto bar = std::min(text.find('|', start), text.size());
    const std::string block_text = trimmed(text.substr(start, bar - start));
    start = bar + 1;
    if (block_text.empty()) continue;
    std::map<std::string, std::vector<std::string>> block;
    std::size_t at = 0;
    while (at <= block_text.size()) {
      const auto semicolon = std::min(block_text.find(';', at), block_text.size());
      const std::string part = trimmed(block_text.substr(at, semicolon - at));
      at = semicolon + 1;
      if (part.empty()) continue;
      const auto eq = part.find('=');
      if (eq == std::string::npos)
        return fmt::format("\"{}\": write each part of a block as key=LIST (e.g. sampler=ddim,unipc; steps=5,10)",
                           part);
      const std::string key = trimmed(part.substr(0, eq));
      const std::string value = trimmed(part.substr(eq + 1));
      if (block.count(key)) return fmt::format("a block names {} twice", key);
      if (key == block_score_key) {
        // Each score is checked against the data by StudySpec::validate, as the grid's are.
        if (auto problem = option_text::read_list(value, block[key])) return fmt::format("{}: {}", key, *problem);
        continue;
      }
      if (key == block_samples_key) {
        StudySpec scratch;
        if (auto problem = find_option(study_option_table(), "samples")->parse(scratch, value))
          return fmt::format("{}: {}", key, *problem);
        block[key] = {value};
        continue;
      }
      const auto* spec = find_option(sampler_option_table(), key);
      if (!spec || (spec->study != StudyRole::axis && spec->study != StudyRole::budget)) {
        std::vector<std::string> keys;
        for (const auto& e : sampler_option_table())
          if (e.study == StudyRole::axis || e.study == StudyRole::budget) keys.push_back(e.key);
        keys.emplace_back(block_score_key);
        keys.emplace_back(block_samples_key);
        return fmt::format("\"{}\" is not an option a block can set; use {}", key, fmt::join(keys, ", "));
      }
      if (auto problem = read_axis_list(key, value, block[key])) return fmt::format("{}: {}", key, *problem);
    }
    if (!block.empty()) blocks.push_back(std::move(block));
  }
  out = std::move(blocks);
  return std::nullopt;
}

std::string blocks_text(const std::vector<std::map<std::string, std::vector<std::string>>>& blocks) {
  std::vector<std::string> parts;
  for (const auto& block : blocks) {
    std::vector<std::string> items;
    for (const auto& [key, values] : block) items.push_back(key + "=" + option_text::join_list(values));
    parts.push_back(fmt::format("{}", fmt::join(items, "; ")));
  }
  return fmt::format("{}", fmt::join(parts, " | "));
}

}  // namespace

std::vector<std::string> StudySpec::axis(const std::string& key) const {
  const auto* spec = find_option(sampler_option_table(), key);
  if (!spec || (spec->study != StudyRole::axis && spec->study != StudyRole::budget))
    throw ConfigError(fmt::format("--{}: not a list-valued study option", key));
  const auto it = axes.find(key);
  if (it != axes.end() && !(it->second.empty() && !spec->paired_with.empty())) return it->second;
  if (!spec->paired_with.empty()) return axis(spec->paired_with);
  return {spec->text(sampler_base)};
}

const OptionTable<StudySpec>& study_option_table() {
  using S = StudySpec;
  static const OptionTable<S> table = [] {
    OptionTable<S> t;
    const auto in_group = [&t](OptionSpec<S> spec, const char* group) -> OptionSpec<S>& {
      spec.group = group;
      return t.emplace_back(std::move(spec));
    };
    in_group(list_option("data", &S::data, "eight_gaussians, gaussian (with --dim) or mixture FILE.json"), "grid");
    in_group(option("dim", &S::dim, "dimension for gaussian"), "grid");
    in_group(list_option("score", &S::score,
                         "exact (the data's exact score) and/or checkpoints of scoresde train or TorchScript "
                         "FILE.pt (each runs under its own SDE)"),
             "grid");
    in_group(list_option("sde", &S::sde, "vp, subvp, ve",
                         [](const std::string& name) -> std::optional<std::string> {
                           if (enum_from_name<SdeKind>(name)) return std::nullopt;
                           return enum_choice_problem<SdeKind>();
                         }),
             "grid");
    for (const auto& spec : sde_option_table())
      if (spec.key != "sde") in_group(nested_option(spec, &S::sde_parameters), "sde");
    for (const auto& sampler_spec : sampler_option_table()) {
      if (sampler_spec.study == StudyRole::own) continue;
      if (sampler_spec.study == StudyRole::shared) {
        in_group(nested_option(sampler_spec, &S::sampler_base), "shared");
        continue;
      }
      // A list: every value checked by the sampler's entry and kept in its canonical text.
      OptionSpec<S> list;
      list.key = sampler_spec.key;
      list.value_name = "LIST";
      list.help = sampler_spec.help;
      if (!sampler_spec.paired_with.empty()) {
        list.optional = true;
        list.help += fmt::format("; one per --{} value (default: equal to --{})", sampler_spec.paired_with,
                                 sampler_spec.paired_with);
      }
      const std::string key = sampler_spec.key;
      list.parse = [key](S& s, const std::string& text) -> std::optional<std::string> {
        std::vector<std::string> values;
        const auto problem = read_axis_list(key, text, values);
        if (!problem) s.axes[key] = std::move(values);
        return problem;
      };
      list.get = [key](const S& s) { return nlohmann::ordered_json(option_text::join_list(s.axis(key))); };
      in_group(std::move(list), "grid");
    }
    {
      OptionSpec<S> blocks;
      blocks.key = "blocks";
      blocks.value_name = "BLOCKS";
      blocks.help =
          "further sub-grids, each replacing some of the sampler lists above, and optionally --score (a list) and "
          "--samples (one count): \"key=LIST; key=LIST | ...\", e.g. \"score=exact,net.pt; samples=1000; "
          "sampler=ddim; steps=10,20\" (default, when no sampler list is given: the few-step block shown); \"\" for "
          "none";
      blocks.parse = [](S& s, const std::string& text) { return read_blocks(text, s.blocks); };
      blocks.get = [](const S& s) { return nlohmann::ordered_json(blocks_text(s.blocks)); };
      in_group(std::move(blocks), "grid");
    }
    in_group(option("seeds", &S::seeds, "replicate seeds per cell: --seed, --seed + 1, ...", at_least(1)), "grid");
    in_group(option("seed", &S::first_seed, "first replicate seed"), "grid");
    auto& samples = in_group(option("samples", &S::samples, "samples per run", at_least(Index{2})), "grid");
    samples.short_name = 'n';
    auto& metrics =
        in_group(list_option("metrics", &S::metrics,
                             fmt::format("metrics (default: all of {},{},{}, and {},{} when every --data is a single "
                                         "Gaussian; docs/metrics.md, docs/studies.md, docs/exact-error.md)",
                                         fmt::join(metric_names(), ","), model_nll_metric,
                                         fmt::join(path_metric_names(), ","), gaussian_w2_metric, gaussian_kl_metric)),
                 "evaluation");
    metrics.optional = true;  // absent: every metric
    metrics.get = [](const S& s) { return nlohmann::ordered_json(option_text::join_list(s.resolved_metrics())); };
    in_group(option("reference-n", &S::reference_samples, "exact reference points per seed (0: as many as -n)",
                    ValueCheck<Index>([](const Index& m) -> std::optional<std::string> {
                      if (m == 0 || m >= 2) return std::nullopt;
                      return std::string("must be >= 2, or 0 for as many as -n");
                    })),
             "evaluation");
    in_group(option("path-samples", &S::path_samples,
                    "path_error over the first min(this, -n) samples of each run (0: all); its reference costs an SDE "
                    "sampler 16 times its own steps",
                    ValueCheck<Index>([](const Index& m) -> std::optional<std::string> {
                      if (m == 0 || m >= 2) return std::nullopt;
                      return std::string("must be >= 2, or 0 for all samples");
                    })),
             "evaluation");
    in_group(
        option("save-samples", &S::save_samples,
               "keep the first seed's samples for the report's figures: all of 2-D data, the first 64 of square grey "
               "images (28 x 28 Fashion-MNIST)"),
        "evaluation");
    in_group(nested_option(*find_option(sampler_option_table(), "threads"), &S::sampler_base), "shared");
    return t;
  }();
  return table;
}

void StudySpec::validate() const {
  // Every value against its entry, as if given on the command line (C++ callers set the struct directly).
  for (const auto& [key, values] : axes) axis(key);
  check_options(study_option_table(), *this);
  // Paired lists (atol with rtol) go point by point, in the grid and in every block, where a block's list meets the
  // grid's partner unless the block gives both.
  const auto all_grids = grids();
  for (std::size_t b = 0; b < all_grids.size(); ++b) {
    const StudySpec& g = all_grids[b];
    const std::string where = b == 0 ? std::string() : fmt::format("--blocks, block {}: ", b);
    for (const auto& spec : sampler_option_table()) {
      if (spec.paired_with.empty()) continue;
      const auto own = g.axes.find(spec.key);
      const auto paired = g.axis(spec.paired_with);
      if (own != g.axes.end() && !own->second.empty() && own->second.size() != paired.size())
        throw ConfigError(fmt::format(
            "{}--{} = {}: give one value per --{} value ({} of them), or leave --{} out to use --{}'s", where, spec.key,
            option_text::join_list(own->second), spec.paired_with, paired.size(), spec.key, spec.paired_with));
    }
  }
  sde_parameters.validate();
  MetricsOptions m;
  for (const auto& name : metrics)
    if (!is_study_metric(name)) m.metrics.push_back(name);
  m.validate();
  const auto scores = all_scores();  // the grid's and its blocks'
  for (const auto& name : data) {
    const bool exact = has_exact_mixture(name);
    Index data_dim = 0;
    if (exact) {
      data_dim = load_data(name, dim)->dim();
    } else {
      if (!can_draw(name))
        throw ConfigError(
            fmt::format("--data = {}: a study draws its data; give a built-in set ({}) or a mixture "
                        "FILE.json",
                        name, fmt::join(training_data_names(), ", ")));
      data_dim = training_data_dimension(name, dim);
    }
    for (const auto& s : scores) {
      if (is_exact_score(s)) {
        if (!exact)
          throw ConfigError(
              fmt::format("--score = exact: --data {} has no closed-form density, so no exact score; "
                          "give a model trained on it (scoresde train --data {} --out MODEL.ckpt)",
                          name, name));
        continue;
      }
      const Index model_dim = score_file_source(s)->dim();
      if (model_dim != data_dim)
        throw ConfigError(fmt::format("--score = {}: the model is {}-dimensional, --data {} is {}-dimensional", s,
                                      model_dim, name, data_dim));
    }
    for (const auto& metric : metrics)
      if (is_gaussian_law_metric(metric) && !is_single_gaussian(name, dim))
        throw ConfigError(fmt::format(
            "--metrics = {}: the exact output law needs data that are a single Gaussian (gaussian, or a mixture "
            "FILE.json with one component); --data {} is not",
            metric, name));
    const auto mixture_only = mixture_metric_names();
    if (!exact)
      for (const auto& metric : metrics)
        if (std::find(mixture_only.begin(), mixture_only.end(), metric) != mixture_only.end())
          throw ConfigError(
              fmt::format("--metrics = {}: needs data with a closed-form density; --data {} has none", metric, name));
  }
}

nlohmann::ordered_json StudySpec::to_json() const {
  nlohmann::ordered_json j;
  record_options(study_option_table(), *this, j);
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
  for (const auto& name : path_metric_names()) all.push_back(name);
  if (std::all_of(data.begin(), data.end(), [&](const std::string& d) { return is_single_gaussian(d, dim); })) {
    all.push_back(gaussian_w2_metric);
    all.push_back(gaussian_kl_metric);
  }
  return all;
}

namespace {

// One sampler configuration: everything but the budget (steps or tolerances) and the seed.
struct SamplerConfig {
  SamplerOptions options;
  std::string label, id;
  bool adaptive = false;
};

// The sampler configurations of the grid: per --sampler value, the product of the axes that apply to it, in the
// order of sampler_option_table(); labels and ids from the entries' label and id parts.
std::vector<SamplerConfig> sampler_configs(const StudySpec& spec) {
  const auto& table = sampler_option_table();
  std::vector<SamplerOptions> configs;
  for (const auto& name : spec.axis("sampler")) {
    SamplerOptions o = spec.sampler_base;
    o.sampler = name;
    // A sampler-dependent default holds for an option the study does not list.
    for (const auto& entry : table)
      if (!spec.axes.count(entry.key))
        if (const auto value = entry.default_for(name)) entry.set(o, *value);
    std::vector<SamplerOptions> crossed{o};
    for (const auto& entry : table) {
      if (entry.study != StudyRole::axis || entry.key == "sampler") continue;
      std::vector<SamplerOptions> next;
      for (const auto& c : crossed) {
        if (!entry.used_by(c)) {
          next.push_back(c);
          continue;
        }
        for (const auto& value : spec.axis(entry.key)) {
          next.push_back(c);
          entry.set(next.back(), value);
        }
      }
      crossed = std::move(next);
    }
    configs.insert(configs.end(), crossed.begin(), crossed.end());
  }
  std::vector<SamplerConfig> out;
  for (const auto& o : configs) {
    SamplerConfig c{o, "", "", is_adaptive(o)};
    for (const auto& entry : table) {
      if (entry.study != StudyRole::axis) continue;
      if (entry.shown_in_label(o)) c.label += fmt::format(fmt::runtime(entry.label_format), entry.label_text(o));
      if (entry.shown_in_id(o)) c.id += fmt::format(fmt::runtime(entry.id_format), entry.label_text(o));
    }
    out.push_back(std::move(c));
  }
  return out;
}

// The budgets of a configuration: the budget entries it uses, taken together point by point (steps; or rtol with
// atol), each point's options and its id part ("n100", "tol0.001").
std::vector<std::pair<SamplerOptions, std::string>> budget_points(const StudySpec& spec, const SamplerOptions& o) {
  std::vector<const OptionSpec<SamplerOptions>*> used;
  for (const auto& entry : sampler_option_table())
    if (entry.study == StudyRole::budget && entry.used_by(o)) used.push_back(&entry);
  std::vector<std::pair<SamplerOptions, std::string>> points;
  if (used.empty()) return {{o, ""}};
  // A --time-grid FILE fixes the step count (SamplerOptions::adopt_grid_file): one point, the file's. A sampler that
  // declares its own default for a budget (ggf's tolerances) runs at that default, one point, while the study's list
  // is the default study's (the tolerance list of dopri5); a list given otherwise applies to it too.
  static const StudySpec default_spec;
  const auto values = [&](const OptionSpec<SamplerOptions>& entry) {
    if (entry.key == "steps" && o.grid_from_file()) return std::vector<std::string>{entry.text(o)};
    const auto own = entry.default_for(o.sampler);
    if (own && spec.axis(entry.key) == default_spec.axis(entry.key)) return std::vector<std::string>{*own};
    return spec.axis(entry.key);
  };
  // The lists go point by point (StudySpec::validate checks the paired lengths); a list of one value, a sampler's own
  // default beside a list of the study's, is used at every point.
  std::vector<std::vector<std::string>> lists;
  std::size_t count = 1;
  for (const auto* entry : used) {
    lists.push_back(values(*entry));
    count = std::max(count, lists.back().size());
  }
  for (std::size_t u = 0; u < used.size(); ++u)
    if (lists[u].size() != 1 && lists[u].size() != count)
      throw ConfigError(fmt::format("--{} = {}: give one value per point of the other budget lists ({} of them)",
                                    used[u]->key, option_text::join_list(lists[u]), count));
  for (std::size_t i = 0; i < count; ++i) {
    SamplerOptions p = o;
    for (std::size_t u = 0; u < used.size(); ++u) used[u]->set(p, lists[u].size() == 1 ? lists[u][0] : lists[u][i]);
    std::string id;
    for (const auto* entry : used)
      if (entry->shown_in_id(p)) id += fmt::format(fmt::runtime(entry->id_format), entry->label_text(p));
    points.emplace_back(std::move(p), std::move(id));
  }
  return points;
}

}  // namespace

// A study's runs are listed in memory (and in results.json) before the first runs: a grid far beyond any real study
// (seeds = 82000 over a default grid is millions of runs and gigabytes) is refused while it is expanded.
constexpr std::size_t max_study_runs = 100'000;

std::vector<StudyRun> expand_study(const StudySpec& spec, std::vector<std::string>* skipped) {
  const auto grids = spec.grids();
  const auto check_size = [&](const std::vector<StudyRun>& runs) {
    if (runs.size() >= max_study_runs)
      throw ConfigError(
          fmt::format("the grid expands to more than {} runs (--seeds = {}, {} data set(s), {} "
                      "score(s)): split it into smaller studies",
                      max_study_runs, spec.seeds, spec.data.size(), spec.score.size()));
  };
  // A block with its own sample count marks its runs (and its baseline) with it, so that a cell of the grid and the
  // same cell at the block's count are two runs.
  const auto size_part = [&](Index samples) {
    return samples == spec.samples ? std::string() : fmt::format("size{}.", samples);
  };
  std::vector<Index> sizes;
  for (const auto& g : grids)
    if (std::find(sizes.begin(), sizes.end(), g.samples) == sizes.end()) sizes.push_back(g.samples);
  std::vector<StudyRun> runs;
  std::set<std::string> ids;
  for (const auto& data : spec.data)
    for (const Index samples : sizes)
      for (int r = 0; r < spec.seeds; ++r) {
        if (!can_draw(data)) continue;
        StudyRun run;
        run.data = data;
        run.score = "-";
        run.label = "exact samples";
        run.exact_samples = true;
        run.replicate = r;
        run.samples = samples;
        run.sampler = spec.sampler_base;
        run.sampler.seed = spec.first_seed + static_cast<std::uint64_t>(r);
        run.id = fmt::format("{}exact.{}s{}", spec.data.size() > 1 ? id_part(data) + "." : "", size_part(samples),
                             run.sampler.seed);
        ids.insert(run.id);
        check_size(runs);
        runs.push_back(std::move(run));
      }
  // The sampler configurations of the grid and of each block, each with the spec its scores, sample count and
  // budgets come from. A block may name a run the grid (or an earlier block) names too: it runs once, where it first
  // appears.
  std::vector<std::pair<SamplerConfig, const StudySpec*>> configs;
  for (const auto& g : grids)
    for (auto& c : sampler_configs(g)) configs.emplace_back(std::move(c), &g);
  const auto scores = spec.all_scores();
  std::set<std::string> earlier_grids;  // run ids of the grids before the current one
  for (const auto& data : spec.data)
    for (const auto& score : scores)
      for (const auto& sde_text : spec.sde) {
        SdeOptions so = spec.sde_parameters;
        so.kind = sde_kind_from_string(sde_text);
        if (!is_exact_score(score)) {
          // A trained model brings its SDE: it runs under that SDE only, with the parameters it was trained with.
          // (A TorchScript module that declares none runs under each SDE of the study.)
          const auto source = score_file_source(score);  // kept: trained refers into it
          const auto& trained = source->trained_sde();
          if (trained) {
            if (trained->kind != so.kind) {
              if (skipped)
                skipped->push_back(fmt::format("{} under {}: the model was trained under {}", score, sde_text,
                                               to_string(trained->kind)));
              continue;
            }
            so = *trained;
          }
        }
        const auto sde = make_sde(so);
        const StudySpec* current = nullptr;
        std::set<std::string> this_grid;
        for (const auto& [c, grid] : configs) {
          if (grid != current) {
            earlier_grids.insert(this_grid.begin(), this_grid.end());
            this_grid.clear();
            current = grid;
          }
          if (std::find(grid->score.begin(), grid->score.end(), score) == grid->score.end()) continue;
          SamplerOptions options = c.options;
          try {
            options.adopt_grid_file(*sde, false);
            options.validate(*sde);
          } catch (const ConfigError& e) {  // an InputError (an unreadable --time-grid file) stops the study
            if (skipped) skipped->push_back(fmt::format("{} {} ({}): {}", data, sde_text, c.label, e.what()));
            continue;
          }
          for (const auto& [point_options, point] : budget_points(*grid, options))
            for (int r = 0; r < spec.seeds; ++r) {
              StudyRun run;
              run.data = data;
              run.score = score;
              run.sde = so;
              run.sampler = point_options;
              run.samples = grid->samples;
              run.adaptive = c.adaptive;
              run.label = c.label;
              run.replicate = r;
              run.sampler.seed = spec.first_seed + static_cast<std::uint64_t>(r);
              run.id = fmt::format("{}{}{}.{}.{}.{}s{}", spec.data.size() > 1 ? id_part(data) + "." : "",
                                   scores.size() > 1 ? id_part(score) + "." : "", sde_text, c.id, point,
                                   size_part(run.samples), run.sampler.seed);
              if (earlier_grids.count(run.id)) continue;
              if (!this_grid.insert(run.id).second || !ids.insert(run.id).second)
                throw ConfigError(fmt::format("the grid names run {} twice: remove repeated list entries", run.id));
              check_size(runs);
              runs.push_back(std::move(run));
            }
        }
      }
  return runs;
}

std::vector<std::string> study_columns(const std::vector<std::string>& metrics) {
  std::vector<std::string> columns{"run", "data", "score", "sde"};
  for (const auto& entry : sampler_option_table()) {
    if (entry.column.empty()) continue;
    columns.push_back(entry.column);
    if (entry.key == "sampler") columns.push_back("label");
  }
  for (const auto* c : {"n", "status", "nfe", "nfe_max"}) columns.push_back(c);
  for (const auto& m : metrics) {
    columns.push_back(m);
    columns.push_back(m + "_se");
  }
  // Which reference the path errors are against: path (dopri5) or strong (the refined sampler on the same path).
  if (std::any_of(metrics.begin(), metrics.end(), [](const std::string& m) { return is_path_metric(m); }))
    columns.push_back("path_kind");
  columns.push_back("wall_s");
  columns.push_back("failure");
  columns.push_back("note");  // why a metric of the run is empty (the exact law does not apply to it)
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

StudyRow describe_run(const StudyRun& run) {
  const Index n = run.samples;
  StudyRow row;
  if (run.exact_samples) {
    row["run"] = run.id;
    row["data"] = run.data;
    row["sampler"] = exact_samples_sampler;
    row["label"] = run.label;
    row["seed"] = run.sampler.seed;
    row["n"] = n;
    return row;
  }
  const auto& o = run.sampler;
  row["run"] = run.id;
  row["data"] = run.data;
  row["score"] = run.score;
  row["sde"] = to_string(run.sde.kind);
  for (const auto& entry : sampler_option_table()) {
    if (entry.column.empty()) continue;
    row[entry.column] = entry.cell ? entry.cell(o) : entry.used_by(o) ? entry.get(o) : nlohmann::ordered_json();
    if (entry.key == "sampler") row["label"] = run.label;
  }
  row["n"] = n;
  return row;
}

}  // namespace scoresde
