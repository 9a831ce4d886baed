/*
 * lumu._yaml: YAML <-> Lua with libyaml (the public API and its contract are
 * in stdlib/lumu/yaml.lua).
 *
 * load: a composer over libyaml's event stream.  It resolves plain scalars
 * with the YAML 1.2 core schema, expands CloudFormation short-form tags to
 * their long form, handles anchors, aliases and `<<` merge keys, and records
 * positions on request.  Expected failures (syntax, unknown tag, duplicate
 * key, too deep, alias explosion) unwind with a return code and an error text
 * in the composer and come back as nil, "name:line:col: message".  The parser
 * and the current event live in a to-be-closed box, so Lua memory errors free
 * them too.
 *
 * dump: the shared encoder walk (convert.c) with a visitor that emits libyaml
 * events.  The emitter writes into a buffer owned by a to-be-closed box (the
 * write handler never raises).
 */
#include "convert.h"
#include "host.h"

#include <lauxlib.h>

#include <yaml.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_TNAME "lumu.yaml.LoadBox"
#define DUMP_TNAME "lumu.yaml.DumpBox"

/* Nodes that aliases may add to a document (billion laughs guard). */
#define MAX_ALIAS_NODES 1000000

#define TAG_PREFIX "tag:yaml.org,2002:"

/* ---------------------------------------------------------------------------
 * Plain scalar resolution: YAML 1.2 core schema
 * ------------------------------------------------------------------------- */

enum { RES_STR, RES_NULL, RES_BOOL, RES_INT, RES_FLOAT };

typedef struct resolved {
    int b;
    lua_Integer i;
    double d;
} resolved;

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int one_of(const char *s, size_t len, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == len && memcmp(*words, s, len) == 0)
            return 1;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Integer in base 8 or 16 (digits only); RES_STR when malformed or too big. */
static int resolve_radix(const char *p, const char *e, int base, resolved *r)
{
    if (p == e)
        return RES_STR;
    unsigned long long v = 0;
    for (; p < e; p++) {
        int d = hexval(*p);
        if (d < 0 || d >= base)
            return RES_STR;
        if (v > ((unsigned long long)LLONG_MAX - (unsigned)d) / (unsigned)base)
            return RES_STR;
        v = v * (unsigned)base + (unsigned)d;
    }
    r->i = (lua_Integer)v;
    return RES_INT;
}

/* What a plain scalar means under the core schema.  s must be followed by a
 * NUL (libyaml values and Lua strings are).  Decimal numbers with a leading
 * zero ("0123", "007.5") stay strings, so account ids and zip codes survive. */
static int resolve_plain(const char *s, size_t len, resolved *r)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    if (len == 0 || one_of(s, len, nulls))
        return RES_NULL;
    if (one_of(s, len, trues)) {
        r->b = 1;
        return RES_BOOL;
    }
    if (one_of(s, len, falses)) {
        r->b = 0;
        return RES_BOOL;
    }
    if (memchr(s, '\0', len))
        return RES_STR;
    if (one_of(s, len, nans)) {
        r->d = NAN;
        return RES_FLOAT;
    }
    const char *p = s, *e = s + len;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (one_of(p, (size_t)(e - p), infs)) {
        r->d = neg ? -HUGE_VAL : HUGE_VAL;
        return RES_FLOAT;
    }
    if (len > 2 && s[0] == '0' && s[1] == 'x')
        return resolve_radix(s + 2, e, 16, r);
    if (len > 2 && s[0] == '0' && s[1] == 'o')
        return resolve_radix(s + 2, e, 8, r);

    const char *q = p;
    while (q < e && is_digit(*q))
        q++;
    size_t ints = (size_t)(q - p);
    if (ints > 1 && *p == '0')
        return RES_STR;
    if (q == e) {
        if (ints == 0)
            return RES_STR;
        unsigned long long v = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1
                                            : (unsigned long long)LLONG_MAX;
        int big = 0;
        for (const char *t = p; t < e; t++) {
            unsigned d = (unsigned)(*t - '0');
            if (v > (lim - d) / 10) {
                big = 1;
                break;
            }
            v = v * 10 + d;
        }
        if (!big) {
            r->i = neg ? (lua_Integer)(0 - v) : (lua_Integer)v;
            return RES_INT;
        }
        r->d = strtod(s, NULL);
        return RES_FLOAT;
    }
    size_t frac = 0;
    if (*q == '.') {
        q++;
        while (q < e && is_digit(*q))
            q++, frac++;
    }
    if (ints == 0 && frac == 0)
        return RES_STR;
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        const char *x = q;
        while (q < e && is_digit(*q))
            q++;
        if (q == x)
            return RES_STR;
    }
    if (q != e)
        return RES_STR;
    r->d = strtod(s, NULL);
    return RES_FLOAT;
}

/* ---------------------------------------------------------------------------
 * Tags
 * ------------------------------------------------------------------------- */

enum {
    T_NONE,        /* no tag */
    T_NONSPECIFIC, /* "!" */
    T_STR,
    T_INT,
    T_FLOAT,
    T_BOOL,
    T_NULL,
    T_SEQ,
    T_MAP,
    T_REF,
    T_CONDITION,
    T_GETATT,
    T_FN,
    T_UNKNOWN
};

/* CloudFormation short-form tags that become {["Fn::X"] = value}. */
static const char *const s_cfn_fns[] = {
    "!Base64", "!Cidr",      "!Equals", "!FindInMap", "!GetAZs",    "!If",
    "!ImportValue", "!Join", "!Length", "!Not",      "!And",       "!Or",
    "!Select", "!Split",     "!Sub",    "!Transform", "!ToJsonString", NULL};

/* Classifies a tag; for T_FN *fn is the function name ("Sub"). */
static int classify_tag(const char *tag, const char **fn)
{
    if (!tag)
        return T_NONE;
    if (strcmp(tag, "!") == 0)
        return T_NONSPECIFIC;
    if (strncmp(tag, TAG_PREFIX, sizeof TAG_PREFIX - 1) == 0) {
        const char *t = tag + sizeof TAG_PREFIX - 1;
        static const struct {
            const char *name;
            int kind;
        } core[] = {{"str", T_STR},   {"int", T_INT}, {"float", T_FLOAT}, {"bool", T_BOOL},
                    {"null", T_NULL}, {"seq", T_SEQ}, {"map", T_MAP}};
        for (size_t i = 0; i < sizeof core / sizeof core[0]; i++)
            if (strcmp(t, core[i].name) == 0)
                return core[i].kind;
        return T_UNKNOWN;
    }
    if (tag[0] != '!')
        return T_UNKNOWN;
    if (strcmp(tag, "!Ref") == 0)
        return T_REF;
    if (strcmp(tag, "!Condition") == 0)
        return T_CONDITION;
    if (strcmp(tag, "!GetAtt") == 0)
        return T_GETATT;
    for (const char *const *f = s_cfn_fns; *f; f++)
        if (strcmp(tag, *f) == 0) {
            *fn = *f + 1;
            return T_FN;
        }
    return T_UNKNOWN;
}

/* The tag as written for messages: "!!int" for tag:yaml.org,2002:int. */
static const char *tag_name(const char *tag, char *buf, size_t size)
{
    if (tag && strncmp(tag, TAG_PREFIX, sizeof TAG_PREFIX - 1) == 0) {
        snprintf(buf, size, "!!%s", tag + sizeof TAG_PREFIX - 1);
        return buf;
    }
    return tag ? tag : "";
}

/* ---------------------------------------------------------------------------
 * load
 * ------------------------------------------------------------------------- */

typedef struct load_box {
    yaml_parser_t parser;
    yaml_event_t event;
    int parser_live;
    int event_live;
} load_box;

static void load_release(void *p)
{
    load_box *b = p;
    if (b->event_live) {
        yaml_event_delete(&b->event);
        b->event_live = 0;
    }
    if (b->parser_live) {
        yaml_parser_delete(&b->parser);
        b->parser_live = 0;
    }
}

typedef struct composer {
    lua_State *L;
    load_box *box;
    const char *name;
    const char *input;
    size_t inlen;
    int anchors, aweight, aheight; /* stack slots: per-document anchor tables */
    int pos;                       /* stack slot of the positions table, or 0 */
    long long alias_nodes;
    char err[768];
} composer;

typedef struct node_stats {
    long long weight; /* nodes, counting what aliases stand for */
    int height;       /* collection levels */
} node_stats;

static int failv(composer *c, size_t line, size_t col, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static int failv(composer *c, size_t line, size_t col, const char *fmt, va_list ap)
{
    int n = snprintf(c->err, sizeof c->err, "%s:%zu:%zu: ", c->name, line, col);
    if (n < 0 || (size_t)n >= sizeof c->err)
        n = 0;
    vsnprintf(c->err + n, sizeof c->err - (size_t)n, fmt, ap);
    return -1;
}

/* Records "name:line:col: message" at mark m; returns -1. */
static int fail(composer *c, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(composer *c, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(c, m.line + 1, m.column + 1, fmt, ap);
    va_end(ap);
    return -1;
}

/* Records libyaml's error.  Returns -1. */
static int parser_fail(composer *c)
{
    yaml_parser_t *p = &c->box->parser;
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(c->err, sizeof c->err, "%s: not enough memory", c->name);
        return -1;
    }
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t m = {0, 0, 0};
        size_t off = p->problem_offset < c->inlen ? p->problem_offset : c->inlen;
        for (size_t i = 0; i < off; i++) {
            if (c->input[i] == '\n') {
                m.line++;
                m.column = 0;
            } else if (((unsigned char)c->input[i] & 0xC0) != 0x80) {
                m.column++;
            }
        }
        if (p->problem_value >= 0)
            return fail(c, m, "%s (byte 0x%02X)", problem, (unsigned)p->problem_value);
        return fail(c, m, "%s", problem);
    }
    if (p->context)
        return fail(c, p->problem_mark, "%s (%s at line %zu, column %zu)", problem, p->context,
                    p->context_mark.line + 1, p->context_mark.column + 1);
    return fail(c, p->problem_mark, "%s", problem);
}

/* Replaces the current event with the next one. */
static int next_event(composer *c)
{
    load_box *b = c->box;
    if (b->event_live) {
        yaml_event_delete(&b->event);
        b->event_live = 0;
    }
    if (!yaml_parser_parse(&b->parser, &b->event))
        return parser_fail(c);
    b->event_live = 1;
    return 0;
}

/* Pushes {line=, col=} for m.  [-0, +1, e] */
static void push_mark(lua_State *L, yaml_mark_t m)
{
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)m.line + 1);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, (lua_Integer)m.column + 1);
    lua_setfield(L, -2, "col");
}

/* Creates pos[t] = {line=, col=, <field>={}} for the table at t and pushes
 * the <field> table.  [-0, +1, e] */
static void push_posentry(composer *c, int t, yaml_mark_t m, const char *field)
{
    lua_State *L = c->L;
    push_mark(L, m);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, field); /* entry, sub */
    lua_pushvalue(L, t);
    lua_pushvalue(L, -3);
    lua_rawset(L, c->pos); /* pos[t] = entry */
    lua_remove(L, -2);     /* sub */
}

/* Replaces the value at the top with {[key] = value} (an object).
 * [-1, +1, e] */
static void wrap(composer *c, const char *key, yaml_mark_t m)
{
    lua_State *L = c->L;
    lua_createtable(L, 0, 1);
    lumu_conv_mark(L, -1, 0);
    lua_insert(L, -2);
    lua_setfield(L, -2, key);
    if (c->pos) {
        push_posentry(c, lua_gettop(L), m, "keys");
        push_mark(L, m);
        lua_setfield(L, -2, key);
        lua_pop(L, 1);
    }
}

/* Records the value at the top under anchor name.  [-0, +0, e] */
static void set_anchor(composer *c, const char *name, const node_stats *st)
{
    lua_State *L = c->L;
    lua_pushstring(L, name);
    lua_pushvalue(L, -2);
    lua_rawset(L, c->anchors);
    lua_pushstring(L, name);
    lua_pushinteger(L, st->weight);
    lua_rawset(L, c->aweight);
    lua_pushstring(L, name);
    lua_pushinteger(L, st->height);
    lua_rawset(L, c->aheight);
}

static int compose(composer *c, int depth, int as_key, node_stats *st);

/* The alias event is current.  [-0, +1, e] on success */
static int compose_alias(composer *c, int depth, int as_key, node_stats *st)
{
    lua_State *L = c->L;
    yaml_event_t *ev = &c->box->event;
    const char *name = (const char *)ev->data.alias.anchor;
    lua_pushstring(L, name);
    if (lua_rawget(L, c->anchors) == LUA_TNIL)
        return fail(c, ev->start_mark, "undefined alias '*%s'", name);
    lua_pushstring(L, name);
    lua_rawget(L, c->aweight);
    st->weight = lua_tointeger(L, -1);
    lua_pushstring(L, name);
    lua_rawget(L, c->aheight);
    st->height = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (depth + st->height > LUMU_CONV_MAX_DEPTH)
        return fail(c, ev->start_mark, "nesting deeper than %d levels (through alias '*%s')",
                    LUMU_CONV_MAX_DEPTH, name);
    c->alias_nodes += st->weight;
    if (c->alias_nodes > MAX_ALIAS_NODES)
        return fail(c, ev->start_mark,
                    "aliases expand the document beyond %d nodes (alias '*%s')",
                    MAX_ALIAS_NODES, name);
    if (as_key) {
        if (lua_type(L, -1) == LUA_TNUMBER)
            lua_tolstring(L, -1, NULL); /* converts in place */
        if (lua_type(L, -1) != LUA_TSTRING)
            return fail(c, ev->start_mark, "alias '*%s' used as a mapping key is not a scalar",
                        name);
    }
    return 0;
}

/* The scalar event is current.  [-0, +1, e] on success */
static int compose_scalar(composer *c, int as_key, node_stats *st)
{
    lua_State *L = c->L;
    yaml_event_t *ev = &c->box->event;
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char *fn = NULL;
    int tk = classify_tag(tag, &fn);
    char tbuf[64];
    const char *tname = tag_name(tag, tbuf, sizeof tbuf);
    resolved r;
    st->weight = 1;
    st->height = 0;

    if (as_key) {
        if (tk != T_NONE && tk != T_NONSPECIFIC && tk != T_STR)
            return fail(c, ev->start_mark, "tag '%s' is not allowed on a mapping key", tname);
        lua_pushlstring(L, v, len);
    } else {
        int kind;
        switch (tk) {
        case T_NONE:
            kind = plain ? resolve_plain(v, len, &r) : RES_STR;
            break;
        case T_NONSPECIFIC:
        case T_STR:
        case T_REF:
        case T_CONDITION:
        case T_GETATT:
        case T_FN:
            kind = RES_STR;
            break;
        case T_INT:
            kind = resolve_plain(v, len, &r);
            if (kind != RES_INT)
                return fail(c, ev->start_mark, "invalid !!int value '%s'", v);
            break;
        case T_FLOAT:
            kind = resolve_plain(v, len, &r);
            if (kind == RES_INT) {
                r.d = (double)r.i;
                kind = RES_FLOAT;
            }
            if (kind != RES_FLOAT)
                return fail(c, ev->start_mark, "invalid !!float value '%s'", v);
            break;
        case T_BOOL:
            kind = resolve_plain(v, len, &r);
            if (kind != RES_BOOL)
                return fail(c, ev->start_mark, "invalid !!bool value '%s'", v);
            break;
        case T_NULL:
            kind = resolve_plain(v, len, &r);
            if (kind != RES_NULL)
                return fail(c, ev->start_mark, "invalid !!null value '%s'", v);
            break;
        case T_SEQ:
        case T_MAP:
            return fail(c, ev->start_mark, "tag '%s' on a scalar", tname);
        default:
            return fail(c, ev->start_mark, "unknown tag '%s'", tname);
        }
        switch (kind) {
        case RES_NULL:
            lumu_conv_pushnull(L);
            break;
        case RES_BOOL:
            lua_pushboolean(L, r.b);
            break;
        case RES_INT:
            lua_pushinteger(L, r.i);
            break;
        case RES_FLOAT:
            lua_pushnumber(L, r.d);
            break;
        default:
            lua_pushlstring(L, v, len);
            break;
        }
        if (tk == T_REF || tk == T_CONDITION) {
            wrap(c, tk == T_REF ? "Ref" : "Condition", ev->start_mark);
            st->height = 1;
        } else if (tk == T_GETATT) {
            const char *dot = memchr(v, '.', len);
            if (!dot || dot == v || dot == v + len - 1)
                return fail(c, ev->start_mark,
                            "!GetAtt expects 'Resource.Attribute', got '%s'", v);
            lua_pop(L, 1);
            lua_createtable(L, 2, 0);
            lumu_conv_mark(L, -1, 1);
            lua_pushlstring(L, v, (size_t)(dot - v));
            lua_rawseti(L, -2, 1);
            lua_pushlstring(L, dot + 1, (size_t)(v + len - dot - 1));
            lua_rawseti(L, -2, 2);
            if (c->pos) {
                push_posentry(c, lua_gettop(L), ev->start_mark, "items");
                push_mark(L, ev->start_mark);
                lua_rawseti(L, -2, 1);
                push_mark(L, ev->start_mark);
                lua_rawseti(L, -2, 2);
                lua_pop(L, 1);
            }
            wrap(c, "Fn::GetAtt", ev->start_mark);
            st->height = 2;
        } else if (tk == T_FN) {
            char key[32];
            snprintf(key, sizeof key, "Fn::%s", fn);
            wrap(c, key, ev->start_mark);
            st->height = 1;
        }
    }
    if (ev->data.scalar.anchor)
        set_anchor(c, (const char *)ev->data.scalar.anchor, st);
    return 0;
}

/* Is the value at idx usable as a merge source: a mapping, or a sequence of
 * mappings?  Appends the mapping(s) to the merge list at slot mg (created on
 * first use).  [-0, +0, e] */
static int add_merge(composer *c, int idx, int mg, yaml_mark_t m)
{
    lua_State *L = c->L;
    idx = lua_absindex(L, idx);
    int marker = lua_type(L, idx) == LUA_TTABLE ? lumu_conv_marker(L, idx) : 0;
    if (marker == LUMU_CONV_ARRAY) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            if (lua_type(L, -1) != LUA_TTABLE || lumu_conv_marker(L, -1) != LUMU_CONV_OBJECT)
                return fail(c, m, "merge key '<<' needs a mapping or a sequence of mappings");
            lua_pop(L, 1);
        }
    } else if (marker != LUMU_CONV_OBJECT) {
        return fail(c, m, "merge key '<<' needs a mapping or a sequence of mappings");
    }
    if (lua_isnil(L, mg)) {
        lua_newtable(L);
        lua_replace(L, mg);
    }
    lua_Integer k = (lua_Integer)lua_rawlen(L, mg);
    if (marker == LUMU_CONV_ARRAY) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            lua_rawseti(L, mg, ++k);
        }
    } else {
        lua_pushvalue(L, idx);
        lua_rawseti(L, mg, k + 1);
    }
    return 0;
}

/* Copies the keys of the merge sources (earlier ones first) that the mapping
 * at t does not have.  pk is the mapping's positions slot (or 0).
 * [-0, +0, e] */
static void apply_merges(composer *c, int t, int mg, int pk)
{
    lua_State *L = c->L;
    lua_Integer n = (lua_Integer)lua_rawlen(L, mg);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, mg, i); /* src */
        int src = lua_gettop(L);
        int srckeys = 0;
        if (pk) {
            lua_pushvalue(L, src);
            if (lua_rawget(L, c->pos) == LUA_TTABLE)
                lua_getfield(L, -1, "keys");
            else
                lua_pushnil(L);
            srckeys = lua_gettop(L);
        }
        lua_pushnil(L);
        while (lua_next(L, src)) {
            lua_pushvalue(L, -2);
            if (lua_rawget(L, t) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushvalue(L, -2);
                lua_pushvalue(L, -2);
                lua_rawset(L, t);
                if (pk && lua_istable(L, srckeys)) {
                    lua_pushvalue(L, -2);
                    lua_pushvalue(L, -1);
                    lua_rawget(L, srckeys);
                    lua_rawset(L, pk);
                }
            } else {
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_settop(L, src - 1);
    }
}

/* The sequence/mapping start event is current.  [-0, +1, e] on success */
static int compose_collection(composer *c, int depth, node_stats *st)
{
    lua_State *L = c->L;
    yaml_event_t *ev = &c->box->event;
    yaml_mark_t mark = ev->start_mark;
    int is_seq = ev->type == YAML_SEQUENCE_START_EVENT;
    const char *tag = (const char *)(is_seq ? ev->data.sequence_start.tag
                                            : ev->data.mapping_start.tag);
    const char *anchor = (const char *)(is_seq ? ev->data.sequence_start.anchor
                                               : ev->data.mapping_start.anchor);
    const char *fn = NULL;
    int tk = classify_tag(tag, &fn);
    char tbuf[64];
    const char *tname = tag_name(tag, tbuf, sizeof tbuf);
    switch (tk) {
    case T_NONE:
    case T_NONSPECIFIC:
    case T_FN:
        break;
    case T_SEQ:
    case T_GETATT:
        if (!is_seq)
            return fail(c, mark, "tag '%s' on a mapping", tname);
        break;
    case T_MAP:
        if (is_seq)
            return fail(c, mark, "tag '%s' on a sequence", tname);
        break;
    case T_REF:
    case T_CONDITION:
        return fail(c, mark, "%s expects a scalar", tname);
    case T_UNKNOWN:
        return fail(c, mark, "unknown tag '%s'", tname);
    default:
        return fail(c, mark, "tag '%s' on a %s", tname, is_seq ? "sequence" : "mapping");
    }
    if (depth >= LUMU_CONV_MAX_DEPTH)
        return fail(c, mark, "nesting deeper than %d levels", LUMU_CONV_MAX_DEPTH);

    if (anchor)
        lua_pushstring(L, anchor); /* a: anchor name */
    else
        lua_pushnil(L);
    int a = lua_gettop(L);
    lua_newtable(L); /* t */
    int t = lua_gettop(L);
    lumu_conv_mark(L, t, is_seq);
    if (c->pos)
        push_posentry(c, t, mark, is_seq ? "items" : "keys"); /* pk */
    else
        lua_pushnil(L);
    int pk = c->pos ? lua_gettop(L) : 0;
    lua_pushnil(L); /* mg: merge sources */
    int mg = lua_gettop(L);

    long long weight = 1;
    int height = 0;
    lua_Integer n = 0;
    node_stats cs;
    for (;;) {
        if (next_event(c))
            return -1;
        ev = &c->box->event;
        if (ev->type == YAML_SEQUENCE_END_EVENT || ev->type == YAML_MAPPING_END_EVENT)
            break;
        yaml_mark_t m = ev->start_mark;
        if (is_seq) {
            if (compose(c, depth + 1, 0, &cs))
                return -1;
            lua_rawseti(L, t, ++n);
            if (pk) {
                push_mark(L, m);
                lua_rawseti(L, pk, n);
            }
        } else {
            int merge = ev->type == YAML_SCALAR_EVENT && !ev->data.scalar.tag &&
                        ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                        ev->data.scalar.length == 2 &&
                        memcmp(ev->data.scalar.value, "<<", 2) == 0;
            if (compose(c, depth + 1, 1, &cs)) /* key */
                return -1;
            weight += cs.weight;
            if (next_event(c))
                return -1;
            if (compose(c, depth + 1, 0, &cs)) /* value */
                return -1;
            if (merge) {
                if (add_merge(c, -1, mg, m))
                    return -1;
                lua_pop(L, 2);
            } else {
                lua_pushvalue(L, -2);
                if (lua_rawget(L, t) != LUA_TNIL)
                    return fail(c, m, "duplicate key '%s'", lua_tostring(L, -3));
                lua_pop(L, 1);
                if (pk) {
                    lua_pushvalue(L, -2);
                    push_mark(L, m);
                    lua_rawset(L, pk);
                }
                lua_rawset(L, t);
            }
        }
        if (weight < LLONG_MAX - cs.weight)
            weight += cs.weight;
        if (cs.height > height)
            height = cs.height;
    }
    if (!lua_isnil(L, mg))
        apply_merges(c, t, mg, pk);
    lua_settop(L, t);
    st->weight = weight;
    st->height = height + 1;
    if (tk == T_FN || tk == T_GETATT) {
        char key[32];
        snprintf(key, sizeof key, "Fn::%s", tk == T_FN ? fn : "GetAtt");
        wrap(c, key, mark);
        st->height++;
    }
    if (!lua_isnil(L, a))
        set_anchor(c, lua_tostring(L, a), st);
    lua_remove(L, a);
    return 0;
}

/* Composes the node whose first event is current and pushes its value.
 * depth = collections around it; as_key: a mapping key (its text, as a
 * string).  Returns 0, or -1 with c->err set (the stack is then garbage above
 * the caller's slots).  [-0, +1, e] */
static int compose(composer *c, int depth, int as_key, node_stats *st)
{
    yaml_event_t *ev = &c->box->event;
    luaL_checkstack(c->L, 16, "yaml.load: nesting too deep");
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return compose_alias(c, depth, as_key, st);
    case YAML_SCALAR_EVENT:
        return compose_scalar(c, as_key, st);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (as_key)
            return fail(c, ev->start_mark, "only scalars are supported as mapping keys");
        return compose_collection(c, depth, st);
    default:
        return fail(c, ev->start_mark, "unexpected YAML event");
    }
}

/* Reads an optional boolean field of the table at opts.  [-0, +0, e] */
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

/* Reads an optional integer field in [lo, hi].  [-0, +0, e] */
static int opt_int(lua_State *L, int opts, const char *name, int def, int lo, int hi)
{
    if (opts == 0)
        return def;
    int t = lua_getfield(L, opts, name);
    int r = def;
    if (t != LUA_TNIL) {
        lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_Integer)lo - 1;
        if (v < lo || v > hi)
            luaL_error(L, "bad option '%s' (integer %d..%d expected)", name, lo, hi);
        r = (int)v;
    }
    lua_pop(L, 1);
    return r;
}

/* load(string [, opts]) -> value [, pos] | nil, "name:line:col: message" */
static int yaml_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    int all = opt_bool(L, opts, "all", 0);
    int positions = opt_bool(L, opts, "positions", 0);
    lua_settop(L, 2);
    if (opts && lua_getfield(L, opts, "filename") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "bad option 'filename' (string expected, got %s)",
                              luaL_typename(L, -1));
    } else {
        lua_settop(L, 2);
        lua_pushliteral(L, "<string>");
    } /* 3: name */
    lumu_conv_init(L);

    composer c;
    memset(&c, 0, sizeof c);
    c.L = L;
    c.name = lua_tostring(L, 3);
    c.input = s;
    c.inlen = len;
    c.box = lumu_conv_newbox(L, sizeof *c.box, LOAD_TNAME, load_release); /* 4 */
    if (!yaml_parser_initialize(&c.box->parser))
        return luaL_error(L, "yaml.load: not enough memory");
    c.box->parser_live = 1;
    yaml_parser_set_input_string(&c.box->parser, (const unsigned char *)s, len);
    lua_newtable(L); /* 5 */
    lua_newtable(L); /* 6 */
    lua_newtable(L); /* 7 */
    c.anchors = 5, c.aweight = 6, c.aheight = 7;
    if (positions) {
        lumu_conv_newweak(L); /* 8 */
        c.pos = 8;
    } else {
        lua_pushnil(L);
    }
    lua_newtable(L); /* 9: documents */
    lua_Integer ndocs = 0;
    node_stats st;

    if (next_event(&c)) /* stream start */
        goto failed;
    for (;;) {
        if (next_event(&c))
            goto failed;
        if (c.box->event.type != YAML_DOCUMENT_START_EVENT)
            break; /* stream end */
        for (int i = 5; i <= 7; i++) { /* anchors are per document */
            lua_newtable(L);
            lua_replace(L, i);
        }
        if (next_event(&c) || compose(&c, 0, 0, &st))
            goto failed;
        lua_rawseti(L, 9, ++ndocs);
        if (next_event(&c)) /* document end */
            goto failed;
        if (!all)
            break;
    }
    load_release(c.box);
    lua_settop(L, 9);
    if (all)
        lumu_conv_mark(L, 9, 1);
    else if (lua_rawgeti(L, 9, 1) == LUA_TNIL) {
        lua_pop(L, 1);
        lumu_conv_pushnull(L);
    }
    if (positions) {
        lua_pushvalue(L, 8);
        return 2;
    }
    return 1;

failed:
    lua_settop(L, 9);
    lua_pushnil(L);
    lua_pushstring(L, c.err);
    return 2;
}

/* ---------------------------------------------------------------------------
 * dump
 * ------------------------------------------------------------------------- */

typedef struct dump_box {
    yaml_emitter_t em;
    int live;
    int oom;
    char *buf;
    size_t len, cap;
} dump_box;

static void dump_release(void *p)
{
    dump_box *b = p;
    if (b->live) {
        yaml_emitter_delete(&b->em);
        b->live = 0;
    }
    if (b->buf) {
        lumu_free(b->buf);
        b->buf = NULL;
    }
}

/* libyaml output handler: appends to the box's buffer; never raises. */
static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    dump_box *b = data;
    if (b->len + size > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + size)
            cap *= 2;
        char *nb = lumu_realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return 0;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, buffer, size);
    b->len += size;
    return 1;
}

typedef struct dumper {
    dump_box *box;
    int cfn_short;
    const char *tag; /* pending tag for the next node (a static string) */
    char err[256];
} dumper;

static const char *emit(dumper *d, yaml_event_t *ev)
{
    if (yaml_emitter_emit(&d->box->em, ev))
        return NULL;
    if (d->box->oom)
        return "not enough memory";
    snprintf(d->err, sizeof d->err, "%s",
             d->box->em.problem ? d->box->em.problem : "YAML emitter error");
    return d->err;
}

/* Strings that must be quoted to be read back as strings, by lumu and by
 * YAML 1.1 parsers (yes/no/on/off, sexagesimals, dates ...). */
static int needs_quote(const char *s, size_t len)
{
    static const char *const yaml11[] = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No",
                                         "NO", "on", "On", "ON", "off", "Off", "OFF", "<<",
                                         "=", NULL};
    resolved r;
    if (resolve_plain(s, len, &r) != RES_STR || one_of(s, len, yaml11))
        return 1;
    if (len > 0 && is_digit(s[0]))
        return 1;
    if (len > 1 && (s[0] == '+' || s[0] == '-' || s[0] == '.') &&
        (is_digit(s[1]) || s[1] == '.'))
        return 1;
    return 0;
}

static const char *emit_scalar(dumper *d, const char *s, size_t len, yaml_scalar_style_t style,
                               const char *tag)
{
    if (len > INT_MAX)
        return "string too long";
    yaml_event_t ev;
    int implicit = tag == NULL;
    if (!yaml_scalar_event_initialize(&ev, NULL, (const yaml_char_t *)tag,
                                      (const yaml_char_t *)s, (int)len, implicit, implicit,
                                      style))
        return "not enough memory";
    return emit(d, &ev);
}

static const char *emit_string(dumper *d, const char *s, size_t len, const char *tag)
{
    if (!lumu_conv_utf8_valid(s, len))
        return "invalid UTF-8 in string";
    yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
    if (needs_quote(s, len))
        style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
    else if (memchr(s, '\n', len))
        style = YAML_LITERAL_SCALAR_STYLE;
    return emit_scalar(d, s, len, style, tag);
}

static const char *take_tag(dumper *d)
{
    const char *t = d->tag;
    d->tag = NULL;
    return t;
}

/* The shortest text that reads back as the float d (always with a '.' or an
 * exponent, so it stays a float). */
static void format_float(double d, char *buf, size_t size)
{
    if (isnan(d)) {
        snprintf(buf, size, ".nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d < 0 ? "-.inf" : ".inf");
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.*g", lumu_conv_float_precision(d), d);
    if (strchr(tmp, '.')) {
        snprintf(buf, size, "%s", tmp);
        return;
    }
    char *e = strchr(tmp, 'e');
    if (e) {
        *e = '\0';
        snprintf(buf, size, "%s.0e%s", tmp, e + 1);
    } else {
        snprintf(buf, size, "%s.0", tmp);
    }
}

static const char *d_scalar(void *ud, lua_State *L, int kind)
{
    dumper *d = ud;
    const char *tag = take_tag(d);
    char buf[64];
    switch (kind) {
    case LUMU_CONV_NULL:
        return emit_scalar(d, "null", 4, YAML_PLAIN_SCALAR_STYLE, tag);
    case LUMU_CONV_BOOLEAN:
        return lua_toboolean(L, -1) ? emit_scalar(d, "true", 4, YAML_PLAIN_SCALAR_STYLE, tag)
                                    : emit_scalar(d, "false", 5, YAML_PLAIN_SCALAR_STYLE, tag);
    case LUMU_CONV_INTEGER:
        snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, -1));
        return emit_scalar(d, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE, tag);
    case LUMU_CONV_FLOAT:
        format_float(lua_tonumber(L, -1), buf, sizeof buf);
        return emit_scalar(d, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE, tag);
    default: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        return emit_string(d, s, len, tag);
    }
    }
}

/* cfn_short: is the one-key object at the top an intrinsic function with a
 * short form?  Emits it (SKIP), or sets the tag and unwraps (UNWRAP), or
 * leaves *action alone.  May leave values on the stack (the caller resets it). */
static const char *cfn_short_form(dumper *d, lua_State *L, int *action)
{
    lua_pushnil(L);
    if (!lua_next(L, -2))
        return NULL;
    int kv = lua_gettop(L); /* key at kv - 1, value at kv */
    const char *k = lua_tostring(L, kv - 1);
    int vt = lua_type(L, kv);
    if ((strcmp(k, "Ref") == 0 || strcmp(k, "Condition") == 0) && vt == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, kv, &len);
        *action = LUMU_CONV_SKIP;
        return emit_string(d, s, len, k[0] == 'R' ? "!Ref" : "!Condition");
    }
    if (strcmp(k, "Fn::GetAtt") == 0 && vt == LUA_TTABLE) {
        size_t l1 = 0, l2 = 0;
        const char *a = NULL, *b = NULL;
        if (lua_rawlen(L, kv) == 2 && lumu_conv_marker(L, kv) != LUMU_CONV_OBJECT) {
            if (lua_rawgeti(L, kv, 1) == LUA_TSTRING)
                a = lua_tolstring(L, -1, &l1);
            if (lua_rawgeti(L, kv, 2) == LUA_TSTRING)
                b = lua_tolstring(L, -1, &l2);
        }
        if (a && b && l1 > 0 && l2 > 0 && !memchr(a, '.', l1) && l1 + l2 < 4096) {
            char joined[4096];
            memcpy(joined, a, l1);
            joined[l1] = '.';
            memcpy(joined + l1 + 1, b, l2);
            *action = LUMU_CONV_SKIP;
            return emit_string(d, joined, l1 + l2 + 1, "!GetAtt");
        }
        if (lumu_conv_marker(L, kv) == LUMU_CONV_ARRAY ||
            (lumu_conv_marker(L, kv) == LUMU_CONV_UNMARKED && lua_rawlen(L, kv) > 0)) {
            d->tag = "!GetAtt";
            *action = LUMU_CONV_UNWRAP;
        }
        return NULL;
    }
    if (strncmp(k, "Fn::", 4) == 0 && (vt == LUA_TSTRING || vt == LUA_TTABLE)) {
        for (const char *const *f = s_cfn_fns; *f; f++)
            if (strcmp(k + 4, *f + 1) == 0) {
                d->tag = *f;
                *action = LUMU_CONV_UNWRAP;
                break;
            }
    }
    return NULL;
}

static const char *d_open(void *ud, lua_State *L, int is_array, lua_Integer n, int *action)
{
    dumper *d = ud;
    if (!is_array && n == 1 && d->cfn_short && !d->tag) {
        int top = lua_gettop(L);
        const char *err = cfn_short_form(d, L, action);
        lua_settop(L, top);
        if (err || *action != LUMU_CONV_DESCEND)
            return err;
    }
    const char *tag = take_tag(d);
    int implicit = tag == NULL;
    yaml_event_t ev;
    const char *err;
    if (is_array) {
        if (!yaml_sequence_start_event_initialize(
                &ev, NULL, (const yaml_char_t *)tag, implicit,
                n == 0 ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE))
            return "not enough memory";
    } else {
        if (!yaml_mapping_start_event_initialize(
                &ev, NULL, (const yaml_char_t *)tag, implicit,
                n == 0 ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE))
            return "not enough memory";
    }
    if ((err = emit(d, &ev)) != NULL)
        return err;
    if (n == 0) {
        *action = LUMU_CONV_SKIP;
        if (is_array)
            yaml_sequence_end_event_initialize(&ev);
        else
            yaml_mapping_end_event_initialize(&ev);
        return emit(d, &ev);
    }
    return NULL;
}

static const char *d_key(void *ud, const char *k, size_t len)
{
    dumper *d = ud;
    return emit_string(d, k, len, NULL);
}

static const char *d_close(void *ud, int is_array)
{
    dumper *d = ud;
    yaml_event_t ev;
    if (is_array)
        yaml_sequence_end_event_initialize(&ev);
    else
        yaml_mapping_end_event_initialize(&ev);
    return emit(d, &ev);
}

static const lumu_conv_visitor s_dump_visitor = {d_scalar, d_open, d_key, d_close};

/* Emits a stream/document event; raises on failure.  [-0, +0, v] */
static void emit_or_raise(lua_State *L, dumper *d, yaml_event_t *ev)
{
    const char *err = emit(d, ev);
    if (err)
        luaL_error(L, "yaml.dump: %s", err);
}

/* dump(value [, opts]) -> string */
static int yaml_dump(lua_State *L)
{
    luaL_checkany(L, 1);
    int opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    int sort_keys = opt_bool(L, opts, "sort_keys", 1);
    int cfn_short = opt_bool(L, opts, "cfn_short", 0);
    int indent = opt_int(L, opts, "indent", 2, 2, 9);
    int width = opt_int(L, opts, "width", -1, -1, INT_MAX);
    lua_settop(L, 2);

    dump_box *box = lumu_conv_newbox(L, sizeof *box, DUMP_TNAME, dump_release); /* 3 */
    dumper *d = lua_newuserdatauv(L, sizeof *d, 0);                           /* 4 */
    memset(d, 0, sizeof *d);
    d->box = box;
    d->cfn_short = cfn_short;
    if (!yaml_emitter_initialize(&box->em))
        return luaL_error(L, "yaml.dump: not enough memory");
    box->live = 1;
    yaml_emitter_set_output(&box->em, write_handler, box);
    yaml_emitter_set_unicode(&box->em, 1);
    yaml_emitter_set_indent(&box->em, indent);
    yaml_emitter_set_width(&box->em, width);
    yaml_emitter_set_break(&box->em, YAML_LN_BREAK);

    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    emit_or_raise(L, d, &ev);
    if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1))
        return luaL_error(L, "yaml.dump: not enough memory");
    emit_or_raise(L, d, &ev);
    lumu_conv_walk(L, 1, &s_dump_visitor, d, sort_keys, "yaml.dump");
    yaml_document_end_event_initialize(&ev, 1);
    emit_or_raise(L, d, &ev);
    yaml_stream_end_event_initialize(&ev);
    emit_or_raise(L, d, &ev);
    if (!yaml_emitter_flush(&box->em))
        return luaL_error(L, "yaml.dump: %s", box->oom ? "not enough memory" : "write error");
    lua_pushlstring(L, box->buf ? box->buf : "", box->len);
    return 1; /* the box closes */
}

/* ---------------------------------------------------------------------------
 * module
 * ------------------------------------------------------------------------- */

int luaopen_lumu__yaml(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"load", yaml_load},
        {"dump", yaml_dump},
        {NULL, NULL}};
    lumu_conv_init(L);
    luaL_newlib(L, fns);
    lumu_conv_pushnull(L);
    lua_setfield(L, -2, "null");
    lumu_conv_pushmeta(L, 1);
    lua_setfield(L, -2, "array_mt");
    lumu_conv_pushmeta(L, 0);
    lua_setfield(L, -2, "object_mt");
    lua_pushstring(L, yaml_get_version_string());
    lua_setfield(L, -2, "libyaml_version");
    return 1;
}
