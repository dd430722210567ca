#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "experiments/cli/cli.hpp"

int main(int argc, char** argv) {
  const int code = scoresde::run_cli(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
  // What a command prints (a table, `list`, the summary of a run) is output too: a full disk or a closed pipe
  // behind standard output is an error, not a silent success.
  errno = 0;
  std::cout.flush();
  if (!std::cout) {
    const int error = errno;
    std::cerr << "scoresde: cannot write to standard output (" << (error ? std::strerror(error) : "write error")
              << ")\n";
    return code == 0 ? 2 : code;
  }
  return code;
}
