/*
 * lazylib: loading libcurl, libarchive, libcrypto and libedit on first use
 * (see lazylib.h).
 */
#include "lazylib.h"

#include <lauxlib.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

/* True when word is in the LUMU_LAZY_DISABLE list (or the list has "all"). */
static int lazy_disabled(const char *word)
{
    const char *list = getenv("LUMU_LAZY_DISABLE");
    if (!list)
        return 0;
    size_t wlen = strlen(word);
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ", \t");
        if ((n == wlen && memcmp(p, word, n) == 0) || (n == 3 && memcmp(p, "all", 3) == 0))
            return 1;
        p += n;
        p += strspn(p, ", \t");
    }
    return 0;
}

/* Records why lib cannot be used.  Called with s_lock held. */
static void lazy_fail(lumu_lazylib *lib, const char *reason)
{
    snprintf(lib->why, sizeof lib->why, "%s not available: %s", lib->soname,
             reason && *reason ? reason : "unknown error");
    atomic_store_explicit(&lib->state, LUMU_LAZY_FAILED, memory_order_release);
}

/* The first load of lib.  Called with s_lock held. */
static void lazy_open(lumu_lazylib *lib)
{
    if (lazy_disabled(lib->word)) {
        lazy_fail(lib, "disabled by LUMU_LAZY_DISABLE");
        return;
    }
    dlerror(); /* clear */
    void *h = dlopen(lib->soname, RTLD_LAZY | RTLD_LOCAL);
    if (!h) {
        lazy_fail(lib, dlerror());
        return;
    }
    for (size_t i = 0; i < lib->count; i++) {
        dlerror();
        void *p = dlsym(h, lib->symbols[i]);
        const char *err = dlerror();
        if (err || !p) {
            char reason[256];
            if (err)
                snprintf(reason, sizeof reason, "%s", err);
            else
                snprintf(reason, sizeof reason, "symbol %s is NULL", lib->symbols[i]);
            lazy_fail(lib, reason);
            dlclose(h);
            return;
        }
        lib->addrs[i] = p;
    }
    /* h stays open for the life of the process */
    atomic_store_explicit(&lib->state, LUMU_LAZY_LOADED, memory_order_release);
}

int lumu_lazy_load(lumu_lazylib *lib, const char **why)
{
    int st = atomic_load_explicit(&lib->state, memory_order_acquire);
    if (st == LUMU_LAZY_UNTRIED) {
        pthread_mutex_lock(&s_lock);
        if (atomic_load_explicit(&lib->state, memory_order_acquire) == LUMU_LAZY_UNTRIED)
            lazy_open(lib);
        pthread_mutex_unlock(&s_lock);
        st = atomic_load_explicit(&lib->state, memory_order_acquire);
    }
    if (st == LUMU_LAZY_LOADED)
        return 1;
    if (why)
        *why = lib->why;
    return 0;
}

void *lumu_lazy_sym(lumu_lazylib *lib, const char *name)
{
    if (!lumu_lazy_load(lib, NULL))
        return NULL;
    for (size_t i = 0; i < lib->count; i++)
        if (strcmp(lib->symbols[i], name) == 0)
            return lib->addrs[i];
    return NULL;
}

void **lumu_lazy_need(lumu_lazylib *lib)
{
    const char *why;
    if (!lumu_lazy_load(lib, &why)) {
        /* a caller skipped its availability check: a bug, and no way to
         * report an error from inside the library's own API */
        fprintf(stderr, "lumu: internal error: %s\n", why);
        abort();
    }
    return lib->addrs;
}

void lumu_lazy_check(lua_State *L, lumu_lazylib *lib)
{
    const char *why;
    if (!lumu_lazy_load(lib, &why))
        luaL_error(L, "%s", why);
}
