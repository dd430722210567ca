// Time grids t_0 = T > t_1 > ... > t_N = eps for the fixed-step samplers (docs/samplers.md, "Time grids"):
//
//   uniform    t_i = T + i (eps - T) / N                                      (uniform in t; the default)
//   quadratic  t_i = (sqrt(T) + i/N (sqrt(eps) - sqrt(T)))^2       (DDIM's quadratic steps, Song, Meng & Ermon 2021)
//   logsnr     uniform in lambda_t = log(alpha_t / sigma_t) from lambda(T) to lambda(eps)   (Lu et al. 2022)
//   karras     sigma~_i = (smax^(1/rho) + i/N (smin^(1/rho) - smax^(1/rho)))^rho, sigma~ = sigma_t / alpha_t,
//              smax = sigma~(T), smin = sigma~(eps)                                    (Karras et al. 2022, eq. 5)
//
// or a file of the SDE's own times. A grid is plain data, built once before sampling; the named grids map back to
// t with the SDE's closed-form inverses (Sde::t_of_lambda, Sde::t_of_sigma_tilde) and end exactly at T and eps.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/option_table.hpp"
#include "core/sde.hpp"

namespace scoresde {

enum class TimeGridKind { uniform, quadratic, logsnr, karras };
template <>
struct EnumNames<TimeGridKind> {
  static constexpr std::string_view what = "time grid";
  static constexpr std::array<std::pair<TimeGridKind, std::string_view>, 4> values{
      {{TimeGridKind::uniform, "uniform"},
       {TimeGridKind::quadratic, "quadratic"},
       {TimeGridKind::logsnr, "logsnr"},
       {TimeGridKind::karras, "karras"}}};
};
std::string to_string(TimeGridKind kind);
std::vector<std::string> time_grid_names();

struct TimeGrid {
  std::string name;       // uniform, quadratic, logsnr, karras, or the file's path as given
  std::vector<double> t;  // t_0 > t_1 > ... > t_N > 0
  int steps() const { return static_cast<int>(t.size()) - 1; }
};

// The grid of `kind` from T down to eps in `steps` steps; rho is used by karras only. uniform is the driver's
// historical grid bit for bit (t_N set to eps exactly); every kind has t_0 = T and t_N = eps exactly. ConfigError
// naming the option for steps < 1, eps outside (0, T), rho <= 0 (karras), or two neighbouring times that coincide
// in double precision (too many steps for the grid's spacing near one end).
TimeGrid make_time_grid(TimeGridKind kind, const Sde& sde, double T, double eps, int steps, double rho = 7.0);

// A grid from a file of times t_0 > t_1 > ... > t_N > 0: a 1-d .npy array (float64 or float32; recognised by its
// magic string whatever the file's name) or text, numbers separated by white space or newlines ('#' starts a
// comment that runs to the end of the line). InputError naming the file when it cannot be read, holds a word that
// is not a number, is empty or holds fewer than 2 times, holds a non-finite time or one outside (0, T], or is not
// strictly decreasing.
TimeGrid read_time_grid_file(const std::string& path, double T);

// The grid with each of its steps [t_k, t_{k+1}] split into `parts` equal steps in t, t_k + j (t_{k+1} - t_k) / parts
// for j = 0 .. parts - 1: every time of `grid` is kept to the bit, so a Brownian path indexed by t is queried at the
// same times as on `grid`, and more. With keep_last the last step is left whole. Named "<name> refined xPARTS".
// ConfigError naming the grid for parts < 1 or a refined grid whose times are not decreasing in double precision.
TimeGrid refine_time_grid(const TimeGrid& grid, int parts, bool keep_last = false);

}  // namespace scoresde
