/* tests/unit/core/arena.c — the per-request arena: zeroing, cap, cleanups. */
#include "core/core.h"
#include "tests/unit/unit.h"

static int cleaned;
static void count_cleanup(void *p) { cleaned += *(int *)p; }

static void
test_alloc_zeroed_and_strings(void)
{
    struct gh_arena *a = gh_arena_new(1 << 16);
    unsigned char *p = gh_arena_alloc(a, 100);
    int zero = 1;
    for (int i = 0; i < 100; i++)
        zero &= p[i] == 0;
    UNIT_TRUE(zero);
    UNIT_EQ_STR(gh_arena_strdup(a, "hello"), "hello");
    UNIT_EQ_STR(gh_arena_strndup(a, "hello", 3), "hel");
    UNIT_EQ_STR(gh_arena_printf(a, "%s-%d", "x", 42), "x-42");
    gh_arena_free(a);
}

static void
test_cap_refuses(void)
{
    struct gh_arena *a = gh_arena_new(4096);
    UNIT_TRUE(gh_arena_alloc(a, 1024) != NULL);
    UNIT_TRUE(gh_arena_alloc(a, 8192) == NULL);
    gh_arena_free(a);
}

static void
test_cleanups_run_once_at_free(void)
{
    struct gh_arena *a = gh_arena_new(1 << 16);
    int one = 1, ten = 10;
    cleaned = 0;
    gh_arena_defer(a, count_cleanup, &one);
    gh_arena_defer(a, count_cleanup, &ten);
    UNIT_EQ_INT(cleaned, 0);
    gh_arena_free(a);
    UNIT_EQ_INT(cleaned, 11);
}

static void
test_json_decref_at_free(void)
{
    struct gh_arena *a = gh_arena_new(1 << 16);
    json_t *j = json_object();
    json_incref(j);
    gh_arena_json(a, j);
    UNIT_EQ_INT(j->refcount, 2);
    gh_arena_free(a);
    UNIT_EQ_INT(j->refcount, 1);
    json_decref(j);
}

int
main(void)
{
    UNIT_RUN(test_alloc_zeroed_and_strings);
    UNIT_RUN(test_cap_refuses);
    UNIT_RUN(test_cleanups_run_once_at_free);
    UNIT_RUN(test_json_decref_at_free);
    return UNIT_DONE();
}
