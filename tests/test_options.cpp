// Options described once (core/option_table.hpp): every table entry round-trips through its text and JSON, the
// command line, INI files, records, checkpoints and the study are derived from the tables, and a bad value gets the
// same message wherever it is given.
#include <doctest/doctest.h>

#include <sstream>

#include "core/option_table.hpp"
#include "core/sde.hpp"
#include "core/time_grid.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "experiments/metrics/metrics.hpp"
#include "experiments/study/study.hpp"
#include "models/mlp.hpp"
#include "models/training.hpp"
#include "solvers/likelihood.hpp"
#include "solvers/options.hpp"

using namespace scoresde;

namespace {

// Each entry's value, written as text and read back into a default struct, gives the same JSON value.
template <class S>
void check_round_trip(const OptionTable<S>& table, const S& s) {
  for (const auto& spec : table) {
    CAPTURE(spec.key);
    const std::string text = spec.text(s);
    if (spec.optional && text.empty()) continue;
    S copy;
    REQUIRE_FALSE(spec.parse(copy, text).has_value());
    CHECK(spec.get(copy) == spec.get(s));
  }
}

int cli(const std::vector<std::string>& args, std::string* err = nullptr) {
  std::ostringstream out, e;
  const int status = run_cli(args, out, e);
  if (err) *err = e.str();
  return status;
}

struct Toy {
  std::string sampler = "a";
  int order = 1;
  double eta = 0;
};

}  // namespace

TEST_CASE("enum names: one to_string/from_string pair per enum, unknown names answered with the valid ones") {
  for (const auto& name : enum_names<SdeKind>()) CHECK(to_string(sde_kind_from_string(name)) == name);
  for (const auto& name : enum_names<NoiseKind>()) CHECK(to_string(noise_kind_from_string(name)) == name);
  CHECK(enum_names<VpSchedule>() == std::vector<std::string>{"linear", "cosine", "discrete"});
  CHECK_THROWS_WITH_AS(sde_kind_from_string("vpp"), "--sde = vpp: unknown SDE; choose one of vp, subvp, ve",
                       ConfigError);
  CHECK_THROWS_WITH_AS(langevin_norm_from_string("x"), "--langevin-norm = x: choose one of chunk, sample", ConfigError);
}

TEST_CASE("every entry of the SDE, sampler and study tables round-trips through its text") {
  SdeOptions sde;
  sde.kind = SdeKind::ve;
  sde.sigma_max = 348;
  sde.T = 0.5;
  check_round_trip(sde_option_table(), sde);
  check_round_trip(sde_option_table(), SdeOptions{});
  SdeOptions discrete;
  discrete.schedule = VpSchedule::discrete;
  discrete.alphas_cumprod = {0.9999, 0.75, 0.1 / 3};  // values that need all 17 digits
  check_round_trip(sde_option_table(), discrete);
  SamplerOptions sampler;
  sampler.sampler = "pc";
  sampler.snr = 0.075;
  sampler.eps = 1e-4;
  sampler.noise = NoiseKind::brownian_tree;
  sampler.seed = 18446744073709551615ULL;
  sampler.time_grid = "karras";
  sampler.rho = 2.5;
  check_round_trip(sampler_option_table(), sampler);
  check_round_trip(sampler_option_table(), SamplerOptions{});
  StudySpec study;
  study.set_axis("snr", std::vector<double>{0.05, 0.1});
  study.metrics = {"sliced_w2", "nll"};
  check_round_trip(study_option_table(), study);
}

TEST_CASE("enum names of the network, training and likelihood options: names read back, other spellings kept") {
  for (const auto& name : enum_names<TimeEmbedding>()) CHECK(to_string(time_embedding_from_string(name)) == name);
  for (const auto& name : enum_names<TimeInput>()) CHECK(to_string(time_input_from_string(name)) == name);
  for (const auto& name : enum_names<Parameterization>()) CHECK(to_string(parameterization_from_string(name)) == name);
  for (const auto& name : enum_names<Precision>()) CHECK(to_string(precision_from_string(name)) == name);
  for (const auto& name : enum_names<LossWeighting>()) CHECK(to_string(loss_weighting_from_string(name)) == name);
  for (const auto& name : enum_names<LossReduction>()) CHECK(to_string(loss_reduction_from_string(name)) == name);
  for (const auto& name : enum_names<TimeSampling>()) CHECK(to_string(time_sampling_from_string(name)) == name);
  for (const auto& name : enum_names<DivergenceMethod>()) CHECK(to_string(divergence_method_from_string(name)) == name);
  for (const auto& name : enum_names<ProbeDistribution>())
    CHECK(to_string(probe_distribution_from_string(name)) == name);
  for (const auto& name : enum_names<Dequantization>()) CHECK(to_string(dequantization_from_string(name)) == name);
  CHECK(to_string(DivergenceMethod::automatic) == "auto");
  CHECK(enum_names<Dequantization>() == std::vector<std::string>{"none", "[-1,1]", "[0,1]"});
  // Aliases are read, never written.
  CHECK(precision_from_string("double") == Precision::float64);
  CHECK(precision_from_string("float") == Precision::float32);
  CHECK(loss_weighting_from_string("none") == LossWeighting::sigma2);
  CHECK(enum_names<Precision>() == std::vector<std::string>{"float32", "float64"});
  CHECK_THROWS_WITH_AS(precision_from_string("half"), "--precision = half: choose one of float32, float64",
                       ConfigError);
  CHECK_THROWS_WITH_AS(time_sampling_from_string("log_t"),
                       "--time-sampling = log_t: choose one of uniform, log_snr, log_sigma", ConfigError);
  // Notes follow their names.
  CHECK_THROWS_WITH_AS(dequantization_from_string("8bit"),
                       "--dequantize = 8bit: choose one of none, [-1,1] (8-bit data scaled to [-1, 1]: + 7 bits/dim), "
                       "[0,1] (scaled to [0, 1]: + 8 bits/dim)",
                       ConfigError);
}

TEST_CASE("every entry of the network, training, likelihood and metrics tables round-trips through its text") {
  MlpArchitecture arch;
  arch.hidden = {16, 16};
  arch.time_embedding = TimeEmbedding::raw;
  arch.time_input = TimeInput::log_sigma;
  arch.fourier_features = 8;
  arch.fourier_scale = 2.5;
  arch.parameterization = Parameterization::scaled_score;
  arch.precision = Precision::float64;
  check_round_trip(mlp_option_table(), arch);
  check_round_trip(mlp_option_table(), MlpArchitecture{});
  TrainingOptions training;
  training.iterations = 12345;
  training.batch_size = 64;
  training.lr = 3e-3;
  training.cosine_decay = true;
  training.grad_clip = 0;
  training.eps = 2e-5;
  training.time_sampling = TimeSampling::log_snr;
  training.weighting = LossWeighting::likelihood;
  training.reduction = LossReduction::sum;
  training.seed = 18446744073709551615ULL;
  training.threads = 3;
  check_round_trip(training_option_table(), training);
  check_round_trip(training_option_table(), TrainingOptions{});
  LikelihoodOptions likelihood;
  likelihood.divergence = DivergenceMethod::hutchinson;
  likelihood.probes = 4;
  likelihood.probe_distribution = ProbeDistribution::gaussian;
  likelihood.rtol = 1e-7;
  likelihood.ode_control = OdeControl::sample;
  likelihood.eps = 1e-4;
  likelihood.dequantization = Dequantization::minus_one_one;
  likelihood.chunk = 17;
  check_round_trip(likelihood_option_table(), likelihood);
  check_round_trip(likelihood_option_table(), LikelihoodOptions{});
  MetricsOptions metrics;
  metrics.metrics = {"sliced_w2", "nll"};
  metrics.mmd_bandwidth = 0.25;
  metrics.projections = 64;
  metrics.max_quadratic = 100;
  metrics.seed = 7;
  metrics.threads = 2;
  check_round_trip(metrics_option_table(), metrics);
  check_round_trip(metrics_option_table(), MetricsOptions{});
}

TEST_CASE("--width and --depth set every hidden layer, in either order; C++ values get the command line's checks") {
  const auto& table = mlp_option_table();
  MlpArchitecture a, b;
  find_option(table, "width")->set(a, "32");
  find_option(table, "depth")->set(a, "5");
  find_option(table, "depth")->set(b, "5");
  find_option(table, "width")->set(b, "32");
  CHECK(a.hidden == std::vector<Index>(5, 32));
  CHECK(b.hidden == a.hidden);
  CHECK_THROWS_WITH_AS(find_option(table, "depth")->set(a, "65"), "--depth = 65: must be in [1, 64]", ConfigError);
  const auto sde = make_sde(SdeOptions{});
  TrainingOptions o;
  o.lr = 0;
  CHECK_THROWS_WITH_AS(o.validate(*sde), "--lr = 0.0: must be > 0", ConfigError);
  o = TrainingOptions{};
  o.eps = 1;
  CHECK_THROWS_WITH_AS(o.validate(*sde), "--train-eps = 1: must be in (0, T) = (0, 1)", ConfigError);
  MetricsOptions m;
  m.projections = 0;
  CHECK_THROWS_WITH_AS(m.validate(), "--projections = 0: must be in [1, 100000]", ConfigError);
}

TEST_CASE("an SDE written by to_json reads back equal, and a checkpoint's bad SDE value names the key") {
  SdeOptions o;
  o.kind = SdeKind::subvp;
  o.schedule = VpSchedule::cosine;
  o.beta_max = 18;
  const auto j = to_json(o);
  CHECK(j["T"] == 0.999);  // the resolved horizon
  const auto back = sde_options_from_json(nlohmann::json::parse(j.dump()), "model.ckpt");
  CHECK(to_json(back) == j);
  auto bad = nlohmann::json::parse(j.dump());
  bad["schedule"] = "quadratic";
  CHECK_THROWS_WITH_AS(sde_options_from_json(bad, "model.ckpt"), doctest::Contains("model.ckpt: \"schedule\""),
                       InputError);
  bad = nlohmann::json::parse(j.dump());
  bad.erase("beta-min");
  CHECK_THROWS_WITH_AS(sde_options_from_json(bad, "model.ckpt"), doctest::Contains("beta-min"), InputError);
}

TEST_CASE("SamplerOptions::validate applies each entry's check to values set in C++") {
  SdeOptions so;
  const auto sde = make_sde(so);
  SamplerOptions o;
  o.snr = 0;
  CHECK_THROWS_WITH_AS(o.validate(*sde), "--snr = 0.0: must be > 0", ConfigError);
  o = SamplerOptions{};
  o.sampler = "heun";
  CHECK_THROWS_WITH_AS(o.validate(*sde), doctest::Contains("--sampler = heun: unknown sampler"), ConfigError);
  o = SamplerOptions{};
  o.chunk = 0;
  CHECK_THROWS_WITH_AS(o.validate(*sde), "--chunk = 0: must be >= 1", ConfigError);
}

TEST_CASE("the study's sampler options are derived: every axis a list, every shared option once") {
  for (const auto& spec : sampler_option_table()) {
    CAPTURE(spec.key);
    const auto* study = find_option(study_option_table(), spec.key);
    if (spec.study == StudyRole::own && spec.key != "threads") {
      // The study has an option of its own under this key (seed: the first replicate seed) or none.
      continue;
    }
    REQUIRE(study != nullptr);
    CHECK(study->group == (spec.study == StudyRole::shared || spec.key == "threads" ? "shared" : "grid"));
  }
  // A column for every entry that declares one, in table order.
  const auto columns = study_columns({});
  for (const auto& spec : sampler_option_table())
    if (!spec.column.empty()) CHECK(std::find(columns.begin(), columns.end(), spec.column) != columns.end());
}

TEST_CASE("the study and sample refuse a bad sampler value with the same words") {
  std::string sample_err, study_err;
  CHECK(cli({"sample", "--snr", "0", "-n", "2", "--out", "/nonexistent/x.npy"}, &sample_err) == 2);
  CHECK(cli({"study", "--snr", "0.1,0", "--dry-run"}, &study_err) == 2);
  CHECK(sample_err.find("--snr = 0: must be > 0") != std::string::npos);
  CHECK(study_err.find("--snr = 0.1,0: \"0\": must be > 0") != std::string::npos);
  CHECK(cli({"study", "--steps", "10,0", "--dry-run"}, &study_err) == 2);
  CHECK(study_err.find("must be >= 1") != std::string::npos);
}

TEST_CASE("a sampler-dependent default applies unless the option is given, and --help states it") {
  OptionTable<Toy> table;
  table.push_back(option("sampler", &Toy::sampler, "which"));
  auto& order = table.emplace_back(option("order", &Toy::order, "method order", at_least(1)));
  order.sampler_defaults = {{"b", "3"}};
  const auto parse = [&](const std::vector<std::string>& args) {
    po::variables_map vm;
    std::ostringstream help;
    parse_arguments(args, option_group("Toy", table, Toy{}), "usage", vm, help);
    Toy t;
    read_group(table, vm, t);
    apply_sampler_defaults(table, vm, t.sampler, t);
    return t;
  };
  CHECK(parse({"--sampler", "a"}).order == 1);
  CHECK(parse({"--sampler", "b"}).order == 3);
  CHECK(parse({"--sampler", "b", "--order", "2"}).order == 2);
  CHECK_THROWS_WITH_AS(parse({"--order", "0"}), "--order = 0: must be >= 1", ConfigError);
  std::ostringstream help;
  help << option_group("Toy", table, Toy{});
  CHECK(help.str().find("3 for b") != std::string::npos);
}

TEST_CASE("scoresde list shows every sampler option with the samplers that use it") {
  std::ostringstream out, err;
  REQUIRE(run_cli({"list"}, out, err) == 0);
  const std::string text = out.str();
  const auto section = text.find("sampler options:");
  REQUIRE(section != std::string::npos);
  for (const auto& spec : sampler_option_table()) {
    if (spec.key == "sampler") continue;
    CAPTURE(spec.key);
    CHECK(text.find("--" + spec.key, section) != std::string::npos);
  }
  // The Langevin snr is pc's alone; tolerances belong to the adaptive ODE method.
  const auto pc_line = text.substr(text.find("\n  pc ", section), 120);
  CHECK(pc_line.find("--snr") != std::string::npos);
  const auto rk4_line = text.substr(text.find("ode --ode-method rk4", section), 60);
  CHECK(rk4_line.find("--rtol") == std::string::npos);
}

TEST_CASE("--time-grid takes a grid's name or a readable file, --rho applies to karras only") {
  const auto* grid = find_option(sampler_option_table(), "time-grid");
  const auto* rho = find_option(sampler_option_table(), "rho");
  REQUIRE(grid != nullptr);
  REQUIRE(rho != nullptr);
  SamplerOptions o;
  for (const auto& name : time_grid_names()) CHECK_FALSE(grid->parse(o, name).has_value());
  CHECK(grid->parse(o, "cosine").value().find("unknown time grid and no such file") != std::string::npos);
  CHECK(grid->parse(o, "/").value().find("is a directory") != std::string::npos);
  CHECK(grid->column == "time_grid");
  CHECK(grid->study == StudyRole::axis);
  o = SamplerOptions{};
  CHECK(grid->used_by(o));
  CHECK_FALSE(grid->shown_in_label(o));  // uniform: not in labels or ids
  CHECK_FALSE(rho->used_by(o));
  o.time_grid = "karras";
  CHECK(grid->shown_in_label(o));
  CHECK(rho->used_by(o));
  CHECK_FALSE(rho->shown_in_label(o));  // rho 7: the default, not shown
  o.rho = 3;
  CHECK(rho->shown_in_label(o));
  o.sampler = "ode";  // dopri5 uses the grid's ends only: neither applies
  CHECK_FALSE(grid->used_by(o));
  CHECK_FALSE(rho->used_by(o));
  o.ode_method = "rk4";
  CHECK(grid->used_by(o));
  CHECK(rho->used_by(o));
  const auto sde = make_sde(SdeOptions{});
  SamplerOptions bad_rho;
  bad_rho.rho = 0;
  CHECK_THROWS_WITH_AS(bad_rho.validate(*sde), "--rho = 0.0: must be > 0", ConfigError);
}
