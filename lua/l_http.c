/*
 * lumu._http: HTTP requests over one libcurl multi handle per Lua state.
 *
 * The private C core of lumu.http and lumu.async (see stdlib/lumu/http.lua
 * for the public API).  Functions:
 *
 *   request(opts) -> Request      starts a transfer (added to the multi)
 *   poll(timeout_ms) -> {Request...}
 *                                 drives the transfers; waits at most
 *                                 timeout_ms when none finished; returns the
 *                                 requests that finished (possibly empty)
 *   pending() -> n                transfers in flight
 *   now() -> seconds              monotonic clock
 *   error_kind(curl_code) -> kind the classification used for errors
 *   version() -> string           libcurl's version string
 *
 * Request methods: done() -> bool, result() -> response | nil, err,
 * close() (cancels a running transfer, frees the buffers; also __close/__gc).
 *
 * Ownership: the multi handle is a userdata in the registry (with __gc); it
 * keeps a list of the running requests and, in its user value, a weak table
 * lightuserdata(request) -> Request userdata so poll can return the Lua
 * objects.  A request owns its easy handle, header list and buffers; the
 * easy handle is released as soon as the transfer finishes (connections stay
 * in the multi's cache for keep-alive).  libcurl callbacks only copy bytes
 * into buffers and never touch Lua.
 *
 * libcurl.so.4 is loaded on the first request() or version() (lazylib.h),
 * which raise "libcurl.so.4 not available: <reason>" without it; poll() and
 * pending() work without it while no request was made (timers in lumu.async).
 */
#include "host.h"
#include "lazylib.h"

#include <lauxlib.h>

#include <curl/curl.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define HTTP_REQUEST_MT "lumu.http.Request"
#define HTTP_MULTI_MT "lumu.http.Multi"

#define HTTP_DEFAULT_MAX_BODY ((lua_Integer)256 * 1024 * 1024)
#define HTTP_MAX_HEAD_BYTES ((size_t)256 * 1024) /* all response headers (curl: 300 KiB) */
#define HTTP_DEFAULT_TIMEOUT_MS 60000L
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define HTTP_MAX_METHOD 32

static const char s_multi_key = 'm'; /* registry[&s_multi_key] = Multi */

/* ---------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------- */

typedef struct http_buf {
    char *data;
    size_t len, cap;
} http_buf;

enum {
    REQ_RUNNING, /* in the multi */
    REQ_DONE,    /* finished; results below are valid */
    REQ_CLOSED   /* closed or cancelled; buffers freed */
};

enum {
    FAIL_NONE,
    FAIL_BODY_TOO_LARGE,
    FAIL_HEAD_TOO_LARGE,
    FAIL_NOMEM
};

typedef struct http_multi http_multi;

typedef struct http_req {
    int state;
    int cancelled;          /* closed while running */
    int fail;               /* FAIL_*: why a callback aborted the transfer */
    CURL *easy;             /* NULL once finished or closed */
    struct curl_slist *headers;
    http_multi *multi;      /* owner while running, else NULL */
    struct http_req *prev, *next; /* the multi's list of running requests */
    http_buf body, head;
    curl_off_t max_body;
    /* results, set when the transfer finishes */
    CURLcode code;
    long status;
    long http_version;
    long num_connects;
    curl_off_t total_us, connect_us;
    char errbuf[CURL_ERROR_SIZE];
} http_req;

struct http_multi {
    CURLM *multi;
    http_req *running; /* doubly linked */
    int nrunning;
};

#define check_req(L, i) ((http_req *)luaL_checkudata(L, i, HTTP_REQUEST_MT))

/* ---------------------------------------------------------------------------
 * libcurl global state: initialised with lumu's allocator when the first
 * multi handle is created, cleaned up when the last one is collected (so the
 * tracking allocator sees every byte returned at exit).
 * ------------------------------------------------------------------------- */

static int s_curl_users;

static void *http_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = lumu_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

/* ---------------------------------------------------------------------------
 * Buffers and callbacks (no Lua in here)
 * ------------------------------------------------------------------------- */

/* Appends n bytes; 0 on success, -1 when out of memory. */
static int buf_add(http_buf *b, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > SIZE_MAX - b->len)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        char *nd = lumu_realloc(b->data, cap);
        if (!nd)
            return -1;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static void buf_free(http_buf *b)
{
    lumu_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_req *r = ud;
    size_t n = size * nmemb;
    if ((curl_off_t)n > r->max_body - (curl_off_t)r->body.len) {
        r->fail = FAIL_BODY_TOO_LARGE;
        return CURL_WRITEFUNC_ERROR;
    }
    if (buf_add(&r->body, ptr, n) != 0) {
        r->fail = FAIL_NOMEM;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_req *r = ud;
    size_t n = size * nmemb;
    /* A new status line starts a new header block (1xx, CONNECT). */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        r->head.len = 0;
    if (n > HTTP_MAX_HEAD_BYTES - r->head.len) {
        r->fail = FAIL_HEAD_TOO_LARGE;
        return CURL_WRITEFUNC_ERROR;
    }
    if (buf_add(&r->head, ptr, n) != 0) {
        r->fail = FAIL_NOMEM;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

/* ---------------------------------------------------------------------------
 * Request life cycle (no Lua in here)
 * ------------------------------------------------------------------------- */

static void req_unlink(http_req *r)
{
    http_multi *m = r->multi;
    if (!m)
        return;
    curl_multi_remove_handle(m->multi, r->easy);
    if (r->prev)
        r->prev->next = r->next;
    else
        m->running = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->multi = NULL;
    m->nrunning--;
}

static void req_release_easy(http_req *r)
{
    req_unlink(r);
    if (r->easy) {
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
}

/* Records the outcome of a finished transfer and releases the easy handle. */
static void req_finish(http_req *r, CURLcode code)
{
    r->code = code;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &r->http_version);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &r->num_connects);
    curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &r->total_us);
    curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &r->connect_us);
    req_release_easy(r);
    r->state = REQ_DONE;
}

/* Idempotent: cancels a running transfer and frees everything. */
static void req_close(http_req *r)
{
    if (r->state == REQ_RUNNING)
        r->cancelled = 1;
    req_release_easy(r);
    buf_free(&r->body);
    buf_free(&r->head);
    r->state = REQ_CLOSED;
}

/* ---------------------------------------------------------------------------
 * The multi handle
 * ------------------------------------------------------------------------- */

static int multi_gc(lua_State *L)
{
    http_multi *m = luaL_checkudata(L, 1, HTTP_MULTI_MT);
    if (!m->multi)
        return 0;
    while (m->running) {
        http_req *r = m->running;
        req_release_easy(r); /* unlinks */
        r->cancelled = 1;
        r->state = REQ_DONE;
        r->code = CURLE_ABORTED_BY_CALLBACK;
    }
    curl_multi_cleanup(m->multi);
    m->multi = NULL;
    if (--s_curl_users == 0)
        curl_global_cleanup();
    return 0;
}

/* Pushes this state's Multi userdata, creating it on first use when create
 * is true (libcurl must be loaded); otherwise pushes nil and returns NULL
 * when there is none yet.  [-0, +1, e] */
static http_multi *push_multi(lua_State *L, int create)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &s_multi_key) == LUA_TUSERDATA)
        return lua_touserdata(L, -1);
    if (!create)
        return NULL;
    lua_pop(L, 1);
    http_multi *m = lua_newuserdatauv(L, sizeof *m, 1);
    memset(m, 0, sizeof *m);
    if (luaL_newmetatable(L, HTTP_MULTI_MT)) {
        lua_pushcfunction(L, multi_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "private");
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
    /* user value 1: lightuserdata(request) -> Request, weak values */
    lua_createtable(L, 0, 4);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, -2, 1);
    if (s_curl_users == 0 &&
        curl_global_init_mem(CURL_GLOBAL_DEFAULT, lumu_malloc, lumu_free, lumu_realloc,
                             lumu_strdup, http_calloc) != CURLE_OK)
        luaL_error(L, "http: cannot initialise libcurl");
    s_curl_users++;
    m->multi = curl_multi_init();
    if (!m->multi) {
        /* the userdata's __gc runs with m->multi == NULL: undo the count here */
        if (--s_curl_users == 0)
            curl_global_cleanup();
        luaL_error(L, "http: cannot create a libcurl multi handle");
    }
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 32L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &s_multi_key);
    return m;
}

/* ---------------------------------------------------------------------------
 * Building a request
 * ------------------------------------------------------------------------- */

/* Raises the argument error for a curl_easy_setopt failure. */
static void setopt_check(lua_State *L, CURLcode rc, const char *what)
{
    if (rc != CURLE_OK)
        luaL_error(L, "http: cannot set %s: %s", what, curl_easy_strerror(rc));
}

#define SETOPT(L, r, opt, val) setopt_check(L, curl_easy_setopt((r)->easy, opt, val), #opt)

static int is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* True when s (len bytes) equals the lowercase ASCII name, ignoring case. */
static int name_is(const char *s, size_t len, const char *lower)
{
    size_t n = strlen(lower);
    if (len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (c != lower[i])
            return 0;
    }
    return 1;
}

/* opts[field] as a string or NULL; raises if present with another type.
 * [-0, +0, e] */
static const char *opt_string(lua_State *L, int opts, const char *field, size_t *len)
{
    int t = lua_getfield(L, opts, field);
    const char *s = NULL;
    if (t == LUA_TSTRING) {
        s = lua_tolstring(L, -1, len);
    } else if (t != LUA_TNIL) {
        lua_pushfstring(L, "'%s' must be a string, not %s", field, luaL_typename(L, -1));
        luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    lua_pop(L, 1); /* the string stays alive in opts */
    return s;
}

/* opts[field] in seconds as milliseconds, or def; raises on bad values.
 * [-0, +0, e] */
static long opt_ms(lua_State *L, int opts, const char *field, long def)
{
    int t = lua_getfield(L, opts, field);
    long ms = def;
    if (t != LUA_TNIL) {
        int isnum;
        lua_Number s = lua_tonumberx(L, -1, &isnum);
        if (!isnum || t != LUA_TNUMBER || !(s >= 0) || s > (lua_Number)(LONG_MAX / 1000) / 2) {
            lua_pushfstring(L, "'%s' must be a non-negative number of seconds", field);
            luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        ms = (long)(s * 1000.0 + 0.5);
        if (ms == 0 && s > 0)
            ms = 1; /* 0 means "no timeout" to libcurl */
    }
    lua_pop(L, 1);
    return ms;
}

/* Validates opts.url: a well-formed http or https URL.  [-0, +0, e] */
static const char *check_url(lua_State *L, int opts)
{
    size_t len;
    const char *url = opt_string(L, opts, "url", &len);
    if (!url) {
        luaL_argerror(L, 1, "'url' is required");
        return NULL; /* not reached */
    }
    if (strlen(url) != len)
        luaL_argerror(L, 1, "malformed URL (contains a NUL byte)");
    char why[160];
    why[0] = '\0';
    CURLU *u = curl_url();
    if (!u)
        luaL_error(L, "not enough memory");
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OUT_OF_MEMORY) {
        curl_url_cleanup(u);
        luaL_error(L, "not enough memory");
    }
    if (rc != CURLUE_OK) {
        snprintf(why, sizeof why, "malformed URL (%s)", curl_url_strerror(rc));
    } else {
        char *scheme = NULL;
        rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        if (rc != CURLUE_OK || !scheme)
            snprintf(why, sizeof why, "malformed URL (no scheme)");
        else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
            snprintf(why, sizeof why, "unsupported URL scheme '%.32s' (http or https)", scheme);
        curl_free(scheme);
    }
    curl_url_cleanup(u);
    if (why[0])
        luaL_argerror(L, 1, why);
    return url;
}

/* Adds opts.headers to r->headers.  Returns flags: 1 Content-Type given,
 * 2 Expect given.  [-0, +0, e] */
static int add_headers(lua_State *L, http_req *r, int opts)
{
    int flags = 0;
    int t = lua_getfield(L, opts, "headers");
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TTABLE)
        luaL_argerror(L, 1, "'headers' must be a table of name -> value");
    int hdrs = lua_gettop(L);
    luaL_checkstack(L, 4, NULL);
    lua_pushnil(L);
    while (lua_next(L, hdrs)) {
        size_t nlen, vlen;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 1, "header names must be strings");
        const char *name = lua_tolstring(L, -2, &nlen);
        if (!is_token(name, nlen)) {
            lua_pushfstring(L, "invalid header name '%s'", name);
            luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER) {
            lua_pushfstring(L, "header '%s' must be a string or number, not %s", name,
                            luaL_typename(L, -1));
            luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        lua_pushvalue(L, -1); /* do not convert the key's neighbour in place */
        const char *value = lua_tolstring(L, -1, &vlen);
        for (size_t i = 0; i < vlen; i++)
            if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0') {
                lua_pushfstring(L, "header '%s' contains a CR, LF or NUL byte", name);
                luaL_argerror(L, 1, lua_tostring(L, -1));
            }
        if (name_is(name, nlen, "content-type"))
            flags |= 1;
        if (name_is(name, nlen, "expect"))
            flags |= 2;
        /* "Name;" sends an empty header; "Name:" would remove it */
        if (vlen == 0)
            lua_pushfstring(L, "%s;", name);
        else
            lua_pushfstring(L, "%s: %s", name, value);
        struct curl_slist *nl = curl_slist_append(r->headers, lua_tostring(L, -1));
        if (!nl)
            luaL_error(L, "not enough memory");
        r->headers = nl;
        lua_pop(L, 3); /* line, value copy, value */
    }
    lua_pop(L, 1); /* headers */
    return flags;
}

/* Appends a fixed header line.  [-0, +0, e] */
static void add_header_line(lua_State *L, http_req *r, const char *line)
{
    struct curl_slist *nl = curl_slist_append(r->headers, line);
    if (!nl)
        luaL_error(L, "not enough memory");
    r->headers = nl;
}

static int req_gc(lua_State *L);
static int req_tostring(lua_State *L);
static int req_done(lua_State *L);
static int req_result(lua_State *L);

/* Pushes a new, closed Request userdata with its metatable.  [-0, +1, e] */
static http_req *new_request(lua_State *L)
{
    http_req *r = lua_newuserdatauv(L, sizeof *r, 2);
    memset(r, 0, sizeof *r);
    r->state = REQ_CLOSED;
    if (luaL_newmetatable(L, HTTP_REQUEST_MT)) {
        static const luaL_Reg meta[] = {
            {"__gc", req_gc}, {"__close", req_gc}, {"__tostring", req_tostring}, {NULL, NULL}};
        static const luaL_Reg methods[] = {{"done", req_done},
                                           {"result", req_result},
                                           {"close", req_gc},
                                           {"cancel", req_gc},
                                           {NULL, NULL}};
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    return r;
}

/* request(opts) -> Request.  Raises on misuse (bad options, malformed URL).
 * [-0, +1, e] */
static int http_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lumu_lazy_check(L, &lumu_lazy_curl);
    lua_settop(L, 1);
    const char *url = check_url(L, 1);
    size_t mlen = 0, blen = 0;
    const char *method = opt_string(L, 1, "method", &mlen);
    if (!method) {
        method = "GET";
        mlen = 3;
    }
    if (mlen > HTTP_MAX_METHOD || !is_token(method, mlen))
        luaL_argerror(L, 1, "'method' must be an HTTP token such as GET");
    int bt = lua_getfield(L, 1, "body");
    if (bt != LUA_TNIL && bt != LUA_TSTRING)
        luaL_argerror(L, 1, "'body' must be a string");
    const char *body = lua_tolstring(L, -1, &blen); /* stays at index 2 */
    long timeout = opt_ms(L, 1, "timeout", HTTP_DEFAULT_TIMEOUT_MS);
    long connect_timeout = opt_ms(L, 1, "connect_timeout", HTTP_DEFAULT_CONNECT_TIMEOUT_MS);
    const char *cainfo = opt_string(L, 1, "cainfo", NULL);
    const char *proxy = opt_string(L, 1, "proxy", NULL);
    const char *noproxy = opt_string(L, 1, "noproxy", NULL);
    lua_Integer max_body = HTTP_DEFAULT_MAX_BODY;
    int mt = lua_getfield(L, 1, "max_body");
    if (mt != LUA_TNIL) {
        int isint;
        max_body = lua_tointegerx(L, -1, &isint);
        if (mt != LUA_TNUMBER || !isint || max_body < 0)
            luaL_argerror(L, 1, "'max_body' must be a non-negative integer (bytes)");
    }
    lua_pop(L, 1);
    int verify = 1;
    int vt = lua_getfield(L, 1, "verify");
    if (vt != LUA_TNIL && vt != LUA_TBOOLEAN)
        luaL_argerror(L, 1, "'verify' must be a boolean");
    if (vt == LUA_TBOOLEAN)
        verify = lua_toboolean(L, -1);
    lua_pop(L, 1);

    http_multi *m = push_multi(L, 1); /* index 3 */
    http_req *r = new_request(L); /* index 4; owns everything from here */
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 4, 1); /* the body string, used in place by libcurl */
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, 4, 2); /* the multi outlives its requests */

    r->easy = curl_easy_init();
    if (!r->easy)
        return luaL_error(L, "http: cannot create a libcurl easy handle");
    r->max_body = (curl_off_t)max_body;
    SETOPT(L, r, CURLOPT_URL, url);
    SETOPT(L, r, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(L, r, CURLOPT_NOSIGNAL, 1L);
    SETOPT(L, r, CURLOPT_PRIVATE, (void *)r);
    SETOPT(L, r, CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(L, r, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(L, r, CURLOPT_WRITEDATA, (void *)r);
    SETOPT(L, r, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(L, r, CURLOPT_HEADERDATA, (void *)r);
    SETOPT(L, r, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SETOPT(L, r, CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(L, r, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
    SETOPT(L, r, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(L, r, CURLOPT_USERAGENT, "lumu/" LUMU_VERSION);
    SETOPT(L, r, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body);
    SETOPT(L, r, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    SETOPT(L, r, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (cainfo)
        SETOPT(L, r, CURLOPT_CAINFO, cainfo);
    /* proxies are explicit: "" keeps libcurl from reading the environment */
    SETOPT(L, r, CURLOPT_PROXY, proxy ? proxy : "");
    SETOPT(L, r, CURLOPT_NOPROXY, noproxy ? noproxy : "");

    char mbuf[HTTP_MAX_METHOD + 1];
    memcpy(mbuf, method, mlen);
    mbuf[mlen] = '\0';
    int wants_body = body || strcmp(mbuf, "POST") == 0 || strcmp(mbuf, "PUT") == 0 ||
                     strcmp(mbuf, "PATCH") == 0;
    if (strcmp(mbuf, "HEAD") == 0 && blen == 0) {
        /* a HEAD response has no body whatever its Content-Length says; an
         * empty request body (the AWS client's "") is no body either */
        SETOPT(L, r, CURLOPT_NOBODY, 1L);
    } else if (wants_body) {
        SETOPT(L, r, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
        SETOPT(L, r, CURLOPT_POSTFIELDS, body ? body : "");
        if (strcmp(mbuf, "POST") != 0)
            SETOPT(L, r, CURLOPT_CUSTOMREQUEST, mbuf);
    } else if (strcmp(mbuf, "GET") == 0) {
        SETOPT(L, r, CURLOPT_HTTPGET, 1L);
    } else {
        SETOPT(L, r, CURLOPT_CUSTOMREQUEST, mbuf);
    }

    int given = add_headers(L, r, 1);
    if (!(given & 2))
        add_header_line(L, r, "Expect:"); /* no 100-continue round trip */
    if (wants_body && !(given & 1))
        add_header_line(L, r, "Content-Type:"); /* no form-urlencoded default */
    SETOPT(L, r, CURLOPT_HTTPHEADER, r->headers);

    CURLMcode mc = curl_multi_add_handle(m->multi, r->easy);
    if (mc != CURLM_OK)
        return luaL_error(L, "http: cannot start the request: %s", curl_multi_strerror(mc));
    r->multi = m;
    r->next = m->running;
    if (m->running)
        m->running->prev = r;
    m->running = r;
    m->nrunning++;
    r->state = REQ_RUNNING;

    lua_getiuservalue(L, 3, 1); /* the weak map */
    lua_pushvalue(L, 4);
    lua_rawsetp(L, -2, r);
    lua_pop(L, 1);
    return 1;
}

/* ---------------------------------------------------------------------------
 * Polling
 * ------------------------------------------------------------------------- */

/* Moves finished transfers to REQ_DONE and appends their userdata to the
 * list at index out.  [-0, +0, e] */
static int collect(lua_State *L, http_multi *m, int weak, int out, int n)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        void *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        http_req *r = priv;
        if (!r || r->state != REQ_RUNNING)
            continue;
        req_finish(r, msg->data.result); /* msg is invalid from here */
        if (lua_rawgetp(L, weak, r) == LUA_TUSERDATA) {
            lua_rawseti(L, out, ++n);
            lua_pushnil(L);
            lua_rawsetp(L, weak, r);
        } else {
            lua_pop(L, 1); /* collected: its __gc frees it */
        }
    }
    return n;
}

/* Sleeps ms milliseconds, or less when Ctrl-C (lumu_interrupted) comes. */
static void wait_ms(lua_Integer ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR && !lumu_interrupted())
        ;
}

/* Raises "interrupted!" after Ctrl-C, else returns 1 (the result on top).
 * [-0, +0, v] */
static int check_interrupt(lua_State *L)
{
    if (lumu_interrupted()) {
        lumu_clear_interrupt();
        return luaL_error(L, "interrupted!");
    }
    return 1;
}

/* poll([timeout_ms]) -> list of finished requests.  Raises "interrupted!"
 * after Ctrl-C.  [-0..1, +1, e] */
static int http_poll(lua_State *L)
{
    lua_Integer t = luaL_optinteger(L, 1, 0);
    luaL_argcheck(L, t >= 0, 1, "timeout must be >= 0 (milliseconds)");
    if (t > INT_MAX)
        t = INT_MAX;
    lua_settop(L, 0);
    http_multi *m = push_multi(L, 0); /* 1 */
    if (!m) {
        /* no request was ever made: nothing to drive, only the wait */
        wait_ms(t);
        lua_newtable(L);
        return check_interrupt(L);
    }
    lua_getiuservalue(L, 1, 1);    /* 2: weak map */
    lua_newtable(L);               /* 3: results */
    int running = 0, n = 0;
    CURLMcode mc = curl_multi_perform(m->multi, &running);
    if (mc != CURLM_OK)
        return luaL_error(L, "http: %s", curl_multi_strerror(mc));
    n = collect(L, m, 2, 3, n);
    if (n == 0 && t > 0) {
        mc = curl_multi_poll(m->multi, NULL, 0, (int)t, NULL);
        if (mc != CURLM_OK)
            return luaL_error(L, "http: %s", curl_multi_strerror(mc));
        if (!lumu_interrupted()) {
            mc = curl_multi_perform(m->multi, &running);
            if (mc != CURLM_OK)
                return luaL_error(L, "http: %s", curl_multi_strerror(mc));
            n = collect(L, m, 2, 3, n);
        }
    }
    /* curl is between calls: nothing to undo; transfers stay in the multi
     * until their requests are closed or collected */
    return check_interrupt(L);
}

/* pending() -> number of transfers in flight */
static int http_pending(lua_State *L)
{
    http_multi *m = push_multi(L, 0);
    lua_pushinteger(L, m ? m->nrunning : 0);
    return 1;
}

/* now() -> monotonic seconds (float) */
static int http_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static const char *kind_of(CURLcode code)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "dns";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return "tls";
    case CURLE_FILESIZE_EXCEEDED:
        return "too_large";
    case CURLE_ABORTED_BY_CALLBACK:
        return "aborted";
    default:
        return "other";
    }
}

/* error_kind(curl_code) -> kind string */
static int http_error_kind(lua_State *L)
{
    lua_pushstring(L, kind_of((CURLcode)luaL_checkinteger(L, 1)));
    return 1;
}

static int http_version(lua_State *L)
{
    lumu_lazy_check(L, &lumu_lazy_curl);
    lua_pushstring(L, curl_version());
    return 1;
}

/* ---------------------------------------------------------------------------
 * Request methods
 * ------------------------------------------------------------------------- */

static int req_gc(lua_State *L)
{
    req_close(check_req(L, 1));
    return 0;
}

static int req_tostring(lua_State *L)
{
    http_req *r = check_req(L, 1);
    const char *st = r->state == REQ_RUNNING ? "running"
                     : r->state == REQ_DONE  ? "done"
                                             : "closed";
    lua_pushfstring(L, "lumu.http.Request (%s) %p", st, (void *)r);
    return 1;
}

/* done() -> true when the transfer finished (or was closed) */
static int req_done(lua_State *L)
{
    lua_pushboolean(L, check_req(L, 1)->state != REQ_RUNNING);
    return 1;
}

/* Sets t[field] = integer.  [-0, +0, e] */
static void set_int(lua_State *L, int t, const char *field, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, t, field);
}

/* Pushes the error table {kind=, message=, curl_code=}.  [-0, +1, e] */
static void push_error(lua_State *L, const char *kind, const char *message, int code)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    set_int(L, lua_gettop(L), "curl_code", code);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parses the header block into a table of lowercase name -> value, joining
 * repeated names with ", ".  [-0, +1, e] */
static void push_headers(lua_State *L, const char *p, size_t len)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    luaL_checkstack(L, 6, NULL);
    const char *end = p + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        if (!eol)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && colon > p && !(end - p >= 5 && memcmp(p, "HTTP/", 5) == 0) &&
            !is_ows(*p)) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && is_ows(*v))
                v++;
            while (ve > v && is_ows(ve[-1]))
                ve--;
            luaL_Buffer b;
            char *lower = luaL_buffinitsize(L, &b, (size_t)(colon - p));
            for (size_t i = 0; i < (size_t)(colon - p); i++) {
                char c = p[i];
                lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
            }
            luaL_pushresultsize(&b, (size_t)(colon - p)); /* name */
            lua_pushvalue(L, -1);
            if (lua_rawget(L, t) == LUA_TSTRING) { /* repeated: old .. ", " .. new */
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3); /* name, joined */
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v)); /* name, value */
            }
            lua_rawset(L, t); /* t[name] = value */
        }
        p = next;
    }
}

/* result() -> response | nil, err.  Raises if the transfer is still running
 * or the request was closed after finishing.  [-0, +1|2, e] */
static int req_result(lua_State *L)
{
    http_req *r = check_req(L, 1);
    if (r->state == REQ_RUNNING)
        return luaL_error(L, "http: request is still running");
    if (r->state == REQ_CLOSED) {
        if (!r->cancelled)
            return luaL_error(L, "http: request is closed");
        lua_pushnil(L);
        push_error(L, "aborted", "request cancelled", CURLE_ABORTED_BY_CALLBACK);
        return 2;
    }
    if (r->code != CURLE_OK || r->fail != FAIL_NONE) {
        char msg[CURL_ERROR_SIZE + 96];
        const char *kind = kind_of(r->code);
        if (r->fail == FAIL_BODY_TOO_LARGE || r->code == CURLE_FILESIZE_EXCEEDED) {
            kind = "too_large";
            snprintf(msg, sizeof msg, "response body exceeds max_body (%lld bytes)",
                     (long long)r->max_body);
        } else if (r->fail == FAIL_HEAD_TOO_LARGE) {
            kind = "too_large";
            snprintf(msg, sizeof msg, "response headers exceed %zu bytes", HTTP_MAX_HEAD_BYTES);
        } else if (r->fail == FAIL_NOMEM) {
            kind = "other";
            snprintf(msg, sizeof msg, "not enough memory for the response");
        } else if (r->cancelled) {
            kind = "aborted";
            snprintf(msg, sizeof msg, "request cancelled");
        } else {
            snprintf(msg, sizeof msg, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->code));
        }
        lua_pushnil(L);
        push_error(L, kind, msg, (int)r->code);
        return 2;
    }
    lua_createtable(L, 0, 7);
    int t = lua_gettop(L);
    set_int(L, t, "status", r->status);
    push_headers(L, r->head.data ? r->head.data : "", r->head.len);
    lua_setfield(L, t, "headers");
    lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
    lua_setfield(L, t, "body");
    const char *ver = r->http_version == CURL_HTTP_VERSION_1_0   ? "1.0"
                      : r->http_version == CURL_HTTP_VERSION_1_1 ? "1.1"
                      : r->http_version == CURL_HTTP_VERSION_2_0 ? "2"
                      : r->http_version == CURL_HTTP_VERSION_3   ? "3"
                                                                 : "?";
    lua_pushstring(L, ver);
    lua_setfield(L, t, "http_version");
    lua_pushnumber(L, (lua_Number)r->total_us / 1e6);
    lua_setfield(L, t, "total_time");
    if (r->connect_us > 0) {
        lua_pushnumber(L, (lua_Number)r->connect_us / 1e6);
        lua_setfield(L, t, "connect_time");
    }
    lua_pushboolean(L, r->num_connects == 0);
    lua_setfield(L, t, "reused");
    return 1;
}

int luaopen_lumu__http(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"request", http_request},
        {"poll", http_poll},
        {"pending", http_pending},
        {"now", http_now},
        {"error_kind", http_error_kind},
        {"version", http_version},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushinteger(L, HTTP_DEFAULT_MAX_BODY);
    lua_setfield(L, -2, "DEFAULT_MAX_BODY");
    return 1;
}
