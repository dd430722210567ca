#include <iostream>
#include <string>
#include <vector>

#include "experiments/cli/cli.hpp"

int main(int argc, char** argv) {
  return scoresde::run_cli(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
