// sample_and_evaluate: the library in one page. Loads a Gaussian mixture, builds a forward SDE and the mixture's
// exact score under it, draws samples by solving the reverse-time SDE, and measures how far they are from exact
// samples of the mixture, every metric with its standard error.
//
//   sample_and_evaluate [DATA [SAMPLER [STEPS]]]
//
// DATA is a built-in distribution (eight_gaussians, gaussian) or a mixture file FILE.json (models/datasets.hpp);
// SAMPLER is one of euler_maruyama, reverse_diffusion, ancestral, pc, ode (solvers/options.hpp).
// `scoresde sample` and `scoresde evaluate` do the same with every option; this is the code underneath.
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "core/sde.hpp"
#include "experiments/metrics/metrics.hpp"
#include "models/datasets.hpp"
#include "models/gaussian_mixture.hpp"
#include "solvers/driver.hpp"
#include "solvers/options.hpp"

int main(int argc, char** argv) {
  using namespace scoresde;
  try {
    const std::string data = argc > 1 ? argv[1] : "eight_gaussians";
    const Index n = 2000;  // samples

    // 1. The data distribution p_0: a mixture whose density, and so whose score at every t, is known exactly.
    //    The dimension argument is 0: take the mixture's own (it sets the dimension of `gaussian` only).
    const std::shared_ptr<const GaussianMixture> mixture = load_data(data, 0);

    // 2. The forward SDE that turns data into noise: variance preserving, linear schedule (Song et al. 2021).
    SdeOptions sde_options;
    sde_options.kind = SdeKind::vp;
    const std::unique_ptr<Sde> sde = make_sde(sde_options);

    // 3. The score grad log p_t of the mixture diffused by that SDE, in closed form. A trained network
    //    (models/mlp.hpp) would take its place for data without a known density.
    const MixtureScore score(mixture, *sde);

    // 4. The sampler: Euler-Maruyama on the reverse-time SDE unless asked otherwise. Sample i depends only on
    //    (seed, i, options), whatever n and the number of threads.
    SamplerOptions options;
    options.sampler = argc > 2 ? argv[2] : "euler_maruyama";
    options.steps = argc > 3 ? std::stoi(argv[3]) : 500;
    options.seed = 0;
    options.validate(*sde);  // ConfigError naming the option when a value is out of range

    // 5. Sample: a d x n matrix, one column per sample, and the score evaluations each sample needed.
    const SampleReport report = sample(*sde, score, options, n);
    std::printf("%s, %s, %d steps: %lld samples in %.2f s, NFE per sample %.0f\n", data.c_str(),
                options.sampler.c_str(), options.steps, static_cast<long long>(report.samples.cols()),
                report.wall_seconds, report.nfe_mean());

    // 6. Evaluate against 10 n exact samples from the mixture, with every metric the mixture allows. The standard
    //    errors cover the randomness of both sets: two samplers differ only when their values differ by several.
    const Matrix reference = reference_points(*mixture, options.seed, default_reference_count(n));
    const MetricsOptions metrics_options;  // defaults: every metric, 128 projections, seed 0
    for (const auto& [name, metric] : evaluate_metrics(report.samples, reference, mixture.get(), metrics_options))
      std::printf("%-14s %12.6g ± %.3g\n", name.c_str(), metric.value, metric.std_error);
    return 0;
  } catch (const std::exception& e) {
    // The library throws ConfigError for a bad option (naming it), InputError for a bad mixture file and
    // NumericalError when a sample diverges (core/errors.hpp).
    std::fprintf(stderr, "sample_and_evaluate: %s\n", e.what());
    return 1;
  }
}
