/*
 * lumu._cfn.check_ok(template, size, env) -> boolean: true when
 * lumu.cfn.check (stdlib/lumu/cfn/check.lua) would find no problem in the
 * template, whose encoded body is `size` bytes; false when it would, or when
 * this code cannot tell.  cfn.check then does the whole check in Lua, which
 * alone writes the messages: a false here costs time, never a message.
 *
 * env: { pseudo = set of pseudo parameter names, limits = cfn.LIMITS,
 *        max_depth = nesting limit, valid_resource_type = fn,
 *        valid_param_type = fn }.
 *
 * "Cannot tell" covers what generated templates do not hold: a Transform or
 * Rules section, Fn::ForEach, Fn::Length and other language extensions, and
 * any table with a metatable other than a JSON marker (only `__jsontype`
 * and `__jsonorder`), since Lua would see it through metamethods.  Every
 * other rule of check.lua is mirrored below, each next to the Lua it stands
 * for; tests/lua/cfn_check_spec.lua runs every template twice (C on, C
 * off) and compares.  Memory comes from Lua only (userdata), so a raised
 * allocation error leaks nothing.
 */
#include "cfn_check.h"
#include "convert.h"

#include <lauxlib.h>

#include <ctype.h>
#include <string.h>

enum { SC_RESOURCE, SC_OUTPUT, SC_CONDITION };

/* util.kind */
enum { K_BAD = -1, K_OTHER, K_NULL, K_STRING, K_NUMBER, K_BOOLEAN, K_ARRAY, K_OBJECT, K_EMPTY };

/* A dependency graph: names (a table name -> node 1..n) and edges as pairs
 * of nodes in a growing userdata. */
typedef struct graph {
    int names; /* stack index of the name -> node table */
    int ud;    /* stack index of the userdata holding e */
    int n;     /* nodes */
    int *e;
    size_t len, cap; /* ints used / allocated in e */
} graph;

typedef struct chk {
    lua_State *L;
    void *nullp;
    int pseudo, limits, vrt, vpt; /* stack indexes (env) */
    int params, resources, conditions, mappings;
    int exports;          /* the export names seen (a table) */
    lua_Integer max_depth;
    graph res, cond;
    int cur;             /* node of the resource walked (edges), 0 none */
    const void *mt_ok[4]; /* marker metatables seen */
} chk;

/* ---------------------------------------------------------------------------
 * helpers
 * ------------------------------------------------------------------------- */

static int streq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(s, lit, n) == 0;
}

static int starts(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(s, lit, n) == 0;
}

/* Is the value at idx the string lit?  [-0, +0, -] */
static int is_lit(lua_State *L, int idx, const char *lit)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return streq(s, len, lit);
}

/* Is the string at idx one of list (NULL-terminated)?  [-0, +0, -] */
static int in_list(lua_State *L, int idx, const char *const *list)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    for (; *list; list++)
        if (streq(s, len, *list))
            return 1;
    return 0;
}

/* Pushes t[key] (raw) for the table at t; returns its type.  [-0, +1, m] */
static int get(lua_State *L, int t, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

/* Is t[k] (raw, k the value at k) not nil?  [-0, +0, m] */
static int has(lua_State *L, int t, int k)
{
    lua_pushvalue(L, k);
    int yes = lua_rawget(L, t) != LUA_TNIL;
    lua_pop(L, 1);
    return yes;
}

/* No metatable, or a JSON marker one (__jsontype set; only __jsontype and
 * __jsonorder): raw access is what Lua sees.  [-0, +0, m] */
static int plain(chk *c, int t)
{
    lua_State *L = c->L;
    t = lua_absindex(L, t);
    if (!lua_getmetatable(L, t))
        return 1;
    const void *p = lua_topointer(L, -1);
    for (int i = 0; i < 4; i++) {
        if (c->mt_ok[i] == p) {
            lua_pop(L, 1);
            return 1;
        }
    }
    int mt = lua_gettop(L);
    int ok = get(L, mt, "__jsontype") != LUA_TNIL;
    lua_pop(L, 1);
    lua_pushnil(L);
    while (ok && lua_next(L, mt)) {
        lua_pop(L, 1);
        ok = is_lit(L, -1, "__jsontype") || is_lit(L, -1, "__jsonorder");
    }
    lua_settop(L, mt - 1);
    if (ok) {
        memmove(c->mt_ok + 1, c->mt_ok, 3 * sizeof c->mt_ok[0]);
        c->mt_ok[0] = p;
    }
    return ok;
}

/* util.kind of the value at idx; K_BAD for a table that is not plain.
 * [-0, +0, m] */
static int kind(chk *c, int idx)
{
    lua_State *L = c->L;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        return K_STRING;
    case LUA_TNUMBER:
        return K_NUMBER;
    case LUA_TBOOLEAN:
        return K_BOOLEAN;
    case LUA_TUSERDATA:
        return lua_touserdata(L, idx) == c->nullp ? K_NULL : K_OTHER;
    case LUA_TTABLE:
        break;
    default:
        return K_OTHER;
    }
    if (!plain(c, idx))
        return K_BAD;
    int m = lumu_conv_marker(L, idx);
    if (m == LUMU_CONV_ARRAY)
        return K_ARRAY;
    if (m == LUMU_CONV_OBJECT)
        return K_OBJECT;
    lua_pushnil(L);
    if (!lua_next(L, idx))
        return K_EMPTY;
    lua_pop(L, 2);
    lua_Unsigned n = lua_rawlen(L, idx);
    if (n > 0 && lua_rawgeti(L, idx, 1) != LUA_TNIL) {
        lua_pop(L, 1);
        lua_Unsigned count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
        }
        if (count == n)
            return K_ARRAY;
    } else if (n > 0) {
        lua_pop(L, 1);
    }
    return K_OBJECT;
}

static int is_object(int k)
{
    return k == K_OBJECT || k == K_EMPTY;
}

/* Entries of the table at t.  [-0, +0, -] */
static lua_Integer count(lua_State *L, int t)
{
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
    }
    return n;
}

/* limits[key] as an integer, or -1.  [-0, +0, m] */
static lua_Integer limit(chk *c, const char *key)
{
    lua_State *L = c->L;
    int isnum = 0;
    get(L, c->limits, key);
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    return isnum ? v : -1;
}

/* util.valid_name: 1-255 alphanumeric characters.  [-0, +0, -] */
static int valid_name(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]))
            return 0;
    return 1;
}

/* fn(value at idx) is truthy (a Lua callback of env).  [-0, +0, e] */
static int call_pred(lua_State *L, int fn, int idx)
{
    lua_pushvalue(L, fn);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    int yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* util.intrinsic(v) (with_condition: also {Condition = ...}): a plain
 * table with one string key "Ref" or "Fn::..." -- pushes key and argument
 * and returns 1, else pushes nothing.  [-0, +(0|2), m] */
static int intrinsic(chk *c, int v, int with_condition)
{
    lua_State *L = c->L;
    v = lua_absindex(L, v);
    if (lua_type(L, v) != LUA_TTABLE || !plain(c, v))
        return 0;
    lua_pushnil(L);
    if (!lua_next(L, v))
        return 0;                          /* k, x */
    int yes = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
        size_t len;
        const char *k = lua_tolstring(L, -2, &len);
        yes = streq(k, len, "Ref") || starts(k, len, "Fn::") || (with_condition && streq(k, len, "Condition"));
    }
    if (yes) {
        lua_pushvalue(L, -2);              /* k, x, k */
        if (lua_next(L, v)) {
            lua_pop(L, 4);                 /* a second key */
            return 0;
        }
        return 1;                          /* k, x */
    }
    lua_pop(L, 2);
    return 0;
}

/* tonumber(v): pushes the number and returns 1, or pushes nothing.
 * [-0, +(0|1), m] */
static int to_number(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        return 1;
    }
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (lua_stringtonumber(L, s) == len + 1)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * graphs and cycles
 * ------------------------------------------------------------------------- */

/* Numbers the string keys of the section at sec.  [-0, +2, m] */
static void graph_init(chk *c, graph *g, int sec)
{
    lua_State *L = c->L;
    lua_newtable(L);
    g->names = lua_gettop(L);
    g->n = 0;
    lua_pushnil(L);
    while (lua_next(L, sec)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            lua_pushinteger(L, ++g->n);
            lua_rawset(L, g->names);
        }
    }
    g->cap = 64;
    g->len = 0;
    g->e = lua_newuserdatauv(L, g->cap * sizeof(int), 0);
    g->ud = lua_gettop(L);
}

/* The node of the name at idx, 0 if none.  [-0, +0, m] */
static int node(lua_State *L, graph *g, int idx)
{
    lua_pushvalue(L, idx);
    lua_rawget(L, g->names);
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return n;
}

/* add_edge(from -> the node named at idx).  [-0, +0, m] */
static void edge(chk *c, graph *g, int from, int idx)
{
    lua_State *L = c->L;
    int to = node(L, g, idx);
    if (from == 0 || to == 0)
        return;
    if (g->len + 2 > g->cap) {
        size_t cap = g->cap * 2;
        int *e = lua_newuserdatauv(L, cap * sizeof(int), 0);
        memcpy(e, g->e, g->len * sizeof(int));
        lua_replace(L, g->ud);
        g->e = e;
        g->cap = cap;
    }
    g->e[g->len++] = from;
    g->e[g->len++] = to;
}

/* Does the graph have a cycle (find_cycles finds one: a strongly connected
 * component of two or more nodes, or a node depending on itself)?  Depth-
 * first search without recursion; an edge to a node on the path closes a
 * cycle.  [-0, +0, m] */
static int has_cycle(lua_State *L, graph *g)
{
    int n = g->n;
    size_t m = g->len / 2;
    if (m == 0)
        return 0;
    int top = lua_gettop(L);
    /* start[n + 2], adj[m], color[n + 1], stack and pos[n + 1] */
    size_t ints = (size_t)(n + 2) + m + 3 * (size_t)(n + 1);
    int *mem = lua_newuserdatauv(L, ints * sizeof(int), 0);
    memset(mem, 0, ints * sizeof(int));
    int *start = mem, *adj = start + n + 2, *color = adj + m, *stack = color + n + 1, *pos = stack + n + 1;
    for (size_t i = 0; i < m; i++)
        start[g->e[2 * i] + 1]++;
    for (int v = 1; v <= n + 1; v++)
        start[v] += start[v - 1];
    /* fill: pos[] as the insertion cursor per node, reset after */
    for (int v = 0; v <= n; v++)
        pos[v] = start[v];
    for (size_t i = 0; i < m; i++)
        adj[pos[g->e[2 * i]]++] = g->e[2 * i + 1];
    int cycle = 0;
    for (int s = 1; s <= n && !cycle; s++) {
        if (color[s])
            continue;
        int sp = 0;
        stack[sp] = s;
        pos[sp++] = start[s];
        color[s] = 1;
        while (sp > 0 && !cycle) {
            int v = stack[sp - 1];
            if (pos[sp - 1] < start[v + 1]) {
                int w = adj[pos[sp - 1]++];
                if (color[w] == 1) {
                    cycle = 1;
                } else if (color[w] == 0) {
                    color[w] = 1;
                    stack[sp] = w;
                    pos[sp++] = start[w];
                }
            } else {
                color[v] = 2;
                sp--;
            }
        }
    }
    lua_settop(L, top);
    return cycle;
}

/* ---------------------------------------------------------------------------
 * value walk (check.lua: walk and the intrinsic function handlers)
 * ------------------------------------------------------------------------- */

static int walk(chk *c, int v, lua_Integer depth, int scope);

/* ref_target: a pseudo parameter, a parameter, or (outside Conditions) a
 * resource, which records an edge.  [-0, +0, m] */
static int ref_target(chk *c, int name, int scope)
{
    lua_State *L = c->L;
    if (has(L, c->pseudo, name) || has(L, c->params, name))
        return 1;
    if (!has(L, c->resources, name))
        return 0;
    if (scope == SC_CONDITION)
        return 0;
    edge(c, &c->res, c->cur, name);
    return 1;
}

/* getatt_target  [-0, +0, m] */
static int getatt_target(chk *c, int res, int scope)
{
    lua_State *L = c->L;
    if (scope == SC_CONDITION || !has(L, c->resources, res))
        return 0;
    edge(c, &c->res, c->cur, res);
    return 1;
}

/* arity: kind(arg) == "array" and lo <= #arg <= hi  [-0, +0, m] */
static int arity(chk *c, int arg, lua_Unsigned lo, lua_Unsigned hi)
{
    if (kind(c, arg) != K_ARRAY)
        return 0;
    lua_Unsigned n = lua_rawlen(c->L, arg);
    return n >= lo && n <= hi;
}

/* walk(arg[i], depth)  [-0, +0, m] */
static int walk_item(chk *c, int arg, lua_Integer i, lua_Integer depth, int scope)
{
    lua_State *L = c->L;
    lua_rawgeti(L, arg, i);
    int ok = walk(c, lua_gettop(L), depth, scope);
    lua_pop(L, 1);
    return ok;
}

/* Is the value at idx a string?  arg[i] a string?  [-0, +0, -] */
static int item_is_string(lua_State *L, int arg, lua_Integer i)
{
    int yes = lua_rawgeti(L, arg, i) == LUA_TSTRING;
    lua_pop(L, 1);
    return yes;
}

/* is_array(v) or util.intrinsic(v)  [-0, +0, m] */
static int list_like(chk *c, int idx)
{
    int k = kind(c, idx);
    if (k == K_ARRAY || k == K_EMPTY)
        return 1;
    if (intrinsic(c, idx, 0)) {
        lua_pop(c->L, 2);
        return 1;
    }
    return 0;
}

/* The references of an Fn::Sub string (intrinsics.sub_refs), each checked
 * unless vars (index, or 0) defines it.  [-0, +0, m] */
static int sub_refs(chk *c, int str, int vars, int scope)
{
    lua_State *L = c->L;
    size_t len;
    const char *s = lua_tolstring(L, str, &len);
    size_t pos = 0;
    while (pos + 1 < len) {
        const char *a = NULL;
        for (size_t i = pos; i + 1 < len; i++) {
            if (s[i] == '$' && s[i + 1] == '{') {
                a = s + i;
                break;
            }
        }
        if (!a)
            break;
        size_t ai = (size_t)(a - s);
        if (ai + 2 < len && s[ai + 2] == '!') {
            pos = ai + 3;
            continue;
        }
        const char *b = memchr(s + ai + 2, '}', len - ai - 2);
        if (!b)
            break;
        const char *name = s + ai + 2;
        size_t nlen = (size_t)(b - name);
        pos = (size_t)(b - s) + 1;
        /* trim %s (C locale: \t \n \v \f \r and space) */
        while (nlen > 0 && isspace((unsigned char)name[0])) {
            name++;
            nlen--;
        }
        while (nlen > 0 && isspace((unsigned char)name[nlen - 1]))
            nlen--;
        lua_pushlstring(L, name, nlen);
        int ni = lua_gettop(L);
        int ok = 1;
        if (vars && has(L, vars, ni)) {
            /* a variable of the Fn::Sub */
        } else {
            const char *dot = memchr(name, '.', nlen);
            if (dot && dot > name && (size_t)(dot - name) + 1 < nlen && !has(L, c->pseudo, ni)) {
                lua_pushlstring(L, name, (size_t)(dot - name));
                ok = getatt_target(c, lua_gettop(L), scope);
                lua_pop(L, 1);
            } else if (nlen == 0) {
                ok = 0;
            } else {
                ok = ref_target(c, ni, scope);
            }
        }
        lua_pop(L, 1);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Walks every value of the table at t.  [-0, +0, m] */
static int walk_values(chk *c, int t, lua_Integer depth, int scope)
{
    lua_State *L = c->L;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (!walk(c, lua_gettop(L), depth, scope)) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* Fn::Select's index: an intrinsic, or an integer >= 0 (a number or a
 * numeral); *index gets it (-1 for an intrinsic).  [-0, +0, m] */
static int select_index(chk *c, int idx, lua_Integer *index)
{
    lua_State *L = c->L;
    if (intrinsic(c, idx, 0)) {
        lua_pop(L, 2);
        *index = -1;
        return 1;
    }
    int t = lua_type(L, idx);
    if (t != LUA_TNUMBER && t != LUA_TSTRING)
        return 0;
    if (!to_number(L, idx))
        return 0;
    int isint = 0;
    lua_Integer i = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (!isint || i < 0)
        return 0;
    *index = i;
    return 1;
}

/* intrinsic_call: the function k (at kidx) applied to the argument at a.
 * [-0, +0, m] */
static int call(chk *c, int kidx, int a, lua_Integer depth, int scope)
{
    lua_State *L = c->L;
    size_t kl;
    const char *k = lua_tolstring(L, kidx, &kl);
    int top = lua_gettop(L);
    int ok = 0;
    if (streq(k, kl, "Ref")) {
        ok = lua_type(L, a) == LUA_TSTRING && ref_target(c, a, scope);
    } else if (streq(k, kl, "Fn::GetAtt")) {
        if (lua_type(L, a) == LUA_TSTRING) {
            /* "^([^.]+)%.(.+)$" */
            size_t len;
            const char *s = lua_tolstring(L, a, &len);
            const char *dot = memchr(s, '.', len);
            if (dot && dot > s && (size_t)(dot - s) + 1 < len) {
                lua_pushlstring(L, s, (size_t)(dot - s));
                ok = getatt_target(c, lua_gettop(L), scope);
            }
        } else if (kind(c, a) == K_ARRAY && lua_rawlen(L, a) == 2 && item_is_string(L, a, 1)) {
            lua_rawgeti(L, a, 1);              /* res */
            int attr_t = lua_rawgeti(L, a, 2); /* res, attr */
            if (attr_t == LUA_TSTRING) {
                ok = getatt_target(c, top + 1, scope);
            } else if (intrinsic(c, top + 2, 0)) {
                lua_pop(L, 2);
                ok = getatt_target(c, top + 1, scope) && walk(c, top + 2, depth + 1, scope);
            }
        }
    } else if (streq(k, kl, "Fn::Sub")) {
        if (lua_type(L, a) == LUA_TSTRING) {
            ok = sub_refs(c, a, 0, scope);
        } else if (kind(c, a) == K_ARRAY && lua_rawlen(L, a) == 2 && item_is_string(L, a, 1)) {
            lua_rawgeti(L, a, 1);
            lua_rawgeti(L, a, 2);
            if (is_object(kind(c, top + 2)))
                ok = sub_refs(c, top + 1, top + 2, scope) && walk_values(c, top + 2, depth + 1, scope);
        }
    } else if (streq(k, kl, "Fn::If")) {
        if (arity(c, a, 3, 3)) {
            lua_rawgeti(L, a, 1);
            ok = lua_type(L, -1) == LUA_TSTRING && has(L, c->conditions, top + 1)
                && walk_item(c, a, 2, depth + 1, scope) && walk_item(c, a, 3, depth + 1, scope);
        }
    } else if (streq(k, kl, "Fn::Join")) {
        if (arity(c, a, 2, 2) && item_is_string(L, a, 1)) {
            lua_rawgeti(L, a, 2);
            ok = list_like(c, top + 1) && walk(c, top + 1, depth + 1, scope);
        }
    } else if (streq(k, kl, "Fn::Select")) {
        lua_Integer index;
        if (arity(c, a, 2, 2)) {
            lua_rawgeti(L, a, 1);
            lua_rawgeti(L, a, 2);
            ok = select_index(c, top + 1, &index) && list_like(c, top + 2)
                && !(index >= 0 && kind(c, top + 2) == K_ARRAY && (lua_Unsigned)index >= lua_rawlen(L, top + 2))
                && walk(c, top + 1, depth + 1, scope) && walk(c, top + 2, depth + 1, scope);
        }
    } else if (streq(k, kl, "Fn::Split")) {
        ok = arity(c, a, 2, 2) && item_is_string(L, a, 1) && walk_item(c, a, 2, depth + 1, scope);
    } else if (streq(k, kl, "Fn::FindInMap")) {
        /* a DefaultValue (4th item) needs the language extensions */
        if (arity(c, a, 3, 3)) {
            lua_rawgeti(L, a, 1); /* top + 1: map name */
            lua_rawgeti(L, a, 2); /* top + 2: top key */
            lua_rawgeti(L, a, 3); /* top + 3: second key */
            ok = 1;
            if (lua_type(L, top + 1) == LUA_TSTRING) {
                lua_pushvalue(L, top + 1);
                int mt = lua_rawget(L, c->mappings); /* top + 4: the mapping */
                if (mt == LUA_TNIL) {
                    ok = 0;
                } else if (mt == LUA_TTABLE && lua_type(L, top + 2) == LUA_TSTRING) {
                    lua_pushvalue(L, top + 2);
                    int it = lua_rawget(L, top + 4); /* top + 5: its entry */
                    if (it == LUA_TNIL)
                        ok = 0;
                    else if (it == LUA_TTABLE && lua_type(L, top + 3) == LUA_TSTRING)
                        ok = has(L, top + 5, top + 3);
                }
            } else {
                ok = walk(c, top + 1, depth + 1, scope);
            }
            ok = ok && walk(c, top + 2, depth + 1, scope) && walk(c, top + 3, depth + 1, scope);
        }
    } else if (streq(k, kl, "Fn::Cidr")) {
        ok = arity(c, a, 3, 3) && walk_item(c, a, 1, depth + 1, scope) && walk_item(c, a, 2, depth + 1, scope)
            && walk_item(c, a, 3, depth + 1, scope);
    } else if (streq(k, kl, "Fn::GetAZs")) {
        if (lua_type(L, a) == LUA_TSTRING) {
            ok = 1;
        } else if (intrinsic(c, a, 0)) {
            lua_pop(L, 2);
            ok = walk(c, a, depth + 1, scope);
        }
    } else if (streq(k, kl, "Fn::Equals") || streq(k, kl, "Fn::And") || streq(k, kl, "Fn::Or")
               || streq(k, kl, "Fn::Not")) {
        ok = scope == SC_CONDITION && walk(c, a, depth + 1, scope);
    } else if (streq(k, kl, "Fn::ImportValue") || streq(k, kl, "Fn::Base64") || streq(k, kl, "Fn::Transform")) {
        ok = walk(c, a, depth + 1, scope);
    }
    /* else Fn::Length, Fn::ToJsonString, Fn::ForEach::*, unknown: Lua says */
    lua_settop(L, top);
    return ok;
}

/* walk(ctx, v, path, depth, scope): json.null nowhere, nesting at most
 * max_depth, every intrinsic function call valid.  [-0, +0, m] */
static int walk(chk *c, int v, lua_Integer depth, int scope)
{
    lua_State *L = c->L;
    int ty = lua_type(L, v);
    if (ty != LUA_TTABLE)
        return !(ty == LUA_TUSERDATA && lua_touserdata(L, v) == c->nullp);
    if (depth > c->max_depth || !lua_checkstack(L, 12))
        return 0;
    if (!plain(c, v))
        return 0;
    int top = lua_gettop(L);
    lua_pushnil(L);
    if (lua_next(L, v)) { /* k, x */
        int one = 0;
        if (lua_type(L, top + 1) == LUA_TSTRING) {
            size_t len;
            const char *k = lua_tolstring(L, top + 1, &len);
            if (streq(k, len, "Ref") || starts(k, len, "Fn::")) {
                lua_pushvalue(L, top + 1);
                one = !lua_next(L, v);
            }
        }
        if (one) {
            int ok = call(c, top + 1, top + 2, depth, scope);
            lua_settop(L, top);
            return ok;
        }
        lua_settop(L, top);
    }
    return walk_values(c, v, depth + 1, scope);
}

/* walk_condition: a condition expression.  from: its condition's node.
 * [-0, +0, m] */
static int walk_condition(chk *c, int v, lua_Integer depth, int from)
{
    lua_State *L = c->L;
    if (depth > c->max_depth || !lua_checkstack(L, 12))
        return 0;
    if (!intrinsic(c, v, 1))
        return 0;
    int top = lua_gettop(L);
    int a = top; /* k at top - 1 */
    size_t kl;
    const char *k = lua_tolstring(L, top - 1, &kl);
    int ok = 0;
    if (streq(k, kl, "Condition")) {
        ok = lua_type(L, a) == LUA_TSTRING && has(L, c->conditions, a);
        if (ok)
            edge(c, &c->cond, from, a);
    } else if (streq(k, kl, "Fn::Equals")) {
        ok = arity(c, a, 2, 2) && walk_item(c, a, 1, depth + 1, SC_CONDITION)
            && walk_item(c, a, 2, depth + 1, SC_CONDITION);
    } else if (streq(k, kl, "Fn::And") || streq(k, kl, "Fn::Or") || streq(k, kl, "Fn::Not")) {
        int not = streq(k, kl, "Fn::Not");
        ok = arity(c, a, not ? 1 : 2, not ? 1 : 10);
        for (lua_Integer i = 1; ok; i++) {
            if (lua_rawgeti(L, a, i) == LUA_TNIL) {
                lua_pop(L, 1);
                break;
            }
            ok = walk_condition(c, lua_gettop(L), depth + 1, from);
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top - 2);
    return ok;
}

/* ---------------------------------------------------------------------------
 * sections
 * ------------------------------------------------------------------------- */

static const char *const TOP_KEYS[] = {"AWSTemplateFormatVersion", "Description", "Metadata", "Parameters",
                                       "Rules", "Mappings", "Conditions", "Transform", "Resources",
                                       "Outputs", "Hooks", NULL};
static const char *const RESOURCE_KEYS[] = {"Type", "Properties", "DependsOn", "Condition", "Metadata",
                                            "DeletionPolicy", "UpdateReplacePolicy", "UpdatePolicy",
                                            "CreationPolicy", NULL};
static const char *const PARAM_KEYS[] = {"Type", "Default", "AllowedValues", "AllowedPattern",
                                         "ConstraintDescription", "Description", "MaxLength", "MaxValue",
                                         "MinLength", "MinValue", "NoEcho", NULL};
static const char *const OUTPUT_KEYS[] = {"Description", "Value", "Export", "Condition", NULL};
static const char *const DELETION[] = {"Delete", "Retain", "RetainExceptOnCreate", "Snapshot", NULL};
static const char *const REPLACE[] = {"Delete", "Retain", "Snapshot", NULL};
static const char *const WALKED[] = {"Properties", "Metadata", "CreationPolicy", "UpdatePolicy", "DeletionPolicy",
                                     "UpdateReplacePolicy", NULL};

/* Every key of the table at t is a string of list.  [-0, +0, -] */
static int only_keys(lua_State *L, int t, const char *const *list)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (!in_list(L, -1, list)) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return 1;
}

/* A section entry: its name (at n) valid, its value (at v) an object with
 * keys of list only.  (A valid name, being alphanumeric, is never a
 * Fn::ForEach:: one.)  [-0, +0, m] */
static int entry(chk *c, int n, int v, const char *const *keys)
{
    return valid_name(c->L, n) && is_object(kind(c, v)) && only_keys(c->L, v, keys);
}

/* Does the string at idx contain lit?  [-0, +0, -] */
static int contains(lua_State *L, int idx, const char *lit)
{
    size_t len, n = strlen(lit);
    const char *s = lua_tolstring(L, idx, &len);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(s + i, lit, n) == 0)
            return 1;
    return 0;
}

/* tonumber(x) op tonumber(y) as Lua compares them, for the numbers at the
 * indexes given.  [-0, +0, -] */
static int less(lua_State *L, int x, int y)
{
    return lua_compare(L, x, y, LUA_OPLT);
}

/* One parameter (name at n, definition at p): check_parameters.
 * [-0, +0, e] */
static int parameter(chk *c, int n, int p)
{
    lua_State *L = c->L;
    if (!entry(c, n, p, PARAM_KEYS) || has(L, c->resources, n))
        return 0;
    int top = lua_gettop(L);
    int ok = 0;
    int type = top + 1, dv = top + 2, av = top + 3;
    get(L, p, "Type");
    get(L, p, "Default");
    get(L, p, "AllowedValues");
    if (lua_isnil(L, type) || !call_pred(L, c->vpt, type))
        goto done;
    int dt = lua_type(L, dv);
    if (dt != LUA_TNIL && dt != LUA_TSTRING && dt != LUA_TNUMBER && dt != LUA_TBOOLEAN)
        goto done;
    if (!lua_isnil(L, av) && kind(c, av) != K_ARRAY)
        goto done;
    int is_list = lua_type(L, type) == LUA_TSTRING && contains(L, type, "List");
    if (dt != LUA_TNIL && !lua_isnil(L, av) && !is_list) {
        /* tostring(a) == tostring(dv) for some a */
        size_t dl;
        const char *ds = luaL_tolstring(L, dv, &dl); /* top + 4 */
        int found = 0;
        for (lua_Integer i = 1; !found; i++) {
            int at = lua_rawgeti(L, av, i);
            if (at == LUA_TNIL) {
                lua_pop(L, 1);
                break;
            }
            if (at != LUA_TSTRING && at != LUA_TNUMBER && at != LUA_TBOOLEAN)
                goto done; /* tostring of a table: Lua says */
            size_t al;
            const char *as = luaL_tolstring(L, -1, &al);
            found = al == dl && memcmp(as, ds, dl) == 0;
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        if (!found)
            goto done;
    }
    /* MinLength, MaxLength, MinValue, MaxValue: numbers */
    int mm = lua_gettop(L) + 1; /* minl, maxl, minv, maxv (nil when absent) */
    static const char *const MIN_MAX[] = {"MinLength", "MaxLength", "MinValue", "MaxValue"};
    for (int i = 0; i < 4; i++) {
        int vt = get(L, p, MIN_MAX[i]);
        if (vt == LUA_TNIL)
            continue;
        if (!to_number(L, -1))
            goto done;
        lua_replace(L, -2);
    }
    if (dt == LUA_TSTRING && is_lit(L, type, "String")) {
        lua_pushinteger(L, (lua_Integer)lua_rawlen(L, dv));
        int len = lua_gettop(L);
        if ((!lua_isnil(L, mm) && less(L, len, mm)) || (!lua_isnil(L, mm + 1) && less(L, mm + 1, len)))
            goto done;
        lua_pop(L, 1);
    }
    if (dt != LUA_TNIL && is_lit(L, type, "Number")) {
        if (!to_number(L, dv))
            goto done;
        int num = lua_gettop(L);
        if ((!lua_isnil(L, mm + 2) && less(L, num, mm + 2)) || (!lua_isnil(L, mm + 3) && less(L, mm + 3, num)))
            goto done;
        lua_pop(L, 1);
    }
    int nt = get(L, p, "NoEcho");
    if (nt != LUA_TNIL && nt != LUA_TBOOLEAN && !is_lit(L, -1, "true") && !is_lit(L, -1, "false"))
        goto done;
    if (get(L, p, "Description") == LUA_TSTRING && lua_rawlen(L, -1) > 4000)
        goto done;
    ok = 1;
done:
    lua_settop(L, top);
    return ok;
}

/* check_mappings, one mapping (name at n, value at m).  [-0, +0, m] */
static int mapping(chk *c, int n, int m)
{
    lua_State *L = c->L;
    if (!valid_name(L, n) || !is_object(kind(c, m)))
        return 0;
    lua_Integer entries = count(L, m);
    if (entries == 0 || entries > limit(c, "mapping_attributes"))
        return 0;
    lua_pushnil(L);
    while (lua_next(L, m)) { /* top, entry */
        int e = lua_gettop(L);
        int ok = lua_type(L, e - 1) == LUA_TSTRING && is_object(kind(c, e));
        if (ok) {
            lua_pushnil(L);
            while (ok && lua_next(L, e)) {
                int k = kind(c, -1);
                ok = lua_type(L, -2) == LUA_TSTRING
                    && (k == K_STRING || k == K_NUMBER || k == K_BOOLEAN || k == K_ARRAY || k == K_EMPTY);
                lua_pop(L, ok ? 1 : 2);
            }
        }
        lua_pop(L, ok ? 1 : 2);
        if (!ok)
            return 0;
    }
    return 1;
}

/* A Condition attribute: a name of Conditions.  [-0, +0, m] */
static int condition_ref(chk *c, int t)
{
    lua_State *L = c->L;
    int ct = get(L, t, "Condition");
    int ok = ct == LUA_TNIL || (ct == LUA_TSTRING && has(L, c->conditions, lua_gettop(L)));
    lua_pop(L, 1);
    return ok;
}

/* check_resources, one resource (id at n, value at r).  [-0, +0, e] */
static int resource(chk *c, int n, int r)
{
    lua_State *L = c->L;
    if (!entry(c, n, r, RESOURCE_KEYS))
        return 0;
    int top = lua_gettop(L);
    int ok = 0;
    c->cur = node(L, &c->res, n);
    if (get(L, r, "Type") == LUA_TNIL || !call_pred(L, c->vrt, top + 1))
        goto done;
    if (get(L, r, "Properties") != LUA_TNIL) { /* top + 2 */
        if (intrinsic(c, top + 2, 0))
            lua_pop(L, 2);
        else if (!is_object(kind(c, top + 2)))
            goto done;
    }
    if (!condition_ref(c, r))
        goto done;
    int dt = get(L, r, "DependsOn"); /* top + 3 */
    if (dt == LUA_TSTRING) {
        if (lua_rawequal(L, top + 3, n) || !has(L, c->resources, top + 3))
            goto done;
        edge(c, &c->res, c->cur, top + 3);
    } else if (dt != LUA_TNIL) {
        if (kind(c, top + 3) != K_ARRAY)
            goto done;
        for (lua_Integer i = 1;; i++) {
            int it = lua_rawgeti(L, top + 3, i);
            if (it == LUA_TNIL) {
                lua_pop(L, 1);
                break;
            }
            int d = lua_gettop(L);
            if (it != LUA_TSTRING || lua_rawequal(L, d, n) || !has(L, c->resources, d))
                goto done;
            edge(c, &c->res, c->cur, d);
            lua_pop(L, 1);
        }
    }
    static const char *const POLICY[] = {"DeletionPolicy", "UpdateReplacePolicy"};
    for (int i = 0; i < 2; i++) {
        if (get(L, r, POLICY[i]) != LUA_TNIL) {
            int pv = lua_gettop(L);
            if (intrinsic(c, pv, 0))
                lua_pop(L, 2);
            else if (!in_list(L, pv, i == 0 ? DELETION : REPLACE))
                goto done;
        }
        lua_pop(L, 1);
    }
    for (const char *const *w = WALKED; *w; w++) {
        int wt = get(L, r, *w);
        int walked = wt == LUA_TNIL || walk(c, lua_gettop(L), 1, SC_RESOURCE);
        lua_pop(L, 1);
        if (!walked)
            goto done;
    }
    ok = 1;
done:
    c->cur = 0;
    lua_settop(L, top);
    return ok;
}

/* check_outputs, one output (name at n, value at o).  [-0, +0, m] */
static int output(chk *c, int n, int o)
{
    lua_State *L = c->L;
    int exports = c->exports;
    if (!entry(c, n, o, OUTPUT_KEYS))
        return 0;
    int top = lua_gettop(L);
    int ok = 0;
    int vt = get(L, o, "Value"); /* top + 1 */
    if (vt == LUA_TNIL)
        goto done;
    if (vt == LUA_TTABLE) {
        if (!intrinsic(c, top + 1, 0))
            goto done;
        lua_pop(L, 2);
    }
    if (!walk(c, top + 1, 1, SC_OUTPUT))
        goto done;
    int dt = get(L, o, "Description"); /* top + 2 */
    if (dt != LUA_TNIL && (dt != LUA_TSTRING || (lua_Integer)lua_rawlen(L, top + 2) > limit(c, "description")))
        goto done;
    if (!condition_ref(c, o))
        goto done;
    if (get(L, o, "Export") != LUA_TNIL) { /* top + 3 */
        if (kind(c, top + 3) != K_OBJECT || get(L, top + 3, "Name") == LUA_TNIL) /* top + 4 */
            goto done;
        if (!walk(c, top + 4, 1, SC_OUTPUT))
            goto done;
        if (lua_type(L, top + 4) == LUA_TSTRING) {
            if (has(L, exports, top + 4))
                goto done;
            lua_pushvalue(L, top + 4);
            lua_pushboolean(L, 1);
            lua_rawset(L, exports);
        }
    }
    ok = 1;
done:
    lua_settop(L, top);
    return ok;
}

/* Runs fn(c, key, value) over the entries of the table at t while it says
 * 1.  [-0, +0, e] */
typedef int (*entry_fn)(chk *c, int k, int v);

static int each(chk *c, int t, entry_fn fn)
{
    lua_State *L = c->L;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int v = lua_gettop(L);
        if (!fn(c, v - 1, v)) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 1;
}

static int condition(chk *c, int n, int v)
{
    return valid_name(c->L, n) && walk_condition(c, v, 1, node(c->L, &c->cond, n));
}

/* section(ctx, tpl, name): pushes the section (an empty table when absent);
 * 0 when it is not an object.  [-0, +1, m] */
static int section(chk *c, int tpl, const char *name)
{
    lua_State *L = c->L;
    if (get(L, tpl, name) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        return 1;
    }
    return is_object(kind(c, lua_gettop(L)));
}

/* check_ok(template, size, env) -> boolean */
int lumu_cfn_check_ok(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer size = luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    chk c;
    memset(&c, 0, sizeof c);
    c.L = L;
    c.nullp = lumu_conv_nullptr(L);
    luaL_checkstack(L, 40, "check_ok");
    if (lua_getfield(L, 3, "pseudo") != LUA_TTABLE || lua_getfield(L, 3, "limits") != LUA_TTABLE
        || lua_getfield(L, 3, "valid_resource_type") != LUA_TFUNCTION
        || lua_getfield(L, 3, "valid_param_type") != LUA_TFUNCTION)
        return luaL_error(L, "check_ok: env needs pseudo, limits, valid_resource_type, valid_param_type");
    c.pseudo = 4;
    c.limits = 5;
    c.vrt = 6;
    c.vpt = 7;
    lua_getfield(L, 3, "max_depth");
    c.max_depth = luaL_checkinteger(L, -1);
    lua_pop(L, 1);

    int ok = 0;
    int tpl = 1;
    if (!plain(&c, tpl) || !only_keys(L, tpl, TOP_KEYS) || size > limit(&c, "body"))
        goto done;
    int vt = get(L, tpl, "AWSTemplateFormatVersion");
    int fine = vt == LUA_TNIL || is_lit(L, -1, "2010-09-09");
    int dt = get(L, tpl, "Description");
    fine = fine && (dt == LUA_TNIL || (dt == LUA_TSTRING && (lua_Integer)lua_rawlen(L, -1) <= limit(&c, "description")));
    fine = fine && get(L, tpl, "Transform") == LUA_TNIL && get(L, tpl, "Rules") == LUA_TNIL
        && get(L, tpl, "Resources") != LUA_TNIL;
    lua_settop(L, 7);
    if (!fine)
        goto done;
    if (!section(&c, tpl, "Parameters"))
        goto done;
    c.params = lua_gettop(L);
    if (!section(&c, tpl, "Resources"))
        goto done;
    c.resources = lua_gettop(L);
    if (!section(&c, tpl, "Conditions"))
        goto done;
    c.conditions = lua_gettop(L);
    if (!section(&c, tpl, "Mappings"))
        goto done;
    c.mappings = lua_gettop(L);
    if (!section(&c, tpl, "Outputs"))
        goto done;
    int outputs = lua_gettop(L);
    if (!section(&c, tpl, "Metadata"))
        goto done;
    graph_init(&c, &c.res, c.resources);
    graph_init(&c, &c.cond, c.conditions);

    lua_Integer np = count(L, c.params), nm = count(L, c.mappings), nr = count(L, c.resources),
                no = count(L, outputs);
    if (np > limit(&c, "parameters") || nm > limit(&c, "mappings") || nr == 0 || nr > limit(&c, "resources")
        || no > limit(&c, "outputs"))
        goto done;
    if (!each(&c, c.params, parameter) || !each(&c, c.mappings, mapping) || !each(&c, c.conditions, condition)
        || has_cycle(L, &c.cond) || !each(&c, c.resources, resource) || has_cycle(L, &c.res))
        goto done;
    lua_newtable(L);
    c.exports = lua_gettop(L);
    ok = each(&c, outputs, output);
done:
    lua_settop(L, 3);
    lua_pushboolean(L, ok);
    return 1;
}
