/*
 * lumu entry point, in the shape of lua.c: create the state, run everything
 * inside one protected call (pmain), report, close, exit.  The command line is
 * handled by stdlib/lumu/cli.lua.
 */
#include "host.h"
#include "model.h" /* aws/: cached API models are freed before the leak check */

#include <lauxlib.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* No core files: a crashed lumu's memory holds credentials, session tokens
 * and passwords, and a core file would write them to disk.  LUMU_CORE_DUMPS=1
 * keeps the limit the shell gave (to debug a crash).  Only the soft limit is
 * lowered, so a child that needs core dumps can raise it again. */
static void no_core_dumps(void)
{
    const char *keep = getenv("LUMU_CORE_DUMPS");
    if (keep && *keep && strcmp(keep, "0") != 0)
        return;
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur != 0) {
        rl.rlim_cur = 0;
        (void)setrlimit(RLIMIT_CORE, &rl);
    }
}

/* True when -E comes before the script/command, as lua.c decides it: the
 * environment must be ignored before the libraries are opened. */
static int wants_noenv(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "--") == 0 || strcmp(a, "-") == 0)
            return 0;
        if (strcmp(a, "-E") == 0)
            return 1;
        if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0)
            i++; /* skip the option's argument */
    }
    return 0;
}

/* pmain(argc, argv) -> exit code.  Opens everything and hands argv to
 * require("lumu.cli").main(args, {noenv=}). */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    luaL_checkversion(L);
    int noenv = wants_noenv(argc, argv);
    lumu_openlibs(L, noenv);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "lumu.cli");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, noenv);
    lua_setfield(L, -2, "noenv");
    lua_call(L, 2, 1);
    return 1;
}

int main(int argc, char **argv)
{
    no_core_dumps();
    const char *track = getenv("LUMU_TRACK_ALLOC");
    if (track && *track && strcmp(track, "0") != 0)
        lumu_track_enable(strtol(getenv("LUMU_FAIL_ALLOC") ? getenv("LUMU_FAIL_ALLOC") : "0",
                                 NULL, 10));

    lua_State *L = lumu_newstate();
    if (L == NULL) {
        fprintf(stderr, "lumu: cannot create state: not enough memory\n");
        return LUMU_EXIT_INTERNAL;
    }
    /* A collection cycle starts when the heap has grown to 4x what the last
     * one kept (Lua's default is 2x).  lumu runs are short and build large
     * tables: synth of 600 services spends ~20% less CPU for ~30% more peak
     * memory (tests/bench/synth.sh). */
    lua_gc(L, LUA_GCINC, 400, 0, 0);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lumu_docall(L, 2, 1);
    int code;
    if (status == LUA_OK) {
        code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1)
                                    : (lua_toboolean(L, -1) ? LUMU_EXIT_OK : LUMU_EXIT_FAILURE);
    } else {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "lumu: internal error: %s\n", msg ? msg : "(no message)");
        code = LUMU_EXIT_INTERNAL;
    }
    fflush(stdout);
    lua_close(L);
    aws_model_cache_clear();

    if (lumu_track_enabled()) {
        lumu_memstats st;
        lumu_track_stats(&st);
        if (getenv("LUMU_MEMSTATS"))
            fprintf(stderr, "lumu: memory: peak %zu bytes, %zu allocations\n", st.peak,
                    st.total);
        if (st.bytes != 0 || st.blocks != 0) {
            fprintf(stderr, "lumu: leak: %zu bytes in %zu blocks still allocated at exit\n",
                    st.bytes, st.blocks);
            if (code == LUMU_EXIT_OK)
                code = LUMU_EXIT_INTERNAL;
        }
    }
    return code;
}
