/*
 * authz/worker.c — the rest of a handler on a short-lived thread, for the
 * sign-in steps that wait on another server (the identity provider's
 * endpoints, the mail server): a server thread must not stall on them.
 * At most AUTHZ_WORKERS run at once; past that a request is answered 503.
 */
#include "authz/authz_int.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define AUTHZ_WORKERS 16

static atomic_int workers;
static _Thread_local bool on_worker;

struct job {
    struct web_req *r;
    web_handler_fn  fn;
};

static void *
worker_main(void *arg)
{
    struct job *j = arg;

    on_worker = true;
    gh_log_context(web_request_id(j->r), web_route_pattern(j->r));
    j->fn(j->r);
    web_offload_end(j->r);          /* the last use of r */
    gh_log_context(NULL, NULL);
    free(j);
    atomic_fetch_sub(&workers, 1);
    return NULL;
}

bool
authz_offload(struct web_req *r, web_handler_fn fn)
{
    struct gh_err e = {0};
    struct job *j;
    pthread_attr_t at;
    pthread_t t;
    bool ok;

    if (on_worker)
        return false;
    j = malloc(sizeof(*j));
    if (j == NULL || atomic_fetch_add(&workers, 1) >= AUTHZ_WORKERS) {
        if (j)
            atomic_fetch_sub(&workers, 1);
        free(j);
        gh_err_set(&e, 503, "unavailable", "Too many sign-ins at once. Try again in a moment.", "authz workers busy");
        e.retry_after = 1;
        web_reply_err(r, &e);
        return true;
    }
    j->r = r;
    j->fn = fn;
    web_offload_begin(r);
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&t, &at, worker_main, j) == 0;
    pthread_attr_destroy(&at);
    if (!ok) {
        atomic_fetch_sub(&workers, 1);
        free(j);
        gh_err_set(&e, 503, "unavailable", "Try again in a moment.", "authz worker thread not started");
        web_reply_err(r, &e);
        web_offload_end(r);
    }
    return true;
}
