# --------------------------------------------------------------------------
# libFuzzer harnesses, when LUMU_FUZZ=ON (included from CMakeLists.txt).
#
#   CC=clang-14 cmake -S . -B build-fuzz -DLUMU_FUZZ=ON \
#       -DLUMU_LUA_SOURCE_DIR=.../lua5.4-5.4.4/src
#   cmake --build build-fuzz --target fuzz
#
# lumu_core (and Lua when it is built from source) get coverage
# instrumentation plus ASan and UBSan; every tests/fuzz/fuzz_<name>.c becomes
# an executable fuzz_<name> linked with libFuzzer.  tests/fuzz/run.sh seeds
# and runs them.  With BUILD_TESTING, ctest `fuzz-regress-<name>` replays the
# inputs saved in tests/fuzz/regress/<name>/ once each (label "fuzz").
# Uninstrumented: Debian's static libyaml, jansson and expat (ASan still
# checks every access lumu makes to their memory).
# --------------------------------------------------------------------------
option(LUMU_FUZZ "Build the libFuzzer harnesses in tests/fuzz (needs clang)" OFF)
if(NOT LUMU_FUZZ)
  return() # from this include: nothing else changes in the normal build
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "LUMU_FUZZ needs clang with libFuzzer: configure with CC=clang-14")
endif()
if(NOT LUMU_LUA_SOURCE_DIR)
  message(WARNING "LUMU_FUZZ without LUMU_LUA_SOURCE_DIR: Lua itself is not instrumented")
endif()

set(LUMU_FUZZ_FLAGS
  -fsanitize=fuzzer-no-link,address,undefined # coverage for libFuzzer, ASan, UBSan
  -fno-sanitize-recover=undefined             # UB aborts, so libFuzzer records it
  -fno-omit-frame-pointer)
# PUBLIC: the harnesses, lumu and the C tests compile and link the same way.
target_compile_options(lumu_core PUBLIC ${LUMU_FUZZ_FLAGS})
target_link_options(lumu_core PUBLIC -fsanitize=address,undefined)
if(TARGET lumu_lua)
  target_compile_options(lumu_lua PRIVATE ${LUMU_FUZZ_FLAGS})
  # The build-time stdlib compiler gets an uninstrumented copy of the same
  # Lua (same bytecode format), so it runs without the sanitizers' runtime.
  if(TARGET lumu_embedgen)
    add_library(lumu_lua_plain STATIC ${LUA_SRC})
    target_compile_definitions(lumu_lua_plain PUBLIC LUA_USE_LINUX)
    target_include_directories(lumu_lua_plain PUBLIC ${LUMU_LUA_SOURCE_DIR})
    target_link_libraries(lumu_lua_plain PUBLIC m ${CMAKE_DL_LIBS})
    set_property(TARGET lumu_embedgen PROPERTY LINK_LIBRARIES lumu_lua_plain)
  endif()
endif()

file(GLOB LUMU_FUZZ_HARNESSES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
file(GLOB LUMU_FUZZ_SUPPORT CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/support/*.c)
add_custom_target(fuzz)
foreach(src ${LUMU_FUZZ_HARNESSES})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" short ${name})
  add_executable(${name} ${src} ${LUMU_FUZZ_SUPPORT})
  target_compile_options(${name} PRIVATE ${LUMU_WARNINGS} -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  # where the Lua drivers (tests/fuzz/<name>.lua) are read from
  target_compile_definitions(${name} PRIVATE LUMU_FUZZ_DIR="${CMAKE_SOURCE_DIR}/tests/fuzz")
  target_link_libraries(${name} PRIVATE lumu_core)
  add_dependencies(fuzz ${name})
  file(GLOB _regress CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/regress/${short}/*)
  if(BUILD_TESTING AND _regress)
    add_test(NAME fuzz-regress-${short}
             COMMAND ${name} -runs=0 ${CMAKE_SOURCE_DIR}/tests/fuzz/regress/${short}
             WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(fuzz-regress-${short} PROPERTIES LABELS fuzz
      ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endif()
endforeach()
