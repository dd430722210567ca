// Plotting scripts compiled into the program (experiments/study/report.py, experiments/cli/convergence_plot.py) run
// under a Python interpreter, /usr/bin/python3 by default, where Debian's numpy and matplotlib live.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace scoresde {

// Runs `python - ARGS...` with `script` on its standard input and returns its exit status. ConfigError naming
// --python when the interpreter cannot be started.
int run_python_script(const std::string& python, std::string_view script, const std::vector<std::string>& args);

}  // namespace scoresde
