# The layers of docs/architecture.md, checked on the sources: each folder includes only the folders below it.
#   core/  <  models/  <  solvers/  <  experiments/metrics/, experiments/study/  <  experiments/cli/
# and solvers/ sees score models only through models/score_model.hpp (no checkpoint, network or training headers).
# Run as: cmake -DSOURCE_DIR=... -P check_layers.cmake
set(rules
  "core|models/|solvers/|experiments/"
  "models|solvers/|experiments/"
  "solvers|experiments/|models/checkpoint.hpp|models/mlp.hpp|models/training.hpp|models/score_factory.hpp"
  "experiments/metrics|experiments/cli/|experiments/study/"
  "experiments/study|experiments/cli/")
set(violations "")
foreach(rule ${rules})
  string(REPLACE "|" ";" parts "${rule}")
  list(POP_FRONT parts folder)
  file(GLOB sources ${SOURCE_DIR}/${folder}/*.hpp ${SOURCE_DIR}/${folder}/*.cpp)
  foreach(source ${sources})
    file(STRINGS ${source} includes REGEX "^#include \"")
    foreach(line ${includes})
      foreach(forbidden ${parts})
        string(FIND "${line}" "\"${forbidden}" at)
        if(at GREATER -1)
          file(RELATIVE_PATH name ${SOURCE_DIR} ${source})
          string(APPEND violations "  ${name}: ${line} (${folder}/ may not include ${forbidden})\n")
        endif()
      endforeach()
    endforeach()
  endforeach()
endforeach()
# LibTorch stays behind models/torchscript_plugin.cpp: no header and no other source includes it.
file(GLOB_RECURSE all_sources ${SOURCE_DIR}/core/*.[hc]pp ${SOURCE_DIR}/models/*.[hc]pp ${SOURCE_DIR}/solvers/*.[hc]pp
     ${SOURCE_DIR}/experiments/*.[hc]pp)
foreach(source ${all_sources})
  if(source MATCHES "models/torchscript_plugin\\.cpp$")
    continue()
  endif()
  file(STRINGS ${source} includes REGEX "^#include <(torch|ATen|c10)/")
  if(includes)
    file(RELATIVE_PATH name ${SOURCE_DIR} ${source})
    string(APPEND violations "  ${name}: ${includes} (only models/torchscript_plugin.cpp includes LibTorch)\n")
  endif()
endforeach()
if(violations)
  message(FATAL_ERROR "include layering broken (docs/architecture.md):\n${violations}")
endif()
message(STATUS "layers: every include points down")
