/*
 * retry: the AWS SDK retry policies (botocore's retries/standard.py,
 * quota.py, adaptive.py, bucket.py, throttling.py and the legacy
 * _retry.json), as pure functions of their inputs: no clock, no sleeping,
 * injectable randomness.
 *
 *   aws_retry_config cfg;
 *   aws_retry_config_init(&cfg);            // standard, 3 attempts
 *   cfg.service = "cloudformation";
 *   aws_retry_policy pol;
 *   aws_retry_policy_init(&pol, &cfg);
 *   aws_retry_token tok = {0};               // one per request
 *   for (;;) {
 *       double wait = aws_retry_before_send(&pol, now());   // adaptive only
 *       ... send; on success: aws_retry_on_success(&pol, &tok); break ...
 *       aws_retry_input in = {.http_status = 503};            // or .transport = AWS_ERR_TIMEOUT
 *       aws_retry_decision d;
 *       aws_retry_decide(&pol, &tok, &in, now(), &d);
 *       if (!d.retry) break;                   // d.reason says why
 *       sleep(d.delay);
 *   }
 *
 * Classification (aws_retry_classify):
 *   throttling  error codes Throttling, ThrottlingException, ThrottledException,
 *               RequestThrottledException, TooManyRequestsException,
 *               ProvisionedThroughputExceededException,
 *               TransactionInProgressException, RequestLimitExceeded,
 *               BandwidthLimitExceeded, LimitExceededException,
 *               RequestThrottled, SlowDown, PriorRequestNotComplete,
 *               EC2ThrottledException; or modeled_throttling.
 *   transient   error codes RequestTimeout, RequestTimeoutException,
 *               PriorRequestNotComplete (throttling wins); HTTP 500, 502,
 *               503, 504; a transport failure (AWS_ERR_HTTP, or
 *               AWS_ERR_TIMEOUT which also sets is_timeout); STS
 *               IDPCommunicationError; modeled_retryable;
 *               checksum_mismatch (DynamoDB's x-amz-crc32).
 *   With new_retries (AWS_NEW_RETRIES_2026) an HTTP 429 without a known
 *   code is throttling too.  Everything else: not retryable.
 *
 * Standard mode (the default): at most max_attempts attempts in all
 * (default 3); a retry needs tokens from a quota shared by the policy (500
 * tokens; a retry costs 5, a timeout 10; a success returns what its retries
 * took, or 1 when it needed none); delay = rand * 2^(attempt-1) capped at
 * 20 s (attempt = attempts made so far, 1-based).
 * new_retries (the 2026 defaults, opt-in): cost 14, or 5 for throttling;
 * delay = rand * min(base * 2^(attempt-1), 20) with base 1 s for
 * throttling, 0.05 s otherwise (DynamoDB / DynamoDB Streams: 0.025 s and 4
 * attempts); a valid "x-amz-retry-after" (milliseconds) moves the delay
 * into [computed, computed + 5 s]; long-polling operations wait the delay
 * even when the quota is empty (and then give up).
 * Adaptive mode: standard plus client-side rate limiting (CUBIC + token
 * bucket), enabled by the first throttling response: before_send says how
 * long to wait before an attempt.
 * Legacy mode: botocore's _retry.json: 5 attempts (DynamoDB 10), no quota,
 * delay = rand * 2^(attempt-1) (DynamoDB 0.05 * 2^(attempt-1)), no cap;
 * retries connection errors, HTTP 429/500/502/503/504/509 and the
 * throttling codes botocore lists per service.
 */
#ifndef LUMU_AWS_RETRY_H
#define LUMU_AWS_RETRY_H

#include "error.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum aws_retry_mode {
    AWS_RETRY_STANDARD = 0,
    AWS_RETRY_ADAPTIVE,
    AWS_RETRY_LEGACY
} aws_retry_mode;

typedef enum aws_retry_class {
    AWS_RETRY_NOT_RETRYABLE = 0,
    AWS_RETRY_TRANSIENT,
    AWS_RETRY_THROTTLING
} aws_retry_class;

/* What happened to an attempt. */
typedef struct aws_retry_input {
    int http_status;              /* 0 when no response arrived */
    const char *error_code;       /* AWS error code, NULL/"" if none */
    aws_errcode transport;        /* AWS_ERR_NONE; AWS_ERR_HTTP / AWS_ERR_TIMEOUT for
                                     transport failures (others: not retryable) */
    bool modeled_retryable;       /* the error shape has the retryable trait */
    bool modeled_throttling;      /*   ... with throttling = true */
    bool checksum_mismatch;       /* response checksum did not match (DynamoDB) */
    const char *retry_after;      /* x-amz-retry-after header, NULL if absent */
    bool long_polling;            /* SQS ReceiveMessage and the like */
} aws_retry_input;

typedef struct aws_retry_config {
    aws_retry_mode mode;
    int max_attempts;             /* total attempts incl. the first; 0 = mode default */
    bool new_retries;             /* AWS_NEW_RETRIES_2026=true */
    const char *service;          /* endpoint prefix / service name ("sts", "dynamodb"), may be NULL */
    double max_backoff;           /* seconds, 0 = 20 */
    double (*random)(void *ud);   /* uniform [0, 1); NULL = internal generator */
    void *random_ud;
} aws_retry_config;

typedef enum aws_retry_reason {
    AWS_RETRY_REASON_RETRY = 0,       /* retry after `delay` */
    AWS_RETRY_REASON_NOT_RETRYABLE,
    AWS_RETRY_REASON_MAX_ATTEMPTS,    /* "MaxAttemptsReached" */
    AWS_RETRY_REASON_QUOTA            /* "RetryQuotaReached" */
} aws_retry_reason;

typedef struct aws_retry_decision {
    bool retry;
    double delay;                 /* seconds to wait (also set for a long-polling give-up) */
    aws_retry_class klass;
    bool is_timeout;
    aws_retry_reason reason;
    int cost;                     /* quota tokens taken by this retry */
} aws_retry_decision;

/* Per-request state: zero it before the first attempt. */
typedef struct aws_retry_token {
    int attempts;                 /* attempts made (decide counts them) */
    int cost;                     /* tokens taken by the last retry */
} aws_retry_token;

typedef struct aws_retry_policy {
    aws_retry_config cfg;
    int max_attempts;             /* effective */
    int quota;                    /* available tokens */
    int quota_max;
    uint64_t rng;
    /* adaptive */
    bool limiter_enabled;
    double fill_rate, max_capacity, capacity, last_refill; /* token bucket */
    bool have_refill;
    double w_max, k, last_fail;                        /* CUBIC */
    double measured_rate, last_bucket;                 /* rate clocker */
    double count;
    bool clock_started;
} aws_retry_policy;

/* Standard mode, default attempts, new_retries off. */
void aws_retry_config_init(aws_retry_config *cfg);

/* Parses "standard" / "adaptive" / "legacy".  False for anything else. */
bool aws_retry_mode_parse(const char *s, aws_retry_mode *mode);
const char *aws_retry_mode_name(aws_retry_mode mode);
const char *aws_retry_class_name(aws_retry_class c);       /* "none" "transient" "throttling" */
const char *aws_retry_reason_name(aws_retry_reason r);     /* "retry" "not_retryable" ... */

/* The default number of attempts of a mode/service/new_retries combination. */
int aws_retry_default_attempts(aws_retry_mode mode, const char *service, bool new_retries);

/* Copies cfg (service and random pointers are kept, not copied).  False
 * with AWS_ERR_INVALID_ARG for max_attempts < 0 or > 100. */
bool aws_retry_policy_init(aws_retry_policy *pol, const aws_retry_config *cfg, aws_error *err);

/* Classifies an attempt's outcome for standard/adaptive mode. */
aws_retry_class aws_retry_classify(const aws_retry_input *in, const char *service,
                                   bool new_retries, bool *is_timeout);

/* Fills an input from an aws_error (code -> transport, http_status,
 * aws_code; the strings point into e). */
void aws_retry_input_from_error(const aws_error *e, aws_retry_input *in);

/* Records a failed attempt and decides.  now (seconds, any monotonic origin)
 * feeds adaptive mode; ignored otherwise. */
void aws_retry_decide(aws_retry_policy *pol, aws_retry_token *tok, const aws_retry_input *in,
                      double now, aws_retry_decision *out);

/* A successful response: returns quota.  In adaptive mode also pass the
 * response to aws_retry_on_response. */
void aws_retry_on_success(aws_retry_policy *pol, aws_retry_token *tok);

/* Adaptive mode: seconds to wait before sending an attempt now (0 when the
 * limiter is off or has capacity); takes a token when it returns 0.
 * Always 0 in the other modes. */
double aws_retry_before_send(aws_retry_policy *pol, double now);

/* Adaptive mode: feeds every response (or failure) into the rate limiter;
 * aws_retry_decide does this itself for failures. */
void aws_retry_on_response(aws_retry_policy *pol, double now, bool throttled);

/* Available quota tokens. */
int aws_retry_quota(const aws_retry_policy *pol);

/* The backoff alone (for tests and for polling loops): the delay before the
 * retry following attempt `attempt` (1-based) for class c, with uniform
 * sample r in [0, 1). */
double aws_retry_backoff(const aws_retry_policy *pol, aws_retry_class c, int attempt, double r);

#endif
