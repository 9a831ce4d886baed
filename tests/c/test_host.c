/* Tests of lua/host.c: tracking allocator, embedded stdlib, docall,
 * project-local LuaRocks tree, LUMU_STDLIB. */
#include "harness.h"
#include "host.h"

#include <lauxlib.h>
#include <lualib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void tracker_counts_and_returns_to_zero(void **state)
{
    (void)state;
    lumu_memstats st0, st1;
    lumu_track_stats(&st0);
    lua_State *L = harness_state();
    harness_run(L, "local t = {} for i = 1, 1000 do t[i] = tostring(i) end _G.keep = t");
    lumu_track_stats(&st1);
    assert_true(st1.bytes > st0.bytes + 1000 * 16);
    assert_true(st1.peak >= st1.bytes);
    harness_close(L); /* fails the test if anything is left */
}

static void tracker_sees_c_allocations(void **state)
{
    (void)state;
    if (!lumu_track_enabled())
        lumu_track_enable(0);
    lumu_memstats a, b;
    lumu_track_stats(&a);
    char *p = lumu_malloc(100);
    assert_non_null(p);
    p = lumu_realloc(p, 1000);
    assert_non_null(p);
    lumu_track_stats(&b);
    assert_int_equal(b.bytes - a.bytes, 1000);
    assert_int_equal(b.blocks - a.blocks, 1);
    lumu_free(p);
    lumu_track_stats(&b);
    assert_int_equal(b.bytes, a.bytes);
    char *d = lumu_strdup("hello");
    assert_string_equal(d, "hello");
    lumu_free(d);
    lumu_free(NULL);
}

/* Failing the Nth allocation must surface as a memory error, never a crash,
 * for every N through state creation and a small chunk. */
static void failing_allocations_are_errors(void **state)
{
    (void)state;
    int ok_runs = 0;
    for (long n = 1; n < 4000; n += 7) {
        lumu_track_enable(n);
        lua_State *L = lumu_newstate();
        if (!L)
            continue;
        lua_pushcfunction(L, lumu_msghandler); /* any C function */
        lua_pop(L, 1);
        int st = luaL_loadstring(L, "local t = {} for i = 1, 200 do t[i] = {i} end return #t");
        if (st == LUA_OK)
            st = lumu_docall(L, 0, 1);
        if (st == LUA_OK) {
            assert_int_equal(lua_tointeger(L, -1), 200);
            ok_runs++;
        } else {
            assert_true(st == LUA_ERRMEM || st == LUA_ERRRUN || st == LUA_ERRSYNTAX);
        }
        lua_close(L);
        lumu_memstats st_after;
        lumu_track_stats(&st_after);
        assert_int_equal(st_after.bytes, 0);
    }
    lumu_track_enable(0);
    assert_true(ok_runs > 0); /* late failures leave the chunk untouched */
}

static void docall_adds_traceback(void **state)
{
    (void)state;
    lua_State *L = harness_state();
    assert_int_equal(luaL_loadstring(L, "local function f() error('boom') end f()"), LUA_OK);
    assert_int_not_equal(lumu_docall(L, 0, 0), LUA_OK);
    const char *msg = lua_tostring(L, -1);
    assert_non_null(strstr(msg, "boom"));
    assert_non_null(strstr(msg, "stack traceback:"));
    lua_pop(L, 1);
    /* error objects with __tostring keep their own text */
    assert_int_equal(luaL_loadstring(L, "error(setmetatable({}, {__tostring=function() return "
                                        "'custom' end}))"),
                     LUA_OK);
    assert_int_not_equal(lumu_docall(L, 0, 0), LUA_OK);
    assert_string_equal(lua_tostring(L, -1), "custom");
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), 0);
    harness_close(L);
}

static void embedded_stdlib_loads_with_chunk_names(void **state)
{
    (void)state;
    lua_State *L = harness_state();
    char buf[512];
    assert_true(harness_eval(L, "return require('lumu.pretty').format({1, a=2})", buf, sizeof buf));
    assert_string_equal(buf, "{ 1, a = 2 }");
    /* the chunk name is @stdlib/<path>, so tracebacks point at stdlib files */
    assert_true(harness_eval(L,
                             "local src, chunk = require('lumu._host').embedded_source('lumu.cli')"
                             " return chunk",
                             buf, sizeof buf));
    assert_string_equal(buf, "@stdlib/lumu/cli.lua");
    assert_true(harness_eval(L,
                             "for _, n in ipairs(require('lumu._host').embedded()) do"
                             " if n == 'lumu.test' then return 'found' end end return 'missing'",
                             buf, sizeof buf));
    assert_string_equal(buf, "found");
    /* preload, not the file system: works from any directory */
    assert_true(harness_eval(L, "return package.preload['lumu.cli'] ~= nil", buf, sizeof buf));
    assert_string_equal(buf, "true");
    harness_close(L);
}

static char s_tmp[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void lua_modules_tree_is_on_the_path(void **state)
{
    (void)state;
    snprintf(s_tmp, sizeof s_tmp, "/tmp/lumu-test-host-XXXXXX");
    assert_non_null(mkdtemp(s_tmp));
    char path[512], old[512];
    assert_non_null(getcwd(old, sizeof old));
    const char *dirs[] = {"lua_modules", "lua_modules/share", "lua_modules/share/lua",
                          "lua_modules/share/lua/5.4", "lua_modules/share/lua/5.4/team", "sub"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(path, sizeof path, "%s/%s", s_tmp, dirs[i]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    snprintf(path, sizeof path, "%s/lua_modules/share/lua/5.4/team/vpc.lua", s_tmp);
    write_file(path, "return { cidr = '10.0.0.0/16' }");

    /* from a sub-directory of the project: the parent's tree is found */
    snprintf(path, sizeof path, "%s/sub", s_tmp);
    assert_int_equal(chdir(path), 0);
    lua_State *L = harness_state();
    char buf[512];
    int ok = harness_eval(L, "return require('team.vpc').cidr", buf, sizeof buf);
    assert_int_equal(chdir(old), 0);
    assert_true(ok);
    assert_string_equal(buf, "10.0.0.0/16");
    harness_close(L);

    /* elsewhere it is not */
    assert_int_equal(chdir("/"), 0);
    L = harness_state();
    ok = harness_eval(L, "return (pcall(require, 'team.vpc'))", buf, sizeof buf);
    assert_int_equal(chdir(old), 0);
    assert_true(ok);
    assert_string_equal(buf, "false");
    harness_close(L);

    snprintf(path, sizeof path, "rm -rf '%s'", s_tmp);
    assert_int_equal(system(path), 0);
}

static void stdlib_from_disk_with_LUMU_STDLIB(void **state)
{
    (void)state;
    snprintf(s_tmp, sizeof s_tmp, "/tmp/lumu-test-stdlib-XXXXXX");
    assert_non_null(mkdtemp(s_tmp));
    char path[512];
    snprintf(path, sizeof path, "%s/lumu", s_tmp);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/lumu/pretty.lua", s_tmp);
    write_file(path, "return { format = function() return 'from disk' end }");
    setenv("LUMU_STDLIB", s_tmp, 1);
    lua_State *L = harness_state();
    char buf[512];
    int ok = harness_eval(L, "return require('lumu.pretty').format({})", buf, sizeof buf);
    unsetenv("LUMU_STDLIB");
    assert_true(ok);
    assert_string_equal(buf, "from disk");
    harness_close(L);
    snprintf(path, sizeof path, "rm -rf '%s'", s_tmp);
    assert_int_equal(system(path), 0);
}

static void noenv_ignores_LUA_PATH(void **state)
{
    (void)state;
    setenv("LUA_PATH", "/nowhere/?.lua", 1);
    lua_State *L = harness_state();
    char buf[1024];
    assert_true(harness_eval(L, "return package.path", buf, sizeof buf));
    assert_non_null(strstr(buf, "/nowhere/?.lua"));
    harness_close(L);

    lua_State *L2 = lumu_newstate();
    lumu_track_enable(0);
    assert_non_null(L2);
    lua_pushboolean(L2, 1);
    lua_setfield(L2, LUA_REGISTRYINDEX, "LUA_NOENV");
    luaL_openlibs(L2);
    assert_true(harness_eval(L2, "return package.path", buf, sizeof buf));
    assert_null(strstr(buf, "/nowhere/?.lua"));
    lua_close(L2);
    unsetenv("LUA_PATH");
}

/* The global type is lumu's (fast_type): the same answers as the base
 * library's, the same error without an argument. */
static void type_answers_as_the_base_library(void **state)
{
    (void)state;
    lua_State *L = harness_state();
    char buf[512];
    assert_true(harness_eval(L,
        "local co = coroutine.create(print)\n"
        "local vals = { nil, true, 0, 1.5, 's', {}, print, co, io.stdout }\n"
        "local out = {}\n"
        "for i = 1, 9 do out[i] = type(vals[i]) end\n"
        "out[#out + 1] = tostring(type(nil) == 'nil' and type('x') == 'string')\n"
        "out[#out + 1] = select(2, pcall(type))\n"
        "return table.concat(out, ' ')",
        buf, sizeof buf));
    assert_string_equal(buf, "nil boolean number number string table function thread userdata true "
                             "bad argument #1 to 'type' (value expected)");
    harness_close(L);
}

int main(void)
{
    lumu_track_enable(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tracker_counts_and_returns_to_zero),
        cmocka_unit_test(tracker_sees_c_allocations),
        cmocka_unit_test(failing_allocations_are_errors),
        cmocka_unit_test(docall_adds_traceback),
        cmocka_unit_test(embedded_stdlib_loads_with_chunk_names),
        cmocka_unit_test(lua_modules_tree_is_on_the_path),
        cmocka_unit_test(stdlib_from_disk_with_LUMU_STDLIB),
        cmocka_unit_test(noenv_ignores_LUA_PATH),
        cmocka_unit_test(type_answers_as_the_base_library),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
