#include "core/time_grid.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/npy.hpp"

namespace scoresde {

std::string to_string(TimeGridKind kind) {
  return std::string(enum_name(kind));
}
std::vector<std::string> time_grid_names() {
  return enum_names<TimeGridKind>();
}

namespace {

// The times t_0 .. t_N of a grid whose i-th point is at(i / N), with the ends set to T and eps exactly.
template <class At>
std::vector<double> grid_from(double T, double eps, int steps, At at) {
  std::vector<double> t(static_cast<std::size_t>(steps) + 1);
  for (int i = 1; i < steps; ++i) t[i] = at(static_cast<double>(i) / steps);
  t.front() = T;
  t.back() = eps;
  return t;
}

}  // namespace

TimeGrid make_time_grid(TimeGridKind kind, const Sde& sde, double T, double eps, int steps, double rho) {
  require(steps >= 1, "--steps", std::to_string(steps), "must be >= 1");
  require(std::isfinite(eps) && eps > 0 && eps < T, "--eps", fmt::format("{}", eps),
          fmt::format("must be in (0, T) = (0, {})", T));
  TimeGrid grid{to_string(kind), {}};
  switch (kind) {
    case TimeGridKind::uniform:
      // The driver's grid since the first release, kept to the bit: results on the default grid do not change.
      grid.t.resize(static_cast<std::size_t>(steps) + 1);
      for (int k = 0; k <= steps; ++k) grid.t[k] = T + k * (eps - T) / steps;
      grid.t.back() = eps;
      break;
    case TimeGridKind::quadratic: {
      const double a = std::sqrt(T), b = std::sqrt(eps);
      grid.t = grid_from(T, eps, steps, [&](double u) {
        const double r = a + u * (b - a);
        return r * r;
      });
      break;
    }
    case TimeGridKind::logsnr: {
      const double high = sde.lambda(T), low = sde.lambda(eps);  // lambda decreases in t: high < low
      grid.t = grid_from(T, eps, steps, [&](double u) { return sde.t_of_lambda(high + u * (low - high)); });
      break;
    }
    case TimeGridKind::karras: {
      require(std::isfinite(rho) && rho > 0, "--rho", fmt::format("{}", rho), "must be > 0");
      const double a = std::pow(sde.sigma_tilde(T), 1.0 / rho), b = std::pow(sde.sigma_tilde(eps), 1.0 / rho);
      grid.t = grid_from(T, eps, steps, [&](double u) { return sde.t_of_sigma_tilde(std::pow(a + u * (b - a), rho)); });
      break;
    }
  }
  for (int k = 0; k < steps; ++k)
    if (!(grid.t[k] > grid.t[k + 1]))
      throw ConfigError(
          fmt::format("--time-grid = {}: with --steps {} the times t_{} = {} and t_{} = {} are not "
                      "decreasing in double precision; take fewer steps or another grid",
                      grid.name, steps, k, grid.t[k], k + 1, grid.t[k + 1]));
  return grid;
}

namespace {

std::vector<double> read_text_times(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  std::vector<double> times;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      char* end = nullptr;
      const double value = std::strtod(word.c_str(), &end);
      if (end != word.c_str() + word.size())
        throw InputError(fmt::format("{}: line {}: \"{}\" is not a number", path, number, word));
      times.push_back(value);
    }
  }
  if (in.bad()) throw InputError(fmt::format("{}: cannot read ({})", path, std::strerror(errno)));
  return times;
}

}  // namespace

TimeGrid read_time_grid_file(const std::string& path, double T) {
  refuse_directory(path, "a file of times");
  std::vector<double> t;
  if (has_npy_magic(path)) {
    const Vector v = read_vector_npy(path);
    t.assign(v.data(), v.data() + v.size());
  } else {
    t = read_text_times(path);
  }
  const char* expected =
      "expected times t_0 > t_1 > ... > t_N > 0 (one number per line or separated by white "
      "space, or a 1-d .npy array)";
  if (t.empty()) throw InputError(fmt::format("{}: holds no times; {}", path, expected));
  if (t.size() < 2)
    throw InputError(fmt::format("{}: holds one time ({}); a grid needs at least two, t_0 > t_N", path, t[0]));
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (!std::isfinite(t[i])) throw InputError(fmt::format("{}: t_{} = {} is not finite", path, i, t[i]));
    if (!(t[i] > 0 && t[i] <= T))
      throw InputError(fmt::format("{}: t_{} = {} is outside (0, T] = (0, {}]", path, i, t[i], T));
    if (i > 0 && !(t[i] < t[i - 1]))
      throw InputError(fmt::format("{}: not strictly decreasing: t_{} = {} >= t_{} = {}; {}", path, i, t[i], i - 1,
                                   t[i - 1], expected));
  }
  return TimeGrid{path, std::move(t)};
}

TimeGrid refine_time_grid(const TimeGrid& grid, int parts, bool keep_last) {
  require(parts >= 1, "refinement", std::to_string(parts), "must be >= 1");
  TimeGrid fine{fmt::format("{} refined x{}", grid.name, parts), {}};
  const int N = grid.steps();
  fine.t.reserve(static_cast<std::size_t>(N) * parts + 1);
  for (int k = 0; k < N; ++k) {
    const double a = grid.t[k], b = grid.t[k + 1];
    const int split = keep_last && k + 1 == N ? 1 : parts;
    for (int j = 0; j < split; ++j) fine.t.push_back(j == 0 ? a : a + j * (b - a) / split);
  }
  fine.t.push_back(grid.t.back());
  for (std::size_t k = 0; k + 1 < fine.t.size(); ++k)
    if (!(fine.t[k] > fine.t[k + 1]))
      throw ConfigError(
          fmt::format("{}: the times t_{} = {} and t_{} = {} are not decreasing in double precision; "
                      "the grid's steps are too short to split into {}",
                      fine.name, k, fine.t[k], k + 1, fine.t[k + 1], parts));
  return fine;
}

}  // namespace scoresde
