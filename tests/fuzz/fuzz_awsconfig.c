/*
 * fuzz_awsconfig: the shared config / credentials file parser
 * (aws/config.c): aws_config_parse on the input, then on success the
 * section classifier and shlex on every header and value, and lookups of
 * every key.  Checks: top-level keys are lower-case and unique per section,
 * aws_config_find finds each entry, a section's kind and name agree with
 * aws_config_classify, a failure leaves the file empty with a "FILE:LINE:"
 * message that never quotes the input.
 */
#include "support/lfuzz.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cfg_fail(const char *what, size_t line)
{
    fprintf(stderr, "fuzz_awsconfig: line %zu: %s\n", line, what);
    abort();
}

static void shlex(const char *s)
{
    char *words[8];
    size_t count = 0;
    aws_error err;
    aws_error_clear(&err);
    if (aws_config_shlex(s, words, 8, &count, &err)) {
        for (size_t i = 0; i < count && i < 8; i++) {
            if (!words[i])
                cfg_fail("shlex word is NULL", 0);
            aws_free(words[i]);
        }
    } else if (err.code == AWS_ERR_NONE) {
        cfg_fail("shlex failed without an error", 0);
    }
}

static void check_entries(const aws_config_entry *es, size_t n, bool top)
{
    for (size_t i = 0; i < n; i++) {
        const aws_config_entry *e = &es[i];
        if (!e->key || !e->value)
            cfg_fail("entry without key or value", e->line);
        if (top) {
            for (const char *k = e->key; *k; k++)
                if (*k >= 'A' && *k <= 'Z')
                    cfg_fail("top-level key not lower-cased", e->line);
            if (aws_config_find(es, n, e->key) != e)
                cfg_fail("find does not return the entry (duplicate key?)", e->line);
        } else if (!aws_config_find(es, n, e->key)) {
            cfg_fail("find misses a nested key", e->line);
        }
        if (e->nested) {
            if (!top)
                cfg_fail("nested entry inside a nested entry", e->line);
            check_entries(e->sub, e->sub_count, false);
        } else if (e->sub_count || e->sub) {
            cfg_fail("plain entry with sub-entries", e->line);
        }
        shlex(e->value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy, so ASan sees reads past the end */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    aws_config_file f;
    aws_config_file_init(&f);
    aws_error err;
    aws_error_clear(&err);
    if (aws_config_parse(buf, size, "fuzz", &f, &err)) {
        for (size_t i = 0; i < f.section_count; i++) {
            const aws_config_section *s = &f.sections[i];
            if (!s->header)
                cfg_fail("section without a header", s->line);
            aws_config_kind kind;
            char *name = NULL;
            if (!aws_config_classify(s->header, &kind, &name, NULL))
                cfg_fail("classify failed", s->line);
            if (kind != s->kind)
                cfg_fail("classify disagrees with the parser", s->line);
            if ((name == NULL) != (s->name == NULL) || (name && strcmp(name, s->name) != 0))
                cfg_fail("classify names the section differently", s->line);
            aws_free(name);
            check_entries(s->entries, s->entry_count, true);
            shlex(s->header);
        }
    } else {
        if (err.code != AWS_ERR_PARSE && err.code != AWS_ERR_NO_MEMORY)
            cfg_fail("unexpected error code", 0);
        if (strncmp(err.message, "fuzz:", 5) != 0)
            cfg_fail("message does not start with the file name", 0);
        if (f.section_count || f.sections)
            cfg_fail("failure left sections behind", 0);
    }
    aws_config_file_clean(&f);
    aws_config_file_clean(&f); /* idempotent */
    free(buf);
    return 0;
}
