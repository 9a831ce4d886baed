/*
 * host: state creation, library opening, the call helper, the tracking
 * allocator and the private `lumu._host` module.
 */
#include "host.h"
#include "embed.h"
#include "error.h" /* aws/: its allocator hook */
#include "pool.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Tracking allocator
 *
 * Lua's allocator knows the old size of every block, so Lua memory is counted
 * without a header.  lumu_malloc & co. (handed to jansson, expat and libcurl)
 * keep the size in a header in front of the block.
 * ------------------------------------------------------------------------- */

static int s_tracking;
static atomic_size_t s_bytes, s_blocks, s_peak, s_total;
static atomic_long s_fail_after; /* 0 = never fail */

typedef union {
    size_t size;
    max_align_t align;
} track_header;

void lumu_track_enable(long fail_after)
{
    static const aws_allocator aws_alloc = {lumu_malloc, lumu_realloc, lumu_free};
    if (!s_tracking)
        aws_set_allocator(&aws_alloc); /* aws/ memory is counted too */
    s_tracking = 1;
    atomic_store(&s_fail_after, fail_after);
}

int lumu_track_enabled(void)
{
    return s_tracking;
}

void lumu_track_stats(lumu_memstats *out)
{
    out->bytes = atomic_load(&s_bytes);
    out->blocks = atomic_load(&s_blocks);
    out->peak = atomic_load(&s_peak);
    out->total = atomic_load(&s_total);
}

/* True when this allocation must fail (fault injection). */
static int track_should_fail(void)
{
    long n = atomic_load(&s_fail_after);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&s_fail_after, &n, n - 1))
            return n == 1;
    }
    return 0;
}

static void track_add(size_t n)
{
    size_t now = atomic_fetch_add(&s_bytes, n) + n;
    size_t peak = atomic_load(&s_peak);
    while (now > peak && !atomic_compare_exchange_weak(&s_peak, &peak, now))
        ;
}

static void track_sub(size_t n)
{
    atomic_fetch_sub(&s_bytes, n);
}

static void *track_malloc(size_t n, int may_fail)
{
    if (!s_tracking)
        return malloc(n);
    if (n > SIZE_MAX - sizeof(track_header) || (may_fail && track_should_fail()))
        return NULL;
    track_header *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->size = n;
    track_add(n);
    atomic_fetch_add(&s_blocks, 1);
    atomic_fetch_add(&s_total, 1);
    return h + 1;
}

void *lumu_malloc(size_t n)
{
    return track_malloc(n, 1);
}

void lumu_free(void *p)
{
    if (!s_tracking) {
        free(p);
        return;
    }
    if (!p)
        return;
    track_header *h = (track_header *)p - 1;
    track_sub(h->size);
    atomic_fetch_sub(&s_blocks, 1);
    free(h);
}

void *lumu_realloc(void *p, size_t n)
{
    if (!s_tracking)
        return realloc(p, n);
    if (!p)
        return lumu_malloc(n);
    if (n > SIZE_MAX - sizeof(track_header) || track_should_fail())
        return NULL;
    track_header *h = (track_header *)p - 1;
    size_t old = h->size;
    track_header *nh = realloc(h, sizeof *nh + n);
    if (!nh)
        return NULL;
    nh->size = n;
    track_sub(old);
    track_add(n);
    atomic_fetch_add(&s_total, 1);
    return nh + 1;
}

/* jansson's hook.  jansson 2.14 cannot cope with a NULL from its allocator
 * while it lexes: lex_save() (src/load.c) drops strbuffer_append_byte()'s
 * failure, so a token whose buffer could not grow is kept truncated, without
 * its closing quote, and lex_scan_string() then reads past the end of the
 * buffer looking for it (a segfault under LUMU_FAIL_ALLOC; an assertion in
 * lex_unget_unsave() on other inputs).  So jansson's allocations are counted
 * but never fail by injection; a real out-of-memory still returns NULL, as
 * plain malloc would. */
void *lumu_json_malloc(size_t n)
{
    return track_malloc(n, 0);
}

char *lumu_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = lumu_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ud: the state's pool (pool.h), or NULL for plain malloc. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    if (nsize == 0) {
        if (ptr && s_tracking) {
            track_sub(osize);
            atomic_fetch_sub(&s_blocks, 1);
        }
        if (ud)
            return lumu_pool_alloc(ud, ptr, osize, 0);
        free(ptr);
        return NULL;
    }
    if (s_tracking && track_should_fail())
        return NULL;
    void *np = ud ? lumu_pool_alloc(ud, ptr, osize, nsize) : realloc(ptr, nsize);
    if (np && s_tracking) {
        if (ptr) {
            track_sub(osize);
        } else {
            atomic_fetch_add(&s_blocks, 1);
        }
        track_add(nsize);
        atomic_fetch_add(&s_total, 1);
    }
    return np;
}

/* Warnings (lauxlib's scheme): off until "@on" (the -W switch); a message
 * may come in pieces (tocont). */
static void warn_off(void *ud, const char *msg, int tocont);
static void warn_on(void *ud, const char *msg, int tocont);
static void warn_cont(void *ud, const char *msg, int tocont);

static int warn_control(lua_State *L, const char *msg, int tocont)
{
    if (tocont || *msg++ != '@')
        return 0;
    if (strcmp(msg, "off") == 0)
        lua_setwarnf(L, warn_off, L);
    else if (strcmp(msg, "on") == 0)
        lua_setwarnf(L, warn_on, L);
    return 1;
}

static void warn_off(void *ud, const char *msg, int tocont)
{
    warn_control((lua_State *)ud, msg, tocont);
}

static void warn_cont(void *ud, const char *msg, int tocont)
{
    lua_State *L = ud;
    fputs(msg, stderr);
    if (tocont) {
        lua_setwarnf(L, warn_cont, L);
    } else {
        fputs("\n", stderr);
        lua_setwarnf(L, warn_on, L);
    }
}

static void warn_on(void *ud, const char *msg, int tocont)
{
    if (warn_control((lua_State *)ud, msg, tocont))
        return;
    fputs("Lua warning: ", stderr);
    warn_cont(ud, msg, tocont);
}

static int l_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "lumu: internal error: unprotected error in call to Lua API (%s)\n",
            msg ? msg : "error object is not a string");
    return 0; /* Lua aborts */
}

lua_State *lumu_newstate(void)
{
    /* jansson is used by several modules and by aws/: one allocator for all
     * of it, set before anything allocates a json_t. */
    static int s_json_hooked;
    if (!s_json_hooked) {
        json_set_alloc_funcs(lumu_json_malloc, lumu_free);
        s_json_hooked = 1;
    }
    lumu_pool *pool = lumu_pool_new(); /* NULL: plain malloc */
    /* without tracking (set before any state exists), the pool directly */
    lua_State *L = lua_newstate(pool && !s_tracking ? lumu_pool_alloc : l_alloc, pool);
    if (pool)
        lumu_pool_release(pool); /* now it goes with the state's last block */
    if (L) {
        lua_atpanic(L, l_panic);
        lua_setwarnf(L, warn_off, L); /* off until -W */
    }
    return L;
}

/* ---------------------------------------------------------------------------
 * Calls into Lua: traceback and Ctrl-C (lua.c docall/msghandler/laction)
 * ------------------------------------------------------------------------- */

static lua_State *volatile s_interruptible; /* state running lumu_docall */
static volatile sig_atomic_t s_interrupted;  /* Ctrl-C seen, not yet handled */
static int s_docall_depth;
static void (*s_outer_handler)(int) = SIG_DFL; /* SIGINT before the outermost call */

int lumu_interrupted(void)
{
    return s_interrupted != 0;
}

void lumu_clear_interrupt(void)
{
    s_interrupted = 0;
}

static void l_stop(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    s_interrupted = 0;
    luaL_error(L, "interrupted!");
}

static void l_action(int sig)
{
    signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
    s_interrupted = 1;
    lua_State *L = s_interruptible;
    if (L)
        lua_sethook(L, l_stop, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

int lumu_msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1; /* the error object has its own text */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int lumu_docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, lumu_msghandler);
    lua_insert(L, base);
    lua_State *prev = s_interruptible;
    s_interruptible = L;
    /* Arm on every call: a Ctrl-C caught by an outer call resets SIGINT to
     * the default, and the next nested chunk must still be interruptible. */
    void (*prev_handler)(int) = signal(SIGINT, l_action);
    if (s_docall_depth++ == 0)
        s_outer_handler = prev_handler == SIG_ERR ? SIG_DFL : prev_handler;
    int status = lua_pcall(L, narg, nres, base);
    if (--s_docall_depth == 0) {
        signal(SIGINT, s_outer_handler);
        lua_sethook(L, NULL, 0, 0); /* a Ctrl-C that came too late */
        s_interrupted = 0;
    } else {
        signal(SIGINT, l_action); /* the outer call stays interruptible */
    }
    s_interruptible = prev;
    lua_remove(L, base);
    return status;
}

/* ---------------------------------------------------------------------------
 * lumu._host
 * ------------------------------------------------------------------------- */

/* docall(f, ...) -> true, results... | false, message-with-traceback */
static int host_docall(lua_State *L)
{
    luaL_checkany(L, 1);
    int n = lua_gettop(L) - 1;
    int status = lumu_docall(L, n, LUA_MULTRET);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/* memstats() -> {bytes=, blocks=, peak=, total=, tracking=} */
static int host_memstats(lua_State *L)
{
    lumu_memstats st;
    lumu_track_stats(&st);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)st.bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, (lua_Integer)st.blocks);
    lua_setfield(L, -2, "blocks");
    lua_pushinteger(L, (lua_Integer)st.peak);
    lua_setfield(L, -2, "peak");
    lua_pushinteger(L, (lua_Integer)st.total);
    lua_setfield(L, -2, "total");
    lua_pushboolean(L, s_tracking);
    lua_setfield(L, -2, "tracking");
    return 1;
}

/* embedded() -> { "lumu.cli", ... } in build order */
static int host_embedded(lua_State *L)
{
    lua_newtable(L);
    for (int i = 0; lumu_stdlib[i].name; i++) {
        lua_pushstring(L, lumu_stdlib[i].name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* embedded_source(name) -> chunk, chunkname | nil: the embedded module's
 * precompiled chunk (Lua bytecode with debug info, see cmake/embedgen.c) */
static int host_embedded_source(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (int i = 0; lumu_stdlib[i].name; i++)
        if (strcmp(lumu_stdlib[i].name, name) == 0) {
            lua_pushlstring(L, (const char *)lumu_stdlib[i].data,
                            (size_t)lumu_stdlib[i].size);
            lua_pushstring(L, lumu_stdlib[i].chunk);
            return 2;
        }
    lua_pushnil(L);
    return 1;
}

/* isatty(fd) -> boolean; fd 0, 1 or 2 */
static int host_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "expected 0, 1 or 2");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

/* setwarn(on): the -W switch */
static int host_setwarn(lua_State *L)
{
    lua_warning(L, lua_toboolean(L, 1) ? "@on" : "@off", 0);
    return 0;
}

int luaopen_lumu__host(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"docall", host_docall},
        {"memstats", host_memstats},
        {"embedded", host_embedded},
        {"embedded_source", host_embedded_source},
        {"isatty", host_isatty},
        {"setwarn", host_setwarn},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    const char *dir = getenv("LUMU_STDLIB");
    if (dir && *dir)
        lua_pushstring(L, dir);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, "stdlib_dir");
    lua_pushliteral(L, LUMU_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}

/* ---------------------------------------------------------------------------
 * Library opening
 * ------------------------------------------------------------------------- */

static const luaL_Reg s_cmodules[] = {
#define LUMU_MODULE(name, opener) {name, opener},
#include "modules.def"
#undef LUMU_MODULE
    {NULL, NULL}};

/* Loader for an embedded module: upvalue 1 is the entry (light userdata).
 * The entry is bytecode compiled at build time by cmake/embedgen.c (with debug
 * information): mode "b", for these built-in chunks only.
 * [-0, +1, e] */
static int embed_loader(lua_State *L)
{
    const lumu_embed_entry *e = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbufferx(L, (const char *)e->data, (size_t)e->size, e->chunk, "b") !=
        LUA_OK)
        return luaL_error(L, "error loading module '%s' from stdlib:\n\t%s", e->name,
                          lua_tostring(L, -1));
    lua_pushstring(L, e->name);
    lua_pushstring(L, e->chunk + 1);
    lua_call(L, 2, 1);
    return 1;
}

/* Prepends prefix to package[field].  [-0, +0, e] */
static void prepend_path(lua_State *L, int pkg, const char *field, const char *prefix)
{
    lua_getfield(L, pkg, field);
    const char *old = lua_tostring(L, -1);
    lua_pushfstring(L, "%s;%s", prefix, old ? old : "");
    lua_setfield(L, pkg, field);
    lua_pop(L, 1);
}

/* Finds ./lua_modules in the current directory or a parent and adds its
 * LuaRocks tree to package.path/cpath.  [-0, +0, e] */
static void add_lua_modules(lua_State *L, int pkg)
{
    char dir[PATH_MAX];
    if (!getcwd(dir, sizeof dir - 16))
        return;
    for (;;) {
        size_t len = strlen(dir);
        char probe[PATH_MAX + 16];
        struct stat st;
        snprintf(probe, sizeof probe, "%s/lua_modules", strcmp(dir, "/") ? dir : "");
        if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) {
            lua_pushfstring(L, "%s/share/lua/" LUA_VERSION_MAJOR "." LUA_VERSION_MINOR
                               "/?.lua;%s/share/lua/" LUA_VERSION_MAJOR
                               "." LUA_VERSION_MINOR "/?/init.lua",
                            probe, probe);
            prepend_path(L, pkg, "path", lua_tostring(L, -1));
            lua_pop(L, 1);
            lua_pushfstring(L, "%s/lib/lua/" LUA_VERSION_MAJOR "." LUA_VERSION_MINOR "/?.so",
                            probe);
            prepend_path(L, pkg, "cpath", lua_tostring(L, -1));
            lua_pop(L, 1);
            lua_pushstring(L, probe);
            lua_setfield(L, pkg, "lumu_modules_tree");
            return;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || len <= 1)
            return;
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
}

/* type(v), as the base library's, but pushing the type name from an
 * upvalue: the base library pushes it from its C string, which costs a
 * string-cache lookup and a strcmp per call, and lumu's Lua calls type()
 * tens of thousands of times in one synth.  [-0, +1, v] */
static int fast_type(lua_State *L)
{
    int t = lua_type(L, 1);
    luaL_argcheck(L, t != LUA_TNONE, 1, "value expected");
    lua_pushvalue(L, lua_upvalueindex(t + 1));
    return 1;
}

/* Replaces the global type with fast_type.  [-0, +0, m] */
static void install_fast_type(lua_State *L)
{
    for (int t = LUA_TNIL; t < LUA_NUMTYPES; t++)
        lua_pushstring(L, lua_typename(L, t));
    lua_pushcclosure(L, fast_type, LUA_NUMTYPES);
    lua_setglobal(L, "type");
}

void lumu_openlibs(lua_State *L, int noenv)
{
    if (noenv) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    install_fast_type(L);
    lua_getglobal(L, LUA_LOADLIBNAME);
    int pkg = lua_gettop(L);
    lua_getfield(L, pkg, "preload");
    int preload = lua_gettop(L);

    for (const luaL_Reg *m = s_cmodules; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, preload, m->name);
    }

    const char *dev = getenv("LUMU_STDLIB");
    if (dev && *dev) {
        /* development: the stdlib comes from disk, first on package.path */
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dev, dev);
        prepend_path(L, pkg, "path", lua_tostring(L, -1));
        lua_pop(L, 1);
    } else {
        for (int i = 0; lumu_stdlib[i].name; i++) {
            lua_pushlightuserdata(L, (void *)&lumu_stdlib[i]);
            lua_pushcclosure(L, embed_loader, 1);
            lua_setfield(L, preload, lumu_stdlib[i].name);
        }
    }
    add_lua_modules(L, pkg);
    lua_pop(L, 2);
}
