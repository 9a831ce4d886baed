/* error: see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const errcode_names[AWS_ERR__COUNT] = {
    [AWS_ERR_NONE] = "ok",
    [AWS_ERR_INVALID_ARG] = "invalid_argument",
    [AWS_ERR_NO_MEMORY] = "no_memory",
    [AWS_ERR_CRYPTO] = "crypto",
    [AWS_ERR_PARSE] = "parse",
    [AWS_ERR_IO] = "io",
    [AWS_ERR_HTTP] = "http",
    [AWS_ERR_TIMEOUT] = "timeout",
    [AWS_ERR_CREDENTIALS] = "credentials",
    [AWS_ERR_SERVICE] = "service",
    [AWS_ERR_UNSUPPORTED] = "unsupported",
    [AWS_ERR_INTERNAL] = "internal",
};

const char *aws_errcode_name(aws_errcode code)
{
    if ((unsigned)code >= AWS_ERR__COUNT)
        return "unknown";
    return errcode_names[code];
}

void aws_error_clear(aws_error *e)
{
    if (!e)
        return;
    e->code = AWS_ERR_NONE;
    e->http_status = 0;
    e->retryable = false;
    e->message[0] = '\0';
    e->aws_code[0] = '\0';
    e->request_id[0] = '\0';
}

static void copy_field(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

bool aws_error_set(aws_error *e, aws_errcode code, const char *fmt, ...)
{
    if (!e)
        return false;
    aws_error_clear(e);
    e->code = code;
    e->retryable = code == AWS_ERR_HTTP || code == AWS_ERR_TIMEOUT;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    return false;
}

bool aws_error_set_service(aws_error *e, int http_status, const char *aws_code,
                           const char *message, const char *request_id, bool retryable)
{
    if (!e)
        return false;
    aws_error_clear(e);
    e->code = AWS_ERR_SERVICE;
    e->http_status = http_status;
    e->retryable = retryable;
    copy_field(e->message, sizeof e->message, message);
    copy_field(e->aws_code, sizeof e->aws_code, aws_code);
    copy_field(e->request_id, sizeof e->request_id, request_id);
    return false;
}

bool aws_error_oom(aws_error *e)
{
    return aws_error_set(e, AWS_ERR_NO_MEMORY, "out of memory");
}

char *aws_error_format(const aws_error *e, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    if (!e) {
        buf[0] = '\0';
        return buf;
    }
    size_t used = 0;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        if (used < n) {                                                                            \
            int k_ = snprintf(buf + used, n - used, __VA_ARGS__);                                  \
            if (k_ > 0)                                                                            \
                used += (size_t)k_;                                                                \
        }                                                                                          \
    } while (0)
    APPEND("%s", aws_errcode_name(e->code));
    if (e->message[0])
        APPEND(": %s", e->message);
    if (e->aws_code[0])
        APPEND(" [%s]", e->aws_code);
    if (e->http_status || e->request_id[0]) {
        APPEND(" (");
        if (e->http_status)
            APPEND("HTTP %d%s", e->http_status, e->request_id[0] ? ", " : "");
        if (e->request_id[0])
            APPEND("request id %s", e->request_id);
        APPEND(")");
    }
#undef APPEND
    return buf;
}

/* ------------------------------------------------------------------------ */

static aws_allocator current_allocator = {malloc, realloc, free};

void aws_set_allocator(const aws_allocator *a)
{
    if (a && a->malloc_fn && a->realloc_fn && a->free_fn)
        current_allocator = *a;
    else
        current_allocator = (aws_allocator){malloc, realloc, free};
}

void *aws_malloc(size_t n)
{
    return current_allocator.malloc_fn(n ? n : 1);
}

void *aws_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t total = count * size;
    void *p = aws_malloc(total);
    if (p)
        memset(p, 0, total > 0 ? total : 1);
    return p;
}

void *aws_realloc(void *p, size_t n)
{
    return current_allocator.realloc_fn(p, n ? n : 1);
}

void aws_free(void *p)
{
    if (p)
        current_allocator.free_fn(p);
}

char *aws_strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = aws_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *aws_strdup(const char *s)
{
    return s ? aws_strndup(s, strlen(s)) : NULL;
}

static bool snippet_blank(unsigned char c)
{
    return c <= ' ' || c == 0x7f;
}

char *aws_error_snippet(char *dst, size_t n, const char *body, size_t len, size_t max)
{
    if (n == 0)
        return dst;
    if (max > n - 1 || n - 1 - max < 3)
        max = n > 4 ? n - 4 : 0; /* room for "..." and the NUL */
    size_t o = 0, i = 0;
    bool space = false;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (snippet_blank(c)) {
            space = o > 0;
            continue;
        }
        if (o + (space ? 1 : 0) >= max)
            break;
        if (space)
            dst[o++] = ' ';
        space = false;
        dst[o++] = (char)c;
    }
    while (i < len && snippet_blank((unsigned char)body[i]))
        i++;
    if (i < len) { /* cut: not inside a UTF-8 sequence, then "..." */
        size_t k = o;
        while (k > 0 && ((unsigned char)dst[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && (unsigned char)dst[k - 1] >= 0xC0) {
            size_t need = (unsigned char)dst[k - 1] >= 0xF0 ? 4 : (unsigned char)dst[k - 1] >= 0xE0 ? 3 : 2;
            if (o - (k - 1) < need)
                o = k - 1;
        }
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}
