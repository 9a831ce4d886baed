# --------------------------------------------------------------------------
# Fault injection (tests/faults/run.py): ctest `faults-ci`, label "faults":
# 20 chaos seeds of fakeaws against `lumu up` / `env terminate` / `purge` of
# the bundled example, then a clean rerun each (about 8 minutes with 5 runs
# at a time; `ctest -LE faults` leaves it out).  The full run is by hand:
#   python3 tests/faults/run.py --lumu build/lumu --seeds 1-200 --jobs 6
# --------------------------------------------------------------------------
if(NOT BUILD_TESTING)
  return()
endif()
add_test(NAME faults-ci
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/faults/run.py
          --lumu $<TARGET_FILE:lumu> --seeds 1-20 --jobs 5 --quiet
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(faults-ci PROPERTIES LABELS faults TIMEOUT 1500
  ENVIRONMENT "LUMU_SHARED=${CMAKE_SOURCE_DIR}/../shared")
