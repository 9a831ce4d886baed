/* Shared helpers for the cmocka tests: Lua states under the tracking
 * allocator, checked for leaks when closed. */
#ifndef LUMU_TEST_HARNESS_H
#define LUMU_TEST_HARNESS_H

#include <lua.h>

/* A state with lumu's libraries open (tracking allocator on). */
lua_State *harness_state(void);

/* Closes L and fails the current test when any byte allocated through the
 * tracker (Lua, jansson, expat, libcurl) is still outstanding. */
void harness_close(lua_State *L);

/* Runs chunk in L; fails the test with the error message if it raises.
 * Leaves nothing on the stack. */
void harness_run(lua_State *L, const char *chunk);

/* Runs chunk and returns its first result as a string copied into buf
 * (size n), or the error message when it raises. Returns 1 if it ran OK. */
int harness_eval(lua_State *L, const char *chunk, char *buf, size_t n);

/* Path of ../shared as ctest passes it (LUMU_SHARED), or NULL. */
const char *harness_shared_dir(void);

#endif
