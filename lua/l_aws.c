/*
 * lumu._aws: the model-driven half of the AWS client (the private C core of
 * stdlib/lumu/aws.lua).  Models, serialisation and response parsing come
 * from aws/model.h and aws/codec.h; this file converts between Lua values
 * and the codec's jansson documents, directed by the model's shapes.
 *
 *   services() -> { "acm", "application-autoscaling", ... }   (embedded, sorted)
 *   model(service) -> info | nil, err, suggestion
 *       info = { service=, protocol=, api_version=, endpoint_prefix=,
 *                signing_name=, signature_version=, service_id=,
 *                global_endpoint=, json_version=, target_prefix= }
 *       suggestion: the closest embedded service name, or nil.
 *   operations(service) -> { sorted operation names }        raises: unknown service
 *   operation(service, name) -> info | nil, err, suggestion
 *       name may be CamelCase, snake_case or kebab-case ("describe-stacks");
 *       info = { name=, http_method=, request_uri=, auth_type=, idempotent=,
 *                deprecated=, input=, output= (shape names or nil),
 *                members = { input member names in model order },
 *                required = { required input members },
 *                tokens = { idempotency-token members } }
 *   paginator(service, op) -> paginators-1.json entry (a plain table) | nil
 *   waiter(service, name) -> waiters-2.json entry | nil, err, suggestion
 *   waiters(service) -> { sorted waiter names }
 *   serialize(service, op, params, opts) -> request | nil, err
 *       params: a Lua table checked against the input shape (see below);
 *       opts = { host = "h[:port]", base_path = "/p", idempotency_token = s,
 *                base64_blobs = bool (blob params are base64 text, as in the
 *                AWS CLI), disable_host_prefix = bool }
 *       request = { method=, path=, query=, host=, host_prefix=,
 *                   headers = { name = value }, body = string }
 *       err (a string) for parameters that do not match the model:
 *       "DescribeStacks: StackNme: unknown parameter (did you mean 'StackName'?)",
 *       "CreateStack: Parameters[1].ParameterKey: expected a string, got number",
 *       "CreateStack: missing required parameter 'StackName'".
 *   parse(service, op, status, headers, body [, opts]) -> result | nil, err
 *       headers = { name = value } (any case); opts = { base64_blobs = bool,
 *       iso_timestamps = bool } (CLI output).  err = { kind = "service" |
 *       "parse" | ..., code=, message=, status=, request_id=, host_id=,
 *       data = { modeled error members }, modeled_retryable=,
 *       modeled_throttling= }
 *   sign(request, opts) -> headers
 *       request = { method=, host=, path=, query=, headers = {name = value},
 *                   body= } (a serialize() result); opts = { access_key=,
 *       secret_key=, session_token=, region=, service=, time = epoch seconds,
 *       s3 = bool }.  Returns the SigV4 headers to set (X-Amz-Date,
 *       Authorization, X-Amz-Security-Token, x-amz-content-sha256 for S3).
 *       Derived keys are cached per Lua state (aws_sigv4_key_cache; the
 *       secret itself is not stored).  Bad arguments raise; messages never
 *       contain the secret key or the token.
 *   to_json(service, shape | nil, value [, opts]) -> json text | nil, err
 *   from_json(service, shape | nil, text [, opts]) -> value | nil, err
 *       The conversions alone (tests, tooling); shape nil = free-form.
 *
 * Conversions (Lua <-> jansson), by shape type:
 *   structure  table with member-name keys (unknown keys, non-string keys and
 *              missing required members are errors; json.null values are
 *              skipped); documents: any JSON-able value
 *   list       sequence 1..n (an empty table or json.array() for none)
 *   map        table with string keys
 *   string     string (enums are not checked); jsonvalue members take any value
 *   boolean    boolean
 *   byte/short/integer/long  integer (a float with an integral value is accepted)
 *   float/double  number, or "NaN" / "Infinity" / "-Infinity"
 *   timestamp  epoch seconds (number) or an ISO 8601 / RFC 822 string; output:
 *              epoch seconds, an integer when whole (iso_timestamps: ISO 8601)
 *   blob       string of raw bytes (base64_blobs: base64 text)
 *   bigInteger/bigDecimal  string or number; output: string
 * Output lists and structures/maps carry lumu.json's array/object marker
 * metatables (so json.encode keeps [] and {}); JSON null becomes json.null.
 * Nesting deeper than 1000 (LUMU_CONV_MAX_DEPTH) is an error both ways.
 * Misuse of these functions (wrong argument types, unknown service or
 * operation for serialize/parse) raises.
 */
#include "host.h"

#include "codec.h"
#include "convert.h"
#include "model.h"
#include "sigv4.h"

#include <lauxlib.h>

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REQ_BOX_MT "lumu.aws.RequestBox"
#define JSON_BOX_MT "lumu.aws.JsonBox"
#define SIGN_BOX_MT "lumu.aws.SignBox"
#define KEY_CACHE_MT "lumu.aws.KeyCache"
#define KEY_CACHE_KEY "lumu.aws.key_cache" /* registry slot of the state's cache */

/* ---------------------------------------------------------------------------
 * Boxes: C resources owned by to-be-closed userdata
 * ------------------------------------------------------------------------- */

typedef struct json_box {
    json_t *v;
} json_box;

static void json_box_release(void *p)
{
    json_box *b = p;
    json_decref(b->v); /* NULL is fine */
    b->v = NULL;
}

typedef struct req_box {
    aws_http_request req;
    int init;
} req_box;

static void req_box_release(void *p)
{
    req_box *b = p;
    if (b->init)
        aws_http_request_clean(&b->req); /* idempotent */
}

/* ---------------------------------------------------------------------------
 * Suggestions ("did you mean")
 * ------------------------------------------------------------------------- */

#define NAME_CMP_MAX 96

/* Lower-cases s without '_' and '-' into out (at most NAME_CMP_MAX-1 chars). */
static size_t normalize_name(const char *s, char out[NAME_CMP_MAX])
{
    size_t n = 0;
    for (; *s && n < NAME_CMP_MAX - 1; s++) {
        if (*s == '_' || *s == '-')
            continue;
        out[n++] = (char)((*s >= 'A' && *s <= 'Z') ? *s - 'A' + 'a' : *s);
    }
    out[n] = '\0';
    return n;
}

static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t prev[NAME_CMP_MAX], cur[NAME_CMP_MAX];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v)
                v = prev[j - 1] + cost;
            cur[j] = v;
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb];
}

typedef const char *(*name_at_fn)(const void *ud, size_t i);

/* The candidate equal to word once normalized (case, '_', '-'), or NULL. */
static const char *find_normalized(const char *word, name_at_fn at, const void *ud, size_t n)
{
    char w[NAME_CMP_MAX], c[NAME_CMP_MAX];
    normalize_name(word, w);
    for (size_t i = 0; i < n; i++) {
        normalize_name(at(ud, i), c);
        if (strcmp(w, c) == 0)
            return at(ud, i);
    }
    return NULL;
}

/* The closest candidate within max(2, len/3) edits (normalized), or NULL. */
static const char *suggest(const char *word, name_at_fn at, const void *ud, size_t n)
{
    char w[NAME_CMP_MAX], c[NAME_CMP_MAX];
    size_t lw = normalize_name(word, w);
    size_t limit = lw / 3 > 2 ? lw / 3 : 2;
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t lc = normalize_name(at(ud, i), c);
        size_t d;
        if (lw && lc && (strstr(c, w) == c || strstr(w, c) == w) &&
            (lw > lc ? lw - lc : lc - lw) <= 2)
            d = 1; /* a missing or extra plural "s" and the like */
        else
            d = edit_distance(w, lw, c, lc);
        if (d <= limit && d < bestd) {
            best = at(ud, i);
            bestd = d;
        }
    }
    return best;
}

static const char *service_at(const void *ud, size_t i)
{
    (void)ud;
    return aws_model_service_name(i);
}

static const char *operation_at(const void *ud, size_t i)
{
    return ((const aws_model *)ud)->operations[i].name;
}

static const char *member_at(const void *ud, size_t i)
{
    return ((const aws_shape *)ud)->members[i].name;
}

/* ---------------------------------------------------------------------------
 * Model and operation lookups
 * ------------------------------------------------------------------------- */

/* The model of a service, or NULL with a message (and a suggestion) pushed:
 * nil, msg, suggestion.  [-0, +0 | +3, m] */
static const aws_model *get_model(lua_State *L, const char *service)
{
    aws_error err;
    aws_error_clear(&err);
    const aws_model *m = aws_model_get(service, &err);
    if (m)
        return m;
    lua_pushnil(L);
    if (err.code == AWS_ERR_INVALID_ARG) {
        const char *s = suggest(service, service_at, NULL, aws_model_service_count());
        if (s)
            lua_pushfstring(L, "unknown service '%s' (did you mean '%s'?)", service, s);
        else
            lua_pushfstring(L, "unknown service '%s'", service);
        if (s)
            lua_pushstring(L, s);
        else
            lua_pushnil(L);
    } else {
        lua_pushfstring(L, "service %s: %s", service,
                        err.message[0] ? err.message : aws_errcode_name(err.code));
        lua_pushnil(L);
    }
    return NULL;
}

/* Like get_model, but raises.  [-0, +0, v] */
static const aws_model *check_model(lua_State *L, int arg)
{
    const char *service = luaL_checkstring(L, arg);
    const aws_model *m = get_model(L, service);
    if (!m)
        luaL_argerror(L, arg, lua_tostring(L, -2));
    return m;
}

/* The operation `name` (any case / snake / kebab), or NULL with
 * nil, msg, suggestion pushed.  [-0, +0 | +3, m] */
static const aws_operation *get_operation(lua_State *L, const aws_model *m, const char *name)
{
    const aws_operation *op = aws_model_operation(m, name);
    if (op)
        return op;
    const char *found = find_normalized(name, operation_at, m, m->operation_count);
    if (found)
        return aws_model_operation(m, found);
    const char *s = suggest(name, operation_at, m, m->operation_count);
    lua_pushnil(L);
    if (s)
        lua_pushfstring(L, "%s has no operation '%s' (did you mean '%s'?)", m->service, name, s);
    else
        lua_pushfstring(L, "%s has no operation '%s'", m->service, name);
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
    return NULL;
}

static const aws_operation *check_operation(lua_State *L, const aws_model *m, int arg)
{
    const char *name = luaL_checkstring(L, arg);
    const aws_operation *op = get_operation(L, m, name);
    if (!op)
        luaL_argerror(L, arg, lua_tostring(L, -2));
    return op;
}

static void setstr(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

static const char *protocol_name(aws_protocol p)
{
    switch (p) {
    case AWS_PROTOCOL_QUERY: return "query";
    case AWS_PROTOCOL_EC2: return "ec2";
    case AWS_PROTOCOL_JSON: return "json";
    case AWS_PROTOCOL_REST_JSON: return "rest-json";
    case AWS_PROTOCOL_REST_XML: return "rest-xml";
    case AWS_PROTOCOL_UNKNOWN: break;
    }
    return "unknown";
}

/* services() -> list */
static int l_services(lua_State *L)
{
    size_t n = aws_model_service_count();
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, aws_model_service_name(i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* model(service) -> info | nil, err, suggestion */
static int l_model(lua_State *L)
{
    const aws_model *m = get_model(L, luaL_checkstring(L, 1));
    if (!m)
        return 3;
    lua_createtable(L, 0, 10);
    setstr(L, "service", m->service);
    setstr(L, "protocol", protocol_name(m->protocol));
    setstr(L, "api_version", m->api_version);
    setstr(L, "endpoint_prefix", m->endpoint_prefix);
    setstr(L, "signing_name", m->signing_name);
    setstr(L, "signature_version", m->signature_version);
    setstr(L, "service_id", m->service_id);
    setstr(L, "global_endpoint", m->global_endpoint);
    setstr(L, "json_version", m->json_version);
    setstr(L, "target_prefix", m->target_prefix);
    return 1;
}

/* operations(service) -> list */
static int l_operations(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    lua_createtable(L, (int)m->operation_count, 0);
    for (size_t i = 0; i < m->operation_count; i++) {
        lua_pushstring(L, m->operations[i].name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* operation(service, name) -> info | nil, err, suggestion */
static int l_operation(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    const aws_operation *op = get_operation(L, m, luaL_checkstring(L, 2));
    if (!op)
        return 3;
    lua_createtable(L, 0, 12);
    setstr(L, "name", op->name);
    setstr(L, "http_method", op->http_method);
    setstr(L, "request_uri", op->request_uri);
    const char *auth = op->auth_type;
    json_t *authlist = json_object_get(op->raw, "auth"); /* newer models: ["smithy.api#noAuth"] */
    if (!auth && json_is_array(authlist) && json_array_size(authlist) == 1 &&
        json_is_string(json_array_get(authlist, 0)) &&
        strcmp(json_string_value(json_array_get(authlist, 0)), "smithy.api#noAuth") == 0)
        auth = "none";
    setstr(L, "auth_type", auth);
    lua_pushboolean(L, op->idempotent);
    lua_setfield(L, -2, "idempotent");
    lua_pushboolean(L, op->deprecated);
    lua_setfield(L, -2, "deprecated");
    if (op->input)
        setstr(L, "input", op->input->shape->name);
    if (op->output)
        setstr(L, "output", op->output->shape->name);
    const aws_shape *in = op->input ? op->input->shape : NULL;
    size_t n = in ? in->member_count : 0;
    lua_createtable(L, (int)n, 0);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 0);
    lua_Integer nreq = 0, ntok = 0;
    for (size_t i = 0; i < n; i++) {
        const aws_member *mb = &in->members[i];
        lua_pushstring(L, mb->name);
        lua_rawseti(L, -4, (lua_Integer)i + 1);
        if (mb->flags & AWS_MF_IDEMPOTENCY_TOKEN) {
            lua_pushstring(L, mb->name);
            lua_rawseti(L, -2, ++ntok);
        } else if (mb->flags & AWS_MF_REQUIRED) {
            lua_pushstring(L, mb->name);
            lua_rawseti(L, -3, ++nreq);
        }
    }
    lua_setfield(L, -4, "tokens");
    lua_setfield(L, -3, "required");
    lua_setfield(L, -2, "members");
    return 1;
}

/* ---------------------------------------------------------------------------
 * jansson -> Lua
 * ------------------------------------------------------------------------- */

/* Pushes the base64 (RFC 4648, padded) of n bytes.  [-0, +1, m] */
static void push_base64(lua_State *L, const char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *)p;
    luaL_Buffer b;
    char *o = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4 + 1);
    size_t j = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        o[j++] = tab[v >> 18];
        o[j++] = tab[(v >> 12) & 63];
        o[j++] = tab[(v >> 6) & 63];
        o[j++] = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        o[j++] = tab[v >> 18];
        o[j++] = tab[(v >> 12) & 63];
        o[j++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        o[j++] = '=';
    }
    luaL_pushresultsize(&b, j);
}

typedef struct out_ctx {
    bool b64;          /* blobs as base64 text */
    bool iso;          /* timestamps as ISO 8601 */
    const char *error; /* static message, when it fails */
} out_ctx;

/* Pushes v as a Lua value shaped by s (NULL = free-form).  False with
 * c->error set (nothing pushed) on excessive nesting.  [-0, +1|0, m] */
static bool push_json(lua_State *L, out_ctx *c, const json_t *v, const aws_shape *s, int depth)
{
    if (depth > LUMU_CONV_MAX_DEPTH || !lua_checkstack(L, 4)) {
        c->error = "nesting too deep";
        return false;
    }
    if (s && (s->flags & AWS_SF_DOCUMENT))
        s = NULL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const aws_shape *vs = NULL;
        bool structure = s && s->type == AWS_SHAPE_STRUCTURE;
        if (s && s->type == AWS_SHAPE_MAP)
            vs = s->value.shape;
        lua_createtable(L, 0, (int)(json_object_size(v) < 4096 ? json_object_size(v) : 0));
        lumu_conv_mark(L, -1, 0);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            const aws_shape *xs = vs;
            if (structure) {
                const aws_member *mb = aws_shape_member(s, k);
                xs = mb ? mb->shape : NULL;
            }
            if (!push_json(L, c, x, xs, depth + 1)) {
                lua_pop(L, 1);
                return false;
            }
            lua_setfield(L, -2, k);
        }
        return true;
    }
    case JSON_ARRAY: {
        const aws_shape *es = s && s->type == AWS_SHAPE_LIST ? s->member.shape : NULL;
        size_t n = json_array_size(v);
        lua_createtable(L, (int)(n < 65536 ? n : 0), 0);
        lumu_conv_mark(L, -1, 1);
        for (size_t i = 0; i < n; i++) {
            if (!push_json(L, c, json_array_get(v, i), es, depth + 1)) {
                lua_pop(L, 1);
                return false;
            }
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return true;
    }
    case JSON_STRING: {
        const char *str = json_string_value(v);
        size_t len = json_string_length(v);
        if (c->b64 && s && s->type == AWS_SHAPE_BLOB) {
            push_base64(L, str, len);
            return true;
        }
        lua_pushlstring(L, str, len);
        return true;
    }
    case JSON_INTEGER:
    case JSON_REAL: {
        if (c->iso && s && s->type == AWS_SHAPE_TIMESTAMP) {
            char buf[40];
            if (aws_timestamp_format(json_number_value(v), "iso8601", buf)) {
                lua_pushstring(L, buf);
                return true;
            }
        }
        if (json_is_integer(v))
            lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        else
            lua_pushnumber(L, (lua_Number)json_real_value(v));
        return true;
    }
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        return true;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        return true;
    case JSON_NULL:
        lumu_conv_pushnull(L);
        return true;
    }
    c->error = "unknown JSON type";
    return false;
}

/* ---------------------------------------------------------------------------
 * Lua -> jansson, checked against the shapes
 * ------------------------------------------------------------------------- */

typedef struct in_ctx {
    lua_State *L;
    const aws_operation *op; /* for messages, may be NULL */
    bool b64;
    json_box *root;          /* every value is attached before it is filled */
    void *null;              /* json.null's address */
    char path[512];
    size_t plen;
    char err[1024];
} in_ctx;

static bool in_fail(in_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool in_fail(in_ctx *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *op = c->op ? c->op->name : NULL;
    if (c->plen)
        snprintf(c->err, sizeof c->err, "%.100s%s%.200s: %s", op ? op : "", op ? ": " : "",
                 c->path, msg);
    else
        snprintf(c->err, sizeof c->err, "%.100s%s%s", op ? op : "", op ? ": " : "", msg);
    return false;
}

static bool in_oom(in_ctx *c)
{
    snprintf(c->err, sizeof c->err, "out of memory");
    return false;
}

static size_t path_key(in_ctx *c, const char *k, size_t klen)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "%s%.*s", c->plen ? "." : "",
                     (int)(klen > 100 ? 100 : klen), k);
    if (n > 0)
        c->plen = c->plen + (size_t)n < sizeof c->path ? c->plen + (size_t)n : sizeof c->path - 1;
    return old;
}

static size_t path_index(in_ctx *c, lua_Integer i)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%lld]", (long long)i);
    if (n > 0)
        c->plen = c->plen + (size_t)n < sizeof c->path ? c->plen + (size_t)n : sizeof c->path - 1;
    return old;
}

static void path_pop(in_ctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static const char *lua_kind(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER)
        return lua_isinteger(L, idx) ? "integer" : "number";
    return lua_typename(L, t);
}

/* Attaches v (a new reference, stolen) to parent under key (objects) or at
 * the end (arrays); parent NULL = the root.  False on no memory. */
static bool attach(in_ctx *c, json_t *parent, const char *key, json_t *v)
{
    if (!v)
        return in_oom(c);
    if (!parent) {
        c->root->v = v;
        return true;
    }
    int rc = json_is_array(parent) ? json_array_append_new(parent, v)
                                   : json_object_set_new_nocheck(parent, key, v);
    return rc == 0 ? true : in_oom(c);
}

/* Table classification for free-form values: 1 array, 2 object, 0 empty
 * (unmarked), -1 mixed.  n receives the array length. */
static int classify(lua_State *L, int idx, lua_Integer *n)
{
    int mark = lumu_conv_marker(L, idx);
    lua_Integer count = 0, maxk = 0;
    bool strings = false, others = false;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings = true;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > maxk)
                maxk = k;
            count++;
        } else {
            others = true;
        }
    }
    *n = count;
    if (others || (strings && count) || (count && maxk != count))
        return -1;
    if (count)
        return mark == LUMU_CONV_OBJECT ? -1 : 1;
    if (strings)
        return mark == LUMU_CONV_ARRAY ? -1 : 2;
    return mark == LUMU_CONV_ARRAY ? 1 : mark == LUMU_CONV_OBJECT ? 2 : 0;
}

static bool in_value(in_ctx *c, int idx, const aws_shape *s, unsigned mflags, json_t *parent,
                     const char *key, int depth);

/* A free-form JSON value (documents, jsonvalue members). */
static bool in_any(in_ctx *c, int idx, json_t *parent, const char *key, int depth)
{
    return in_value(c, idx, NULL, 0, parent, key, depth);
}

static bool in_structure(in_ctx *c, int idx, const aws_shape *s, json_t *parent, const char *key,
                         int depth)
{
    lua_State *L = c->L;
    lua_Integer n;
    int kind = classify(L, idx, &n);
    if (kind == 1 || kind == -1)
        return in_fail(c, "expected a table of %s parameters, got a list", s->name);
    /* every key must be a member */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_tostring(L, -2); /* classify: only string keys */
        size_t klen = lua_rawlen(L, -2);
        lua_pop(L, 1);
        if (aws_shape_member(s, k))
            continue;
        size_t old = path_key(c, k, klen);
        const char *sug = find_normalized(k, member_at, s, s->member_count);
        if (!sug)
            sug = suggest(k, member_at, s, s->member_count);
        if (sug)
            in_fail(c, "unknown parameter (did you mean '%s'?)", sug);
        else
            in_fail(c, "unknown parameter (%s takes: %s%s%s%s)", s->name,
                    s->member_count ? s->members[0].name : "nothing",
                    s->member_count > 1 ? ", " : "", s->member_count > 1 ? s->members[1].name : "",
                    s->member_count > 2 ? ", ..." : "");
        path_pop(c, old);
        lua_pop(L, 1);
        return false;
    }
    json_t *obj = json_object();
    if (!attach(c, parent, key, obj))
        return false;
    /* then the members, in model order (deterministic requests) */
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *mb = &s->members[i];
        lua_pushstring(L, mb->name);
        int t = lua_rawget(L, idx);
        int vi = lua_gettop(L);
        if (t == LUA_TNIL || (c->null && lua_touserdata(L, vi) == c->null)) {
            lua_pop(L, 1);
            if ((mb->flags & AWS_MF_REQUIRED) && !(mb->flags & AWS_MF_IDEMPOTENCY_TOKEN) &&
                !(s->flags & AWS_SF_UNION))
                return in_fail(c, "missing required parameter '%s'", mb->name);
            continue;
        }
        size_t old = path_key(c, mb->name, strlen(mb->name));
        bool ok = in_value(c, vi, mb->shape, mb->flags, obj, mb->name, depth + 1);
        path_pop(c, old);
        lua_pop(L, 1);
        if (!ok)
            return false;
    }
    return true;
}

static bool in_list(in_ctx *c, int idx, const aws_shape *s, json_t *parent, const char *key,
                    int depth)
{
    lua_State *L = c->L;
    lua_Integer n;
    int kind = classify(L, idx, &n);
    if (kind == 2 || kind == -1)
        return in_fail(c, "expected a list (a sequence 1..n), got a table with other keys");
    json_t *arr = json_array();
    if (!attach(c, parent, key, arr))
        return false;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        size_t old = path_index(c, i);
        bool ok = in_value(c, lua_gettop(L), s->member.shape, s->member.flags, arr, NULL,
                           depth + 1);
        path_pop(c, old);
        lua_pop(L, 1);
        if (!ok)
            return false;
    }
    return true;
}

static bool in_map(in_ctx *c, int idx, const aws_shape *s, json_t *parent, const char *key,
                   int depth)
{
    lua_State *L = c->L;
    json_t *obj = json_object();
    if (!attach(c, parent, key, obj))
        return false;
    if (lumu_conv_marker(L, idx) == LUMU_CONV_ARRAY)
        return in_fail(c, "expected a map (string keys), got a list");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int vi = lua_gettop(L);
        if (lua_type(L, vi - 1) != LUA_TSTRING) {
            const char *kk = lua_kind(L, vi - 1);
            lua_pop(L, 2);
            return in_fail(c, "expected a map with string keys, got a %s key", kk);
        }
        size_t klen;
        const char *k = lua_tolstring(L, vi - 1, &klen);
        if (strlen(k) != klen || !lumu_conv_utf8_valid(k, klen)) {
            lua_pop(L, 2);
            return in_fail(c, "map keys must be UTF-8 without NUL bytes");
        }
        size_t old = path_key(c, k, klen);
        bool ok = in_value(c, vi, s->value.shape, s->value.flags, obj, k, depth + 1);
        path_pop(c, old);
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return false;
        }
    }
    return true;
}

static bool is_special_float(const char *s)
{
    return !strcmp(s, "NaN") || !strcmp(s, "Infinity") || !strcmp(s, "-Infinity");
}

static bool in_value(in_ctx *c, int idx, const aws_shape *s, unsigned mflags, json_t *parent,
                     const char *key, int depth)
{
    lua_State *L = c->L;
    if (depth > LUMU_CONV_MAX_DEPTH || !lua_checkstack(L, 6))
        return in_fail(c, "nesting deeper than %d", LUMU_CONV_MAX_DEPTH);
    int t = lua_type(L, idx);
    if (s && (s->flags & AWS_SF_DOCUMENT))
        s = NULL;
    if (s && s->type == AWS_SHAPE_STRING && (mflags & AWS_MF_JSONVALUE))
        s = NULL; /* a header carrying JSON: any value */
    if (!s) {
        switch (t) {
        case LUA_TNIL:
            return attach(c, parent, key, json_null());
        case LUA_TBOOLEAN:
            return attach(c, parent, key, json_boolean(lua_toboolean(L, idx)));
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx))
                return attach(c, parent, key, json_integer((json_int_t)lua_tointeger(L, idx)));
            if (!isfinite(lua_tonumber(L, idx)))
                return in_fail(c, "NaN and infinities cannot be sent in a document");
            return attach(c, parent, key, json_real(lua_tonumber(L, idx)));
        case LUA_TSTRING: {
            size_t len;
            const char *str = lua_tolstring(L, idx, &len);
            if (!lumu_conv_utf8_valid(str, len))
                return in_fail(c, "invalid UTF-8 in a string");
            return attach(c, parent, key, json_stringn(str, len));
        }
        case LUA_TLIGHTUSERDATA:
        case LUA_TUSERDATA:
            if (c->null && lua_touserdata(L, idx) == c->null)
                return attach(c, parent, key, json_null());
            break;
        case LUA_TTABLE: {
            lua_Integer n;
            int kind = classify(L, idx, &n);
            if (kind == -1)
                return in_fail(c, "table mixes list and map keys");
            if (kind == 1) {
                json_t *arr = json_array();
                if (!attach(c, parent, key, arr))
                    return false;
                for (lua_Integer i = 1; i <= n; i++) {
                    lua_rawgeti(L, idx, i);
                    size_t old = path_index(c, i);
                    bool ok = in_any(c, lua_gettop(L), arr, NULL, depth + 1);
                    path_pop(c, old);
                    lua_pop(L, 1);
                    if (!ok)
                        return false;
                }
                return true;
            }
            json_t *obj = json_object();
            if (!attach(c, parent, key, obj))
                return false;
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                size_t klen;
                const char *k = lua_tolstring(L, -2, &klen); /* kind 2: string keys */
                size_t old = path_key(c, k, klen);
                bool ok = strlen(k) == klen && lumu_conv_utf8_valid(k, klen);
                if (!ok)
                    in_fail(c, "object keys must be UTF-8 without NUL bytes");
                else
                    ok = in_any(c, lua_gettop(L), obj, k, depth + 1);
                path_pop(c, old);
                lua_pop(L, 1);
                if (!ok) {
                    lua_pop(L, 1);
                    return false;
                }
            }
            return true;
        }
        default:
            break;
        }
        return in_fail(c, "cannot send a %s", lua_kind(L, idx));
    }

    switch (s->type) {
    case AWS_SHAPE_STRUCTURE:
        if (t != LUA_TTABLE)
            return in_fail(c, "expected a table (%s), got %s", s->name, lua_kind(L, idx));
        return in_structure(c, idx, s, parent, key, depth);
    case AWS_SHAPE_LIST:
        if (t != LUA_TTABLE)
            return in_fail(c, "expected a list, got %s", lua_kind(L, idx));
        return in_list(c, idx, s, parent, key, depth);
    case AWS_SHAPE_MAP:
        if (t != LUA_TTABLE)
            return in_fail(c, "expected a map (table), got %s", lua_kind(L, idx));
        return in_map(c, idx, s, parent, key, depth);
    case AWS_SHAPE_STRING:
        if (t != LUA_TSTRING)
            return in_fail(c, "expected a string, got %s", lua_kind(L, idx));
        {
            size_t len;
            const char *str = lua_tolstring(L, idx, &len);
            if (!lumu_conv_utf8_valid(str, len))
                return in_fail(c, "invalid UTF-8 in a string");
            return attach(c, parent, key, json_stringn(str, len));
        }
    case AWS_SHAPE_BLOB:
        if (t != LUA_TSTRING)
            return in_fail(c, "expected a string (bytes), got %s", lua_kind(L, idx));
        {
            size_t len;
            const char *str = lua_tolstring(L, idx, &len);
            if (c->b64) {
                size_t dl = 0;
                char *dec = aws_base64_decode(str, len, &dl);
                if (!dec)
                    return in_fail(c, "invalid base64");
                json_t *v = json_stringn_nocheck(dec, dl);
                aws_free(dec);
                return attach(c, parent, key, v);
            }
            return attach(c, parent, key, json_stringn_nocheck(str, len));
        }
    case AWS_SHAPE_BOOLEAN:
        if (t != LUA_TBOOLEAN)
            return in_fail(c, "expected a boolean, got %s", lua_kind(L, idx));
        return attach(c, parent, key, json_boolean(lua_toboolean(L, idx)));
    case AWS_SHAPE_BYTE:
    case AWS_SHAPE_SHORT:
    case AWS_SHAPE_INTEGER:
    case AWS_SHAPE_LONG: {
        int isint;
        lua_Integer i = t == LUA_TNUMBER ? lua_tointegerx(L, idx, &isint) : (isint = 0);
        if (!isint)
            return in_fail(c, "expected an integer, got %s", lua_kind(L, idx));
        return attach(c, parent, key, json_integer((json_int_t)i));
    }
    case AWS_SHAPE_FLOAT:
    case AWS_SHAPE_DOUBLE:
        if (t == LUA_TSTRING && is_special_float(lua_tostring(L, idx)))
            return attach(c, parent, key, json_string(lua_tostring(L, idx)));
        if (t != LUA_TNUMBER)
            return in_fail(c, "expected a number, got %s", lua_kind(L, idx));
        if (lua_isinteger(L, idx))
            return attach(c, parent, key, json_integer((json_int_t)lua_tointeger(L, idx)));
        {
            double d = lua_tonumber(L, idx);
            if (isnan(d))
                return attach(c, parent, key, json_string("NaN"));
            if (isinf(d))
                return attach(c, parent, key, json_string(d > 0 ? "Infinity" : "-Infinity"));
            return attach(c, parent, key, json_real(d));
        }
    case AWS_SHAPE_TIMESTAMP:
        if (t == LUA_TNUMBER) {
            if (lua_isinteger(L, idx))
                return attach(c, parent, key, json_integer((json_int_t)lua_tointeger(L, idx)));
            double d = lua_tonumber(L, idx);
            if (!isfinite(d))
                return in_fail(c, "expected a timestamp, got %s", d != d ? "NaN" : "infinity");
            return attach(c, parent, key, json_real(d));
        }
        if (t == LUA_TSTRING) {
            size_t len;
            const char *str = lua_tolstring(L, idx, &len);
            double ts;
            if (!aws_timestamp_parse(str, len, &ts))
                return in_fail(c, "invalid timestamp (want epoch seconds or ISO 8601)");
            return attach(c, parent, key, json_stringn(str, len));
        }
        return in_fail(c, "expected a timestamp (epoch seconds or ISO 8601), got %s",
                       lua_kind(L, idx));
    case AWS_SHAPE_BIGINTEGER:
    case AWS_SHAPE_BIGDECIMAL:
        if (t == LUA_TNUMBER) {
            char buf[64];
            if (lua_isinteger(L, idx))
                snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, idx));
            else
                snprintf(buf, sizeof buf, "%.17g", (double)lua_tonumber(L, idx));
            return attach(c, parent, key, json_string(buf));
        }
        if (t != LUA_TSTRING)
            return in_fail(c, "expected a number or a decimal string, got %s", lua_kind(L, idx));
        return attach(c, parent, key, json_string(lua_tostring(L, idx)));
    }
    return in_fail(c, "unsupported shape type");
}

/* Converts the value at idx (a table for structures) into box->v.  False
 * with c->err set.  The box owns whatever was built.  [-0, +0, m] */
static bool to_json(lua_State *L, in_ctx *c, int idx, const aws_shape *s)
{
    lumu_conv_init(L);
    c->null = lumu_conv_nullptr(L);
    return in_value(c, idx, s, 0, NULL, NULL, 0);
}

/* ---------------------------------------------------------------------------
 * serialize / parse
 * ------------------------------------------------------------------------- */

static bool optbool(lua_State *L, int idx, const char *k)
{
    if (lua_isnoneornil(L, idx))
        return false;
    lua_getfield(L, idx, k);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A string field of the opts table (kept alive by it), or NULL. */
static const char *optstr(lua_State *L, int idx, const char *k)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    lua_getfield(L, idx, k);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "option '%s' must be a string", k);
    lua_pop(L, 1); /* still referenced by the opts table */
    return s;
}

static bool fixed_token(void *ud, char out[64])
{
    snprintf(out, 64, "%s", (const char *)ud);
    return true;
}

/* serialize(service, op, params, opts) -> request | nil, err */
static int l_serialize(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    const aws_operation *op = check_operation(L, m, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    aws_serialize_opts o = {0};
    o.host = optstr(L, 4, "host");
    o.base_path = optstr(L, 4, "base_path");
    o.disable_host_prefix = optbool(L, 4, "disable_host_prefix");
    const char *token = optstr(L, 4, "idempotency_token");
    if (token) {
        if (strlen(token) > 63)
            return luaL_error(L, "option 'idempotency_token' is longer than 63 bytes");
        o.idempotency_token = fixed_token;
        o.token_ud = (void *)token;
    }

    json_box *in = lumu_conv_newbox(L, sizeof *in, JSON_BOX_MT, json_box_release); /* 5 */
    in_ctx c;
    memset(&c, 0, sizeof c);
    c.L = L;
    c.op = op;
    c.b64 = optbool(L, 4, "base64_blobs");
    c.root = in;
    const aws_shape *ins = op->input ? op->input->shape : NULL;
    if (ins) {
        if (lua_isnil(L, 3)) {
            lua_newtable(L);
            lua_replace(L, 3);
        }
        if (!to_json(L, &c, 3, ins)) {
            lua_pushnil(L);
            lua_pushstring(L, c.err);
            return 2;
        }
    } else if (!lua_isnil(L, 3)) {
        lua_pushnil(L);
        if (lua_next(L, 3)) {
            lua_pushnil(L);
            lua_pushfstring(L, "%s: takes no parameters", op->name);
            return 2;
        }
    }

    req_box *rb = lumu_conv_newbox(L, sizeof *rb, REQ_BOX_MT, req_box_release); /* 6 */
    aws_http_request_init(&rb->req);
    rb->init = 1;
    aws_error err;
    aws_error_clear(&err);
    if (!aws_serialize(m, op, in->v, &o, &rb->req, &err)) {
        if (err.code == AWS_ERR_NO_MEMORY)
            return luaL_error(L, "serialize: out of memory");
        lua_pushnil(L);
        lua_pushstring(L, err.message);
        return 2;
    }
    const aws_http_request *r = &rb->req;
    lua_createtable(L, 0, 7);
    setstr(L, "method", r->method);
    setstr(L, "path", r->path);
    setstr(L, "query", r->query ? r->query : "");
    setstr(L, "host", r->host);
    setstr(L, "host_prefix", r->host_prefix);
    lua_createtable(L, 0, (int)r->header_count);
    for (size_t i = 0; i < r->header_count; i++) {
        lua_pushstring(L, r->headers[i].value);
        lua_setfield(L, -2, r->headers[i].name);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body ? r->body : "", r->body ? r->body_len : 0);
    lua_setfield(L, -2, "body");
    return 1; /* the boxes are closed on return */
}

/* Pushes the error table of a failed parse.  [-0, +1, m] */
static void push_parse_error(lua_State *L, const aws_model *m, const aws_operation *op,
                             const aws_error *err, const aws_response_meta *meta,
                             const json_t *members, out_ctx *oc)
{
    lua_createtable(L, 0, 10);
    setstr(L, "kind", aws_errcode_name(err->code));
    if (err->aws_code[0])
        setstr(L, "code", err->aws_code);
    setstr(L, "message", err->message);
    if (err->http_status) {
        lua_pushinteger(L, err->http_status);
        lua_setfield(L, -2, "status");
    }
    if (meta->request_id[0])
        setstr(L, "request_id", meta->request_id);
    else if (err->request_id[0])
        setstr(L, "request_id", err->request_id);
    if (meta->host_id[0])
        setstr(L, "host_id", meta->host_id);
    if (err->code == AWS_ERR_SERVICE) {
        const aws_shape *es = err->aws_code[0] ? aws_model_error_shape(m, op, err->aws_code) : NULL;
        if (members && push_json(L, oc, members, es, 0))
            lua_setfield(L, -2, "data");
        if (es) {
            json_t *rt = json_object_get(es->raw, "retryable");
            if (json_is_object(rt)) {
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, "modeled_retryable");
                lua_pushboolean(L, json_is_true(json_object_get(rt, "throttling")));
                lua_setfield(L, -2, "modeled_throttling");
            }
            if (es->flags & AWS_SF_FAULT) {
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, "fault");
            }
        }
    }
}

/* parse(service, op, status, headers, body [, opts]) -> result | nil, err */
static int l_parse(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    const aws_operation *op = check_operation(L, m, 2);
    lua_Integer status = luaL_checkinteger(L, 3);
    luaL_argcheck(L, status >= 100 && status <= 999, 3, "HTTP status out of range");
    luaL_checktype(L, 4, LUA_TTABLE);
    size_t blen;
    const char *body = luaL_checklstring(L, 5, &blen);
    if (!lua_isnoneornil(L, 6))
        luaL_checktype(L, 6, LUA_TTABLE);
    lua_settop(L, 6);
    out_ctx oc = {0};
    oc.b64 = optbool(L, 6, "base64_blobs");
    oc.iso = optbool(L, 6, "iso_timestamps");

    size_t nh = 0;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 4, "headers must map strings to strings");
        nh++;
        lua_pop(L, 1);
    }
    aws_http_header *hdrs = lua_newuserdatauv(L, sizeof *hdrs * (nh ? nh : 1), 0); /* 7 */
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, 4) && i < nh) { /* the strings stay in the table */
        hdrs[i].name = lua_tostring(L, -2);
        hdrs[i].value = lua_tostring(L, -1);
        i++;
        lua_pop(L, 1);
    }
    lua_settop(L, 7);
    aws_http_response resp = {(int)status, hdrs, i, body, blen};
    json_box *out = lumu_conv_newbox(L, sizeof *out, JSON_BOX_MT, json_box_release); /* 8 */
    aws_error err;
    aws_error_clear(&err);
    aws_response_meta meta;
    if (aws_parse_response(m, op, &resp, &out->v, &meta, &err)) {
        const aws_shape *os = op->output ? op->output->shape : NULL;
        if (!push_json(L, &oc, out->v, os, 0))
            return luaL_error(L, "parse: %s", oc.error);
        return 1;
    }
    if (err.code == AWS_ERR_NO_MEMORY)
        return luaL_error(L, "parse: out of memory");
    lua_pushnil(L);
    push_parse_error(L, m, op, &err, &meta, out->v, &oc);
    return 2;
}

/* The shape named by argument arg (nil = free-form).  [-0, +0, v] */
static const aws_shape *opt_shape(lua_State *L, const aws_model *m, int arg)
{
    if (lua_isnoneornil(L, arg))
        return NULL;
    const char *name = luaL_checkstring(L, arg);
    const aws_shape *s = aws_model_shape(m, name);
    if (!s)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s has no shape '%s'", m->service, name));
    return s;
}

/* to_json(service, shape | nil, value [, opts]) -> text | nil, err */
static int l_to_json(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    const aws_shape *s = opt_shape(L, m, 2);
    luaL_checkany(L, 3);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    json_box *in = lumu_conv_newbox(L, sizeof *in, JSON_BOX_MT, json_box_release); /* 5 */
    in_ctx c;
    memset(&c, 0, sizeof c);
    c.L = L;
    c.b64 = optbool(L, 4, "base64_blobs");
    c.root = in;
    if (!to_json(L, &c, 3, s)) {
        lua_pushnil(L);
        lua_pushstring(L, c.err);
        return 2;
    }
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER;
    size_t need = json_dumpb(in->v, NULL, 0, flags);
    if (need == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot write JSON text (a blob that is not UTF-8?)");
        return 2;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, need);
    if (json_dumpb(in->v, p, need, flags) != need)
        return luaL_error(L, "to_json: cannot encode");
    luaL_pushresultsize(&b, need);
    return 1;
}

/* from_json(service, shape | nil, text [, opts]) -> value | nil, err */
static int l_from_json(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    const aws_shape *s = opt_shape(L, m, 2);
    size_t len;
    const char *text = luaL_checklstring(L, 3, &len);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    out_ctx oc = {0};
    oc.b64 = optbool(L, 4, "base64_blobs");
    oc.iso = optbool(L, 4, "iso_timestamps");
    json_box *b = lumu_conv_newbox(L, sizeof *b, JSON_BOX_MT, json_box_release); /* 5 */
    json_error_t jerr;
    b->v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!b->v) {
        lua_pushnil(L);
        lua_pushfstring(L, "%d:%d: %s", jerr.line, jerr.column, jerr.text);
        return 2;
    }
    if (!push_json(L, &oc, b->v, s, 0)) {
        lua_pushnil(L);
        lua_pushstring(L, oc.error);
        return 2;
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * paginators and waiters
 * ------------------------------------------------------------------------- */

/* paginator(service, op) -> table | nil */
static int l_paginator(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    const aws_operation *op = check_operation(L, m, 2);
    aws_error err;
    aws_error_clear(&err);
    json_t *p = aws_model_paginator(m, op->name, &err); /* borrowed */
    if (!p) {
        if (err.code != AWS_ERR_NONE)
            return luaL_error(L, "paginators of %s: %s", m->service, err.message);
        lua_pushnil(L);
        return 1;
    }
    out_ctx oc = {0};
    if (!push_json(L, &oc, p, NULL, 0))
        return luaL_error(L, "paginator: %s", oc.error);
    return 1;
}

typedef struct name_list {
    const char **names;
    size_t n;
} name_list;

static const char *list_at(const void *ud, size_t i)
{
    return ((const name_list *)ud)->names[i];
}

/* waiter(service, name) -> table | nil, err, suggestion */
static int l_waiter(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    aws_error err;
    aws_error_clear(&err);
    json_t *all = aws_model_waiters(m, &err);
    if (!all && err.code != AWS_ERR_NONE)
        return luaL_error(L, "waiters of %s: %s", m->service, err.message);
    json_t *w = all ? json_object_get(all, name) : NULL;
    if (!w && all) {
        size_t n = json_object_size(all), i = 0;
        const char **names = lua_newuserdatauv(L, sizeof *names * (n ? n : 1), 0);
        const char *k;
        json_t *x;
        json_object_foreach(all, k, x) {
            if (i < n)
                names[i++] = k;
        }
        name_list nl = {names, i};
        const char *found = find_normalized(name, list_at, &nl, nl.n);
        if (found) {
            w = json_object_get(all, found);
        } else {
            const char *s = suggest(name, list_at, &nl, nl.n);
            lua_pushnil(L);
            if (s)
                lua_pushfstring(L, "%s has no waiter '%s' (did you mean '%s'?)", m->service, name,
                                s);
            else
                lua_pushfstring(L, "%s has no waiter '%s'", m->service, name);
            if (s)
                lua_pushstring(L, s);
            else
                lua_pushnil(L);
            return 3;
        }
    }
    if (!w) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s has no waiters", m->service);
        return 2;
    }
    out_ctx oc = {0};
    if (!push_json(L, &oc, w, NULL, 0))
        return luaL_error(L, "waiter: %s", oc.error);
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* waiters(service) -> sorted names */
static int l_waiters(lua_State *L)
{
    const aws_model *m = check_model(L, 1);
    aws_error err;
    aws_error_clear(&err);
    json_t *all = aws_model_waiters(m, &err);
    if (!all && err.code != AWS_ERR_NONE)
        return luaL_error(L, "waiters of %s: %s", m->service, err.message);
    size_t n = all ? json_object_size(all) : 0, i = 0;
    const char **names = lua_newuserdatauv(L, sizeof *names * (n ? n : 1), 0);
    const char *k;
    json_t *x;
    if (all) {
        json_object_foreach(all, k, x) {
            if (i < n)
                names[i++] = k;
        }
    }
    qsort(names, i, sizeof *names, cmp_str);
    lua_createtable(L, (int)i, 0);
    for (size_t j = 0; j < i; j++) {
        lua_pushstring(L, names[j]);
        lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    return 1;
}


/* ---------------------------------------------------------------------------
 * SigV4 with a derived-key cache
 * ------------------------------------------------------------------------- */

typedef struct key_cache_box {
    aws_sigv4_key_cache *cache;
} key_cache_box;

static int key_cache_gc(lua_State *L)
{
    key_cache_box *b = luaL_checkudata(L, 1, KEY_CACHE_MT);
    aws_sigv4_key_cache_free(b->cache); /* NULL is fine */
    b->cache = NULL;
    return 0;
}

/* The state's key cache (created on first use; NULL when out of memory:
 * signing works without it).  [-0, +0, m] */
static aws_sigv4_key_cache *key_cache(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, KEY_CACHE_KEY) == LUA_TUSERDATA) {
        key_cache_box *b = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return b->cache;
    }
    lua_pop(L, 1);
    key_cache_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->cache = NULL;
    if (luaL_newmetatable(L, KEY_CACHE_MT)) {
        lua_pushcfunction(L, key_cache_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    b->cache = aws_sigv4_key_cache_new(NULL);
    lua_setfield(L, LUA_REGISTRYINDEX, KEY_CACHE_KEY);
    return b->cache;
}

static void sign_box_release(void *p)
{
    aws_sigv4_state_clean(p); /* idempotent */
}

/* A required string field of table idx, named but never quoted in errors. */
static const char *signfield(lua_State *L, int idx, const char *k, bool required)
{
    lua_getfield(L, idx, k);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    bool bad = !lua_isnil(L, -1) && !s;
    lua_pop(L, 1); /* the string stays referenced by the table */
    if (bad || (required && (!s || !*s)))
        luaL_error(L, "sign: '%s' must be a%s string", k, required ? " non-empty" : "");
    return s;
}

/* sign(request, opts) -> headers */
static int l_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    aws_sigv4_request req = {0};
    req.method = signfield(L, 1, "method", true);
    req.path = signfield(L, 1, "path", false);
    req.query = signfield(L, 1, "query", false);
    const char *host = signfield(L, 1, "host", true);
    lua_getfield(L, 1, "body"); /* 3 */
    if (!lua_isnil(L, 3)) {
        if (lua_type(L, 3) != LUA_TSTRING)
            return luaL_error(L, "sign: 'body' must be a string");
        req.payload = lua_tolstring(L, 3, &req.payload_len);
    }
    lua_getfield(L, 1, "headers"); /* 4 */
    size_t nh = 1;
    if (!lua_isnil(L, 4)) {
        luaL_argcheck(L, lua_istable(L, 4), 1, "'headers' must be a table");
        lua_pushnil(L);
        while (lua_next(L, 4)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "sign: headers must map strings to strings");
            nh++;
            lua_pop(L, 1);
        }
    }
    aws_sigv4_header *hdrs = lua_newuserdatauv(L, sizeof *hdrs * nh, 0); /* 5 */
    size_t count = 0;
    bool have_host = false;
    if (!lua_isnil(L, 4)) {
        lua_pushnil(L);
        while (lua_next(L, 4)) {
            if (count + 1 < nh) {
                hdrs[count].name = lua_tostring(L, -2);
                hdrs[count].value = lua_tostring(L, -1);
                if (strcasecmp(hdrs[count].name, "host") == 0)
                    have_host = true;
                count++;
            }
            lua_pop(L, 1);
        }
    }
    if (!have_host)
        hdrs[count++] = (aws_sigv4_header){"Host", host};
    req.headers = hdrs;
    req.header_count = count;

    aws_sigv4_config cfg;
    lua_getfield(L, 2, "s3");
    bool s3 = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (s3)
        aws_sigv4_config_init_s3(&cfg);
    else
        aws_sigv4_config_init(&cfg);
    cfg.access_key = signfield(L, 2, "access_key", true);
    cfg.secret_key = signfield(L, 2, "secret_key", true);
    cfg.session_token = signfield(L, 2, "session_token", false);
    cfg.region = signfield(L, 2, "region", true);
    cfg.service = signfield(L, 2, "service", true);
    lua_getfield(L, 2, "time");
    int isnum;
    lua_Number t = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || !(t >= 0 && t < 253402300800.0))
        return luaL_error(L, "sign: 'time' (epoch seconds) is required");
    cfg.time = (int64_t)t;
    cfg.cache = key_cache(L);

    aws_sigv4_state *st = lumu_conv_newbox(L, sizeof *st, SIGN_BOX_MT, sign_box_release); /* 6 */
    aws_sigv4_state_init(st);
    aws_error err;
    aws_error_clear(&err);
    if (!aws_sigv4_sign(&req, &cfg, st, &err))
        return luaL_error(L, "sign: %s", err.message); /* the box frees the state */
    lua_createtable(L, 0, (int)st->header_count);
    for (size_t i = 0; i < st->header_count; i++) {
        lua_pushstring(L, st->headers[i].value);
        lua_setfield(L, -2, st->headers[i].name);
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * module
 * ------------------------------------------------------------------------- */

int luaopen_lumu__aws(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"services", l_services},   {"model", l_model},         {"operations", l_operations},
        {"operation", l_operation}, {"serialize", l_serialize}, {"parse", l_parse},
        {"to_json", l_to_json},     {"from_json", l_from_json}, {"paginator", l_paginator},
        {"waiter", l_waiter},       {"waiters", l_waiters},     {"sign", l_sign},
        {NULL, NULL},
    };
    lumu_conv_init(L);
    luaL_newlib(L, fns);
    return 1;
}
