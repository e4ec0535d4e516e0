/* Bump arena: one evaluation allocates from here and frees nothing until
 * the arena is reset, so the hot path never calls malloc after warm-up. */
#include "authz/cedar/cedar_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK_MIN 4096

cedar_arena *cedar_arena_new(size_t cap_bytes)
{
	cedar_arena *a = calloc(1, sizeof(*a));
	if (a)
		a->cap = cap_bytes;
	return a;
}

void cedar_arena_reset(cedar_arena *a)
{
	if (!a)
		return;
#ifdef GH_ARENA_MALLOC_EACH
	for (size_t i = 0; i < a->nblocks; i++)
		free(a->blocks[i]);
	a->nblocks = 0;
#else
	/* Keep the largest-first head chunk for reuse; free the rest. */
	struct cedar_arena_chunk *c = a->head;
	if (c) {
		struct cedar_arena_chunk *rest = c->next;
		while (rest) {
			struct cedar_arena_chunk *nx = rest->next;
			free(rest);
			rest = nx;
		}
		c->next = NULL;
		c->used = 0;
		a->total = c->size;
		return;
	}
#endif
	a->total = 0;
}

void cedar_arena_free(cedar_arena *a)
{
	if (!a)
		return;
#ifdef GH_ARENA_MALLOC_EACH
	cedar_arena_reset(a);
	free(a->blocks);
#endif
	struct cedar_arena_chunk *c = a->head;
	while (c) {
		struct cedar_arena_chunk *nx = c->next;
		free(c);
		c = nx;
	}
	free(a);
}

void *cedar_alloc_slow(cedar_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
#ifdef GH_ARENA_MALLOC_EACH
	if (a->cap && a->total + n > a->cap)
		return NULL;
	if (a->nblocks == a->capblocks) {
		size_t nc = a->capblocks ? a->capblocks * 2 : 64;
		void **nb = realloc(a->blocks, nc * sizeof(*nb));
		if (!nb)
			return NULL;
		a->blocks = nb;
		a->capblocks = nc;
	}
	void *p = calloc(1, n);
	if (!p)
		return NULL;
	a->blocks[a->nblocks++] = p;
	a->total += n;
	return p;
#else
	struct cedar_arena_chunk *c = a->head;
	if (!c || c->size - c->used < n) {
		size_t sz = n > CHUNK_MIN ? n : CHUNK_MIN;
		if (c && c->size * 2 > sz && n <= CHUNK_MIN)
			sz = c->size * 2 > (1u << 20) ? (1u << 20) : c->size * 2;
		/* The cap bounds the memory held, so a chunk is trimmed to
		 * what is left of it. */
		if (a->cap) {
			if (a->total + n > a->cap)
				return NULL;
			if (a->total + sz > a->cap)
				sz = a->cap - a->total;
		}
		struct cedar_arena_chunk *nc = malloc(sizeof(*nc) + sz);
		if (!nc)
			return NULL;
		nc->size = sz;
		nc->used = 0;
		/* A big one-off block goes behind the head so the head keeps
		 * serving small requests. */
		if (c && n > CHUNK_MIN) {
			nc->next = c->next;
			c->next = nc;
		} else {
			nc->next = c;
			a->head = nc;
		}
		a->total += sz;
		c = nc;
	}
	void *p = c->data + c->used;
	c->used += n;
	return p;
#endif
}

void cedar_set_err(struct cedar_err *err, int code, int line, int col, const char *fmt, ...)
{
	if (!err || err->code)
		return;          /* the first error recorded wins */
	err->code = code;
	err->line = line;
	err->col = col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}
