# --------------------------------------------------------------------------
# valgrind memcheck over the whole test suite (included at the end of
# CMakeLists.txt):
#
#   cmake -S . -B build && cmake --build build -j2
#   ctest --test-dir build -T memcheck -LE faults -j2 [-R ...]
#
# (-LE faults: leave out faults-ci, a python driver that would itself run
# under valgrind.)
#
# Every ctest runs under valgrind: C tests and `lumu test` specs directly;
# the CLI tests' bash under valgrind with --trace-children, so the lumu it
# starts is checked too, while system programs (python3 fakeaws, coreutils,
# tmux, chromium: everything under /usr, /bin, /sbin, and any python) run
# natively.
# A test fails on any memcheck error (invalid read/write, use of
# uninitialised values, bad free) or a *definite* leak in any traced
# process; "possible" and "still reachable" blocks are neither shown nor
# counted.
# Known noise from libc, bash, libcurl and OpenSSL is in
# tests/valgrind.supp, each entry with the reason.  Results: the summary
# ctest prints and build/Testing/Temporary/MemoryChecker.<n>.log (every
# traced process's report; cmake/valgrind-memcheck.sh).  ctest's default
# timeout (1500 s per test) applies: under valgrind code runs 20-50x slower.
# --------------------------------------------------------------------------
include(${CMAKE_CURRENT_LIST_DIR}/faults.cmake) # ctest faults-ci (label "faults")

find_program(LUMU_VALGRIND valgrind)
if(NOT BUILD_TESTING OR NOT LUMU_VALGRIND)
  return()
endif()

# ctest sees a valgrind (the name says so); the wrapper gives each traced
# process its own log, joins them for ctest and fails the test on errors
# in any of them.
set(MEMORYCHECK_COMMAND ${CMAKE_SOURCE_DIR}/cmake/valgrind-memcheck.sh)
set(MEMORYCHECK_SUPPRESSIONS_FILE ${CMAKE_SOURCE_DIR}/tests/valgrind.supp)
string(JOIN " " MEMORYCHECK_COMMAND_OPTIONS
  --tool=memcheck
  --error-exitcode=97                  # a memcheck error fails the test (97: not a lumu code)
  --leak-check=full
  --errors-for-leak-kinds=definite     # definite leaks are errors; possible/reachable are not
  --show-leak-kinds=definite           # "possibly lost" is Lua's interior pointers when a
                                       # script ends with os.exit() (the state is not closed, as
                                       # in lua.c): not shown, so ctest does not count it
  # --track-origins=yes shows where an uninitialised value came from, at
  # twice the cost: add it by hand when chasing one (ctest -R that-test)
  --num-callers=30
  --trace-children=yes                 # the lumu that CLI test scripts start
  # but not python3 (fakeaws, botocore checks; also a pyenv shim or python
  # outside /usr), bash's helpers, tmux, chromium
  --trace-children-skip=/usr/*,/bin/*,/sbin/*,*/python*,*/pyenv*,*/.pyenv/*
  --child-silent-after-fork=yes        # no reports from forked children that exec nothing traced
)
# include(CTest) wrote DartConfiguration.tcl before this file was read:
# write it again with the settings above (same template CTest.cmake uses).
configure_file(${CMAKE_ROOT}/Modules/DartConfiguration.tcl.in
               ${PROJECT_BINARY_DIR}/DartConfiguration.tcl)
