#include "core/build_info.hpp"

#include "scoresde_revision.hpp"  // generated at build time

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>
#include <Eigen/Core>
#include <boost/version.hpp>
#include <chrono>

namespace scoresde {

std::string version() {
  return SCORESDE_VERSION;
}
std::string git_revision() {
  return SCORESDE_GIT_REVISION;
}

nlohmann::json build_context() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  return {
    {"program", "scoresde"}, {"version", version()}, {"git_revision", git_revision()},
        {"compiler", fmt::format("g++ {}", __VERSION__)}, {"build_type", SCORESDE_BUILD_TYPE},
#if defined(__AVX512F__)
        {"simd", "avx512"},
#elif defined(__AVX2__)
        {"simd", "avx2"},
#else
        {"simd", "baseline"},
#endif
        {"date_utc", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", now)}, {"host", host},
        {"eigen", fmt::format("{}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION)},
        {"boost", fmt::format("{}.{}.{}", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100)},
  };
}

}  // namespace scoresde
