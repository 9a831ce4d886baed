/*
 * pool: the allocator behind each Lua state lumu creates.
 *
 * Most of what Lua allocates is small (strings, tables' headers, closures,
 * upvalues: under 256 bytes; tables' array and hash parts up to a few
 * hundred entries: under 1 KiB) and short-lived.  A pool per state serves
 * blocks up to LUMU_POOL_MAX bytes from 64 KiB chunks through one free list
 * per 16-byte size class: a push or a pop instead of a trip through malloc,
 * and no per-block header, because Lua hands the allocator every block's
 * size.  Larger blocks go to malloc.  (Up to 1 KiB rather than 256 bytes:
 * the blocks in between then come from the huge-page regions below instead
 * of malloc's heap, which cost `lumu synth` of the example 160 of its 550
 * page faults and about 4% of its time.)
 * After four chunks (256 KiB) the pool carves 2 MiB regions instead, which
 * the kernel backs with huge pages when transparent huge pages are on: a
 * growing state then takes one page fault per 2 MiB rather than 512.
 * Freed small blocks are kept for reuse by the same state; the chunks go back
 * to the system when the state's last block is freed (lua_close), and the
 * pool with them (see lumu_pool_release).
 *
 * lumu_pool_alloc is a lua_Alloc whose user data is the pool: nsize == 0
 * frees ptr and returns NULL; otherwise it returns a block of nsize bytes
 * holding the first min(osize, nsize) bytes of ptr (ptr NULL: a new block,
 * osize then being Lua's type tag, ignored), or NULL, ptr left untouched,
 * when there is no memory.
 *
 * Not thread-safe: one state, one thread at a time (as Lua itself).
 */
#ifndef LUMU_POOL_H
#define LUMU_POOL_H

#include <stddef.h>

typedef struct lumu_pool lumu_pool;

/* Blocks of up to this many bytes come from the pool. */
#define LUMU_POOL_MAX 1024

/* A new, empty pool, or NULL when pooling is off: in sanitizer builds, when
 * LUMU_ALLOC=system or LUMU_UNDER_VALGRIND is set (so that memory checkers
 * see every block; cmake/valgrind-memcheck.sh sets the latter), or when there
 * is no memory.  With NULL, use malloc/realloc/free. */
lumu_pool *lumu_pool_new(void);

/* Drops the creator's hold on p (lumu_pool_new returns a held pool): from
 * then on the pool frees itself, with its chunks, when it holds no block,
 * i.e. at once if lua_newstate failed, else when lua_close frees the state's
 * last block.  Call once, after lua_newstate. */
void lumu_pool_release(lumu_pool *p);

void *lumu_pool_alloc(void *pool, void *ptr, size_t osize, size_t nsize);

/* Chunks and regions the pool holds now (for tests and benchmarks). */
size_t lumu_pool_chunks(const lumu_pool *p);

#endif
