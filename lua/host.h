/*
 * host: the Lua state lumu runs in.
 *
 * Creating the state (optionally with the tracking allocator), opening the
 * standard libraries plus lumu's C modules and embedded stdlib, and the one
 * call helper every entry into Lua goes through (traceback message handler,
 * Ctrl-C turned into an "interrupted!" error).
 */
#ifndef LUMU_HOST_H
#define LUMU_HOST_H

#include <lua.h>
#include <stddef.h>

/* Exit codes, shared with stdlib/lumu/cli.lua. */
enum {
    LUMU_EXIT_OK = 0,
    LUMU_EXIT_FAILURE = 1,
    LUMU_EXIT_USAGE = 2,
    LUMU_EXIT_INTERNAL = 3
};

/* Counters of the tracking allocator (process-wide). */
typedef struct lumu_memstats {
    size_t bytes;      /* bytes outstanding now */
    size_t blocks;     /* blocks outstanding now */
    size_t peak;       /* highest `bytes` seen */
    size_t total;      /* allocations made */
} lumu_memstats;

/* Turns the tracking allocator on for every state created afterwards and for
 * the C libraries that accept allocator hooks (jansson, expat, libcurl).
 * Call before anything else, once.  fail_after > 0 makes the Nth allocation
 * from then on fail (fault injection for tests). */
void lumu_track_enable(long fail_after);
int lumu_track_enabled(void);
void lumu_track_stats(lumu_memstats *out);

/* malloc-family functions that go through the tracker when it is enabled;
 * C modules hand these to libraries that take allocator hooks. */
void *lumu_malloc(size_t n);
void *lumu_realloc(void *p, size_t n);
void lumu_free(void *p);
char *lumu_strdup(const char *s);

/* jansson's malloc hook (with lumu_free): tracked like lumu_malloc but never
 * failed by fault injection, because jansson 2.14's lexer reads out of
 * bounds after a failed allocation (see host.c). */
void *lumu_json_malloc(size_t n);

/* A new state with lumu's allocator and panic handler; NULL on no memory. */
lua_State *lumu_newstate(void);

/* Opens the standard libraries, registers lumu's C modules and the embedded
 * stdlib in package.preload, and adds ./lua_modules (or a parent's) to
 * package.path/cpath.  Sets LUA_NOENV first when noenv is true.  May raise;
 * call from inside a protected call.  [-0, +0, e] */
void lumu_openlibs(lua_State *L, int noenv);

/* Calls the function below the narg arguments on top of the stack with a
 * traceback message handler and Ctrl-C interruption enabled for the duration
 * of the call.  Same results as lua_pcall. */
int lumu_docall(lua_State *L, int narg, int nres);

/* True after Ctrl-C during lumu_docall until the "interrupted!" error is
 * raised.  The hook only fires in the thread that called lumu_docall, so C
 * code that blocks or runs coroutines (the http poller) checks this flag and
 * raises luaL_error(L, "interrupted!") itself, after lumu_clear_interrupt(). */
int lumu_interrupted(void);
void lumu_clear_interrupt(void);

/* Message handler that appends a traceback (lua.c msghandler). */
int lumu_msghandler(lua_State *L);

/* Openers of the C modules listed in modules.def. */
#define LUMU_MODULE(name, opener) int opener(lua_State *L);
#include "modules.def"
#undef LUMU_MODULE

#endif
