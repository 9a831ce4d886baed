/*
 * lumu._cfn: C helpers that make lumu.cfn faster (private; stdlib/lumu/cfn
 * works without them).  Each does the common case and answers nil when the
 * Lua code has to look closer, so error messages stay in one place (Lua).
 *
 * copy(v) -> deep copy of v: tables copied (sized up front), metatables
 *   kept, other values as they are.  Raises past LUMU_CONV_MAX_DEPTH levels
 *   (frozen template data is at most 200 deep).
 * freeze(v, handles, max_depth) -> copy | nil: lumu.cfn.util.freeze for values that
 *   need no message: strings, booleans, finite numbers, json.null, tables
 *   with string or integer keys and no metatable or a JSON marker one (the
 *   copy keeps it), and handles -- keys of `handles`, whose values are
 *   {kind=, name=} -- of resources and parameters, which become
 *   {Ref = name}.  nil for anything else (functions, NaN, other
 *   metatables, other handles, odd keys, cycles, more than max_depth levels).
 * scan(v, depth, max_depth) -> list | nil: what cfn.check's walk would
 *   dispatch on when walking v at `depth`: the intrinsic function tables
 *   (one key, "Ref" or "Fn::..."; not descended into) as a flat list
 *   {node1, depth1, node2, depth2, ...}.  nil when the walk would report a
 *   problem (a json.null value, a table deeper than max_depth) or could
 *   see something else than the raw table (a __pairs metamethod).
 * check_ok(template, size, env) -> boolean: true when cfn.check would find
 *   no problem (cfn_check.c).
 * intrinsic(v [, condition]) -> key, argument | nil: v is a table holding
 *   exactly one (raw) key, a string naming an intrinsic function: "Ref",
 *   "Fn::..." or, with `condition` true, "Condition".
 * intrinsic_name(v) -> key | nil: the same with "Condition" accepted, the
 *   key only (lumu.nag.util.intrinsic).
 */
#include "cfn_check.h"
#include "convert.h"
#include "host.h"

#include <lauxlib.h>

#include <limits.h>
#include <math.h>
#include <string.h>

/* Pushes a new table sized for the entries of the table at t.  [-0, +1, m] */
static void new_like(lua_State *L, int t)
{
    lua_Unsigned narr = lua_rawlen(L, t);
    lua_Unsigned n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
    }
    if (narr > n)
        narr = n;
    lua_Unsigned nrec = n - narr;
    lua_createtable(L, narr > INT_MAX ? INT_MAX : (int)narr, nrec > INT_MAX ? INT_MAX : (int)nrec);
}

/* ---------------------------------------------------------------------------
 * copy
 * ------------------------------------------------------------------------- */

/* Pushes a copy of the table at the top.  [-0, +1, e] */
static void copy_table(lua_State *L, int depth)
{
    if (depth > LUMU_CONV_MAX_DEPTH)
        luaL_error(L, "copy: nesting deeper than %d levels", LUMU_CONV_MAX_DEPTH);
    luaL_checkstack(L, 6, "copy: nesting too deep");
    int t = lua_gettop(L);
    new_like(L, t);               /* t, out */
    lua_pushnil(L);
    while (lua_next(L, t)) {      /* t, out, k, v */
        if (lua_type(L, -1) == LUA_TTABLE) {
            copy_table(L, depth + 1); /* t, out, k, v, copy */
            lua_remove(L, -2);        /* t, out, k, copy */
        }
        lua_pushvalue(L, -2);     /* t, out, k, v, k */
        lua_insert(L, -2);        /* t, out, k, k, v */
        lua_rawset(L, t + 1);     /* t, out, k */
    }
    if (lua_getmetatable(L, t))   /* t, out, mt */
        lua_setmetatable(L, t + 1);
}

/* copy(v) -> copy */
static int cfn_copy(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TTABLE)
        copy_table(L, 1);
    return 1;
}

/* ---------------------------------------------------------------------------
 * freeze
 * ------------------------------------------------------------------------- */

/* A handle's replacement: pushes {Ref = name} for the handle at t whose
 * info table is at the top (popped), or returns 0 with the info popped.
 * [-1, +(0|1), m] */
static int freeze_handle(lua_State *L, int t)
{
    int ok = 0;
    if (lua_type(L, -1) == LUA_TTABLE) {
        if (lua_getfield(L, -1, "kind") == LUA_TSTRING) {  /* info, kind */
            const char *kind = lua_tostring(L, -1);
            ok = strcmp(kind, "resource") == 0 || strcmp(kind, "parameter") == 0;
        }
        lua_pop(L, 1);                                       /* info */
        if (ok)
            ok = lua_getfield(L, -1, "name") == LUA_TSTRING; /* info, name */
        else
            lua_pushnil(L);
    } else {
        lua_pushnil(L);
    }
    if (!ok) {
        lua_settop(L, t);
        return 0;
    }
    lua_createtable(L, 0, 1);   /* info, name, ref */
    lua_insert(L, -2);          /* info, ref, name */
    lua_setfield(L, -2, "Ref"); /* info, ref */
    lua_remove(L, -2);          /* ref */
    return 1;
}

/* The value at the top (index t) -> its frozen copy pushed, or 0 and the
 * stack back at t.  Handles at index 2.  [-0, +(0|1), m] */
static int freeze_value(lua_State *L, void *nullp, lua_Integer depth, lua_Integer max_depth)
{
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
    case LUA_TBOOLEAN:
        lua_pushvalue(L, -1);
        return 1;
    case LUA_TNUMBER:
        if (!lua_isinteger(L, -1)) {
            double d = lua_tonumber(L, -1);
            if (isnan(d) || isinf(d))
                return 0;
        }
        lua_pushvalue(L, -1);
        return 1;
    case LUA_TUSERDATA:
        if (lua_touserdata(L, -1) != nullp)
            return 0;
        lua_pushvalue(L, -1);
        return 1;
    case LUA_TTABLE:
        break;
    default:
        return 0;
    }
    if (depth > max_depth || depth > LUMU_CONV_MAX_DEPTH || !lua_checkstack(L, 8))
        return 0; /* a cycle, or too deep: Lua says which */
    int t = lua_gettop(L);
    lua_pushvalue(L, t);
    if (lua_rawget(L, 2) != LUA_TNIL) /* t, info */
        return freeze_handle(L, t);
    lua_pop(L, 1);
    int has_mt = lua_getmetatable(L, t);
    if (has_mt) {
        /* a marker (__jsontype set), not hidden behind __metatable */
        lua_pushliteral(L, "__jsontype");
        int marker = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
        if (marker) {
            lua_pushliteral(L, "__metatable");
            marker = lua_rawget(L, -2) == LUA_TNIL;
            lua_pop(L, 1);
        }
        if (!marker) {
            lua_settop(L, t);
            return 0;
        }
    } else {
        lua_pushnil(L);
    }
    new_like(L, t);            /* t, mt|nil, out */
    lua_pushnil(L);
    while (lua_next(L, t)) {   /* t, mt, out, k, v */
        if (lua_type(L, -2) != LUA_TSTRING && !lua_isinteger(L, -2)) {
            lua_settop(L, t);
            return 0;
        }
        if (!freeze_value(L, nullp, depth + 1, max_depth)) {
            lua_settop(L, t);
            return 0;
        }                      /* t, mt, out, k, v, copy */
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -2);  /* t, mt, out, k, v, copy, k, copy */
        lua_rawset(L, t + 2);  /* t, mt, out, k, v, copy */
        lua_settop(L, -3);     /* t, mt, out, k */
    }
    if (has_mt) {
        lua_pushvalue(L, t + 1);
        lua_setmetatable(L, t + 2);
    }
    lua_remove(L, t + 1);      /* t, out */
    return 1;
}

/* freeze(v, handles, max_depth) -> copy | nil */
static int cfn_freeze(lua_State *L)
{
    luaL_checkany(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer max_depth = luaL_checkinteger(L, 3);
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    if (!freeze_value(L, lumu_conv_nullptr(L), 1, max_depth))
        lua_pushnil(L);
    return 1;
}

/* ---------------------------------------------------------------------------
 * scan
 * ------------------------------------------------------------------------- */

typedef struct scan_state {
    lua_State *L;
    void *nullp;
    int out;             /* stack index of the result list */
    lua_Integer n;       /* entries in it */
    lua_Integer max_depth;
} scan_state;

/* Is the table at idx one intrinsic function call: exactly one key, a
 * string that is "Ref" or starts with "Fn::"?  [-0, +0, -] */
static int is_intrinsic(lua_State *L, int idx)
{
    lua_pushnil(L);
    if (!lua_next(L, idx))
        return 0;                         /* k, v */
    int yes = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
        size_t len;
        const char *k = lua_tolstring(L, -2, &len);
        yes = (len == 3 && memcmp(k, "Ref", 3) == 0) || (len >= 4 && memcmp(k, "Fn::", 4) == 0);
    }
    lua_pop(L, 1);                        /* k */
    if (yes && lua_next(L, idx)) {
        lua_pop(L, 2);
        return 0;                         /* a second key */
    }
    if (!yes)
        lua_pop(L, 1);
    return yes;
}

/* The value at the top, at `depth`.  0: the walk would report a problem.
 * [-0, +0, m] */
static int scan_value(scan_state *s, lua_Integer depth)
{
    lua_State *L = s->L;
    int ty = lua_type(L, -1);
    if (ty != LUA_TTABLE)
        return !(ty == LUA_TUSERDATA && lua_touserdata(L, -1) == s->nullp);
    if (depth > s->max_depth || depth > LUMU_CONV_MAX_DEPTH || !lua_checkstack(L, 4))
        return 0;
    int t = lua_gettop(L);
    if (lua_getmetatable(L, t)) {
        lua_pushliteral(L, "__pairs");
        int other = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 2);
        if (other)
            return 0;
    }
    if (is_intrinsic(L, t)) {
        lua_pushvalue(L, t);
        lua_rawseti(L, s->out, ++s->n);
        lua_pushinteger(L, depth);
        lua_rawseti(L, s->out, ++s->n);
        return 1;
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {              /* k, v */
        if (!scan_value(s, depth + 1)) {
            lua_settop(L, t);
            return 0;
        }
        lua_pop(L, 1);                    /* k */
    }
    return 1;
}

/* scan(v, depth, max_depth) -> list | nil */
static int cfn_scan(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_Integer depth = luaL_checkinteger(L, 2);
    lua_Integer max_depth = luaL_checkinteger(L, 3);
    lua_settop(L, 1);
    scan_state s = {L, lumu_conv_nullptr(L), 0, 0, max_depth};
    lua_newtable(L);                      /* v, out */
    s.out = 2;
    lua_pushvalue(L, 1);                  /* v, out, v */
    if (!scan_value(&s, depth)) {
        lua_pushnil(L);
        return 1;
    }
    lua_settop(L, 2);
    return 1;
}

/* ---------------------------------------------------------------------------
 * values
 * ------------------------------------------------------------------------- */

/* Appends to the list at `out` (holding *n values) the value under `key`
 * (at `k`) of the table at the top and of every table below it, parents
 * before children, children in lua_next order; tables deeper than
 * max_depth are skipped.  [-0, +0, m] */
static void values_of(lua_State *L, int k, int out, lua_Integer *n, lua_Integer depth,
                      lua_Integer max_depth)
{
    if (depth > max_depth || !lua_checkstack(L, 4))
        return;
    int t = lua_gettop(L);
    lua_pushvalue(L, k);
    if (lua_rawget(L, t) != LUA_TNIL)
        lua_rawseti(L, out, ++*n);
    else
        lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, t)) {              /* key, value */
        if (lua_type(L, -1) == LUA_TTABLE)
            values_of(L, k, out, n, depth + 1, max_depth);
        lua_pop(L, 1);
    }
}

/* values(v, key, max_depth) -> list: every value stored under `key` in v or
 * a table inside it (what a walk `if t[key] then found(t[key]) end; for
 * _, x in pairs(t) do if table then walk(x) end end` finds, in its order). */
static int cfn_values(lua_State *L)
{
    luaL_checkany(L, 1);
    luaL_checkany(L, 2);
    lua_Integer max_depth = luaL_checkinteger(L, 3);
    lua_settop(L, 2);
    lua_newtable(L);                      /* v, key, out */
    lua_Integer n = 0;
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_pushvalue(L, 1);
        values_of(L, 2, 3, &n, 0, max_depth);
        lua_settop(L, 3);
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * intrinsic
 * ------------------------------------------------------------------------- */

/* For intrinsic and intrinsic_name: leaves v, key, argument at 1..3 and
 * returns 1 when the table at 1 is one intrinsic function call, else 0.
 * [-0, +?, -] */
static int one_call(lua_State *L, int condition)
{
    if (lua_type(L, 1) != LUA_TTABLE)
        return 0;
    lua_settop(L, 1);
    lua_pushnil(L);
    if (!lua_next(L, 1) || lua_type(L, 2) != LUA_TSTRING)
        return 0;                         /* v, key, argument */
    size_t len;
    const char *k = lua_tolstring(L, 2, &len);
    if (!((len == 3 && memcmp(k, "Ref", 3) == 0) || (len >= 4 && memcmp(k, "Fn::", 4) == 0) ||
          (condition && len == 9 && memcmp(k, "Condition", 9) == 0)))
        return 0;
    lua_pushvalue(L, 2);
    return !lua_next(L, 1);               /* a second key: not a call */
}

static int cfn_intrinsic(lua_State *L)
{
    if (!one_call(L, lua_toboolean(L, 2))) {
        lua_pushnil(L);
        return 1;
    }
    return 2;
}

static int cfn_intrinsic_name(lua_State *L)
{
    if (!one_call(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    lua_settop(L, 2);
    return 1;
}

/* ---------------------------------------------------------------------------
 * module
 * ------------------------------------------------------------------------- */

int luaopen_lumu__cfn(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"check_ok", lumu_cfn_check_ok},
        {"copy", cfn_copy},
        {"freeze", cfn_freeze},
        {"intrinsic", cfn_intrinsic},
        {"intrinsic_name", cfn_intrinsic_name},
        {"scan", cfn_scan},
        {"values", cfn_values},
        {NULL, NULL}};
    lumu_conv_init(L);
    luaL_newlib(L, fns);
    return 1;
}
