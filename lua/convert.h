/*
 * convert: what lumu.json and lumu.yaml share when turning data documents
 * into Lua values and back.
 *
 * - The null sentinel and the array/object marker metatables.  They live in
 *   the registry, so `json.null`, `yaml.null`, `json.array_mt` ... are the
 *   same values in both modules.  A marker metatable is any metatable whose
 *   `__jsontype` field is "array" or "object"; `__jsonorder` (a list of key
 *   names) puts those keys first when an object is written.
 * - The encoder walk: classifies every table once (array, object or error),
 *   orders object keys, detects cycles, enforces the depth limit and reports
 *   errors with the key path ("json.encode: Resources.Foo.Tags[2]: ...").
 *   The format-specific part is a visitor.
 * - A UTF-8 validator and the shortest round-tripping "%.Ng" for a double.
 */
#ifndef LUMU_CONVERT_H
#define LUMU_CONVERT_H

#include <lua.h>
#include <stddef.h>

/* Nesting limit for every data-driven recursion (decode, load, encode, dump). */
#define LUMU_CONV_MAX_DEPTH 1000

/* Creates the registry entries (null sentinel, marker metatables) when they
 * do not exist yet.  [-0, +0, e] */
void lumu_conv_init(lua_State *L);

/* Pushes the null sentinel.  [-0, +1, -] (after lumu_conv_init) */
void lumu_conv_pushnull(lua_State *L);

/* Address that identifies the null sentinel (lua_touserdata of it). */
void *lumu_conv_nullptr(lua_State *L);

/* Pushes json.array_mt (is_array) or json.object_mt.  [-0, +1, -] */
void lumu_conv_pushmeta(lua_State *L, int is_array);

/* Sets the array or object marker metatable on the table at idx.  [-0, +0, -] */
void lumu_conv_mark(lua_State *L, int idx, int is_array);

/* What the marker metatable of the table at idx says: 1 array, 2 object,
 * 0 no marker.  [-0, +0, -] */
enum { LUMU_CONV_UNMARKED = 0, LUMU_CONV_ARRAY = 1, LUMU_CONV_OBJECT = 2 };
int lumu_conv_marker(lua_State *L, int idx);

/* Pushes a new empty table with weak keys (`__mode = "k"`).  [-0, +1, e] */
void lumu_conv_newweak(lua_State *L);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF; NUL bytes allowed). */
int lumu_conv_utf8_valid(const char *s, size_t len);

/* Smallest precision p (1..17) for which "%.{p}g" reads back as d and, for
 * 1 <= |d| < 1e15, writes all digits of the integer part (no exponent). */
int lumu_conv_float_precision(double d);

/* ------------------------------------------------------------------------
 * Encoder walk
 * ---------------------------------------------------------------------- */

/* Scalar kinds handed to the visitor. */
enum {
    LUMU_CONV_NULL,    /* nil (top level only) or the null sentinel */
    LUMU_CONV_BOOLEAN,
    LUMU_CONV_INTEGER,
    LUMU_CONV_FLOAT,
    LUMU_CONV_STRING   /* not yet checked for UTF-8 */
};

/* What to do with a table after open_table() returned. */
enum {
    LUMU_CONV_DESCEND, /* walk the elements, then call close_table() */
    LUMU_CONV_SKIP,    /* the visitor wrote the whole table itself */
    LUMU_CONV_UNWRAP   /* (objects with one key) walk only that key's value,
                          in place of the table; no close_table() */
};

/* Callbacks return NULL or an error text (copied before it is raised, so it
 * may live in the visitor's own buffer).  They must not raise, except through
 * Lua API memory errors (everything they allocate has to be owned by
 * something that is freed on unwinding: a to-be-closed box). */
typedef struct lumu_conv_visitor {
    /* The value is at the top of the stack.  [-0, +0, -] */
    const char *(*scalar)(void *ud, lua_State *L, int kind);
    /* The table is at the top of the stack; n is the number of elements.
     * Set *action (preset to LUMU_CONV_DESCEND).  [-0, +0, -] */
    const char *(*open_table)(void *ud, lua_State *L, int is_array, lua_Integer n,
                              int *action);
    /* Next object key (a Lua string kept alive by the table). */
    const char *(*key)(void *ud, const char *k, size_t len);
    const char *(*close_table)(void *ud, int is_array);
} lumu_conv_visitor;

/* Walks the value at idx, calling the visitor.  Object keys are written in
 * the order given by the `__jsonorder` metafield first, then sorted
 * bytewise (sort_keys) or in traversal order.  Raises "who: path: message"
 * on values that cannot be encoded, on cycles and past LUMU_CONV_MAX_DEPTH.
 * [-0, +0, e] */
void lumu_conv_walk(lua_State *L, int idx, const lumu_conv_visitor *v, void *ud,
                    int sort_keys, const char *who);

/* ------------------------------------------------------------------------
 * To-be-closed boxes
 * ---------------------------------------------------------------------- */

/* Pushes a zeroed userdata of `size` bytes whose __close and __gc call
 * release(box) (release must be idempotent) and marks it to-be-closed, so
 * C-side resources stored in it are freed however the C function exits.
 * `tname` names the metatable ("lumu.json.EncodeBox").  [-0, +1, e] */
void *lumu_conv_newbox(lua_State *L, size_t size, const char *tname,
                       void (*release)(void *box));

#endif
