#include "harness.h"

#include "host.h"

#include <lauxlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int open_all(lua_State *L)
{
    lumu_openlibs(L, 0);
    return 0;
}

lua_State *harness_state(void)
{
    if (!lumu_track_enabled())
        lumu_track_enable(0);
    lua_State *L = lumu_newstate();
    assert_non_null(L);
    lua_pushcfunction(L, open_all);
    if (lumu_docall(L, 0, 0) != LUA_OK)
        fail_msg("opening libraries: %s", lua_tostring(L, -1));
    return L;
}

void harness_close(lua_State *L)
{
    lumu_memstats before;
    lumu_track_stats(&before);
    lua_close(L);
    lumu_memstats after;
    lumu_track_stats(&after);
    if (after.bytes != 0 || after.blocks != 0)
        fail_msg("leak: %zu bytes in %zu blocks outstanding after lua_close", after.bytes,
                 after.blocks);
}

int harness_eval(lua_State *L, const char *chunk, char *buf, size_t n)
{
    int top = lua_gettop(L);
    int ok = luaL_loadstring(L, chunk) == LUA_OK && lumu_docall(L, 0, 1) == LUA_OK;
    const char *s = luaL_tolstring(L, -1, NULL);
    snprintf(buf, n, "%s", s ? s : "");
    lua_settop(L, top);
    return ok;
}

void harness_run(lua_State *L, const char *chunk)
{
    char buf[2048];
    if (!harness_eval(L, chunk, buf, sizeof buf))
        fail_msg("chunk failed: %s", buf);
}

const char *harness_shared_dir(void)
{
    const char *d = getenv("LUMU_SHARED");
    return d && *d ? d : NULL;
}
