/*
 * fuzz_codec: the response parsers of every protocol (aws/codec*.c) on real
 * embedded models.
 *
 * Input: byte 0 picks the operation (s_ops), byte 1 the HTTP status
 * (s_status), then optional headers "Name: value" one per line ended by an
 * empty line, then the body.  Without a "\n\n" everything after the two
 * bytes is the body.  Checks the contract of aws_parse_response: success ->
 * an object; AWS_ERR_SERVICE -> an object and an AWS code or HTTP status;
 * any other failure -> no object and a message.
 */
#define _GNU_SOURCE /* memmem */
#include "support/lfuzz.h"

#include "codec.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct op_ref {
    const char *service, *operation;
} op_ref;

static const op_ref s_ops[] = {
    {"cloudformation", "DescribeStacks"},        /* query */
    {"cloudformation", "DescribeStackEvents"},   /* query, timestamps */
    {"cloudformation", "GetTemplate"},           /* query, string payloads */
    {"sts", "AssumeRole"},                       /* query */
    {"iam", "ListRoles"},                        /* query, paginated */
    {"ec2", "DescribeInstances"},                /* ec2 */
    {"ec2", "DescribeSecurityGroups"},           /* ec2 */
    {"dynamodb", "GetItem"},                     /* json 1.0, recursive AttributeValue */
    {"dynamodb", "Query"},                       /* json 1.0 */
    {"ecs", "DescribeServices"},                 /* json 1.1 */
    {"logs", "FilterLogEvents"},                 /* json 1.1 */
    {"kms", "Decrypt"},                          /* json 1.1, blobs */
    {"ssm", "GetParameter"},                     /* json 1.1 */
    {"eks", "DescribeCluster"},                  /* rest-json */
    {"eks", "ListClusters"},                     /* rest-json */
    {"sso", "GetRoleCredentials"},               /* rest-json */
    {"sso-oidc", "CreateToken"},                 /* rest-json */
    {"s3", "ListObjectsV2"},                     /* rest-xml */
    {"s3", "GetObject"},                         /* rest-xml, headers, streaming body */
    {"s3", "HeadObject"},                        /* rest-xml, header maps */
    {"s3", "GetBucketLocation"},                 /* rest-xml, unwrapped */
    {"s3", "GetBucketPolicy"},                   /* rest-xml, string payload */
    {"s3", "SelectObjectContent"},               /* rest-xml, event stream */
    {"route53", "ListResourceRecordSets"},       /* rest-xml */
};
#define NOPS (sizeof s_ops / sizeof s_ops[0])

static const int s_status[] = {200, 200, 200, 200, 206, 204, 301, 304,
                               400, 400, 403, 404, 409, 413, 500, 503};
#define NSTATUS (sizeof s_status / sizeof s_status[0])

typedef struct loaded {
    const aws_model *m;
    const aws_operation *op;
} loaded;

static loaded s_loaded[NOPS];

static void init_ops(void)
{
    if (s_loaded[0].m)
        return;
    for (size_t i = 0; i < NOPS; i++) {
        aws_error err;
        aws_error_clear(&err);
        const aws_model *m = aws_model_get(s_ops[i].service, &err);
        if (!m) {
            fprintf(stderr, "fuzz_codec: model %s: %s\n", s_ops[i].service, err.message);
            abort();
        }
        const aws_operation *op = aws_model_operation(m, s_ops[i].operation);
        if (!op) {
            fprintf(stderr, "fuzz_codec: no operation %s %s\n", s_ops[i].service,
                    s_ops[i].operation);
            abort();
        }
        s_loaded[i].m = m;
        s_loaded[i].op = op;
    }
}

#define CODEC_MAX_HEADERS 64

static void check(int cond, const char *what, size_t op)
{
    if (!cond) {
        fprintf(stderr, "fuzz_codec: %s %s: %s\n", s_ops[op].service, s_ops[op].operation,
                what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_ops();
    if (size < 2)
        return 0;
    size_t opi = data[0] % NOPS;
    int status = s_status[data[1] % NSTATUS];
    const char *rest = (const char *)data + 2;
    size_t n = size - 2;

    /* headers: a private NUL-terminated copy, split in place */
    aws_http_header hs[CODEC_MAX_HEADERS];
    size_t nh = 0;
    char *hbuf = NULL;
    const char *body = rest;
    size_t body_len = n;
    const char *sep = memmem(rest, n, "\n\n", 2);
    if (sep) {
        size_t hlen = (size_t)(sep - rest);
        hbuf = malloc(hlen + 1);
        if (!hbuf)
            return 0;
        memcpy(hbuf, rest, hlen);
        hbuf[hlen] = '\0';
        body = sep + 2;
        body_len = n - hlen - 2;
        char *line = hbuf;
        while (line && nh < CODEC_MAX_HEADERS) {
            char *next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (*line) {
                char *colon = strchr(line, ':');
                const char *value = "";
                if (colon) {
                    *colon = '\0';
                    value = colon + 1;
                    while (*value == ' ')
                        value++;
                }
                hs[nh].name = line;
                hs[nh].value = value;
                nh++;
            }
            line = next;
        }
    }
    /* the body in its own allocation, so ASan sees reads past its end */
    char *b = malloc(body_len ? body_len : 1);
    if (!b) {
        free(hbuf);
        return 0;
    }
    memcpy(b, body, body_len);

    aws_http_response resp = {status, hs, nh, b, body_len};
    json_t *out = NULL;
    aws_response_meta meta;
    aws_error err;
    aws_error_clear(&err);
    bool ok = aws_parse_response(s_loaded[opi].m, s_loaded[opi].op, &resp, &out, &meta, &err);
    if (ok) {
        check(out && json_is_object(out), "success without an object", opi);
        check(err.code == AWS_ERR_NONE, "success with an error set", opi);
    } else if (err.code == AWS_ERR_SERVICE) {
        check(out && json_is_object(out), "service error without an object", opi);
        check(err.aws_code[0] || err.http_status, "service error without code or status", opi);
    } else {
        check(out == NULL, "failure with an object", opi);
        check(err.code != AWS_ERR_NONE && err.message[0], "failure without an error", opi);
    }
    check(memchr(meta.request_id, 0, sizeof meta.request_id) != NULL, "request id unterminated",
          opi);
    if (getenv("LFUZZ_VERBOSE")) { /* for checking seeds: what each input gives */
        char *dump = out ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        fprintf(stderr, "%s %s %d: %s %s %.300s\n", s_ops[opi].service, s_ops[opi].operation,
                status, ok ? "ok" : aws_errcode_name(err.code), ok ? "" : err.message,
                dump ? dump : "");
        free(dump);
    }
    json_decref(out);
    free(b);
    free(hbuf);
    return 0;
}
