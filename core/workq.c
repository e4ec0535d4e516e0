/*
 * core/workq.c — a work queue: a fixed set of threads running the
 * functions posted to it, first in first out: the gateway's worker and
 * offload pools and the CIMD fetchers (authz/cimd.c).  A stopped queue runs what was posted
 * before it stopped, then ends its threads; it refuses work from then on
 * and stays valid until gh_workq_free, so a late post is refused rather
 * than a use after free.
 */
#include "core/core.h"
#include <pthread.h>
#include <stdlib.h>

struct work {
    gh_work_fn   fn;
    void        *ctx;
    struct work *next;
};

struct gh_workq {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    struct work    *head, *tail;
    bool            stop;
    int             n;
    pthread_t       th[];
};

static void *
workq_main(void *arg)
{
    struct gh_workq *q = arg;

    for (;;) {
        struct work *w;

        pthread_mutex_lock(&q->lock);
        while (q->head == NULL && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        w = q->head;
        if (w) {
            q->head = w->next;
            if (q->head == NULL)
                q->tail = NULL;
        }
        pthread_mutex_unlock(&q->lock);
        if (w == NULL)
            return NULL;        /* stopping and drained */
        w->fn(w->ctx);
        free(w);
    }
}

struct gh_workq *
gh_workq_start(int nthreads)
{
    struct gh_workq *q = calloc(1, sizeof(*q) + sizeof(pthread_t) * (size_t)nthreads);

    if (q == NULL)
        return NULL;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    for (q->n = 0; q->n < nthreads; q->n++)
        if (pthread_create(&q->th[q->n], NULL, workq_main, q) != 0)
            break;
    if (q->n == 0) {
        gh_workq_free(q);
        return NULL;
    }
    return q;
}

int
gh_workq_post(struct gh_workq *q, gh_work_fn fn, void *ctx)
{
    struct work *w;

    if (q == NULL || (w = malloc(sizeof(*w))) == NULL)
        return -1;
    *w = (struct work){ fn, ctx, NULL };
    pthread_mutex_lock(&q->lock);
    if (q->stop) {
        pthread_mutex_unlock(&q->lock);
        free(w);
        return -1;
    }
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void
gh_workq_stop(struct gh_workq *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n; i++)
        pthread_join(q->th[i], NULL);   /* each drains the queue before it ends */
    q->n = 0;
}

void
gh_workq_free(struct gh_workq *q)
{
    if (q == NULL)
        return;
    gh_workq_stop(q);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
