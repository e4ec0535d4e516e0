/*
 * tests/unit/core/workq.c — the work queue (core/workq.c): every posted
 * function runs once, in order of posting on one thread; a stop runs what
 * was posted before it; a post after it is refused, and the caller then
 * does its work itself.
 */
#include "tests/unit/unit.h"
#include "core/core.h"
#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int seen[1000], nseen;

static void
record(void *ctx)
{
    pthread_mutex_lock(&lock);
    seen[nseen++] = (int)(intptr_t)ctx;
    pthread_mutex_unlock(&lock);
}

static void
test_one_thread_in_order(void)
{
    struct gh_workq *q = gh_workq_start(1);

    nseen = 0;
    UNIT_TRUE(q != NULL);
    for (int i = 0; i < 100; i++)
        UNIT_EQ_INT(gh_workq_post(q, record, (void *)(intptr_t)i), 0);
    gh_workq_stop(q);                   /* runs what was posted first */
    UNIT_EQ_INT(nseen, 100);
    for (int i = 0; i < nseen; i++)
        if (seen[i] != i) {
            UNIT_EQ_INT(seen[i], i);
            break;
        }
    UNIT_EQ_INT(gh_workq_post(q, record, NULL), -1);   /* stopped: refused */
    UNIT_EQ_INT(nseen, 100);
    gh_workq_free(q);
}

static void
test_many_threads_each_once(void)
{
    struct gh_workq *q = gh_workq_start(8);
    int count[1000] = {0};

    nseen = 0;
    UNIT_TRUE(q != NULL);
    for (int i = 0; i < 1000; i++)
        gh_workq_post(q, record, (void *)(intptr_t)i);
    gh_workq_free(q);                   /* stops, drains, frees */
    UNIT_EQ_INT(nseen, 1000);
    for (int i = 0; i < nseen; i++)
        count[seen[i]]++;
    for (int i = 0; i < 1000; i++)
        if (count[i] != 1) {
            UNIT_EQ_INT(count[i], 1);
            break;
        }
}

static void
test_no_queue(void)
{
    UNIT_EQ_INT(gh_workq_post(NULL, record, NULL), -1);    /* not started: the caller works */
    gh_workq_stop(NULL);
    gh_workq_free(NULL);
}

int
main(void)
{
    UNIT_RUN(test_one_thread_in_order);
    UNIT_RUN(test_many_threads_each_once);
    UNIT_RUN(test_no_queue);
    return UNIT_DONE();
}
