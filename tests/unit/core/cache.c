/* tests/unit/core/cache.c — the hot-path cache: values, expiry, bound,
 * generation flush, the usable gate, and concurrent use. */
#include "core/core.h"
#include "tests/unit/unit.h"
#include <pthread.h>
#include <stdio.h>

static bool usable_flag = true;
static bool usable(void) { return __atomic_load_n(&usable_flag, __ATOMIC_SEQ_CST); }

static void
test_values_roundtrip_with_nulls(void)
{
    struct gh_cache *c = gh_cache_new(100, NULL);
    struct gh_arena *a = gh_arena_new(0);
    const char *v[4] = { "one", NULL, "", "four" };
    char **got;
    int n = 0;

    UNIT_TRUE(gh_cache_get(c, a, "k", &n) == NULL);
    gh_cache_put(c, "k", v, 4, 0, gh_cache_gen(c));
    got = gh_cache_get(c, a, "k", &n);
    UNIT_TRUE(got != NULL);
    if (got) {
        UNIT_EQ_INT(n, 4);
        UNIT_EQ_STR(got[0], "one");
        UNIT_TRUE(got[1] == NULL);
        UNIT_EQ_STR(got[2], "");
        UNIT_EQ_STR(got[3], "four");
    }
    UNIT_TRUE(gh_cache_get(c, a, "other", &n) == NULL);
    UNIT_EQ_INT(gh_cache_hits(c), 1);
    UNIT_EQ_INT(gh_cache_misses(c), 2);
    /* a second put of the same key replaces the first */
    v[0] = "uno";
    gh_cache_put(c, "k", v, 4, 0, gh_cache_gen(c));
    got = gh_cache_get(c, a, "k", &n);
    UNIT_EQ_STR(got ? got[0] : NULL, "uno");
    UNIT_EQ_INT(gh_cache_count(c), 1);
    gh_arena_free(a);
    gh_cache_free(c);
}

static void
test_expiry_honoured_on_every_hit(void)
{
    struct gh_cache *c = gh_cache_new(100, NULL);
    struct gh_arena *a = gh_arena_new(0);
    const char *v[1] = { "x" };
    int64_t now = gh_time_s();

    gh_cache_put(c, "past", v, 1, now - 1, gh_cache_gen(c));
    UNIT_TRUE(gh_cache_get(c, a, "past", NULL) == NULL);
    gh_cache_put(c, "future", v, 1, now + 3600, gh_cache_gen(c));
    UNIT_TRUE(gh_cache_get(c, a, "future", NULL) != NULL);
    /* stored live, then its time passes: the next hit is a miss */
    gh_cache_put(c, "soon", v, 1, now + 1, gh_cache_gen(c));
    UNIT_TRUE(gh_cache_get(c, a, "soon", NULL) != NULL);
    while (gh_time_s() < now + 1)
        ;
    UNIT_TRUE(gh_cache_get(c, a, "soon", NULL) == NULL);
    UNIT_EQ_INT(gh_cache_count(c), 1);
    gh_arena_free(a);
    gh_cache_free(c);
}

static void
test_bound_honoured_and_recent_kept(void)
{
    struct gh_cache *c = gh_cache_new(64, NULL);
    struct gh_arena *a = gh_arena_new(0);
    const char *v[1] = { "x" };
    char key[32];
    int kept = 0;

    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        gh_cache_put(c, key, v, 1, 0, gh_cache_gen(c));
        /* one hot key, read between writes, must survive the churn */
        gh_cache_put(c, "hot", v, 1, 0, gh_cache_gen(c));
    }
    UNIT_TRUE(gh_cache_count(c) <= 64);
    UNIT_TRUE(gh_cache_count(c) >= 16);
    UNIT_TRUE(gh_cache_get(c, a, "hot", NULL) != NULL);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        kept += gh_cache_get(c, a, key, NULL) != NULL;
    }
    UNIT_EQ_INT(kept, 0);       /* the oldest went first */
    gh_arena_free(a);
    gh_cache_free(c);
}

static void
test_generation_flush(void)
{
    struct gh_cache *c = gh_cache_new(100, NULL);
    struct gh_arena *a = gh_arena_new(0);
    const char *v[1] = { "x" };
    uint64_t before;

    gh_cache_put(c, "a", v, 1, 0, gh_cache_gen(c));
    gh_cache_put(c, "b", v, 1, 0, gh_cache_gen(c));
    UNIT_EQ_INT(gh_cache_count(c), 2);
    before = gh_cache_gen(c);
    gh_cache_flush(c);
    UNIT_TRUE(gh_cache_gen(c) != before);
    UNIT_EQ_INT(gh_cache_count(c), 0);
    UNIT_TRUE(gh_cache_get(c, a, "a", NULL) == NULL);
    /* a lookup that began before the flush may not store its answer */
    gh_cache_put(c, "a", v, 1, 0, before);
    UNIT_TRUE(gh_cache_get(c, a, "a", NULL) == NULL);
    gh_cache_put(c, "a", v, 1, 0, gh_cache_gen(c));
    UNIT_TRUE(gh_cache_get(c, a, "a", NULL) != NULL);
    gh_arena_free(a);
    gh_cache_free(c);
}

static void
test_usable_gate_and_disabled(void)
{
    struct gh_cache *c = gh_cache_new(100, usable), *off = gh_cache_new(0, NULL);
    struct gh_arena *a = gh_arena_new(0);
    const char *v[1] = { "x" };

    gh_cache_put(c, "a", v, 1, 0, gh_cache_gen(c));
    usable_flag = false;
    UNIT_TRUE(gh_cache_get(c, a, "a", NULL) == NULL);
    gh_cache_put(c, "b", v, 1, 0, gh_cache_gen(c));
    usable_flag = true;
    UNIT_TRUE(gh_cache_get(c, a, "a", NULL) != NULL);
    UNIT_TRUE(gh_cache_get(c, a, "b", NULL) == NULL);
    gh_cache_put(off, "a", v, 1, 0, gh_cache_gen(off));
    UNIT_TRUE(gh_cache_get(off, a, "a", NULL) == NULL);
    UNIT_EQ_INT(gh_cache_count(off), 0);
    gh_arena_free(a);
    gh_cache_free(c);
    gh_cache_free(off);
}

/* Readers, writers and flushers at once: every value read belongs to its
 * key, and nothing stored before the last flush survives it. */
static struct gh_cache *shared;
static int bad_reads;

static void *
worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char key[32], val[48];

    for (int i = 0; i < 20000; i++) {
        struct gh_arena *a = gh_arena_new(0);
        int k = (i * 7 + id) % 300, n = 0;
        char **got;
        snprintf(key, sizeof(key), "k%d", k);
        snprintf(val, sizeof(val), "value-of-k%d", k);
        got = gh_cache_get(shared, a, key, &n);
        if (got && (n != 2 || !got[0] || strcmp(got[0], val) || got[1] != NULL))
            __atomic_add_fetch(&bad_reads, 1, __ATOMIC_RELAXED);
        if (!got) {
            const char *v[2] = { val, NULL };
            gh_cache_put(shared, key, v, 2, 0, gh_cache_gen(shared));
        }
        if (id == 0 && i % 997 == 0)
            gh_cache_flush(shared);
        gh_arena_free(a);
    }
    return NULL;
}

static void
test_concurrent_readers_writers_flushers(void)
{
    pthread_t t[4];
    struct gh_arena *a = gh_arena_new(0);

    shared = gh_cache_new(128, NULL);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    UNIT_EQ_INT(bad_reads, 0);
    UNIT_TRUE(gh_cache_count(shared) <= 128);
    UNIT_TRUE(gh_cache_hits(shared) > 0);
    UNIT_EQ_INT(gh_cache_hits(shared) + gh_cache_misses(shared), 4 * 20000);
    gh_cache_flush(shared);
    UNIT_EQ_INT(gh_cache_count(shared), 0);
    UNIT_TRUE(gh_cache_get(shared, a, "k1", NULL) == NULL);
    gh_arena_free(a);
    gh_cache_free(shared);
}

int
main(void)
{
    UNIT_RUN(test_values_roundtrip_with_nulls);
    UNIT_RUN(test_expiry_honoured_on_every_hit);
    UNIT_RUN(test_bound_honoured_and_recent_kept);
    UNIT_RUN(test_generation_flush);
    UNIT_RUN(test_usable_gate_and_disabled);
    UNIT_RUN(test_concurrent_readers_writers_flushers);
    return UNIT_DONE();
}
