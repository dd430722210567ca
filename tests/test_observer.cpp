// The driver's Observer on the adaptive path (dopri5): called after every accepted step, from worker threads, with
// times decreasing to eps and a last state equal to the returned samples; observing changes no sample.
#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <vector>

#include "models/datasets.hpp"
#include "sampler_cases.hpp"
#include "solvers/driver.hpp"

using namespace scoresde;
using scoresde::testing::bitwise_equal;

namespace {

// Every call, by first sample.
class Recorder final : public Observer {
 public:
  struct Track {
    std::vector<Index> valid, steps;
    std::vector<double> times;
    Matrix last;
  };
  void on_step(Index first_sample, Index valid, Index step, double t, ConstMatrixRef x) override {
    const std::lock_guard<std::mutex> lock(mutex_);
    auto& track = tracks[first_sample];
    track.valid.push_back(valid);
    track.steps.push_back(step);
    track.times.push_back(t);
    track.last = x;
  }
  std::map<Index, Track> tracks;

 private:
  std::mutex mutex_;
};

// Steps 0, 1, ..., times strictly decreasing from below T to eps, the same `valid` on every call, and the last
// state's first `valid` columns equal to the returned samples first .. first + valid - 1.
void check_track(const Recorder::Track& track, Index first, Index valid, double T, double eps, const Matrix& samples) {
  CAPTURE(first);
  REQUIRE(!track.steps.empty());
  for (std::size_t k = 0; k < track.steps.size(); ++k) {
    CHECK(track.steps[k] == static_cast<Index>(k));
    CHECK(track.valid[k] == valid);
    CHECK(track.times[k] < (k == 0 ? T : track.times[k - 1]));
  }
  CHECK(track.times.back() == doctest::Approx(eps).epsilon(1e-12));  // odeint reaches eps up to rounding
  REQUIRE(track.last.cols() >= valid);
  CHECK(bitwise_equal(track.last.leftCols(valid), samples.middleCols(first, valid)));
}

}  // namespace

TEST_CASE("dopri5 calls the observer after every accepted step, per chunk, and the samples do not change") {
  const auto mixture = load_data("eight_gaussians", 0);
  for (const SdeKind kind : {SdeKind::vp, SdeKind::ve}) {
    CAPTURE(to_string(kind));
    SdeOptions so;
    so.kind = kind;
    const auto sde = make_sde(so);
    const MixtureScore model(mixture, *sde);
    SamplerOptions o;
    o.sampler = "ode";
    o.ode_method = "dopri5";
    o.rtol = o.atol = 1e-4;
    o.chunk = 64;
    o.threads = 2;
    const Index n = 150;  // chunks of 64, 64 and 22 samples
    const Matrix plain = sample(*sde, model, o, n).samples;
    Recorder recorder;
    const Matrix observed = sample(*sde, model, o, n, nullptr, &recorder).samples;
    CHECK(bitwise_equal(plain, observed));
    REQUIRE(recorder.tracks.size() == 3);
    for (const Index first : {0, 64, 128}) {
      REQUIRE(recorder.tracks.count(first) == 1);
      const auto& track = recorder.tracks.at(first);
      CHECK(track.last.cols() == o.chunk);
      check_track(track, first, std::min<Index>(o.chunk, n - first), sde->T(), o.resolved_eps(*sde), observed);
    }
  }
}

TEST_CASE("dopri5 with per-sample control calls the observer for each sample with its own steps") {
  const auto sde = make_sde(SdeOptions{});
  const MixtureScore model(load_data("eight_gaussians", 0), *sde);
  SamplerOptions o;
  o.sampler = "ode";
  o.ode_method = "dopri5";
  o.rtol = o.atol = 1e-3;
  o.ode_control = OdeControl::sample;
  o.chunk = 8;
  o.threads = 2;
  const Index n = 20;
  const Matrix plain = sample(*sde, model, o, n).samples;
  Recorder recorder;
  const Matrix observed = sample(*sde, model, o, n, nullptr, &recorder).samples;
  CHECK(bitwise_equal(plain, observed));
  // Only the samples are integrated under per-sample control, not the columns that fill the last chunk.
  REQUIRE(recorder.tracks.size() == static_cast<std::size_t>(n));
  for (Index j = 0; j < n; ++j) {
    const auto& track = recorder.tracks.at(j);
    CHECK(track.last.cols() == 1);
    check_track(track, j, 1, sde->T(), o.resolved_eps(*sde), observed);
  }
}
