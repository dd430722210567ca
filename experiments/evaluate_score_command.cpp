#include "experiments/cli.hpp"
