/*
 * error: the error object of the pure-C AWS core (aws/), and its allocator.
 *
 * Convention for every aws/ function that can fail:
 *
 *   - it returns bool (true = success) or a pointer (NULL = failure), and
 *   - takes `aws_error *err` as its LAST parameter.  err may be NULL (the
 *     caller does not care why); otherwise on failure it is filled with a
 *     code != AWS_ERR_NONE and a message, and on success it is left untouched.
 *   - on failure the function has released everything it acquired; output
 *     objects are left in their "empty" state (safe to clean up again).
 *
 * The struct has fixed-size buffers so that reporting an error never
 * allocates (and so can never fail): messages longer than the buffer are
 * truncated.  No thread-local "last error": the object travels with the call
 * (aws-c-common docs/error-handling.md, "in hindsight").
 *
 * The binding layer (lua/) turns an aws_error into a Lua error value exactly
 * once; aws/ itself never includes Lua headers.
 */
#ifndef LUMU_AWS_ERROR_H
#define LUMU_AWS_ERROR_H

#include <stdbool.h>
#include <stddef.h>

typedef enum aws_errcode {
    AWS_ERR_NONE = 0,       /* no error ("ok") */
    AWS_ERR_INVALID_ARG,    /* caller passed something unusable ("invalid_argument") */
    AWS_ERR_NO_MEMORY,      /* an allocation failed ("no_memory") */
    AWS_ERR_CRYPTO,         /* OpenSSL failed ("crypto") */
    AWS_ERR_PARSE,          /* malformed input data, e.g. a response body ("parse") */
    AWS_ERR_IO,             /* file / socket / OS error ("io") */
    AWS_ERR_HTTP,           /* transport failure: DNS, TLS, connection ("http") */
    AWS_ERR_TIMEOUT,        /* a deadline passed ("timeout") */
    AWS_ERR_CREDENTIALS,    /* no usable credentials ("credentials") */
    AWS_ERR_SERVICE,        /* AWS answered with an error response ("service") */
    AWS_ERR_UNSUPPORTED,    /* valid but not implemented ("unsupported") */
    AWS_ERR_INTERNAL,       /* a bug in lumu ("internal") */
    AWS_ERR__COUNT
} aws_errcode;

#define AWS_ERROR_MESSAGE_MAX 512
#define AWS_ERROR_FIELD_MAX 128

typedef struct aws_error {
    aws_errcode code;                       /* AWS_ERR_NONE when no error */
    int http_status;                        /* HTTP status of the response, 0 if none */
    bool retryable;                         /* true when retrying may succeed */
    char message[AWS_ERROR_MESSAGE_MAX];    /* human-readable, "" if none */
    char aws_code[AWS_ERROR_FIELD_MAX];     /* AWS error code ("ThrottlingException"), "" if none */
    char request_id[AWS_ERROR_FIELD_MAX];   /* x-amzn-RequestId / x-amz-request-id, "" if none */
} aws_error;

/* Resets e (may be NULL) to "no error". */
void aws_error_clear(aws_error *e);

/* Stable lowercase name of a code ("invalid_argument", ...); "unknown" for
 * out-of-range values.  Suitable as a machine-readable error kind. */
const char *aws_errcode_name(aws_errcode code);

/* Sets e (may be NULL) to code + formatted message; http_status, aws_code and
 * request_id are cleared, retryable is set to false except for
 * AWS_ERR_HTTP and AWS_ERR_TIMEOUT.  Always returns false, so failing
 * functions can `return aws_error_set(err, ...);`. */
bool aws_error_set(aws_error *e, aws_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills e (may be NULL) from an AWS error response: code = AWS_ERR_SERVICE.
 * Any string may be NULL (stored as "").  Returns false. */
bool aws_error_set_service(aws_error *e, int http_status, const char *aws_code,
                           const char *message, const char *request_id, bool retryable);

/* An error body the protocol could not parse, as a one-line message: at
 * most `max` bytes of `body` (max < n), each run of whitespace or control
 * characters as one space, leading/trailing space dropped, "..." appended
 * when cut.  Returns dst (always NUL-terminated when n > 0). */
char *aws_error_snippet(char *dst, size_t n, const char *body, size_t len, size_t max);

/* Shorthand for aws_error_set(e, AWS_ERR_NO_MEMORY, "out of memory"). */
bool aws_error_oom(aws_error *e);

/* Formats "name: message [aws_code] (HTTP status, request id ...)" into buf
 * (always NUL-terminated when n > 0).  Returns buf. */
char *aws_error_format(const aws_error *e, char *buf, size_t n);

/* ------------------------------------------------------------------------
 * Memory.  Every aws/ module allocates through these so the host can route
 * them to its tracking allocator (lumu_malloc/lumu_realloc/lumu_free) and
 * tests can inject failures.  Defaults: malloc/realloc/free.
 * ------------------------------------------------------------------------ */

typedef struct aws_allocator {
    void *(*malloc_fn)(size_t n);
    void *(*realloc_fn)(void *p, size_t n);
    void (*free_fn)(void *p);
} aws_allocator;

/* Installs a (NULL = the default malloc/realloc/free).  Call once at start-up,
 * before any aws/ allocation: memory must be freed by the allocator that
 * made it.  Not thread-safe. */
void aws_set_allocator(const aws_allocator *a);

void *aws_malloc(size_t n);             /* NULL on failure (or n == 0 -> at least 1 byte) */
void *aws_calloc(size_t count, size_t size); /* zeroed, overflow-checked */
void *aws_realloc(void *p, size_t n);
void aws_free(void *p);                 /* NULL is fine */
char *aws_strdup(const char *s);        /* NULL on failure or when s is NULL */
char *aws_strndup(const char *s, size_t n);

#endif
