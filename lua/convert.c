/*
 * convert: null sentinel, marker metatables, the encoder walk and small
 * helpers shared by lumu.json (l_json.c) and lumu.yaml (l_yaml.c).
 */
#include "convert.h"

#include <lauxlib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry keys (addresses are unique). */
static const char s_null_key = 'n';
static const char s_array_key = 'a';
static const char s_object_key = 'o';

#define NULL_TNAME "lumu.json.null"

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

void lumu_conv_init(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &s_null_key) != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_newuserdatauv(L, 1, 0);                   /* null */
    if (luaL_newmetatable(L, NULL_TNAME)) {       /* null mt */
        lua_pushcfunction(L, null_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "lumu.json.null");
        lua_setfield(L, -2, "__name");
        lua_pushliteral(L, "json.null");
        lua_setfield(L, -2, "__metatable");       /* getmetatable(null) is a string */
    }
    lua_setmetatable(L, -2);                      /* null */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &s_null_key);

    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &s_array_key);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__jsontype");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &s_object_key);
}

void lumu_conv_pushnull(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &s_null_key);
}

void *lumu_conv_nullptr(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &s_null_key);
    void *p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
}

void lumu_conv_pushmeta(lua_State *L, int is_array)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, is_array ? &s_array_key : &s_object_key);
}

void lumu_conv_mark(lua_State *L, int idx, int is_array)
{
    idx = lua_absindex(L, idx);
    lumu_conv_pushmeta(L, is_array);
    lua_setmetatable(L, idx);
}

int lumu_conv_marker(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return LUMU_CONV_UNMARKED;
    int r = LUMU_CONV_UNMARKED;
    lua_pushliteral(L, "__jsontype");
    if (lua_rawget(L, -2) == LUA_TSTRING) {
        const char *t = lua_tostring(L, -1);
        if (strcmp(t, "array") == 0)
            r = LUMU_CONV_ARRAY;
        else if (strcmp(t, "object") == 0)
            r = LUMU_CONV_OBJECT;
    }
    lua_pop(L, 2);
    return r;
}

void lumu_conv_newweak(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
}

int lumu_conv_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *e = s + len;
    while (s < e) {
        unsigned c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(e - s) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += n + 1;
    }
    return 1;
}

int lumu_conv_float_precision(double d)
{
    char buf[40];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* enough digits for the integer part, so 1500.0 is not 1.5e+03 */
    double a = d < 0 ? -d : d;
    if (a >= 1 && a < 1e15) {
        int digits = 1;
        for (double x = a; x >= 10; x /= 10)
            digits++;
        if (digits > p)
            p = digits;
    }
    return p;
}

/* ---------------------------------------------------------------------------
 * Boxes
 * ------------------------------------------------------------------------- */

typedef union {
    void (*release)(void *box);
    max_align_t align;
} box_header;

static int box_close(lua_State *L)
{
    box_header *h = lua_touserdata(L, 1);
    if (h && h->release)
        h->release(h + 1);
    return 0;
}

void *lumu_conv_newbox(lua_State *L, size_t size, const char *tname,
                       void (*release)(void *box))
{
    box_header *h = lua_newuserdatauv(L, sizeof *h + size, 0);
    memset(h, 0, sizeof *h + size);
    h->release = release;
    if (luaL_newmetatable(L, tname)) {
        lua_pushcfunction(L, box_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, box_close);
        lua_setfield(L, -2, "__gc");
        lua_pushstring(L, tname);
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
    lua_toclose(L, -1);
    return h + 1;
}

/* ---------------------------------------------------------------------------
 * Encoder walk
 * ------------------------------------------------------------------------- */

typedef struct walk_frame {
    const char *key; /* object key, or NULL for an array index */
    size_t len;
    lua_Integer index;
} walk_frame;

typedef struct walker {
    lua_State *L;
    const lumu_conv_visitor *v;
    void *ud;
    const char *who;
    int sort_keys;
    int visiting; /* stack index of the set of tables being walked */
    void *nullp;
    int depth;
    walk_frame path[LUMU_CONV_MAX_DEPTH + 2];
} walker;

typedef struct key_entry {
    const char *s;
    size_t len;
    int done;
} key_entry;

/* Raises "who: path: msg" (or "who: msg" at the top level).  msg is copied
 * first, it may live in a buffer that unwinding frees.  [-0, +0, v] */
static int walk_error(walker *w, const char *msg)
{
    lua_State *L = w->L;
    luaL_checkstack(L, 4, NULL);
    lua_pushstring(L, msg);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, w->who);
    luaL_addstring(&b, ": ");
    for (int i = 0; i < w->depth; i++) {
        const walk_frame *f = &w->path[i];
        if (f->key) {
            if (i > 0)
                luaL_addchar(&b, '.');
            luaL_addlstring(&b, f->key, f->len);
        } else {
            char num[32];
            snprintf(num, sizeof num, "[%lld]", (long long)f->index);
            luaL_addstring(&b, num);
        }
    }
    if (w->depth > 0)
        luaL_addstring(&b, ": ");
    luaL_pushresult(&b);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
}

static void walk_check(walker *w, const char *err)
{
    if (err)
        walk_error(w, err);
}

static int key_cmp(const void *a, const void *b)
{
    const key_entry *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

static void walk_value(walker *w);

/* Walks the value at the top under key/index f (pushes a path frame).
 * [-0, +0, e] */
static void walk_child(walker *w, const char *key, size_t len, lua_Integer index)
{
    walk_frame *f = &w->path[w->depth++];
    f->key = key;
    f->len = len;
    f->index = index;
    walk_value(w);
    w->depth--;
}

/* Describes a key for error messages.  [-0, +0, -] */
static const char *key_desc(lua_State *L, int idx, char *buf, size_t size)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, size, "key %lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, size, "key %.14g", lua_tonumber(L, idx));
        return buf;
    default:
        snprintf(buf, size, "a key of type %s", lua_typename(L, lua_type(L, idx)));
        return buf;
    }
}

/* Writes key k of the object at t and its value (the key is in the path
 * of errors the visitor's key() returns).  [-0, +0, e] */
static void walk_entry(walker *w, int t, const key_entry *k)
{
    lua_State *L = w->L;
    walk_frame *f = &w->path[w->depth++];
    f->key = k->s;
    f->len = k->len;
    f->index = 0;
    walk_check(w, w->v->key(w->ud, k->s, k->len));
    lua_pushlstring(L, k->s, k->len);
    lua_rawget(L, t);
    walk_value(w);
    lua_pop(L, 1);
    w->depth--;
}

/* Writes the keys of the object at top in order.  [-0, +0, e] */
static void walk_object(walker *w, lua_Integer n)
{
    lua_State *L = w->L;
    int t = lua_gettop(L);
    key_entry *keys = lua_newuserdatauv(L, (size_t)n * sizeof *keys + 1, 0);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (k < n) {
            keys[k].s = lua_tolstring(L, -1, &keys[k].len);
            keys[k].done = 0;
        }
        k++;
    }
    if (w->sort_keys && n > 1)
        qsort(keys, (size_t)n, sizeof *keys, key_cmp);

    /* __jsonorder: listed keys first */
    if (lua_getmetatable(L, t)) {
        lua_pushliteral(L, "__jsonorder");
        int ty = lua_rawget(L, -2);
        if (ty == LUA_TTABLE) {
            lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= m; i++) {
                if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                    walk_error(w, "__jsonorder must be a list of strings");
                size_t len;
                const char *s = lua_tolstring(L, -1, &len);
                for (lua_Integer j = 0; j < n; j++)
                    if (!keys[j].done && keys[j].len == len && memcmp(keys[j].s, s, len) == 0) {
                        keys[j].done = 1;
                        walk_entry(w, t, &keys[j]);
                        break;
                    }
                lua_pop(L, 1);
            }
        } else if (ty != LUA_TNIL) {
            walk_error(w, "__jsonorder must be a list of strings");
        }
        lua_pop(L, 2);
    }
    for (lua_Integer j = 0; j < n; j++) {
        if (!keys[j].done)
            walk_entry(w, t, &keys[j]);
    }
    lua_pop(L, 1); /* keys */
}

/* The table at the top.  [-0, +0, e] */
static void walk_table(walker *w)
{
    lua_State *L = w->L;
    char desc[64];
    if (w->depth >= LUMU_CONV_MAX_DEPTH) {
        snprintf(desc, sizeof desc, "nesting deeper than %d levels", LUMU_CONV_MAX_DEPTH);
        walk_error(w, desc);
    }
    luaL_checkstack(L, 8, "nesting too deep");
    int t = lua_gettop(L);

    lua_pushvalue(L, t);
    if (lua_rawget(L, w->visiting) != LUA_TNIL)
        walk_error(w, "cycle detected (a table contains itself)");
    lua_pop(L, 1);

    /* classify */
    int marker = lumu_conv_marker(L, t);
    lua_Integer n = 0, max = 0;
    int nonstr = 0, nonidx = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
        if (lua_type(L, -1) != LUA_TSTRING) {
            if (!nonstr)
                key_desc(L, -1, desc, sizeof desc);
            nonstr = 1;
        }
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
            lua_Integer i = lua_tointeger(L, -1);
            if (i > max)
                max = i;
        } else {
            nonidx = 1;
        }
    }
    int is_array;
    if (marker == LUMU_CONV_ARRAY) {
        if (nonidx || max != n)
            walk_error(w, "table marked as array has keys other than 1..n");
        is_array = 1;
    } else if (marker == LUMU_CONV_OBJECT || n == 0 || !nonstr) {
        if (nonstr) {
            char msg[128];
            snprintf(msg, sizeof msg, "object keys must be strings (found %s)", desc);
            walk_error(w, msg);
        }
        is_array = 0;
    } else if (!nonidx) {
        if (max != n) {
            char msg[128];
            snprintf(msg, sizeof msg, "sparse array (%lld elements, highest index %lld)",
                     (long long)n, (long long)max);
            walk_error(w, msg);
        }
        is_array = 1;
    } else {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "cannot encode a table with %s (objects need string keys, arrays keys 1..n)",
                 desc);
        walk_error(w, msg);
        return;
    }

    int action = LUMU_CONV_DESCEND;
    walk_check(w, w->v->open_table(w->ud, L, is_array, n, &action));
    if (action == LUMU_CONV_SKIP)
        return;

    lua_pushvalue(L, t);
    lua_pushboolean(L, 1);
    lua_rawset(L, w->visiting);

    if (action == LUMU_CONV_UNWRAP && !is_array && n == 1) {
        lua_pushnil(L);
        lua_next(L, t); /* key, value */
        size_t len;
        const char *k = lua_tolstring(L, -2, &len);
        walk_child(w, k, len, 0);
        lua_pop(L, 2);
    } else {
        if (is_array) {
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, t, i);
                walk_child(w, NULL, 0, i);
                lua_pop(L, 1);
            }
        } else {
            walk_object(w, n);
        }
        walk_check(w, w->v->close_table(w->ud, is_array));
    }

    lua_pushvalue(L, t);
    lua_pushnil(L);
    lua_rawset(L, w->visiting);
}

/* The value at the top.  [-0, +0, e] */
static void walk_value(walker *w)
{
    lua_State *L = w->L;
    char msg[64];
    switch (lua_type(L, -1)) {
    case LUA_TNIL:
        walk_check(w, w->v->scalar(w->ud, L, LUMU_CONV_NULL));
        break;
    case LUA_TBOOLEAN:
        walk_check(w, w->v->scalar(w->ud, L, LUMU_CONV_BOOLEAN));
        break;
    case LUA_TNUMBER:
        walk_check(w, w->v->scalar(w->ud, L,
                                   lua_isinteger(L, -1) ? LUMU_CONV_INTEGER : LUMU_CONV_FLOAT));
        break;
    case LUA_TSTRING:
        walk_check(w, w->v->scalar(w->ud, L, LUMU_CONV_STRING));
        break;
    case LUA_TTABLE:
        walk_table(w);
        break;
    case LUA_TUSERDATA:
        if (lua_touserdata(L, -1) == w->nullp) {
            walk_check(w, w->v->scalar(w->ud, L, LUMU_CONV_NULL));
            break;
        }
        __attribute__((fallthrough)); /* not the null sentinel */
    default:
        snprintf(msg, sizeof msg, "cannot encode a %s", luaL_typename(L, -1));
        walk_error(w, msg);
    }
}

void lumu_conv_walk(lua_State *L, int idx, const lumu_conv_visitor *v, void *ud,
                    int sort_keys, const char *who)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, NULL);
    walker *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->L = L;
    w->v = v;
    w->ud = ud;
    w->who = who;
    w->sort_keys = sort_keys;
    w->depth = 0;
    lumu_conv_init(L);
    w->nullp = lumu_conv_nullptr(L);
    lua_newtable(L);
    w->visiting = lua_gettop(L);
    lua_pushvalue(L, idx);
    walk_value(w);
    lua_pop(L, 3);
}
