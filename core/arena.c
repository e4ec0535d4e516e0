/*
 * core/arena.c — per-request arena.
 *
 * Chunks of 8 KiB (or larger for big allocations) are chained; everything
 * is released at once.  Cleanup callbacks run in reverse registration
 * order.  With GH_ARENA_MALLOC_EACH every allocation is its own malloc so
 * the sanitizers see overflows between allocations.
 */
#include "core/core.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE 8192

struct chunk {
    struct chunk *next;
    size_t        size;
    size_t        used;
    max_align_t   data[];
};

struct cleanup {
    struct cleanup *next;
    gh_cleanup_fn   fn;
    void           *p;
};

/* Whole CHUNK_SIZE chunks freed by an arena wait on the freeing thread's
 * own list for the next arena of that thread (a server thread frees one
 * arena per request and makes the next at once): no malloc, no free, no
 * malloc_consolidate on the request path.  The list is bounded and freed
 * when the thread ends.  (Not in GH_ARENA_MALLOC_EACH builds, where each
 * allocation is its own block for the sanitizers.) */
#define CHUNK_CACHE 16

struct gh_arena {
    struct chunk   *chunks;
    struct cleanup *cleanups;
    size_t          cap;
    size_t          total;
};

#ifndef GH_ARENA_MALLOC_EACH
static __thread struct chunk *tl_free;
static __thread int           tl_nfree;
static pthread_key_t          tl_key;
static pthread_once_t         tl_once = PTHREAD_ONCE_INIT;

static void
chunk_cache_drop(void *p)
{
    struct chunk *ch = p, *next;

    for (; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    tl_free = NULL;
    tl_nfree = 0;
}

static void
chunk_cache_key(void)
{
    (void)pthread_key_create(&tl_key, chunk_cache_drop);
}

static struct chunk *
chunk_get(void)
{
    struct chunk *ch = tl_free;

    if (ch) {
        tl_free = ch->next;
        tl_nfree--;
        (void)pthread_setspecific(tl_key, tl_free);
        return ch;
    }
    return malloc(sizeof(*ch) + CHUNK_SIZE);
}

static void
chunk_put(struct chunk *ch)
{
    if (ch->size != CHUNK_SIZE || tl_nfree >= CHUNK_CACHE) {
        free(ch);
        return;
    }
    pthread_once(&tl_once, chunk_cache_key);
    ch->next = tl_free;
    tl_free = ch;
    tl_nfree++;
    (void)pthread_setspecific(tl_key, tl_free);   /* the thread's end frees the list */
}
#endif

struct gh_arena *
gh_arena_new(size_t cap)
{
    struct gh_arena *a = calloc(1, sizeof(*a));

    if (a)
        a->cap = cap ? cap : (size_t)64 << 20;
    return a;
}

void
gh_arena_free(struct gh_arena *a)
{
    struct cleanup *c;
    struct chunk *ch;

    if (a == NULL)
        return;
    /* cleanups first: they may reference arena memory */
    while ((c = a->cleanups) != NULL) {
        a->cleanups = c->next;
        c->fn(c->p);
        free(c);
    }
    while ((ch = a->chunks) != NULL) {
        a->chunks = ch->next;
#ifndef GH_ARENA_MALLOC_EACH
        chunk_put(ch);
#else
        free(ch);
#endif
    }
    free(a);
}

void *
gh_arena_alloc(struct gh_arena *a, size_t n)
{
    size_t al = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct chunk *ch;
    void *p;

    if (n == 0)
        al = sizeof(max_align_t);
    if (a->total + al > a->cap)
        return NULL;
#ifndef GH_ARENA_MALLOC_EACH
    ch = a->chunks;
    if (ch == NULL || ch->size - ch->used < al) {
        size_t sz = al > CHUNK_SIZE / 2 ? al : CHUNK_SIZE;
        ch = sz == CHUNK_SIZE ? chunk_get() : malloc(sizeof(*ch) + sz);
        if (ch == NULL)
            return NULL;
        ch->size = sz;
        ch->used = 0;
        if (al > CHUNK_SIZE / 2 && a->chunks) {
            /* keep the partly used current chunk at the head */
            ch->next = a->chunks->next;
            a->chunks->next = ch;
        } else {
            ch->next = a->chunks;
            a->chunks = ch;
        }
    }
#else
    ch = malloc(sizeof(*ch) + al);
    if (ch == NULL)
        return NULL;
    ch->size = al;
    ch->used = 0;
    ch->next = a->chunks;
    a->chunks = ch;
#endif
    p = (char *)ch->data + ch->used;
    ch->used += al;
    a->total += al;
    memset(p, 0, al);
    return p;
}

char *
gh_arena_strndup(struct gh_arena *a, const char *s, size_t n)
{
    char *p;

    if (s == NULL)
        return NULL;
    p = gh_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *
gh_arena_strdup(struct gh_arena *a, const char *s)
{
    return s ? gh_arena_strndup(a, s, strlen(s)) : NULL;
}

char *
gh_arena_printf(struct gh_arena *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = gh_arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int
gh_arena_defer(struct gh_arena *a, gh_cleanup_fn fn, void *p)
{
    struct cleanup *c = malloc(sizeof(*c));

    if (c == NULL) {
        fn(p);
        return -1;
    }
    c->fn = fn;
    c->p = p;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

static void
json_cleanup(void *p)
{
    json_decref(p);
}

json_t *
gh_arena_json(struct gh_arena *a, json_t *j)
{
    if (j)
        gh_arena_defer(a, json_cleanup, j);
    return j;
}

size_t
gh_arena_used(const struct gh_arena *a)
{
    return a->total;
}
