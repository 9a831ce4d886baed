/*
 * endpoints: service + region -> endpoint URL, signing region and signing
 * name, from botocore's endpoints.json ("partitions" document, version 3),
 * the way botocore's EndpointResolver + ClientEndpointBridge do it.
 *
 *   aws_endpoints *r = aws_endpoints_new(doc, &err);   // doc: json_t, ref taken
 *   aws_endpoint_params p = {.service = "cloudformation", .region = "eu-west-1"};
 *   aws_endpoint ep;
 *   if (aws_endpoints_resolve(r, &p, &ep, &err))
 *       ... ep.url = "https://cloudformation.eu-west-1.amazonaws.com",
 *           ep.signing_region = "eu-west-1", ep.signing_name = "cloudformation"
 *   aws_endpoints_free(r);
 *
 * Resolution (botocore regions.py):
 *   - Partitions are tried in document order (aws, aws-cn, aws-us-gov, ...).
 *     A partition answers when the region is a key of the service's
 *     "endpoints", or matches the partition's "regions" / "regionRegex".
 *     Services missing from a partition resolve as an empty template there.
 *   - No region: the service's partitionEndpoint (global services), else an
 *     error (AWS_ERR_INVALID_ARG "no region").
 *   - Non-regionalized services (isRegionalized false: iam, route53,
 *     organizations, cloudfront, ...) use their partitionEndpoint in every
 *     region of the partition (iam in eu-west-1 -> iam.amazonaws.com, signed
 *     for us-east-1; in cn-north-1 -> iam.cn-north-1.amazonaws.com.cn).
 *   - Variants: use_fips / use_dualstack select the variant whose tags are
 *     exactly that set, looked up in the endpoint, the service defaults and
 *     the partition defaults (keys merged, first wins); none is an error.
 *     Dualstack is refused in aws-iso and aws-iso-b.
 *   - Then the endpoint's keys, the service defaults and the partition
 *     defaults are merged (first wins) and "{service}", "{region}",
 *     "{dnsSuffix}" in the hostname expanded.  https is used when the
 *     protocols allow it (and insecure is false).
 *   - Signing region: credentialScope.region, else the endpoint name;
 *     signing name: credentialScope.service, else params.signing_name (the
 *     model's signingName), else the service.
 *   - A region no partition claims falls back to the aws partition with its
 *     templates (botocore's behaviour), so "xx-new-1" still works.
 *   - STS and S3 in us-east-1 (and STS in the other legacy global regions)
 *     use the regional endpoints (the AWS CLI v2 defaults); sts_legacy /
 *     s3_legacy select sts.amazonaws.com / s3.amazonaws.com instead, like
 *     sts_regional_endpoints = legacy / us_east_1_regional_endpoint = legacy.
 * Region names must match botocore's ^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$
 * and service names [a-z0-9.-]+, so nothing can be injected into the host.
 */
#ifndef LUMU_AWS_ENDPOINTS_H
#define LUMU_AWS_ENDPOINTS_H

#include "error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct aws_endpoints aws_endpoints;

#define AWS_ENDPOINT_HOST_MAX 256
#define AWS_ENDPOINT_NAME_MAX 64

typedef struct aws_endpoint_params {
    const char *service;       /* endpoints.json key ("cloudformation", "s3", "portal.sso") */
    const char *region;        /* NULL or "": the partition endpoint */
    bool use_fips;
    bool use_dualstack;
    bool insecure;             /* http:// even when https is allowed */
    bool sts_legacy;           /* sts_regional_endpoints = legacy */
    bool s3_legacy;            /* s3 us_east_1_regional_endpoint = legacy */
    const char *signing_name;  /* the model's signingName, NULL = service */
} aws_endpoint_params;

typedef struct aws_endpoint {
    char url[AWS_ENDPOINT_HOST_MAX + 16];        /* "https://host" */
    char hostname[AWS_ENDPOINT_HOST_MAX];
    char region[AWS_ENDPOINT_NAME_MAX];          /* the endpoint name used ("aws-global" ...) */
    char signing_region[AWS_ENDPOINT_NAME_MAX];
    char signing_name[AWS_ENDPOINT_NAME_MAX];
    char partition[AWS_ENDPOINT_NAME_MAX];
    char dns_suffix[AWS_ENDPOINT_HOST_MAX];
    bool deprecated;                             /* the endpoint entry is marked deprecated */
} aws_endpoint;

/* Validates the document and compiles the partitions' region regexes.
 * Takes its own reference to doc.  NULL with AWS_ERR_PARSE when doc is not
 * a partitions document, AWS_ERR_NO_MEMORY. */
aws_endpoints *aws_endpoints_new(json_t *doc, aws_error *err);
void aws_endpoints_free(aws_endpoints *e); /* NULL is fine */

/* Resolves p into *out.  Errors: AWS_ERR_INVALID_ARG (bad or missing region
 * or service name, no such variant, dualstack in an iso partition). */
bool aws_endpoints_resolve(const aws_endpoints *e, const aws_endpoint_params *p,
                           aws_endpoint *out, aws_error *err);

/* The partition a region belongs to ("aws", "aws-cn", ...), or NULL. */
const char *aws_endpoints_partition(const aws_endpoints *e, const char *region);

/* True when region is a syntactically valid region name. */
bool aws_endpoints_valid_region(const char *region);

/* ---- S3 addressing ---------------------------------------------------- */

typedef enum aws_s3_addressing {
    AWS_S3_AUTO = 0,  /* virtual-hosted when possible, path-style otherwise */
    AWS_S3_PATH,
    AWS_S3_VIRTUAL
} aws_s3_addressing;

/* True when bucket can be a DNS label set: 3..63 characters of a-z 0-9 . -,
 * starting and ending with a letter or digit, no "..", not an IPv4 address. */
bool aws_s3_dns_compatible(const char *bucket);

/* The base URL of a bucket on endpoint_url ("https://host[:port][/path]"):
 * virtual-hosted "https://bucket.host/" or path-style
 * "https://host/bucket/" (bucket percent-encoded).  AUTO picks path-style
 * when custom_endpoint is true (LocalStack, MinIO ...), when the bucket is
 * not DNS compatible, or when it holds a '.' and the scheme is https
 * (the wildcard certificate would not match); virtual-hosted otherwise.
 * VIRTUAL with an incompatible bucket is AWS_ERR_INVALID_ARG.
 * *path_style (may be NULL) tells which was chosen. */
bool aws_s3_bucket_url(const char *endpoint_url, const char *bucket, aws_s3_addressing style,
                       bool custom_endpoint, char *out, size_t n, bool *path_style,
                       aws_error *err);

#endif
