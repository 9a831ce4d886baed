/*
 * lumu._json: JSON <-> Lua with jansson (the public API and its contract are
 * in stdlib/lumu/json.lua).
 *
 * Encoding has two paths that give the same bytes.  The fast path walks the
 * value once and writes the text straight into a buffer, formatting like
 * jansson's json_dumps (jansson itself formats the reals).  It gives up on
 * anything unusual (a value that cannot be encoded, bad UTF-8, a cycle or
 * nesting at the limit, a malformed __jsonorder) without raising; the slow
 * path then does the same work through the shared walk (convert.c), which
 * builds a jansson tree in the final key order (jansson keeps insertion
 * order), dumps it, and raises the error with its key path.  Decoding parses
 * with jansson and converts the tree.  Every C allocation (jansson tree,
 * buffers) is owned by a to-be-closed box, so a Lua error (out of memory, a
 * value that cannot be encoded) frees it on the way out.
 */
#include "convert.h"
#include "host.h"

#include <lauxlib.h>

#include <jansson.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOX_TNAME "lumu.json.Box"

/* An object key met by the fast encoder: the string (kept alive by its
 * table and by the scratch table) and where its value sits in the scratch
 * table. */
typedef struct fast_key {
    const char *s;
    size_t len;
    lua_Integer slot; /* scratch[slot] = the value */
    int done;
} fast_key;

typedef struct json_box {
    json_t *root;   /* slow path and decode: the jansson tree */
    char *out;      /* slow path: json_dumps() result */
    char *buf;      /* fast path: the text */
    size_t len, cap;
    fast_key *keys; /* fast path: keys of the objects being written (a stack) */
    size_t nkeys, kcap;
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
    if (b->buf) {
        lumu_free(b->buf);
        b->buf = NULL;
    }
    if (b->keys) {
        lumu_free(b->keys);
        b->keys = NULL;
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

/* ---------------------------------------------------------------------------
 * encode, fast path
 * ------------------------------------------------------------------------- */

enum { FAST_OK, FAST_FALLBACK };

typedef struct fast_enc {
    lua_State *L;
    json_box *box;
    int indent;         /* 0: compact */
    int sort_keys;
    int ascii;
    int precision;      /* precision of every real (0: not known yet) */
    int max_prec;       /* highest precision a real needs */
    int min_used;       /* lowest precision a real was written with */
    int reals;          /* reals written */
    void *nullp;
    int scratch;        /* stack index: keys and values of open objects */
    lua_Integer sp;     /* used slots of the scratch table */
    int k_type, k_order; /* stack indexes of "__jsontype", "__jsonorder" */
} fast_enc;

/* Grows the buffer for n more bytes; raises on no memory (the box frees
 * the buffer). */
static char *fast_grow(fast_enc *e, size_t n)
{
    json_box *b = e->box;
    {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                luaL_error(e->L, "json.encode: not enough memory");
            cap *= 2;
        }
        char *nb = lumu_realloc(b->buf, cap);
        if (!nb)
            luaL_error(e->L, "json.encode: not enough memory");
        b->buf = nb;
        b->cap = cap;
    }
    return b->buf + b->len;
}

/* Room for n more bytes. */
static inline char *fast_reserve(fast_enc *e, size_t n)
{
    json_box *b = e->box;
    if (b->cap - b->len < n)
        return fast_grow(e, n);
    return b->buf + b->len;
}

static void fast_put(fast_enc *e, const char *s, size_t n)
{
    char *p = fast_reserve(e, n);
    memcpy(p, s, n);
    e->box->len += n;
}

/* jansson's dump_indent: a newline and depth * indent spaces when pretty. */
static void fast_indent(fast_enc *e, int depth)
{
    if (!e->indent)
        return;
    size_t n = (size_t)depth * (size_t)e->indent;
    char *p = fast_reserve(e, n + 1);
    *p++ = '\n';
    memset(p, ' ', n);
    e->box->len += n + 1;
}

static const char s_hex[] = "0123456789ABCDEF";

static char *put_u(char *p, unsigned cp)
{
    *p++ = '\\';
    *p++ = 'u';
    *p++ = s_hex[(cp >> 12) & 15];
    *p++ = s_hex[(cp >> 8) & 15];
    *p++ = s_hex[(cp >> 4) & 15];
    *p++ = s_hex[cp & 15];
    return p;
}

/* 1: bytes that jansson writes as they are (in a valid UTF-8 string). */
static const unsigned char s_plain[256] = {
#define P16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: '"' */
    P16, P16,                                       /* 0x30, 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50: '\\' */
    P16, P16,                                       /* 0x60, 0x70 (0x7F as is) */
#undef P16
};

/* Writes s as a JSON string like jansson's dump_string; FAST_FALLBACK on
 * invalid UTF-8 (the same rules as lumu_conv_utf8_valid). */
static int fast_string(fast_enc *e, const char *str, size_t len)
{
    if (len > (SIZE_MAX - 2) / 6)
        return FAST_FALLBACK;
    char *p = fast_reserve(e, len * 6 + 2), *p0 = p;
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    *p++ = '"';
    while (s < end) {
        /* 8 plain bytes at a time: none < 0x20, '"', '\\' or >= 0x80 */
        while (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
            uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
            uint64_t special = ((w - ones * 0x20) | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & highs;
            if (special)
                break;
            memcpy(p, s, 8);
            p += 8;
            s += 8;
        }
        if (s >= end)
            break;
        unsigned c = *s;
        if (s_plain[c]) {
            *p++ = (char)c;
            s++;
            continue;
        }
        if (c < 0x80) {
            *p++ = '\\';
            switch (c) {
            case '"': *p++ = '"'; break;
            case '\\': *p++ = '\\'; break;
            case '\b': *p++ = 'b'; break;
            case '\f': *p++ = 'f'; break;
            case '\n': *p++ = 'n'; break;
            case '\r': *p++ = 'r'; break;
            case '\t': *p++ = 't'; break;
            default: p = put_u(p - 1, c); break;
            }
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
            return FAST_FALLBACK;
        }
        if ((size_t)(end - s) <= n)
            return FAST_FALLBACK;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return FAST_FALLBACK;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return FAST_FALLBACK;
        if (!e->ascii) {
            memcpy(p, s, n + 1);
            p += n + 1;
        } else if (cp < 0x10000) {
            p = put_u(p, cp);
        } else {
            cp -= 0x10000;
            p = put_u(p, 0xD800 | ((cp & 0xffc00) >> 10));
            p = put_u(p, 0xDC00 | (cp & 0x3ff));
        }
        s += n + 1;
    }
    *p++ = '"';
    e->box->len += (size_t)(p - p0);
    return FAST_OK;
}

static void fast_integer(fast_enc *e, lua_Integer i)
{
    char tmp[24], *q = tmp + sizeof tmp;
    unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0)
        *--q = '-';
    fast_put(e, q, (size_t)(tmp + sizeof tmp - q));
}

/* Reals are formatted by jansson itself, with the precision the slow path
 * would use for the whole document: the highest any real needs. */
static int fast_real(fast_enc *e, double d)
{
    if (isnan(d) || isinf(d))
        return FAST_FALLBACK;
    int p = lumu_conv_float_precision(d);
    int use = e->precision;
    if (!use) {
        if (p > e->max_prec)
            e->max_prec = p;
        use = e->max_prec;
        if (!e->reals || use < e->min_used)
            e->min_used = use;
    }
    e->reals++;
    json_t *r = json_real(d);
    if (!r)
        return luaL_error(e->L, "json.encode: not enough memory");
    char *buf = fast_reserve(e, 100);
    size_t n = json_dumpb(r, buf, 100, JSON_ENCODE_ANY | JSON_REAL_PRECISION(use));
    json_decref(r);
    if (n == 0 || n > 100)
        return FAST_FALLBACK;
    e->box->len += n;
    return FAST_OK;
}

static int fast_value(fast_enc *e, int depth);

static int key_cmp(const void *a, const void *b)
{
    const fast_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Sorts keys bytewise: insertion sort for the usual handful, qsort above. */
static void sort_keys(fast_key *k, size_t n)
{
    if (n > 16) {
        qsort(k, n, sizeof *k, key_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        fast_key x = k[i];
        size_t j = i;
        while (j > 0 && key_cmp(&k[j - 1], &x) > 0) {
            k[j] = k[j - 1];
            j--;
        }
        k[j] = x;
    }
}

/* Writes one object entry: the separator before it, the key, the value. */
static int fast_entry(fast_enc *e, fast_key *k, int depth, int first)
{
    if (!first)
        fast_put(e, ",", 1);
    fast_indent(e, depth + 1);
    k->done = 1;
    if (fast_string(e, k->s, k->len) != FAST_OK)
        return FAST_FALLBACK;
    if (e->indent)
        fast_put(e, ": ", 2);
    else
        fast_put(e, ":", 1);
    lua_rawgeti(e->L, e->scratch, k->slot);
    int st = fast_value(e, depth + 1);
    lua_pop(e->L, 1);
    return st;
}

/* The object at t whose n string keys are box->keys[kbase ..], with its key
 * order table (or nil) at t + 1. */
static int fast_object(fast_enc *e, int t, size_t kbase, lua_Integer n, int depth)
{
    lua_State *L = e->L;
    fast_put(e, "{", 1);
    if (e->sort_keys && n > 1)
        sort_keys(e->box->keys + kbase, (size_t)n);
    int first = 1;
    if (lua_type(L, t + 1) == LUA_TTABLE) {
        lua_Integer m = (lua_Integer)lua_rawlen(L, t + 1);
        for (lua_Integer i = 1; i <= m; i++) {
            if (lua_rawgeti(L, t + 1, i) != LUA_TSTRING)
                return FAST_FALLBACK;
            fast_key want;
            want.s = lua_tolstring(L, -1, &want.len);
            fast_key *k = NULL, *keys = n > 0 ? e->box->keys + kbase : NULL;
            if (n == 0) {
                /* nothing to find */
            } else if (e->sort_keys) {
                k = bsearch(&want, keys, (size_t)n, sizeof(fast_key), key_cmp);
            } else {
                for (lua_Integer j = 0; j < n; j++)
                    if (keys[j].len == want.len && memcmp(keys[j].s, want.s, want.len) == 0) {
                        k = &keys[j];
                        break;
                    }
            }
            if (k && !k->done) {
                /* e->box->keys may move while the value is written */
                size_t at = (size_t)(k - e->box->keys);
                int st = fast_entry(e, &e->box->keys[at], depth, first);
                if (st != FAST_OK)
                    return st;
                first = 0;
            }
            lua_pop(L, 1);
        }
    }
    for (lua_Integer j = 0; j < n; j++) {
        if (e->box->keys[kbase + (size_t)j].done)
            continue;
        int st = fast_entry(e, &e->box->keys[kbase + (size_t)j], depth, first);
        if (st != FAST_OK)
            return st;
        first = 0;
    }
    if (!first)
        fast_indent(e, depth);
    fast_put(e, "}", 1);
    return FAST_OK;
}

/* The table at the top, classified like convert.c's walk_table.  Leaves the
 * stack as it found it on FAST_OK. */
static int fast_table(fast_enc *e, int depth)
{
    lua_State *L = e->L;
    if (depth >= LUMU_CONV_MAX_DEPTH || !lua_checkstack(L, 8))
        return FAST_FALLBACK; /* or a cycle: the slow path says which */
    int t = lua_gettop(L);
    int marker = LUMU_CONV_UNMARKED;
    if (lua_getmetatable(L, t)) {
        lua_pushvalue(L, e->k_type);
        if (lua_rawget(L, -2) == LUA_TSTRING) {
            const char *ty = lua_tostring(L, -1);
            if (strcmp(ty, "array") == 0)
                marker = LUMU_CONV_ARRAY;
            else if (strcmp(ty, "object") == 0)
                marker = LUMU_CONV_OBJECT;
        }
        lua_pop(L, 1);
        lua_pushvalue(L, e->k_order);
        int ty = lua_rawget(L, -2);
        lua_remove(L, -2); /* the metatable */
        if (ty != LUA_TNIL && ty != LUA_TTABLE)
            return FAST_FALLBACK; /* an error if t is an object */
    } else {
        lua_pushnil(L);
    }
    /* t + 1: the key order table or nil */

    json_box *b = e->box;
    size_t kbase = b->nkeys;
    lua_Integer sbase = e->sp;
    lua_Integer n = 0, max = 0;
    int nonstr = 0, nonidx = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        n++;
        if (lua_type(L, -2) == LUA_TSTRING) {
            nonidx = 1;
            if (b->nkeys == b->kcap) {
                size_t cap = b->kcap ? b->kcap * 2 : 64;
                if (cap > SIZE_MAX / sizeof(fast_key))
                    return luaL_error(L, "json.encode: not enough memory");
                fast_key *nk = lumu_realloc(b->keys, cap * sizeof(fast_key));
                if (!nk)
                    return luaL_error(L, "json.encode: not enough memory");
                b->keys = nk;
                b->kcap = cap;
            }
            fast_key *k;
            k = &b->keys[b->nkeys++];
            /* the key string stays alive: t holds it and nothing changes t */
            k->s = lua_tolstring(L, -2, &k->len);
            k->done = 0;
            k->slot = ++e->sp;
            lua_rawseti(L, e->scratch, e->sp); /* the value */
        } else {
            nonstr = 1;
            if (lua_isinteger(L, -2) && lua_tointeger(L, -2) > 0) {
                lua_Integer i = lua_tointeger(L, -2);
                if (i > max)
                    max = i;
            } else {
                nonidx = 1;
            }
            lua_pop(L, 1);
        }
    }
    int st;
    if (marker == LUMU_CONV_ARRAY) {
        if (nonidx || max != n)
            return FAST_FALLBACK;
        goto array;
    } else if (marker == LUMU_CONV_OBJECT || n == 0 || !nonstr) {
        if (nonstr)
            return FAST_FALLBACK;
        st = fast_object(e, t, kbase, n, depth);
        if (st != FAST_OK)
            return st;
        b->nkeys = kbase;
        e->sp = sbase;
        lua_settop(L, t);
        return FAST_OK;
    } else if (!nonidx) {
        if (max != n)
            return FAST_FALLBACK;
        goto array;
    }
    return FAST_FALLBACK;

array:
    lua_settop(L, t);
    fast_put(e, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            fast_put(e, ",", 1);
        fast_indent(e, depth + 1);
        lua_rawgeti(L, t, i);
        st = fast_value(e, depth + 1);
        if (st != FAST_OK)
            return st;
        lua_pop(L, 1);
    }
    if (n > 0)
        fast_indent(e, depth);
    fast_put(e, "]", 1);
    return FAST_OK;
}

/* The value at the top.  [-0, +0, m] on FAST_OK */
static int fast_value(fast_enc *e, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, -1)) {
    case LUA_TNIL:
        fast_put(e, "null", 4);
        return FAST_OK;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, -1))
            fast_put(e, "true", 4);
        else
            fast_put(e, "false", 5);
        return FAST_OK;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
            fast_integer(e, lua_tointeger(L, -1));
            return FAST_OK;
        }
        return fast_real(e, lua_tonumber(L, -1));
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        return fast_string(e, s, len);
    }
    case LUA_TTABLE:
        return fast_table(e, depth);
    case LUA_TUSERDATA:
        if (lua_touserdata(L, -1) == e->nullp) {
            fast_put(e, "null", 4);
            return FAST_OK;
        }
        return FAST_FALLBACK;
    default:
        return FAST_FALLBACK;
    }
}

/* Encodes the value at index 1 into box->buf.  Returns FAST_OK or
 * FAST_FALLBACK; the stack is back at its height either way.  [-0, +0, m] */
static int fast_encode(lua_State *L, json_box *box, int indent, int sort_keys, int ascii)
{
    int top = lua_gettop(L);
    luaL_checkstack(L, 8, NULL);
    fast_enc e;
    memset(&e, 0, sizeof e);
    e.L = L;
    e.box = box;
    e.indent = indent;
    e.sort_keys = sort_keys;
    e.ascii = ascii;
    lumu_conv_init(L);
    e.nullp = lumu_conv_nullptr(L);
    lua_newtable(L);
    e.scratch = lua_gettop(L);
    lua_pushliteral(L, "__jsontype");
    e.k_type = lua_gettop(L);
    lua_pushliteral(L, "__jsonorder");
    e.k_order = lua_gettop(L);
    int st;
    for (;;) {
        box->len = 0;
        box->nkeys = 0;
        e.sp = 0;
        e.reals = 0;
        lua_settop(L, e.k_order);
        lua_pushvalue(L, 1);
        st = fast_value(&e, 0);
        /* every real gets the precision of the one that needs the most */
        if (st == FAST_OK && e.reals && !e.precision && e.min_used != e.max_prec) {
            e.precision = e.max_prec;
            continue;
        }
        break;
    }
    if (st == FAST_OK && indent)
        fast_put(&e, "\n", 1);
    lua_settop(L, top);
    return st;
}

/* ---------------------------------------------------------------------------
 * encode: entry points
 * ------------------------------------------------------------------------- */

/* The slow path: the jansson tree built by the shared walk, which raises on
 * what cannot be encoded.  Pushes the text.  [-0, +1, e] */
static void slow_encode(lua_State *L, json_box *box, int indent, int sort_keys, int ascii)
{
    json_enc *e = lua_newuserdatauv(L, sizeof *e, 0);
    memset(e, 0, sizeof *e);
    e->box = box;
    e->precision = 1;
    lumu_conv_walk(L, 1, &s_enc_visitor, e, sort_keys, "json.encode");

    size_t flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(e->precision);
    flags |= indent > 0 ? JSON_INDENT(indent) : JSON_COMPACT;
    if (ascii)
        flags |= JSON_ENSURE_ASCII;
    lua_pop(L, 1); /* e */
    box->out = json_dumps(box->root, flags);
    if (!box->out)
        luaL_error(L, "json.encode: not enough memory");
    lua_pushstring(L, box->out);
    if (indent > 0) {
        lua_pushliteral(L, "\n");
        lua_concat(L, 2);
    }
}

/* Reads encode's options (the table at opts, or 0). */
static void encode_opts(lua_State *L, int opts, int *indent, int *sort_keys, int *ascii)
{
    *indent = 0;
    if (opts) {
        int t = lua_getfield(L, opts, "pretty");
        if (t == LUA_TBOOLEAN) {
            *indent = lua_toboolean(L, -1) ? 2 : 0;
        } else if (t == LUA_TNUMBER) {
            lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
            if (n < 0 || n > JSON_MAX_INDENT)
                luaL_error(L, "bad option 'pretty' (boolean or integer 0..%d expected)",
                           JSON_MAX_INDENT);
            *indent = (int)n;
        } else if (t != LUA_TNIL) {
            luaL_error(L, "bad option 'pretty' (boolean or integer expected, got %s)",
                       luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    *sort_keys = opt_bool(L, opts, "sort_keys", 1);
    *ascii = opt_bool(L, opts, "ascii", 0);
}

static int encode_common(lua_State *L, int fast)
{
    luaL_checkany(L, 1);
    int opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    int indent, sort_keys, ascii;
    encode_opts(L, opts, &indent, &sort_keys, &ascii);
    lua_settop(L, 2);

    json_box *box = lumu_conv_newbox(L, sizeof *box, BOX_TNAME, box_release); /* 3 */
    if (fast && fast_encode(L, box, indent, sort_keys, ascii) == FAST_OK) {
        lua_pushlstring(L, box->buf, box->len);
        return 1; /* the box closes */
    }
    slow_encode(L, box, indent, sort_keys, ascii);
    return 1; /* the box closes */
}

/* encode(value [, opts]) -> string */
static int json_encode(lua_State *L)
{
    return encode_common(L, 1);
}

/* _encode_jansson(value [, opts]) -> string: the slow path alone (tests
 * compare the two). */
static int json_encode_jansson(lua_State *L)
{
    return encode_common(L, 0);
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
        json_set_alloc_funcs(lumu_json_malloc, lumu_free);
        s_alloc_set = 1;
    }
    static const luaL_Reg fns[] = {
        {"encode", json_encode},
        {"decode", json_decode},
        {"_encode_jansson", json_encode_jansson},
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
