/*
 * retry: AWS retry policies (see retry.h).  Constants and formulas follow
 * botocore: retries/standard.py (codes, ExponentialBackoff, quota costs),
 * quota.py (500 tokens), adaptive.py + bucket.py + throttling.py (CUBIC
 * client-side rate limiting), data/_retry.json (legacy mode), and the 2026
 * retry update (AWS_NEW_RETRIES_2026).
 */
#include "retry.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUOTA_INITIAL 500
#define COST_RETRY 5
#define COST_TIMEOUT 10
#define COST_NO_RETRY_INCREMENT 1
#define COST_2026_TRANSIENT 14
#define COST_2026_THROTTLING 5
#define MAX_BACKOFF 20.0
#define RETRY_AFTER_SLACK 5.0

static const char *const s_throttling_codes[] = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    NULL};

static const char *const s_transient_codes[] = {"RequestTimeout", "RequestTimeoutException",
                                                "PriorRequestNotComplete", NULL};

static bool s_in(const char *s, const char *const *list)
{
    if (!s || !*s)
        return false;
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static bool s_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool s_is_dynamodb(const char *service)
{
    return s_eq(service, "dynamodb") || s_eq(service, "dynamodb-streams") ||
           s_eq(service, "streams.dynamodb");
}

/* ------------------------------------------------------------------------ */

void aws_retry_config_init(aws_retry_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mode = AWS_RETRY_STANDARD;
}

bool aws_retry_mode_parse(const char *s, aws_retry_mode *mode)
{
    if (s_eq(s, "standard"))
        *mode = AWS_RETRY_STANDARD;
    else if (s_eq(s, "adaptive"))
        *mode = AWS_RETRY_ADAPTIVE;
    else if (s_eq(s, "legacy"))
        *mode = AWS_RETRY_LEGACY;
    else
        return false;
    return true;
}

const char *aws_retry_mode_name(aws_retry_mode mode)
{
    switch (mode) {
    case AWS_RETRY_STANDARD:
        return "standard";
    case AWS_RETRY_ADAPTIVE:
        return "adaptive";
    case AWS_RETRY_LEGACY:
        return "legacy";
    }
    return "unknown";
}

const char *aws_retry_class_name(aws_retry_class c)
{
    switch (c) {
    case AWS_RETRY_TRANSIENT:
        return "transient";
    case AWS_RETRY_THROTTLING:
        return "throttling";
    case AWS_RETRY_NOT_RETRYABLE:
        break;
    }
    return "none";
}

const char *aws_retry_reason_name(aws_retry_reason r)
{
    switch (r) {
    case AWS_RETRY_REASON_RETRY:
        return "retry";
    case AWS_RETRY_REASON_NOT_RETRYABLE:
        return "not_retryable";
    case AWS_RETRY_REASON_MAX_ATTEMPTS:
        return "max_attempts";
    case AWS_RETRY_REASON_QUOTA:
        return "quota";
    }
    return "unknown";
}

int aws_retry_default_attempts(aws_retry_mode mode, const char *service, bool new_retries)
{
    if (mode == AWS_RETRY_LEGACY)
        return s_is_dynamodb(service) ? 10 : 5;
    if (new_retries && s_is_dynamodb(service))
        return 4;
    return 3;
}

static uint64_t s_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double s_random(aws_retry_policy *pol)
{
    if (pol->cfg.random) {
        double r = pol->cfg.random(pol->cfg.random_ud);
        if (!(r >= 0.0))
            r = 0.0;
        if (r >= 1.0)
            r = 1.0;
        return r;
    }
    return (double)(s_splitmix(&pol->rng) >> 11) * (1.0 / 9007199254740992.0);
}

bool aws_retry_policy_init(aws_retry_policy *pol, const aws_retry_config *cfg, aws_error *err)
{
    aws_retry_config c;
    if (cfg)
        c = *cfg;
    else
        aws_retry_config_init(&c);
    if (c.max_attempts < 0 || c.max_attempts > 100)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "max_attempts must be between 1 and 100");
    if (c.mode != AWS_RETRY_STANDARD && c.mode != AWS_RETRY_ADAPTIVE && c.mode != AWS_RETRY_LEGACY)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "unknown retry mode");
    if (!(c.max_backoff > 0.0))
        c.max_backoff = MAX_BACKOFF;
    memset(pol, 0, sizeof *pol);
    pol->cfg = c;
    pol->max_attempts =
        c.max_attempts ? c.max_attempts : aws_retry_default_attempts(c.mode, c.service, c.new_retries);
    pol->quota = pol->quota_max = QUOTA_INITIAL;
    static uint64_t counter;
    pol->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)pol << 16) ^ (++counter * 0x2545f4914f6cdd1dULL);
    /* token bucket: max_rate 1 */
    pol->fill_rate = 1.0;
    pol->max_capacity = 1.0;
    return true;
}

/* ------------------------------------------------------------------------
 * Classification
 * ---------------------------------------------------------------------- */

aws_retry_class aws_retry_classify(const aws_retry_input *in, const char *service,
                                   bool new_retries, bool *is_timeout)
{
    bool timeout = in->transport == AWS_ERR_TIMEOUT;
    if (is_timeout)
        *is_timeout = timeout;
    const char *code = in->error_code && *in->error_code ? in->error_code : NULL;
    if (s_in(code, s_throttling_codes) || in->modeled_throttling)
        return AWS_RETRY_THROTTLING;
    if (s_in(code, s_transient_codes))
        return AWS_RETRY_TRANSIENT;
    int st = in->http_status;
    if (st == 500 || st == 502 || st == 503 || st == 504)
        return AWS_RETRY_TRANSIENT;
    if (in->transport == AWS_ERR_HTTP || timeout)
        return AWS_RETRY_TRANSIENT;
    if (s_eq(service, "sts") && s_eq(code, "IDPCommunicationError"))
        return AWS_RETRY_TRANSIENT;
    if (in->modeled_retryable || in->checksum_mismatch)
        return AWS_RETRY_TRANSIENT;
    if (new_retries && st == 429)
        return AWS_RETRY_THROTTLING;
    return AWS_RETRY_NOT_RETRYABLE;
}

/* botocore data/_retry.json (legacy mode). */
static aws_retry_class s_classify_legacy(const aws_retry_input *in, const char *service,
                                         bool *is_timeout)
{
    bool timeout = in->transport == AWS_ERR_TIMEOUT;
    if (is_timeout)
        *is_timeout = timeout;
    if (in->transport == AWS_ERR_HTTP || timeout)
        return AWS_RETRY_TRANSIENT; /* general_socket_errors */
    const char *code = in->error_code && *in->error_code ? in->error_code : "";
    int st = in->http_status;
    bool throttling_code = s_in(code, s_throttling_codes);
    aws_retry_class hit = throttling_code ? AWS_RETRY_THROTTLING : AWS_RETRY_TRANSIENT;
    if (st == 500 || st == 502 || st == 503 || st == 504 || st == 509 || st == 429)
        return hit;
    static const char *const default_400[] = {"Throttling", "ThrottlingException",
                                              "ThrottledException", "RequestThrottledException",
                                              "ProvisionedThroughputExceededException", NULL};
    if (st == 400 && s_in(code, default_400))
        return AWS_RETRY_THROTTLING;
    /* per-service policies */
    static const struct {
        const char *service;
        int status;
        const char *code;
    } per_service[] = {
        {"organizations", 400, "TooManyRequestsException"},
        {"dynamodb", 400, "TransactionInProgressException"},
        {"ec2", 503, "RequestLimitExceeded"},
        {"ec2", 503, "EC2ThrottledException"},
        {"cloudsearch", 509, "BandwidthLimitExceeded"},
        {"kinesis", 400, "LimitExceededException"},
        {"sqs", 403, "RequestThrottled"},
        {"s3", 400, "RequestTimeout"},
        {"s3", 400, "BadDigest"},
        {"glacier", 408, "RequestTimeoutException"},
        {"route53", 400, "Throttling"},
        {"route53", 400, "PriorRequestNotComplete"},
        {"sts", 400, "IDPCommunicationError"},
    };
    for (size_t i = 0; i < sizeof per_service / sizeof per_service[0]; i++)
        if (s_eq(service, per_service[i].service) && st == per_service[i].status &&
            strcmp(code, per_service[i].code) == 0)
            return hit;
    if (s_is_dynamodb(service) && in->checksum_mismatch)
        return AWS_RETRY_TRANSIENT;
    return AWS_RETRY_NOT_RETRYABLE;
}

void aws_retry_input_from_error(const aws_error *e, aws_retry_input *in)
{
    memset(in, 0, sizeof *in);
    if (!e)
        return;
    in->http_status = e->http_status;
    in->error_code = e->aws_code;
    if (e->code == AWS_ERR_HTTP || e->code == AWS_ERR_TIMEOUT)
        in->transport = e->code;
}

/* ------------------------------------------------------------------------
 * Backoff
 * ---------------------------------------------------------------------- */

double aws_retry_backoff(const aws_retry_policy *pol, aws_retry_class c, int attempt, double r)
{
    if (attempt < 1)
        attempt = 1;
    if (attempt > 1000)
        attempt = 1000;
    double grow = ldexp(1.0, attempt - 1);
    const char *svc = pol->cfg.service;
    if (pol->cfg.mode == AWS_RETRY_LEGACY)
        return (s_is_dynamodb(svc) ? 0.05 : r) * grow;
    if (pol->cfg.new_retries) {
        double base = c == AWS_RETRY_THROTTLING ? 1.0 : (s_is_dynamodb(svc) ? 0.025 : 0.05);
        return r * fmin(base * grow, pol->cfg.max_backoff);
    }
    return fmin(r * grow, pol->cfg.max_backoff);
}

/* x-amz-retry-after: a non-negative integer of milliseconds. */
static bool s_retry_after(const char *s, double *seconds)
{
    if (!s)
        return false;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '+')
        s++;
    if (*s < '0' || *s > '9')
        return false;
    double v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 1e12)
            return false;
        s++;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s)
        return false;
    *seconds = v / 1000.0;
    return true;
}

/* ------------------------------------------------------------------------
 * Adaptive mode
 * ---------------------------------------------------------------------- */

static void s_bucket_refill(aws_retry_policy *pol, double now)
{
    if (!pol->have_refill) {
        pol->have_refill = true;
        pol->last_refill = now;
        return;
    }
    double fill = (now - pol->last_refill) * pol->fill_rate;
    if (fill > 0)
        pol->capacity = fmin(pol->max_capacity, pol->capacity + fill);
    pol->last_refill = now;
}

static void s_bucket_set_rate(aws_retry_policy *pol, double now, double rate)
{
    s_bucket_refill(pol, now);
    pol->fill_rate = fmax(rate, 0.5);
    pol->max_capacity = rate >= 1.0 ? rate : 1.0;
    pol->capacity = fmin(pol->capacity, pol->max_capacity);
}

static void s_start_clock(aws_retry_policy *pol, double now)
{
    if (pol->clock_started)
        return;
    pol->clock_started = true;
    pol->last_fail = now;    /* CUBIC start time */
    pol->w_max = 0.0;
    pol->k = 0.0;
    pol->last_bucket = floor(now);
    s_bucket_refill(pol, now);
}

double aws_retry_before_send(aws_retry_policy *pol, double now)
{
    if (pol->cfg.mode != AWS_RETRY_ADAPTIVE)
        return 0.0;
    s_start_clock(pol, now);
    if (!pol->limiter_enabled)
        return 0.0;
    s_bucket_refill(pol, now);
    if (pol->capacity >= 1.0 - 1e-9) { /* tolerate rounding after waiting exactly */
        pol->capacity = fmax(pol->capacity - 1.0, 0.0);
        return 0.0;
    }
    return (1.0 - pol->capacity) / pol->fill_rate;
}

void aws_retry_on_response(aws_retry_policy *pol, double now, bool throttled)
{
    if (pol->cfg.mode != AWS_RETRY_ADAPTIVE)
        return;
    s_start_clock(pol, now);
    /* rate clocker: 0.5 s buckets, smoothing 0.8 */
    double bucket = floor(now * 2.0) / 2.0;
    pol->count += 1.0;
    if (bucket > pol->last_bucket) {
        double current = pol->count / (bucket - pol->last_bucket);
        pol->measured_rate = current * 0.8 + pol->measured_rate * 0.2;
        pol->count = 0.0;
        pol->last_bucket = bucket;
    }
    double measured = pol->measured_rate, new_rate;
    if (!throttled) {
        double dt = now - pol->last_fail - pol->k;
        new_rate = 0.4 * dt * dt * dt + pol->w_max;
    } else {
        double rate = pol->limiter_enabled ? fmin(measured, pol->fill_rate) : measured;
        pol->w_max = rate;
        pol->k = cbrt(rate * (1.0 - 0.7) / 0.4);
        pol->last_fail = now;
        new_rate = rate * 0.7;
        pol->limiter_enabled = true;
    }
    s_bucket_set_rate(pol, now, fmin(new_rate, 2.0 * measured));
}

/* ------------------------------------------------------------------------
 * Decisions
 * ---------------------------------------------------------------------- */

void aws_retry_decide(aws_retry_policy *pol, aws_retry_token *tok, const aws_retry_input *in,
                      double now, aws_retry_decision *out)
{
    memset(out, 0, sizeof *out);
    tok->attempts++;
    bool legacy = pol->cfg.mode == AWS_RETRY_LEGACY;
    bool timeout = false;
    aws_retry_class c = legacy ? s_classify_legacy(in, pol->cfg.service, &timeout)
                               : aws_retry_classify(in, pol->cfg.service, pol->cfg.new_retries,
                                                    &timeout);
    out->klass = c;
    out->is_timeout = timeout;
    if (pol->cfg.mode == AWS_RETRY_ADAPTIVE) {
        bool throttled = aws_retry_classify(in, pol->cfg.service, pol->cfg.new_retries, NULL) ==
                         AWS_RETRY_THROTTLING;
        aws_retry_on_response(pol, now, throttled);
    }
    if (c == AWS_RETRY_NOT_RETRYABLE) {
        out->reason = AWS_RETRY_REASON_NOT_RETRYABLE;
        return;
    }
    if (tok->attempts >= pol->max_attempts) {
        out->reason = AWS_RETRY_REASON_MAX_ATTEMPTS;
        return;
    }
    int cost = 0;
    if (!legacy) {
        if (pol->cfg.new_retries)
            cost = c == AWS_RETRY_THROTTLING ? COST_2026_THROTTLING : COST_2026_TRANSIENT;
        else
            cost = timeout ? COST_TIMEOUT : COST_RETRY;
    }
    double delay = aws_retry_backoff(pol, c, tok->attempts, s_random(pol));
    double after;
    if (!legacy && pol->cfg.new_retries && s_retry_after(in->retry_after, &after))
        delay = fmin(fmax(after, delay), delay + RETRY_AFTER_SLACK);
    if (cost > pol->quota) {
        out->reason = AWS_RETRY_REASON_QUOTA;
        if (pol->cfg.new_retries && in->long_polling)
            out->delay = delay;
        return;
    }
    pol->quota -= cost;
    tok->cost = cost;
    out->cost = cost;
    out->delay = delay;
    out->retry = true;
    out->reason = AWS_RETRY_REASON_RETRY;
}

void aws_retry_on_success(aws_retry_policy *pol, aws_retry_token *tok)
{
    if (pol->cfg.mode == AWS_RETRY_LEGACY)
        return;
    int amount = tok && tok->cost > 0 ? tok->cost : COST_NO_RETRY_INCREMENT;
    pol->quota += amount;
    if (pol->quota > pol->quota_max)
        pol->quota = pol->quota_max;
    if (tok)
        tok->cost = 0;
}

int aws_retry_quota(const aws_retry_policy *pol)
{
    return pol->quota;
}
