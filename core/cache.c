/*
 * core/cache.c — a bounded in-process cache: string key → a short vector
 * of strings, for the per-call lookups of the MCP hot path (credentials,
 * agents, connectors).
 *
 * Correctness before hit rate:
 *  - one generation counter per cache; gh_cache_flush() bumps it, so an
 *    entry written by a lookup that started before the flush is refused
 *    (the caller passes the generation it read before asking the source);
 *  - an expiry per entry, checked on every hit;
 *  - a `usable` predicate (the LISTEN connection is up) without which
 *    nothing is served or stored: with invalidations possibly missed the
 *    cache steps aside.
 * Each entry is one malloc (header, lengths, key, values), wiped on free:
 * values may be credentials.  16 shards, each a chained hash table with an
 * LRU list under its own mutex; the bound is per shard (max / 16).
 */
#include "core/core.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 16

struct entry {
    struct entry *next;             /* hash chain */
    struct entry *newer, *older;    /* LRU list */
    uint64_t      gen;
    int64_t       expires_at;       /* wall seconds; 0 = none */
    uint32_t      hash;
    int           nvals;
    size_t        size;             /* of this allocation, for the wipe */
    char         *key;
    int32_t       lens[];           /* nvals lengths (-1 = NULL), then key and values */
};

struct shard {
    pthread_mutex_t lock;
    struct entry  **buckets;
    size_t          nbuckets;       /* power of two */
    long            count, cap;
    struct entry   *newest, *oldest;
};

struct gh_cache {
    struct shard shards[SHARDS];
    bool       (*usable)(void);
    uint64_t     gen;
    long         hits, misses;
    bool         enabled;
};

static uint32_t
hash_of(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void
entry_free(struct entry *e)
{
    gh_wipe(e, e->size);
    free(e);
}

static void
lru_unlink(struct shard *s, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void
lru_push(struct shard *s, struct entry *e)
{
    e->older = s->newest;
    e->newer = NULL;
    if (s->newest)
        s->newest->newer = e;
    s->newest = e;
    if (s->oldest == NULL)
        s->oldest = e;
}

static struct entry **
slot_of(struct shard *s, uint32_t h, const char *key)
{
    struct entry **p = &s->buckets[(h >> 4) & (s->nbuckets - 1)];

    while (*p && ((*p)->hash != h || strcmp((*p)->key, key)))
        p = &(*p)->next;
    return p;
}

/* Unlinks and frees the entry *p points at (its chain slot). */
static void
remove_at(struct shard *s, struct entry **p)
{
    struct entry *e = *p;

    *p = e->next;
    lru_unlink(s, e);
    s->count--;
    entry_free(e);
}

struct gh_cache *
gh_cache_new(long max_entries, bool (*usable)(void))
{
    struct gh_cache *c = calloc(1, sizeof(*c));
    long cap = max_entries > 0 ? (max_entries + SHARDS - 1) / SHARDS : 0;
    size_t nb = 8;

    if (c == NULL)
        return NULL;
    while ((long)nb < cap)
        nb <<= 1;
    c->usable = usable;
    c->enabled = cap > 0;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->cap = cap;
        s->nbuckets = nb;
        s->buckets = c->enabled ? calloc(nb, sizeof(*s->buckets)) : NULL;
        if (c->enabled && s->buckets == NULL)
            c->enabled = false;
    }
    return c;
}

static void
shard_clear(struct shard *s)
{
    while (s->oldest) {
        struct entry *e = s->oldest;
        remove_at(s, slot_of(s, e->hash, e->key));
    }
}

void
gh_cache_flush(struct gh_cache *c)
{
    if (c == NULL)
        return;
    /* first the generation: from here on no older lookup may store */
    __atomic_add_fetch(&c->gen, 1, __ATOMIC_SEQ_CST);
    if (!c->enabled)
        return;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&c->shards[i].lock);
        shard_clear(&c->shards[i]);
        pthread_mutex_unlock(&c->shards[i].lock);
    }
}

void
gh_cache_free(struct gh_cache *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < SHARDS; i++) {
        if (c->enabled)
            shard_clear(&c->shards[i]);
        free(c->shards[i].buckets);
        pthread_mutex_destroy(&c->shards[i].lock);
    }
    free(c);
}

uint64_t
gh_cache_gen(struct gh_cache *c)
{
    return c ? __atomic_load_n(&c->gen, __ATOMIC_SEQ_CST) : 0;
}

static bool
serving(struct gh_cache *c)
{
    return c && c->enabled && (c->usable == NULL || c->usable());
}

static char **
copy_out(struct gh_arena *a, const struct entry *e)
{
    char **out = gh_arena_alloc(a, ((size_t)e->nvals + 1) * sizeof(*out));
    const char *p = e->key + strlen(e->key) + 1;

    if (out == NULL)
        return NULL;
    for (int i = 0; i < e->nvals; i++) {
        if (e->lens[i] < 0)
            continue;
        out[i] = gh_arena_strndup(a, p, (size_t)e->lens[i]);
        if (out[i] == NULL)
            return NULL;
        p += e->lens[i] + 1;
    }
    return out;
}

char **
gh_cache_get(struct gh_cache *c, struct gh_arena *a, const char *key, int *n)
{
    char **out = NULL;
    uint32_t h;
    struct shard *s;
    struct entry **p;

    if (c == NULL)
        return NULL;
    if (!serving(c))
        goto out;
    h = hash_of(key);
    s = &c->shards[h & (SHARDS - 1)];
    pthread_mutex_lock(&s->lock);
    p = slot_of(s, h, key);
    if (*p != NULL) {
        struct entry *e = *p;
        if (e->gen != gh_cache_gen(c) || (e->expires_at && gh_time_s() >= e->expires_at)) {
            remove_at(s, p);
        } else {
            lru_unlink(s, e);
            lru_push(s, e);
            out = copy_out(a, e);
            if (out && n)
                *n = e->nvals;
        }
    }
    pthread_mutex_unlock(&s->lock);
out:
    __atomic_add_fetch(out ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
    return out;
}

static struct entry *
entry_new(const char *key, const char *const *vals, int n, int64_t expires_at, uint64_t gen)
{
    size_t klen = strlen(key), size = sizeof(struct entry) + (size_t)n * sizeof(int32_t) + klen + 1;
    struct entry *e;
    char *p;

    for (int i = 0; i < n; i++) {
        if (vals[i] && strlen(vals[i]) > INT32_MAX / 2)
            return NULL;
        size += vals[i] ? strlen(vals[i]) + 1 : 0;
    }
    e = calloc(1, size);
    if (e == NULL)
        return NULL;
    e->size = size;
    e->gen = gen;
    e->expires_at = expires_at;
    e->hash = hash_of(key);
    e->nvals = n;
    e->key = (char *)&e->lens[n];
    memcpy(e->key, key, klen + 1);
    p = e->key + klen + 1;
    for (int i = 0; i < n; i++) {
        size_t l = vals[i] ? strlen(vals[i]) : 0;
        e->lens[i] = vals[i] ? (int32_t)l : -1;
        if (vals[i]) {
            memcpy(p, vals[i], l + 1);
            p += l + 1;
        }
    }
    return e;
}

void
gh_cache_put(struct gh_cache *c, const char *key, const char *const *vals, int n, int64_t expires_at,
             uint64_t gen)
{
    struct entry *e, **p;
    struct shard *s;

    if (!serving(c) || n < 0 || gen != gh_cache_gen(c) || (expires_at && gh_time_s() >= expires_at))
        return;
    e = entry_new(key, vals, n, expires_at, gen);
    if (e == NULL)
        return;
    s = &c->shards[e->hash & (SHARDS - 1)];
    pthread_mutex_lock(&s->lock);
    /* checked again under the lock: a flush that bumped the generation
     * before we got here must win, one that comes later clears us */
    if (gen != gh_cache_gen(c)) {
        pthread_mutex_unlock(&s->lock);
        entry_free(e);
        return;
    }
    p = slot_of(s, e->hash, key);
    if (*p)
        remove_at(s, p);
    while (s->count >= s->cap && s->oldest)
        remove_at(s, slot_of(s, s->oldest->hash, s->oldest->key));
    p = slot_of(s, e->hash, key);
    *p = e;
    lru_push(s, e);
    s->count++;
    pthread_mutex_unlock(&s->lock);
}

long
gh_cache_hits(struct gh_cache *c)
{
    return c ? __atomic_load_n(&c->hits, __ATOMIC_RELAXED) : 0;
}

long
gh_cache_misses(struct gh_cache *c)
{
    return c ? __atomic_load_n(&c->misses, __ATOMIC_RELAXED) : 0;
}

long
gh_cache_count(struct gh_cache *c)
{
    long n = 0;

    if (c == NULL || !c->enabled)
        return 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&c->shards[i].lock);
        n += c->shards[i].count;
        pthread_mutex_unlock(&c->shards[i].lock);
    }
    return n;
}
