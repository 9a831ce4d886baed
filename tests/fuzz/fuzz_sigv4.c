/*
 * fuzz_sigv4: the SigV4 canonicaliser and signer (aws/sigv4.c).
 *
 * Input: byte 0 holds flags (bit 0: S3 settings, bit 1: query (presign)
 * mode, bit 2: session token, bit 3: unsigned payload, bit 4: token added
 * after signing, bit 5: derived-key cache, bits 6-7 == 3: SigV4a), then
 * lines: method, path, query, headers "name:value" (one per line) up to an
 * empty line, then the payload.  Checks that the canonical path and query
 * only hold what RFC 3986 allows, that a successful signature has every
 * stage, that the cache gives the same signature as no cache, and that a
 * failure leaves the state clean with a message.
 */
#define _GNU_SOURCE /* memmem */
#include "support/lfuzz.h"

#include "sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_MAX_HEADERS 64

static aws_sigv4_key_cache *s_cache;

static void sig_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_sigv4: %s: %s\n", what, detail ? detail : "");
    abort();
}

static int unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int hex_upper(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Every byte is unreserved, one of `extra`, or part of a %XX escape. */
static void check_encoded(const char *s, const char *extra, const char *what)
{
    for (const char *p = s; *p; p++) {
        if (*p == '%') {
            if (!hex_upper(p[1]) || !hex_upper(p[2]))
                sig_fail(what, s);
            p += 2;
        } else if (!unreserved((unsigned char)*p) && !strchr(extra, *p)) {
            sig_fail(what, s);
        }
    }
}

static void building_blocks(const char *path, const char *query)
{
    for (int i = 0; i < 4; i++) {
        aws_error err;
        aws_error_clear(&err);
        char *c = aws_sigv4_canonical_path(path, i & 1, i & 2, &err);
        if (c) {
            if (c[0] != '/')
                sig_fail("canonical path does not start with /", c);
            check_encoded(c, "/", "canonical path");
            aws_free(c);
        } else if (err.code == AWS_ERR_NONE) {
            sig_fail("canonical path failed without an error", path);
        }
    }
    aws_error err;
    aws_error_clear(&err);
    char *q = aws_sigv4_canonical_query(query, &err);
    if (q) {
        check_encoded(q, "=&", "canonical query");
        aws_free(q);
    } else if (err.code == AWS_ERR_NONE) {
        sig_fail("canonical query failed without an error", query);
    }
    char *e = aws_sigv4_uri_encode(path, strlen(path), false, &err);
    if (e) {
        check_encoded(e, "", "uri_encode");
        aws_free(e);
    }
}

/* Next line of [*p, end) as a new NUL-terminated string (NUL bytes inside
 * end it early, as they would in C strings). */
static char *next_line(const char **p, const char *end)
{
    const char *s = *p;
    const char *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    const char *e = nl ? nl : end;
    size_t n = (size_t)(e - s);
    char *out = malloc(n + 1);
    if (!out)
        abort();
    memcpy(out, s, n);
    out[n] = '\0';
    *p = nl ? nl + 1 : end;
    return out;
}

static bool sign(const aws_sigv4_request *req, const aws_sigv4_config *cfg,
                 aws_sigv4_state *st)
{
    aws_error err;
    aws_error_clear(&err);
    aws_sigv4_state_init(st);
    bool ok = aws_sigv4_sign(req, cfg, st, &err);
    if (ok) {
        if (!st->canonical_request || !st->string_to_sign || !st->signature ||
            !st->signed_headers || !st->scope)
            sig_fail("signed without every stage", req->path);
        if (cfg->mode == AWS_SIGV4_MODE_HEADERS && !st->authorization)
            sig_fail("header mode without Authorization", req->path);
        if (cfg->mode == AWS_SIGV4_MODE_QUERY && !st->query)
            sig_fail("query mode without a query", req->path);
        if (cfg->algorithm == AWS_SIGV4_HMAC_SHA256 && strlen(st->signature) != 64)
            sig_fail("signature is not 64 hex digits", st->signature);
        if (st->query) { /* the input query verbatim, then the X-Amz-* parameters */
            size_t n = strlen(req->query);
            if (strncmp(st->query, req->query, n) != 0)
                sig_fail("presigned query does not start with the input query", st->query);
            check_encoded(st->query + n, "=&", "presigned query parameters");
        }
    } else {
        if (err.code == AWS_ERR_NONE || !err.message[0])
            sig_fail("failed without an error", req->path);
        if (st->canonical_request || st->signature || st->authorization)
            sig_fail("failure left the state dirty", err.message);
    }
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!s_cache) {
        s_cache = aws_sigv4_key_cache_new(NULL);
        if (!s_cache)
            abort();
    }
    unsigned flags = data[0];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    char *method = next_line(&p, end);
    char *path = next_line(&p, end);
    char *query = next_line(&p, end);
    char *hlines[SIG_MAX_HEADERS];
    aws_sigv4_header hs[SIG_MAX_HEADERS];
    size_t nh = 0;
    while (p < end && nh < SIG_MAX_HEADERS) {
        char *line = next_line(&p, end);
        if (!*line) {
            free(line);
            break;
        }
        hlines[nh] = line;
        char *colon = strchr(line, ':');
        if (colon)
            *colon = '\0';
        hs[nh].name = line;
        hs[nh].value = colon ? colon + 1 : "";
        nh++;
    }

    building_blocks(path, query);

    aws_sigv4_request req = {.method = method, .path = path, .query = query,
                             .headers = hs, .header_count = nh};
    if (flags & 8) {
        req.payload_kind = AWS_SIGV4_PAYLOAD_UNSIGNED;
    } else {
        req.payload = p;
        req.payload_len = (size_t)(end - p);
    }
    aws_sigv4_config cfg;
    if (flags & 1)
        aws_sigv4_config_init_s3(&cfg);
    else
        aws_sigv4_config_init(&cfg);
    cfg.access_key = "AKIDEXAMPLE";
    cfg.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    cfg.region = "us-east-1";
    if (!(flags & 1))
        cfg.service = "service";
    cfg.time = 1440938160; /* 2015-08-30T12:36:00Z */
    if (flags & 2)
        cfg.mode = AWS_SIGV4_MODE_QUERY;
    if (flags & 4)
        cfg.session_token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW";
    cfg.omit_session_token = (flags & 16) != 0;
    if ((flags & 0xc0) == 0xc0)
        cfg.algorithm = AWS_SIGV4A_ECDSA_P256;

    aws_sigv4_state plain, cached;
    bool ok = sign(&req, &cfg, &plain);
    if (flags & 32 && cfg.algorithm == AWS_SIGV4_HMAC_SHA256) {
        cfg.cache = s_cache;
        bool ok2 = sign(&req, &cfg, &cached);
        if (ok != ok2 || (ok && strcmp(plain.signature, cached.signature) != 0))
            sig_fail("the key cache changed the result", path);
        aws_sigv4_state_clean(&cached);
    }
    aws_sigv4_state_clean(&plain);
    aws_sigv4_state_clean(&plain); /* idempotent */

    for (size_t i = 0; i < nh; i++)
        free(hlines[i]);
    free(method);
    free(path);
    free(query);
    return 0;
}
