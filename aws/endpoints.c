/*
 * endpoints: botocore's endpoints.json resolver (see endpoints.h).
 */
#include "endpoints.h"

#include <regex.h>
#include <stdio.h>
#include <string.h>

typedef struct s_partition {
    json_t *obj;       /* borrowed from doc */
    const char *name;  /* "aws" */
    regex_t re;
    bool has_re;
} s_partition;

struct aws_endpoints {
    json_t *doc;
    s_partition *parts;
    size_t count;
};

enum { TAG_FIPS = 1, TAG_DUALSTACK = 2 };

/* Regions where sts_regional_endpoints = legacy means the global endpoint
 * (botocore args.py LEGACY_GLOBAL_STS_REGIONS). */
static const char *const s_legacy_sts[] = {
    "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "aws-global",
    "ca-central-1",   "eu-central-1", "eu-north-1",   "eu-west-1",      "eu-west-2",
    "eu-west-3",      "sa-east-1",  "us-east-1",      "us-east-2",      "us-west-1",
    "us-west-2",      NULL};

/* ------------------------------------------------------------------------ */

bool aws_endpoints_valid_region(const char *r)
{
    if (!r)
        return false;
    size_t n = strlen(r);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

static bool s_valid_service(const char *s)
{
    if (!s || !*s || strlen(s) >= AWS_ENDPOINT_NAME_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return false;
    return true;
}

/* Translates the Python regex dialect of regionRegex (\d \w \- and plain
 * ERE) to POSIX ERE.  False if it does not fit. */
static bool s_translate_regex(const char *src, char *dst, size_t n)
{
    size_t at = 0;
    for (const char *p = src; *p; p++) {
        const char *rep = NULL;
        char one[3] = {0};
        if (*p == '\\' && p[1]) {
            p++;
            if (*p == 'd')
                rep = "[0-9]";
            else if (*p == 'w')
                rep = "[A-Za-z0-9_]";
            else if (*p == '-' || *p == '_')
                one[0] = *p, rep = one;
            else
                one[0] = '\\', one[1] = *p, rep = one;
        } else {
            one[0] = *p;
            rep = one;
        }
        size_t m = strlen(rep);
        if (at + m >= n)
            return false;
        memcpy(dst + at, rep, m);
        at += m;
    }
    dst[at] = '\0';
    return true;
}

void aws_endpoints_free(aws_endpoints *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->count; i++)
        if (e->parts[i].has_re)
            regfree(&e->parts[i].re);
    aws_free(e->parts);
    json_decref(e->doc);
    aws_free(e);
}

aws_endpoints *aws_endpoints_new(json_t *doc, aws_error *err)
{
    json_t *parts = json_object_get(doc, "partitions");
    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        aws_error_set(err, AWS_ERR_PARSE, "endpoints: not a partitions document");
        return NULL;
    }
    aws_endpoints *e = aws_calloc(1, sizeof *e);
    if (!e) {
        aws_error_oom(err);
        return NULL;
    }
    e->doc = json_incref(doc);
    e->parts = aws_calloc(json_array_size(parts), sizeof *e->parts);
    if (!e->parts) {
        aws_error_oom(err);
        aws_endpoints_free(e);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(parts); i++) {
        json_t *p = json_array_get(parts, i);
        s_partition *sp = &e->parts[e->count];
        const char *name = json_string_value(json_object_get(p, "partition"));
        if (!json_is_object(p) || !name || !json_is_object(json_object_get(p, "services")) ||
            !json_is_string(json_object_get(p, "dnsSuffix"))) {
            aws_error_set(err, AWS_ERR_PARSE, "endpoints: malformed partition #%zu", i + 1);
            aws_endpoints_free(e);
            return NULL;
        }
        sp->obj = p;
        sp->name = name;
        e->count++;
        const char *rx = json_string_value(json_object_get(p, "regionRegex"));
        if (rx) {
            char ere[512];
            if (!s_translate_regex(rx, ere, sizeof ere) ||
                regcomp(&sp->re, ere, REG_EXTENDED | REG_NOSUB) != 0) {
                aws_error_set(err, AWS_ERR_PARSE, "endpoints: bad regionRegex in partition %s",
                              name);
                aws_endpoints_free(e);
                return NULL;
            }
            sp->has_re = true;
        }
    }
    return e;
}

static bool s_region_match(const s_partition *p, const char *region)
{
    json_t *regions = json_object_get(p->obj, "regions");
    if (json_is_object(regions) && json_object_get(regions, region))
        return true;
    return p->has_re && regexec(&p->re, region, 0, NULL, 0) == 0;
}

const char *aws_endpoints_partition(const aws_endpoints *e, const char *region)
{
    if (!e || !aws_endpoints_valid_region(region))
        return NULL;
    for (size_t i = 0; i < e->count; i++)
        if (s_region_match(&e->parts[i], region))
            return e->parts[i].name;
    return NULL;
}

/* ------------------------------------------------------------------------ */

/* The variant of data whose tags are exactly `tags`, or NULL. */
static json_t *s_variant(json_t *data, unsigned tags)
{
    json_t *variants = json_object_get(data, "variants");
    size_t i;
    json_t *v;
    json_array_foreach(variants, i, v) {
        json_t *t = json_object_get(v, "tags");
        if (!json_is_array(t))
            continue;
        unsigned mask = 0;
        bool other = false;
        size_t k;
        json_t *tag;
        json_array_foreach(t, k, tag) {
            const char *s = json_string_value(tag);
            if (s && strcmp(s, "fips") == 0)
                mask |= TAG_FIPS;
            else if (s && strcmp(s, "dualstack") == 0)
                mask |= TAG_DUALSTACK;
            else
                other = true;
        }
        if (!other && mask == tags)
            return v;
    }
    return NULL;
}

/* Adds the keys of from missing in result.  False on no memory. */
static bool s_merge(json_t *result, json_t *from)
{
    const char *key;
    json_t *val;
    json_object_foreach(from, key, val) {
        if (!json_object_get(result, key) && json_object_set(result, key, val) != 0)
            return false;
    }
    return true;
}

static bool s_copy(char *dst, size_t n, const char *src, aws_error *err, const char *what)
{
    size_t m = strlen(src);
    if (m >= n)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "endpoints: %s too long", what);
    memcpy(dst, src, m + 1);
    return true;
}

/* Python's str.format with {service}, {region}, {dnsSuffix}. */
static bool s_expand(const char *tmpl, const char *service, const char *region,
                     const char *dns, char *out, size_t n, aws_error *err)
{
    size_t at = 0;
    for (const char *p = tmpl; *p;) {
        const char *rep = NULL;
        size_t skip = 1, m = 1;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t len = close ? (size_t)(close - p - 1) : 0;
            if (close && len == 7 && strncmp(p + 1, "service", 7) == 0)
                rep = service;
            else if (close && len == 6 && strncmp(p + 1, "region", 6) == 0)
                rep = region;
            else if (close && len == 9 && strncmp(p + 1, "dnsSuffix", 9) == 0)
                rep = dns;
            else
                return aws_error_set(err, AWS_ERR_PARSE, "endpoints: bad hostname template");
            skip = len + 2;
            m = strlen(rep);
        } else {
            rep = p;
        }
        if (at + m >= n)
            return aws_error_set(err, AWS_ERR_INVALID_ARG, "endpoints: hostname too long");
        memcpy(out + at, rep, m);
        at += m;
        p += skip;
    }
    out[at] = '\0';
    return true;
}

static bool s_has_https(json_t *protocols)
{
    size_t i;
    json_t *v;
    json_array_foreach(protocols, i, v) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "https") == 0)
            return true;
    }
    return false;
}

/* botocore _resolve(): builds the merged endpoint data and fills out. */
static bool s_resolve(const s_partition *part, json_t *service_data, const char *service,
                      const char *endpoint_name, unsigned tags, const aws_endpoint_params *p,
                      aws_endpoint *out, aws_error *err)
{
    json_t *endpoints = json_object_get(service_data, "endpoints");
    json_t *endpoint_data = json_object_get(endpoints, endpoint_name);
    json_t *service_defaults = json_object_get(service_data, "defaults");
    json_t *partition_defaults = json_object_get(part->obj, "defaults");
    json_t *result = json_object();
    if (!result)
        return aws_error_oom(err);
    bool ok = true;
    if (tags) {
        json_t *srcs[3] = {endpoint_data, service_defaults, partition_defaults};
        for (int i = 0; i < 3 && ok; i++) {
            json_t *v = s_variant(srcs[i], tags);
            if (v)
                ok = s_merge(result, v);
        }
        json_object_del(result, "tags");
        if (ok && json_object_size(result) == 0) {
            json_decref(result);
            return aws_error_set(err, AWS_ERR_INVALID_ARG,
                                 "no %s%s%s endpoint for %s in region %s",
                                 tags & TAG_FIPS ? "FIPS" : "",
                                 tags == (TAG_FIPS | TAG_DUALSTACK) ? " + " : "",
                                 tags & TAG_DUALSTACK ? "dualstack" : "", service, endpoint_name);
        }
    }
    ok = ok && (!endpoint_data || s_merge(result, endpoint_data));
    if (ok && !json_object_get(result, "dnsSuffix"))
        ok = json_object_set(result, "dnsSuffix", json_object_get(part->obj, "dnsSuffix")) == 0;
    ok = ok && (!service_defaults || s_merge(result, service_defaults));
    ok = ok && (!partition_defaults || s_merge(result, partition_defaults));
    if (!ok) {
        json_decref(result);
        return aws_error_oom(err);
    }
    const char *hostname = json_string_value(json_object_get(result, "hostname"));
    const char *dns = json_string_value(json_object_get(result, "dnsSuffix"));
    json_t *scope = json_object_get(result, "credentialScope");
    const char *sregion = json_string_value(json_object_get(scope, "region"));
    const char *sservice = json_string_value(json_object_get(scope, "service"));
    bool https = !p->insecure && s_has_https(json_object_get(result, "protocols"));
    memset(out, 0, sizeof *out);
    out->deprecated = json_is_true(json_object_get(endpoint_data, "deprecated"));
    ok = hostname && dns ? true
                         : aws_error_set(err, AWS_ERR_PARSE, "endpoints: no hostname for %s",
                                         service);
    ok = ok && s_expand(hostname, service, endpoint_name, dns, out->hostname,
                        sizeof out->hostname, err);
    ok = ok && s_copy(out->dns_suffix, sizeof out->dns_suffix, dns, err, "dnsSuffix");
    ok = ok && s_copy(out->partition, sizeof out->partition, part->name, err, "partition");
    ok = ok && s_copy(out->region, sizeof out->region, endpoint_name, err, "region");
    ok = ok && s_copy(out->signing_region, sizeof out->signing_region,
                      sregion ? sregion : endpoint_name, err, "signing region");
    ok = ok && s_copy(out->signing_name, sizeof out->signing_name,
                      sservice ? sservice : (p->signing_name ? p->signing_name : service), err,
                      "signing name");
    if (ok)
        snprintf(out->url, sizeof out->url, "%s://%s", https ? "https" : "http", out->hostname);
    json_decref(result);
    return ok;
}

/* botocore _endpoint_for_partition: 1 resolved, 0 not this partition,
 * -1 error. */
static int s_for_partition(const s_partition *part, const aws_endpoint_params *p,
                           const char *region, unsigned tags, bool force, aws_endpoint *out,
                           aws_error *err)
{
    if ((tags & TAG_DUALSTACK) &&
        (strcmp(part->name, "aws-iso") == 0 || strcmp(part->name, "aws-iso-b") == 0)) {
        aws_error_set(err, AWS_ERR_INVALID_ARG,
                      "dualstack endpoints are not supported in the %s partition", part->name);
        return -1;
    }
    json_t *service_data = json_object_get(json_object_get(part->obj, "services"), p->service);
    json_t *empty = NULL;
    if (!service_data) {
        empty = json_pack("{s:{}}", "endpoints");
        if (!empty) {
            aws_error_oom(err);
            return -1;
        }
        service_data = empty;
    }
    int rc = 0;
    const char *pe = json_string_value(json_object_get(service_data, "partitionEndpoint"));
    if (!region) {
        if (!pe) {
            aws_error_set(err, AWS_ERR_INVALID_ARG, "no region given for %s", p->service);
            rc = -1;
        } else {
            region = pe;
        }
    }
    if (rc == 0 && json_object_get(json_object_get(service_data, "endpoints"), region)) {
        rc = s_resolve(part, service_data, p->service, region, tags, p, out, err) ? 1 : -1;
    } else if (rc == 0 && (force || s_region_match(part, region))) {
        json_t *reg = json_object_get(service_data, "isRegionalized");
        bool regionalized = !json_is_false(reg);
        const char *name = pe && !regionalized ? pe : region;
        rc = s_resolve(part, service_data, p->service, name, tags, p, out, err) ? 1 : -1;
    }
    json_decref(empty);
    return rc;
}

static bool s_in(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

bool aws_endpoints_resolve(const aws_endpoints *e, const aws_endpoint_params *p,
                           aws_endpoint *out, aws_error *err)
{
    if (!e || !p || !out)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "aws_endpoints_resolve: NULL argument");
    if (!s_valid_service(p->service))
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "invalid service name");
    const char *region = p->region && *p->region ? p->region : NULL;
    if (region && !aws_endpoints_valid_region(region))
        return aws_error_set(err, AWS_ERR_INVALID_ARG,
                             "invalid region name (expected letters, digits and '-')");
    if (p->signing_name && !s_valid_service(p->signing_name))
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "invalid signing name");
    unsigned tags = (p->use_fips ? TAG_FIPS : 0) | (p->use_dualstack ? TAG_DUALSTACK : 0);
    if (!region && tags & TAG_DUALSTACK && strcmp(p->service, "s3") == 0)
        region = "us-east-1";

    /* The legacy global endpoints (no variants). */
    if (!tags && region) {
        const char *host = NULL;
        if (p->sts_legacy && strcmp(p->service, "sts") == 0 && s_in(region, s_legacy_sts))
            host = "sts.amazonaws.com";
        else if (p->s3_legacy && strcmp(p->service, "s3") == 0 &&
                 (strcmp(region, "us-east-1") == 0 || strcmp(region, "aws-global") == 0))
            host = "s3.amazonaws.com";
        if (host) {
            memset(out, 0, sizeof *out);
            snprintf(out->hostname, sizeof out->hostname, "%s", host);
            snprintf(out->url, sizeof out->url, "%s://%s", p->insecure ? "http" : "https", host);
            snprintf(out->region, sizeof out->region, "%s", region);
            snprintf(out->signing_region, sizeof out->signing_region, "us-east-1");
            snprintf(out->signing_name, sizeof out->signing_name, "%s",
                     p->signing_name ? p->signing_name : p->service);
            snprintf(out->partition, sizeof out->partition, "aws");
            snprintf(out->dns_suffix, sizeof out->dns_suffix, "amazonaws.com");
            return true;
        }
    }

    for (size_t i = 0; i < e->count; i++) {
        const s_partition *part = &e->parts[i];
        if ((tags & TAG_DUALSTACK) &&
            (strcmp(part->name, "aws-iso") == 0 || strcmp(part->name, "aws-iso-b") == 0))
            continue;
        int rc = s_for_partition(part, p, region, tags, false, out, err);
        if (rc != 0)
            return rc > 0;
    }
    /* No partition claimed the region: botocore retries in "aws", forced. */
    for (size_t i = 0; i < e->count; i++)
        if (strcmp(e->parts[i].name, "aws") == 0) {
            int rc = s_for_partition(&e->parts[i], p, region, tags, true, out, err);
            if (rc != 0)
                return rc > 0;
        }
    return aws_error_set(err, AWS_ERR_INVALID_ARG, "no endpoint for %s in region %s", p->service,
                         region ? region : "(none)");
}

/* ------------------------------------------------------------------------
 * S3 addressing
 * ---------------------------------------------------------------------- */

bool aws_s3_dns_compatible(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n < 3 || n > 63)
        return false;
    int dots = 0;
    bool all_digits_dots = true;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.')
            return false;
        if ((i == 0 || i + 1 == n) && !alnum)
            return false;
        if (c == '.') {
            dots++;
            if (b[i + 1] == '.' || b[i + 1] == '-' || (i > 0 && b[i - 1] == '-'))
                return false;
        }
        if (!(c == '.' || (c >= '0' && c <= '9')))
            all_digits_dots = false;
    }
    return !(all_digits_dots && dots == 3); /* looks like an IPv4 address */
}

bool aws_s3_bucket_url(const char *endpoint_url, const char *bucket, aws_s3_addressing style,
                       bool custom_endpoint, char *out, size_t n, bool *path_style,
                       aws_error *err)
{
    if (!endpoint_url || !bucket || !*bucket || !out || n == 0)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "aws_s3_bucket_url: missing argument");
    const char *sep = strstr(endpoint_url, "://");
    if (!sep || sep == endpoint_url || !sep[3])
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "endpoint URL without a scheme or host");
    size_t scheme_len = (size_t)(sep - endpoint_url);
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *path = auth + auth_len;
    size_t path_len = strcspn(path, "?#");
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    bool https = scheme_len == 5 && strncmp(endpoint_url, "https", 5) == 0;
    bool compatible = aws_s3_dns_compatible(bucket);
    bool use_path;
    if (style == AWS_S3_PATH)
        use_path = true;
    else if (style == AWS_S3_VIRTUAL) {
        if (!compatible)
            return aws_error_set(err, AWS_ERR_INVALID_ARG,
                                 "bucket name is not valid for virtual-hosted addressing");
        use_path = false;
    } else {
        use_path = custom_endpoint || !compatible || (https && strchr(bucket, '.'));
    }
    int w;
    if (use_path) {
        char *enc = aws_malloc(strlen(bucket) * 3 + 1);
        if (!enc)
            return aws_error_oom(err);
        size_t at = 0;
        for (const unsigned char *c = (const unsigned char *)bucket; *c; c++) {
            if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                *c == '-' || *c == '.' || *c == '_' || *c == '~') {
                enc[at++] = (char)*c;
            } else {
                static const char hex[] = "0123456789ABCDEF";
                enc[at++] = '%';
                enc[at++] = hex[*c >> 4];
                enc[at++] = hex[*c & 15];
            }
        }
        enc[at] = '\0';
        w = snprintf(out, n, "%.*s://%.*s%.*s/%s/", (int)scheme_len, endpoint_url, (int)auth_len,
                     auth, (int)path_len, path, enc);
        aws_free(enc);
    } else {
        w = snprintf(out, n, "%.*s://%s.%.*s%.*s/", (int)scheme_len, endpoint_url, bucket,
                     (int)auth_len, auth, (int)path_len, path);
    }
    if (w < 0 || (size_t)w >= n)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "bucket URL too long");
    if (path_style)
        *path_style = use_path;
    return true;
}
