/* Unit tests of the response parsers (aws/codec*.c) on the embedded models:
 * typed outputs (timestamps, booleans, integers, blobs, flattened lists,
 * header maps), error responses of every protocol (code, message, request
 * id, modeled members), generic HTTP errors, event-stream frames, hostile
 * bodies (malformed XML/JSON, DTDs, deep nesting, bad base64) and
 * allocation-failure injection. */
#include "codec.h"
#include "model.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

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

static const aws_model *model(const char *name)
{
    aws_error err;
    aws_error_clear(&err);
    const aws_model *m = aws_model_get(name, &err);
    if (!m)
        fail_msg("model %s: %s", name, err.message);
    return m;
}

typedef struct result {
    bool ok;
    json_t *out;
    aws_error err;
    aws_response_meta meta;
} result;

static result parse(const aws_model *m, const char *op, int status, const aws_http_header *h,
                    size_t nh, const char *body, size_t len)
{
    result r = {0};
    aws_error_clear(&r.err);
    aws_http_response resp = {status, h, nh, body, len};
    const aws_operation *o = aws_model_operation(m, op);
    assert_non_null(o);
    r.ok = aws_parse_response(m, o, &resp, &r.out, &r.meta, &r.err);
    return r;
}

static result parse_s(const aws_model *m, const char *op, int status, const char *body)
{
    return parse(m, op, status, NULL, 0, body, strlen(body));
}

static void expect_json(const json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    if (!json_equal((json_t *)got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        fail_msg("got %s\nwant %s", g ? g : "(null)", want_text);
    }
    json_decref(want);
}

/* ---------------------------------------------- query / ec2 */

static void sts_success_and_request_id(void **state)
{
    (void)state;
    result r = parse_s(
        model("sts"), "GetCallerIdentity", 200,
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <GetCallerIdentityResult>\n"
        "    <Arn>arn:aws:iam::123456789012:user/a&amp;b</Arn>\n"
        "    <UserId>AIDA</UserId>\n    <Account>123456789012</Account>\n"
        "  </GetCallerIdentityResult>\n"
        "  <ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata>\n"
        "</GetCallerIdentityResponse>\n");
    assert_true(r.ok);
    expect_json(r.out, "{\"Arn\":\"arn:aws:iam::123456789012:user/a&b\",\"UserId\":\"AIDA\","
                       "\"Account\":\"123456789012\"}");
    assert_string_equal(r.meta.request_id, "rid-1");
    json_decref(r.out);
}

static void cloudformation_describe_stacks(void **state)
{
    (void)state;
    result r = parse_s(
        model("cloudformation"), "DescribeStacks", 200,
        "<?xml version=\"1.0\"?>\n<DescribeStacksResponse><DescribeStacksResult><Stacks><member>"
        "<StackName>s</StackName><StackId>id</StackId>"
        "<CreationTime>2023-01-02T03:04:05.678Z</CreationTime>"
        "<StackStatus>CREATE_COMPLETE</StackStatus><DisableRollback>false</DisableRollback>"
        "<EnableTerminationProtection>true</EnableTerminationProtection>"
        "<TimeoutInMinutes>15</TimeoutInMinutes>"
        "<Outputs><member><OutputKey>K</OutputKey><OutputValue>V</OutputValue></member></Outputs>"
        "<Capabilities/><Tags></Tags>"
        "</member></Stacks><NextToken>nt</NextToken></DescribeStacksResult>"
        "</DescribeStacksResponse>");
    assert_true(r.ok);
    expect_json(r.out,
                "{\"Stacks\":[{\"StackName\":\"s\",\"StackId\":\"id\","
                "\"CreationTime\":1672628645.678,\"StackStatus\":\"CREATE_COMPLETE\","
                "\"DisableRollback\":false,\"EnableTerminationProtection\":true,"
                "\"TimeoutInMinutes\":15,\"Outputs\":[{\"OutputKey\":\"K\",\"OutputValue\":\"V\"}],"
                "\"Capabilities\":[],\"Tags\":[]}],\"NextToken\":\"nt\"}");
    json_decref(r.out);
}

static void query_errors(void **state)
{
    (void)state;
    aws_http_header h[] = {{"x-amzn-RequestId", "hdr-rid"}};
    const char *body = "<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/\">"
                       "<Error><Type>Sender</Type><Code>AlreadyExistsException</Code>"
                       "<Message>Stack [s] already exists</Message></Error>"
                       "<RequestId>body-rid</RequestId></ErrorResponse>";
    result r = parse(model("cloudformation"), "CreateStack", 400, h, 1, body, strlen(body));
    assert_false(r.ok);
    assert_int_equal(r.err.code, AWS_ERR_SERVICE);
    assert_string_equal(r.err.aws_code, "AlreadyExistsException");
    assert_string_equal(r.err.message, "Stack [s] already exists");
    assert_int_equal(r.err.http_status, 400);
    assert_string_equal(r.err.request_id, "hdr-rid"); /* the header wins */
    assert_false(r.err.retryable);
    assert_true(json_is_object(r.out));
    json_decref(r.out);

    r = parse_s(model("cloudformation"), "DescribeStacks", 400, body);
    assert_string_equal(r.err.request_id, "body-rid");
    json_decref(r.out);

    /* ec2: Response/Errors/Error, RequestID */
    r = parse_s(model("ec2"), "DescribeInstances", 400,
                "<Response><Errors><Error><Code>InvalidInstanceID.Malformed</Code>"
                "<Message>Invalid id: \"x\"</Message></Error></Errors>"
                "<RequestID>ec2-rid</RequestID></Response>");
    assert_false(r.ok);
    assert_string_equal(r.err.aws_code, "InvalidInstanceID.Malformed");
    assert_string_equal(r.err.message, "Invalid id: \"x\"");
    assert_string_equal(r.err.request_id, "ec2-rid");
    json_decref(r.out);
}

static void ec2_describe_instances(void **state)
{
    (void)state;
    result r = parse_s(
        model("ec2"), "DescribeInstances", 200,
        "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
        "<requestId>r-1</requestId><reservationSet><item><reservationId>r</reservationId>"
        "<instancesSet><item><instanceId>i-1</instanceId><amiLaunchIndex>0</amiLaunchIndex>"
        "<instanceState><code>16</code><name>running</name></instanceState>"
        "<launchTime>2023-01-02T03:04:05.000Z</launchTime>"
        "<tagSet><item><key>Name</key><value>web</value></item></tagSet>"
        "<ebsOptimized>false</ebsOptimized></item></instancesSet></item></reservationSet>"
        "</DescribeInstancesResponse>");
    assert_true(r.ok);
    expect_json(r.out, "{\"Reservations\":[{\"ReservationId\":\"r\",\"Instances\":[{"
                       "\"InstanceId\":\"i-1\",\"AmiLaunchIndex\":0,"
                       "\"State\":{\"Code\":16,\"Name\":\"running\"},\"LaunchTime\":1672628645,"
                       "\"Tags\":[{\"Key\":\"Name\",\"Value\":\"web\"}],\"EbsOptimized\":false}]}]}");
    assert_string_equal(r.meta.request_id, "r-1");
    json_decref(r.out);
}

/* ---------------------------------------------- rest-xml (s3) */

static void s3_get_object(void **state)
{
    (void)state;
    aws_http_header h[] = {
        {"Content-Length", "5"},
        {"Last-Modified", "Tue, 29 Apr 2014 18:30:38 GMT"},
        {"ETag", "\"abc\""},
        {"x-amz-meta-Owner", "me"},
        {"X-AMZ-META-two", "2"},
        {"x-amz-request-id", "s3-rid"},
        {"x-amz-id-2", "host-id"},
        {"x-amz-delete-marker", "true"},
    };
    result r = parse(model("s3"), "GetObject", 200, h, 8, "a\0b\xffz", 5);
    assert_true(r.ok);
    json_t *body = json_object_get(r.out, "Body");
    assert_int_equal(json_string_length(body), 5);
    assert_memory_equal(json_string_value(body), "a\0b\xffz", 5);
    assert_int_equal(json_integer_value(json_object_get(r.out, "ContentLength")), 5);
    assert_int_equal(json_integer_value(json_object_get(r.out, "LastModified")), 1398796238);
    assert_string_equal(json_string_value(json_object_get(r.out, "ETag")), "\"abc\"");
    assert_true(json_is_true(json_object_get(r.out, "DeleteMarker")));
    expect_json(json_object_get(r.out, "Metadata"), "{\"Owner\":\"me\",\"two\":\"2\"}");
    assert_string_equal(r.meta.request_id, "s3-rid");
    assert_string_equal(r.meta.host_id, "host-id");
    json_decref(r.out);
}

static void s3_list_objects(void **state)
{
    (void)state;
    result r = parse_s(
        model("s3"), "ListObjectsV2", 200,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
        "<KeyCount>2</KeyCount><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
        "<Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>b &lt;c&gt;</Key><Size>0</Size></Contents>"
        "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></ListBucketResult>");
    assert_true(r.ok);
    expect_json(r.out,
                "{\"Name\":\"b\",\"KeyCount\":2,\"IsTruncated\":false,\"Contents\":["
                "{\"Key\":\"a\",\"LastModified\":1255369830,\"Size\":434234,"
                "\"StorageClass\":\"STANDARD\"},{\"Key\":\"b <c>\",\"Size\":0}],"
                "\"CommonPrefixes\":[{\"Prefix\":\"p/\"}]}");
    json_decref(r.out);
}

static void s3_errors(void **state)
{
    (void)state;
    aws_http_header h[] = {{"x-amz-request-id", "hdr"}};
    const char *body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                       "<Message>The specified key does not exist.</Message><Key>k</Key>"
                       "<RequestId>body</RequestId><HostId>hid</HostId></Error>";
    result r = parse(model("s3"), "GetObject", 404, h, 1, body, strlen(body));
    assert_false(r.ok);
    assert_int_equal(r.err.code, AWS_ERR_SERVICE);
    assert_string_equal(r.err.aws_code, "NoSuchKey");
    assert_string_equal(r.err.message, "The specified key does not exist.");
    assert_string_equal(r.err.request_id, "hdr");
    assert_int_equal(r.err.http_status, 404);
    assert_string_equal(r.meta.host_id, "hid");
    json_decref(r.out);
    /* HEAD: no body at all */
    r = parse(model("s3"), "HeadObject", 404, h, 1, "", 0);
    assert_string_equal(r.err.aws_code, "404");
    assert_string_equal(r.err.message, "Not Found");
    json_decref(r.out);
    r = parse_s(model("s3"), "HeadBucket", 403, "");
    assert_string_equal(r.err.aws_code, "403");
    assert_string_equal(r.err.message, "Forbidden");
    json_decref(r.out);
    /* a proxy's HTML page */
    r = parse_s(model("s3"), "GetObject", 503, "  <html><body>busy</body></html>");
    assert_int_equal(r.err.code, AWS_ERR_SERVICE);
    assert_string_equal(r.err.aws_code, "503");
    assert_string_equal(r.err.message, "Service Unavailable");
    json_decref(r.out);
    /* S3's 200 with an error document (CopyObject & co.) */
    r = parse_s(model("s3"), "CopyObject", 200,
                "\n\n<Error><Code>InternalError</Code><Message>retry</Message></Error>");
    assert_false(r.ok);
    assert_int_equal(r.err.code, AWS_ERR_SERVICE);
    assert_string_equal(r.err.aws_code, "InternalError");
    assert_int_equal(r.err.http_status, 200);
    json_decref(r.out);
    /* not XML on a 400: the status is the code, the text the message */
    r = parse_s(model("sts"), "GetCallerIdentity", 400, "oops");
    assert_string_equal(r.err.aws_code, "400");
    assert_string_equal(r.err.message, "oops");
    json_decref(r.out);
}

/* ---------------------------------------------- json / rest-json */

static void dynamodb(void **state)
{
    (void)state;
    result r = parse_s(model("dynamodb"), "GetItem", 200,
                       "{\"Item\":{\"id\":{\"S\":\"1\"},\"b\":{\"B\":\"AP8=\"},\"n\":{\"N\":\"2\"},"
                       "\"l\":{\"L\":[{\"NULL\":true},{\"BS\":[\"YQ==\"]}]}},"
                       "\"ConsumedCapacity\":{\"CapacityUnits\":0.5,\"TableName\":\"t\"}}");
    assert_true(r.ok);
    json_t *b = json_object_get(json_object_get(json_object_get(r.out, "Item"), "b"), "B");
    assert_int_equal(json_string_length(b), 2);
    assert_memory_equal(json_string_value(b), "\0\xff", 2);
    assert_true(json_real_value(
                    json_object_get(json_object_get(r.out, "ConsumedCapacity"), "CapacityUnits")) ==
                0.5);
    expect_json(json_object_get(json_object_get(r.out, "Item"), "l"),
                "{\"L\":[{\"NULL\":true},{\"BS\":[\"a\"]}]}");
    json_decref(r.out);

    aws_http_header h[] = {{"x-amzn-RequestId", "ddb-rid"}};
    const char *body = "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\","
                       "\"message\":\"Requested resource not found\"}";
    r = parse(model("dynamodb"), "GetItem", 400, h, 1, body, strlen(body));
    assert_false(r.ok);
    assert_string_equal(r.err.aws_code, "ResourceNotFoundException");
    assert_string_equal(r.err.message, "Requested resource not found");
    assert_string_equal(r.err.request_id, "ddb-rid");
    expect_json(r.out, "{\"message\":\"Requested resource not found\"}");
    json_decref(r.out);

    /* error code from the header, body not JSON */
    aws_http_header h2[] = {{"X-Amzn-ErrorType", "ThrottlingException:http://internal"}};
    r = parse(model("dynamodb"), "GetItem", 400, h2, 1, "<html>", 6);
    assert_string_equal(r.err.aws_code, "ThrottlingException");
    assert_string_equal(r.err.message, "<html>");
    json_decref(r.out);
}

/* A body the protocol cannot parse becomes a one-line message: whitespace
 * runs (newlines too) are one space, long bodies are cut with "...". */
static void unparseable_error_bodies(void **state)
{
    (void)state;
    const char *xml = "<?xml version=\"1.0\"?>\n<ErrorResponse>\n  <Error>\r\n\t<Code>NotImplemented</Code>"
                      "</Error>\n</ErrorResponse>\n";
    result r = parse_s(model("dynamodb"), "GetItem", 501, xml);
    assert_false(r.ok);
    assert_string_equal(r.err.message, "<?xml version=\"1.0\"?> <ErrorResponse> <Error> "
                                       "<Code>NotImplemented</Code></Error> </ErrorResponse>");
    json_decref(r.out);
    r = parse_s(model("sts"), "GetCallerIdentity", 502, "{\n  \"not\": \"xml\"\n}");
    assert_string_equal(r.err.message, "{ \"not\": \"xml\" }");
    json_decref(r.out);

    char big[2000];
    memset(big, 'x', sizeof big);
    big[100] = '\n';
    r = parse(model("dynamodb"), "GetItem", 500, NULL, 0, big, sizeof big);
    assert_int_equal(strlen(r.err.message), 303);
    assert_null(strchr(r.err.message, '\n'));
    assert_string_equal(r.err.message + 300, "...");
    json_decref(r.out);

    char buf[16];
    assert_string_equal(aws_error_snippet(buf, sizeof buf, "  a \n\n b  ", 11, 100), "a b");
    assert_string_equal(aws_error_snippet(buf, sizeof buf, "abcdefghijklmnopqrstuvwxyz", 26, 100),
                        "abcdefghijkl...");
    assert_string_equal(aws_error_snippet(buf, sizeof buf, "abcdef", 6, 5), "abcde...");
    assert_string_equal(aws_error_snippet(buf, sizeof buf, "abcde   ", 8, 5), "abcde");
    /* "\xc3\xa9" is one character: never cut in half */
    assert_string_equal(aws_error_snippet(buf, sizeof buf, "abcd\xc3\xa9" "f", 7, 5), "abcd...");
    assert_string_equal(aws_error_snippet(buf, sizeof buf, "", 0, 5), "");
}

static void eks_rest_json(void **state)
{
    (void)state;
    result r = parse_s(model("eks"), "DescribeCluster", 200,
                       "{\"cluster\":{\"name\":\"c\",\"createdAt\":1.6E9,\"tags\":{\"a\":\"b\"},"
                       "\"unknownField\":1}}");
    assert_true(r.ok);
    expect_json(r.out, "{\"cluster\":{\"name\":\"c\",\"createdAt\":1600000000,"
                       "\"tags\":{\"a\":\"b\"}}}");
    json_decref(r.out);
    r = parse_s(model("eks"), "DescribeCluster", 404,
                "{\"message\":\"No cluster found for name: c.\",\"clusterName\":\"c\"}");
    assert_false(r.ok);
    assert_string_equal(r.err.aws_code, "404");
    json_decref(r.out);
    aws_http_header h[] = {{"x-amzn-ErrorType", "ResourceNotFoundException"}};
    const char *body = "{\"message\":\"No cluster\",\"clusterName\":\"c\"}";
    r = parse(model("eks"), "DescribeCluster", 404, h, 1, body, strlen(body));
    assert_string_equal(r.err.aws_code, "ResourceNotFoundException");
    assert_string_equal(r.err.message, "No cluster");
    assert_string_equal(json_string_value(json_object_get(r.out, "clusterName")), "c");
    json_decref(r.out);
}

/* ---------------------------------------------- hostile bodies */

static void hostile_bodies(void **state)
{
    (void)state;
    static const char *const bad_xml[] = {
        "<GetCallerIdentityResponse><unclosed>",
        "not xml at all",
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
        "\"&lol;&lol;&lol;&lol;\">]><a>&lol2;</a>",
        "<a></b>",
    };
    for (size_t i = 0; i < sizeof bad_xml / sizeof bad_xml[0]; i++) {
        result r = parse_s(model("sts"), "GetCallerIdentity", 200, bad_xml[i]);
        assert_false(r.ok);
        assert_int_equal(r.err.code, AWS_ERR_PARSE);
        assert_null(r.out);
    }
    /* deep nesting */
    size_t depth = 300;
    char *deep = malloc(depth * 7 + 64);
    char *p = deep;
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "<a>");
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "</a>");
    result r = parse(model("sts"), "GetCallerIdentity", 200, NULL, 0, deep, strlen(deep));
    assert_int_equal(r.err.code, AWS_ERR_PARSE);
    assert_non_null(strstr(r.err.message, "deeper"));
    free(deep);
    /* JSON: wrong types and bad base64 */
    r = parse_s(model("dynamodb"), "GetItem", 200, "{\"Item\":[1,2]}");
    assert_int_equal(r.err.code, AWS_ERR_PARSE);
    assert_null(r.out);
    r = parse_s(model("dynamodb"), "GetItem", 200, "{\"Item\":{\"a\":{\"B\":\"!!!\"}}}");
    assert_int_equal(r.err.code, AWS_ERR_PARSE);
    r = parse_s(model("dynamodb"), "GetItem", 200, "{\"Item\":");
    assert_int_equal(r.err.code, AWS_ERR_PARSE);
    /* deep recursion of a recursive shape */
    char *j = malloc(200 * 12 + 64);
    p = j + sprintf(j, "{\"Item\":{\"a\":");
    for (int i = 0; i < 200; i++)
        p += sprintf(p, "{\"L\":[");
    p += sprintf(p, "{\"S\":\"x\"}");
    for (int i = 0; i < 200; i++)
        p += sprintf(p, "]}");
    sprintf(p, "}}");
    r = parse(model("dynamodb"), "GetItem", 200, NULL, 0, j, strlen(j));
    assert_int_equal(r.err.code, AWS_ERR_PARSE);
    free(j);
    /* a bad integer in XML */
    r = parse_s(model("cloudformation"), "DescribeStacks", 200,
                "<R><DescribeStacksResult><Stacks><member><TimeoutInMinutes>ten"
                "</TimeoutInMinutes></member></Stacks></DescribeStacksResult></R>");
    assert_int_equal(r.err.code, AWS_ERR_PARSE);
    /* arguments */
    aws_error err;
    aws_error_clear(&err);
    json_t *out = (json_t *)1;
    assert_false(aws_parse_response(model("sts"), NULL, NULL, &out, NULL, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
}

/* ---------------------------------------------- event streams */

static size_t put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

static size_t add_str_header(unsigned char *p, const char *name, const char *value)
{
    size_t n = 0, nl = strlen(name), vl = strlen(value);
    p[n++] = (unsigned char)nl;
    memcpy(p + n, name, nl);
    n += nl;
    p[n++] = 7;
    p[n++] = (unsigned char)(vl >> 8);
    p[n++] = (unsigned char)vl;
    memcpy(p + n, value, vl);
    return n + vl;
}

/* One message: headers (string pairs) + payload.  Returns its length. */
static size_t frame(unsigned char *out, const char *const *hdrs, const char *payload)
{
    unsigned char h[512];
    size_t hl = 0;
    for (; hdrs[0]; hdrs += 2)
        hl += add_str_header(h + hl, hdrs[0], hdrs[1]);
    size_t pl = strlen(payload), total = 16 + hl + pl;
    put_be32(out, (uint32_t)total);
    put_be32(out + 4, (uint32_t)hl);
    put_be32(out + 8, (uint32_t)crc32(0, out, 8));
    memcpy(out + 12, h, hl);
    memcpy(out + 12 + hl, payload, pl);
    put_be32(out + total - 4, (uint32_t)crc32(0, out, (uInt)(total - 4)));
    return total;
}

static void event_stream(void **state)
{
    (void)state;
    json_t *doc = json_loads(
        "{\"metadata\":{\"protocol\":\"rest-json\"},\"operations\":{\"Sub\":{\"name\":\"Sub\","
        "\"http\":{\"method\":\"GET\",\"requestUri\":\"/\"},\"output\":{\"shape\":\"Out\"}}},"
        "\"shapes\":{\"Out\":{\"type\":\"structure\",\"payload\":\"Events\",\"members\":{"
        " \"Events\":{\"shape\":\"Stream\"}}},"
        " \"Stream\":{\"type\":\"structure\",\"eventstream\":true,\"members\":{"
        "  \"Tick\":{\"shape\":\"Tick\"},\"Boom\":{\"shape\":\"Boom\"}}},"
        " \"Tick\":{\"type\":\"structure\",\"event\":true,\"members\":{"
        "  \"N\":{\"shape\":\"I\"},\"Src\":{\"shape\":\"S\",\"eventheader\":true}}},"
        " \"Boom\":{\"type\":\"structure\",\"exception\":true,\"members\":{}},"
        " \"I\":{\"type\":\"integer\"},\"S\":{\"type\":\"string\"}}}",
        0, NULL);
    aws_error err;
    aws_error_clear(&err);
    aws_model *m = aws_model_from_json(doc, &err);
    json_decref(doc);
    assert_non_null(m);
    const aws_operation *op = aws_model_operation(m, "Sub");
    const aws_member *sm = aws_eventstream_member(op);
    assert_non_null(sm);
    assert_string_equal(sm->name, "Events");

    unsigned char buf[4096];
    static const char *const tick[] = {":message-type", "event", ":event-type", "Tick",
                                       "Src", "clock", NULL};
    size_t n1 = frame(buf, tick, "{\"N\":1}");
    size_t n2 = frame(buf + n1, tick, "{\"N\":2}");
    size_t used;
    json_t *ev;
    /* incomplete: nothing consumed */
    assert_int_equal(aws_eventstream_next(m, sm->shape, op->output->shape, (char *)buf, n1 - 1,
                                          &used, &ev, &err),
                     0);
    assert_int_equal(aws_eventstream_next(m, sm->shape, op->output->shape, (char *)buf, 11, &used,
                                          &ev, &err),
                     0);
    assert_int_equal(aws_eventstream_next(m, sm->shape, op->output->shape, (char *)buf, n1 + n2,
                                          &used, &ev, &err),
                     1);
    assert_int_equal(used, n1);
    expect_json(ev, "{\"Tick\":{\"N\":1,\"Src\":\"clock\"}}");
    json_decref(ev);

    /* the whole buffered body through aws_parse_response */
    aws_http_response resp = {200, NULL, 0, (char *)buf, n1 + n2};
    json_t *out = NULL;
    assert_true(aws_parse_response(m, op, &resp, &out, NULL, &err));
    expect_json(out, "{\"Events\":[{\"Tick\":{\"N\":1,\"Src\":\"clock\"}},"
                     "{\"Tick\":{\"N\":2,\"Src\":\"clock\"}}]}");
    json_decref(out);

    /* corrupt checksum */
    buf[n1 - 1] ^= 1;
    aws_error_clear(&err);
    assert_int_equal(aws_eventstream_next(m, sm->shape, op->output->shape, (char *)buf, n1, &used,
                                          &ev, &err),
                     -1);
    assert_int_equal(err.code, AWS_ERR_PARSE);
    resp.body_len = n1;
    aws_error_clear(&err);
    assert_false(aws_parse_response(m, op, &resp, &out, NULL, &err));
    assert_int_equal(err.code, AWS_ERR_PARSE);
    assert_null(out);

    /* an exception message is a service error */
    static const char *const boom[] = {":message-type", "exception", ":exception-type", "Boom",
                                       NULL};
    size_t n3 = frame(buf, boom, "{\"message\":\"kaput\"}");
    aws_error_clear(&err);
    assert_int_equal(aws_eventstream_next(m, sm->shape, op->output->shape, (char *)buf, n3, &used,
                                          &ev, &err),
                     -1);
    assert_int_equal(err.code, AWS_ERR_SERVICE);
    assert_string_equal(err.aws_code, "Boom");
    assert_string_equal(err.message, "kaput");
    /* absurd lengths */
    memset(buf, 0xff, 16);
    put_be32(buf + 8, (uint32_t)crc32(0, buf, 8));
    aws_error_clear(&err);
    assert_int_equal(aws_eventstream_next(m, sm->shape, op->output->shape, (char *)buf, 16, &used,
                                          &ev, &err),
                     -1);
    assert_int_equal(err.code, AWS_ERR_PARSE);
    aws_model_free(m);
}

/* ---------------------------------------------- allocation failures */

static void oom_run(const aws_model *m, const char *op, int status, const aws_http_header *h,
                    size_t nh, const char *body, aws_errcode expect)
{
    j_can_fail = body[0] == '<' || body[0] != '{'; /* XML or raw bodies */
    bool done = false;
    long n;
    for (n = 0; n < 100000 && !done; n++) {
        alloc_calls = 0;
        alloc_fail_at = n;
        long live0 = alloc_live;
        result r = parse(m, op, status, h, nh, body, strlen(body));
        done = expect == AWS_ERR_NONE ? r.ok : r.err.code == expect;
        if (!done) {
            if (r.err.code != AWS_ERR_NO_MEMORY)
                fail_msg("%s: allocation #%ld: %s: %s", op, n, aws_errcode_name(r.err.code),
                         r.err.message);
            assert_null(r.out);
        }
        json_decref(r.out);
        if (alloc_live != live0)
            fail_msg("%s: leak of %ld blocks when allocation #%ld fails", op, alloc_live - live0,
                     n);
    }
    alloc_fail_at = -1;
    j_can_fail = false;
    assert_true(done);
}

static void oom_every_allocation(void **state)
{
    (void)state;
    aws_http_header h[] = {{"Last-Modified", "Tue, 29 Apr 2014 18:30:38 GMT"},
                           {"x-amz-meta-a", "b"}};
    oom_run(model("s3"), "GetObject", 200, h, 2, "data", AWS_ERR_NONE);
    oom_run(model("s3"), "ListObjectsV2", 200,
            NULL, 0,
            "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
            "<Contents><Key>b</Key></Contents></ListBucketResult>",
            AWS_ERR_NONE);
    oom_run(model("s3"), "GetObject", 404, NULL, 0,
            "<Error><Code>NoSuchKey</Code><Message>m</Message></Error>", AWS_ERR_SERVICE);
    oom_run(model("cloudformation"), "CreateStack", 400, NULL, 0,
            "<ErrorResponse><Error><Code>AlreadyExistsException</Code><Message>m</Message>"
            "</Error></ErrorResponse>",
            AWS_ERR_SERVICE);
    oom_run(model("dynamodb"), "GetItem", 200, NULL, 0,
            "{\"Item\":{\"b\":{\"B\":\"AP8=\"},\"l\":{\"L\":[{\"N\":\"1\"}]}}}", AWS_ERR_NONE);
    oom_run(model("dynamodb"), "GetItem", 400, NULL, 0,
            "{\"__type\":\"x#ResourceNotFoundException\",\"message\":\"m\"}", AWS_ERR_SERVICE);
}

int main(void)
{
    json_set_alloc_funcs(j_malloc, t_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sts_success_and_request_id, setup, teardown),
        cmocka_unit_test_setup_teardown(cloudformation_describe_stacks, setup, teardown),
        cmocka_unit_test_setup_teardown(query_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(ec2_describe_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(s3_get_object, setup, teardown),
        cmocka_unit_test_setup_teardown(unparseable_error_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(s3_list_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(s3_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(dynamodb, setup, teardown),
        cmocka_unit_test_setup_teardown(eks_rest_json, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(event_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(oom_every_allocation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
