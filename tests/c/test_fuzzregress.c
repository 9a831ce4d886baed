/* Replays the saved fuzz findings of the C harnesses in the normal build:
 * every file of tests/fuzz/regress/{codec,sigv4,awsconfig}/ goes once
 * through the same harness code libFuzzer runs (tests/fuzz/fuzz_*.c,
 * compiled in here with renamed entry points).  A harness aborts on a
 * broken invariant, which fails this test; the leak check covers the
 * aws/ allocations (counting allocator).  The Lua harnesses' findings are
 * replayed by tests/lua/fuzz_regress_spec.lua. */
#define _GNU_SOURCE /* memmem, in the harnesses */
#include "../fuzz/support/lfuzz.h" /* before the renames: declares LLVMFuzzerTestOneInput */

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failalloc.h"

int fuzz_codec_one(const uint8_t *data, size_t size);
int fuzz_sigv4_one(const uint8_t *data, size_t size);
int fuzz_awsconfig_one(const uint8_t *data, size_t size);

#define LLVMFuzzerTestOneInput fuzz_codec_one
#include "../fuzz/fuzz_codec.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_sigv4_one
#include "../fuzz/fuzz_sigv4.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_awsconfig_one
#include "../fuzz/fuzz_awsconfig.c"
#undef LLVMFuzzerTestOneInput

typedef int (*entry_fn)(const uint8_t *, size_t);

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

/* Runs every regular file of tests/fuzz/regress/<name>/ through fn. */
static void replay(const char *name, entry_fn fn)
{
    const char *src = getenv("LUMU_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/%s", src && *src ? src : ".", name);
    DIR *d = opendir(dir);
    if (!d) {
        skip(); /* no findings saved for this harness */
        return;
    }
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n = 0;
        char *data = read_file(path, &n);
        assert_non_null(data);
        print_message("replay %s/%s (%zu bytes)\n", name, e->d_name, n);
        fn((const uint8_t *)data, n);
        free(data);
        count++;
    }
    closedir(d);
    assert_true(count > 0);
}

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
    aws_sigv4_key_cache_free(s_cache);
    s_cache = NULL;
    aws_model_cache_clear();
    memset(s_loaded, 0, sizeof s_loaded);
    aws_set_allocator(NULL);
    if (alloc_live != 0)
        fail_msg("leak: %ld blocks outstanding", alloc_live);
    return 0;
}

static void codec_findings(void **state)
{
    (void)state;
    replay("codec", fuzz_codec_one);
}

static void sigv4_findings(void **state)
{
    (void)state;
    replay("sigv4", fuzz_sigv4_one);
}

static void awsconfig_findings(void **state)
{
    (void)state;
    replay("awsconfig", fuzz_awsconfig_one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(codec_findings, setup, teardown),
        cmocka_unit_test_setup_teardown(sigv4_findings, setup, teardown),
        cmocka_unit_test_setup_teardown(awsconfig_findings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
