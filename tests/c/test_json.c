/* Tests of lua/convert.c (shared by lumu.json and lumu.yaml) and of the two
 * modules under failing allocations: stack effects, UTF-8 validation, float
 * precision, the encoder walk, and no leak or crash when any allocation fails. */
#include "convert.h"
#include "harness.h"
#include "host.h"

#include <lauxlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void utf8_validation(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } cases[] = {
        {"", 0, 1},
        {"plain ascii", 11, 1},
        {"a\0b", 3, 1},
        {"\xc3\xa9", 2, 1},             /* é */
        {"\xe2\x82\xac", 3, 1},         /* € */
        {"\xf0\x9f\x98\x80", 4, 1},     /* 😀 */
        {"\xf4\x8f\xbf\xbf", 4, 1},     /* U+10FFFF */
        {"\xff", 1, 0},
        {"\xc3", 1, 0},                 /* truncated */
        {"\xc0\x80", 2, 0},             /* overlong NUL */
        {"\xe0\x80\x80", 3, 0},         /* overlong */
        {"\xed\xa0\x80", 3, 0},         /* surrogate */
        {"\xf4\x90\x80\x80", 4, 0},     /* above U+10FFFF */
        {"\xe2\x82", 2, 0},             /* truncated */
        {"\xe2\x28\xa1", 3, 0},         /* bad continuation */
        {"\x80", 1, 0},                 /* lone continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (lumu_conv_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("case %zu: expected %d", i, cases[i].ok);
    }
}

static void float_precision(void **state)
{
    (void)state;
    assert_int_equal(lumu_conv_float_precision(0.1), 1);
    assert_int_equal(lumu_conv_float_precision(2.5), 2);
    assert_int_equal(lumu_conv_float_precision(1.0 / 3.0), 16);
    assert_int_equal(lumu_conv_float_precision(0.1 + 0.2), 17);
    assert_int_equal(lumu_conv_float_precision(1500.0), 4); /* no exponent */
    assert_int_equal(lumu_conv_float_precision(1e300), 1);
    assert_int_equal(lumu_conv_float_precision(-123456789012345.0), 15);
}

/* A visitor that writes what it sees into a buffer. */
typedef struct recorder {
    char buf[512];
} recorder;

static void rec_add(recorder *r, const char *s)
{
    size_t n = strlen(r->buf);
    snprintf(r->buf + n, sizeof r->buf - n, "%s ", s);
}

static const char *rec_scalar(void *ud, lua_State *L, int kind)
{
    recorder *r = ud;
    static const char *const names[] = {"null", "bool", "int", "float", "str"};
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s:%s", names[kind],
             kind == LUMU_CONV_NULL ? "" : luaL_tolstring(L, -1, NULL));
    if (kind != LUMU_CONV_NULL)
        lua_pop(L, 1);
    rec_add(r, tmp);
    return NULL;
}

static const char *rec_open(void *ud, lua_State *L, int is_array, lua_Integer n, int *action)
{
    (void)L, (void)n, (void)action;
    rec_add(ud, is_array ? "[" : "{");
    return NULL;
}

static const char *rec_key(void *ud, const char *k, size_t len)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.*s=", (int)len, k);
    rec_add(ud, tmp);
    return NULL;
}

static const char *rec_close(void *ud, int is_array)
{
    rec_add(ud, is_array ? "]" : "}");
    return NULL;
}

static const char *rec_fail_on_key_b(void *ud, const char *k, size_t len)
{
    (void)ud;
    return len == 1 && k[0] == 'b' ? "visitor says no" : NULL;
}

static const lumu_conv_visitor s_rec = {rec_scalar, rec_open, rec_key, rec_close};
static const lumu_conv_visitor s_rec_fail = {rec_scalar, rec_open, rec_fail_on_key_b, rec_close};

static int walk_top(lua_State *L)
{
    recorder *r = lua_touserdata(L, 2);
    lumu_conv_walk(L, 1, lua_toboolean(L, 3) ? &s_rec_fail : &s_rec, r, 1, "test");
    return 0;
}

static void walk_order_and_stack(void **state)
{
    (void)state;
    lua_State *L = harness_state();
    lumu_conv_init(L);
    assert_int_equal(luaL_dostring(L, "local json = require 'lumu.json'\n"
                                      "return json.ordered({z = 1, b = {true, 2.5}, a = json.null,"
                                      " e = json.array()}, {'z'})"),
                     LUA_OK);
    int top = lua_gettop(L);
    recorder r = {{0}};
    lumu_conv_walk(L, -1, &s_rec, &r, 1, "test");
    assert_int_equal(lua_gettop(L), top); /* [-0, +0] */
    assert_string_equal(r.buf, "{ z= int:1 a= null: b= [ bool:true float:2.5 ] e= [ ] } ");

    /* errors from the visitor carry the path */
    lua_pushcfunction(L, walk_top);
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, &r);
    lua_pushboolean(L, 1);
    assert_int_not_equal(lua_pcall(L, 3, 0, 0), LUA_OK);
    assert_string_equal(lua_tostring(L, -1), "test: b: visitor says no");
    lua_pop(L, 2);
    assert_int_equal(lua_gettop(L), 0);
    harness_close(L);
}

static void markers_and_null(void **state)
{
    (void)state;
    lua_State *L = harness_state();
    lumu_conv_init(L);
    lumu_conv_init(L); /* idempotent */
    lua_newtable(L);
    assert_int_equal(lumu_conv_marker(L, -1), LUMU_CONV_UNMARKED);
    lumu_conv_mark(L, -1, 1);
    assert_int_equal(lumu_conv_marker(L, -1), LUMU_CONV_ARRAY);
    lumu_conv_mark(L, -1, 0);
    assert_int_equal(lumu_conv_marker(L, -1), LUMU_CONV_OBJECT);
    lumu_conv_pushnull(L);
    assert_ptr_equal(lua_touserdata(L, -1), lumu_conv_nullptr(L));
    assert_int_equal(lua_gettop(L), 2);
    char buf[64];
    assert_true(harness_eval(L, "return require('lumu.json').null == require('lumu.yaml').null",
                             buf, sizeof buf));
    assert_string_equal(buf, "true");
    lua_settop(L, 0);
    harness_close(L);
}

/* Failing the Nth allocation during encode/decode/load/dump is an error or
 * goes unnoticed (Lua retries after a GC), never a crash or a leak. */
static void failing_allocations_do_not_leak(void **state)
{
    (void)state;
    static const char chunk[] =
        "local json, yaml = require 'lumu.json', require 'lumu.yaml'\n"
        "local src = 'R:\\n  A: &a {T: X, P: {P: !Ref Q, L: [1, 2.5, !GetAtt B.C], E: []}}\\n'"
        "  .. '  B:\\n    <<: *a\\n    N: ~\\n'\n"
        "local v = assert(yaml.load(src, {positions = true}))\n"
        "local s = json.encode(v, {pretty = true})\n"
        "local w = assert(json.decode(s))\n"
        "local y = yaml.dump(w, {cfn_short = true})\n"
        "assert(json.encode(assert(yaml.load(y))) == json.encode(v))\n"
        "return 'ok'";
    int ok_runs = 0, failed_runs = 0;
    for (long n = 1; n < 1500; n += 3) {
        lua_State *L = harness_state();
        char buf[256];
        lumu_track_enable(n);
        int ok = harness_eval(L, chunk, buf, sizeof buf);
        lumu_track_enable(0);
        if (ok)
            ok_runs++;
        else
            failed_runs++;
        harness_close(L); /* fails on a leak */
    }
    assert_true(ok_runs > 0);
    assert_true(failed_runs > 0);
}

/* The same for the fast encoder's buffers and lumu._cfn (freeze, copy, the
 * check scan): a template built, copied, checked and encoded while any
 * allocation may fail. */
static void cfn_helpers_under_failing_allocations(void **state)
{
    (void)state;
    static const char chunk[] =
        "local cfn, json = CFN, JSON\n"
        "local t = cfn.template({description = 'd'})\n"
        "local p = t:parameter('P', {Type = 'String', Default = 'x'})\n"
        "local r = t:resource('R', 'AWS::S3::Bucket', {BucketName = p, Tags = {{Key = 'k',\n"
        "  Value = cfn.Sub('${P}-\\u{e9}\\n')}}, N = {1.5, 2, json.null}})\n"
        "t:output('O', r:getatt('Arn'), {export = 'e'})\n"
        "local a = t:to_table()\n"
        "assert(#cfn.check(a) == 1) -- the null\n"
        "local s = json.encode(a, {pretty = true})\n"
        "assert(s == json.encode(t:to_table({consume = true}), {pretty = true}))\n"
        "return 'ok'";
    int ok_runs = 0, failed_runs = 0;
    /* every n: Lua retries a failed allocation after a full collection, so
     * only the C buffers' allocations surface as failures, and which n hit
     * them moves with Lua's per-run hash seed (a stride skipped them all
     * once, under valgrind) */
    for (long n = 1; n < 1500; n++) {
        lua_State *L = harness_state();
        /* modules loaded first: the allocations counted are the work's */
        harness_run(L, "CFN, JSON = require 'lumu.cfn', require 'lumu.json'");
        char buf[256];
        lumu_track_enable(n);
        int ok = harness_eval(L, chunk, buf, sizeof buf);
        lumu_track_enable(0);
        if (ok)
            ok_runs++;
        else
            failed_runs++;
        harness_close(L); /* fails on a leak */
    }
    assert_true(ok_runs > 0);
    assert_true(failed_runs > 0);
}

int main(void)
{
    lumu_track_enable(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_validation),
        cmocka_unit_test(float_precision),
        cmocka_unit_test(walk_order_and_stack),
        cmocka_unit_test(markers_and_null),
        cmocka_unit_test(failing_allocations_do_not_leak),
        cmocka_unit_test(cfn_helpers_under_failing_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
