#include "experiments/metrics/convergence.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/errors.hpp"
#include "core/noise.hpp"
#include "solvers/driver.hpp"
#include "solvers/registry.hpp"

namespace scoresde {

namespace {

// The declared orders of a configuration's stepper (copied: StepperInfo's text may belong to the stepper).
std::pair<double, double> declared_orders(const SamplerOptions& o) {
  const auto stepper =
      o.sampler == ode_sampler ? find_ode_method(o.ode_method).make(o) : make_predictor(o.resolved_predictor(), o);
  if (!stepper) return {0.0, 0.0};
  return {stepper->info().strong_order, stepper->info().weak_order};
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string number(double v) {
  return std::isfinite(v) ? fmt::format("{:.6g}", v) : "";
}

}  // namespace

ConvergenceCase convergence_case(const SamplerOptions& options) {
  ConvergenceCase c{"", options};
  for (const auto& entry : sampler_option_table())
    if (entry.study == StudyRole::axis && entry.shown_in_label(options))
      c.label += fmt::format(fmt::runtime(entry.label_format), entry.label_text(options));
  return c;
}

void ConvergenceSettings::validate() const {
  const std::string list = fmt::format("{}", fmt::join(steps, ","));
  require(steps.size() >= 3, "--steps", list,
          "give at least 3 step counts (a slope's standard error needs 3 points), e.g. 10,20,40,80,160");
  for (std::size_t i = 0; i < steps.size(); ++i) {
    require(steps[i] >= 1, "--steps", list, "every step count must be >= 1");
    require(i == 0 || steps[i] > steps[i - 1], "--steps", list, "give increasing step counts");
  }
  require(samples >= 2, "-n", std::to_string(samples), "must be >= 2");
  require(path.refine >= 2, "--refine", std::to_string(path.refine), "must be >= 2");
  require(path.rtol > 0 && path.atol > 0, "--reference-tol", fmt::format("{}", path.rtol), "must be > 0");
}

OrderFit fit_order(const std::vector<double>& steps, const std::vector<double>& errors) {
  const std::size_t m = steps.size();
  if (m < 2 || errors.size() != m)
    throw ConfigError(
        fmt::format("fit_order: {} step counts and {} errors; need at least 2 of each, as many", m, errors.size()));
  std::vector<double> x(m), y(m);
  for (std::size_t j = 0; j < m; ++j) {
    if (!(steps[j] > 0) || !(errors[j] > 0) || !std::isfinite(errors[j]))
      throw ConfigError(fmt::format("fit_order: step count {} has error {}; a log-log fit needs positive values",
                                    steps[j], errors[j]));
    x[j] = std::log(steps[j]);
    y[j] = std::log(errors[j]);
  }
  double mx = 0, my = 0;
  for (std::size_t j = 0; j < m; ++j) mx += x[j] / m, my += y[j] / m;
  double sxx = 0, sxy = 0;
  for (std::size_t j = 0; j < m; ++j) sxx += (x[j] - mx) * (x[j] - mx), sxy += (x[j] - mx) * (y[j] - my);
  const double slope = sxy / sxx, intercept = my - slope * mx;
  double ssr = 0;
  for (std::size_t j = 0; j < m; ++j) ssr += std::pow(y[j] - intercept - slope * x[j], 2);
  OrderFit fit;
  fit.order = -slope;
  fit.order_se = m > 2 ? std::sqrt(ssr / static_cast<double>(m - 2) / sxx) : std::numeric_limits<double>::quiet_NaN();
  return fit;
}

TimeGrid short_start_grid(const Sde& sde, const TimeGrid& grid) {
  const double l0 = sde.lambda(grid.t[0]), dl = sde.lambda(grid.t[1]) - l0;
  const double d = std::min(dl * dl, dl / 4);
  TimeGrid out{grid.name + " short start", {grid.t[0]}};
  for (int j = 1; j <= 3; ++j) out.t.push_back(sde.t_of_lambda(l0 + j * d));
  out.t.insert(out.t.end(), grid.t.begin() + 1, grid.t.end());
  return out;
}

Matrix prior_latents(const Sde& sde, std::uint64_t seed, Index dim, Index n) {
  Matrix x(dim, n);
  CounterRng(seed, NoisePurpose::prior).normal_columns(0, 0, 0, x);
  x *= sde.prior_std();
  return x;
}

std::vector<ConvergenceResult> measure_convergence(const Sde& sde, const ScoreModel& model,
                                                   const std::vector<ConvergenceCase>& cases,
                                                   const ConvergenceSettings& settings) {
  settings.validate();
  const Index n = settings.samples;
  std::vector<ConvergenceResult> results;
  std::map<std::pair<std::uint64_t, std::string>, Matrix> ode_references;  // by seed and shared_reference_key
  std::map<std::uint64_t, Matrix> latents_of;
  for (const auto& c : cases) {
    if (is_adaptive(c.options))
      throw ConfigError(
          fmt::format("--sampler = {} ({}): an adaptive method takes no step count; its tolerance is "
                      "its budget",
                      c.options.sampler, c.label));
    std::string why;
    const auto kind = path_error_kind(c.options, &why);
    if (!kind)
      throw ConfigError(fmt::format("--sampler = {} ({}): no path error: {}", c.options.sampler, c.label, why));
    auto& latents = latents_of[c.options.seed];
    if (latents.size() == 0) latents = prior_latents(sde, c.options.seed, model.dim(), n);
    const auto [strong_order, weak_order] = declared_orders(c.options);
    ConvergenceResult path{
        c.options.sampler, c.label, *kind, strong_order, {}, describe_path_reference(c.options, settings.path), {}};
    if (*kind == ErrorKind::path && settings.ode_reference) path.reference = "the exact flow map";
    ConvergenceResult weak{
        c.options.sampler, c.label, ErrorKind::weak, weak_order, {}, "the exact law at t_N (W2, not squared)", {}};
    bool weak_everywhere = static_cast<bool>(settings.weak_error);
    for (const int steps : settings.steps) {
      if (settings.progress) settings.progress(c.label, steps);
      SamplerOptions o = c.options;
      o.steps = steps;
      std::optional<GridFile> grid_file;
      if (settings.grid || settings.short_start) {
        const TimeGrid grid = settings.grid ? settings.grid(o, steps) : o.grid(sde);
        grid_file.emplace(settings.short_start ? short_start_grid(sde, grid) : grid);
        grid_file->apply(sde, o);
      }
      const SampleReport run = sample(sde, model, o, n, &latents);
      const Matrix* reference = nullptr;
      Matrix own;
      if (*kind == ErrorKind::path) {
        auto& shared = ode_references[{o.seed, shared_reference_key(sde, o, n, settings.path)}];
        if (shared.size() == 0)
          shared = settings.ode_reference ? settings.ode_reference(o, latents)
                                          : path_reference(sde, model, o, n, &latents, settings.path);
        reference = &shared;
      } else {
        own = path_reference(sde, model, o, n, &latents, settings.path);
        reference = &own;
      }
      const PathErrors e = path_errors(run.samples, *reference);
      path.points.push_back({steps, run.nfe_mean(), e.rms, e.max});
      if (weak_everywhere) {
        const auto w = settings.weak_error(o);
        if (w) {
          weak.points.push_back({steps, run.nfe_mean(), MetricValue{*w, 0.0}, *w});
        } else {
          weak_everywhere = false;
        }
      }
    }
    const auto fit = [](ConvergenceResult& r) {
      std::vector<double> steps, errors;
      for (const auto& p : r.points) {
        steps.push_back(p.steps);
        errors.push_back(p.error.value);
      }
      r.measured = fit_order(steps, errors);
    };
    fit(path);
    results.push_back(std::move(path));
    if (weak_everywhere) {
      fit(weak);
      results.push_back(std::move(weak));
    }
  }
  return results;
}

std::string orders_csv(const std::vector<ConvergenceResult>& results) {
  std::string csv = "sampler,label,kind,declared_order,measured_order,slope_se\n";
  for (const auto& r : results)
    csv += fmt::format("{},{},{},{},{},{}\n", csv_cell(r.sampler), csv_cell(r.label), to_string(r.kind),
                       number(r.declared_order), number(r.measured.order), number(r.measured.order_se));
  return csv;
}

std::string errors_csv(const std::vector<ConvergenceResult>& results) {
  std::string csv = "sampler,label,kind,steps,nfe,error,error_se,error_max\n";
  for (const auto& r : results)
    for (const auto& p : r.points)
      csv += fmt::format("{},{},{},{},{},{:.9g},{:.3g},{:.9g}\n", csv_cell(r.sampler), csv_cell(r.label),
                         to_string(r.kind), p.steps, number(p.nfe), p.error.value, p.error.std_error, p.error_max);
  return csv;
}

}  // namespace scoresde
