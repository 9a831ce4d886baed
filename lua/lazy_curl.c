/*
 * lazy_curl: the libcurl functions lumu uses, forwarded to libcurl.so.4 loaded
 * on first use (see lazylib.h).  Callers check lumu_lazy_load(&lumu_lazy_curl)
 * / lumu_lazy_check first (lua/l_http.c does).
 *
 * The variadic setters are forwarded by the option's type range (curl.h
 * CURLOPTTYPE_*), curl_easy_getinfo by its argument, which is always a
 * pointer.  curl's typecheck macros would rename these functions: off here.
 */
#define CURL_DISABLE_TYPECHECK
#include "lazylib.h"

#include <curl/curl.h>

#include <stdarg.h>

#define CURL_SYMBOLS(X)                                                                  \
    X(curl_easy_cleanup)                                                                 \
    X(curl_easy_getinfo)                                                                 \
    X(curl_easy_init)                                                                    \
    X(curl_easy_setopt)                                                                  \
    X(curl_easy_strerror)                                                                \
    X(curl_free)                                                                         \
    X(curl_global_cleanup)                                                               \
    X(curl_global_init_mem)                                                              \
    X(curl_multi_add_handle)                                                             \
    X(curl_multi_cleanup)                                                                \
    X(curl_multi_info_read)                                                              \
    X(curl_multi_init)                                                                   \
    X(curl_multi_perform)                                                                \
    X(curl_multi_poll)                                                                   \
    X(curl_multi_remove_handle)                                                          \
    X(curl_multi_setopt)                                                                 \
    X(curl_multi_strerror)                                                               \
    X(curl_slist_append)                                                                 \
    X(curl_slist_free_all)                                                               \
    X(curl_url)                                                                          \
    X(curl_url_cleanup)                                                                  \
    X(curl_url_get)                                                                      \
    X(curl_url_set)                                                                      \
    X(curl_url_strerror)                                                                 \
    X(curl_version)

LUMU_LAZY_DEFINE(lumu_lazy_curl, "curl", "libcurl.so.4", CURL_SYMBOLS);

#define FN(name) LUMU_LAZY_FN(lumu_lazy_curl, name)

/* The argument of an option of type range `option`, read from ap and passed
 * on with its own type.  [CURLOPTTYPE_LONG, +10000) long, OBJECTPOINT (also
 * STRINGPOINT, SLISTPOINT, CBPOINT) a data pointer, FUNCTIONPOINT a function
 * pointer, OFF_T curl_off_t, BLOB struct curl_blob *. */
#define FORWARD_BY_TYPE(call, option, ap)                                                \
    do {                                                                                 \
        if ((option) < CURLOPTTYPE_OBJECTPOINT)                                          \
            return call(va_arg(ap, long));                                               \
        if ((option) < CURLOPTTYPE_FUNCTIONPOINT)                                        \
            return call(va_arg(ap, void *));                                             \
        if ((option) < CURLOPTTYPE_OFF_T)                                                \
            return call(va_arg(ap, void (*)(void)));                                     \
        if ((option) < CURLOPTTYPE_BLOB)                                                 \
            return call(va_arg(ap, curl_off_t));                                         \
        return call(va_arg(ap, struct curl_blob *));                                     \
    } while (0)

/* ------------------------------------------------------------------------- */

LUMU_LAZY_SHIM CURL *curl_easy_init(void)
{
    return FN(curl_easy_init)();
}

LUMU_LAZY_SHIM void curl_easy_cleanup(CURL *curl)
{
    FN(curl_easy_cleanup)(curl);
}

static CURLcode easy_setopt_va(CURL *curl, CURLoption option, va_list ap)
{
#define CALL(arg) FN(curl_easy_setopt)(curl, option, arg)
    FORWARD_BY_TYPE(CALL, (int)option, ap);
#undef CALL
}

LUMU_LAZY_SHIM CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    va_list ap;
    va_start(ap, option);
    CURLcode rc = easy_setopt_va(curl, option, ap);
    va_end(ap);
    return rc;
}

LUMU_LAZY_SHIM CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
    va_list ap;
    va_start(ap, info);
    void *out = va_arg(ap, void *); /* char **, long *, double *, curl_off_t *, ... */
    va_end(ap);
    return FN(curl_easy_getinfo)(curl, info, out);
}

LUMU_LAZY_SHIM const char *curl_easy_strerror(CURLcode code)
{
    return FN(curl_easy_strerror)(code);
}

LUMU_LAZY_SHIM void curl_free(void *p)
{
    FN(curl_free)(p);
}

LUMU_LAZY_SHIM CURLcode curl_global_init_mem(long flags, curl_malloc_callback m,
                                             curl_free_callback f, curl_realloc_callback r,
                                             curl_strdup_callback s, curl_calloc_callback c)
{
    return FN(curl_global_init_mem)(flags, m, f, r, s, c);
}

LUMU_LAZY_SHIM void curl_global_cleanup(void)
{
    FN(curl_global_cleanup)();
}

LUMU_LAZY_SHIM CURLM *curl_multi_init(void)
{
    return FN(curl_multi_init)();
}

LUMU_LAZY_SHIM CURLMcode curl_multi_add_handle(CURLM *multi_handle, CURL *curl_handle)
{
    return FN(curl_multi_add_handle)(multi_handle, curl_handle);
}

LUMU_LAZY_SHIM CURLMcode curl_multi_remove_handle(CURLM *multi_handle, CURL *curl_handle)
{
    return FN(curl_multi_remove_handle)(multi_handle, curl_handle);
}

LUMU_LAZY_SHIM CURLMcode curl_multi_poll(CURLM *multi_handle, struct curl_waitfd extra_fds[],
                                         unsigned int extra_nfds, int timeout_ms, int *ret)
{
    return FN(curl_multi_poll)(multi_handle, extra_fds, extra_nfds, timeout_ms, ret);
}

LUMU_LAZY_SHIM CURLMcode curl_multi_perform(CURLM *multi_handle, int *running_handles)
{
    return FN(curl_multi_perform)(multi_handle, running_handles);
}

LUMU_LAZY_SHIM CURLMcode curl_multi_cleanup(CURLM *multi_handle)
{
    return FN(curl_multi_cleanup)(multi_handle);
}

LUMU_LAZY_SHIM CURLMsg *curl_multi_info_read(CURLM *multi_handle, int *msgs_in_queue)
{
    return FN(curl_multi_info_read)(multi_handle, msgs_in_queue);
}

LUMU_LAZY_SHIM const char *curl_multi_strerror(CURLMcode code)
{
    return FN(curl_multi_strerror)(code);
}

static CURLMcode multi_setopt_va(CURLM *multi, CURLMoption option, va_list ap)
{
#define CALL(arg) FN(curl_multi_setopt)(multi, option, arg)
    FORWARD_BY_TYPE(CALL, (int)option, ap);
#undef CALL
}

LUMU_LAZY_SHIM CURLMcode curl_multi_setopt(CURLM *multi_handle, CURLMoption option, ...)
{
    va_list ap;
    va_start(ap, option);
    CURLMcode rc = multi_setopt_va(multi_handle, option, ap);
    va_end(ap);
    return rc;
}

LUMU_LAZY_SHIM struct curl_slist *curl_slist_append(struct curl_slist *list, const char *data)
{
    return FN(curl_slist_append)(list, data);
}

LUMU_LAZY_SHIM void curl_slist_free_all(struct curl_slist *list)
{
    FN(curl_slist_free_all)(list);
}

LUMU_LAZY_SHIM CURLU *curl_url(void)
{
    return FN(curl_url)();
}

LUMU_LAZY_SHIM void curl_url_cleanup(CURLU *handle)
{
    FN(curl_url_cleanup)(handle);
}

LUMU_LAZY_SHIM CURLUcode curl_url_get(CURLU *handle, CURLUPart what, char **part,
                                      unsigned int flags)
{
    return FN(curl_url_get)(handle, what, part, flags);
}

LUMU_LAZY_SHIM CURLUcode curl_url_set(CURLU *handle, CURLUPart what, const char *part,
                                      unsigned int flags)
{
    return FN(curl_url_set)(handle, what, part, flags);
}

LUMU_LAZY_SHIM const char *curl_url_strerror(CURLUcode code)
{
    return FN(curl_url_strerror)(code);
}

LUMU_LAZY_SHIM char *curl_version(void)
{
    return FN(curl_version)();
}
