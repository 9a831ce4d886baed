/*
 * lumu._time: the C core of lumu.time (stdlib/lumu/time.lua).
 *
 * Clocks, sleeping and UTC broken-down time.  Parsing, ISO 8601 formatting
 * and durations are in Lua; everything here is UTC (gmtime_r) and never looks
 * at TZ.
 *
 *   now() -> float epoch seconds (CLOCK_REALTIME, microsecond resolution)
 *   monotonic() -> float seconds (CLOCK_MONOTONIC)
 *   sleep(seconds) -> nothing; raises "interrupted!" on Ctrl-C
 *   gmtime(secs) -> year, month, day, hour, min, sec, wday (0 = Sunday), yday (1-based)
 *   strftime(fmt, secs) -> string (UTC)
 */
#include "host.h"

#include <lauxlib.h>

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* Integer seconds argument: a number that fits time_t (floats are floored). */
static time_t time_checksecs(lua_State *L, int arg)
{
    lua_Number t = luaL_checknumber(L, arg);
    luaL_argcheck(L, isfinite(t) && t > -9.2e18 && t < 9.2e18, arg, "time out of range");
    lua_Integer i;
    if (lua_isinteger(L, arg))
        i = lua_tointeger(L, arg);
    else
        i = (lua_Integer)floor(t);
    return (time_t)i;
}

/* Broken-down UTC time of secs, or a raised error if gmtime_r cannot
 * represent it.  [-0, +0, v] */
static void time_gm(lua_State *L, int arg, struct tm *tm)
{
    time_t secs = time_checksecs(L, arg);
    if (!gmtime_r(&secs, tm))
        luaL_argerror(L, arg, "time out of range");
}

/* now() -> float  [-0, +1, -] */
static int time_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)(ts.tv_nsec / 1000) / 1e6);
    return 1;
}

/* monotonic() -> float  [-0, +1, -] */
static int time_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* sleep(seconds)  [-0, +0, v] */
static int time_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, isfinite(s) && s >= 0, 1, "expected a non-negative finite number");
    if (s > 1e15) /* far beyond any useful sleep; keeps tv_sec in range */
        s = 1e15;
    struct timespec req;
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
    if (req.tv_nsec > 999999999L)
        req.tv_nsec = 999999999L;
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0) {
        if (errno != EINTR)
            return luaL_error(L, "sleep: %s", strerror(errno));
        if (lumu_interrupted()) {
            lumu_clear_interrupt();
            return luaL_error(L, "interrupted!");
        }
        req = rem;
    }
    return 0;
}

/* gmtime(secs) -> year, month, day, hour, min, sec, wday, yday  [-0, +8, v] */
static int time_gmtime(lua_State *L)
{
    struct tm tm;
    time_gm(L, 1, &tm);
    lua_pushinteger(L, (lua_Integer)tm.tm_year + 1900);
    lua_pushinteger(L, tm.tm_mon + 1);
    lua_pushinteger(L, tm.tm_mday);
    lua_pushinteger(L, tm.tm_hour);
    lua_pushinteger(L, tm.tm_min);
    lua_pushinteger(L, tm.tm_sec);
    lua_pushinteger(L, tm.tm_wday);
    lua_pushinteger(L, tm.tm_yday + 1);
    return 8;
}

/* strftime(fmt, secs) -> string  [-0, +1, v] */
static int time_strftime(lua_State *L)
{
    size_t flen;
    const char *fmt = luaL_checklstring(L, 1, &flen);
    luaL_argcheck(L, strlen(fmt) == flen, 1, "format contains a NUL byte");
    luaL_argcheck(L, flen <= 4096, 1, "format too long");
    struct tm tm;
    time_gm(L, 2, &tm);
    /* A trailing space tells an empty result from a too-small buffer. */
    const char *f = lua_pushfstring(L, "%s ", fmt);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t cap = 128;; cap *= 2) {
        char *p = luaL_prepbuffsize(&b, cap);
/* the format is the caller's by design */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        size_t n = strftime(p, cap, f, &tm);
#pragma GCC diagnostic pop
        if (n > 0) {
            luaL_addsize(&b, n - 1);
            break;
        }
        if (cap >= 1u << 20)
            return luaL_error(L, "strftime: result too long");
    }
    luaL_pushresult(&b);
    return 1;
}

int luaopen_lumu__time(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"now", time_now},
        {"monotonic", time_monotonic},
        {"sleep", time_sleep},
        {"gmtime", time_gmtime},
        {"strftime", time_strftime},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
