/*
 * model: AWS service models (botocore's service-2.json, paginators-1.json,
 * waiters-2.json, endpoint-rule-set-1.json, endpoints.json, partitions.json).
 *
 * The models of the services lumu talks to are embedded at build time
 * (cmake/models.py: documentation stripped, minified, zlib-compressed) and
 * inflated + parsed with jansson on first use.  LUMU_MODELS_DIR, when set,
 * names a botocore-style data tree (DIR/<service>/<api-version>/<kind>.json
 * or .json.gz, DIR/endpoints.json) whose files override the embedded ones
 * (newest api-version directory wins, as in botocore), and may add services.
 *
 *   const aws_model *m = aws_model_get("cloudformation", &err);   // cached
 *   const aws_operation *op = aws_model_operation(m, "DescribeStacks");
 *   for (size_t i = 0; i < op->input->shape->member_count; i++)
 *       ... op->input->shape->members[i].name ...
 *   json_t *p = aws_model_paginator(m, "DescribeStacks", &err);   // borrowed
 *
 * A model is a read-only graph compiled from the JSON: every shape once,
 * member references resolved to pointers (recursive shapes are fine), the
 * serialization attributes of a member merged as botocore does (the
 * member's own locationName, xmlNamespace, flattened, timestampFormat ...
 * win over the target shape's).  Strings point into the JSON document the
 * model keeps (`raw` fields give access to anything not decoded here).
 *
 * Cached models (aws_model_get) live until aws_model_cache_clear(); the cache
 * is protected by a mutex and models are immutable once built (paginators
 * and waiters are attached under the same mutex), so they can be shared
 * between threads.  Memory comes from jansson's allocator for the JSON and
 * from aws_malloc for everything else.
 */
#ifndef LUMU_AWS_MODEL_H
#define LUMU_AWS_MODEL_H

#include "error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum aws_protocol {
    AWS_PROTOCOL_UNKNOWN = 0,
    AWS_PROTOCOL_QUERY,     /* "query" */
    AWS_PROTOCOL_EC2,       /* "ec2" */
    AWS_PROTOCOL_JSON,      /* "json" (awsJson1_0 / 1_1, see json_version) */
    AWS_PROTOCOL_REST_JSON, /* "rest-json" */
    AWS_PROTOCOL_REST_XML   /* "rest-xml" */
} aws_protocol;

typedef enum aws_shape_type {
    AWS_SHAPE_STRUCTURE = 0,
    AWS_SHAPE_LIST,
    AWS_SHAPE_MAP,
    AWS_SHAPE_STRING,       /* also "character" */
    AWS_SHAPE_BLOB,
    AWS_SHAPE_BOOLEAN,
    AWS_SHAPE_BYTE,
    AWS_SHAPE_SHORT,
    AWS_SHAPE_INTEGER,
    AWS_SHAPE_LONG,
    AWS_SHAPE_FLOAT,
    AWS_SHAPE_DOUBLE,
    AWS_SHAPE_TIMESTAMP,
    AWS_SHAPE_BIGINTEGER,   /* carried as a decimal string */
    AWS_SHAPE_BIGDECIMAL    /* carried as a decimal string */
} aws_shape_type;

/* Where a member goes in the HTTP message (rest protocols). */
typedef enum aws_location {
    AWS_LOC_BODY = 0,       /* no "location": the body (or the payload) */
    AWS_LOC_URI,            /* "uri": a {label} of requestUri */
    AWS_LOC_QUERYSTRING,    /* "querystring" */
    AWS_LOC_HEADER,         /* "header" */
    AWS_LOC_HEADERS,        /* "headers": a map, locationName is the name prefix */
    AWS_LOC_STATUSCODE      /* "statusCode" (output) */
} aws_location;

/* Member flags (effective: member reference merged over the target shape). */
enum {
    AWS_MF_XML_ATTRIBUTE = 1u << 0,     /* xmlAttribute */
    AWS_MF_FLATTENED = 1u << 1,         /* flattened (list/map) */
    AWS_MF_IDEMPOTENCY_TOKEN = 1u << 2, /* idempotencyToken */
    AWS_MF_HOST_LABEL = 1u << 3,        /* hostLabel */
    AWS_MF_JSONVALUE = 1u << 4,         /* jsonvalue (string carrying JSON) */
    AWS_MF_EVENTPAYLOAD = 1u << 5,      /* eventpayload */
    AWS_MF_EVENTHEADER = 1u << 6,       /* eventheader */
    AWS_MF_STREAMING = 1u << 7,         /* streaming (blob/string payload) */
    AWS_MF_REQUIRED = 1u << 8,          /* listed in the parent's "required" */
    AWS_MF_DEPRECATED = 1u << 9         /* deprecated */
};

/* Shape flags. */
enum {
    AWS_SF_EXCEPTION = 1u << 0,   /* exception (an error shape) */
    AWS_SF_FAULT = 1u << 1,       /* fault (server-side error) */
    AWS_SF_UNION = 1u << 2,       /* union: exactly one member set */
    AWS_SF_DOCUMENT = 1u << 3,    /* document: free-form JSON value */
    AWS_SF_EVENTSTREAM = 1u << 4, /* eventstream */
    AWS_SF_EVENT = 1u << 5,       /* event */
    AWS_SF_STREAMING = 1u << 6,   /* streaming */
    AWS_SF_SENSITIVE = 1u << 7,   /* sensitive */
    AWS_SF_FLATTENED = 1u << 8,   /* flattened (shape level) */
    AWS_SF_SENDER_FAULT = 1u << 9 /* error.senderFault */
};

typedef struct aws_shape aws_shape;

/* A reference to a shape with its serialization attributes: a structure
 * member, a list member, a map key/value, an operation's input/output. */
typedef struct aws_member aws_member;
struct aws_member {
    const char *name;             /* member name; "member"/"key"/"value" for
                                     list and map parts; the shape name for
                                     an operation's input/output */
    const aws_shape *shape;       /* the target shape (never NULL) */
    aws_location location;
    const char *location_name;    /* locationName or NULL */
    const char *query_name;       /* queryName (ec2) or NULL */
    const char *timestamp_format; /* "iso8601" | "rfc822" | "unixTimestamp" or NULL */
    const char *xml_ns_uri;       /* xmlNamespace uri (string form or .uri) or NULL */
    const char *xml_ns_prefix;    /* xmlNamespace prefix or NULL */
    const char *result_wrapper;   /* resultWrapper (query outputs) or NULL */
    const aws_member *payload;    /* operation input/output references: the
                                     payload member (the reference's own
                                     "payload" wins over the shape's), else NULL */
    unsigned flags;               /* AWS_MF_* */
    json_t *raw;                  /* the reference's JSON object (borrowed) */
};

struct aws_shape {
    const char *name;
    aws_shape_type type;
    const char *type_name;        /* as written in the model ("long", "character", ...) */
    unsigned flags;               /* AWS_SF_* */
    /* structure */
    aws_member *members;          /* in model order */
    size_t member_count;
    const aws_member *payload;    /* the "payload" member, or NULL */
    /* list: member; map: key, value (name/shape set only for those types) */
    aws_member member, key, value;
    /* errors (exception shapes) */
    const char *error_code;       /* error.code or NULL (the shape name is the code) */
    int error_status;             /* error.httpStatusCode or 0 */
    /* shape-level attributes (already merged into every aws_member) */
    const char *location_name;
    const char *timestamp_format;
    const char *xml_ns_uri, *xml_ns_prefix;
    json_t *raw;                  /* the shape's JSON object (borrowed) */
    aws_member ref_defaults_;     /* private: what a reference to it starts from */
};

typedef struct aws_operation {
    const char *name;
    const char *http_method;      /* default "POST" */
    const char *request_uri;      /* default "/" */
    int response_code;            /* http.responseCode, or 0 when absent */
    const aws_member *input;      /* NULL when the operation has no input */
    const aws_member *output;     /* NULL when it has no output */
    const aws_shape **errors;     /* error shapes, error_count entries */
    size_t error_count;
    const char *host_prefix;      /* endpoint.hostPrefix ("{Label}." templates) or NULL */
    const char *auth_type;        /* authtype ("none", "v4-unsigned-body"...) or NULL */
    bool http_checksum_required;  /* httpChecksumRequired or
                                     httpChecksum.requestChecksumRequired */
    bool idempotent;
    bool deprecated;
    json_t *raw;                  /* the operation's JSON object (borrowed) */
} aws_operation;

typedef struct aws_model aws_model;
struct aws_model {
    const char *service;          /* the name it was loaded by ("s3"), or "" */
    aws_protocol protocol;
    const char *protocol_name;    /* metadata.protocol */
    const char *api_version;
    const char *json_version;     /* "1.0" / "1.1" or NULL */
    const char *target_prefix;    /* json: X-Amz-Target prefix, or NULL */
    const char *endpoint_prefix;
    const char *signing_name;     /* metadata.signingName, else endpointPrefix */
    const char *signature_version;
    const char *service_id;       /* metadata.serviceId or NULL */
    const char *global_endpoint;  /* metadata.globalEndpoint or NULL */
    bool query_compatible;        /* metadata.awsQueryCompatible present */
    aws_shape *shapes;            /* sorted by name (bytewise) */
    size_t shape_count;
    aws_operation *operations;    /* sorted by name */
    size_t operation_count;
    json_t *root;                 /* the service-2 document (owned) */
    json_t *metadata;             /* root.metadata (borrowed) */
    /* private */
    json_t *paginators_, *waiters_;
    int extras_loaded_;
    char *service_owned_;
    aws_member *refs_;            /* input/output references */
};

/* ---- cached, by service name -------------------------------------------- */

/* The model of a service ("s3", "elbv2", ...), loaded and compiled on first
 * use, then cached for the process.  NULL with err (AWS_ERR_INVALID_ARG for
 * an unknown service, AWS_ERR_PARSE for a bad model, AWS_ERR_NO_MEMORY). */
const aws_model *aws_model_get(const char *service, aws_error *err);

/* Frees every cached model (e.g. before a leak check at exit).  Pointers
 * previously returned by aws_model_get become invalid. */
void aws_model_cache_clear(void);

/* ---- owned models --------------------------------------------------------- */

/* Loads and compiles a fresh, uncached model; free with aws_model_free. */
aws_model *aws_model_load(const char *service, aws_error *err);

/* Compiles a model from a service-2 style document {metadata, shapes,
 * operations}.  The model takes its own reference to doc. */
aws_model *aws_model_from_json(json_t *doc, aws_error *err);

void aws_model_free(aws_model *m); /* NULL is fine */

/* ---- lookups (all return NULL when absent; no allocation) ----------------- */

const aws_operation *aws_model_operation(const aws_model *m, const char *name);
const aws_shape *aws_model_shape(const aws_model *m, const char *name);
const aws_member *aws_shape_member(const aws_shape *s, const char *name);

/* The error shape for an AWS error code: an exception shape of op->errors
 * (or, failing that, of the whole model) whose error.code or name is code. */
const aws_shape *aws_model_error_shape(const aws_model *m, const aws_operation *op,
                                       const char *code);

/* Serialized name of a member: location_name, else name. */
const char *aws_member_wire_name(const aws_member *mb);

/* "structure", "list", ... (the aws_shape_type, not type_name). */
const char *aws_shape_type_name(aws_shape_type t);

/* ---- paginators and waiters ---------------------------------------------- */

/* The pagination entry of an operation (paginators-1.json "pagination".op:
 * input_token, output_token, limit_key, more_results, result_key ...), or
 * NULL (err untouched) when the operation has none.  NULL with err set when
 * the paginators file cannot be loaded.  Borrowed: lives as long as m.
 * Works for cached models (under the cache mutex) and for owned models
 * loaded by name. */
json_t *aws_model_paginator(const aws_model *m, const char *operation, aws_error *err);

/* The waiter definition (waiters-2.json "waiters".name: delay,
 * maxAttempts, operation, acceptors), or NULL as above. */
json_t *aws_model_waiter(const aws_model *m, const char *name, aws_error *err);

/* The whole "pagination" / "waiters" objects (borrowed, may be NULL when the
 * service has none; NULL with err set on a load failure). */
json_t *aws_model_paginators(const aws_model *m, aws_error *err);
json_t *aws_model_waiters(const aws_model *m, aws_error *err);

/* ---- raw documents -------------------------------------------------------- */

/* Parses one document: service = a service name and kind = "service-2",
 * "paginators-1", "waiters-2" or "endpoint-rule-set-1"; or service = NULL and
 * kind = "endpoints" / "partitions".  LUMU_MODELS_DIR first, then the
 * embedded copy.  Returns a new reference; NULL with err->code ==
 * AWS_ERR_NONE when the document does not exist (err may be NULL), NULL with
 * an error set when it exists but cannot be read or parsed.  When
 * api_version is not NULL it receives the api version directory name used
 * (copied, at most 31 chars, "" for the top-level documents). */
json_t *aws_model_document(const char *service, const char *kind, char api_version[32],
                           aws_error *err);

/* The embedded services, sorted by name: count, and the i-th name. */
size_t aws_model_service_count(void);
const char *aws_model_service_name(size_t i);

/* ---- build-time embedded table (written by cmake/models.py) --------------- */

typedef struct aws_model_blob {
    const char *service;          /* "" for endpoints / partitions */
    const char *kind;             /* "service-2", "paginators-1", ... */
    const char *api_version;      /* "2010-05-15", "" for top-level files */
    const unsigned char *zdata;   /* zlib stream */
    size_t zsize;
    size_t size;                  /* inflated size */
} aws_model_blob;

/* Sorted by (service, kind); terminated by an entry whose kind is NULL. */
extern const aws_model_blob aws_model_embedded[];
extern const size_t aws_model_embedded_raw_total;
extern const size_t aws_model_embedded_compressed_total;

#endif
