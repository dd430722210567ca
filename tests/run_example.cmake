# Runs an example program for ctest (tests/CMakeLists.txt): passes when it exits with status 0 and a line of its
# output starts with a match of EXPECT (a regular expression).
#
#   cmake -DPROGRAM=<path> -DEXPECT=<regex> -P run_example.cmake
#       the program built in this tree (test example_in_tree)
#   cmake -DBUILD_DIR=<dir> -DPREFIX=<dir> -DWORK_DIR=<dir> -DEXAMPLES_DIR=<dir> -DCXX_COMPILER=<path>
#         -DBUILD_TYPE=<type> -DGENERATOR=<name> [-DMAKE_PROGRAM=<path>] [-DLAUNCHER=<cmd>] -DEXPECT=<regex>
#         -P run_example.cmake
#       test example_installed: installs BUILD_DIR into PREFIX (cmake --install), configures EXAMPLES_DIR as a
#       project of its own in WORK_DIR with the same compiler, build type and generator, finding scoresde through
#       CMAKE_PREFIX_PATH=PREFIX only, builds it, checks that the package came from PREFIX, and runs the program.
#       PREFIX and WORK_DIR are emptied first.
cmake_minimum_required(VERSION 3.22)

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT status EQUAL 0)
    string(REPLACE ";" " " command "${ARGV}")
    message(FATAL_ERROR "run_example: `${command}` failed (${status}):\n${out}")
  endif()
  set(output "${out}" PARENT_SCOPE)
endfunction()

if(NOT DEFINED EXPECT)
  message(FATAL_ERROR "run_example: EXPECT not set")
endif()

if(DEFINED PREFIX)
  foreach(var BUILD_DIR WORK_DIR EXAMPLES_DIR CXX_COMPILER BUILD_TYPE GENERATOR)
    if(NOT ${var})
      message(FATAL_ERROR "run_example: ${var} not set")
    endif()
  endforeach()
  file(REMOVE_RECURSE ${PREFIX} ${WORK_DIR})
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} --config ${BUILD_TYPE})
  set(options -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_PREFIX_PATH=${PREFIX})
  if(MAKE_PROGRAM)
    list(APPEND options -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
  endif()
  if(LAUNCHER)
    list(APPEND options -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
  endif()
  run(${CMAKE_COMMAND} -S ${EXAMPLES_DIR} -B ${WORK_DIR} -G ${GENERATOR} ${options})
  message("${output}")
  # The package must be the one just installed, not another scoresde on the system or in a package registry.
  file(STRINGS ${WORK_DIR}/CMakeCache.txt found REGEX "^scoresde_DIR:")
  string(REGEX REPLACE "^scoresde_DIR:[A-Z]+=" "" found "${found}")
  file(REAL_PATH ${PREFIX} real_prefix)
  file(REAL_PATH "${found}" real_found)
  string(FIND "${real_found}/" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "run_example: scoresde found in ${found}, not in ${PREFIX}")
  endif()
  run(${CMAKE_COMMAND} --build ${WORK_DIR} --config ${BUILD_TYPE})
  set(PROGRAM ${WORK_DIR}/sample_and_evaluate)
endif()

if(NOT PROGRAM)
  message(FATAL_ERROR "run_example: PROGRAM or PREFIX must be set")
endif()
run(${PROGRAM})
message("${PROGRAM}:\n${output}")
if(NOT output MATCHES "(^|\n)${EXPECT}")
  message(FATAL_ERROR "run_example: no line starting with '${EXPECT}' in the output of ${PROGRAM}")
endif()
