/* Unit tests of the request serializers (aws/codec*.c) on the embedded
 * models (sts, cloudformation, ec2, s3, dynamodb, eks) and on small
 * hand-written models: idempotency tokens, host prefixes and labels, URI
 * escaping, header maps, XML namespaces, timestamps, blobs, special floats,
 * Content-MD5, hostile input (unknown keys, wrong types, deep nesting, header
 * injection, bad UTF-8) and allocation-failure injection.  The suites of
 * botocore run in conformance_protocols.c. */
#include "codec.h"
#include "model.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failalloc.h"

/* counting allocator: tests/c/support/failalloc.h */


static int setup(void **state)
{
    (void)state;
    aws_set_allocator(&counting);
    alloc_live = 0;
    alloc_fail_at = -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    aws_model_cache_clear();
    aws_set_allocator(NULL);
    if (alloc_live != 0)
        fail_msg("leak: %ld blocks outstanding", alloc_live);
    return 0;
}

/* ---------------------------------------------- helpers */

static bool fixed_token(void *ud, char out[64])
{
    snprintf(out, 64, "%s", ud ? (const char *)ud : "tok-1");
    return true;
}

static const aws_model *model(const char *name)
{
    aws_error err;
    aws_error_clear(&err);
    const aws_model *m = aws_model_get(name, &err);
    if (!m)
        fail_msg("model %s: %s", name, err.message);
    return m;
}

/* Serializes `params` (JSON text) for service/op; fails the test on error. */
static void ser_ok(const aws_model *m, const char *op, const char *params, aws_http_request *r)
{
    json_error_t je;
    json_t *in = params ? json_loads(params, JSON_ALLOW_NUL, &je) : NULL;
    if (params && !in)
        fail_msg("bad test JSON: %s", je.text);
    aws_serialize_opts o = {.host = "svc.example.com", .idempotency_token = fixed_token};
    aws_error err;
    aws_error_clear(&err);
    aws_http_request_init(r);
    const aws_operation *opm = aws_model_operation(m, op);
    assert_non_null(opm);
    bool ok = aws_serialize(m, opm, in, &o, r, &err);
    json_decref(in);
    if (!ok)
        fail_msg("%s: %s", op, err.message);
}

static aws_errcode ser_fail(const aws_model *m, const char *op, const char *params,
                            const char *msg_part)
{
    json_t *in = json_loads(params, 0, NULL);
    assert_non_null(in);
    aws_serialize_opts o = {.host = "svc.example.com", .idempotency_token = fixed_token};
    aws_error err;
    aws_error_clear(&err);
    aws_http_request r;
    aws_http_request_init(&r);
    bool ok = aws_serialize(m, aws_model_operation(m, op), in, &o, &r, &err);
    json_decref(in);
    assert_false(ok);
    assert_null(r.body); /* left clean */
    assert_int_equal(r.header_count, 0);
    if (msg_part && !strstr(err.message, msg_part))
        fail_msg("error \"%s\" lacks \"%s\"", err.message, msg_part);
    return err.code;
}

static aws_model *mini(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    if (!doc)
        fail_msg("bad model JSON: %s (line %d)", je.text, je.line);
    aws_error err;
    aws_error_clear(&err);
    aws_model *m = aws_model_from_json(doc, &err);
    json_decref(doc);
    if (!m)
        fail_msg("model: %s", err.message);
    return m;
}

/* ---------------------------------------------- query / ec2 */

static void sts_assume_role(void **state)
{
    (void)state;
    aws_http_request r;
    ser_ok(model("sts"), "AssumeRole",
           "{\"RoleArn\":\"arn:aws:iam::123456789012:role/a b\",\"RoleSessionName\":\"s\","
           "\"DurationSeconds\":900,\"Tags\":[{\"Key\":\"k\",\"Value\":\"v=1&2\"}],"
           "\"PolicyArns\":[]}",
           &r);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/");
    assert_string_equal(r.query, "");
    assert_string_equal(r.host, "svc.example.com");
    assert_string_equal(aws_http_request_header(&r, "content-type"),
                        "application/x-www-form-urlencoded; charset=utf-8");
    /* model member order; empty lists are sent as an empty value */
    assert_string_equal(r.body, "Action=AssumeRole&Version=2011-06-15"
                                "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fa%20b"
                                "&RoleSessionName=s&PolicyArns=&DurationSeconds=900"
                                "&Tags.member.1.Key=k&Tags.member.1.Value=v%3D1%262");
    assert_int_equal(r.body_len, strlen(r.body));
    aws_http_request_clean(&r);
    aws_http_request_clean(&r); /* idempotent */
}

static void cloudformation_create_stack(void **state)
{
    (void)state;
    aws_http_request r;
    ser_ok(model("cloudformation"), "CreateStack",
           "{\"StackName\":\"st\",\"TemplateBody\":\"{}\",\"Parameters\":[{\"ParameterKey\":"
           "\"P\",\"ParameterValue\":\"ü\"}],\"Capabilities\":[\"CAPABILITY_IAM\"],"
           "\"DisableRollback\":false,\"TimeoutInMinutes\":5}",
           &r);
    assert_non_null(strstr(r.body, "&Parameters.member.1.ParameterKey=P"
                                    "&Parameters.member.1.ParameterValue=%C3%BC"));
    assert_non_null(strstr(r.body, "&DisableRollback=false"));
    assert_non_null(strstr(r.body, "&Capabilities.member.1=CAPABILITY_IAM"));
    assert_non_null(strstr(r.body, "&TemplateBody=%7B%7D"));
    /* ClientRequestToken is an idempotency token: filled in */
    assert_null(strstr(r.body, "ClientRequestToken"));
    aws_http_request_clean(&r);
}

static void ec2_names_and_lists(void **state)
{
    (void)state;
    aws_http_request r;
    ser_ok(model("ec2"), "DescribeInstances",
           "{\"Filters\":[{\"Name\":\"tag:Name\",\"Values\":[\"a\",\"b\"]}],"
           "\"InstanceIds\":[\"i-1\"],\"DryRun\":true,\"MaxResults\":5}",
           &r);
    assert_string_equal(r.body, "Action=DescribeInstances&Version=2016-11-15"
                                "&Filter.1.Name=tag%3AName&Filter.1.Value.1=a&Filter.1.Value.2=b"
                                "&InstanceId.1=i-1&DryRun=true&MaxResults=5");
    aws_http_request_clean(&r);
    /* RunInstances: ClientToken (idempotency token) is generated */
    ser_ok(model("ec2"), "RunInstances", "{\"MinCount\":1,\"MaxCount\":1,\"ImageId\":\"ami-1\"}",
           &r);
    assert_non_null(strstr(r.body, "&ClientToken=tok-1"));
    aws_http_request_clean(&r);
    ser_ok(model("ec2"), "RunInstances",
           "{\"MinCount\":1,\"MaxCount\":1,\"ClientToken\":\"mine\"}", &r);
    assert_non_null(strstr(r.body, "&ClientToken=mine"));
    assert_null(strstr(r.body, "tok-1"));
    aws_http_request_clean(&r);
}

static void default_token_is_uuid4(void **state)
{
    (void)state;
    const aws_model *m = model("ec2");
    json_t *in = json_pack("{s:i,s:i}", "MinCount", 1, "MaxCount", 1);
    aws_http_request r;
    aws_http_request_init(&r);
    aws_error err;
    aws_error_clear(&err);
    assert_true(aws_serialize(m, aws_model_operation(m, "RunInstances"), in, NULL, &r, &err));
    const char *t = strstr(r.body, "ClientToken=");
    assert_non_null(t);
    t += strlen("ClientToken=");
    assert_true(strlen(t) >= 36);
    assert_int_equal(t[8], '-');
    assert_int_equal(t[14], '4');
    assert_non_null(strchr("89ab", t[19]));
    assert_null(r.host); /* no opts->host */
    json_decref(in);
    aws_http_request_clean(&r);
    char a[37], b[37];
    assert_true(aws_uuid4(a) && aws_uuid4(b));
    assert_string_not_equal(a, b);
}

/* ---------------------------------------------- rest-xml (s3) */

static void s3_put_object(void **state)
{
    (void)state;
    aws_http_request r;
    ser_ok(model("s3"), "PutObject",
           "{\"Bucket\":\"bkt\",\"Key\":\"dir/a b+c~/ü\",\"Body\":\"hello\","
           "\"Metadata\":{\"owner\":\"me\"},\"ContentType\":\"text/plain\","
           "\"Expires\":1398796238,\"ServerSideEncryption\":\"AES256\"}",
           &r);
    assert_string_equal(r.method, "PUT");
    /* greedy label: '/' kept, everything else but unreserved escaped */
    assert_string_equal(r.path, "/bkt/dir/a%20b%2Bc~/%C3%BC");
    assert_string_equal(r.query, "");
    assert_string_equal(r.body, "hello");
    assert_int_equal(r.body_len, 5);
    assert_string_equal(aws_http_request_header(&r, "x-amz-meta-owner"), "me");
    assert_string_equal(aws_http_request_header(&r, "Content-Type"), "text/plain");
    assert_string_equal(aws_http_request_header(&r, "Expires"), "Tue, 29 Apr 2014 18:30:38 GMT");
    assert_string_equal(aws_http_request_header(&r, "x-amz-server-side-encryption"), "AES256");
    aws_http_request_clean(&r);
}

static void s3_create_bucket_and_queries(void **state)
{
    (void)state;
    aws_http_request r;
    ser_ok(model("s3"), "CreateBucket",
           "{\"Bucket\":\"bkt\",\"CreateBucketConfiguration\":{\"LocationConstraint\":"
           "\"eu-west-1\"}}",
           &r);
    assert_string_equal(r.path, "/bkt");
    assert_string_equal(r.body, "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/"
                                "2006-03-01/\"><LocationConstraint>eu-west-1</LocationConstraint>"
                                "</CreateBucketConfiguration>");
    assert_string_equal(aws_http_request_header(&r, "Content-Type"), "application/xml");
    aws_http_request_clean(&r);
    /* literal query of requestUri first, then querystring members */
    ser_ok(model("s3"), "ListObjectsV2",
           "{\"Bucket\":\"bkt\",\"Prefix\":\"a/b c\",\"MaxKeys\":10}", &r);
    assert_string_equal(r.path, "/bkt");
    assert_string_equal(r.query, "list-type=2&max-keys=10&prefix=a%2Fb%20c");
    assert_string_equal(r.body, "");
    assert_null(aws_http_request_header(&r, "Content-Type"));
    aws_http_request_clean(&r);
    /* PutBucketTagging requires a checksum: Content-MD5 of the body */
    ser_ok(model("s3"), "PutBucketTagging",
           "{\"Bucket\":\"b\",\"Tagging\":{\"TagSet\":[{\"Key\":\"k\",\"Value\":\"<&>\"}]}}",
           &r);
    assert_string_equal(r.query, "tagging");
    assert_non_null(strstr(r.body, "<TagSet><Tag><Key>k</Key><Value>&lt;&amp;&gt;</Value>"));
    assert_non_null(aws_http_request_header(&r, "Content-MD5"));
    assert_int_equal(strlen(aws_http_request_header(&r, "Content-MD5")), 24);
    aws_http_request_clean(&r);
}

static void s3_missing_label(void **state)
{
    (void)state;
    assert_int_equal(ser_fail(model("s3"), "GetObject", "{\"Bucket\":\"b\"}", "Key"),
                     AWS_ERR_INVALID_ARG);
    assert_int_equal(ser_fail(model("s3"), "GetObject", "{\"Bucket\":\"b\",\"Key\":\"\"}",
                              "parameter Key: a URI label cannot be empty"),
                     AWS_ERR_INVALID_ARG);
}

/* ---------------------------------------------- json / rest-json */

static void dynamodb_put_item(void **state)
{
    (void)state;
    aws_http_request r;
    ser_ok(model("dynamodb"), "PutItem",
           "{\"TableName\":\"t\",\"Item\":{\"id\":{\"S\":\"1\"},\"n\":{\"N\":\"2.5\"},"
           "\"b\":{\"B\":\"\\u0000\\u0001\"},\"l\":{\"L\":[{\"BOOL\":true},{\"NULL\":true}]}}}",
           &r);
    assert_string_equal(aws_http_request_header(&r, "X-Amz-Target"), "DynamoDB_20120810.PutItem");
    assert_string_equal(aws_http_request_header(&r, "Content-Type"), "application/x-amz-json-1.0");
    json_t *body = json_loads(r.body, 0, NULL);
    assert_non_null(body);
    json_t *want = json_loads("{\"TableName\":\"t\",\"Item\":{\"id\":{\"S\":\"1\"},\"n\":{\"N\":"
                              "\"2.5\"},\"b\":{\"B\":\"AAE=\"},\"l\":{\"L\":[{\"BOOL\":true},"
                              "{\"NULL\":true}]}}}",
                              0, NULL);
    assert_true(json_equal(body, want));
    json_decref(body);
    json_decref(want);
    aws_http_request_clean(&r);
    /* no input at all: "{}" */
    ser_ok(model("dynamodb"), "ListTables", NULL, &r);
    assert_string_equal(r.body, "{}");
    aws_http_request_clean(&r);
}

static void eks_rest_json(void **state)
{
    (void)state;
    aws_http_request r;
    ser_ok(model("eks"), "ListClusters", "{\"maxResults\":10,\"nextToken\":\"a+b\"}", &r);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/clusters");
    assert_string_equal(r.query, "maxResults=10&nextToken=a%2Bb");
    assert_string_equal(r.body, "");
    aws_http_request_clean(&r);
    ser_ok(model("eks"), "CreateCluster",
           "{\"name\":\"c\",\"roleArn\":\"arn\",\"resourcesVpcConfig\":{\"subnetIds\":[\"s\"]},"
           "\"tags\":{\"a\":\"b\"}}",
           &r);
    assert_string_equal(r.path, "/clusters");
    assert_string_equal(aws_http_request_header(&r, "Content-Type"), "application/json");
    json_t *body = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "clientRequestToken")), "tok-1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(body, "tags"), "a")),
                        "b");
    json_decref(body);
    aws_http_request_clean(&r);
    /* a URI label with a slash is escaped (not greedy) */
    ser_ok(model("eks"), "DescribeCluster", "{\"name\":\"a/b\"}", &r);
    assert_string_equal(r.path, "/clusters/a%2Fb");
    aws_http_request_clean(&r);
}

/* ---------------------------------------------- hand-written models */

static const char *mini_rest =
    "{\"metadata\":{\"protocol\":\"rest-json\",\"apiVersion\":\"2020-01-01\"},"
    "\"operations\":{"
    " \"Op\":{\"name\":\"Op\",\"http\":{\"method\":\"POST\",\"requestUri\":\"/o/{Id}\"},"
    "   \"input\":{\"shape\":\"In\"},\"endpoint\":{\"hostPrefix\":\"{Acct}.data.\"}},"
    " \"Deep\":{\"name\":\"Deep\",\"http\":{\"method\":\"POST\",\"requestUri\":\"/\"},"
    "   \"input\":{\"shape\":\"Node\"}}},"
    "\"shapes\":{"
    " \"In\":{\"type\":\"structure\",\"required\":[\"Id\"],\"members\":{"
    "  \"Id\":{\"shape\":\"S\",\"location\":\"uri\",\"locationName\":\"Id\"},"
    "  \"Acct\":{\"shape\":\"S\",\"hostLabel\":true,\"location\":\"header\",\"locationName\":\"x-acct\"},"
    "  \"When\":{\"shape\":\"T\",\"location\":\"querystring\",\"locationName\":\"when\"},"
    "  \"Epoch\":{\"shape\":\"T\",\"location\":\"header\",\"locationName\":\"x-epoch\","
    "     \"timestampFormat\":\"unixTimestamp\"},"
    "  \"Tags\":{\"shape\":\"SL\",\"location\":\"header\",\"locationName\":\"x-tags\"},"
    "  \"Doc\":{\"shape\":\"S\",\"jsonvalue\":true,\"location\":\"header\",\"locationName\":\"x-doc\"},"
    "  \"F\":{\"shape\":\"D\"},\"B\":{\"shape\":\"Blob\"},\"Ts\":{\"shape\":\"T\"},"
    "  \"Iso\":{\"shape\":\"T\",\"timestampFormat\":\"iso8601\"},\"Free\":{\"shape\":\"Document\"}}},"
    " \"Node\":{\"type\":\"structure\",\"members\":{\"Next\":{\"shape\":\"Node\"}}},"
    " \"S\":{\"type\":\"string\"},\"T\":{\"type\":\"timestamp\"},\"D\":{\"type\":\"double\"},"
    " \"Blob\":{\"type\":\"blob\"},\"SL\":{\"type\":\"list\",\"member\":{\"shape\":\"S\"}},"
    " \"Document\":{\"type\":\"structure\",\"members\":{},\"document\":true}}}";

static void rest_details(void **state)
{
    (void)state;
    aws_model *m = mini(mini_rest);
    aws_http_request r;
    ser_ok(m, "Op",
           "{\"Id\":\"x y\",\"Acct\":\"123\",\"When\":1398796238.5,\"Epoch\":1398796238,"
           "\"Tags\":[\"a\",\"b,c\",\"d\\\"e\"],\"Doc\":{\"k\":[1,true]},\"F\":\"NaN\","
           "\"B\":\"\\u00ff\",\"Ts\":1.25,\"Iso\":\"2014-04-29T18:30:38Z\","
           "\"Free\":{\"any\":[null,1.5]}}",
           &r);
    assert_string_equal(r.host, "123.data.svc.example.com");
    assert_string_equal(r.host_prefix, "123.data.");
    assert_string_equal(r.path, "/o/x%20y");
    assert_string_equal(r.query, "when=2014-04-29T18%3A30%3A38.500000Z");
    assert_string_equal(aws_http_request_header(&r, "x-acct"), "123");
    assert_string_equal(aws_http_request_header(&r, "x-epoch"), "1398796238");
    assert_string_equal(aws_http_request_header(&r, "x-tags"), "a, \"b,c\", \"d\\\"e\"");
    assert_string_equal(aws_http_request_header(&r, "x-doc"), "eyJrIjpbMSx0cnVlXX0=");
    json_t *body = json_loads(r.body, 0, NULL);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "F")), "NaN");
    assert_string_equal(json_string_value(json_object_get(body, "B")), "w78=");
    assert_true(json_real_value(json_object_get(body, "Ts")) == 1.25);
    assert_string_equal(json_string_value(json_object_get(body, "Iso")), "2014-04-29T18:30:38Z");
    assert_true(json_is_null(json_array_get(json_object_get(json_object_get(body, "Free"), "any"),
                                            0)));
    json_decref(body);
    aws_http_request_clean(&r);

    /* host labels are validated */
    assert_int_equal(ser_fail(m, "Op", "{\"Id\":\"1\",\"Acct\":\"evil.com/\"}", "Acct"),
                     AWS_ERR_INVALID_ARG);
    assert_int_equal(ser_fail(m, "Op", "{\"Id\":\"1\"}", "Acct"), AWS_ERR_INVALID_ARG);
    /* hostile values */
    assert_int_equal(ser_fail(m, "Op", "{\"Id\":\"1\",\"Acct\":\"1\",\"Tags\":[\"a\\r\\nX: y\"]}",
                              "CR"),
                     AWS_ERR_INVALID_ARG);
    assert_int_equal(ser_fail(m, "Op", "{\"Id\":\"1\",\"Acct\":\"1\",\"Nope\":1}",
                              "unknown parameter \"Nope\""),
                     AWS_ERR_INVALID_ARG);
    assert_int_equal(ser_fail(m, "Op", "{\"Id\":\"1\",\"Acct\":\"1\",\"F\":\"fast\"}",
                              "parameter F: expected number"),
                     AWS_ERR_INVALID_ARG);
    assert_int_equal(ser_fail(m, "Op", "{\"Id\":\"1\",\"Acct\":\"1\",\"Ts\":\"yesterday\"}",
                              "invalid timestamp"),
                     AWS_ERR_INVALID_ARG);
    assert_int_equal(ser_fail(m, "Op", "{\"Id\":7,\"Acct\":\"1\"}", "parameter Id"),
                     AWS_ERR_INVALID_ARG);

    /* the host prefix can be turned off */
    json_t *in = json_pack("{s:s}", "Id", "1");
    aws_serialize_opts o = {.host = "h", .disable_host_prefix = true, .base_path = "/base/"};
    aws_error err;
    aws_error_clear(&err);
    aws_http_request_init(&r);
    assert_true(aws_serialize(m, aws_model_operation(m, "Op"), in, &o, &r, &err));
    assert_string_equal(r.host, "h");
    assert_string_equal(r.path, "/base/o/1");
    json_decref(in);
    aws_http_request_clean(&r);
    aws_model_free(m);
}

static void deep_and_invalid_input(void **state)
{
    (void)state;
    aws_model *m = mini(mini_rest);
    /* 150 levels of a recursive shape: refused, not a stack overflow */
    json_t *root = json_object(), *cur = root;
    for (int i = 0; i < 150; i++) {
        json_t *next = json_object();
        json_object_set_new(cur, "Next", next);
        cur = next;
    }
    aws_error err;
    aws_error_clear(&err);
    aws_http_request r;
    aws_http_request_init(&r);
    assert_false(aws_serialize(m, aws_model_operation(m, "Deep"), root, NULL, &r, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "deeper"));
    json_decref(root);
    /* input must be an object */
    json_t *arr = json_array();
    aws_error_clear(&err);
    assert_false(aws_serialize(m, aws_model_operation(m, "Deep"), arr, NULL, &r, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    json_decref(arr);
    /* invalid UTF-8 cannot go into a JSON body */
    json_t *bad = json_pack("{s:s,s:s,s:o}", "Id", "1", "Acct", "1", "Free",
                            json_stringn_nocheck("\xff\xfe", 2));
    aws_error_clear(&err);
    assert_false(aws_serialize(m, aws_model_operation(m, "Op"), bad, NULL, &r, &err));
    assert_non_null(strstr(err.message, "UTF-8"));
    json_decref(bad);
    aws_error_clear(&err);
    assert_false(aws_serialize(m, NULL, NULL, NULL, &r, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    aws_model_free(m);
}

static void xml_attributes_and_maps(void **state)
{
    (void)state;
    aws_model *m = mini(
        "{\"metadata\":{\"protocol\":\"rest-xml\",\"apiVersion\":\"1\"},"
        "\"operations\":{\"Put\":{\"name\":\"Put\",\"http\":{\"method\":\"PUT\",\"requestUri\":\"/\"},"
        " \"input\":{\"shape\":\"In\",\"locationName\":\"Root\",\"xmlNamespace\":{\"uri\":\"urn:x\","
        "  \"prefix\":\"p\"}}}},"
        "\"shapes\":{\"In\":{\"type\":\"structure\",\"members\":{"
        " \"Grantee\":{\"shape\":\"G\",\"locationName\":\"Grantee\"},"
        " \"M\":{\"shape\":\"Map\"},\"FM\":{\"shape\":\"Map\",\"flattened\":true},"
        " \"FL\":{\"shape\":\"L\",\"flattened\":true,\"locationName\":\"Item\"},\"Ok\":{\"shape\":\"Bool\"}}},"
        " \"G\":{\"type\":\"structure\",\"xmlNamespace\":{\"prefix\":\"xsi\","
        "   \"uri\":\"http://www.w3.org/2001/XMLSchema-instance\"},\"members\":{"
        "   \"Type\":{\"shape\":\"S\",\"xmlAttribute\":true,\"locationName\":\"xsi:type\"},"
        "   \"ID\":{\"shape\":\"S\"}}},"
        " \"Map\":{\"type\":\"map\",\"key\":{\"shape\":\"S\",\"locationName\":\"K\"},"
        "   \"value\":{\"shape\":\"S\"}},"
        " \"L\":{\"type\":\"list\",\"member\":{\"shape\":\"S\"}},"
        " \"S\":{\"type\":\"string\"},\"Bool\":{\"type\":\"boolean\"}}}");
    aws_http_request r;
    ser_ok(m, "Put",
           "{\"Grantee\":{\"Type\":\"Canonical\\\"User\",\"ID\":\"1\"},\"M\":{\"a\":\"1\"},"
           "\"FM\":{\"b\":\"2\"},\"FL\":[\"x\",\"y\"],\"Ok\":false}",
           &r);
    assert_string_equal(
        r.body,
        "<Root xmlns:p=\"urn:x\"><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
        " xsi:type=\"Canonical&quot;User\"><ID>1</ID></Grantee>"
        "<M><entry><K>a</K><value>1</value></entry></M><FM><K>b</K><value>2</value></FM>"
        "<Item>x</Item><Item>y</Item><Ok>false</Ok></Root>");
    aws_http_request_clean(&r);
    /* control characters cannot be carried by XML 1.0 */
    assert_int_equal(ser_fail(m, "Put", "{\"Grantee\":{\"ID\":\"a\\u0001\"}}", "XML"),
                     AWS_ERR_INVALID_ARG);
    aws_model_free(m);
}

/* ---------------------------------------------- helpers: time, base64 */

static void timestamps(void **state)
{
    (void)state;
    char buf[40];
    assert_true(aws_timestamp_format(1398796238, "iso8601", buf));
    assert_string_equal(buf, "2014-04-29T18:30:38Z");
    assert_true(aws_timestamp_format(1398796238.123, "iso8601", buf));
    assert_string_equal(buf, "2014-04-29T18:30:38.123000Z");
    assert_true(aws_timestamp_format(1398796238, "rfc822", buf));
    assert_string_equal(buf, "Tue, 29 Apr 2014 18:30:38 GMT");
    assert_true(aws_timestamp_format(-1, "iso8601", buf));
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    assert_true(aws_timestamp_format(0, "rfc822", buf));
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_true(aws_timestamp_format(1.5, "unixTimestamp", buf));
    assert_string_equal(buf, "1.5");
    assert_true(aws_timestamp_format(951782400, "iso8601", buf)); /* leap day */
    assert_string_equal(buf, "2000-02-29T00:00:00Z");
    assert_false(aws_timestamp_format(NAN, "iso8601", buf));
    assert_false(aws_timestamp_format(1e15, "iso8601", buf));

    static const struct {
        const char *s;
        double t;
    } ok[] = {
        {"2014-04-29T18:30:38Z", 1398796238},
        {"2014-04-29t18:30:38z", 1398796238},
        {"2014-04-29 18:30:38", 1398796238},
        {"2014-04-29T18:30:38.123Z", 1398796238.123},
        {"2014-04-29T20:30:38+02:00", 1398796238},
        {"2014-04-29T16:30:38-0200", 1398796238},
        {"2014-04-29T18:30Z", 1398796200},
        {"Tue, 29 Apr 2014 18:30:38 GMT", 1398796238},
        {"29 Apr 2014 18:30:38 +0000", 1398796238},
        {"Tuesday, 29-Apr-14 18:30:38 GMT", 1398796238},
        {"Tue Apr 29 18:30:38 2014", 1398796238},
        {"1398796238", 1398796238},
        {"1398796238.5", 1398796238.5},
        {"  2000-01-02T20:34:56.123Z ", 946845296.123},
        {"1969-12-31T23:59:59.5Z", -0.5},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double t = -1e300;
        if (!aws_timestamp_parse(ok[i].s, strlen(ok[i].s), &t))
            fail_msg("cannot parse \"%s\"", ok[i].s);
        if (t != ok[i].t)
            fail_msg("\"%s\" -> %.6f, want %.6f", ok[i].s, t, ok[i].t);
    }
    static const char *const bad[] = {"", "yesterday", "2014-13-01T00:00:00Z", "2014-04-29T",
                                      "Tue, 29 Foo 2014 18:30:38 GMT", "12:00", "1e400",
                                      "2014-04-29T18:30:38Zjunk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double t;
        if (aws_timestamp_parse(bad[i], strlen(bad[i]), &t))
            fail_msg("\"%s\" parsed", bad[i]);
    }
}

static void base64(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        size_t n;
        char *e = aws_base64_encode(plain[i], strlen(plain[i]), &n);
        assert_string_equal(e, enc[i]);
        assert_int_equal(n, strlen(enc[i]));
        char *d = aws_base64_decode(e, n, &n);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(d, plain[i], n);
        aws_free(e);
        aws_free(d);
    }
    size_t n;
    char *d = aws_base64_decode("Zm9v\nYmFy", 9, &n); /* whitespace ignored */
    assert_string_equal(d, "foobar");
    aws_free(d);
    d = aws_base64_decode("Zg", 2, &n); /* padding optional */
    assert_string_equal(d, "f");
    aws_free(d);
    assert_null(aws_base64_decode("Zm9v!", 5, &n));
    assert_null(aws_base64_decode("Z===", 4, &n));
    assert_null(aws_base64_decode("Zg==Zg", 6, &n));
    d = aws_base64_decode("AP8=", 4, &n);
    assert_int_equal(n, 2);
    assert_int_equal((unsigned char)d[1], 0xff);
    aws_free(d);
}

/* ---------------------------------------------- allocation failures */

static void oom_run(const aws_model *m, const char *op, const char *params)
{
    json_t *in = json_loads(params, 0, NULL);
    assert_non_null(in);
    bool done = false;
    long n;
    for (n = 0; n < 100000 && !done; n++) {
        alloc_calls = 0;
        alloc_fail_at = n;
        long live0 = alloc_live;
        aws_serialize_opts o = {.host = "h", .idempotency_token = fixed_token};
        aws_http_request r;
        aws_http_request_init(&r);
        aws_error err;
        aws_error_clear(&err);
        done = aws_serialize(m, aws_model_operation(m, op), in, &o, &r, &err);
        if (!done) {
            if (err.code != AWS_ERR_NO_MEMORY)
                fail_msg("%s: allocation #%ld: %s", op, n, err.message);
            assert_null(r.body);
        }
        aws_http_request_clean(&r);
        if (alloc_live != live0)
            fail_msg("%s: leak of %ld blocks when allocation #%ld fails", op, alloc_live - live0,
                     n);
    }
    alloc_fail_at = -1;
    json_decref(in);
    assert_true(done);
    if (n <= 5)
        fail_msg("%s: only %ld allocations", op, n);
}

static void oom_every_allocation(void **state)
{
    (void)state;
    oom_run(model("sts"), "AssumeRole",
            "{\"RoleArn\":\"a\",\"RoleSessionName\":\"s\",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]}");
    oom_run(model("ec2"), "RunInstances", "{\"MinCount\":1,\"MaxCount\":1}");
    oom_run(model("s3"), "PutBucketTagging",
            "{\"Bucket\":\"b\",\"Tagging\":{\"TagSet\":[{\"Key\":\"k\",\"Value\":\"v\"}]}}");
    oom_run(model("s3"), "PutObject",
            "{\"Bucket\":\"b\",\"Key\":\"k/x\",\"Body\":\"x\",\"Metadata\":{\"a\":\"b\"}}");
    oom_run(model("dynamodb"), "PutItem", "{\"TableName\":\"t\",\"Item\":{\"a\":{\"S\":\"b\"}}}");
    aws_model *m = mini(mini_rest);
    oom_run(m, "Op", "{\"Id\":\"1\",\"Acct\":\"1\",\"Tags\":[\"a\"],\"Doc\":{\"k\":1},\"F\":1.5}");
    aws_model_free(m);
}

int main(void)
{
    j_can_fail = true; /* aws_serialize never makes jansson parse */
    json_set_alloc_funcs(j_malloc, t_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sts_assume_role, setup, teardown),
        cmocka_unit_test_setup_teardown(cloudformation_create_stack, setup, teardown),
        cmocka_unit_test_setup_teardown(ec2_names_and_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(default_token_is_uuid4, setup, teardown),
        cmocka_unit_test_setup_teardown(s3_put_object, setup, teardown),
        cmocka_unit_test_setup_teardown(s3_create_bucket_and_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(s3_missing_label, setup, teardown),
        cmocka_unit_test_setup_teardown(dynamodb_put_item, setup, teardown),
        cmocka_unit_test_setup_teardown(eks_rest_json, setup, teardown),
        cmocka_unit_test_setup_teardown(rest_details, setup, teardown),
        cmocka_unit_test_setup_teardown(deep_and_invalid_input, setup, teardown),
        cmocka_unit_test_setup_teardown(xml_attributes_and_maps, setup, teardown),
        cmocka_unit_test_setup_teardown(timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(base64, setup, teardown),
        cmocka_unit_test_setup_teardown(oom_every_allocation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
