/*
 * lumu._json: JSON <-> Lua with jansson (the public API and its contract are
 * in stdlib/lumu/json.lua).
 *
 * Encoding builds a jansson tree through the shared walk (convert.c), in the
 * final key order (jansson keeps insertion order), then dumps it.  Decoding
 * parses with jansson and converts the tree.  Every jansson allocation is
 * owned by a to-be-closed box, so a Lua error (out of memory, a value that
 * cannot be encoded) frees it on the way out.
 */
#include "convert.h"
#include "host.h"

#include <lauxlib.h>

#include <jansson.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define BOX_TNAME "lumu.json.Box"

typedef struct json_box {
    json_t *root;
    char *out;
} json_box;

static void box_release(void *p)
{
    json_box *b = p;
    if (b->root) {
        json_decref(b->root);
        b->root = NULL;
    }
    if (b->out) {
        lumu_free(b->out);
        b->out = NULL;
    }
}

/* ---------------------------------------------------------------------------
 * encode
 * ------------------------------------------------------------------------- */

typedef struct json_enc {
    json_box *box;
    int top;              /* containers on the stack */
    const char *key;      /* pending object key */
    size_t keylen;
    int precision;        /* max over the reals seen */
    json_t *stack[LUMU_CONV_MAX_DEPTH + 2];
} json_enc;

/* Attaches v (a new reference, may be NULL) to the current container or
 * makes it the root. */
static const char *enc_attach(json_enc *e, json_t *v)
{
    if (!v)
        return "not enough memory";
    if (e->top == 0) {
        if (e->box->root) {
            json_decref(v);
            return "internal error: two roots";
        }
        e->box->root = v;
        return NULL;
    }
    json_t *parent = e->stack[e->top - 1];
    int rc = json_is_array(parent) ? json_array_append_new(parent, v)
                                   : json_object_setn_new_nocheck(parent, e->key, e->keylen, v);
    return rc == 0 ? NULL : "not enough memory";
}

static const char *enc_scalar(void *ud, lua_State *L, int kind)
{
    json_enc *e = ud;
    switch (kind) {
    case LUMU_CONV_NULL:
        return enc_attach(e, json_null());
    case LUMU_CONV_BOOLEAN:
        return enc_attach(e, json_boolean(lua_toboolean(L, -1)));
    case LUMU_CONV_INTEGER:
        return enc_attach(e, json_integer((json_int_t)lua_tointeger(L, -1)));
    case LUMU_CONV_FLOAT: {
        double d = lua_tonumber(L, -1);
        if (isnan(d))
            return "cannot encode NaN";
        if (isinf(d))
            return "cannot encode infinity";
        int p = lumu_conv_float_precision(d);
        if (p > e->precision)
            e->precision = p;
        return enc_attach(e, json_real(d));
    }
    default: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (!lumu_conv_utf8_valid(s, len))
            return "invalid UTF-8 in string";
        return enc_attach(e, json_stringn_nocheck(s, len));
    }
    }
}

static const char *enc_open(void *ud, lua_State *L, int is_array, lua_Integer n, int *action)
{
    json_enc *e = ud;
    (void)L, (void)n, (void)action;
    json_t *c = is_array ? json_array() : json_object();
    if (!c)
        return "not enough memory";
    json_incref(c); /* keep our reference while the parent owns one */
    const char *err = enc_attach(e, c);
    if (err) {
        json_decref(c);
        return err;
    }
    e->stack[e->top++] = c;
    json_decref(c); /* the parent (or the box) keeps it alive */
    return NULL;
}

static const char *enc_key(void *ud, const char *k, size_t len)
{
    json_enc *e = ud;
    if (!lumu_conv_utf8_valid(k, len))
        return "invalid UTF-8 in object key";
    e->key = k;
    e->keylen = len;
    return NULL;
}

static const char *enc_close(void *ud, int is_array)
{
    json_enc *e = ud;
    (void)is_array;
    e->top--;
    return NULL;
}

static const lumu_conv_visitor s_enc_visitor = {enc_scalar, enc_open, enc_key, enc_close};

/* Reads a boolean option.  [-0, +0, e] */
static int opt_bool(lua_State *L, int opts, const char *name, int def)
{
    if (opts == 0)
        return def;
    int t = lua_getfield(L, opts, name);
    int r = def;
    if (t == LUA_TBOOLEAN)
        r = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        luaL_error(L, "bad option '%s' (boolean expected, got %s)", name, luaL_typename(L, -1));
    lua_pop(L, 1);
    return r;
}

/* encode(value [, opts]) -> string */
static int json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    int opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    int indent = 0;
    if (opts) {
        int t = lua_getfield(L, opts, "pretty");
        if (t == LUA_TBOOLEAN) {
            indent = lua_toboolean(L, -1) ? 2 : 0;
        } else if (t == LUA_TNUMBER) {
            lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
            if (n < 0 || n > JSON_MAX_INDENT)
                return luaL_error(L, "bad option 'pretty' (boolean or integer 0..%d expected)",
                                  JSON_MAX_INDENT);
            indent = (int)n;
        } else if (t != LUA_TNIL) {
            return luaL_error(L, "bad option 'pretty' (boolean or integer expected, got %s)",
                              luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    int pretty = indent > 0;
    int sort_keys = opt_bool(L, opts, "sort_keys", 1);
    int ascii = opt_bool(L, opts, "ascii", 0);
    lua_settop(L, 2);

    json_box *box = lumu_conv_newbox(L, sizeof *box, BOX_TNAME, box_release); /* 3 */
    json_enc *e = lua_newuserdatauv(L, sizeof *e, 0);                        /* 4 */
    memset(e, 0, sizeof *e);
    e->box = box;
    e->precision = 1;
    lumu_conv_walk(L, 1, &s_enc_visitor, e, sort_keys, "json.encode");

    size_t flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(e->precision);
    flags |= pretty ? JSON_INDENT(indent) : JSON_COMPACT;
    if (ascii)
        flags |= JSON_ENSURE_ASCII;
    box->out = json_dumps(box->root, flags);
    if (!box->out)
        return luaL_error(L, "json.encode: not enough memory");
    lua_pushstring(L, box->out);
    if (pretty) {
        lua_pushliteral(L, "\n");
        lua_concat(L, 2);
    }
    return 1; /* the box closes */
}

/* ---------------------------------------------------------------------------
 * decode
 * ------------------------------------------------------------------------- */

/* Pushes the Lua value for j.  [-0, +1, e] */
static void push_json(lua_State *L, json_t *j, int depth)
{
    luaL_checkstack(L, 4, "json.decode: nesting too deep");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (depth >= LUMU_CONV_MAX_DEPTH)
            luaL_error(L, "json.decode: nesting deeper than %d levels", LUMU_CONV_MAX_DEPTH);
        lua_createtable(L, 0, (int)json_object_size(j));
        const char *k;
        json_t *v;
        void *it;
        for (it = json_object_iter(j); it; it = json_object_iter_next(j, it)) {
            k = json_object_iter_key(it);
            v = json_object_iter_value(it);
            lua_pushlstring(L, k, json_object_iter_key_len(it));
            push_json(L, v, depth + 1);
            lua_rawset(L, -3);
        }
        lumu_conv_mark(L, -1, 0);
        break;
    }
    case JSON_ARRAY: {
        if (depth >= LUMU_CONV_MAX_DEPTH)
            luaL_error(L, "json.decode: nesting deeper than %d levels", LUMU_CONV_MAX_DEPTH);
        size_t n = json_array_size(j);
        lua_createtable(L, n < 1000000 ? (int)n : 0, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(L, json_array_get(j, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lumu_conv_mark(L, -1, 1);
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(j));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lumu_conv_pushnull(L);
        break;
    }
}

/* Finds the first place where arrays/objects nest deeper than the limit,
 * outside strings.  Returns 1 and sets *line and *col (1-based, columns count
 * characters like jansson) when there is one.  Malformed input is left to
 * jansson. */
static int too_deep(const char *s, size_t len, int *line, int *col)
{
    int depth = 0, in_str = 0, esc = 0, ln = 1, cl = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            ln++;
            cl = 0;
        } else if ((c & 0xC0) != 0x80) {
            cl++;
        }
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > LUMU_CONV_MAX_DEPTH) {
                *line = ln;
                *col = cl;
                return 1;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/* decode(string [, opts]) -> value | nil, "line:col: message" */
static int json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    int reject_dups = opt_bool(L, opts, "reject_duplicates", 0);
    lua_settop(L, 2);
    lumu_conv_init(L);

    int line, col;
    if (too_deep(s, len, &line, &col)) {
        lua_pushnil(L);
        lua_pushfstring(L, "%d:%d: nesting deeper than %d levels", line, col,
                        LUMU_CONV_MAX_DEPTH);
        return 2;
    }

    json_box *box = lumu_conv_newbox(L, sizeof *box, BOX_TNAME, box_release); /* 3 */
    json_error_t err;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    if (reject_dups)
        flags |= JSON_REJECT_DUPLICATES;
    box->root = json_loadb(s, len, flags, &err);
    if (!box->root) {
        lua_pushnil(L);
        lua_pushfstring(L, "%d:%d: %s", err.line < 1 ? 1 : err.line,
                        err.column < 1 ? 1 : err.column, err.text);
        return 2;
    }
    push_json(L, box->root, 0);
    return 1; /* the box closes */
}

/* ---------------------------------------------------------------------------
 * module
 * ------------------------------------------------------------------------- */

int luaopen_lumu__json(lua_State *L)
{
    static int s_alloc_set;
    if (!s_alloc_set) {
        json_set_alloc_funcs(lumu_malloc, lumu_free);
        s_alloc_set = 1;
    }
    static const luaL_Reg fns[] = {
        {"encode", json_encode},
        {"decode", json_decode},
        {NULL, NULL}};
    lumu_conv_init(L);
    luaL_newlib(L, fns);
    lumu_conv_pushnull(L);
    lua_setfield(L, -2, "null");
    lumu_conv_pushmeta(L, 1);
    lua_setfield(L, -2, "array_mt");
    lumu_conv_pushmeta(L, 0);
    lua_setfield(L, -2, "object_mt");
    return 1;
}
