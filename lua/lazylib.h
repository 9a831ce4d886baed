/*
 * lazylib: the big shared libraries lumu uses (libcurl, libarchive,
 * libcrypto, libedit) are not linked into the binary but loaded with dlopen on
 * first use, by their Debian SONAME, so that `lumu -e ''` does not pay for
 * loading and relocating ~40 libraries it does not need.
 *
 * One file per library (lua/lazy_curl.c, lazy_archive.c, lazy_crypto.c,
 * lazy_edit.c) includes the library's own header and DEFINES each function
 * lumu calls, with the header's exact prototype (so the compiler checks
 * them), forwarding to the real symbol.  Call sites do not change.  Every
 * symbol of a library is resolved when the library is loaded, so a missing
 * library or symbol is known before anything is called.  The definitions are
 * hidden: the binary is linked with -Wl,-E, and exported copies would
 * interpose on the libraries' own calls (libssl calling EVP_*, ...).
 *
 * Callers check availability at their entry points, where they can report an
 * error the normal way:
 *   - Lua bindings: lumu_lazy_check(L, &lumu_lazy_curl) raises
 *     "libcurl.so.4 not available: <dlerror() text>";
 *   - aws/: lumu_lazy_load(&lumu_lazy_crypto, &why) and an aws_error.
 * Calling a shim of a library that is not available is a bug in lumu: it
 * prints one line ("lumu: internal error: ...") and aborts.
 *
 * LUMU_LAZY_DISABLE (testing): a list of library words ("curl", "archive",
 * "crypto", "edit", or "all"; separated by commas or spaces) that are treated
 * as missing, with "disabled by LUMU_LAZY_DISABLE" as the reason.  Read once,
 * at the library's first use.
 *
 * Thread-safe: the first load is done under a mutex, later calls read an
 * atomic flag.  Libraries are never unloaded.
 */
#ifndef LUMU_LAZYLIB_H
#define LUMU_LAZYLIB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct lumu_lazylib {
    const char *word;            /* name in LUMU_LAZY_DISABLE: "curl" */
    const char *soname;          /* what dlopen is given: "libcurl.so.4" */
    const char *const *symbols;  /* functions and variables used by lumu */
    void **addrs;                /* their addresses, filled by the load */
    size_t count;
    atomic_int state;            /* LUMU_LAZY_UNTRIED, _LOADED or _FAILED */
    char why[320];               /* "<soname> not available: <reason>" once failed */
} lumu_lazylib;

enum { LUMU_LAZY_UNTRIED = 0, LUMU_LAZY_LOADED, LUMU_LAZY_FAILED };

extern lumu_lazylib lumu_lazy_curl;    /* libcurl.so.4 */
extern lumu_lazylib lumu_lazy_archive; /* libarchive.so.13 */
extern lumu_lazylib lumu_lazy_crypto;  /* libcrypto.so.3 */
extern lumu_lazylib lumu_lazy_edit;    /* libedit.so.2 */

/* Loads lib (first call only) and resolves all its symbols.  Returns 1 when
 * it is usable; otherwise 0 and, if why is not NULL, *why = a static
 * "<soname> not available: <reason>" message. */
int lumu_lazy_load(lumu_lazylib *lib, const char **why);

/* Address of the symbol called name (one of lib->symbols), loading lib;
 * NULL when lib is not available or name is not in its list. */
void *lumu_lazy_sym(lumu_lazylib *lib, const char *name);

/* Loads lib or prints "lumu: internal error: <why>" and aborts: for the
 * shims, which cannot report errors.  Returns lib->addrs. */
void **lumu_lazy_need(lumu_lazylib *lib);

/* Raises the Lua error "<soname> not available: <reason>" unless lib loads.
 * [-0, +0, v] */
struct lua_State;
void lumu_lazy_check(struct lua_State *L, lumu_lazylib *lib);

/* ---------------------------------------------------------------------------
 * For the lazy_*.c files: LUMU_LAZY_DEFINE(var, word, soname, LIST) defines
 * the lumu_lazylib `var` from LIST, an X-macro of the symbol names; then
 * LUMU_LAZY_FN(var, name) is the symbol `name` as a pointer of the header's
 * type, ready to call.
 * ------------------------------------------------------------------------- */
#define LUMU_LAZY_ENUM_(name) LUMU_LAZY_I_##name,
#define LUMU_LAZY_NAME_(name) #name,
#define LUMU_LAZY_DEFINE(var, word, soname, LIST)                                        \
    enum { LIST(LUMU_LAZY_ENUM_) LUMU_LAZY_COUNT_ };                                     \
    static const char *const lumu_lazy_names_[] = {LIST(LUMU_LAZY_NAME_)};               \
    static void *lumu_lazy_addrs_[LUMU_LAZY_COUNT_];                                     \
    lumu_lazylib var = {word, soname, lumu_lazy_names_, lumu_lazy_addrs_,                \
                        LUMU_LAZY_COUNT_, LUMU_LAZY_UNTRIED, ""}

static inline void **lumu_lazy_addrs(lumu_lazylib *lib)
{
    if (atomic_load_explicit(&lib->state, memory_order_acquire) == LUMU_LAZY_LOADED)
        return lib->addrs;
    return lumu_lazy_need(lib);
}

#define LUMU_LAZY_FN(var, name) ((__typeof__(&name))lumu_lazy_addrs(&var)[LUMU_LAZY_I_##name])

/* Shim definitions are hidden (see above). */
#define LUMU_LAZY_SHIM __attribute__((visibility("hidden")))

#endif
