# Use ccache when it is installed. The precompiled header is only cacheable with ccache's pch
# sloppiness; it is set through the launcher's environment so no global ccache.conf is touched. The base
# directory makes paths inside the checkout relative, so every clone of the project (CI's, a second
# worktree) shares one cache.
find_program(DETKIT_CCACHE ccache)
if(DETKIT_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
          CCACHE_BASEDIR=${CMAKE_SOURCE_DIR} ${DETKIT_CCACHE})
  message(STATUS "detkit: ccache ${DETKIT_CCACHE}")
else()
  message(STATUS "detkit: ccache not found (builds will not be cached)")
endif()
