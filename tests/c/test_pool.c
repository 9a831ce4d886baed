/* Tests of lua/pool.c: the per-state allocator.  Pooling is off in sanitizer
 * builds (these tests then skip); the environment switches that turn it off
 * at run time are cleared first, so under valgrind the pool's own chunks
 * are checked. */
#include "pool.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static lumu_pool *new_pool(void)
{
    unsetenv("LUMU_ALLOC");
    unsetenv("LUMU_UNDER_VALGRIND");
    return lumu_pool_new();
}

#define SKIP_IF_OFF(p)                                                                             \
    do {                                                                                           \
        if (!(p)) {                                                                                \
            print_message("pooling is off in this build (sanitizers): skipped\n");                \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void *alloc(lumu_pool *p, void *ptr, size_t osize, size_t nsize)
{
    return lumu_pool_alloc(p, ptr, osize, nsize);
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 7);
}

static int holds(const unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

/* Every size up to past the pool's limit: aligned, writable, distinct, and
 * moved with its contents by realloc across classes and across the limit,
 * both ways. */
static void blocks_keep_contents_across_sizes(void **state)
{
    (void)state;
    lumu_pool *p = new_pool();
    SKIP_IF_OFF(p);
    enum { TOP = LUMU_POOL_MAX + 100 };
    unsigned char *b[TOP + 1] = {0};
    for (size_t n = 1; n <= TOP; n++) {
        b[n] = alloc(p, NULL, LUA_TTABLE, n);
        assert_non_null(b[n]);
        assert_int_equal((uintptr_t)b[n] % _Alignof(max_align_t), 0);
        fill(b[n], n, (unsigned)n);
    }
    for (size_t n = 1; n <= TOP; n++)
        assert_true(holds(b[n], n, (unsigned)n)); /* no block overlaps another */
    /* grow each by 1..300 bytes, then shrink it back below its old size */
    for (size_t n = 1; n <= TOP; n++) {
        size_t grown = n + 1 + (n * 13) % 300;
        unsigned char *g = alloc(p, b[n], n, grown);
        assert_non_null(g);
        assert_true(holds(g, n, (unsigned)n));
        fill(g, grown, (unsigned)n + 1);
        size_t shrunk = n > 1 ? n / 2 : 1;
        unsigned char *s = alloc(p, g, grown, shrunk);
        assert_non_null(s);
        assert_true(holds(s, shrunk, (unsigned)n + 1));
        b[n] = s;
        fill(s, shrunk, (unsigned)n + 2);
    }
    for (size_t n = 1; n <= TOP; n++) {
        size_t shrunk = n > 1 ? n / 2 : 1;
        assert_true(holds(b[n], shrunk, (unsigned)n + 2));
        assert_null(alloc(p, b[n], shrunk, 0));
    }
    lumu_pool_release(p); /* no block left: gone now (valgrind: no leak) */
}

/* A freed block serves the next request of its size class; one of another
 * class never does. */
static void freed_blocks_are_reused_by_class(void **state)
{
    (void)state;
    lumu_pool *p = new_pool();
    SKIP_IF_OFF(p);
    void *keep = alloc(p, NULL, 0, 8); /* holds the pool open */
    void *a = alloc(p, NULL, 0, 40);
    assert_null(alloc(p, a, 40, 0));
    void *other = alloc(p, NULL, 0, 100); /* another class */
    assert_ptr_not_equal(other, a);
    void *again = alloc(p, NULL, 0, 33); /* 33..48: a's class */
    assert_ptr_equal(again, a);
    /* a realloc within the class keeps the block */
    assert_ptr_equal(alloc(p, again, 33, 48), again);
    alloc(p, again, 48, 0);
    alloc(p, other, 100, 0);
    lumu_pool_release(p);
    assert_null(alloc(p, keep, 8, 0)); /* the last block: the pool goes with it */
}

/* Chunks are taken as blocks are carved; a held pool with no blocks stays. */
static void chunks_grow_with_use(void **state)
{
    (void)state;
    lumu_pool *p = new_pool();
    SKIP_IF_OFF(p);
    assert_int_equal(lumu_pool_chunks(p), 0);
    enum { N = 3500 }; /* 224,000 bytes: within the first four (malloc'd) chunks */
    void **v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++)
        v[i] = alloc(p, NULL, 0, 64);
    size_t chunks = lumu_pool_chunks(p);
    assert_true(chunks >= (N * 64) / (64 * 1024) + 1);
    assert_true(chunks <= (N * 64) / (60 * 1024) + 1);
    for (int i = 0; i < N; i++)
        alloc(p, v[i], 64, 0);
    /* still held: freeing every block does not free the pool */
    for (int i = 0; i < N; i++)
        v[i] = alloc(p, NULL, 0, 64);
    assert_int_equal(lumu_pool_chunks(p), chunks); /* served from the free list */
    for (int i = 0; i < N; i++)
        alloc(p, v[i], 64, 0);
    free(v);
    lumu_pool_release(p);
}

/* After four 64 KiB chunks, blocks come from 2 MiB regions aligned on
 * 2 MiB: 80,000 blocks of 64 bytes (5.1 MB) take the four chunks and three
 * regions, every block distinct and writable, and freeing them all lets the
 * pool go (valgrind: the chunks are not leaked). */
static void regions_after_four_chunks(void **state)
{
    (void)state;
    lumu_pool *p = new_pool();
    SKIP_IF_OFF(p);
    enum { N = 80000, REGION = 2 << 20 };
    unsigned char **v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        v[i] = alloc(p, NULL, 0, 64);
        assert_non_null(v[i]);
        fill(v[i], 64, (unsigned)i);
    }
    assert_int_equal(lumu_pool_chunks(p), 4 + 3);
    /* the four chunks hold 4 x 1022 blocks; every later block lies in one
     * of three 2 MiB-aligned frames, one per region */
    uintptr_t frames[8] = {0};
    int nframes = 0;
    for (int i = 0; i < N; i++) {
        assert_true(holds(v[i], 64, (unsigned)i)); /* no block overlaps another */
        uintptr_t f = (uintptr_t)v[i] & ~(uintptr_t)(REGION - 1);
        if (i >= 4 * 1022) {
            int seen = 0;
            for (int j = 0; j < nframes; j++)
                seen |= frames[j] == f;
            if (!seen) {
                assert_true(nframes < 8);
                frames[nframes++] = f;
            }
        }
    }
    assert_int_equal(nframes, 3);
    for (int i = 0; i < N; i++)
        alloc(p, v[i], 64, 0);
    free(v);
    lumu_pool_release(p); /* no block left: chunks, regions and pool go */
}

/* A Lua state on a pool: the pool goes with lua_close (valgrind checks that
 * nothing leaks), and a state that could not be created leaves nothing. */
static void lua_state_on_a_pool(void **state)
{
    (void)state;
    lumu_pool *p = new_pool();
    SKIP_IF_OFF(p);
    lua_State *L = lua_newstate(lumu_pool_alloc, p);
    assert_non_null(L);
    lumu_pool_release(p);
    luaL_openlibs(L);
    assert_int_equal(luaL_dostring(L, "local t = {} "
                                      "for i = 1, 20000 do t[i] = {tostring(i), i * 2} end "
                                      "local s = 0 for i = 1, #t do s = s + t[i][2] end "
                                      "t = nil collectgarbage() "
                                      "return s + #table.concat({string.rep('x', 100000), 'y'})"),
                     LUA_OK);
    assert_int_equal(lua_tointeger(L, -1), 20000 * 20001 + 100001);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocks_keep_contents_across_sizes),
        cmocka_unit_test(freed_blocks_are_reused_by_class),
        cmocka_unit_test(chunks_grow_with_use),
        cmocka_unit_test(regions_after_four_chunks),
        cmocka_unit_test(lua_state_on_a_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
