/* Unit tests of aws/sigv4.c and aws/error.c: canonicalization edge cases,
 * token placement, payload modes, errors, the key cache, SigV4a, and
 * allocation-failure injection (every error path frees everything).
 * The official suites run in conformance_sigv4.c. */
#include "error.h"
#include "sigv4.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define AK "AKIDEXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T20150830 INT64_C(1440938160) /* 2015-08-30T12:36:00Z */

/* ------------------------------------------------------------ helpers */

static void base_config(aws_sigv4_config *cfg)
{
    aws_sigv4_config_init(cfg);
    cfg->access_key = AK;
    cfg->secret_key = SK;
    cfg->region = "us-east-1";
    cfg->service = "service";
    cfg->time = T20150830;
}

static const aws_sigv4_header host_only[] = {{"Host", "example.amazonaws.com"}};

static aws_sigv4_request get_req(const char *path, const char *query)
{
    return (aws_sigv4_request){.method = "GET", .path = path, .query = query,
                               .headers = host_only, .header_count = 1};
}

/* Line `n` (0-based) of s, copied into buf. */
static const char *line_of(const char *s, int n, char *buf, size_t size)
{
    for (int i = 0; i < n && s; i++) {
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    if (!s)
        return "<no such line>";
    size_t len = strcspn(s, "\n");
    if (len >= size)
        len = size - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static const char *find_header(const aws_sigv4_state *st, const char *name)
{
    for (size_t i = 0; i < st->header_count; i++)
        if (!strcmp(st->headers[i].name, name))
            return st->headers[i].value;
    return NULL;
}

static void sign_ok(const aws_sigv4_request *req, const aws_sigv4_config *cfg,
                    aws_sigv4_state *st)
{
    aws_error err;
    aws_error_clear(&err);
    if (!aws_sigv4_sign(req, cfg, st, &err))
        fail_msg("sign failed: %s: %s", aws_errcode_name(err.code), err.message);
    assert_int_equal(err.code, AWS_ERR_NONE);
}

static void sign_fails(const aws_sigv4_request *req, const aws_sigv4_config *cfg,
                       aws_errcode code, const char *msg_part)
{
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    aws_error err;
    aws_error_clear(&err);
    assert_false(aws_sigv4_sign(req, cfg, &st, &err));
    assert_int_equal(err.code, code);
    if (msg_part && !strstr(err.message, msg_part))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, msg_part);
    /* left clean */
    assert_null(st.canonical_request);
    assert_null(st.signature);
    assert_null(st.authorization);
    assert_null(st.query);
    assert_int_equal(st.header_count, 0);
    aws_sigv4_state_clean(&st);
}

#define ASSERT_PATH(in, dbl, norm, want)                                                           \
    do {                                                                                           \
        char *got_ = aws_sigv4_canonical_path(in, dbl, norm, NULL);                                \
        assert_non_null(got_);                                                                     \
        assert_string_equal(got_, want);                                                           \
        aws_free(got_);                                                                            \
    } while (0)

#define ASSERT_QUERY(in, want)                                                                     \
    do {                                                                                           \
        char *got_ = aws_sigv4_canonical_query(in, NULL);                                          \
        assert_non_null(got_);                                                                     \
        assert_string_equal(got_, want);                                                           \
        aws_free(got_);                                                                            \
    } while (0)

/* ------------------------------------------------------------ error.c */

static void error_basics(void **state)
{
    (void)state;
    aws_error e;
    aws_error_clear(&e);
    assert_int_equal(e.code, AWS_ERR_NONE);
    assert_string_equal(aws_errcode_name(AWS_ERR_NONE), "ok");
    assert_string_equal(aws_errcode_name(AWS_ERR_INVALID_ARG), "invalid_argument");
    assert_string_equal(aws_errcode_name(AWS_ERR_SERVICE), "service");
    assert_string_equal(aws_errcode_name((aws_errcode)999), "unknown");
    assert_string_equal(aws_errcode_name((aws_errcode)-1), "unknown");
    for (int c = 0; c < AWS_ERR__COUNT; c++)
        assert_non_null(aws_errcode_name((aws_errcode)c));

    assert_false(aws_error_set(&e, AWS_ERR_PARSE, "bad %s at %d", "token", 7));
    assert_int_equal(e.code, AWS_ERR_PARSE);
    assert_string_equal(e.message, "bad token at 7");
    assert_false(e.retryable);
    aws_error_set(&e, AWS_ERR_TIMEOUT, "slow");
    assert_true(e.retryable);
    assert_false(aws_error_set(NULL, AWS_ERR_IO, "ignored")); /* NULL is fine */
    assert_false(aws_error_oom(NULL));

    char longmsg[2000];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    aws_error_set(&e, AWS_ERR_IO, "%s", longmsg);
    assert_int_equal(strlen(e.message), AWS_ERROR_MESSAGE_MAX - 1); /* truncated */

    char buf[256];
    aws_error_set_service(&e, 400, "ThrottlingException", "Rate exceeded", "req-123", true);
    assert_int_equal(e.code, AWS_ERR_SERVICE);
    assert_true(e.retryable);
    assert_string_equal(aws_error_format(&e, buf, sizeof buf),
                        "service: Rate exceeded [ThrottlingException] (HTTP 400, request id req-123)");
    aws_error_set_service(&e, 500, NULL, NULL, NULL, false);
    assert_string_equal(aws_error_format(&e, buf, sizeof buf), "service (HTTP 500)");
    aws_error_format(&e, buf, 5);
    assert_string_equal(buf, "serv");
    aws_error_oom(&e);
    assert_string_equal(aws_error_format(&e, buf, sizeof buf), "no_memory: out of memory");
    assert_string_equal(aws_error_format(NULL, buf, sizeof buf), "");
}

static void alloc_helpers(void **state)
{
    (void)state;
    assert_null(aws_calloc(SIZE_MAX / 2, 4)); /* overflow */
    unsigned char *z = aws_calloc(3, 5);
    assert_non_null(z);
    for (int i = 0; i < 15; i++)
        assert_int_equal(z[i], 0);
    aws_free(z);
    char *d = aws_strndup("abcdef", 3);
    assert_string_equal(d, "abc");
    aws_free(d);
    assert_null(aws_strdup(NULL));
    aws_free(NULL);
}

/* ------------------------------------------------------------ encoding */

static void uri_encode_rules(void **state)
{
    (void)state;
    const char unreserved[] = "AZaz09-._~";
    char *s = aws_sigv4_uri_encode(unreserved, strlen(unreserved), false, NULL);
    assert_string_equal(s, unreserved);
    aws_free(s);
    const char odd[] = "a b/c%+*=&\xe1\x88\xb4";
    s = aws_sigv4_uri_encode(odd, strlen(odd), false, NULL);
    assert_string_equal(s, "a%20b%2Fc%25%2B%2A%3D%26%E1%88%B4");
    aws_free(s);
    s = aws_sigv4_uri_encode(odd, strlen(odd), true, NULL);
    assert_string_equal(s, "a%20b/c%25%2B%2A%3D%26%E1%88%B4");
    aws_free(s);
    const char nul[] = {'a', '\0', 'b'};
    s = aws_sigv4_uri_encode(nul, 3, false, NULL);
    assert_string_equal(s, "a%00b");
    aws_free(s);
    s = aws_sigv4_uri_encode(NULL, 0, false, NULL);
    assert_string_equal(s, "");
    aws_free(s);
}

static void path_double_encoded_normalized(void **state)
{
    (void)state;
    ASSERT_PATH(NULL, true, true, "/");
    ASSERT_PATH("", true, true, "/");
    ASSERT_PATH("/", true, true, "/");
    ASSERT_PATH("//", true, true, "/");
    ASSERT_PATH("/./", true, true, "/");
    ASSERT_PATH("/..", true, true, "/");
    ASSERT_PATH("/../../a", true, true, "/a");
    ASSERT_PATH("/example/..", true, true, "/");
    ASSERT_PATH("/a/b/..", true, true, "/a/");
    ASSERT_PATH("/a/b/.", true, true, "/a/b/");
    ASSERT_PATH("/a/./b/../c//d/", true, true, "/a/c/d/");
    ASSERT_PATH("//example//", true, true, "/example/");
    ASSERT_PATH("/a/.../b", true, true, "/a/.../b"); /* "..." is a name */
    /* encoding: raw bytes once, existing escapes a second time */
    ASSERT_PATH("/example space/", true, true, "/example%20space/");
    ASSERT_PATH("/foo%20bar", true, true, "/foo%2520bar");
    ASSERT_PATH("/\xe1\x88\xb4", true, true, "/%E1%88%B4");
    ASSERT_PATH("/\xe1\x88\xb4/%E1%88%B4", true, true, "/%E1%88%B4/%25E1%2588%25B4");
    ASSERT_PATH("/$delete", true, true, "/%24delete");
    ASSERT_PATH("/a+b=c", true, true, "/a%2Bb%3Dc");
    /* not normalized */
    ASSERT_PATH("//example//", true, false, "//example//");
    ASSERT_PATH("/example1/example2/../..", true, false, "/example1/example2/../..");
}

static void path_s3_single_encoded(void **state)
{
    (void)state;
    ASSERT_PATH("/my-object//example//photo.user", false, false,
                "/my-object//example//photo.user");
    ASSERT_PATH("/a/./b/../c", false, false, "/a/./b/../c");
    ASSERT_PATH("/a%20b", false, false, "/a%20b");     /* kept */
    ASSERT_PATH("/a%2fb", false, false, "/a%2Fb");     /* hex upper-cased, still escaped */
    ASSERT_PATH("/%41%7e", false, false, "/A~");       /* escapes of unreserved decoded */
    ASSERT_PATH("/a b", false, false, "/a%20b");       /* raw bytes encoded once */
    ASSERT_PATH("/\xe1\x88\xb4.jpg", false, false, "/%E1%88%B4.jpg");
    ASSERT_PATH("/a%zz%4", false, false, "/a%25zz%254"); /* invalid escapes */
    ASSERT_PATH("/key=v+1", false, false, "/key%3Dv%2B1");
}

static void path_errors_and_hostile(void **state)
{
    (void)state;
    aws_error err;
    aws_error_clear(&err);
    assert_null(aws_sigv4_canonical_path("relative/path", true, true, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "must start with '/'"));

    /* 200k ".." segments and 100k slashes: linear, bounded, no recursion */
    size_t n = 200000;
    char *p = malloc(3 * n + 3);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        memcpy(p + 3 * i, "/..", 3);
    strcpy(p + 3 * n, "/x");
    ASSERT_PATH(p, true, true, "/x");
    memset(p, '/', 3 * n);
    ASSERT_PATH(p, true, true, "/x");
    free(p);
}

static void query_canonical(void **state)
{
    (void)state;
    /* empty */
    ASSERT_QUERY(NULL, "");
    ASSERT_QUERY("", "");
    ASSERT_QUERY("&", "");
    ASSERT_QUERY("&&&", "");
    /* sorting, repeated keys sorted by value */
    ASSERT_QUERY("b=2&a=1", "a=1&b=2");
    ASSERT_QUERY("Param1=value2&Param1=Value1", "Param1=Value1&Param1=value2");
    ASSERT_QUERY("a=2&a=1&a=10", "a=1&a=10&a=2");
    ASSERT_QUERY("a=1&a=1", "a=1&a=1");
    ASSERT_QUERY("b=1&B=1&a=1&A=1", "A=1&B=1&a=1&b=1");
    /* sort happens on the encoded form: '%' (0x25) sorts before letters */
    ASSERT_QUERY("a~=1&a%20=2&a=3", "a=3&a%20=2&a~=1");
    /* missing '=' / empty parts */
    ASSERT_QUERY("acl", "acl=");
    ASSERT_QUERY("a=&b", "a=&b=");
    ASSERT_QUERY("=v", "=v");
    ASSERT_QUERY("a=1&&b=2&", "a=1&b=2");
    /* decode + re-encode */
    ASSERT_QUERY("%E1%88%B4=bar", "%E1%88%B4=bar");
    ASSERT_QUERY("\xe1\x88\xb4=bar", "%E1%88%B4=bar");
    ASSERT_QUERY("%e1%88%b4=bar", "%E1%88%B4=bar");
    ASSERT_QUERY("a=b c", "a=b%20c");
    ASSERT_QUERY("a=b+c", "a=b%2Bc");
    ASSERT_QUERY("a=%7e%2f", "a=~%2F");
    ASSERT_QUERY("a=x=y", "a=x%3Dy");
    ASSERT_QUERY("k=%zz%", "k=%25zz%25");
    ASSERT_QUERY("-._~=-._~", "-._~=-._~");
}

static void query_many_params(void **state)
{
    (void)state;
    size_t n = 5000;
    char *q = malloc(n * 16);
    assert_non_null(q);
    size_t len = 0;
    for (size_t i = n; i-- > 0;)
        len += (size_t)sprintf(q + len, "%sk%05zu=v", len ? "&" : "", i);
    char *c = aws_sigv4_canonical_query(q, NULL);
    assert_non_null(c);
    assert_int_equal(strlen(c), len);
    assert_memory_equal(c, "k00000=v&k00001=v&", 18);
    assert_non_null(strstr(c, "&k04999=v"));
    aws_free(c);
    free(q);
}

static void time_format(void **state)
{
    (void)state;
    char out[17];
    assert_true(aws_sigv4_format_time(0, out, NULL));
    assert_string_equal(out, "19700101T000000Z");
    assert_true(aws_sigv4_format_time(T20150830, out, NULL));
    assert_string_equal(out, "20150830T123600Z");
    assert_true(aws_sigv4_format_time(INT64_C(253402300799), out, NULL));
    assert_string_equal(out, "99991231T235959Z");
    aws_error err;
    aws_error_clear(&err);
    assert_false(aws_sigv4_format_time(INT64_C(253402300800), out, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    assert_false(aws_sigv4_format_time(-1, out, NULL));
    assert_false(aws_sigv4_format_time(INT64_MIN, out, NULL));
}

/* ------------------------------------------------------------ signing */

static void derive_key_known_answer(void **state)
{
    (void)state;
    /* The worked example of the AWS documentation ("Examples of how to
     * derive a signing key"): 20120215 / us-east-1 / iam. */
    static const unsigned char want[32] = {
        0xf4, 0x78, 0x0e, 0x2d, 0x9f, 0x65, 0xfa, 0x89, 0x5f, 0x9c, 0x67, 0xb3, 0x2c, 0xe1, 0xba, 0xf0,
        0xb0, 0xd8, 0xa4, 0x35, 0x05, 0xa0, 0x00, 0xa1, 0xa9, 0xe0, 0x90, 0xd4, 0x14, 0xdb, 0x40, 0x4d};
    unsigned char key[32];
    assert_true(aws_sigv4_derive_key(SK, "20120215", "us-east-1", "iam", key, NULL));
    assert_memory_equal(key, want, 32);
    aws_error err;
    aws_error_clear(&err);
    assert_false(aws_sigv4_derive_key(NULL, "20120215", "us-east-1", "iam", key, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
}

static void vanilla_stages(void **state)
{
    (void)state;
    /* vectors/sigv4/get-vanilla, inlined so the unit test runs without the
     * shared checkout */
    aws_sigv4_request req = get_req("/", NULL);
    aws_sigv4_config cfg;
    base_config(&cfg);
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.canonical_request,
                        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                        "host;x-amz-date\n"
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_string_equal(st.string_to_sign,
                        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    assert_string_equal(st.signature,
                        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    assert_string_equal(st.authorization,
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                        "SignedHeaders=host;x-amz-date, "
                        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    assert_string_equal(st.scope, "20150830/us-east-1/service/aws4_request");
    assert_string_equal(st.signed_headers, "host;x-amz-date");
    assert_string_equal(st.amz_date, "20150830T123600Z");
    assert_null(st.query);
    assert_int_equal(st.header_count, 2);
    assert_string_equal(st.headers[0].name, "X-Amz-Date");
    assert_string_equal(st.headers[0].value, "20150830T123600Z");
    assert_string_equal(st.headers[1].name, "Authorization");
    assert_ptr_equal(st.headers[1].value, st.authorization);

    /* signing again into the same state replaces (and frees) the old one */
    cfg.time += 1;
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.amz_date, "20150830T123601Z");
    aws_sigv4_state_clean(&st);
    aws_sigv4_state_clean(&st); /* idempotent */
    assert_null(st.canonical_request);
}

static void header_values_whitespace(void **state)
{
    (void)state;
    const aws_sigv4_header h[] = {
        {"Host", "example.amazonaws.com"},
        {"My-Header", "  a   b\t\t c  "},
        {"X-Tabs", "\tleading and trailing\t"},
        {"X-Folded", "value1\r\n  value2\n     value3"},
        {"X-Empty", ""},
        {"X-Blank", "   \t "},
        {"X-Quoted", "\"a   b   c\""},
        {"x-dup", "1"},
        {"X-DUP", " 2 "},
        {"X-Dup", "3"},
    };
    aws_sigv4_request req = {.method = "GET", .path = "/", .headers = h,
                             .header_count = sizeof h / sizeof *h};
    aws_sigv4_config cfg;
    base_config(&cfg);
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.canonical_request,
                        "GET\n/\n\n"
                        "host:example.amazonaws.com\n"
                        "my-header:a b c\n"
                        "x-amz-date:20150830T123600Z\n"
                        "x-blank:\n"
                        "x-dup:1,2,3\n"
                        "x-empty:\n"
                        "x-folded:value1 value2 value3\n"
                        "x-quoted:\"a b c\"\n"
                        "x-tabs:leading and trailing\n"
                        "\n"
                        "host;my-header;x-amz-date;x-blank;x-dup;x-empty;x-folded;x-quoted;x-tabs\n"
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    aws_sigv4_state_clean(&st);
}

static void headers_excluded_and_replaced(void **state)
{
    (void)state;
    const aws_sigv4_header h[] = {
        {"User-Agent", "lumu/0.1"},
        {"host", "example.amazonaws.com"},
        {"Authorization", "stale"},
        {"X-Amz-Date", "19990101T000000Z"}, /* replaced by the signer's */
        {"Expect", "100-continue"},
        {"X-Amzn-Trace-Id", "Root=1"},
        {"Connection", "keep-alive"},
        {"Transfer-Encoding", "chunked"},
        {"Content-Type", "text/plain"},
    };
    aws_sigv4_request req = {.method = "PUT", .path = "/", .headers = h,
                             .header_count = sizeof h / sizeof *h};
    aws_sigv4_config cfg;
    base_config(&cfg);
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.signed_headers, "content-type;host;x-amz-date");
    assert_non_null(strstr(st.canonical_request, "x-amz-date:20150830T123600Z\n"));
    assert_null(strstr(st.canonical_request, "1999"));
    assert_null(strstr(st.canonical_request, "lumu"));
    aws_sigv4_state_clean(&st);
}

static void session_token_placement(void **state)
{
    (void)state;
    const char *tok = "FwoG+tok/en==";
    aws_sigv4_request req = get_req("/", "b=2&a=1");
    aws_sigv4_config cfg;
    base_config(&cfg);
    cfg.session_token = tok;
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    char line[4096];

    /* header mode, signed: first header to set, inside the signature */
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.signed_headers, "host;x-amz-date;x-amz-security-token");
    assert_non_null(strstr(st.canonical_request, "\nx-amz-security-token:FwoG+tok/en==\n"));
    assert_int_equal(st.header_count, 3);
    assert_string_equal(st.headers[0].name, "X-Amz-Security-Token");
    assert_string_equal(st.headers[0].value, tok);
    assert_ptr_not_equal(st.headers[0].value, tok); /* owned copy */
    assert_string_equal(st.headers[1].name, "X-Amz-Date");
    assert_string_equal(st.headers[2].name, "Authorization");
    char *sig_signed = strdup(st.signature);

    /* header mode, omitted: still set on the request, not signed */
    cfg.omit_session_token = true;
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.signed_headers, "host;x-amz-date");
    assert_null(strstr(st.canonical_request, "security-token"));
    assert_string_equal(find_header(&st, "X-Amz-Security-Token"), tok);
    assert_string_not_equal(st.signature, sig_signed);
    free(sig_signed);

    /* query mode, signed: in the canonical query (sorted, encoded) and in
     * the URL between X-Amz-Expires and X-Amz-Signature */
    cfg.omit_session_token = false;
    cfg.mode = AWS_SIGV4_MODE_QUERY;
    cfg.expires = 900;
    sign_ok(&req, &cfg, &st);
    assert_int_equal(st.header_count, 0);
    assert_null(st.authorization);
    assert_string_equal(st.signed_headers, "host");
    assert_string_equal(line_of(st.canonical_request, 2, line, sizeof line),
                        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request"
                        "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=900"
                        "&X-Amz-Security-Token=FwoG%2Btok%2Fen%3D%3D"
                        "&X-Amz-SignedHeaders=host&a=1&b=2");
    char want[512];
    snprintf(want, sizeof want,
             "b=2&a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIDEXAMPLE%%2F20150830%%2Fus-east-1%%2Fservice%%2Faws4_request"
             "&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Expires=900"
             "&X-Amz-Security-Token=FwoG%%2Btok%%2Fen%%3D%%3D&X-Amz-Signature=%s",
             st.signature);
    assert_string_equal(st.query, want);

    /* query mode, omitted: in the URL, not in the canonical query */
    cfg.omit_session_token = true;
    sign_ok(&req, &cfg, &st);
    assert_null(strstr(st.canonical_request, "Security-Token"));
    assert_non_null(strstr(st.query, "&X-Amz-Expires=900&X-Amz-Security-Token=FwoG%2Btok%2Fen%3D%3D"
                                     "&X-Amz-Signature="));

    /* an empty token is no token */
    cfg.session_token = "";
    sign_ok(&req, &cfg, &st);
    assert_null(strstr(st.query, "Security-Token"));
    aws_sigv4_state_clean(&st);
}

static void presign_query_details(void **state)
{
    (void)state;
    aws_sigv4_request req = get_req("/", NULL);
    aws_sigv4_config cfg;
    base_config(&cfg);
    cfg.mode = AWS_SIGV4_MODE_QUERY;
    cfg.add_content_sha256 = true; /* ignored in query mode */
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    sign_ok(&req, &cfg, &st);
    /* vectors/sigv4-crt/v4/get-vanilla query mode */
    assert_string_equal(st.signature,
                        "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d");
    assert_null(strstr(st.canonical_request, "content-sha256"));
    assert_int_equal(strncmp(st.query, "X-Amz-Algorithm=AWS4-HMAC-SHA256&", 33), 0);

    /* the query must not already carry auth parameters */
    aws_sigv4_request bad = get_req("/", "a=1&X-Amz-Signature=abc");
    sign_fails(&bad, &cfg, AWS_ERR_INVALID_ARG, "X-Amz-Signature");
    bad.query = "X-Amz-Credential";
    sign_fails(&bad, &cfg, AWS_ERR_INVALID_ARG, "X-Amz-Credential");
    /* ...but a longer name that merely starts like one is fine */
    bad.query = "X-Amz-Dates=1";
    sign_ok(&bad, &cfg, &st);

    cfg.expires = 0;
    sign_fails(&req, &cfg, AWS_ERR_INVALID_ARG, "expires");
    cfg.expires = AWS_SIGV4_MAX_EXPIRES + 1;
    sign_fails(&req, &cfg, AWS_ERR_INVALID_ARG, "expires");
    cfg.expires = AWS_SIGV4_MAX_EXPIRES;
    sign_ok(&req, &cfg, &st);
    assert_non_null(strstr(st.query, "&X-Amz-Expires=604800&"));
    aws_sigv4_state_clean(&st);
}

static void payload_modes(void **state)
{
    (void)state;
    const aws_sigv4_header h[] = {{"Host", "bucket.s3.amazonaws.com"},
                                  {"x-amz-content-sha256", "stale"}};
    aws_sigv4_request req = {.method = "PUT", .path = "/key", .headers = h, .header_count = 2,
                             .payload = "hello", .payload_len = 5};
    aws_sigv4_config cfg;
    aws_sigv4_config_init_s3(&cfg);
    cfg.access_key = AK;
    cfg.secret_key = SK;
    cfg.region = "us-east-1";
    cfg.time = T20150830;
    assert_false(cfg.double_encode_path);
    assert_false(cfg.normalize_path);
    assert_string_equal(cfg.service, "s3");
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    char line[256];

    const char *hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.payload_hash, hello);
    assert_string_equal(line_of(st.canonical_request, 8, line, sizeof line), hello);
    assert_non_null(strstr(st.canonical_request, "\nx-amz-content-sha256:2cf24dba"));
    assert_null(strstr(st.canonical_request, "stale"));
    assert_string_equal(find_header(&st, "x-amz-content-sha256"), hello);
    assert_string_equal(st.signed_headers, "host;x-amz-content-sha256;x-amz-date");

    req.payload_kind = AWS_SIGV4_PAYLOAD_UNSIGNED;
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.payload_hash, "UNSIGNED-PAYLOAD");
    assert_string_equal(find_header(&st, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
    assert_int_equal(strcmp(strrchr(st.canonical_request, '\n'), "\nUNSIGNED-PAYLOAD"), 0);

    req.payload_kind = AWS_SIGV4_PAYLOAD_HASH;
    req.payload_hash = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    sign_ok(&req, &cfg, &st);
    assert_int_equal(strcmp(strrchr(st.canonical_request, '\n'),
                            "\nSTREAMING-AWS4-HMAC-SHA256-PAYLOAD"), 0);

    /* without add_content_sha256 a caller's header is signed as given */
    cfg.add_content_sha256 = false;
    sign_ok(&req, &cfg, &st);
    assert_non_null(strstr(st.canonical_request, "\nx-amz-content-sha256:stale\n"));
    assert_null(find_header(&st, "x-amz-content-sha256"));

    req.payload_hash = "has space";
    sign_fails(&req, &cfg, AWS_ERR_INVALID_ARG, "payload hash");
    req.payload_hash = NULL;
    sign_fails(&req, &cfg, AWS_ERR_INVALID_ARG, "payload hash");
    req.payload_hash = "0123456789012345678901234567890123456789012345678901234567890123456789";
    sign_fails(&req, &cfg, AWS_ERR_INVALID_ARG, "payload hash");
    req.payload_kind = (aws_sigv4_payload_kind)42;
    sign_fails(&req, &cfg, AWS_ERR_INVALID_ARG, "payload kind");
    req.payload_kind = AWS_SIGV4_PAYLOAD_BYTES;
    req.payload = NULL;
    req.payload_len = 3;
    sign_fails(&req, &cfg, AWS_ERR_INVALID_ARG, "payload_len");
    aws_sigv4_state_clean(&st);
}

static void s3_unicode_key(void **state)
{
    (void)state;
    aws_sigv4_request req = get_req("/photos/\xe1\x88\xb4 2024//a%2Bb.jpg", "versionId=3&acl");
    aws_sigv4_config cfg;
    aws_sigv4_config_init_s3(&cfg);
    cfg.access_key = AK;
    cfg.secret_key = SK;
    cfg.region = "eu-west-1";
    cfg.time = T20150830;
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    char line[256];
    sign_ok(&req, &cfg, &st);
    assert_string_equal(line_of(st.canonical_request, 1, line, sizeof line),
                        "/photos/%E1%88%B4%202024//a%2Bb.jpg");
    assert_string_equal(line_of(st.canonical_request, 2, line, sizeof line),
                        "acl=&versionId=3");
    assert_string_equal(st.scope, "20150830/eu-west-1/s3/aws4_request");

    /* the same path for a non-S3 service: normalized and double-encoded */
    base_config(&cfg);
    sign_ok(&req, &cfg, &st);
    assert_string_equal(line_of(st.canonical_request, 1, line, sizeof line),
                        "/photos/%E1%88%B4%202024/a%252Bb.jpg");
    aws_sigv4_state_clean(&st);
}

static void invalid_inputs(void **state)
{
    (void)state;
    aws_sigv4_request req = get_req("/", NULL);
    aws_sigv4_config cfg;
    base_config(&cfg);
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    aws_error err;
    aws_error_clear(&err);

    assert_false(aws_sigv4_sign(NULL, &cfg, &st, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    assert_false(aws_sigv4_sign(&req, NULL, &st, NULL));
    assert_false(aws_sigv4_sign(&req, &cfg, NULL, NULL));

    aws_sigv4_request r = req;
    r.header_count = 0;
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "Host");
    r.headers = NULL;
    r.header_count = 2;
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "header_count");
    r = req;
    r.method = "";
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "method");
    r.method = "GET /";
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "method");
    r = req;
    r.path = "no-slash";
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "'/'");

    const aws_sigv4_header bad_name[] = {{"Host", "h"}, {"Bad Name", "v"}};
    r = req;
    r.headers = bad_name;
    r.header_count = 2;
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "invalid name");
    const aws_sigv4_header empty_name[] = {{"Host", "h"}, {"", "v"}};
    r.headers = empty_name;
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "empty name");
    const aws_sigv4_header null_value[] = {{"Host", "h"}, {"X", NULL}};
    r.headers = null_value;
    sign_fails(&r, &cfg, AWS_ERR_INVALID_ARG, "NULL");

    aws_sigv4_config c = cfg;
    c.access_key = NULL;
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "access key");
    c = cfg;
    c.access_key = "AKID/X";
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "access key");
    c = cfg;
    c.secret_key = "";
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "secret key");
    c = cfg;
    c.region = "us-east-1/x";
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "region");
    c = cfg;
    c.region = "us-east-1,us-west-2"; /* only SigV4a takes a region set */
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "region");
    c = cfg;
    c.service = "s 3";
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "service");
    c = cfg;
    c.session_token = "tok\nen";
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "session token");
    c = cfg;
    c.time = -5;
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "time");
    c = cfg;
    c.algorithm = (aws_sigv4_algorithm)7;
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "algorithm");
    c = cfg;
    c.mode = (aws_sigv4_mode)7;
    sign_fails(&req, &c, AWS_ERR_INVALID_ARG, "mode");

    /* a failure clears a state that held a previous result */
    sign_ok(&req, &cfg, &st);
    assert_false(aws_sigv4_sign(&r, &cfg, &st, NULL));
    assert_null(st.canonical_request);
    aws_sigv4_state_clean(&st);
}

static void key_cache(void **state)
{
    (void)state;
    aws_sigv4_key_cache *cache = aws_sigv4_key_cache_new(NULL);
    assert_non_null(cache);
    aws_sigv4_request req = get_req("/", NULL);
    aws_sigv4_config cfg;
    base_config(&cfg);
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    sign_ok(&req, &cfg, &st);
    char *uncached = strdup(st.signature);

    cfg.cache = cache;
    uint64_t hits, misses;
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.signature, uncached);
    aws_sigv4_key_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 1);
    cfg.time += 3600; /* same day: same key */
    sign_ok(&req, &cfg, &st);
    aws_sigv4_key_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);
    cfg.time += 86400; /* next day */
    sign_ok(&req, &cfg, &st);
    cfg.region = "eu-west-1";
    sign_ok(&req, &cfg, &st);
    cfg.secret_key = "another-secret"; /* rotated credentials never hit */
    sign_ok(&req, &cfg, &st);
    aws_sigv4_key_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 4);

    /* a cached key gives the same signature as a fresh one */
    cfg.secret_key = SK;
    cfg.region = "us-east-1";
    cfg.time = T20150830;
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.signature, uncached);
    aws_sigv4_key_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 2);

    /* more distinct scopes than slots: evicts, stays correct */
    static const char *const regions[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7",
                                          "r8", "r9", "ra", "rb", "rc", "rd", "re", "rf",
                                          "rg", "rh", "ri", "rj"};
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof regions / sizeof *regions; i++) {
            cfg.region = regions[i];
            sign_ok(&req, &cfg, &st);
            unsigned char key[32];
            char date8[9] = "20150830";
            assert_true(aws_sigv4_derive_key(SK, date8, regions[i], "service", key, NULL));
        }
    cfg.region = "us-east-1";
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.signature, uncached);

    aws_sigv4_key_cache_stats(NULL, &hits, &misses);
    assert_int_equal(hits, 0);
    aws_sigv4_key_cache_free(NULL);
    aws_sigv4_key_cache_free(cache);
    aws_sigv4_state_clean(&st);
    free(uncached);
}

/* ------------------------------------------------------------ SigV4a */

/* vectors/sigv4-crt/v4a/ * /public-key.json for AKIDEXAMPLE / SK */
static const char v4a_x[] = "b6618f6a65740a99e650b33b6b4b5bd0d43b176d721a3edfea7e7d2d56d936b1";
static const char v4a_y[] = "865ed22a7eadc9c5cb9d2cbaca1b3699139fedc5043dc6661864218330c8e518";

static void hex_bytes(const char *hex, unsigned char *out)
{
    for (size_t i = 0; hex[2 * i]; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

static void sigv4a_sign_and_verify(void **state)
{
    (void)state;
    unsigned char want[65], pub[65];
    want[0] = 4;
    hex_bytes(v4a_x, want + 1);
    hex_bytes(v4a_y, want + 33);
    assert_true(aws_sigv4a_public_key(AK, SK, pub, NULL));
    assert_memory_equal(pub, want, 65);

    aws_sigv4_key_cache *cache = aws_sigv4_key_cache_new(NULL);
    aws_sigv4_request req = get_req("/", NULL);
    aws_sigv4_config cfg;
    base_config(&cfg);
    cfg.algorithm = AWS_SIGV4A_ECDSA_P256;
    cfg.region = "us-east-1,us-west-2";
    cfg.session_token = "tok";
    cfg.cache = cache;
    aws_sigv4_state st;
    aws_sigv4_state_init(&st);
    sign_ok(&req, &cfg, &st);
    assert_string_equal(st.scope, "20150830/service/aws4_request");
    assert_string_equal(st.signed_headers, "host;x-amz-date;x-amz-region-set;x-amz-security-token");
    assert_non_null(strstr(st.canonical_request, "\nx-amz-region-set:us-east-1,us-west-2\n"));
    assert_int_equal(strncmp(st.authorization,
                             "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20150830/service/aws4_request, ",
                             76), 0);
    assert_string_equal(find_header(&st, "X-Amz-Region-Set"), "us-east-1,us-west-2");
    assert_string_equal(st.headers[0].name, "X-Amz-Security-Token");
    assert_string_equal(st.headers[1].name, "X-Amz-Date");
    assert_string_equal(st.headers[2].name, "X-Amz-Region-Set");
    assert_true(aws_sigv4a_verify(pub, st.string_to_sign, st.signature, NULL));
    char *first = strdup(st.signature);

    /* randomized, both valid; the second signature uses the cached key */
    sign_ok(&req, &cfg, &st);
    assert_string_not_equal(st.signature, first);
    assert_true(aws_sigv4a_verify(pub, st.string_to_sign, st.signature, NULL));
    uint64_t hits, misses;
    aws_sigv4_key_cache_stats(cache, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);

    /* tampering is detected, and "invalid" is not an error */
    aws_error err;
    aws_error_set(&err, AWS_ERR_INTERNAL, "preset");
    char *sts = strdup(st.string_to_sign);
    sts[strlen(sts) - 1] ^= 1;
    assert_false(aws_sigv4a_verify(pub, sts, st.signature, &err));
    assert_int_equal(err.code, AWS_ERR_NONE);
    assert_false(aws_sigv4a_verify(pub, st.string_to_sign, "zz", &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    unsigned char badpub[65] = {4};
    assert_false(aws_sigv4a_verify(badpub, st.string_to_sign, st.signature, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);

    /* query mode, region set "*" */
    cfg.region = "*";
    cfg.mode = AWS_SIGV4_MODE_QUERY;
    sign_ok(&req, &cfg, &st);
    assert_non_null(strstr(st.query, "&X-Amz-Security-Token=tok&X-Amz-Region-Set=%2A&X-Amz-Signature="));
    assert_non_null(strstr(st.canonical_request, "&X-Amz-Region-Set=%2A&"));
    assert_true(aws_sigv4a_verify(pub, st.string_to_sign, st.signature, NULL));

    assert_false(aws_sigv4a_public_key(AK, "", pub, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    free(sts);
    free(first);
    aws_sigv4_state_clean(&st);
    aws_sigv4_key_cache_free(cache);
}

/* ------------------------------------------------------------ OOM */

static long alloc_calls, alloc_fail_at = -1, alloc_live;

static void *fail_malloc(size_t n)
{
    if (alloc_calls++ == alloc_fail_at)
        return NULL;
    alloc_live++;
    return malloc(n);
}

static void *fail_realloc(void *p, size_t n)
{
    if (alloc_calls++ == alloc_fail_at)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        alloc_live++;
    return q;
}

static void fail_free(void *p)
{
    if (p)
        alloc_live--;
    free(p);
}

/* Fails allocation 0, 1, 2, ... until signing succeeds: every failure must
 * report no_memory, leave the state clean and leak nothing. */
static void oom_run(const aws_sigv4_request *req, aws_sigv4_config *cfg)
{
    aws_allocator a = {fail_malloc, fail_realloc, fail_free};
    aws_set_allocator(&a);
    bool done = false;
    long n;
    for (n = 0; n < 10000 && !done; n++) {
        alloc_calls = 0;
        alloc_fail_at = n;
        alloc_live = 0;
        aws_sigv4_key_cache *cache = NULL;
        if (cfg->cache) {
            cache = aws_sigv4_key_cache_new(NULL);
            if (!cache) {
                assert_int_equal(alloc_live, 0);
                continue;
            }
        }
        aws_sigv4_config c = *cfg;
        c.cache = cache;
        aws_sigv4_state st;
        aws_sigv4_state_init(&st);
        aws_error err;
        aws_error_clear(&err);
        done = aws_sigv4_sign(req, &c, &st, &err);
        if (!done) {
            assert_int_equal(err.code, AWS_ERR_NO_MEMORY);
            assert_null(st.canonical_request);
            assert_null(st.string_to_sign);
            assert_null(st.scope);
        } else {
            assert_non_null(st.signature);
        }
        aws_sigv4_state_clean(&st);
        aws_sigv4_key_cache_free(cache);
        if (alloc_live != 0)
            fail_msg("leak of %ld blocks when allocation #%ld fails", alloc_live, n);
    }
    aws_set_allocator(NULL);
    alloc_fail_at = -1;
    assert_true(done);
    assert_true(n > 5); /* the loop did exercise failures */
}

static void oom_every_allocation(void **state)
{
    (void)state;
    const aws_sigv4_header h[] = {{"Host", "example.amazonaws.com"},
                                  {"X-Dup", "a"}, {"x-dup", " b  c "}};
    aws_sigv4_request req = {.method = "POST", .path = "/a/../b c//d", .query = "z=1&y=%41&x",
                             .headers = h, .header_count = 3, .payload = "x", .payload_len = 1};
    aws_sigv4_config cfg;
    base_config(&cfg);
    cfg.session_token = "token+/=";
    oom_run(&req, &cfg);
    cfg.mode = AWS_SIGV4_MODE_QUERY;
    oom_run(&req, &cfg);
    cfg.omit_session_token = true;
    cfg.cache = (aws_sigv4_key_cache *)1; /* oom_run makes a real one */
    oom_run(&req, &cfg);
    cfg.algorithm = AWS_SIGV4A_ECDSA_P256;
    oom_run(&req, &cfg);
    cfg.mode = AWS_SIGV4_MODE_HEADERS;
    cfg.cache = NULL;
    cfg.add_content_sha256 = true;
    oom_run(&req, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_basics),
        cmocka_unit_test(alloc_helpers),
        cmocka_unit_test(uri_encode_rules),
        cmocka_unit_test(path_double_encoded_normalized),
        cmocka_unit_test(path_s3_single_encoded),
        cmocka_unit_test(path_errors_and_hostile),
        cmocka_unit_test(query_canonical),
        cmocka_unit_test(query_many_params),
        cmocka_unit_test(time_format),
        cmocka_unit_test(derive_key_known_answer),
        cmocka_unit_test(vanilla_stages),
        cmocka_unit_test(header_values_whitespace),
        cmocka_unit_test(headers_excluded_and_replaced),
        cmocka_unit_test(session_token_placement),
        cmocka_unit_test(presign_query_details),
        cmocka_unit_test(payload_modes),
        cmocka_unit_test(s3_unicode_key),
        cmocka_unit_test(invalid_inputs),
        cmocka_unit_test(key_cache),
        cmocka_unit_test(sigv4a_sign_and_verify),
        cmocka_unit_test(oom_every_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
