/* Regression tests for the LUMU_FAIL_ALLOC segfault in jansson's json_loadb
 * while a model loads (issue #8).  jansson 2.14's lexer ignores a failed
 * strbuffer growth (lex_save), keeps a string token without its closing
 * quote and then reads past the buffer looking for it.  lumu hands jansson
 * lumu_json_malloc, which the fault injection never fails: these tests fail
 * every allocation in turn through json_loadb and through a whole model
 * load (inflate + json_loadb + compile), and check that each ends in a
 * result or a clean error with nothing leaked. */
#include "host.h"
#include "model.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int setup(void **state)
{
    (void)state;
    json_set_alloc_funcs(lumu_json_malloc, lumu_free);
    lumu_track_enable(0); /* also routes aws/ allocations through the tracker */
    return 0;
}

static size_t blocks_now(void)
{
    lumu_memstats st;
    lumu_track_stats(&st);
    return st.blocks;
}

/* The pending injected failure skips jansson's hook and hits the next
 * lumu_malloc instead. */
static void json_hook_is_never_failed(void **state)
{
    (void)state;
    lumu_track_enable(1);
    void *j = lumu_json_malloc(64);
    assert_non_null(j);
    void *p = lumu_malloc(64);
    assert_null(p);
    lumu_free(j);
    lumu_track_enable(0);
}

/* A document whose string tokens outgrow jansson's 16-byte token buffer
 * several times: each growth was a point where the lexer broke. */
static char *long_strings_doc(size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    n += (size_t)snprintf(s + n, cap - n, "{\"shapes\":[");
    for (int i = 0; i < 40; i++) {
        n += (size_t)snprintf(s + n, cap - n, "%s{\"name_%d\":\"", i ? "," : "", i);
        for (int k = 0; k < 40 * (i + 1) && n < cap - 64; k++)
            s[n++] = (char)('a' + k % 26);
        n += (size_t)snprintf(s + n, cap - n, "\",\"n\":%d.5e1}", i);
    }
    n += (size_t)snprintf(s + n, cap - n, "]}");
    *len = n;
    return s;
}

static void json_loadb_survives_every_failure(void **state)
{
    (void)state;
    size_t len;
    char *doc = long_strings_doc(&len);
    size_t base = blocks_now();
    for (long n = 1; n <= 400; n++) {
        lumu_track_enable(n);
        json_error_t jerr;
        json_t *v = json_loadb(doc, len, 0, &jerr);
        lumu_track_enable(0);
        assert_non_null(v); /* jansson is never failed, so it always parses */
        assert_int_equal(json_array_size(json_object_get(v, "shapes")), 40);
        json_decref(v);
        assert_int_equal(blocks_now(), base);
    }
    free(doc);
}

/* The original reproducer: `lumu aws cloudformation describe-stacks` with
 * LUMU_FAIL_ALLOC=1438 failed an allocation inside json_loadb of the
 * embedded cloudformation model.  Here the allocations of a model load fail
 * in turn (every 3rd of sts's, the smallest query model, and every 41st of
 * cloudformation's, to keep the run short). */
static void model_load_survives_every_failure(void **state)
{
    (void)state;
    static const struct {
        const char *service;
        long step;
    } cases[] = {{"sts", 3}, {"cloudformation", 41}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t base = blocks_now();
        lumu_memstats st0, st1;
        lumu_track_stats(&st0);
        aws_error err;
        aws_error_clear(&err);
        aws_model *m = aws_model_load(cases[c].service, &err);
        assert_non_null(m);
        aws_model_free(m);
        lumu_track_stats(&st1);
        long total = (long)(st1.total - st0.total);
        int failures = 0;
        for (long n = 1; n <= total + 1; n += cases[c].step) {
            aws_error_clear(&err);
            lumu_track_enable(n);
            m = aws_model_load(cases[c].service, &err);
            lumu_track_enable(0);
            if (m) {
                aws_model_free(m);
            } else {
                failures++;
                assert_int_equal(err.code, AWS_ERR_NO_MEMORY);
            }
            assert_int_equal(blocks_now(), base);
        }
        assert_true(failures > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_hook_is_never_failed),
        cmocka_unit_test(json_loadb_survives_every_failure),
        cmocka_unit_test(model_load_survives_every_failure),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
