/* Unit tests of aws/config.c: the AWS shared config / credentials file
 * parser (configparser + botocore rules), shlex, header classification,
 * malformed and hostile input, allocation-failure injection and a small
 * deterministic fuzz loop (no leaks, no crashes). */
#include "config.h"
#include "error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------ helpers */

static long alloc_calls, alloc_fail_at = -1, alloc_live;

static void *count_malloc(size_t n)
{
    if (alloc_calls++ == alloc_fail_at)
        return NULL;
    alloc_live++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
    if (alloc_calls++ == alloc_fail_at)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        alloc_live++;
    return q;
}

static void count_free(void *p)
{
    if (p)
        alloc_live--;
    free(p);
}

static const aws_allocator counting = {count_malloc, count_realloc, count_free};

static int setup_alloc(void **state)
{
    (void)state;
    alloc_calls = 0;
    alloc_fail_at = -1;
    alloc_live = 0;
    aws_set_allocator(&counting);
    return 0;
}

static int teardown_alloc(void **state)
{
    (void)state;
    aws_set_allocator(NULL);
    if (alloc_live != 0)
        fail_msg("%ld aws_malloc blocks leaked", alloc_live);
    return 0;
}

static void parse_ok(const char *text, aws_config_file *f)
{
    aws_error err;
    aws_error_clear(&err);
    aws_config_file_init(f);
    if (!aws_config_parse(text, strlen(text), "test", f, &err))
        fail_msg("parse failed: %s", err.message);
}

static const aws_config_section *section(const aws_config_file *f, const char *header)
{
    for (size_t i = 0; i < f->section_count; i++)
        if (strcmp(f->sections[i].header, header) == 0)
            return &f->sections[i];
    fail_msg("no section [%s]", header);
    return NULL;
}

static const char *value(const aws_config_file *f, const char *header, const char *key)
{
    const aws_config_section *s = section(f, header);
    const aws_config_entry *e = aws_config_find(s->entries, s->entry_count, key);
    return e ? e->value : NULL;
}

static void parse_fails(const char *text, size_t len, const char *expect)
{
    aws_config_file f;
    aws_config_file_init(&f);
    aws_error err;
    aws_error_clear(&err);
    if (aws_config_parse(text, len, "f.ini", &f, &err))
        fail_msg("expected an error for: %s", text);
    assert_int_equal(err.code, AWS_ERR_PARSE);
    if (!strstr(err.message, expect))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, expect);
    assert_int_equal(f.section_count, 0);
    assert_null(f.sections);
}

/* ------------------------------------------------------------ tests */

static void sections_and_kinds(void **state)
{
    (void)state;
    aws_config_file f;
    parse_ok("[default]\nregion = us-west-2\n"
             "[profile dev]\nregion=eu-west-1\n"
             "[profile \"team a\"]\nk = v\n"
             "[sso-session corp]\nsso_region = us-east-1\n"
             "[services local]\ns3 =\n  endpoint_url = http://localhost:4566\n"
             "[plugins]\ncli_legacy_plugin_path = /x\n"
             "[profile a b]\n"
             "[profile 'unterminated]\n",
             &f);
    assert_int_equal(f.section_count, 8);
    static const struct {
        const char *header;
        aws_config_kind kind;
        const char *name;
        size_t line;
    } want[] = {
        {"default", AWS_CONFIG_PROFILE, "default", 1},
        {"profile dev", AWS_CONFIG_PROFILE, "dev", 3},
        {"profile \"team a\"", AWS_CONFIG_PROFILE, "team a", 5},
        {"sso-session corp", AWS_CONFIG_SSO_SESSION, "corp", 7},
        {"services local", AWS_CONFIG_SERVICES, "local", 9},
        {"plugins", AWS_CONFIG_OTHER, NULL, 12},
        {"profile a b", AWS_CONFIG_IGNORED, NULL, 14},
        {"profile 'unterminated", AWS_CONFIG_IGNORED, NULL, 15},
    };
    for (size_t i = 0; i < 8; i++) {
        const aws_config_section *s = &f.sections[i];
        assert_string_equal(s->header, want[i].header);
        assert_int_equal(s->kind, want[i].kind);
        if (want[i].name)
            assert_string_equal(s->name, want[i].name);
        else
            assert_null(s->name);
        assert_int_equal(s->line, want[i].line);
    }
    assert_string_equal(value(&f, "profile dev", "region"), "eu-west-1");
    const aws_config_entry *s3 = aws_config_find(f.sections[4].entries, f.sections[4].entry_count, "s3");
    assert_non_null(s3);
    assert_true(s3->nested);
    assert_int_equal(s3->sub_count, 1);
    assert_string_equal(s3->sub[0].key, "endpoint_url");
    assert_string_equal(s3->sub[0].value, "http://localhost:4566");
    assert_int_equal(s3->sub[0].line, 11);
    aws_config_file_clean(&f);
    aws_config_file_clean(&f); /* idempotent */
}

static void values_and_continuations(void **state)
{
    (void)state;
    aws_config_file f;
    parse_ok("[a]\n"
             "Key = value # not a comment\n"
             "  continued\n"
             "\n"
             "  after blank\n"
             "# a comment inside the value\n"
             "  last\n"
             "\n\n"
             "colon: x = y\n"
             "eq = a:b\n"
             "empty =\n"
             "nested =\n"
             "  Sub = 1\n"
             "\n"
             "  other=two = three\n"
             "  Sub = 2\n"
             "tail = z\n",
             &f);
    assert_string_equal(value(&f, "a", "key"), "value # not a comment\ncontinued\n\nafter blank\nlast");
    assert_string_equal(value(&f, "a", "colon"), "x = y");
    assert_string_equal(value(&f, "a", "eq"), "a:b");
    assert_string_equal(value(&f, "a", "empty"), "");
    const aws_config_section *s = section(&f, "a");
    const aws_config_entry *n = aws_config_find(s->entries, s->entry_count, "nested");
    assert_true(n->nested);
    assert_int_equal(n->sub_count, 2);
    assert_string_equal(n->sub[0].key, "Sub"); /* subkeys keep their case */
    assert_string_equal(n->sub[0].value, "2"); /* the later one wins */
    assert_string_equal(n->sub[1].key, "other");
    assert_string_equal(n->sub[1].value, "two = three");
    assert_string_equal(value(&f, "a", "tail"), "z");
    assert_false(aws_config_find(s->entries, s->entry_count, "empty")->nested);
    aws_config_file_clean(&f);
}

static void indentation_rules(void **state)
{
    (void)state;
    aws_config_file f;
    /* lines right after a header are keys, whatever their indentation;
       a deeper line after a key continues it, even when it looks like a header */
    parse_ok("  [ind]\n"
             "    k = 1\n"
             "    j = 2\n"
             "      [looks like a section]\n"
             "  i = 3\n",
             &f);
    assert_int_equal(f.section_count, 1);
    assert_string_equal(value(&f, "ind", "k"), "1");
    assert_string_equal(value(&f, "ind", "j"), "2\n[looks like a section]");
    assert_string_equal(value(&f, "ind", "i"), "3");
    aws_config_file_clean(&f);
    /* tabs count as one column each; [a]]b] is the section "a]]b" (to the last bracket) */
    parse_ok("[a]]b] trailing text\n\tk = v\n\t\tmore\n", &f);
    assert_string_equal(value(&f, "a]]b", "k"), "v\nmore");
    aws_config_file_clean(&f);
    /* section names are verbatim */
    parse_ok("[ spaced ]\nK=1\n", &f);
    assert_string_equal(value(&f, " spaced ", "k"), "1");
    aws_config_file_clean(&f);
}

static void default_section(void **state)
{
    (void)state;
    aws_config_file f;
    parse_ok("[DEFAULT]\nshared = d\nnested =\n  x = 1\n[a]\nk = 1\n[b]\nshared = own\n[DEFAULT]\nlate = l\n",
             &f);
    assert_int_equal(f.section_count, 2);
    assert_string_equal(value(&f, "a", "shared"), "d");
    assert_string_equal(value(&f, "a", "late"), "l");
    assert_string_equal(value(&f, "b", "shared"), "own");
    const aws_config_section *a = section(&f, "a");
    const aws_config_entry *n = aws_config_find(a->entries, a->entry_count, "nested");
    assert_true(n->nested);
    assert_string_equal(n->sub[0].value, "1");
    aws_config_file_clean(&f);
    const char *dup = "[DEFAULT]\nk = 1\n[DEFAULT]\nK = 2\n";
    parse_fails(dup, strlen(dup), "f.ini:4: duplicate key");
}

static void line_endings_and_bom(void **state)
{
    (void)state;
    aws_config_file f;
    parse_ok("\xef\xbb\xbf[a]\r\nk = v\r\n[b]\rk = w\r\n  cont\r", &f);
    assert_string_equal(value(&f, "a", "k"), "v");
    assert_string_equal(value(&f, "b", "k"), "w\ncont");
    assert_int_equal(section(&f, "b")->line, 3);
    aws_config_file_clean(&f);
    /* unicode spaces are whitespace, as in Python */
    parse_ok("[u]\n\xc2\xa0k\xe3\x80\x80=\xe2\x80\x83" "caf\xc3\xa9\xc2\xa0\n", &f);
    assert_string_equal(value(&f, "u", "k"), "caf\xc3\xa9");
    aws_config_file_clean(&f);
}

static void malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"k = v\n", "f.ini:1: key before the first [section]"},
        {"\n\n  k = v\n", "f.ini:3: key before the first"},
        {"[a]\nk = 1\nK = 2\n", "f.ini:3: duplicate key (first at line 2)"},
        {"[a]\n[b]\n[a]\n", "f.ini:3: section declared twice (first at line 1)"},
        {"[a]\njust words\n", "f.ini:2: expected 'key = value'"},
        {"[a]\n= v\n", "f.ini:2: missing key"},
        {"[a]\n  : v\n", "f.ini:2: missing key"},
        {"[]\n", "f.ini:1: key before the first"},
        {"[a]\n[]\n", "f.ini:2: expected 'key = value'"},
        {"[a]\ns3 =\n  no equals here\n", "f.ini:3: expected 'name = value'"},
        {"[a]\nk = \xff\n", "f.ini:2: invalid UTF-8"},
        {"[a]\nk = \xc0\x80\n", "f.ini:2: invalid UTF-8"},       /* overlong */
        {"[a]\nk = \xed\xa0\x80\n", "f.ini:2: invalid UTF-8"},   /* surrogate */
        {"[a]\nk = \xf4\x90\x80\x80\n", "f.ini:2: invalid UTF-8"}, /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_fails(cases[i].text, strlen(cases[i].text), cases[i].expect);
    parse_fails("[a]\nk = v\0w\n", 11, "f.ini:2: NUL byte");
    /* the message never quotes the line (it may hold a secret) */
    aws_config_file f;
    aws_config_file_init(&f);
    aws_error err;
    aws_error_clear(&err);
    const char *secret = "[a]\naws_secret_access_key wJalrXUtnFEMI\n";
    assert_false(aws_config_parse(secret, strlen(secret), NULL, &f, &err));
    assert_null(strstr(err.message, "wJalr"));
    assert_non_null(strstr(err.message, "<config>:2:"));
    /* NULL buffer */
    assert_true(aws_config_parse(NULL, 0, NULL, &f, &err));
    assert_int_equal(f.section_count, 0);
    aws_error_clear(&err);
    assert_false(aws_config_parse(NULL, 5, NULL, &f, &err));
    assert_int_equal(err.code, AWS_ERR_INVALID_ARG);
}

static void huge_input(void **state)
{
    (void)state;
    /* a 4 MiB value, then 100000 keys in one section (duplicate detection must
       not be quadratic), then 20000 sections */
    size_t big = 4u << 20, keys = 100000, secs = 20000;
    size_t cap = big + keys * 32 + secs * 32 + 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = (size_t)sprintf(buf, "[big]\nv = ");
    memset(buf + n, 'x', big);
    n += big;
    n += (size_t)sprintf(buf + n, "\n");
    for (size_t i = 0; i < keys; i++)
        n += (size_t)sprintf(buf + n, "k%zu = %zu\n", i, i);
    for (size_t i = 0; i < secs; i++)
        n += (size_t)sprintf(buf + n, "[profile p%zu]\nr = %zu\n", i, i);
    aws_config_file f;
    aws_config_file_init(&f);
    aws_error err;
    aws_error_clear(&err);
    assert_true(aws_config_parse(buf, n, "big", &f, &err));
    assert_int_equal(f.section_count, secs + 1);
    assert_int_equal(strlen(f.sections[0].entries[0].value), big);
    assert_int_equal(f.sections[0].entry_count, keys + 1);
    assert_string_equal(f.sections[secs].name, "p19999");
    aws_config_file_clean(&f);
    /* a duplicate at the very end is still found */
    n += (size_t)sprintf(buf + n, "[big]\n");
    assert_false(aws_config_parse(buf, n, "big", &f, &err));
    assert_non_null(strstr(err.message, "section declared twice (first at line 1)"));
    free(buf);
}

static void shlex_words(void **state)
{
    (void)state;
    char *w[8];
    size_t count;
    aws_error err;
    aws_error_clear(&err);
    assert_true(aws_config_shlex("profile  \"a b\" c'd'e \\\"q \"x\\\"y\\z\" ''", w, 8, &count, &err));
    assert_int_equal(count, 6);
    const char *want[] = {"profile", "a b", "cde", "\"q", "x\"y\\z", ""};
    for (size_t i = 0; i < count; i++) {
        assert_string_equal(w[i], want[i]);
        aws_free(w[i]);
    }
    /* more words than room: counted, not stored */
    assert_true(aws_config_shlex("a b c d", w, 2, &count, &err));
    assert_int_equal(count, 4);
    aws_free(w[0]);
    aws_free(w[1]);
    assert_false(aws_config_shlex("a 'b", w, 8, &count, &err));
    assert_int_equal(err.code, AWS_ERR_PARSE);
    assert_false(aws_config_shlex("a \"b", w, 8, &count, &err));
    assert_false(aws_config_shlex("a\\", w, 8, &count, &err));
    assert_int_equal(count, 0);
}

static void classify_headers(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        aws_config_kind kind;
        const char *name;
    } cases[] = {
        {"default", AWS_CONFIG_PROFILE, "default"},
        {"profile default", AWS_CONFIG_PROFILE, "default"},
        {"profile   x", AWS_CONFIG_PROFILE, "x"},
        {"profilex y", AWS_CONFIG_PROFILE, "y"}, /* botocore's startswith + shlex quirk */
        {"profile", AWS_CONFIG_IGNORED, NULL},
        {"profile a b", AWS_CONFIG_IGNORED, NULL},
        {"sso-session s", AWS_CONFIG_SSO_SESSION, "s"},
        {"services 'my svc'", AWS_CONFIG_SERVICES, "my svc"},
        {"Default", AWS_CONFIG_OTHER, NULL},
        {"preview", AWS_CONFIG_OTHER, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aws_config_kind k;
        char *name;
        assert_true(aws_config_classify(cases[i].header, &k, &name, NULL));
        assert_int_equal(k, cases[i].kind);
        if (cases[i].name)
            assert_string_equal(name, cases[i].name);
        else
            assert_null(name);
        aws_free(name);
    }
}

/* Fails allocation 0, 1, 2 ... until parsing succeeds: each failure is
 * no_memory, leaves the file empty and leaks nothing. */
static void oom_every_allocation(void **state)
{
    (void)state;
    const char *text = "[DEFAULT]\nd = 1\nn =\n  a = b\n[default]\nregion = x\n  cont\n"
                       "[profile p]\ns3 =\n  x = 1\n  y = 2\n  x = 3\n[sso-session s]\nk = v\n"
                       "[services 'q r']\nsts =\n  endpoint_url = http://h\n";
    bool done = false;
    long n;
    for (n = 0; n < 100000 && !done; n++) {
        alloc_calls = 0;
        alloc_fail_at = n;
        alloc_live = 0;
        aws_config_file f;
        aws_config_file_init(&f);
        aws_error err;
        aws_error_clear(&err);
        done = aws_config_parse(text, strlen(text), "oom", &f, &err);
        if (!done) {
            assert_int_equal(err.code, AWS_ERR_NO_MEMORY);
            assert_int_equal(f.section_count, 0);
        } else {
            assert_int_equal(f.section_count, 4);
        }
        aws_config_file_clean(&f);
        if (alloc_live != 0)
            fail_msg("leak of %ld blocks when allocation #%ld fails", alloc_live, n);
    }
    alloc_fail_at = -1;
    assert_true(done);
    assert_true(n > 20);
}

/* Random and mutated inputs: no crash, no leak, errors well-formed. */
static void fuzz_loop(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "[default]\nregion = us-east-1\n", "[profile a]\ns3 =\n  x = 1\n", "[DEFAULT]\nk=v\n[a]\n",
        "[a]\nk: v\n\tcont\n", "[sso-session 'x y']\n", "\xef\xbb\xbf[a]\r\nk=v\r",
    };
    static const char alphabet[] = "[]=:# ;\t\n\r\\'\"abcDEFGHprofile-_.\xc3\xa9\xff";
    uint64_t rng = 0x1234abcd5678ef01ULL;
    char buf[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if (iter % 2 == 0) {
            const char *s = seeds[rng % (sizeof seeds / sizeof seeds[0])];
            n = strlen(s);
            memcpy(buf, s, n);
            for (int k = 0; k < 4; k++) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                buf[(rng >> 8) % n] = alphabet[(rng >> 24) % (sizeof alphabet - 1)];
            }
        } else {
            n = (size_t)(rng % sizeof buf);
            for (size_t i = 0; i < n; i++) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                buf[i] = alphabet[rng % (sizeof alphabet - 1)];
            }
        }
        aws_config_file f;
        aws_config_file_init(&f);
        aws_error err;
        aws_error_clear(&err);
        if (aws_config_parse(buf, n, "fuzz", &f, &err)) {
            for (size_t i = 0; i < f.section_count; i++)
                assert_non_null(f.sections[i].header);
        } else {
            assert_int_equal(err.code, AWS_ERR_PARSE);
            assert_true(strncmp(err.message, "fuzz:", 5) == 0);
        }
        aws_config_file_clean(&f);
    }
    assert_int_equal(alloc_live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sections_and_kinds, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(values_and_continuations, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(indentation_rules, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(default_section, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(line_endings_and_bom, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(malformed, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(huge_input, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(shlex_words, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(classify_headers, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(oom_every_allocation, setup_alloc, teardown_alloc),
        cmocka_unit_test_setup_teardown(fuzz_loop, setup_alloc, teardown_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
