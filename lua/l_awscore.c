/*
 * lumu._awscore: Lua bindings of the pure-C AWS core pieces used by
 * stdlib/lumu/aws/config.lua and credentials.lua (and later lumu.aws):
 *
 *   parse_config(text [, filename]) -> sections | nil, err
 *       sections = { { header =, kind = "profile"|"sso-session"|"services"|
 *                      "other"|"ignored", name = (profile/session/services name),
 *                      line =, entries = { { key =, value =, line =,
 *                      sub = { {key=, value=, line=}, ... } (nested only) }, ... } }, ... }
 *       err = "FILE:LINE: what" (never quotes the line).  aws/config.h.
 *   shlex(s) -> { words } | nil, err           Python's shlex.split (POSIX)
 *   endpoints([json_text]) -> resolver | nil, err
 *       Without an argument: the embedded endpoints.json (aws/model.h).
 *       resolver:resolve{ service=, region=, fips=, dualstack=, insecure=,
 *                         sts_legacy=, s3_legacy=, signing_name= }
 *         -> { url=, hostname=, region=, signing_region=, signing_name=,
 *              partition=, dns_suffix=, deprecated= } | nil, err
 *       resolver:partition(region) -> name | nil
 *   valid_region(s) -> boolean
 *   s3_bucket_url(endpoint_url, bucket [, style [, custom]]) -> url, path_style | nil, err
 *       style "auto" (default) | "path" | "virtual"
 *   retry_policy{ mode=, max_attempts=, new_retries=, service=, max_backoff= } -> policy
 *       policy:classify(info) -> "none"|"transient"|"throttling", is_timeout
 *       policy:decide(token, info [, now]) -> { retry=, delay=, class=, timeout=,
 *                                              reason=, cost= }
 *           token: a table {attempts=, cost=} updated in place (start with {});
 *           info: { status=, code=, transport = "http"|"timeout"|nil,
 *                   modeled_retryable=, modeled_throttling=, checksum_mismatch=,
 *                   retry_after=, long_polling=, random = r in [0,1) (tests) }
 *       policy:success(token)       returns quota after a 2xx response
 *       policy:before_send(now) -> seconds to wait (adaptive mode)
 *       policy:on_response(now, throttled)
 *       policy:quota() -> tokens;  policy:max_attempts(); policy:mode()
 *       policy:backoff(class, attempt, r) -> seconds
 *   sign(request, opts) -> headers | query, details
 *       request = { method=, url=, headers = {name = value, ...},
 *                   body = string | payload_hash = hex | unsigned = true }
 *       opts = { access_key=, secret_key=, session_token=, region=, service=,
 *                time = epoch seconds, s3 = bool, algorithm = "v4"|"v4a",
 *                expires = seconds (presign: query mode), omit_session_token=,
 *                add_content_sha256= }
 *       Header mode returns { [name] = value } to set on the request; query
 *       mode the full query string.  details = { canonical_request=,
 *       string_to_sign=, signature=, signed_headers=, scope=, amz_date= }.
 *       Bad arguments raise; errors never contain the secret key or token.
 */
#include "host.h"

#include "config.h"
#include "endpoints.h"
#include "model.h"
#include "retry.h"
#include "sigv4.h"

#include <lauxlib.h>

#include <jansson.h>
#include <string.h>
#include <strings.h>

#define CONFIG_BOX_MT "lumu.aws.ConfigFile"
#define ENDPOINTS_MT "lumu.aws.Endpoints"
#define RETRY_MT "lumu.aws.RetryPolicy"
#define SIGN_BOX_MT "lumu.aws.SignState"

/* Pushes nil, message of e; returns 2.  [-0, +2, m] */
static int awscore_fail(lua_State *L, const aws_error *e)
{
    lua_pushnil(L);
    lua_pushstring(L, e->message[0] ? e->message : aws_errcode_name(e->code));
    return 2;
}

/* ---------------------------------------------------------------------------
 * parse_config
 * ------------------------------------------------------------------------- */

static int configbox_gc(lua_State *L)
{
    aws_config_file *f = luaL_checkudata(L, 1, CONFIG_BOX_MT);
    aws_config_file_clean(f); /* idempotent */
    return 0;
}

static const char *kind_name(aws_config_kind k)
{
    switch (k) {
    case AWS_CONFIG_PROFILE:
        return "profile";
    case AWS_CONFIG_SSO_SESSION:
        return "sso-session";
    case AWS_CONFIG_SERVICES:
        return "services";
    case AWS_CONFIG_IGNORED:
        return "ignored";
    case AWS_CONFIG_OTHER:
        break;
    }
    return "other";
}

/* Pushes {key=, value=, line=}.  [-0, +1, m] */
static void push_entry(lua_State *L, const aws_config_entry *e)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, e->key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, e->value);
    lua_setfield(L, -2, "value");
    lua_pushinteger(L, (lua_Integer)e->line);
    lua_setfield(L, -2, "line");
    if (e->nested) {
        lua_createtable(L, (int)(e->sub_count < 1000000 ? e->sub_count : 0), 0);
        for (size_t i = 0; i < e->sub_count; i++) {
            push_entry(L, &e->sub[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "sub");
    }
}

/* parse_config(text [, filename]) -> sections | nil, err */
static int awscore_parse_config(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *filename = luaL_optstring(L, 2, "<config>");
    lua_settop(L, 2);
    aws_config_file *f = lua_newuserdatauv(L, sizeof *f, 0); /* 3: the box owns the result */
    aws_config_file_init(f);
    luaL_setmetatable(L, CONFIG_BOX_MT);
    lua_toclose(L, 3);
    aws_error err;
    aws_error_clear(&err);
    if (!aws_config_parse(text, len, filename, f, &err))
        return awscore_fail(L, &err);
    lua_createtable(L, (int)(f->section_count < 1000000 ? f->section_count : 0), 0);
    for (size_t i = 0; i < f->section_count; i++) {
        const aws_config_section *s = &f->sections[i];
        lua_createtable(L, 0, 6);
        lua_pushstring(L, s->header);
        lua_setfield(L, -2, "header");
        lua_pushstring(L, kind_name(s->kind));
        lua_setfield(L, -2, "kind");
        if (s->name) {
            lua_pushstring(L, s->name);
            lua_setfield(L, -2, "name");
        }
        lua_pushinteger(L, (lua_Integer)s->line);
        lua_setfield(L, -2, "line");
        lua_createtable(L, (int)(s->entry_count < 1000000 ? s->entry_count : 0), 0);
        for (size_t k = 0; k < s->entry_count; k++) {
            push_entry(L, &s->entries[k]);
            lua_rawseti(L, -2, (lua_Integer)k + 1);
        }
        lua_setfield(L, -2, "entries");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1; /* the box is closed on return */
}

/* The words of shlex(), owned by a box so a raise never leaks them. */
typedef struct words_box {
    size_t n;
    char *w[];
} words_box;

#define WORDS_BOX_MT "lumu.aws.Words"

static int wordsbox_gc(lua_State *L)
{
    words_box *b = luaL_checkudata(L, 1, WORDS_BOX_MT);
    for (size_t i = 0; i < b->n; i++) {
        aws_free(b->w[i]);
        b->w[i] = NULL;
    }
    return 0;
}

/* shlex(s) -> { words } | nil, err */
static int awscore_shlex(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    aws_error err;
    aws_error_clear(&err);
    size_t count = 0;
    if (!aws_config_shlex(s, NULL, 0, &count, &err))
        return awscore_fail(L, &err);
    words_box *b = lua_newuserdatauv(L, sizeof *b + sizeof(char *) * count, 0); /* 2 */
    b->n = 0;
    luaL_setmetatable(L, WORDS_BOX_MT);
    lua_toclose(L, 2);
    memset(b->w, 0, sizeof(char *) * count);
    b->n = count;
    size_t got = 0;
    if (!aws_config_shlex(s, b->w, count, &got, &err))
        return awscore_fail(L, &err);
    lua_createtable(L, count < 100000 ? (int)count : 0, 0);
    for (size_t i = 0; i < count; i++) {
        lua_pushstring(L, b->w[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1; /* the box is closed on return */
}

/* ---------------------------------------------------------------------------
 * endpoints
 * ------------------------------------------------------------------------- */

typedef struct endpoints_box {
    aws_endpoints *e;
} endpoints_box;

#define toendpoints(L) ((endpoints_box *)luaL_checkudata(L, 1, ENDPOINTS_MT))

static int endpoints_gc(lua_State *L)
{
    endpoints_box *b = toendpoints(L);
    aws_endpoints_free(b->e);
    b->e = NULL;
    return 0;
}

static aws_endpoints *checkendpoints(lua_State *L)
{
    endpoints_box *b = toendpoints(L);
    if (!b->e)
        luaL_error(L, "endpoint resolver is closed");
    return b->e;
}

/* endpoints([json_text]) -> resolver | nil, err */
static int awscore_endpoints(lua_State *L)
{
    lua_settop(L, 1);
    endpoints_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->e = NULL;
    luaL_setmetatable(L, ENDPOINTS_MT);
    aws_error err;
    aws_error_clear(&err);
    json_t *doc;
    if (lua_isnoneornil(L, 1)) {
        doc = aws_model_document(NULL, "endpoints", NULL, &err);
        if (!doc) {
            if (err.code == AWS_ERR_NONE)
                aws_error_set(&err, AWS_ERR_IO, "endpoints.json is not embedded");
            return awscore_fail(L, &err);
        }
    } else {
        size_t len;
        const char *text = luaL_checklstring(L, 1, &len);
        json_error_t jerr;
        doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            lua_pushnil(L);
            lua_pushfstring(L, "endpoints: %d:%d: %s", jerr.line, jerr.column, jerr.text);
            return 2;
        }
    }
    b->e = aws_endpoints_new(doc, &err);
    json_decref(doc); /* the resolver holds its own reference */
    if (!b->e)
        return awscore_fail(L, &err);
    return 1;
}

static bool optbool(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The string field k of table t or NULL (it stays referenced by t).  */
static const char *optfield(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "field '%s' must be a string", k);
    lua_pop(L, 1); /* still referenced by the table */
    return s;
}

static void setstr(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* resolver:resolve(params) -> endpoint | nil, err */
static int endpoints_resolve(lua_State *L)
{
    aws_endpoints *e = checkendpoints(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    aws_endpoint_params p = {0};
    p.service = optfield(L, 2, "service");
    p.region = optfield(L, 2, "region");
    p.signing_name = optfield(L, 2, "signing_name");
    p.use_fips = optbool(L, 2, "fips");
    p.use_dualstack = optbool(L, 2, "dualstack");
    p.insecure = optbool(L, 2, "insecure");
    p.sts_legacy = optbool(L, 2, "sts_legacy");
    p.s3_legacy = optbool(L, 2, "s3_legacy");
    if (!p.service)
        return luaL_argerror(L, 2, "field 'service' is required");
    aws_endpoint ep;
    aws_error err;
    aws_error_clear(&err);
    if (!aws_endpoints_resolve(e, &p, &ep, &err))
        return awscore_fail(L, &err);
    lua_createtable(L, 0, 8);
    setstr(L, "url", ep.url);
    setstr(L, "hostname", ep.hostname);
    setstr(L, "region", ep.region);
    setstr(L, "signing_region", ep.signing_region);
    setstr(L, "signing_name", ep.signing_name);
    setstr(L, "partition", ep.partition);
    setstr(L, "dns_suffix", ep.dns_suffix);
    lua_pushboolean(L, ep.deprecated);
    lua_setfield(L, -2, "deprecated");
    return 1;
}

/* resolver:partition(region) -> name | nil */
static int endpoints_partition(lua_State *L)
{
    aws_endpoints *e = checkendpoints(L);
    const char *name = aws_endpoints_partition(e, luaL_checkstring(L, 2));
    if (name)
        lua_pushstring(L, name);
    else
        lua_pushnil(L);
    return 1;
}

static int awscore_valid_region(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING &&
                           aws_endpoints_valid_region(lua_tostring(L, 1)));
    return 1;
}

/* s3_bucket_url(endpoint_url, bucket [, style [, custom]]) -> url, path_style | nil, err */
static int awscore_s3_bucket_url(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *bucket = luaL_checkstring(L, 2);
    static const char *const styles[] = {"auto", "path", "virtual", NULL};
    int style = luaL_checkoption(L, 3, "auto", styles);
    bool custom = lua_toboolean(L, 4);
    luaL_Buffer b;
    size_t cap = strlen(url) + strlen(bucket) * 3 + 16;
    char *out = luaL_buffinitsize(L, &b, cap);
    bool path_style = false;
    aws_error err;
    aws_error_clear(&err);
    if (!aws_s3_bucket_url(url, bucket, (aws_s3_addressing)style, custom, out, cap, &path_style,
                           &err))
        return awscore_fail(L, &err);
    luaL_pushresultsize(&b, strlen(out));
    lua_pushboolean(L, path_style);
    return 2;
}

/* ---------------------------------------------------------------------------
 * retry policy
 * ------------------------------------------------------------------------- */

typedef struct retry_box {
    aws_retry_policy pol;
    double fixed_random;
} retry_box;

#define toretry(L) ((retry_box *)luaL_checkudata(L, 1, RETRY_MT))

static double fixed_random(void *ud)
{
    return *(const double *)ud;
}

/* retry_policy(opts) -> policy */
static int awscore_retry_policy(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    aws_retry_config cfg;
    aws_retry_config_init(&cfg);
    const char *mode = optfield(L, 1, "mode");
    if (mode && !aws_retry_mode_parse(mode, &cfg.mode))
        return luaL_error(L, "retry_policy: unknown mode '%s' (standard, adaptive or legacy)",
                          mode);
    lua_getfield(L, 1, "max_attempts");
    if (!lua_isnil(L, -1)) {
        int isnum;
        lua_Integer n = lua_tointegerx(L, -1, &isnum);
        if (!isnum || n < 1 || n > 100)
            return luaL_error(L, "retry_policy: max_attempts must be an integer 1..100");
        cfg.max_attempts = (int)n;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "max_backoff");
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1) || !(lua_tonumber(L, -1) > 0))
            return luaL_error(L, "retry_policy: max_backoff must be a positive number");
        cfg.max_backoff = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    cfg.new_retries = optbool(L, 1, "new_retries");
    retry_box *b = lua_newuserdatauv(L, sizeof *b, 1); /* 2 */
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, RETRY_MT);
    lua_getfield(L, 1, "service");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "retry_policy: service must be a string");
    cfg.service = lua_tostring(L, -1);
    lua_setiuservalue(L, 2, 1); /* keeps the service string alive */
    aws_error err;
    aws_error_clear(&err);
    if (!aws_retry_policy_init(&b->pol, &cfg, &err))
        return luaL_error(L, "retry_policy: %s", err.message);
    return 1;
}

static int check_class(lua_State *L, int arg)
{
    static const char *const names[] = {"none", "transient", "throttling", NULL};
    return luaL_checkoption(L, arg, NULL, names);
}

/* Reads an info table at idx into in (strings stay referenced by the table). */
static void read_info(lua_State *L, int idx, aws_retry_input *in, double *random, bool *has_random)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(in, 0, sizeof *in);
    lua_getfield(L, idx, "status");
    in->http_status = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    in->error_code = optfield(L, idx, "code");
    const char *transport = optfield(L, idx, "transport");
    if (transport) {
        if (strcmp(transport, "timeout") == 0)
            in->transport = AWS_ERR_TIMEOUT;
        else if (strcmp(transport, "http") == 0)
            in->transport = AWS_ERR_HTTP;
        else
            luaL_error(L, "info.transport must be \"http\" or \"timeout\"");
    }
    in->modeled_retryable = optbool(L, idx, "modeled_retryable");
    in->modeled_throttling = optbool(L, idx, "modeled_throttling");
    in->checksum_mismatch = optbool(L, idx, "checksum_mismatch");
    in->long_polling = optbool(L, idx, "long_polling");
    in->retry_after = optfield(L, idx, "retry_after");
    *has_random = false;
    lua_getfield(L, idx, "random");
    if (!lua_isnil(L, -1)) {
        double r = luaL_checknumber(L, -1);
        if (!(r >= 0 && r < 1))
            luaL_error(L, "info.random must be in [0, 1)");
        *random = r;
        *has_random = true;
    }
    lua_pop(L, 1);
}

/* policy:classify(info) -> class, is_timeout */
static int retry_classify(lua_State *L)
{
    retry_box *b = toretry(L);
    aws_retry_input in;
    double r;
    bool has_r;
    read_info(L, 2, &in, &r, &has_r);
    bool timeout = false;
    aws_retry_class c = aws_retry_classify(&in, b->pol.cfg.service, b->pol.cfg.new_retries,
                                           &timeout);
    lua_pushstring(L, aws_retry_class_name(c));
    lua_pushboolean(L, timeout);
    return 2;
}

static void read_token(lua_State *L, int idx, aws_retry_token *tok)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "attempts");
    tok->attempts = (int)luaL_optinteger(L, -1, 0);
    lua_getfield(L, idx, "cost");
    tok->cost = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 2);
}

static void write_token(lua_State *L, int idx, const aws_retry_token *tok)
{
    lua_pushinteger(L, tok->attempts);
    lua_setfield(L, idx, "attempts");
    lua_pushinteger(L, tok->cost);
    lua_setfield(L, idx, "cost");
}

/* policy:decide(token, info [, now]) -> decision */
static int retry_decide(lua_State *L)
{
    retry_box *b = toretry(L);
    aws_retry_token tok;
    read_token(L, 2, &tok);
    aws_retry_input in;
    bool has_r;
    read_info(L, 3, &in, &b->fixed_random, &has_r);
    double now = luaL_optnumber(L, 4, 0);
    double (*saved)(void *) = b->pol.cfg.random;
    void *saved_ud = b->pol.cfg.random_ud;
    if (has_r) {
        b->pol.cfg.random = fixed_random;
        b->pol.cfg.random_ud = &b->fixed_random;
    }
    aws_retry_decision d;
    aws_retry_decide(&b->pol, &tok, &in, now, &d);
    b->pol.cfg.random = saved;
    b->pol.cfg.random_ud = saved_ud;
    write_token(L, 2, &tok);
    lua_createtable(L, 0, 6);
    lua_pushboolean(L, d.retry);
    lua_setfield(L, -2, "retry");
    lua_pushnumber(L, d.delay);
    lua_setfield(L, -2, "delay");
    setstr(L, "class", aws_retry_class_name(d.klass));
    lua_pushboolean(L, d.is_timeout);
    lua_setfield(L, -2, "timeout");
    setstr(L, "reason", aws_retry_reason_name(d.reason));
    lua_pushinteger(L, d.cost);
    lua_setfield(L, -2, "cost");
    return 1;
}

/* policy:success(token) */
static int retry_success(lua_State *L)
{
    retry_box *b = toretry(L);
    aws_retry_token tok = {0};
    if (!lua_isnoneornil(L, 2))
        read_token(L, 2, &tok);
    aws_retry_on_success(&b->pol, &tok);
    if (!lua_isnoneornil(L, 2))
        write_token(L, 2, &tok);
    return 0;
}

static int retry_before_send(lua_State *L)
{
    retry_box *b = toretry(L);
    lua_pushnumber(L, aws_retry_before_send(&b->pol, luaL_checknumber(L, 2)));
    return 1;
}

static int retry_on_response(lua_State *L)
{
    retry_box *b = toretry(L);
    aws_retry_on_response(&b->pol, luaL_checknumber(L, 2), lua_toboolean(L, 3));
    return 0;
}

static int retry_quota(lua_State *L)
{
    lua_pushinteger(L, aws_retry_quota(&toretry(L)->pol));
    return 1;
}

static int retry_max_attempts(lua_State *L)
{
    lua_pushinteger(L, toretry(L)->pol.max_attempts);
    return 1;
}

static int retry_mode(lua_State *L)
{
    lua_pushstring(L, aws_retry_mode_name(toretry(L)->pol.cfg.mode));
    return 1;
}

static int retry_backoff(lua_State *L)
{
    retry_box *b = toretry(L);
    int c = check_class(L, 2);
    lua_Integer attempt = luaL_checkinteger(L, 3);
    double r = luaL_checknumber(L, 4);
    luaL_argcheck(L, attempt >= 1 && attempt <= 1000, 3, "attempt must be 1..1000");
    luaL_argcheck(L, r >= 0 && r <= 1, 4, "must be in [0, 1]");
    lua_pushnumber(L, aws_retry_backoff(&b->pol, (aws_retry_class)c, (int)attempt, r));
    return 1;
}

static int retry_tostring(lua_State *L)
{
    retry_box *b = toretry(L);
    lua_pushfstring(L, "<retry policy %s, %d attempts, quota %d%s>",
                    aws_retry_mode_name(b->pol.cfg.mode), b->pol.max_attempts, b->pol.quota,
                    b->pol.cfg.new_retries ? ", 2026 defaults" : "");
    return 1;
}

/* ---------------------------------------------------------------------------
 * SigV4
 * ------------------------------------------------------------------------- */

static int signbox_gc(lua_State *L)
{
    aws_sigv4_state *st = luaL_checkudata(L, 1, SIGN_BOX_MT);
    aws_sigv4_state_clean(st); /* idempotent */
    return 0;
}

/* Required string field of the opts table (idx); the message names the
 * field, never its value. */
static const char *reqfield(lua_State *L, int idx, const char *k)
{
    const char *s = optfield(L, idx, k);
    if (!s || !*s)
        luaL_error(L, "sign: '%s' is required", k);
    return s;
}

/* sign(request, opts) -> headers | query, details */
static int awscore_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    const char *method = reqfield(L, 1, "method");
    const char *url = reqfield(L, 1, "url");

    /* scheme://authority/path?query */
    const char *sep = strstr(url, "://");
    if (!sep || sep == url)
        return luaL_error(L, "sign: url must be absolute (scheme://host/...)");
    bool https = (size_t)(sep - url) == 5 && strncmp(url, "https", 5) == 0;
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?#");
    if (auth_len == 0)
        return luaL_error(L, "sign: url has no host");
    const char *rest = auth + auth_len;
    size_t path_len = strcspn(rest, "?#");
    lua_pushlstring(L, auth, auth_len);                           /* 3: authority */
    if (path_len)
        lua_pushlstring(L, rest, path_len);                       /* 4: path */
    else
        lua_pushliteral(L, "/");
    const char *q = rest[path_len] == '?' ? rest + path_len + 1 : NULL;
    if (q)
        lua_pushlstring(L, q, strcspn(q, "#"));                   /* 5: query */
    else
        lua_pushnil(L);
    /* Host: drop the default port */
    const char *host = lua_tostring(L, 3);
    size_t hl = auth_len;
    if ((https && hl > 4 && strcmp(host + hl - 4, ":443") == 0) ||
        (!https && hl > 3 && strcmp(host + hl - 3, ":80") == 0))
        lua_pushlstring(L, host, hl - (https ? 4 : 3));         /* 6: host header */
    else
        lua_pushvalue(L, 3);

    /* headers: 7 = the table, 8 = the array, 9 = strings converted from numbers */
    lua_getfield(L, 1, "headers");                                /* 7 */
    if (!lua_isnil(L, 7))
        luaL_checktype(L, 7, LUA_TTABLE);
    size_t nh = 1;
    if (lua_istable(L, 7)) {
        lua_pushnil(L);
        while (lua_next(L, 7)) {
            nh++;
            lua_pop(L, 1);
        }
    }
    aws_sigv4_header *hdrs = lua_newuserdatauv(L, sizeof *hdrs * nh, 0); /* 8 */
    lua_newtable(L);                                              /* 9 */
    size_t count = 0;
    lua_Integer anchored = 0;
    bool have_host = false;
    if (lua_istable(L, 7)) {
        lua_pushnil(L);
        while (lua_next(L, 7)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "sign: header names must be strings");
            if (lua_type(L, -1) == LUA_TNUMBER) {
                lua_tostring(L, -1); /* converts the value slot (not the key) in place */
                lua_pushvalue(L, -1);
                lua_rawseti(L, 9, ++anchored); /* keeps the string alive */
            } else if (lua_type(L, -1) != LUA_TSTRING) {
                return luaL_error(L, "sign: header '%s' must be a string", lua_tostring(L, -2));
            }
            if (count + 1 >= nh)
                return luaL_error(L, "sign: headers changed during signing");
            hdrs[count].name = lua_tostring(L, -2);
            hdrs[count].value = lua_tostring(L, -1);
            if (strcasecmp(hdrs[count].name, "host") == 0)
                have_host = true;
            count++;
            lua_pop(L, 1);
        }
    }
    if (!have_host)
        hdrs[count++] = (aws_sigv4_header){"Host", lua_tostring(L, 6)};

    aws_sigv4_request req = {0};
    req.method = method;
    req.path = lua_tostring(L, 4);
    req.query = lua_tostring(L, 5);
    req.headers = hdrs;
    req.header_count = count;
    const char *payload_hash = optfield(L, 1, "payload_hash");
    lua_getfield(L, 1, "body");                                   /* 10 */
    if (optbool(L, 1, "unsigned")) {
        req.payload_kind = AWS_SIGV4_PAYLOAD_UNSIGNED;
    } else if (payload_hash) {
        req.payload_kind = AWS_SIGV4_PAYLOAD_HASH;
        req.payload_hash = payload_hash;
    } else if (!lua_isnil(L, 10)) {
        if (lua_type(L, 10) != LUA_TSTRING)
            return luaL_error(L, "sign: body must be a string");
        req.payload = lua_tolstring(L, 10, &req.payload_len);
    }

    aws_sigv4_config cfg;
    if (optbool(L, 2, "s3"))
        aws_sigv4_config_init_s3(&cfg);
    else
        aws_sigv4_config_init(&cfg);
    cfg.access_key = reqfield(L, 2, "access_key");
    cfg.secret_key = reqfield(L, 2, "secret_key");
    cfg.session_token = optfield(L, 2, "session_token");
    cfg.region = reqfield(L, 2, "region");
    const char *service = optfield(L, 2, "service");
    if (service)
        cfg.service = service;
    if (!cfg.service || !*cfg.service)
        return luaL_error(L, "sign: 'service' is required");
    lua_getfield(L, 2, "time");
    int isnum;
    lua_Number t = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum)
        return luaL_error(L, "sign: 'time' (epoch seconds) is required");
    cfg.time = (int64_t)t;
    const char *alg = optfield(L, 2, "algorithm");
    if (alg && strcmp(alg, "v4a") == 0)
        cfg.algorithm = AWS_SIGV4A_ECDSA_P256;
    else if (alg && strcmp(alg, "v4") != 0)
        return luaL_error(L, "sign: algorithm must be \"v4\" or \"v4a\"");
    lua_getfield(L, 2, "expires");
    if (!lua_isnil(L, -1)) {
        cfg.mode = AWS_SIGV4_MODE_QUERY;
        cfg.expires = (int64_t)luaL_checkinteger(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "add_content_sha256");
    if (!lua_isnil(L, -1))
        cfg.add_content_sha256 = lua_toboolean(L, -1);
    lua_pop(L, 1);
    cfg.omit_session_token = optbool(L, 2, "omit_session_token");

    aws_sigv4_state *st = lua_newuserdatauv(L, sizeof *st, 0);    /* 11 */
    aws_sigv4_state_init(st);
    luaL_setmetatable(L, SIGN_BOX_MT);
    lua_toclose(L, 11);
    aws_error err;
    aws_error_clear(&err);
    if (!aws_sigv4_sign(&req, &cfg, st, &err))
        return luaL_error(L, "sign: %s", err.message);
    if (cfg.mode == AWS_SIGV4_MODE_QUERY) {
        lua_pushstring(L, st->query);
    } else {
        lua_createtable(L, 0, (int)st->header_count);
        for (size_t i = 0; i < st->header_count; i++) {
            lua_pushstring(L, st->headers[i].value);
            lua_setfield(L, -2, st->headers[i].name);
        }
    }
    lua_createtable(L, 0, 6);
    setstr(L, "canonical_request", st->canonical_request);
    setstr(L, "string_to_sign", st->string_to_sign);
    setstr(L, "signature", st->signature);
    setstr(L, "signed_headers", st->signed_headers);
    setstr(L, "scope", st->scope);
    setstr(L, "amz_date", st->amz_date);
    return 2; /* the state box is closed on return */
}

/* ---------------------------------------------------------------------------
 * module
 * ------------------------------------------------------------------------- */

static void createmeta(lua_State *L, const char *name, const luaL_Reg *meta,
                       const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

int luaopen_lumu__awscore(lua_State *L)
{
    static int s_alloc_set;
    if (!s_alloc_set) {
        json_set_alloc_funcs(lumu_json_malloc, lumu_free); /* same hooks as lumu._json */
        s_alloc_set = 1;
    }
    static const luaL_Reg configbox_meta[] = {
        {"__gc", configbox_gc}, {"__close", configbox_gc}, {NULL, NULL}};
    static const luaL_Reg endpoints_meta[] = {
        {"__gc", endpoints_gc}, {"__close", endpoints_gc}, {NULL, NULL}};
    static const luaL_Reg endpoints_methods[] = {
        {"resolve", endpoints_resolve}, {"partition", endpoints_partition}, {NULL, NULL}};
    static const luaL_Reg retry_meta[] = {{"__tostring", retry_tostring}, {NULL, NULL}};
    static const luaL_Reg retry_methods[] = {
        {"classify", retry_classify},       {"decide", retry_decide},
        {"success", retry_success},         {"before_send", retry_before_send},
        {"on_response", retry_on_response}, {"quota", retry_quota},
        {"max_attempts", retry_max_attempts}, {"mode", retry_mode},
        {"backoff", retry_backoff},         {NULL, NULL}};
    static const luaL_Reg wordsbox_meta[] = {
        {"__gc", wordsbox_gc}, {"__close", wordsbox_gc}, {NULL, NULL}};
    static const luaL_Reg signbox_meta[] = {
        {"__gc", signbox_gc}, {"__close", signbox_gc}, {NULL, NULL}};
    createmeta(L, CONFIG_BOX_MT, configbox_meta, NULL);
    createmeta(L, ENDPOINTS_MT, endpoints_meta, endpoints_methods);
    createmeta(L, RETRY_MT, retry_meta, retry_methods);
    createmeta(L, SIGN_BOX_MT, signbox_meta, NULL);
    createmeta(L, WORDS_BOX_MT, wordsbox_meta, NULL);
    static const luaL_Reg fns[] = {
        {"parse_config", awscore_parse_config},
        {"shlex", awscore_shlex},
        {"endpoints", awscore_endpoints},
        {"valid_region", awscore_valid_region},
        {"s3_bucket_url", awscore_s3_bucket_url},
        {"retry_policy", awscore_retry_policy},
        {"sign", awscore_sign},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
