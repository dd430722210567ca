// scoresde likelihood: per-point log p through the probability-flow ODE (solvers/likelihood.hpp) for points
// from a .npy file or drawn from a data set, with the exact score of a mixture (--data) or a trained network
// (--model; the points are in the data's units and the model's data scaling is accounted for). Writes LOGP.npy
// (n,) and LOGP.npy.json (mean NLL and bits/dim with standard errors, NFE, wall time, the resolved options, the
// build context and, when the points' mixture is known, the comparison with its exact log p_eps and log p_0),
// both atomically.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <numbers>
#include <optional>

#include "core/build_info.hpp"
#include "core/errors.hpp"
#include "core/file_fingerprint.hpp"
#include "core/npy.hpp"
#include "experiments/cli/cli.hpp"
#include "experiments/cli/model_cli.hpp"
#include "experiments/cli/options_cli.hpp"
#include "models/datasets.hpp"
#include "models/score_factory.hpp"
#include "solvers/likelihood.hpp"

namespace scoresde {

namespace {

// clang-format off
const char* likelihood_usage =
    "Usage: scoresde likelihood --points DATA.npy --data NAME|FILE.json [options] --out LOGP.npy\n"
    "       scoresde likelihood --points NAME|FILE.json -n COUNT [--seed S] [options] --out LOGP.npy\n"
    "       scoresde likelihood --model MODEL.ckpt|WEIGHTS.npz|MODULE.pt --points DATA.npy|NAME [options] --out LOGP.npy\n\n"
    "Integrates the probability-flow ODE and the change of log-density, [x; delta], from eps to T\n"
    "with dopri5 and adds the prior log-density at T (Song et al. 2021, eq. 39):\n"
    "    log p_eps(x) = log p_T(x_T) + int_eps^T div f~(x_t, t) dt.\n"
    "The score is the exact score of a mixture (--data) or a trained network (--model). A network works on\n"
    "standardised data y = (x - mean) / scale; points are given in the data's units and\n"
    "    log p(x) = log p_y((x - mean) / scale) - sum log scale.\n"
    "Writes per-point log p (nats) as an (n,) float64 .npy, and LOGP.npy.json with the mean negative\n"
    "log-likelihood and bits/dim (NLL / (d ln 2), + 7 or + 8 with --dequantize) with their standard\n"
    "errors, NFE, wall time and every option; when the points' mixture is known also its exact log p_eps\n"
    "and log p_0.\n\n"
    "Examples:\n"
    "  scoresde likelihood --points eight_gaussians -n 1000 --out logp.npy\n"
    "  scoresde likelihood --points x.npy --data mix.json --sde ve --divergence hutchinson --probes 4 \\\n"
    "                      --out logp.npy\n"
    "  scoresde likelihood --model eg.ckpt --points eight_gaussians -n 1000 --seed 1 --out model-logp.npy\n";
// clang-format on

nlohmann::ordered_json summary_json(const NllSummary& s) {
  return {{"mean_nll", s.mean_nll},
          {"nll_se", s.nll_se},
          {"bits_per_dim", s.bits_per_dim},
          {"bits_per_dim_se", s.bits_per_dim_se}};
}

// Mean, standard error of the mean, mean and largest absolute value of a per-point difference.
nlohmann::ordered_json difference_json(const Vector& e) {
  const double n = static_cast<double>(e.size());
  const double mean = e.mean();
  const double se = e.size() > 1 ? std::sqrt((e.array() - mean).square().sum() / (n - 1) / n) : 0.0;
  return {
      {"mean", mean}, {"se", se}, {"mean_abs", e.cwiseAbs().mean()}, {"max_abs", e.cwiseAbs().maxCoeff()}};
}

bool is_npy(const std::string& path) {
  return path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0;
}

}  // namespace

int likelihood_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description io("Points, model and output");
  // clang-format off
  io.add_options()
      ("points", po::value<std::string>(),
       "the points: an (n, d) float64/float32 .npy file, or a data set (eight_gaussians, gaussian, FILE.json; with "
       "--model also two_moons, swiss_roll, checkerboard, rings) to draw -n points from with --seed (required); "
       "with --model in the data's original units")
      ("samples,n", po::value<Index>()->default_value(1000), "number of points to draw when --points names a data set")
      ("data", po::value<std::string>(),
       "the model: the exact score of this mixture (eight_gaussians, gaussian, FILE.json); defaults to the data "
       "set --points names; not with --model")
      ("dim", po::value<Index>()->default_value(0), "dimension for gaussian; checked against a mixture file or --model")
      ("terminal", po::value<std::string>()->default_value("prior"),
       "the log-density added at T: prior (N(0, prior_std^2 I), the method), or exact (a mixture's exact log p_T: "
       "a check of the solver; not with --model)")
      ("out", po::value<std::string>(), "output .npy of per-point log p (required); OUT.json is written beside it")
      ("quiet", po::bool_switch(), "print nothing on success");
  add_model_options(io,
                    "the model: a trained score network instead of a mixture, MODEL.ckpt from `scoresde train` (its "
                    "SDE and data scaling are used; SDE options given override the SDE, with a warning) or PyTorch "
                    "weights FILE.npz (identity scaling, the SDE options given) or a TorchScript module FILE.pt (its "
                    "declared SDE and scaling, as a checkpoint's)");
  // clang-format on
  po::options_description visible;
  visible.add(io)
      .add(sde_option_group())
      .add(option_group("Likelihood", likelihood_option_table(), LikelihoodOptions{}));
  po::variables_map vm;
  if (!parse_arguments(args, visible, likelihood_usage, vm, out)) return 0;

  if (!vm.count("points"))
    throw ConfigError("--points: required; name an (n, d) .npy file or a data set to draw points from");
  if (!vm.count("out")) throw ConfigError("--out: required; name the .npy file to write");
  const std::string out_path = vm["out"].as<std::string>();
  check_out_path(out_path, "logp.npy");
  const std::string points_arg = vm["points"].as<std::string>();
  const bool from_file = is_npy(points_arg);

  SdeOptions sde_options = sde_options_from(vm);
  // The model: the exact score of a mixture (--data), or a trained network (--model) whose SDE comes from its
  // checkpoint.
  const std::optional<LoadedModel> loaded = load_model_from(vm, sde_options, "likelihood", err);
  if (loaded) sde_options = loaded->sde;
  if (!loaded && from_file && !vm.count("data"))
    throw ConfigError(
        fmt::format("--data: required with --points {}; name the mixture whose exact score is the "
                    "model, or a trained network with --model",
                    points_arg));
  const std::string data_name = vm.count("data") ? vm["data"].as<std::string>() : points_arg;

  const auto sde = make_sde(sde_options);
  LikelihoodOptions lo;
  read_group(likelihood_option_table(), vm, lo);
  lo.validate(*sde);
  const std::string terminal = vm["terminal"].as<std::string>();
  require(terminal == "prior" || terminal == "exact", "--terminal", terminal, "choose prior or exact");
  if (loaded && terminal == "exact")
    throw ConfigError("--terminal = exact: needs a mixture's exact log p_T (--data); a trained network has none");

  // With --data the model is the mixture's exact score; with --model the network, and `reference` the mixture the
  // points are drawn from, when --points names one (for the comparison with the exact density).
  const auto score = loaded ? loaded->source : open_score(ScoreSpec::exact(data_name, vm["dim"].as<Index>()));
  const std::unique_ptr<ScoreModel> model = score->make(*sde);
  const std::shared_ptr<const GaussianMixture> mixture = score->mixture();  // nullptr for a network
  std::shared_ptr<const GaussianMixture> reference;
  const std::string model_name = loaded ? "--model " + loaded->path : "--data " + data_name;
  const Index dim = model->dim();
  const DivergenceMethod divergence = lo.resolved_divergence(*model);

  Matrix points;
  Index n = vm["samples"].as<Index>();
  const auto check_dimension = [&](Index rows) {
    if (rows != dim)
      throw ConfigError(fmt::format("--points = {}: points of dimension {}, but {} is {}-dimensional", points_arg, rows,
                                    model_name, dim));
  };
  if (from_file) {
    try {
      points = read_samples_npy(points_arg);
    } catch (const InputError& e) {
      throw InputError(fmt::format("--points: {}", e.what()));
    }
    if (!vm["samples"].defaulted() && n != points.cols())
      throw ConfigError(fmt::format("-n = {}: --points {} holds {} points; leave -n out or make them agree",
                                    n, points_arg, points.cols()));
    n = points.cols();
    check_dimension(points.rows());
    check_points(points, dim, fmt::format("--points = {}", points_arg));
  } else {
    require(n >= 1, "-n/--samples", std::to_string(n), "must be >= 1");
    const Index dim_given = vm["dim"].as<Index>();
    if (has_exact_mixture(points_arg)) {
      const auto source = load_data(points_arg, loaded && points_arg == "gaussian" && dim_given == 0 ? dim : dim_given);
      check_dimension(source->dim());
      points.resize(source->dim(), n);
      source->sample(lo.seed, 0, points);
      if (loaded) reference = source;
    } else {
      const auto names = training_data_names();
      if (!loaded || !is_builtin_training_data(points_arg))
        throw ConfigError(fmt::format(
            "--points = {}: not a .npy file nor a data set ({}{})", points_arg,
            loaded ? fmt::format("{}, ", fmt::join(names, ", ")) : std::string("eight_gaussians, gaussian, "),
            "or a mixture FILE.json"));
      points = load_training_data(points_arg, n, lo.seed, 0);
      check_dimension(points.rows());
    }
  }

  LikelihoodResult r;
  try {
    r = loaded ? model_log_likelihood(*model, *sde, loaded->scaling(), points, lo)
               : compute_log_likelihood(*model, *sde, points, lo);
  } catch (const NumericalError& e) {
    err << fmt::format("scoresde likelihood: the probability-flow solve failed: {}; nothing was written\n",
                       e.what());
    return 3;
  }

  // The exact densities of the same points, when known.
  const double offset = bits_per_dim_offset(lo.dequantization);
  nlohmann::ordered_json exact;
  std::optional<NllSummary> exact_summary;
  if (mixture) {
    const MixtureScore mixture_model(mixture, *sde);  // the exact densities under the SDE
    Vector exact_eps, exact_0, exact_T;
    mixture_model.log_density(points, r.eps, exact_eps);
    mixture->evaluate(1.0, 0.0, points, &exact_0, nullptr, nullptr);
    mixture_model.log_density(r.latents, r.T, exact_T);
    const Vector prior_mismatch = r.prior_log_p - exact_T;
    const Vector with_prior = r.log_p;
    if (terminal == "exact") replace_terminal_log_density(r, exact_T);
    exact_summary = summarize_nll(exact_eps, dim, offset);
    exact = {{"about",
              "the mixture's exact densities of the same points; log p_eps is what the ODE computes, log p_0 the data "
              "density. error = log p - exact log p_eps = prior_mismatch (log prior(x_T) - log p_T(x_T); zero with "
              "--terminal exact) + solver_error"},
             {"log_p_eps", summary_json(*exact_summary)},
             {"log_p_0", summary_json(summarize_nll(exact_0, dim, offset))},
             {"log_p_eps_minus_log_p_0", difference_json(exact_eps - exact_0)},
             {"error", difference_json(r.log_p - exact_eps)},
             {"prior_mismatch", difference_json(prior_mismatch)},
             {"solver_error", difference_json(with_prior - prior_mismatch - exact_eps)}};
  } else if (reference) {
    // What the network approximates: the data's mixture in its standardised units, diffused to eps by its SDE,
    // mapped back to the data's units (the same log-Jacobian as the model's).
    const DataScaling& scaling = loaded->scaling();
    const MixtureScore target(std::make_shared<const GaussianMixture>(standardised_mixture(*reference, scaling)), *sde);
    Vector exact_eps, exact_0;
    target.log_density(scaling.to_standard(points), r.eps, exact_eps);
    exact_eps.array() += r.log_jacobian;
    reference->evaluate(1.0, 0.0, points, &exact_0, nullptr, nullptr);
    exact_summary = summarize_nll(exact_eps, dim, offset);
    exact = {{"about",
              "the exact densities of the same points under the mixture --points names: log p_0, the data density, "
              "and log p_eps, the density the network approximates (the mixture standardised with the model's "
              "data scaling, diffused to eps by the model's SDE, and mapped back). error = log p - exact log "
              "p_eps: the model's error (its score, the prior at T and the solver); its mean is minus the "
              "estimated KL(p_eps || model)"},
             {"log_p_eps", summary_json(*exact_summary)},
             {"log_p_0", summary_json(summarize_nll(exact_0, dim, offset))},
             {"log_p_eps_minus_log_p_0", difference_json(exact_eps - exact_0)},
             {"error", difference_json(r.log_p - exact_eps)},
             {"error_vs_log_p_0", difference_json(r.log_p - exact_0)}};
  }

  nlohmann::ordered_json resolved;
  resolved["points"] = points_arg;
  resolved["samples"] = from_file ? nlohmann::ordered_json() : nlohmann::ordered_json(n);
  if (loaded)
    loaded->record(resolved);
  else
    resolved["data"] = data_name;
  resolved["dim"] = dim;
  resolved["terminal"] = terminal;
  resolved["out"] = out_path;
  record(sde_options, resolved);
  LikelihoodOptions used = lo;  // as run: the divergence method resolved for the model, eps for the SDE
  used.divergence = divergence;
  used.eps = r.eps;
  record_options(likelihood_option_table(), used, resolved);

  const NllSummary& s = r.summary;
  nlohmann::ordered_json result = {
      {"n", n},
      {"dim", dim},
      {"log_p", loaded ? "log p_eps(x) in nats of the points in the data's units: the model's log p_eps at the "
                         "standardised point (x - mean) / scale plus log_jacobian = -sum log scale"
                       : "log p_eps(x) in nats: log-density at time eps under the model's probability-flow ODE"},
      {"mean_nll", s.mean_nll},
      {"nll_se", s.nll_se},
      {"bits_per_dim", s.bits_per_dim},
      {"bits_per_dim_se", s.bits_per_dim_se},
      {"bits_per_dim_offset", s.bits_per_dim_offset},
      {"divergence", to_string(r.divergence)},
      {"evaluation", describe(r.evaluation)},
      {"terminal", terminal == "prior" ? fmt::format("prior N(0, {}^2 I)", sde->prior_std())
                                       : std::string("exact log p_T of the mixture")},
      {"eps", r.eps},
      {"T", r.T},
      {"nfe", r.nfe_mean()},
      {"nfe_max", r.nfe_max()},
      {"score_calls", r.score_calls},
      {"score_columns", r.score_columns},
      {"wall_seconds", r.wall_seconds}};
  if (loaded) result["log_jacobian"] = r.log_jacobian;

  nlohmann::ordered_json meta;
  meta["command"] = command_line("likelihood", resolved);
  meta["options"] = resolved;
  meta["inputs"] = input_files({{"points", data_source_file(points_arg)},
                                {"model", loaded ? loaded->path : ""},
                                {"data", loaded || !vm.count("data") ? "" : data_source_file(data_name)}});
  meta["result"] = result;
  if (!exact.is_null()) meta["exact"] = exact;
  meta["model"] = model->describe();
  if (loaded) {
    const DataScaling& scaling = loaded->scaling();
    meta["model_scaling"] = {{"mean", std::vector<double>(scaling.mean.begin(), scaling.mean.end())},
                             {"scale", std::vector<double>(scaling.scale.begin(), scaling.scale.end())}};
    meta["model_training"] = loaded->training_command();
  }
  meta["context"] = build_context();
  meta["context"]["threads"] = lo.threads;

  write_npy_with_json(
      out_path, [&](const std::string& tmp) { dump_vector_npy(tmp, r.log_p); }, meta.dump(2) + "\n");
  if (!vm["quiet"].as<bool>()) {
    out << fmt::format(
        "wrote {} ({} points of dimension {}): NLL {:.4f} ± {:.4f} nats, {:.4f} ± {:.4f} bits/dim ({} "
        "divergence); ",
        out_path, n, dim, s.mean_nll, s.nll_se, s.bits_per_dim, s.bits_per_dim_se, to_string(r.divergence));
    if (exact_summary)
      out << fmt::format("exact log p_eps: {:.4f} ± {:.4f} bits/dim; ", exact_summary->bits_per_dim,
                         exact_summary->bits_per_dim_se);
    out << fmt::format("NFE {:.1f}; {:.3f} s; summary in {}.json\n", r.nfe_mean(), r.wall_seconds, out_path);
  }
  return 0;
}

}  // namespace scoresde
