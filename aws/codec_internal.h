/*
 * codec_internal: helpers shared by the codec_*.c files (not a public API).
 */
#ifndef LUMU_AWS_CODEC_INTERNAL_H
#define LUMU_AWS_CODEC_INTERNAL_H

#include "codec.h"

#include <stdarg.h>

/* Deepest nesting of input values / response documents followed. */
#define CODEC_MAX_DEPTH 100
/* Deepest XML element nesting accepted from a response. */
#define CODEC_XML_MAX_DEPTH 256

/* ---- growable byte buffer (sticky out-of-memory flag) ------------------- */

typedef struct cbuf {
    char *data;
    size_t len, cap;
    bool oom;
} cbuf;

void cb_free(cbuf *b);
bool cb_reserve(cbuf *b, size_t extra);
bool cb_put(cbuf *b, const void *p, size_t n);
bool cb_puts(cbuf *b, const char *s);
bool cb_putc(cbuf *b, char c);
bool cb_printf(cbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Percent-encodes n bytes: unreserved characters (A-Z a-z 0-9 - . _ ~) and
 * the bytes of `safe` stay, the rest become %XX. */
bool cb_pct(cbuf *b, const char *s, size_t n, const char *safe);
/* Returns the NUL-terminated contents (owned by the caller, "" when empty)
 * and resets b; NULL when out of memory (b freed). */
char *cb_take(cbuf *b, size_t *len);

/* ---- serialization context: error reporting with a parameter path ------- */

typedef struct ser_ctx {
    const aws_model *m;
    const aws_operation *op;
    aws_error *err;
    char path[256];        /* "Foo.Bar[2]" of the value being serialized */
    size_t path_len;
    int depth;
} ser_ctx;

/* Appends ".name" (or "name" at the top) / "[i]" to the path; returns the old
 * length for path_pop. */
size_t path_push(ser_ctx *c, const char *name);
size_t path_push_index(ser_ctx *c, size_t i);
size_t path_push_key(ser_ctx *c, const char *key);
void path_pop(ser_ctx *c, size_t old);
/* Sets an AWS_ERR_INVALID_ARG "parameter <path>: <message>"; returns false. */
bool ser_fail(ser_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ser_oom(ser_ctx *c);
/* Type check; fails with "expected X, got Y". */
bool ser_expect(ser_ctx *c, const json_t *v, json_type type, const char *what);
bool ser_enter(ser_ctx *c); /* depth check (call ser_leave after) */
void ser_leave(ser_ctx *c);
const char *json_type_label(const json_t *v);

/* Timestamp of an input value (number, or a string aws_timestamp_parse
 * accepts). */
bool ser_timestamp(ser_ctx *c, const json_t *v, double *t);
/* Writes a scalar as text, the way query strings, URIs, headers and XML
 * bodies carry it: string as is, boolean true/false, integers, floats in
 * shortest round-trip form (Python repr) or NaN/Infinity/-Infinity,
 * timestamps in ts_format (member's own format wins), blobs base64. */
bool ser_scalar_text(ser_ctx *c, const aws_member *mb, const json_t *v, const char *ts_format,
                     cbuf *out);

/* Shortest round-trip text of a finite double; integral values get ".0"
 * (Python's repr). */
void fmt_double(double d, char out[40]);

/* Parses a float given as text: "NaN"/"Infinity"/"-Infinity" (any case) become
 * those strings, numbers a real; NULL (no allocation attempted) if invalid. */
json_t *float_from_text(const char *s, size_t n, bool *invalid);
/* An integer from text; NULL with *invalid on bad text. */
json_t *int_from_text(const char *s, size_t n, bool *invalid);
/* A timestamp number: integer when whole, else real. */
json_t *timestamp_value(double t);
/* A parsed value from its textual wire form (headers, XML text): by the
 * shape type of mb.  NULL with err set on failure. */
json_t *value_from_text(const aws_member *mb, const char *s, size_t n, aws_error *err);

/* Case-insensitive header lookup in a response. */
const char *resp_header(const aws_http_response *r, const char *name);

/* aws_base64_decode telling out-of-memory (*oom) from invalid input. */
char *b64_decode(const char *s, size_t n, size_t *out_len, bool *oom);

/* Valid UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const char *s, size_t n);

/* ---- JSON body writer (json, rest-json) ---------------------------------- */

/* Writes value v of member mb as JSON.  (codec_json.c) */
bool json_write_value(ser_ctx *c, const aws_member *mb, const json_t *v, cbuf *out);
/* Writes a structure's members that go in the body (location == BODY);
 * always writes an object ("{}" when empty). */
bool json_write_struct_body(ser_ctx *c, const aws_shape *s, const json_t *v, cbuf *out);
/* Writes any JSON value (documents, jsonvalue headers) compactly. */
bool json_write_any(ser_ctx *c, const json_t *v, cbuf *out);
/* Parses a JSON document of shape mb (body, payload).  (codec_json.c) */
json_t *json_parse_value(const aws_member *mb, const json_t *doc, int depth, aws_error *err);
json_t *json_parse_struct_body(const aws_shape *s, const json_t *doc, json_t *into,
                               aws_error *err);
/* Decodes a body as JSON (empty body -> empty object).  NULL + err on failure. */
json_t *json_decode_body(const char *body, size_t n, aws_error *err);
/* JSON protocols' error: code/message from __type/code/x-amzn-errortype etc. */
void json_error_fields(const aws_http_response *resp, const json_t *doc, bool rest, char *code,
                       size_t code_n, char *msg, size_t msg_n);

/* ---- XML (codec_xml.c) ------------------------------------------------- */

typedef struct xnode {
    char *name;             /* local name (namespace prefix stripped) */
    char **attrs;           /* name, value, name, value, ..., NULL (raw names) */
    char *text;             /* character data directly inside ("" if none) */
    size_t text_len, text_cap_;
    struct xnode *parent, *first, *last, *next;
} xnode;

/* Parses a document (expat; no DTDs; depth limited).  NULL + err. */
xnode *xml_parse(const char *s, size_t n, aws_error *err);
void xml_free(xnode *root);
const xnode *xml_child(const xnode *n, const char *name);
const char *xml_attr(const xnode *n, const char *name);

/* Parses node as a value of member mb (structure/list/map/scalars). */
json_t *xml_parse_value(const aws_member *mb, const xnode *node, int depth, aws_error *err);
/* Parses the body members of structure s from node into obj. */
bool xml_parse_struct_into(const aws_shape *s, const xnode *node, json_t *obj, int depth,
                           aws_error *err);

/* XML writer: a value as element `name` (rest-xml body, payloads). */
bool xml_write_value(ser_ctx *c, const aws_member *mb, const json_t *v, const char *name,
                     cbuf *out);
/* The body of a rest-xml request: root element `root` with the xmlns of
 * mb, members of s with location BODY. */
bool xml_write_struct(ser_ctx *c, const aws_member *mb, const json_t *v, const char *root,
                      bool body_only, cbuf *out);
bool xml_escape(cbuf *b, const char *s, size_t n, bool attr);

/* Decodes a whole event stream: events appended to list, initial-response
 * members merged into out.  (codec_event.c) */
bool eventstream_parse_all(const aws_model *m, const aws_shape *stream, const aws_shape *output,
                           const char *body, size_t n, json_t *list, json_t *out, aws_error *err);
/* Parses the stream in resp into out[member] (a list). */
bool eventstream_into(const aws_model *m, const aws_operation *op, const aws_member *sm,
                      const aws_http_response *resp, json_t *out, aws_error *err);

/* ---- protocols ------------------------------------------------------------ */

bool query_serialize(ser_ctx *c, const json_t *input, aws_http_request *out);  /* query, ec2 */
bool rest_serialize(ser_ctx *c, const json_t *input, aws_http_request *out);   /* rest-* */
bool json_rpc_serialize(ser_ctx *c, const json_t *input, aws_http_request *out); /* json */

bool req_add_header(aws_http_request *r, const char *name, const char *value);
bool req_set_header(aws_http_request *r, const char *name, const char *value);

/* Parsers: fill *out (success) or the modeled error (errors). */
bool xml_parse_response(const aws_model *m, const aws_operation *op,
                        const aws_http_response *resp, json_t **out, aws_response_meta *meta,
                        aws_error *err);
bool json_parse_response(const aws_model *m, const aws_operation *op,
                         const aws_http_response *resp, json_t **out, aws_response_meta *meta,
                         aws_error *err);
/* rest: headers/statusCode members of shape s into obj. */
bool rest_parse_non_body(const aws_shape *s, const aws_http_response *resp, json_t *obj,
                         aws_error *err);

/* Sets the service error (request id from meta) and stores the parsed error
 * members (steals `members`) into *out. */
bool fail_service(const aws_http_response *resp, const char *code, const char *message,
                  const aws_response_meta *meta, json_t *members, json_t **out, aws_error *err);
/* HTTP reason phrase ("Not Found"), "" if unknown. */
const char *http_reason(int status);

#endif
