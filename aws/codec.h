/*
 * codec: model-driven AWS protocol serializers and parsers (pure C).
 *
 * Protocols: query, ec2, json (awsJson1_0 / 1_1), rest-json, rest-xml.
 * Conformant with botocore's protocol suites (tests/c/conformance_protocols.c).
 *
 *   aws_http_request req;
 *   aws_http_request_init(&req);
 *   aws_serialize_opts o = {.host = "cloudformation.us-east-1.amazonaws.com"};
 *   if (!aws_serialize(m, op, params, &o, &req, &err)) ... err ...
 *   ... sign req (req.headers is an aws_sigv4_header array), send ...
 *   aws_http_request_clean(&req);
 *
 *   aws_http_response resp = {status, headers, n, body, body_len};
 *   json_t *out = NULL;
 *   if (aws_parse_response(m, op, &resp, &out, NULL, &err)) use(out);
 *   else if (err.code == AWS_ERR_SERVICE) { err.aws_code, err.message,
 *       err.http_status, err.request_id; out = the modeled error members }
 *   json_decref(out);
 *
 * Values are jansson json_t, shaped by the model:
 *   structure -> object (member names as in the model; unknown input keys are
 *                an error, null members are skipped), list -> array,
 *   map -> object, string -> string, boolean -> true/false,
 *   byte/short/integer/long -> integer, float/double -> real (or integer on
 *                input); the special values are the strings "NaN",
 *                "Infinity", "-Infinity" on input and output,
 *   timestamp -> number of seconds since the epoch (fractional allowed; an
 *                integer when whole); ISO 8601 / RFC 822 strings are also
 *                accepted on input,
 *   blob      -> string holding the raw bytes (json_stringn_nocheck: may be
 *                invalid UTF-8); base64 on the wire where the protocol says so,
 *   document  -> any JSON value, passed through (json protocols),
 *   jsonvalue strings (rest headers) -> any JSON value.
 * Output objects never contain response metadata; the request id is in
 * aws_response_meta.
 *
 * Errors: AWS_ERR_INVALID_ARG (input does not match the model, bad host
 * label, missing URI label), AWS_ERR_PARSE (malformed response body),
 * AWS_ERR_SERVICE (AWS returned an error: aws_code, message, http_status,
 * request_id filled; retryable is left false for the retry layer),
 * AWS_ERR_UNSUPPORTED (protocol/event streams), AWS_ERR_NO_MEMORY.
 * Every path frees what it allocated; callbacks never longjmp.
 */
#ifndef LUMU_AWS_CODEC_H
#define LUMU_AWS_CODEC_H

#include "error.h"
#include "model.h"
#include "sigv4.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef aws_sigv4_header aws_http_header;

/* A serialized request.  Every string is owned (aws_malloc) and
 * NUL-terminated; headers can be handed to aws_sigv4_sign as they are. */
typedef struct aws_http_request {
    char *method;              /* "POST", "GET", ... */
    char *path;                /* percent-encoded path, starting with '/', with
                                  the endpoint's base path in front */
    char *query;               /* query string without '?', "" when none */
    char *host;                /* opts->host with the operation's host prefix
                                  applied; NULL when opts->host was NULL */
    char *host_prefix;         /* the expanded hostPrefix, "" when none */
    aws_http_header *headers;  /* in insertion order, names as the protocol
                                  spells them (compare case-insensitively) */
    size_t header_count;
    char *body;                /* body bytes (NUL-terminated for convenience) */
    size_t body_len;
    size_t header_cap_;        /* private */
} aws_http_request;

/* Writes an idempotency token (NUL-terminated, at most 63 chars) into out;
 * false on failure. */
typedef bool (*aws_token_fn)(void *ud, char out[64]);

typedef struct aws_serialize_opts {
    const char *host;          /* endpoint host[:port]; NULL = none */
    const char *base_path;     /* endpoint path ("/custom"); NULL/"" = none */
    aws_token_fn idempotency_token; /* NULL = random UUID v4 (getrandom) */
    void *token_ud;
    bool disable_host_prefix;  /* do not apply endpoint.hostPrefix */
} aws_serialize_opts;

typedef struct aws_http_response {
    int status;
    const aws_http_header *headers; /* as received; lookups are case-insensitive */
    size_t header_count;
    const char *body;
    size_t body_len;
} aws_http_response;

typedef struct aws_response_meta {
    char request_id[AWS_ERROR_FIELD_MAX]; /* x-amzn-RequestId / x-amz-request-id / body */
    char host_id[AWS_ERROR_FIELD_MAX];    /* x-amz-id-2 (S3) */
} aws_response_meta;

void aws_http_request_init(aws_http_request *r);
/* Frees everything and re-initializes r (idempotent). */
void aws_http_request_clean(aws_http_request *r);
/* Value of a header (case-insensitive name), or NULL. */
const char *aws_http_request_header(const aws_http_request *r, const char *name);

/* Serializes input (a json object, or NULL for no parameters) for operation
 * op of model m.  out must be initialized; on failure it is left clean.
 * Idempotency-token members that are absent get a token; host-label members
 * are substituted into the host prefix (validated: [A-Za-z0-9.-]+);
 * Content-MD5 is added when the operation requires a checksum. */
bool aws_serialize(const aws_model *m, const aws_operation *op, const json_t *input,
                   const aws_serialize_opts *opts, aws_http_request *out, aws_error *err);

/* Parses a response.  Success (status < 300): true and *out = a new object
 * shaped by op's output (an empty object when the operation has none).
 * AWS error: false, err->code = AWS_ERR_SERVICE, and *out = a new object
 * with the members of the matching modeled error shape (empty when none
 * matches).  Other failures: false and *out = NULL.  meta may be NULL. */
bool aws_parse_response(const aws_model *m, const aws_operation *op,
                        const aws_http_response *resp, json_t **out,
                        aws_response_meta *meta, aws_error *err);

/* Event streams (application/vnd.amazon.eventstream), for a caller that
 * reads a response body incrementally.  stream is the output's event-stream
 * shape, output the operation's output shape (for "initial-response").
 * Decodes the message at the start of buf (n bytes):
 *   1: *consumed bytes used, *event = {"<EventName>": {members}}, or
 *      {"initial-response": {output members}}, or {} for an event the model
 *      does not know;
 *   0: buf holds less than one message (read more);
 *  -1: err set: AWS_ERR_PARSE (bad frame/checksum), AWS_ERR_SERVICE (an
 *      exception or error message: aws_code, message), AWS_ERR_NO_MEMORY.
 * aws_parse_response decodes a whole buffered stream into a list. */
int aws_eventstream_next(const aws_model *m, const aws_shape *stream, const aws_shape *output,
                         const char *buf, size_t n, size_t *consumed, json_t **event,
                         aws_error *err);

/* The output member carrying an event stream (the payload for rest
 * protocols, a member for json), or NULL. */
const aws_member *aws_eventstream_member(const aws_operation *op);

/* ---- helpers shared with the binding and the tests ----------------------- */

/* Formats epoch seconds t (fraction kept to the microsecond) in a format:
 * "iso8601" (2014-04-29T18:30:38Z, or .123456Z when fractional), "rfc822"
 * (Tue, 29 Apr 2014 18:30:38 GMT), "unixTimestamp" (1398796238 or
 * 1398796238.123).  False when out of range (years 0001..9999). */
bool aws_timestamp_format(double t, const char *format, char out[40]);

/* Parses a timestamp as AWS sends them: epoch seconds ("1398796238",
 * "1398796238.5"), ISO 8601 (2014-04-29T18:30:38Z, fractions, +hh:mm
 * offsets, lower-case t/z, space separator), RFC 822/1123/850, asctime.
 * True with *t set on success. */
bool aws_timestamp_parse(const char *s, size_t n, double *t);

/* Base64 (RFC 4648, padded).  Encode returns a new string; decode returns new
 * bytes (NUL-terminated) and their length, or NULL on invalid input
 * (whitespace is ignored, padding optional). */
char *aws_base64_encode(const void *data, size_t n, size_t *out_len);
char *aws_base64_decode(const char *s, size_t n, size_t *out_len);

/* Random UUID v4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"), the default
 * idempotency token. */
bool aws_uuid4(char out[37]);

#endif
