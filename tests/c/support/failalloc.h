/* A counting allocator for aws/ (aws_set_allocator) and jansson
 * (json_set_alloc_funcs) in the C tests: alloc_live counts blocks
 * outstanding, so leaks show; alloc_fail_at >= 0 makes allocation number
 * alloc_fail_at (counted in alloc_calls) fail.  jansson's allocations are
 * failed only while j_can_fail is set: jansson 2.14 asserts on some failures
 * inside its JSON lexer, so tests that make it parse leave it off. */
#ifndef LUMU_TEST_FAILALLOC_H
#define LUMU_TEST_FAILALLOC_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

extern long alloc_calls, alloc_fail_at, alloc_live;
extern bool j_can_fail;

void *t_malloc(size_t n);
void *t_realloc(void *p, size_t n);
void t_free(void *p);
void *j_malloc(size_t n); /* for json_set_alloc_funcs(j_malloc, t_free) */

extern const aws_allocator counting; /* {t_malloc, t_realloc, t_free} */

#endif
