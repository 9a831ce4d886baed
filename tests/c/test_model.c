/* Unit tests of aws/model.c: the embedded table, loading every embedded
 * service, shape walking and attribute merging, paginators and waiters,
 * the cache, LUMU_MODELS_DIR overrides (plain, .gz, newest version, bad
 * files), malformed models, and allocation-failure injection (every error
 * path frees everything).  Also prints the embedded sizes and load times. */
#include "model.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "failalloc.h"

/* counting allocator: tests/c/support/failalloc.h */

static int setup(void **state)
{
    (void)state;
    alloc_live = 0;
    alloc_fail_at = -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    aws_model_cache_clear();
    if (alloc_live != 0)
        fail_msg("leak: %ld blocks outstanding", alloc_live);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- tests */

static void embedded_table(void **state)
{
    (void)state;
    static const char *const expected[] = {
        "acm", "application-autoscaling", "cloudformation", "cloudwatch", "codebuild",
        "codecommit", "codepipeline", "config", "dynamodb", "ec2", "ecr", "ecs", "eks", "elbv2",
        "iam", "kms", "logs", "organizations", "rds", "route53", "s3", "secretsmanager",
        "servicecatalog", "servicediscovery", "ssm", "sso", "sso-oidc", "sts"};
    size_t n = sizeof expected / sizeof expected[0];
    assert_int_equal(aws_model_service_count(), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(aws_model_service_name(i), expected[i]);
    assert_null(aws_model_service_name(n));
    assert_true(aws_model_embedded_compressed_total < aws_model_embedded_raw_total / 5);
    print_message("embedded models: %zu bytes compressed, %zu bytes raw (minified, no docs)\n",
                  aws_model_embedded_compressed_total, aws_model_embedded_raw_total);
}

static void every_service_loads(void **state)
{
    (void)state;
    for (size_t i = 0; i < aws_model_service_count(); i++) {
        aws_error err;
        aws_error_clear(&err);
        const char *name = aws_model_service_name(i);
        aws_model *m = aws_model_load(name, &err);
        if (!m)
            fail_msg("%s: %s", name, err.message);
        assert_string_equal(m->service, name);
        assert_int_not_equal(m->protocol, AWS_PROTOCOL_UNKNOWN);
        assert_non_null(m->api_version);
        assert_non_null(m->signing_name);
        assert_true(m->operation_count > 0);
        for (size_t k = 0; k < m->operation_count; k++) {
            const aws_operation *op = &m->operations[k];
            if (k)
                assert_true(strcmp(m->operations[k - 1].name, op->name) < 0);
            assert_ptr_equal(aws_model_operation(m, op->name), op);
            if (op->input)
                assert_int_equal(op->input->shape->type, AWS_SHAPE_STRUCTURE);
            for (size_t e = 0; e < op->error_count; e++)
                assert_true(op->errors[e]->flags & AWS_SF_EXCEPTION);
        }
        for (size_t k = 0; k < m->shape_count; k++) {
            const aws_shape *s = &m->shapes[k];
            for (size_t j = 0; j < s->member_count; j++)
                assert_non_null(s->members[j].shape);
            if (s->type == AWS_SHAPE_LIST)
                assert_non_null(s->member.shape);
            if (s->type == AWS_SHAPE_MAP)
                assert_true(s->key.shape && s->value.shape);
        }
        if (m->protocol == AWS_PROTOCOL_JSON) {
            assert_non_null(m->json_version);
            assert_non_null(m->target_prefix);
        }
        aws_model_free(m);
    }
    /* documents of the top level */
    aws_error err;
    aws_error_clear(&err);
    char ver[32];
    json_t *ep = aws_model_document(NULL, "endpoints", ver, &err);
    assert_non_null(ep);
    assert_string_equal(ver, "");
    assert_non_null(json_object_get(ep, "partitions"));
    json_decref(ep);
    json_t *rs = aws_model_document("s3", "endpoint-rule-set-1", ver, &err);
    assert_non_null(rs);
    assert_string_equal(ver, "2006-03-01");
    json_decref(rs);
}

static void cloudformation_model(void **state)
{
    (void)state;
    aws_error err;
    aws_error_clear(&err);
    const aws_model *m = aws_model_get("cloudformation", &err);
    assert_non_null(m);
    assert_ptr_equal(aws_model_get("cloudformation", &err), m); /* cached */
    assert_int_equal(m->protocol, AWS_PROTOCOL_QUERY);
    assert_string_equal(m->api_version, "2010-05-15");
    assert_string_equal(m->signing_name, "cloudformation");
    assert_int_equal(m->operation_count, 66);
    /* no documentation survives the build step */
    assert_null(json_object_get(m->root, "documentation"));
    const aws_operation *op = aws_model_operation(m, "DescribeStacks");
    assert_non_null(op);
    assert_string_equal(op->http_method, "POST");
    assert_string_equal(op->request_uri, "/");
    assert_string_equal(op->output->result_wrapper, "DescribeStacksResult");
    assert_null(aws_model_operation(m, "describeStacks"));
    const aws_member *stacks = aws_shape_member(op->output->shape, "Stacks");
    assert_non_null(stacks);
    assert_int_equal(stacks->shape->type, AWS_SHAPE_LIST);
    const aws_shape *stack = stacks->shape->member.shape;
    assert_string_equal(stack->name, "Stack");
    const aws_member *ct = aws_shape_member(stack, "CreationTime");
    assert_int_equal(ct->shape->type, AWS_SHAPE_TIMESTAMP);
    assert_true(aws_shape_member(stack, "StackName")->flags & AWS_MF_REQUIRED);
    assert_null(json_object_get(stack->raw, "documentation"));
    /* paginators and waiters */
    json_t *p = aws_model_paginator(m, "DescribeStacks", &err);
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "input_token")), "NextToken");
    assert_null(aws_model_paginator(m, "CreateStack", &err));
    assert_int_equal(err.code, AWS_ERR_NONE);
    json_t *w = aws_model_waiter(m, "StackCreateComplete", &err);
    assert_non_null(w);
    assert_string_equal(json_string_value(json_object_get(w, "operation")), "DescribeStacks");
    assert_true(json_object_size(aws_model_waiters(m, &err)) >= 5);
    /* error shapes */
    const aws_operation *cs = aws_model_operation(m, "CreateStack");
    const aws_shape *es = aws_model_error_shape(m, cs, "AlreadyExistsException");
    assert_non_null(es);
    assert_string_equal(es->name, "AlreadyExistsException");
    assert_null(aws_model_error_shape(m, cs, "NoSuchThing"));
}

static void merged_attributes(void **state)
{
    (void)state;
    aws_error err;
    aws_error_clear(&err);
    const aws_model *s3 = aws_model_get("s3", &err);
    assert_non_null(s3);
    assert_int_equal(s3->protocol, AWS_PROTOCOL_REST_XML);
    const aws_operation *put = aws_model_operation(s3, "PutObject");
    assert_string_equal(put->request_uri, "/{Bucket}/{Key+}");
    assert_string_equal(put->http_method, "PUT");
    const aws_member *key = aws_shape_member(put->input->shape, "Key");
    assert_int_equal(key->location, AWS_LOC_URI);
    assert_string_equal(key->location_name, "Key");
    const aws_member *meta = aws_shape_member(put->input->shape, "Metadata");
    assert_int_equal(meta->location, AWS_LOC_HEADERS);
    assert_string_equal(meta->location_name, "x-amz-meta-");
    assert_non_null(put->input->payload);
    assert_string_equal(put->input->payload->name, "Body");
    assert_int_equal(put->input->payload->shape->type, AWS_SHAPE_BLOB);
    const aws_operation *cb = aws_model_operation(s3, "CreateBucket");
    const aws_member *conf = cb->input->payload;
    assert_string_equal(conf->name, "CreateBucketConfiguration");
    assert_string_equal(conf->xml_ns_uri, "http://s3.amazonaws.com/doc/2006-03-01/");
    assert_null(conf->xml_ns_prefix);
    /* ListObjects: a flattened list from the shape level */
    const aws_operation *lo = aws_model_operation(s3, "ListObjects");
    const aws_member *contents = aws_shape_member(lo->output->shape, "Contents");
    assert_true(contents->flags & AWS_MF_FLATTENED);

    const aws_model *ec2 = aws_model_get("ec2", &err);
    assert_non_null(ec2);
    assert_int_equal(ec2->protocol, AWS_PROTOCOL_EC2);
    const aws_operation *di = aws_model_operation(ec2, "DescribeInstances");
    const aws_member *filters = aws_shape_member(di->input->shape, "Filters");
    assert_string_equal(filters->location_name, "Filter");
    const aws_member *dry = aws_shape_member(di->input->shape, "DryRun");
    assert_string_equal(dry->location_name, "dryRun");
    const aws_operation *ri = aws_model_operation(ec2, "RunInstances");
    const aws_member *tok = aws_shape_member(ri->input->shape, "ClientToken");
    assert_true(tok->flags & AWS_MF_IDEMPOTENCY_TOKEN);

    const aws_model *ddb = aws_model_get("dynamodb", &err);
    assert_int_equal(ddb->protocol, AWS_PROTOCOL_JSON);
    assert_string_equal(ddb->json_version, "1.0");
    assert_string_equal(ddb->target_prefix, "DynamoDB_20120810");
    /* recursive shapes resolve to the same object */
    const aws_shape *av = aws_model_shape(ddb, "AttributeValue");
    const aws_member *l = aws_shape_member(av, "L");
    assert_ptr_equal(l->shape->member.shape, av);
    assert_string_equal(aws_shape_type_name(av->type), "structure");
    assert_string_equal(aws_member_wire_name(l), "L");
}

static void unknown_and_invalid_names(void **state)
{
    (void)state;
    aws_error err;
    aws_error_clear(&err);
    assert_null(aws_model_get("no-such-service", &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "no-such-service"));
    aws_error_clear(&err);
    assert_null(aws_model_get("", &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    aws_error_clear(&err);
    assert_null(aws_model_document("../../etc", "service-2", NULL, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    aws_error_clear(&err);
    assert_null(aws_model_document("sts", "../x", NULL, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
    /* a document that does not exist is not an error */
    aws_error_clear(&err);
    assert_null(aws_model_document("sts", "waiters-2", NULL, &err));
    assert_int_equal(err.code, AWS_ERR_NONE);
    const aws_model *sts = aws_model_get("sts", &err);
    assert_non_null(sts);
    assert_null(aws_model_waiter(sts, "Anything", &err));
    assert_int_equal(err.code, AWS_ERR_NONE);
    assert_null(aws_model_waiters(sts, &err));
    assert_null(aws_model_paginator(sts, NULL, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
}

/* ------------------------------------------------ LUMU_MODELS_DIR */

static char tmpdir[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    for (char *p = path + strlen(tmpdir) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_gz(const char *rel, const char *text)
{
    char path[512];
    write_file(rel, ""); /* creates the directories */
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    gzputs(g, text);
    gzclose(g);
}

static const char *tiny_model =
    "{\"metadata\":{\"protocol\":\"json\",\"apiVersion\":\"2020-01-01\",\"jsonVersion\":\"1.1\","
    "\"targetPrefix\":\"Fake\",\"endpointPrefix\":\"fake\"},"
    "\"operations\":{\"Ping\":{\"name\":\"Ping\",\"http\":{\"method\":\"POST\",\"requestUri\":\"/\"},"
    "\"input\":{\"shape\":\"PingIn\"}}},"
    "\"shapes\":{\"PingIn\":{\"type\":\"structure\",\"members\":{\"Name\":{\"shape\":\"S\"}}},"
    "\"S\":{\"type\":\"string\"}}}";

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void models_dir_override(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lumu-models-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    write_file("fake/2019-01-01/service-2.json", "{not json");
    write_file("fake/2020-01-01/service-2.json", tiny_model);
    write_file("fake/2020-01-01/paginators-1.json",
               "{\"pagination\":{\"Ping\":{\"input_token\":\"T\",\"output_token\":\"T\"}}}");
    write_gz("gzsvc/2021-02-02/service-2.json.gz", tiny_model);
    write_file("broken/2020-01-01/service-2.json", "[1,2,3]");
    write_file("badgz/2020-01-01/service-2.json.gz", "this is not gzip");
    /* sts: override with the tiny model (newest directory wins) */
    write_file("sts/9999-01-01/service-2.json", tiny_model);
    write_file("endpoints.json", "{\"partitions\":[],\"version\":3}");
    setenv("LUMU_MODELS_DIR", tmpdir, 1);

    aws_error err;
    aws_error_clear(&err);
    char ver[32];
    aws_model *m = aws_model_load("fake", &err);
    if (!m)
        fail_msg("%s", err.message);
    assert_string_equal(m->target_prefix, "Fake");
    assert_non_null(aws_model_operation(m, "Ping"));
    json_t *p = aws_model_paginator(m, "Ping", &err);
    assert_non_null(p);
    aws_model_free(m);

    m = aws_model_load("gzsvc", &err);
    assert_non_null(m);
    aws_model_free(m);
    json_t *doc = aws_model_document("gzsvc", "service-2", ver, &err);
    assert_string_equal(ver, "2021-02-02");
    json_decref(doc);

    m = aws_model_load("sts", &err); /* overridden */
    assert_non_null(m);
    assert_string_equal(m->api_version, "2020-01-01");
    aws_model_free(m);
    m = aws_model_load("iam", &err); /* not overridden: embedded */
    assert_non_null(m);
    assert_string_equal(m->api_version, "2010-05-08");
    aws_model_free(m);

    json_t *ep = aws_model_document(NULL, "endpoints", NULL, &err);
    assert_int_equal(json_integer_value(json_object_get(ep, "version")), 3);
    json_decref(ep);

    aws_error_clear(&err);
    assert_null(aws_model_load("broken", &err));
    assert_int_equal(err.code, AWS_ERR_PARSE);
    aws_error_clear(&err);
    assert_null(aws_model_load("badgz", &err));
    assert_int_equal(err.code, AWS_ERR_PARSE);

    unsetenv("LUMU_MODELS_DIR");
    m = aws_model_load("sts", &err);
    assert_string_equal(m->api_version, "2011-06-15");
    aws_model_free(m);
    rm_rf(tmpdir);
}

static void malformed_models(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{}",                                                          /* no metadata */
        "{\"metadata\":{},\"shapes\":[]}",                             /* shapes not an object */
        "{\"metadata\":{},\"shapes\":{\"A\":{\"type\":\"wat\"}}}",     /* unknown type */
        "{\"metadata\":{},\"shapes\":{\"A\":{\"type\":\"list\",\"member\":{\"shape\":\"B\"}}}}",
        "{\"metadata\":{},\"shapes\":{\"A\":{\"type\":\"structure\",\"members\":{\"x\":7}}}}",
        "{\"metadata\":{},\"shapes\":{\"A\":{\"type\":\"structure\",\"payload\":\"nope\"}}}",
        "{\"metadata\":{},\"shapes\":{},\"operations\":{\"Op\":{\"input\":{\"shape\":\"Z\"}}}}",
        "{\"metadata\":{},\"shapes\":{\"A\":{\"type\":\"structure\"}},"
        "\"operations\":{\"Op\":{\"errors\":[{\"shape\":\"Q\"}]}}}",
        "{\"metadata\":{},\"shapes\":{\"A\":{\"type\":\"structure\"}},"
        "\"operations\":{\"Op\":{\"input\":{\"shape\":\"A\",\"payload\":\"q\"}}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *doc = json_loads(bad[i], 0, NULL);
        assert_non_null(doc);
        aws_error err;
        aws_error_clear(&err);
        aws_model *m = aws_model_from_json(doc, &err);
        if (m)
            fail_msg("model %zu compiled: %s", i, bad[i]);
        assert_int_equal(err.code, AWS_ERR_PARSE);
        json_decref(doc);
    }
    aws_error err;
    aws_error_clear(&err);
    assert_null(aws_model_from_json(NULL, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
}

/* Fails allocation 0, 1, 2, ... while loading a real model until it
 * succeeds: each failure reports no_memory and leaks nothing. */
static void oom_every_allocation(void **state)
{
    (void)state;
    json_t *doc = aws_model_document("sts", "service-2", NULL, NULL);
    assert_non_null(doc);
    aws_set_allocator(&counting);
    bool done = false;
    long n;
    for (n = 0; n < 100000 && !done; n++) {
        alloc_calls = 0;
        alloc_fail_at = n;
        long live0 = alloc_live;
        aws_error err;
        aws_error_clear(&err);
        aws_model *m = aws_model_from_json(doc, &err);
        done = m != NULL;
        if (!done)
            assert_int_equal(err.code, AWS_ERR_NO_MEMORY);
        aws_model_free(m);
        if (alloc_live != live0)
            fail_msg("leak of %ld blocks when allocation #%ld fails", alloc_live - live0, n);
    }
    /* the same for inflating + parsing an embedded document */
    done = false;
    long m_n;
    for (m_n = 0; m_n < 100000 && !done; m_n++) {
        alloc_calls = 0;
        alloc_fail_at = m_n;
        long live0 = alloc_live;
        aws_error err;
        aws_error_clear(&err);
        aws_model *m = aws_model_load("sso", &err);
        done = m != NULL;
        if (!done && err.code != AWS_ERR_NO_MEMORY)
            fail_msg("allocation #%ld failed: %s: %s", m_n, aws_errcode_name(err.code),
                     err.message);
        aws_model_free(m);
        if (alloc_live != live0)
            fail_msg("leak of %ld blocks when allocation #%ld fails (load)", alloc_live - live0,
                     m_n);
    }
    alloc_fail_at = -1;
    aws_set_allocator(NULL);
    json_decref(doc);
    assert_true(done);
    assert_true(n > 20 && m_n > 20);
}

static void load_times(void **state)
{
    (void)state;
    static const char *const names[] = {"cloudformation", "ec2", "s3"};
    for (size_t i = 0; i < 3; i++) {
        aws_error err;
        aws_error_clear(&err);
        double t0 = now_ms();
        aws_model *m = aws_model_load(names[i], &err);
        double t1 = now_ms();
        assert_non_null(m);
        print_message("load %-14s %4zu operations %5zu shapes: %.1f ms\n", names[i],
                      m->operation_count, m->shape_count, t1 - t0);
        assert_true(t1 - t0 < 5000);
        aws_model_free(m);
    }
}

int main(void)
{
    /* jansson through the counting allocator from the start: leaks of JSON
     * values are counted by teardown */
    json_set_alloc_funcs(j_malloc, t_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(embedded_table, setup, teardown),
        cmocka_unit_test_setup_teardown(every_service_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(cloudformation_model, setup, teardown),
        cmocka_unit_test_setup_teardown(merged_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_and_invalid_names, setup, teardown),
        cmocka_unit_test_setup_teardown(models_dir_override, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_models, setup, teardown),
        cmocka_unit_test_setup_teardown(oom_every_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(load_times, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
