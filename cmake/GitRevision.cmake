# Run at build time (cmake -P): writes OUT, a header defining SCORESDE_GIT_REVISION from `git describe --always
# --dirty` of SOURCE_DIR, rewriting it only when the revision changed so that nothing rebuilds needlessly.
set(revision "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty --abbrev=12
    WORKING_DIRECTORY ${SOURCE_DIR} OUTPUT_VARIABLE described OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
    RESULT_VARIABLE status)
  if(status EQUAL 0 AND described)
    set(revision "${described}")
  endif()
endif()
set(content "#pragma once\n#define SCORESDE_GIT_REVISION \"${revision}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${content}")
  file(WRITE ${OUT} "${content}")
endif()
