// Typed errors. Configuration mistakes, unreadable files and numerical failures are different things and are
// reported differently: the command line maps the first two to exit status 2, a numerical failure to status 3.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace scoresde {

// A bad option value or an inconsistent combination of options. The message names the option and what is allowed.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file that cannot be read, or whose content is malformed. The message names the file and the problem.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A state that turned non-finite during integration: which sample, at which step and time.
class NumericalError : public std::runtime_error {
 public:
  NumericalError(const std::string& what, long sample, long step, double time)
      : std::runtime_error(what), sample(sample), step(step), time(time) {}
  long sample;
  long step;
  double time;
};

// Throws ConfigError("<option> = <value>: <requirement>") unless `ok`.
void require(bool ok, const std::string& option, const std::string& value, const std::string& requirement);

// Notes for the user where the library accepts an input with a change the user should know of (a mixture's weights
// normalised, arrays of an .npz that it does not use): each distinct text goes once to the sink, which the program
// sets (scoresde: its standard error, "scoresde: note: ..."); by default to std::cerr. Thread-safe.
using NoticeSink = std::function<void(const std::string& text)>;
// Installs `sink` (empty: notices are dropped) and returns the previous one; texts already given are forgotten, so
// the new sink receives each again.
NoticeSink set_notice_sink(NoticeSink sink);
void notice(const std::string& text);

}  // namespace scoresde
