/*
 * sigv4: AWS Signature Version 4 (HMAC-SHA256) and SigV4a (ECDSA P-256),
 * header ("Authorization") and query (presigned URL) signing.
 *
 * Pure C + OpenSSL, no clock: the signing time is an input.  Conformant with
 * the AWS SigV4 test suite (botocore copy) and aws-c-auth's signing suite
 * (v4 and v4a), see tests/c/conformance_sigv4.c.
 *
 *   aws_sigv4_request req = {.method = "GET", .path = "/", .query = "a=1",
 *                            .headers = hdrs, .header_count = 1};
 *   aws_sigv4_config cfg;
 *   aws_sigv4_config_init(&cfg);          // defaults: double-encode + normalize
 *   cfg.access_key = ...; cfg.secret_key = ...; cfg.region = "us-east-1";
 *   cfg.service = "sts"; cfg.time = now;  // epoch seconds, from the caller's clock
 *   aws_sigv4_state st;
 *   aws_sigv4_state_init(&st);
 *   if (!aws_sigv4_sign(&req, &cfg, &st, &err)) ... err.message ...
 *   for (i = 0; i < st.header_count; i++)  // set (replace) these on the request
 *       set_header(st.headers[i].name, st.headers[i].value);
 *   aws_sigv4_state_clean(&st);
 *
 * Inputs
 *   path   The request path as it is sent, percent-encoded by the caller
 *          ("/a%20b/c").  Bytes that are not allowed unencoded in a path
 *          (space, non-ASCII, ...) are tolerated and encoded for the
 *          canonical request.  With double_encode_path (all services but
 *          S3) every byte but unreserved characters and '/' is encoded
 *          once more, so "%20" becomes "%2520".  Without it (S3) existing
 *          valid %XX escapes are kept (hex upper-cased, escapes of
 *          unreserved characters decoded) and other bytes encoded once.
 *          normalize_path removes "." / ".." segments (RFC 3986 5.2.4) and
 *          empty segments ("//") first.  NULL or "" means "/".
 *   query  The raw query string without '?' ("b=2&a=1"), NULL/"" for none.
 *          Each key and value is percent-decoded ('+' is a literal plus)
 *          and re-encoded with RFC 3986 rules, then pairs are sorted by key,
 *          then value (bytewise).  "k" without '=' is "k=".  Empty pieces
 *          ("a=1&&b=2") are ignored.
 *   headers  Every header sent, in order (duplicates allowed).  Names are
 *          lower-cased, values trimmed with inner runs of whitespace (SP,
 *          HTAB, CR, LF) collapsed to one space, duplicates joined with ','
 *          in order, then sorted by name.  Never signed: Authorization,
 *          Connection, Expect, Transfer-Encoding, Upgrade, User-Agent,
 *          X-Amzn-Trace-Id.  Replaced by the signer (input copies ignored):
 *          X-Amz-Date, and when it adds them X-Amz-Security-Token,
 *          X-Amz-Content-Sha256, X-Amz-Region-Set.  A Host header is required.
 *
 * Outputs (aws_sigv4_state), for both modes: canonical_request,
 * string_to_sign, signature, signed_headers, scope, amz_date,
 * payload_hash.  Header mode: authorization and `headers` = the headers to
 * SET on the request (replacing any header of the same name), in this
 * order: X-Amz-Security-Token (when a token is given), X-Amz-Date,
 * X-Amz-Region-Set (SigV4a), x-amz-content-sha256 (add_content_sha256),
 * Authorization.  Query mode: `query` = the complete query string to send
 * (the input query verbatim, then X-Amz-Algorithm, X-Amz-Credential,
 * X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Expires, X-Amz-Security-Token,
 * X-Amz-Region-Set, X-Amz-Signature) and header_count == 0.
 *
 * Not thread-safe per key cache; everything else is reentrant.
 */
#ifndef LUMU_AWS_SIGV4_H
#define LUMU_AWS_SIGV4_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AWS_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define AWS_SIGV4A_ALGORITHM "AWS4-ECDSA-P256-SHA256"
#define AWS_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define AWS_SIGV4_MAX_EXPIRES 604800 /* 7 days: the longest presigned URL AWS accepts */

typedef struct aws_sigv4_header {
    const char *name;
    const char *value;
} aws_sigv4_header;

typedef enum aws_sigv4_payload_kind {
    AWS_SIGV4_PAYLOAD_BYTES = 0, /* hash payload/payload_len (NULL/0 = empty body) */
    AWS_SIGV4_PAYLOAD_HASH,      /* payload_hash used verbatim (hex SHA-256 or a
                                    marker like STREAMING-...-PAYLOAD) */
    AWS_SIGV4_PAYLOAD_UNSIGNED   /* "UNSIGNED-PAYLOAD" */
} aws_sigv4_payload_kind;

/* The request to sign.  Nothing here is modified or retained. */
typedef struct aws_sigv4_request {
    const char *method;               /* "GET", "POST", ... (required) */
    const char *path;                 /* see above; NULL/"" = "/" */
    const char *query;                /* raw, without '?'; NULL/"" = none */
    const aws_sigv4_header *headers;  /* header_count entries */
    size_t header_count;
    aws_sigv4_payload_kind payload_kind;
    const void *payload;              /* AWS_SIGV4_PAYLOAD_BYTES */
    size_t payload_len;
    const char *payload_hash;         /* AWS_SIGV4_PAYLOAD_HASH: 1..64 printable chars */
} aws_sigv4_request;

typedef enum aws_sigv4_algorithm {
    AWS_SIGV4_HMAC_SHA256 = 0, /* SigV4 */
    AWS_SIGV4A_ECDSA_P256      /* SigV4a: multi-region, signature is randomized */
} aws_sigv4_algorithm;

typedef enum aws_sigv4_mode {
    AWS_SIGV4_MODE_HEADERS = 0, /* Authorization header */
    AWS_SIGV4_MODE_QUERY        /* presigned URL (X-Amz-* query parameters) */
} aws_sigv4_mode;

/* Derived-key cache, see aws_sigv4_key_cache_new. */
typedef struct aws_sigv4_key_cache aws_sigv4_key_cache;

typedef struct aws_sigv4_config {
    aws_sigv4_algorithm algorithm;
    aws_sigv4_mode mode;
    const char *access_key;       /* required */
    const char *secret_key;       /* required */
    const char *session_token;    /* NULL or "" = none */
    const char *region;           /* SigV4: scope region; SigV4a: region set ("us-east-1,us-west-2", "*") */
    const char *service;          /* signing name: "s3", "sts", "cloudformation", ... */
    int64_t time;                 /* signing time, seconds since the epoch, UTC */
    int64_t expires;              /* query mode: X-Amz-Expires, 1..AWS_SIGV4_MAX_EXPIRES */
    bool double_encode_path;      /* default true; false for S3 */
    bool normalize_path;          /* default true; false for S3 */
    bool add_content_sha256;      /* header mode: add and sign x-amz-content-sha256 (S3);
                                     ignored in query mode (S3 presigned URLs normally
                                     use AWS_SIGV4_PAYLOAD_UNSIGNED) */
    bool omit_session_token;      /* add the token after signing, unsigned (some services) */
    aws_sigv4_key_cache *cache;   /* optional: reuse derived keys */
} aws_sigv4_config;

typedef struct aws_sigv4_state {
    /* Every stage, each NUL-terminated and owned by the state (NULL until signed). */
    char *canonical_request;
    char *string_to_sign;
    char *signature;              /* SigV4: 64 hex digits; SigV4a: hex of the DER ECDSA signature */
    char *signed_headers;         /* "host;x-amz-date" */
    char *scope;                  /* "20150830/us-east-1/service/aws4_request" (SigV4a: no region) */
    char *authorization;          /* header mode: value of the Authorization header, else NULL */
    char *query;                  /* query mode: full query string to send, else NULL */
    char amz_date[17];            /* "20150830T123600Z" */
    char payload_hash[65];        /* the last line of the canonical request */
    /* Header mode: headers to set on the request (values point into the state). */
    aws_sigv4_header headers[5];
    size_t header_count;
    char *owned_token_;           /* private */
    char *owned_region_;          /* private */
} aws_sigv4_state;

/* Zeroes cfg and sets the defaults: SigV4, header mode, double_encode_path and
 * normalize_path true, expires 3600. */
void aws_sigv4_config_init(aws_sigv4_config *cfg);

/* Same with the S3 settings: no double encoding, no normalization,
 * add_content_sha256 true, service "s3". */
void aws_sigv4_config_init_s3(aws_sigv4_config *cfg);

void aws_sigv4_state_init(aws_sigv4_state *st);

/* Frees everything st owns and zeroes it (idempotent). */
void aws_sigv4_state_clean(aws_sigv4_state *st);

/* Signs req.  st must be initialized (aws_sigv4_state_init or clean); any
 * previous contents are freed first.  On failure st is left clean and err
 * is filled (AWS_ERR_INVALID_ARG, AWS_ERR_NO_MEMORY, AWS_ERR_CRYPTO). */
bool aws_sigv4_sign(const aws_sigv4_request *req, const aws_sigv4_config *cfg,
                    aws_sigv4_state *st, aws_error *err);

/* ---- building blocks, exposed for tests and for other aws/ modules ---- */

/* Percent-encodes n bytes: everything but A-Z a-z 0-9 - . _ ~ (and '/' when
 * keep_slash) becomes %XX with upper-case hex.  Returns a new string. */
char *aws_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, aws_error *err);

/* Canonical URI of a path (see "path" above).  Returns a new string. */
char *aws_sigv4_canonical_path(const char *path, bool double_encode, bool normalize,
                               aws_error *err);

/* Canonical query string (see "query" above).  Returns a new string. */
char *aws_sigv4_canonical_query(const char *query, aws_error *err);

/* Formats t as "YYYYMMDDTHHMMSSZ" into out[17].  False if t is outside
 * years 1970..9999. */
bool aws_sigv4_format_time(int64_t t, char out[17], aws_error *err);

/* SigV4 signing key: HMAC chain "AWS4"+secret, date (YYYYMMDD), region,
 * service, "aws4_request". */
bool aws_sigv4_derive_key(const char *secret_key, const char *date8, const char *region,
                          const char *service, unsigned char out[32], aws_error *err);

/* SigV4a: the uncompressed P-256 public key (0x04 || X || Y) derived from
 * the credentials (NIST SP 800-108 KDF in counter mode, HMAC-SHA256). */
bool aws_sigv4a_public_key(const char *access_key, const char *secret_key,
                           unsigned char out[65], aws_error *err);

/* Verifies a SigV4a signature (hex DER) of string_to_sign with an
 * uncompressed public key.  True when valid; false with err->code ==
 * AWS_ERR_NONE when simply invalid, or with an error on bad input. */
bool aws_sigv4a_verify(const unsigned char public_key[65], const char *string_to_sign,
                       const char *signature_hex, aws_error *err);

/* Cache of derived keys: (credentials, date, region, service) -> SigV4 key
 * (16 entries) and credentials -> SigV4a key pair (4 entries); oldest entry
 * replaced first.  Entries are identified by a SHA-256 fingerprint, the
 * secret is not stored.  Not thread-safe: one cache per thread. */
aws_sigv4_key_cache *aws_sigv4_key_cache_new(aws_error *err);
void aws_sigv4_key_cache_free(aws_sigv4_key_cache *cache); /* NULL is fine */
void aws_sigv4_key_cache_stats(const aws_sigv4_key_cache *cache, uint64_t *hits,
                               uint64_t *misses);

#endif
