#include "failalloc.h"

#include <stdlib.h>

long alloc_calls, alloc_fail_at = -1, alloc_live;
bool j_can_fail;

void *t_malloc(size_t n)
{
    if (alloc_fail_at >= 0 && alloc_calls++ == alloc_fail_at)
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        alloc_live++;
    return p;
}

void *t_realloc(void *p, size_t n)
{
    if (alloc_fail_at >= 0 && alloc_calls++ == alloc_fail_at)
        return NULL;
    void *q = realloc(p, n ? n : 1);
    if (q && !p)
        alloc_live++;
    return q;
}

void t_free(void *p)
{
    if (p)
        alloc_live--;
    free(p);
}

void *j_malloc(size_t n)
{
    if (j_can_fail && alloc_fail_at >= 0 && alloc_calls++ == alloc_fail_at)
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        alloc_live++;
    return p;
}

const aws_allocator counting = {t_malloc, t_realloc, t_free};
