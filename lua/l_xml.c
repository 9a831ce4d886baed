/*
 * lumu._xml: the C core of lumu.xml (stdlib/lumu/xml.lua).
 *
 *   parse(s, strip_whitespace) -> root element | nil, "line:col: message"
 *
 * Element = {tag = "Name", attr = {name = value, ...; [1] = first attribute
 * name, ...}, child1, child2, ...}; children are strings (adjacent text
 * merged) or elements.
 *
 * Two passes, so nothing raises while expat is on the C stack: expat's
 * callbacks append events to a flat C buffer (allocated with lumu_malloc),
 * stashing any error and stopping the parser; then the parser is freed and
 * the events are replayed into Lua tables.  The parser and the buffer belong
 * to a userdata box whose __gc frees them, so a memory error while building
 * the tables leaks nothing.
 *
 * Safety: no namespace processing (prefixes stay in names), external
 * entities are refused, parameter entities are never parsed, expat's
 * billion-laughs protection stays on, and nesting deeper than
 * XML_MAX_DEPTH elements is an error.
 */
#include "host.h"

#include <lauxlib.h>

#include <expat.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define XML_BOX_MT "lumu.xml.Parser"
#define XML_MAX_DEPTH 512

/* Event tags in the buffer. */
enum { EV_START = 'S', EV_TEXT = 'T', EV_END = 'E' };

typedef struct xml_box {
    XML_Parser parser;   /* NULL once freed */
    char *buf;           /* events, lumu_malloc'd */
    size_t len, cap;
    size_t last_text;    /* offset of the trailing text event, or SIZE_MAX */
    int depth;           /* open elements while parsing */
    const char *err;     /* stashed callback error (static or errbuf) */
    char errbuf[128];
} xml_box;

/* Frees the parser and the buffer; idempotent.  [-0, +0, -] */
static void xml_box_release(xml_box *box)
{
    if (box->parser) {
        XML_ParserFree(box->parser);
        box->parser = NULL;
    }
    lumu_free(box->buf);
    box->buf = NULL;
    box->len = box->cap = 0;
}

static int xml_box_gc(lua_State *L)
{
    xml_box_release(luaL_checkudata(L, 1, XML_BOX_MT));
    return 0;
}

/* Stashes a callback error and stops the parser (the caller returns to
 * expat right after). */
static void xml_fail(xml_box *box, const char *msg)
{
    if (!box->err)
        box->err = msg;
    XML_StopParser(box->parser, XML_FALSE);
}

/* Makes room for n more bytes; 0 (with the error stashed) on failure. */
static int xml_reserve(xml_box *box, size_t n)
{
    if (n <= box->cap - box->len)
        return 1;
    if (n > SIZE_MAX / 2 - box->len) {
        xml_fail(box, "document too large");
        return 0;
    }
    size_t cap = box->cap ? box->cap : 4096;
    while (cap - box->len < n)
        cap *= 2;
    char *nb = lumu_realloc(box->buf, cap);
    if (!nb) {
        xml_fail(box, "out of memory");
        return 0;
    }
    box->buf = nb;
    box->cap = cap;
    return 1;
}

/* Appends bytes the caller reserved room for. */
static void xml_put(xml_box *box, const void *p, size_t n)
{
    memcpy(box->buf + box->len, p, n);
    box->len += n;
}

static void xml_put_str(xml_box *box, const char *s, size_t n)
{
    xml_put(box, &n, sizeof n);
    xml_put(box, s, n);
}

static void XMLCALL xml_on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_box *box = ud;
    if (box->err)
        return;
    if (box->depth >= XML_MAX_DEPTH) {
        snprintf(box->errbuf, sizeof box->errbuf, "elements nested deeper than %d levels",
                 XML_MAX_DEPTH);
        xml_fail(box, box->errbuf);
        return;
    }
    size_t nlen = strlen(name), need = 1 + 2 * sizeof(size_t) + nlen, natt = 0;
    for (; atts[2 * natt]; natt++) {
        size_t a = strlen(atts[2 * natt]), v = strlen(atts[2 * natt + 1]);
        if (a + v > SIZE_MAX / 4 - need) {
            xml_fail(box, "document too large");
            return;
        }
        need += 2 * sizeof(size_t) + a + v;
    }
    if (!xml_reserve(box, need))
        return;
    char tag = EV_START;
    xml_put(box, &tag, 1);
    xml_put_str(box, name, nlen);
    xml_put(box, &natt, sizeof natt);
    for (size_t i = 0; i < 2 * natt; i++)
        xml_put_str(box, atts[i], strlen(atts[i]));
    box->last_text = SIZE_MAX;
    box->depth++;
}

static void XMLCALL xml_on_end(void *ud, const XML_Char *name)
{
    xml_box *box = ud;
    (void)name;
    if (box->err)
        return;
    if (!xml_reserve(box, 1))
        return;
    char tag = EV_END;
    xml_put(box, &tag, 1);
    box->last_text = SIZE_MAX;
    box->depth--;
}

static void XMLCALL xml_on_text(void *ud, const XML_Char *s, int len)
{
    xml_box *box = ud;
    if (box->err || box->depth == 0 || len <= 0)
        return;
    size_t n = (size_t)len;
    if (box->last_text != SIZE_MAX) { /* merge with the text just before */
        if (!xml_reserve(box, n))
            return;
        size_t old;
        memcpy(&old, box->buf + box->last_text + 1, sizeof old);
        old += n;
        memcpy(box->buf + box->last_text + 1, &old, sizeof old);
        xml_put(box, s, n);
        return;
    }
    if (!xml_reserve(box, 1 + sizeof n + n))
        return;
    box->last_text = box->len;
    char tag = EV_TEXT;
    xml_put(box, &tag, 1);
    xml_put_str(box, s, n);
}

static int XMLCALL xml_on_external(XML_Parser p, const XML_Char *context, const XML_Char *base,
                                   const XML_Char *system_id, const XML_Char *public_id)
{
    (void)context, (void)base, (void)system_id, (void)public_id;
    xml_box *box = XML_GetUserData(p);
    if (!box->err)
        box->err = "external entities are not allowed";
    return XML_STATUS_ERROR;
}

/* Reads a length-prefixed string from the event buffer at *pos.
 * [-0, +1, m] */
static void xml_push_str(lua_State *L, const char *buf, size_t *pos)
{
    size_t n;
    memcpy(&n, buf + *pos, sizeof n);
    lua_pushlstring(L, buf + *pos + sizeof n, n);
    *pos += sizeof n + n;
}

static int xml_is_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

/* Removes whitespace-only strings from the element on top of the stack,
 * which has n array items.  [-0, +0, m] */
static void xml_strip(lua_State *L, lua_Integer n)
{
    lua_Integer j = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        size_t len;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (s && xml_is_space(s, len)) {
            lua_pop(L, 1);
            continue;
        }
        lua_rawseti(L, -2, ++j);
    }
    for (lua_Integer i = j + 1; i <= n; i++) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
}

/* Per open element while replaying. */
typedef struct {
    lua_Integer n;   /* array items so far */
    char has_elem;   /* an element child */
    char has_space;  /* a whitespace-only text child */
} xml_level;

/* Builds the tree from the event buffer; leaves the root on top.
 * [-0, +1, m] */
static void xml_replay(lua_State *L, const xml_box *box, int strip)
{
    static xml_level lv_none;
    xml_level lv[XML_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    const char *buf = box->buf;
    lua_pushnil(L); /* the root goes here */
    int root = lua_gettop(L);
    while (pos < box->len) {
        char tag = buf[pos++];
        if (tag == EV_START) {
            if (!lua_checkstack(L, 6))
                luaL_error(L, "xml: stack overflow");
            lua_createtable(L, 0, 2); /* element */
            xml_push_str(L, buf, &pos);
            lua_setfield(L, -2, "tag");
            size_t natt;
            memcpy(&natt, buf + pos, sizeof natt);
            pos += sizeof natt;
            int na = natt > INT_MAX ? INT_MAX : (int)natt;
            lua_createtable(L, na, na); /* element attr */
            for (size_t i = 0; i < natt; i++) {
                xml_push_str(L, buf, &pos);  /* element attr name */
                lua_pushvalue(L, -1);        /* element attr name name */
                lua_rawseti(L, -3, (lua_Integer)i + 1);
                xml_push_str(L, buf, &pos);  /* element attr name value */
                lua_rawset(L, -3);           /* element attr */
            }
            lua_setfield(L, -2, "attr"); /* element */
            if (depth > 0)
                lv[depth].has_elem = 1;
            depth++;
            lv[depth] = lv_none;
        } else if (tag == EV_TEXT) {
            size_t n;
            memcpy(&n, buf + pos, sizeof n);
            if (xml_is_space(buf + pos + sizeof n, n))
                lv[depth].has_space = 1;
            xml_push_str(L, buf, &pos); /* element text */
            lua_rawseti(L, -2, ++lv[depth].n);
        } else { /* EV_END */
            if (strip && lv[depth].has_elem && lv[depth].has_space)
                xml_strip(L, lv[depth].n);
            depth--;
            if (depth == 0)
                lua_replace(L, root); /* the document's one root */
            else
                lua_rawseti(L, -2, ++lv[depth].n); /* parent */
        }
    }
}

/* parse(s, strip_whitespace) -> root | nil, err  [-0, +1|2, m] */
static int xml_parse(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int strip = lua_toboolean(L, 2);
    lua_settop(L, 1);

    xml_box *box = lua_newuserdatauv(L, sizeof *box, 0); /* s box */
    memset(box, 0, sizeof *box);
    box->last_text = SIZE_MAX;
    luaL_setmetatable(L, XML_BOX_MT);

    static const XML_Memory_Handling_Suite mem = {lumu_malloc, lumu_realloc, lumu_free};
    box->parser = XML_ParserCreate_MM(NULL, &mem, NULL);
    if (!box->parser)
        return luaL_error(L, "xml.parse: out of memory");
    XML_SetUserData(box->parser, box);
    XML_SetElementHandler(box->parser, xml_on_start, xml_on_end);
    XML_SetCharacterDataHandler(box->parser, xml_on_text);
    XML_SetExternalEntityRefHandler(box->parser, xml_on_external);
    XML_SetParamEntityParsing(box->parser, XML_PARAM_ENTITY_PARSING_NEVER);

    enum XML_Status st = XML_STATUS_OK;
    const size_t chunk = 1u << 30;
    while (st == XML_STATUS_OK && len > chunk) {
        st = XML_Parse(box->parser, s, (int)chunk, XML_FALSE);
        s += chunk;
        len -= chunk;
    }
    if (st == XML_STATUS_OK)
        st = XML_Parse(box->parser, s, (int)len, XML_TRUE);

    if (st != XML_STATUS_OK || box->err) {
        char msg[256];
        const char *why = box->err ? box->err : XML_ErrorString(XML_GetErrorCode(box->parser));
        snprintf(msg, sizeof msg, "%lu:%lu: %s",
                 (unsigned long)XML_GetCurrentLineNumber(box->parser),
                 (unsigned long)XML_GetCurrentColumnNumber(box->parser) + 1,
                 why ? why : "parse error");
        xml_box_release(box);
        luaL_pushfail(L);
        lua_pushstring(L, msg);
        return 2;
    }
    XML_ParserFree(box->parser);
    box->parser = NULL;
    xml_replay(L, box, strip); /* s box root */
    xml_box_release(box);
    return 1;
}

int luaopen_lumu__xml(lua_State *L)
{
    static const luaL_Reg fns[] = {{"parse", xml_parse}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", xml_box_gc}, {"__close", xml_box_gc}, {NULL, NULL}};
    luaL_newmetatable(L, XML_BOX_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
