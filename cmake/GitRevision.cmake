# Records the git revision the build was configured from; every result file carries it.
set(SCORESDE_GIT_REVISION "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty --abbrev=12
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}
    OUTPUT_VARIABLE SCORESDE_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT SCORESDE_GIT_REVISION)
    set(SCORESDE_GIT_REVISION "unknown")
  endif()
endif()
