/* lfuzz: see lfuzz.h. */
#include "lfuzz.h"

#include "host.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LUMU_FUZZ_DIR
#define LUMU_FUZZ_DIR "tests/fuzz"
#endif

static lua_State *s_L;
static unsigned long s_runs;

/* ---------------------------------------------------------------------------
 * Lua line coverage for libFuzzer.  The code under test is mostly Lua, which
 * the compiler's coverage cannot see (it only sees the VM), so a line hook
 * counts (previous line, line) pairs, AFL style, in an array libFuzzer reads
 * as extra counters (the __libfuzzer_extra_counters section).  Off with
 * LFUZZ_LUA_COVERAGE=0.
 * ------------------------------------------------------------------------- */

#define LUA_COV_SIZE (1u << 16)
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t s_lua_cov[LUA_COV_SIZE];
static uintptr_t s_prev_loc;
static int s_lua_cov_on = -1;

static const char *s_driver_dir; /* lines of the drivers themselves are not counted */
static size_t s_driver_dir_len;

static void cov_hook(lua_State *L, lua_Debug *ar)
{
    if (!lua_getinfo(L, "S", ar))
        return;
    if (ar->source[0] == '@' && strncmp(ar->source + 1, s_driver_dir, s_driver_dir_len) == 0)
        return;
    /* the chunk's source string lives as long as its functions do */
    uintptr_t loc = (uintptr_t)ar->source * 0x9E3779B1u ^ (uintptr_t)ar->currentline * 0x85EBCA77u;
    loc = (loc ^ (loc >> 15) ^ (loc >> 31)) & (LUA_COV_SIZE - 1);
    s_lua_cov[(loc ^ s_prev_loc) & (LUA_COV_SIZE - 1)]++;
    s_prev_loc = loc >> 1;
}

static void cov_arm(lua_State *L)
{
    if (s_lua_cov_on < 0) {
        const char *e = getenv("LFUZZ_LUA_COVERAGE");
        s_lua_cov_on = !(e && strcmp(e, "0") == 0);
    }
    s_prev_loc = 0;
    if (s_lua_cov_on) /* lumu_docall clears hooks when it returns: re-arm per run */
        lua_sethook(L, cov_hook, LUA_MASKLINE, 0);
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "lfuzz: %s: %s\n", what, msg ? msg : "(no message)");
    abort();
}

/* setup(name) -> driver function.  Opens the libraries as lumu does, then
 * loads the driver file and calls it with the directory it is in.
 * [-0, +1, e] */
static int setup(lua_State *L)
{
    const char *name = lua_tostring(L, 1);
    lumu_openlibs(L, 0);
    const char *dir = getenv("LUMU_FUZZ_DIR");
    if (!dir || !*dir)
        dir = LUMU_FUZZ_DIR;
    s_driver_dir = dir;
    s_driver_dir_len = strlen(dir);
    const char *path = lua_pushfstring(L, "%s/%s.lua", dir, name);
    if (luaL_loadfile(L, path) != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, dir); /* the chunk's `...`: where util.lua is */
    lua_call(L, 1, 1);
    luaL_checktype(L, -1, LUA_TFUNCTION);
    return 1;
}

void lfuzz_run(const char *name, const uint8_t *data, size_t size)
{
    lua_State *L = s_L;
    if (!L) {
        L = lumu_newstate();
        if (!L)
            die(name, "cannot create the state");
        lua_pushcfunction(L, setup);
        lua_pushstring(L, name);
        if (lumu_docall(L, 1, 1) != LUA_OK)
            die(name, lua_tostring(L, -1));
        lua_setfield(L, LUA_REGISTRYINDEX, "lfuzz.driver"); /* keeps it alive */
        s_L = L;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "lfuzz.driver");
    lua_pushlstring(L, (const char *)data, size);
    cov_arm(L);
    if (lumu_docall(L, 1, 0) != LUA_OK)
        die(name, lua_tostring(L, -1));
    lua_settop(L, 0);
    /* a full collection now and then keeps the heap (and RSS) flat and runs
     * __gc metamethods under the sanitizers */
    if (++s_runs % 256 == 0)
        lua_gc(L, LUA_GCCOLLECT);
}
