/* Unit tests of aws/retry.c: classification tables (standard, 2026 and
 * legacy), backoff bounds with injected randomness, the retry quota (costs,
 * refunds, exhaustion), max attempts, x-amz-retry-after, long polling and
 * the adaptive rate limiter. */
#include "error.h"
#include "retry.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static double fixed(void *ud)
{
    return *(const double *)ud;
}

static void policy(aws_retry_policy *pol, aws_retry_mode mode, bool new_retries, const char *service,
                   double *r)
{
    aws_retry_config cfg;
    aws_retry_config_init(&cfg);
    cfg.mode = mode;
    cfg.new_retries = new_retries;
    cfg.service = service;
    if (r) {
        cfg.random = fixed;
        cfg.random_ud = r;
    }
    assert_true(aws_retry_policy_init(pol, &cfg, NULL));
}

static void classification_table(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *code;
        aws_errcode transport;
        const char *service;
        aws_retry_class want;
        bool timeout;
    } cases[] = {
        {400, "Throttling", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "ThrottlingException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "ThrottledException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "RequestThrottledException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "TooManyRequestsException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "ProvisionedThroughputExceededException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "TransactionInProgressException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "RequestLimitExceeded", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {509, "BandwidthLimitExceeded", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "LimitExceededException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {403, "RequestThrottled", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {503, "SlowDown", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "PriorRequestNotComplete", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {503, "EC2ThrottledException", AWS_ERR_NONE, NULL, AWS_RETRY_THROTTLING, false},
        {400, "RequestTimeout", AWS_ERR_NONE, NULL, AWS_RETRY_TRANSIENT, false},
        {408, "RequestTimeoutException", AWS_ERR_NONE, NULL, AWS_RETRY_TRANSIENT, false},
        {500, NULL, AWS_ERR_NONE, NULL, AWS_RETRY_TRANSIENT, false},
        {502, "", AWS_ERR_NONE, NULL, AWS_RETRY_TRANSIENT, false},
        {503, "ServiceUnavailable", AWS_ERR_NONE, NULL, AWS_RETRY_TRANSIENT, false},
        {504, NULL, AWS_ERR_NONE, NULL, AWS_RETRY_TRANSIENT, false},
        {0, NULL, AWS_ERR_HTTP, NULL, AWS_RETRY_TRANSIENT, false},
        {0, NULL, AWS_ERR_TIMEOUT, NULL, AWS_RETRY_TRANSIENT, true},
        {400, "IDPCommunicationError", AWS_ERR_NONE, "sts", AWS_RETRY_TRANSIENT, false},
        {400, "IDPCommunicationError", AWS_ERR_NONE, "iam", AWS_RETRY_NOT_RETRYABLE, false},
        {400, "ValidationError", AWS_ERR_NONE, NULL, AWS_RETRY_NOT_RETRYABLE, false},
        {403, "AccessDenied", AWS_ERR_NONE, NULL, AWS_RETRY_NOT_RETRYABLE, false},
        {404, NULL, AWS_ERR_NONE, NULL, AWS_RETRY_NOT_RETRYABLE, false},
        {429, NULL, AWS_ERR_NONE, NULL, AWS_RETRY_NOT_RETRYABLE, false}, /* standard: only by code */
        {501, NULL, AWS_ERR_NONE, NULL, AWS_RETRY_NOT_RETRYABLE, false},
        {0, NULL, AWS_ERR_PARSE, NULL, AWS_RETRY_NOT_RETRYABLE, false},
        {0, NULL, AWS_ERR_CREDENTIALS, NULL, AWS_RETRY_NOT_RETRYABLE, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aws_retry_input in = {.http_status = cases[i].status, .error_code = cases[i].code,
                              .transport = cases[i].transport};
        bool timeout = !cases[i].timeout;
        aws_retry_class c = aws_retry_classify(&in, cases[i].service, false, &timeout);
        if (c != cases[i].want)
            fail_msg("case %zu (%d %s): got %s", i, cases[i].status, cases[i].code ? cases[i].code : "-",
                     aws_retry_class_name(c));
        assert_int_equal(timeout, cases[i].timeout);
    }
    /* modeled traits and checksums */
    aws_retry_input in = {.http_status = 400, .error_code = "Custom", .modeled_retryable = true};
    assert_int_equal(aws_retry_classify(&in, NULL, false, NULL), AWS_RETRY_TRANSIENT);
    in.modeled_throttling = true;
    assert_int_equal(aws_retry_classify(&in, NULL, false, NULL), AWS_RETRY_THROTTLING);
    in = (aws_retry_input){.http_status = 200, .checksum_mismatch = true};
    assert_int_equal(aws_retry_classify(&in, "dynamodb", false, NULL), AWS_RETRY_TRANSIENT);
    /* 2026: a bare 429 is throttling */
    in = (aws_retry_input){.http_status = 429};
    assert_int_equal(aws_retry_classify(&in, NULL, true, NULL), AWS_RETRY_THROTTLING);
    /* from an aws_error */
    aws_error e;
    aws_error_set_service(&e, 400, "ThrottlingException", "Rate exceeded", "rid", true);
    aws_retry_input_from_error(&e, &in);
    assert_int_equal(aws_retry_classify(&in, NULL, false, NULL), AWS_RETRY_THROTTLING);
    aws_error_set(&e, AWS_ERR_TIMEOUT, "operation timed out");
    aws_retry_input_from_error(&e, &in);
    bool timeout = false;
    assert_int_equal(aws_retry_classify(&in, NULL, false, &timeout), AWS_RETRY_TRANSIENT);
    assert_true(timeout);
    aws_retry_input_from_error(NULL, &in);
    assert_int_equal(aws_retry_classify(&in, NULL, false, NULL), AWS_RETRY_NOT_RETRYABLE);
}

static void legacy_table(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *code;
        const char *service;
        bool retry;
    } cases[] = {
        {500, NULL, NULL, true},   {502, NULL, NULL, true},   {503, NULL, NULL, true},
        {504, NULL, NULL, true},   {509, NULL, NULL, true},   {429, NULL, NULL, true},
        {400, "Throttling", NULL, true},
        {400, "ThrottlingException", NULL, true},
        {400, "ProvisionedThroughputExceededException", NULL, true},
        {400, "TooManyRequestsException", NULL, false},
        {400, "TooManyRequestsException", "organizations", true},
        {400, "LimitExceededException", NULL, false},
        {400, "LimitExceededException", "kinesis", true},
        {403, "RequestThrottled", "sqs", true},
        {400, "RequestTimeout", "s3", true},
        {400, "RequestTimeout", NULL, false},
        {400, "BadDigest", "s3", true},
        {400, "PriorRequestNotComplete", "route53", true},
        {400, "IDPCommunicationError", "sts", true},
        {400, "TransactionInProgressException", "dynamodb", true},
        {400, "ValidationError", NULL, false},
        {404, NULL, NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double r = 0.5;
        aws_retry_policy pol;
        policy(&pol, AWS_RETRY_LEGACY, false, cases[i].service, &r);
        aws_retry_token tok = {0};
        aws_retry_input in = {.http_status = cases[i].status, .error_code = cases[i].code};
        aws_retry_decision d;
        aws_retry_decide(&pol, &tok, &in, 0, &d);
        if (d.retry != cases[i].retry)
            fail_msg("legacy case %zu (%d %s %s): retry=%d", i, cases[i].status,
                     cases[i].code ? cases[i].code : "-", cases[i].service ? cases[i].service : "-",
                     d.retry);
        if (d.retry)
            assert_int_equal(d.cost, 0); /* legacy: no quota */
    }
    /* 5 attempts, rand * 2^(n-1), no cap; DynamoDB 10 attempts, 0.05 base */
    double r = 0.75;
    aws_retry_policy pol;
    policy(&pol, AWS_RETRY_LEGACY, false, NULL, &r);
    assert_int_equal(pol.max_attempts, 5);
    aws_retry_token tok = {0};
    aws_retry_input in = {.transport = AWS_ERR_HTTP};
    aws_retry_decision d;
    double want[] = {0.75, 1.5, 3.0, 6.0};
    for (int i = 0; i < 4; i++) {
        aws_retry_decide(&pol, &tok, &in, 0, &d);
        assert_true(d.retry);
        assert_true(fabs(d.delay - want[i]) < 1e-12);
    }
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_false(d.retry);
    assert_int_equal(d.reason, AWS_RETRY_REASON_MAX_ATTEMPTS);
    assert_true(fabs(aws_retry_backoff(&pol, AWS_RETRY_TRANSIENT, 20, 0.75) - 0.75 * 524288) < 1e-6);
    policy(&pol, AWS_RETRY_LEGACY, false, "dynamodb", &r);
    assert_int_equal(pol.max_attempts, 10);
    assert_true(fabs(aws_retry_backoff(&pol, AWS_RETRY_TRANSIENT, 3, 0.75) - 0.2) < 1e-12);
}

static void standard_backoff_bounds(void **state)
{
    (void)state;
    aws_retry_policy pol;
    policy(&pol, AWS_RETRY_STANDARD, false, NULL, NULL);
    for (int attempt = 1; attempt <= 12; attempt++) {
        double cap = fmin(pow(2, attempt - 1), 20.0);
        assert_true(aws_retry_backoff(&pol, AWS_RETRY_TRANSIENT, attempt, 0.0) == 0.0);
        double top = aws_retry_backoff(&pol, AWS_RETRY_THROTTLING, attempt, 0.999999);
        assert_true(top <= cap && top > cap * 0.99 - 1e-9);
    }
    assert_true(aws_retry_backoff(&pol, AWS_RETRY_TRANSIENT, 1000000, 0.5) == 20.0);
    /* the internal generator stays in [0, cap] */
    aws_retry_token tok;
    for (int i = 0; i < 2000; i++) {
        aws_retry_policy p2;
        policy(&p2, AWS_RETRY_STANDARD, false, NULL, NULL);
        tok = (aws_retry_token){0};
        aws_retry_input in = {.http_status = 503};
        aws_retry_decision d;
        aws_retry_decide(&p2, &tok, &in, 0, &d);
        assert_true(d.retry);
        assert_true(d.delay >= 0.0 && d.delay < 1.0);
        aws_retry_decide(&p2, &tok, &in, 0, &d);
        assert_true(d.delay >= 0.0 && d.delay < 2.0);
    }
}

static void max_attempts_and_quota(void **state)
{
    (void)state;
    double r = 0.5;
    aws_retry_policy pol;
    policy(&pol, AWS_RETRY_STANDARD, false, NULL, &r);
    assert_int_equal(pol.max_attempts, 3);
    assert_int_equal(aws_retry_quota(&pol), 500);
    aws_retry_input in = {.http_status = 500};
    aws_retry_decision d;
    aws_retry_token tok = {0};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_true(d.retry);
    assert_int_equal(d.cost, 5);
    assert_true(d.delay == 0.5);
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_true(d.delay == 1.0);
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_false(d.retry);
    assert_int_equal(d.reason, AWS_RETRY_REASON_MAX_ATTEMPTS);
    assert_int_equal(aws_retry_quota(&pol), 490);
    /* a success after retries refunds the last retry's cost */
    aws_retry_on_success(&pol, &tok);
    assert_int_equal(aws_retry_quota(&pol), 495);
    /* a success without retries refunds 1, never above 500 */
    for (int i = 0; i < 10; i++) {
        aws_retry_token t = {0};
        aws_retry_on_success(&pol, &t);
    }
    assert_int_equal(aws_retry_quota(&pol), 500);
    /* timeouts cost 10; non-retryable costs nothing */
    tok = (aws_retry_token){0};
    in = (aws_retry_input){.transport = AWS_ERR_TIMEOUT};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_int_equal(d.cost, 10);
    assert_true(d.is_timeout);
    in = (aws_retry_input){.http_status = 400, .error_code = "ValidationError"};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_false(d.retry);
    assert_int_equal(d.reason, AWS_RETRY_REASON_NOT_RETRYABLE);
    assert_int_equal(aws_retry_quota(&pol), 490);
    /* exhaust the bucket: 98 retries of 5 from 490 leave 0 */
    int retries = 0;
    for (;;) {
        aws_retry_token t = {0};
        in = (aws_retry_input){.http_status = 503};
        aws_retry_decide(&pol, &t, &in, 0, &d);
        if (!d.retry)
            break;
        retries++;
    }
    assert_int_equal(retries, 98);
    assert_int_equal(d.reason, AWS_RETRY_REASON_QUOTA);
    assert_int_equal(aws_retry_quota(&pol), 0);
    /* successes refill it */
    aws_retry_token t = {.cost = 5};
    aws_retry_on_success(&pol, &t);
    assert_int_equal(aws_retry_quota(&pol), 5);
    t = (aws_retry_token){0};
    in = (aws_retry_input){.http_status = 503};
    aws_retry_decide(&pol, &t, &in, 0, &d);
    assert_true(d.retry);
    /* configured attempts and validation */
    aws_retry_config cfg;
    aws_retry_config_init(&cfg);
    cfg.max_attempts = 1;
    assert_true(aws_retry_policy_init(&pol, &cfg, NULL));
    tok = (aws_retry_token){0};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_false(d.retry);
    assert_int_equal(d.reason, AWS_RETRY_REASON_MAX_ATTEMPTS);
    aws_error err;
    aws_error_clear(&err);
    cfg.max_attempts = 101;
    assert_false(aws_retry_policy_init(&pol, &cfg, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    cfg.max_attempts = -1;
    assert_false(aws_retry_policy_init(&pol, &cfg, &err));
}

static void new_retries_2026(void **state)
{
    (void)state;
    double r = 1.0;
    aws_retry_policy pol;
    policy(&pol, AWS_RETRY_STANDARD, true, NULL, &r);
    assert_int_equal(pol.max_attempts, 3);
    /* botocore's test: rand = 1 -> 0.05, 0.1, ... 12.8, then the 20 s cap */
    double want[] = {0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 20, 20};
    for (int i = 0; i < 11; i++)
        assert_true(fabs(aws_retry_backoff(&pol, AWS_RETRY_TRANSIENT, i + 1, 1.0) - want[i]) < 1e-9);
    assert_true(fabs(aws_retry_backoff(&pol, AWS_RETRY_THROTTLING, 1, 1.0) - 1.0) < 1e-12);
    assert_true(fabs(aws_retry_backoff(&pol, AWS_RETRY_THROTTLING, 3, 0.5) - 2.0) < 1e-12);
    /* costs: 14 transient (timeouts too), 5 throttling */
    aws_retry_token tok = {0};
    aws_retry_input in = {.http_status = 500};
    aws_retry_decision d;
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_int_equal(d.cost, 14);
    assert_int_equal(aws_retry_quota(&pol), 486);
    aws_retry_on_success(&pol, &tok);
    assert_int_equal(aws_retry_quota(&pol), 500);
    tok = (aws_retry_token){0};
    in = (aws_retry_input){.transport = AWS_ERR_TIMEOUT};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_int_equal(d.cost, 14);
    tok = (aws_retry_token){0};
    in = (aws_retry_input){.http_status = 400, .error_code = "Throttling"};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_int_equal(d.cost, 5);
    assert_true(fabs(d.delay - 1.0) < 1e-12);
    /* x-amz-retry-after: clamped to [computed, computed + 5] */
    static const struct {
        const char *header;
        double want;
    } ra[] = {{"1500", 1.5}, {"0", 0.05}, {"10000", 5.05}, {"invalid", 0.05}, {"-100", 0.05},
              {" 200 ", 0.2}, {"", 0.05}, {"12abc", 0.05}};
    for (size_t i = 0; i < sizeof ra / sizeof ra[0]; i++) {
        aws_retry_policy p;
        policy(&p, AWS_RETRY_STANDARD, true, NULL, &r);
        aws_retry_token t = {0};
        in = (aws_retry_input){.http_status = 500, .retry_after = ra[i].header};
        aws_retry_decide(&p, &t, &in, 0, &d);
        if (fabs(d.delay - ra[i].want) > 1e-9)
            fail_msg("retry-after \"%s\": delay %g, want %g", ra[i].header, d.delay, ra[i].want);
    }
    /* ignored without the 2026 switch */
    aws_retry_policy old;
    policy(&old, AWS_RETRY_STANDARD, false, NULL, &r);
    tok = (aws_retry_token){0};
    in = (aws_retry_input){.http_status = 500, .retry_after = "1500"};
    aws_retry_decide(&old, &tok, &in, 0, &d);
    assert_true(fabs(d.delay - 1.0) < 1e-12);
    /* DynamoDB: 4 attempts, 25 ms base: 486, 472, 458 then max attempts */
    policy(&pol, AWS_RETRY_STANDARD, true, "dynamodb", &r);
    assert_int_equal(pol.max_attempts, 4);
    tok = (aws_retry_token){0};
    in = (aws_retry_input){.http_status = 500};
    double delays[] = {0.025, 0.05, 0.1};
    int quotas[] = {486, 472, 458};
    for (int i = 0; i < 3; i++) {
        aws_retry_decide(&pol, &tok, &in, 0, &d);
        assert_true(d.retry);
        assert_true(fabs(d.delay - delays[i]) < 1e-12);
        assert_int_equal(aws_retry_quota(&pol), quotas[i]);
    }
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_false(d.retry);
    assert_int_equal(d.reason, AWS_RETRY_REASON_MAX_ATTEMPTS);
    /* long polling: with an empty quota, wait the delay but do not retry */
    aws_retry_config cfg;
    aws_retry_config_init(&cfg);
    cfg.new_retries = true;
    cfg.random = fixed;
    cfg.random_ud = &r;
    assert_true(aws_retry_policy_init(&pol, &cfg, NULL));
    pol.quota = 3;
    tok = (aws_retry_token){0};
    in = (aws_retry_input){.http_status = 500, .long_polling = true};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_false(d.retry);
    assert_int_equal(d.reason, AWS_RETRY_REASON_QUOTA);
    assert_true(fabs(d.delay - 0.05) < 1e-12);
    in.long_polling = false;
    tok = (aws_retry_token){0};
    aws_retry_decide(&pol, &tok, &in, 0, &d);
    assert_true(d.delay == 0.0);
}

static void adaptive_limiter(void **state)
{
    (void)state;
    double r = 0.0;
    aws_retry_policy pol;
    policy(&pol, AWS_RETRY_ADAPTIVE, false, NULL, &r);
    /* off until the first throttle */
    for (int i = 0; i < 20; i++) {
        double t = i * 0.1;
        assert_true(aws_retry_before_send(&pol, t) == 0.0);
        aws_retry_on_response(&pol, t, false);
    }
    assert_false(pol.limiter_enabled);
    /* a throttling error enables it and lowers the rate */
    aws_retry_token tok = {0};
    aws_retry_input in = {.http_status = 400, .error_code = "ThrottlingException"};
    aws_retry_decision d;
    aws_retry_decide(&pol, &tok, &in, 2.0, &d);
    assert_true(d.retry);
    assert_true(pol.limiter_enabled);
    assert_true(pol.fill_rate >= 0.5);
    /* sending as fast as possible now has to wait */
    double waited = 0;
    double t = 2.0;
    for (int i = 0; i < 10; i++) {
        double w = aws_retry_before_send(&pol, t);
        if (w > 0) {
            waited += w;
            t += w;
            assert_true(aws_retry_before_send(&pol, t) == 0.0);
        }
    }
    assert_true(waited > 0);
    /* successes let the rate grow back (CUBIC) */
    double before = pol.fill_rate;
    for (int i = 0; i < 200; i++) {
        t += 0.05;
        aws_retry_on_response(&pol, t, false);
    }
    assert_true(pol.fill_rate > before);
    /* the other modes never wait */
    policy(&pol, AWS_RETRY_STANDARD, false, NULL, &r);
    aws_retry_on_response(&pol, 1, true);
    assert_true(aws_retry_before_send(&pol, 1) == 0.0);
}

static void names_and_parsing(void **state)
{
    (void)state;
    aws_retry_mode m;
    assert_true(aws_retry_mode_parse("standard", &m) && m == AWS_RETRY_STANDARD);
    assert_true(aws_retry_mode_parse("adaptive", &m) && m == AWS_RETRY_ADAPTIVE);
    assert_true(aws_retry_mode_parse("legacy", &m) && m == AWS_RETRY_LEGACY);
    assert_false(aws_retry_mode_parse("Standard", &m));
    assert_false(aws_retry_mode_parse(NULL, &m));
    assert_string_equal(aws_retry_mode_name(AWS_RETRY_ADAPTIVE), "adaptive");
    assert_string_equal(aws_retry_class_name(AWS_RETRY_THROTTLING), "throttling");
    assert_string_equal(aws_retry_reason_name(AWS_RETRY_REASON_QUOTA), "quota");
    assert_int_equal(aws_retry_default_attempts(AWS_RETRY_STANDARD, "dynamodb", false), 3);
    assert_int_equal(aws_retry_default_attempts(AWS_RETRY_ADAPTIVE, NULL, true), 3);
    assert_int_equal(aws_retry_default_attempts(AWS_RETRY_LEGACY, NULL, true), 5);
    aws_retry_policy pol;
    assert_true(aws_retry_policy_init(&pol, NULL, NULL));
    assert_int_equal(pol.cfg.mode, AWS_RETRY_STANDARD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classification_table),
        cmocka_unit_test(legacy_table),
        cmocka_unit_test(standard_backoff_bounds),
        cmocka_unit_test(max_attempts_and_quota),
        cmocka_unit_test(new_retries_2026),
        cmocka_unit_test(adaptive_limiter),
        cmocka_unit_test(names_and_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
