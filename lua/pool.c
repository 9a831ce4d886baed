/*
 * pool: size-class free lists over 64 KiB chunks, then 2 MiB regions, for
 * one Lua state (pool.h).
 */
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define POOL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define POOL_SANITIZED 1
#endif
#endif

#define GRAIN 16 /* size classes: 16, 32, ... LUMU_POOL_MAX bytes */
#define CLASSES (LUMU_POOL_MAX / GRAIN)
#define CHUNK_BYTES (64 * 1024 - 64) /* with malloc's header, within 64 KiB */
#define SMALL_CHUNKS 4                 /* chunks from malloc before regions */
#define REGION_BYTES ((size_t)2 << 20) /* a huge page on x86-64 and arm64 (4 KiB base pages) */

/* A chunk or a region: this header, then blocks carved from the front. */
typedef union chunk {
    union chunk *next;
    max_align_t align;
} chunk;

struct lumu_pool {
    void *free[CLASSES]; /* per class: freed blocks, linked through their first word */
    char *cur, *end;     /* the part of the newest chunk not carved yet */
    chunk *chunks;       /* from malloc */
    chunk *regions;      /* from mmap, REGION_BYTES each */
    size_t live;         /* blocks handed out and not freed, pooled or not */
    size_t nchunks;      /* chunks and regions */
    int held;            /* the creator's hold (lumu_pool_release) */
};

_Static_assert(GRAIN % _Alignof(max_align_t) == 0, "blocks keep max_align_t alignment");
_Static_assert(sizeof(chunk) % GRAIN == 0, "blocks after the chunk header stay aligned");

lumu_pool *lumu_pool_new(void)
{
#ifdef POOL_SANITIZED
    return NULL;
#else
    const char *how = getenv("LUMU_ALLOC");
    if ((how && strcmp(how, "system") == 0) || getenv("LUMU_UNDER_VALGRIND"))
        return NULL;
    lumu_pool *p = calloc(1, sizeof *p);
    if (p)
        p->held = 1;
    return p;
#endif
}

static void destroy(lumu_pool *p)
{
    chunk *c = p->chunks;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    c = p->regions;
    while (c) {
        chunk *next = c->next;
        munmap(c, REGION_BYTES);
        c = next;
    }
    free(p);
}

void lumu_pool_release(lumu_pool *p)
{
    p->held = 0;
    if (p->live == 0)
        destroy(p);
}

size_t lumu_pool_chunks(const lumu_pool *p)
{
    return p->nchunks;
}

/* Class of a block of n bytes, 1 <= n <= LUMU_POOL_MAX. */
static inline size_t class_of(size_t n)
{
    return (n - 1) / GRAIN;
}

/* A region: REGION_BYTES of fresh memory at a multiple of REGION_BYTES,
 * advised MADV_HUGEPAGE, or NULL.  With transparent huge pages on
 * ("always" or "madvise"), its first touch maps one huge page: one page
 * fault where 4 KiB pages take 512 (page faults were about a tenth of
 * `lumu synth`'s time). */
static chunk *new_region(void)
{
    size_t span = 2 * REGION_BYTES;
    char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)m + REGION_BYTES - 1) & ~(uintptr_t)(REGION_BYTES - 1);
    char *r = m + (start - (uintptr_t)m);
    if (r > m)
        munmap(m, (size_t)(r - m));
    if (r + REGION_BYTES < m + span)
        munmap(r + REGION_BYTES, (size_t)(m + span - (r + REGION_BYTES)));
#ifdef MADV_HUGEPAGE
    madvise(r, REGION_BYTES, MADV_HUGEPAGE); /* advice: without it, 4 KiB pages */
#endif
    void *region = r; /* aligned on REGION_BYTES */
    return region;
}

/* Starts carving a new chunk: one from malloc while the pool is small (a
 * state that stays small keeps a small footprint), then regions (or a
 * chunk, when there is no region to be had).  0: no memory. */
static int grow(lumu_pool *p)
{
    chunk *k = p->nchunks >= SMALL_CHUNKS ? new_region() : NULL;
    if (k) {
        k->next = p->regions;
        p->regions = k;
        p->end = (char *)k + REGION_BYTES;
    } else {
        k = malloc(CHUNK_BYTES);
        if (!k)
            return 0;
        k->next = p->chunks;
        p->chunks = k;
        p->end = (char *)k + CHUNK_BYTES;
    }
    p->cur = (char *)(k + 1);
    p->nchunks++;
    return 1;
}

static void *pooled(lumu_pool *p, size_t c)
{
    void *b = p->free[c];
    if (b) {
        p->free[c] = *(void **)b;
        return b;
    }
    size_t size = (c + 1) * GRAIN;
    /* what is left of the current chunk (under LUMU_POOL_MAX) is dropped */
    if ((size_t)(p->end - p->cur) < size && !grow(p))
        return NULL;
    b = p->cur;
    p->cur += size;
    return b;
}

static inline void unpool(lumu_pool *p, void *b, size_t c)
{
    *(void **)b = p->free[c];
    p->free[c] = b;
}

static void *block(lumu_pool *p, size_t n)
{
    return n <= LUMU_POOL_MAX ? pooled(p, class_of(n)) : malloc(n);
}

static void release(lumu_pool *p, void *b, size_t n)
{
    if (n <= LUMU_POOL_MAX)
        unpool(p, b, class_of(n));
    else
        free(b);
}

void *lumu_pool_alloc(void *pool, void *ptr, size_t osize, size_t nsize)
{
    lumu_pool *p = pool;
    if (!ptr) {
        if (nsize == 0)
            return NULL;
        void *b = block(p, nsize);
        if (b)
            p->live++;
        return b;
    }
    if (nsize == 0) {
        release(p, ptr, osize);
        if (--p->live == 0 && !p->held)
            destroy(p); /* lua_close's last free: the state itself */
        return NULL;
    }
    int osmall = osize <= LUMU_POOL_MAX, nsmall = nsize <= LUMU_POOL_MAX;
    if (osmall && nsmall && class_of(osize) == class_of(nsize))
        return ptr;
    if (!osmall && !nsmall)
        return realloc(ptr, nsize);
    void *b = block(p, nsize);
    if (!b)
        return NULL;
    memcpy(b, ptr, osize < nsize ? osize : nsize);
    release(p, ptr, osize);
    return b;
}
