/* Unit tests of aws/endpoints.c against botocore's endpoints.json (Debian's
 * python3-botocore copy): a table of service/region -> host, signing region
 * and partition (cross-checked with botocore's EndpointResolver), global
 * services, the cn / us-gov / iso partitions, FIPS and dual-stack variants,
 * the legacy STS / S3 global endpoints, validation, malformed documents and
 * S3 addressing. */
#include "endpoints.h"
#include "error.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ENDPOINTS_JSON "/usr/lib/python3/dist-packages/botocore/data/endpoints.json"

static aws_endpoints *s_resolver;

static int load_doc(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *doc = json_load_file(ENDPOINTS_JSON, 0, &jerr);
    if (!doc)
        return 0; /* tests skip */
    aws_error err;
    aws_error_clear(&err);
    s_resolver = aws_endpoints_new(doc, &err);
    json_decref(doc); /* the resolver keeps its own reference */
    if (!s_resolver)
        fprintf(stderr, "aws_endpoints_new: %s\n", err.message);
    return s_resolver ? 0 : -1;
}

static int free_doc(void **state)
{
    (void)state;
    aws_endpoints_free(s_resolver);
    s_resolver = NULL;
    return 0;
}

#define NEED_DOC()                                                                                 \
    do {                                                                                           \
        if (!s_resolver)                                                                           \
            skip();                                                                                \
    } while (0)

static aws_endpoint resolve_ok(const aws_endpoint_params *p)
{
    aws_endpoint ep;
    aws_error err;
    aws_error_clear(&err);
    if (!aws_endpoints_resolve(s_resolver, p, &ep, &err))
        fail_msg("%s/%s: %s", p->service, p->region ? p->region : "-", err.message);
    return ep;
}

static void botocore_table(void **state)
{
    (void)state;
    NEED_DOC();
    static const struct {
        const char *service, *region;
        bool fips, dualstack;
        const char *host, *signing_region, *partition;
    } cases[] = {
        {"cloudformation", "us-east-1", false, false, "cloudformation.us-east-1.amazonaws.com", "us-east-1", "aws"},
        {"cloudformation", "eu-west-1", false, false, "cloudformation.eu-west-1.amazonaws.com", "eu-west-1", "aws"},
        {"cloudformation", "eu-west-1", true, false, "cloudformation-fips.eu-west-1.amazonaws.com", "eu-west-1", "aws"},
        {"cloudformation", "us-east-1", true, false, "cloudformation-fips.us-east-1.amazonaws.com", "us-east-1", "aws"},
        {"cloudformation", "us-east-1", false, true, "cloudformation.us-east-1.api.aws", "us-east-1", "aws"},
        {"cloudformation", "us-east-1", true, true, "cloudformation-fips.us-east-1.api.aws", "us-east-1", "aws"},
        {"iam", "us-east-1", false, false, "iam.amazonaws.com", "us-east-1", "aws"},
        {"iam", "eu-west-1", false, false, "iam.amazonaws.com", "us-east-1", "aws"},
        {"iam", "us-east-1", true, false, "iam-fips.amazonaws.com", "us-east-1", "aws"},
        {"iam", "cn-north-1", false, false, "iam.cn-north-1.amazonaws.com.cn", "cn-north-1", "aws-cn"},
        {"iam", "cn-northwest-1", false, false, "iam.cn-north-1.amazonaws.com.cn", "cn-north-1", "aws-cn"},
        {"iam", "us-gov-east-1", false, false, "iam.us-gov.amazonaws.com", "us-gov-west-1", "aws-us-gov"},
        {"route53", "eu-west-1", false, false, "route53.amazonaws.com", "us-east-1", "aws"},
        {"route53", "cn-north-1", false, false, "route53.amazonaws.com.cn", "cn-northwest-1", "aws-cn"},
        {"route53", "us-gov-west-1", false, false, "route53.us-gov.amazonaws.com", "us-gov-west-1", "aws-us-gov"},
        {"organizations", "ap-south-1", false, false, "organizations.us-east-1.amazonaws.com", "us-east-1", "aws"},
        {"organizations", "cn-north-1", false, false, "organizations.cn-northwest-1.amazonaws.com.cn", "cn-northwest-1", "aws-cn"},
        {"sts", "us-east-1", false, false, "sts.us-east-1.amazonaws.com", "us-east-1", "aws"},
        {"sts", "eu-west-1", false, false, "sts.eu-west-1.amazonaws.com", "eu-west-1", "aws"},
        {"sts", "cn-north-1", false, false, "sts.cn-north-1.amazonaws.com.cn", "cn-north-1", "aws-cn"},
        {"sts", "us-gov-west-1", true, false, "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", "aws-us-gov"},
        {"sts", "aws-global", false, false, "sts.amazonaws.com", "us-east-1", "aws"},
        {"s3", "us-east-1", false, false, "s3.us-east-1.amazonaws.com", "us-east-1", "aws"},
        {"s3", "eu-west-1", false, false, "s3.eu-west-1.amazonaws.com", "eu-west-1", "aws"},
        {"s3", "us-east-1", false, true, "s3.dualstack.us-east-1.amazonaws.com", "us-east-1", "aws"},
        {"s3", "cn-north-1", false, false, "s3.cn-north-1.amazonaws.com.cn", "cn-north-1", "aws-cn"},
        {"s3", "aws-global", false, false, "s3.amazonaws.com", "us-east-1", "aws"},
        {"cloudfront", "eu-west-1", false, false, "cloudfront.amazonaws.com", "us-east-1", "aws"},
        {"ec2", "eu-west-1", false, true, "ec2.eu-west-1.api.aws", "eu-west-1", "aws"},
        {"ecs", "ap-northeast-1", false, false, "ecs.ap-northeast-1.amazonaws.com", "ap-northeast-1", "aws"},
        {"cloudformation", "cn-northwest-1", false, false, "cloudformation.cn-northwest-1.amazonaws.com.cn", "cn-northwest-1", "aws-cn"},
        {"cloudformation", "us-gov-west-1", false, false, "cloudformation.us-gov-west-1.amazonaws.com", "us-gov-west-1", "aws-us-gov"},
        {"cloudformation", "us-iso-east-1", false, false, "cloudformation.us-iso-east-1.c2s.ic.gov", "us-iso-east-1", "aws-iso"},
        {"cloudformation", "us-isob-east-1", false, false, "cloudformation.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1", "aws-iso-b"},
        {"portal.sso", "eu-west-1", false, false, "portal.sso.eu-west-1.amazonaws.com", "eu-west-1", "aws"},
        {"oidc", "us-east-2", false, false, "oidc.us-east-2.amazonaws.com", "us-east-2", "aws"},
        {"newsvc", "eu-west-1", false, false, "newsvc.eu-west-1.amazonaws.com", "eu-west-1", "aws"},
        {"cloudformation", "xx-future-1", false, false, "cloudformation.xx-future-1.amazonaws.com", "xx-future-1", "aws"},
        {"lambda", "eu-west-1", false, true, "lambda.eu-west-1.api.aws", "eu-west-1", "aws"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aws_endpoint_params p = {.service = cases[i].service, .region = cases[i].region,
                                 .use_fips = cases[i].fips, .use_dualstack = cases[i].dualstack};
        aws_endpoint ep = resolve_ok(&p);
        char url[300];
        snprintf(url, sizeof url, "https://%s", cases[i].host);
        if (strcmp(ep.hostname, cases[i].host) != 0 ||
            strcmp(ep.signing_region, cases[i].signing_region) != 0 ||
            strcmp(ep.partition, cases[i].partition) != 0 || strcmp(ep.url, url) != 0)
            fail_msg("%s/%s fips=%d dualstack=%d: got %s %s %s, want %s %s %s", cases[i].service,
                     cases[i].region, cases[i].fips, cases[i].dualstack, ep.url, ep.signing_region,
                     ep.partition, cases[i].host, cases[i].signing_region, cases[i].partition);
        assert_string_equal(ep.signing_name, cases[i].service);
    }
}

static void global_services_without_region(void **state)
{
    (void)state;
    NEED_DOC();
    static const char *const global[][2] = {
        {"iam", "iam.amazonaws.com"},
        {"route53", "route53.amazonaws.com"},
        {"organizations", "organizations.us-east-1.amazonaws.com"},
        {"cloudfront", "cloudfront.amazonaws.com"},
        {"sts", "sts.amazonaws.com"},
        {"s3", "s3.amazonaws.com"},
    };
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++) {
        aws_endpoint_params p = {.service = global[i][0]};
        aws_endpoint ep = resolve_ok(&p);
        assert_string_equal(ep.hostname, global[i][1]);
        assert_string_equal(ep.signing_region, "us-east-1");
        assert_string_equal(ep.region, "aws-global");
    }
    aws_endpoint_params p = {.service = "cloudformation"};
    aws_endpoint ep;
    aws_error err;
    aws_error_clear(&err);
    assert_false(aws_endpoints_resolve(s_resolver, &p, &ep, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "no region"));
    /* dual-stack S3 without a region means us-east-1 */
    p = (aws_endpoint_params){.service = "s3", .use_dualstack = true};
    ep = resolve_ok(&p);
    assert_string_equal(ep.hostname, "s3.dualstack.us-east-1.amazonaws.com");
}

static void legacy_global_endpoints(void **state)
{
    (void)state;
    NEED_DOC();
    aws_endpoint_params p = {.service = "sts", .region = "eu-west-1", .sts_legacy = true};
    aws_endpoint ep = resolve_ok(&p);
    assert_string_equal(ep.url, "https://sts.amazonaws.com");
    assert_string_equal(ep.signing_region, "us-east-1");
    assert_string_equal(ep.region, "eu-west-1");
    /* not a legacy global region: regional even in legacy mode */
    p.region = "ap-east-1";
    ep = resolve_ok(&p);
    assert_string_equal(ep.hostname, "sts.ap-east-1.amazonaws.com");
    assert_string_equal(ep.signing_region, "ap-east-1");
    /* FIPS wins over legacy */
    p.region = "us-east-1";
    p.use_fips = true;
    ep = resolve_ok(&p);
    assert_string_equal(ep.hostname, "sts-fips.us-east-1.amazonaws.com");
    p = (aws_endpoint_params){.service = "s3", .region = "us-east-1", .s3_legacy = true};
    ep = resolve_ok(&p);
    assert_string_equal(ep.hostname, "s3.amazonaws.com");
    p.s3_legacy = false;
    ep = resolve_ok(&p);
    assert_string_equal(ep.hostname, "s3.us-east-1.amazonaws.com");
}

static void signing_name_scheme_and_deprecation(void **state)
{
    (void)state;
    NEED_DOC();
    aws_endpoint_params p = {.service = "portal.sso", .region = "eu-west-1",
                             .signing_name = "awsssoportal", .insecure = true};
    aws_endpoint ep = resolve_ok(&p);
    assert_string_equal(ep.signing_name, "awsssoportal");
    assert_string_equal(ep.url, "http://portal.sso.eu-west-1.amazonaws.com");
    /* credentialScope.service beats the model's signing name */
    static const char custom[] =
        "{\"version\":3,\"partitions\":[{\"partition\":\"p\",\"dnsSuffix\":\"example.com\","
        "\"regionRegex\":\"^zz\\\\-\\\\w+\\\\-\\\\d+$\",\"regions\":{\"zz-a-1\":{}},"
        "\"defaults\":{\"hostname\":\"{service}.{region}.{dnsSuffix}\",\"protocols\":[\"http\"]},"
        "\"services\":{\"svc\":{\"endpoints\":{\"zz-a-1\":{\"deprecated\":true,"
        "\"credentialScope\":{\"service\":\"scoped\",\"region\":\"zz-b-2\"}}}},"
        "\"bad\":{\"defaults\":{\"hostname\":\"{oops}.x\"},\"endpoints\":{}}}}]}";
    json_t *doc = json_loads(custom, 0, NULL);
    assert_non_null(doc);
    aws_endpoints *r = aws_endpoints_new(doc, NULL);
    json_decref(doc);
    assert_non_null(r);
    aws_endpoints *saved = s_resolver;
    s_resolver = r;
    p = (aws_endpoint_params){.service = "svc", .region = "zz-a-1", .signing_name = "model"};
    ep = resolve_ok(&p);
    assert_string_equal(ep.signing_name, "scoped");
    assert_string_equal(ep.signing_region, "zz-b-2");
    assert_true(ep.deprecated);
    assert_string_equal(ep.url, "http://svc.zz-a-1.example.com"); /* no https in protocols */
    assert_string_equal(aws_endpoints_partition(r, "zz-q-9"), "p");
    assert_null(aws_endpoints_partition(r, "us-east-1"));
    aws_error err;
    aws_error_clear(&err);
    p = (aws_endpoint_params){.service = "bad", .region = "zz-a-1"};
    assert_false(aws_endpoints_resolve(r, &p, &ep, &err));
    assert_int_equal(err.code, AWS_ERR_PARSE);
    s_resolver = saved;
    aws_endpoints_free(r);
}

static void rejects_bad_names(void **state)
{
    (void)state;
    NEED_DOC();
    static const char *const regions[] = {"us-east-1.evil.com", "us-east-1/", "-us", "us-",
                                          "us east", "a\nb", ""};
    for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++) {
        aws_endpoint_params p = {.service = "cloudformation", .region = regions[i]};
        aws_endpoint ep;
        aws_error err;
        aws_error_clear(&err);
        bool ok = aws_endpoints_resolve(s_resolver, &p, &ep, &err);
        if (regions[i][0] == '\0') {
            assert_false(ok); /* "" = no region: cloudformation has no global endpoint */
            assert_non_null(strstr(err.message, "no region"));
        } else {
            assert_false(ok);
            assert_non_null(strstr(err.message, "invalid region"));
        }
    }
    assert_true(aws_endpoints_valid_region("eu-west-1"));
    assert_true(aws_endpoints_valid_region("A1"));
    assert_false(aws_endpoints_valid_region(NULL));
    char long_region[80];
    memset(long_region, 'a', sizeof long_region - 1);
    long_region[sizeof long_region - 1] = '\0';
    assert_false(aws_endpoints_valid_region(long_region));
    static const char *const services[] = {"Cloud", "s3/../x", "", "a b"};
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        aws_endpoint_params p = {.service = services[i], .region = "us-east-1"};
        aws_endpoint ep;
        aws_error err;
        aws_error_clear(&err);
        assert_false(aws_endpoints_resolve(s_resolver, &p, &ep, &err));
        assert_non_null(strstr(err.message, "invalid service"));
    }
    assert_false(aws_endpoints_resolve(NULL, NULL, NULL, NULL));
}

static void malformed_documents(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}", "[]", "{\"partitions\": []}", "{\"partitions\": [1]}",
        "{\"partitions\": [{\"partition\": \"p\"}]}",
        "{\"partitions\": [{\"partition\": \"p\", \"services\": {}, \"dnsSuffix\": \"x\", "
        "\"regionRegex\": \"(unclosed\"}]}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *doc = json_loads(docs[i], 0, NULL);
        assert_non_null(doc);
        aws_error err;
        aws_error_clear(&err);
        aws_endpoints *r = aws_endpoints_new(doc, &err);
        json_decref(doc);
        assert_null(r);
        assert_int_equal(err.code, AWS_ERR_PARSE);
    }
    aws_endpoints_free(NULL);
}

static void s3_addressing(void **state)
{
    (void)state;
    static const struct {
        const char *endpoint, *bucket;
        aws_s3_addressing style;
        bool custom;
        const char *want;
        bool path;
    } cases[] = {
        {"https://s3.eu-west-1.amazonaws.com", "my-bucket", AWS_S3_AUTO, false,
         "https://my-bucket.s3.eu-west-1.amazonaws.com/", false},
        {"http://localhost:4566", "my-bucket", AWS_S3_AUTO, true, "http://localhost:4566/my-bucket/", true},
        {"http://localhost:4566/", "my-bucket", AWS_S3_VIRTUAL, true, "http://my-bucket.localhost:4566/", false},
        {"https://minio.local:9000/base/", "b1c", AWS_S3_AUTO, true, "https://minio.local:9000/base/b1c/", true},
        {"https://s3.amazonaws.com", "a.b.c", AWS_S3_AUTO, false, "https://s3.amazonaws.com/a.b.c/", true},
        {"http://s3.amazonaws.com", "a.b.c", AWS_S3_AUTO, false, "http://a.b.c.s3.amazonaws.com/", false},
        {"https://s3.amazonaws.com", "Bad_Name", AWS_S3_AUTO, false, "https://s3.amazonaws.com/Bad_Name/", true},
        {"https://s3.amazonaws.com", "weird name", AWS_S3_PATH, false, "https://s3.amazonaws.com/weird%20name/", true},
        {"https://s3.amazonaws.com", "192.168.1.1", AWS_S3_AUTO, false, "https://s3.amazonaws.com/192.168.1.1/", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        bool path = !cases[i].path;
        aws_error err;
        aws_error_clear(&err);
        if (!aws_s3_bucket_url(cases[i].endpoint, cases[i].bucket, cases[i].style, cases[i].custom, out,
                               sizeof out, &path, &err))
            fail_msg("%s: %s", cases[i].bucket, err.message);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(path, cases[i].path);
    }
    char out[16];
    aws_error err;
    aws_error_clear(&err);
    assert_false(aws_s3_bucket_url("https://s3.amazonaws.com", "ab", AWS_S3_VIRTUAL, false, out, sizeof out,
                                   NULL, &err));
    assert_false(aws_s3_bucket_url("https://s3.amazonaws.com", "long-enough", AWS_S3_AUTO, false, out,
                                   sizeof out, NULL, &err));
    assert_non_null(strstr(err.message, "too long"));
    assert_false(aws_s3_bucket_url("s3.amazonaws.com", "bucket", AWS_S3_AUTO, false, out, sizeof out,
                                   NULL, &err));
    assert_true(aws_s3_dns_compatible("abc"));
    assert_false(aws_s3_dns_compatible("a..b"));
    assert_false(aws_s3_dns_compatible("-ab"));
    assert_false(aws_s3_dns_compatible("ab-"));
    assert_false(aws_s3_dns_compatible("a.-b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(botocore_table),
        cmocka_unit_test(global_services_without_region),
        cmocka_unit_test(legacy_global_endpoints),
        cmocka_unit_test(signing_name_scheme_and_deprecation),
        cmocka_unit_test(rejects_bad_names),
        cmocka_unit_test(malformed_documents),
        cmocka_unit_test(s3_addressing),
    };
    return cmocka_run_group_tests(tests, load_doc, free_doc);
}
