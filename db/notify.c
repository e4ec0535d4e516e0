/*
 * db/notify.c — LISTEN/NOTIFY for cache invalidation across processes.
 *
 * One listener thread holds its own connection (outside the pool),
 * re-LISTENs after a reconnect, and runs the callbacks.  Callbacks must be
 * quick: they run on the listener thread.
 *
 * Caches depend on it: db_listener_live() says whether every registered
 * channel is being listened to right now (no invalidation can be missed),
 * and the reconnect hooks run after each (re)connect, before the listener
 * reports live again, since notifications sent meanwhile were lost.
 *
 * A connection can also die without a word — a NAT or firewall that
 * dropped its state, a partition: no FIN, no reset, poll() never wakes,
 * and every notification is lost while we would go on reporting live (the
 * caches would serve a revoked credential for as long as the process
 * runs).  So the listener asks its server something every PING_EVERY_MS;
 * no answer within PING_WAIT_MS ends the connection (then reconnect,
 * hooks).  Live therefore means "heard from the server within the last
 * PING_EVERY_MS + PING_WAIT_MS".
 */
#include "db/db_int.h"
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LISTENERS 32
#define MAX_HOOKS 8
#define PING_EVERY_MS 2000
#define PING_WAIT_MS  3000

struct listener {
    char         channel[64];
    db_notify_fn fn;
    void        *ctx;
};

static struct {
    pthread_mutex_t lock;
    struct listener l[MAX_LISTENERS];
    int             n;
    struct { void (*fn)(void *); void *ctx; } hook[MAX_HOOKS];
    int             nhooks;
    bool            dirty;      /* a channel was added since the last LISTEN pass */
    bool            live;       /* connected and every channel LISTENed */
    bool            running;
    bool            stop;
    pthread_t       thread;
} lsn = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool
listen_all(PGconn *pg)
{
    bool ok = true;

    pthread_mutex_lock(&lsn.lock);
    for (int i = 0; i < lsn.n && ok; i++) {
        char *q = PQescapeIdentifier(pg, lsn.l[i].channel, strlen(lsn.l[i].channel));
        char sql[160];
        PGresult *r;

        if (q == NULL) {
            ok = false;
            break;
        }
        snprintf(sql, sizeof(sql), "LISTEN %s", q);
        PQfreemem(q);
        r = PQexec(pg, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    __atomic_store_n(&lsn.dirty, false, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&lsn.lock);
    return ok;
}

static void
dispatch(PGnotify *n)
{
    struct listener copy[MAX_LISTENERS];
    int count;

    pthread_mutex_lock(&lsn.lock);
    count = lsn.n;
    memcpy(copy, lsn.l, sizeof(copy[0]) * (size_t)count);
    pthread_mutex_unlock(&lsn.lock);
    for (int i = 0; i < count; i++)
        if (!strcmp(copy[i].channel, n->relname))
            copy[i].fn(n->relname, n->extra, copy[i].ctx);
}

static void
set_live(bool v)
{
    __atomic_store_n(&lsn.live, v, __ATOMIC_SEQ_CST);
}

static void
run_hooks(void)
{
    int n;

    pthread_mutex_lock(&lsn.lock);
    n = lsn.nhooks;
    pthread_mutex_unlock(&lsn.lock);
    for (int i = 0; i < n; i++)
        lsn.hook[i].fn(lsn.hook[i].ctx);
}

/* The answer of the ping in flight, if it is all there: 1 answered, 0 not
 * yet, -1 the connection broke. */
static int
ping_answered(PGconn *pg)
{
    PGresult *r;
    bool ok = true;

    if (PQisBusy(pg))
        return 0;
    while ((r = PQgetResult(pg)) != NULL) {
        ok = ok && PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    return ok ? 1 : -1;
}

static void *
listener_main(void *arg)
{
    PGconn *pg = NULL;
    int64_t ping_due = 0, ping_sent = 0;    /* microseconds; ping_sent 0: none in flight */

    (void)arg;
    while (!__atomic_load_n(&lsn.stop, __ATOMIC_ACQUIRE)) {
        struct pollfd pfd;
        PGnotify *n;

        if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
            struct gh_err e = {0};
            set_live(false);
            if (pg)
                PQfinish(pg);
            pg = db_connect_raw(&e);
            if (pg == NULL || !listen_all(pg)) {
                /* retry quietly: /readyz reports the outage */
                usleep(500 * 1000);
                continue;
            }
            /* whatever was sent while we were away is lost */
            run_hooks();
            ping_sent = 0;
            ping_due = gh_now_us() + PING_EVERY_MS * 1000LL;
            GH_LOG(DEBUG, "db_listen", "listener connected");
        }
        if (ping_sent == 0 && __atomic_load_n(&lsn.dirty, __ATOMIC_ACQUIRE)) {
            set_live(false);
            if (!listen_all(pg)) {
                PQfinish(pg);
                pg = NULL;
                continue;
            }
        }
        set_live(true);
        pfd.fd = PQsocket(pg);
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 250) > 0 && PQconsumeInput(pg) == 0) {
            set_live(false);
            continue;   /* connection broke; reconnect at the top */
        }
        while ((n = PQnotifies(pg)) != NULL) {
            dispatch(n);
            PQfreemem(n);
        }
        if (ping_sent) {
            int got = ping_answered(pg);
            /* reading the answer may have parsed notifications behind it:
             * run them now, not after the next poll's 250 ms */
            while ((n = PQnotifies(pg)) != NULL) {
                dispatch(n);
                PQfreemem(n);
            }
            if (got == 0 && gh_now_us() - ping_sent > PING_WAIT_MS * 1000LL) {
                GH_LOG(WARN, "db_listen", "no answer from the database in %d ms: reconnecting the listener",
                       PING_WAIT_MS);
                got = -1;
            }
            if (got < 0) {
                set_live(false);
                PQfinish(pg);
                pg = NULL;
                continue;
            }
            if (got > 0) {
                ping_sent = 0;
                ping_due = gh_now_us() + PING_EVERY_MS * 1000LL;
            }
        } else if (gh_now_us() >= ping_due) {
            if (!PQsendQuery(pg, "SELECT 1")) {
                set_live(false);
                PQfinish(pg);
                pg = NULL;
                continue;
            }
            ping_sent = gh_now_us();
        }
    }
    set_live(false);
    if (pg)
        PQfinish(pg);
    return NULL;
}

int
db_listen(const char *channel, db_notify_fn fn, void *ctx)
{
    int rc = -1;

    pthread_mutex_lock(&lsn.lock);
    if (lsn.n < MAX_LISTENERS && strlen(channel) < sizeof(lsn.l[0].channel)) {
        snprintf(lsn.l[lsn.n].channel, sizeof(lsn.l[0].channel), "%s", channel);
        lsn.l[lsn.n].fn = fn;
        lsn.l[lsn.n].ctx = ctx;
        lsn.n++;
        __atomic_store_n(&lsn.dirty, true, __ATOMIC_SEQ_CST);
        rc = 0;
        if (!lsn.running && pthread_create(&lsn.thread, NULL, listener_main, NULL) == 0)
            lsn.running = true;
    }
    pthread_mutex_unlock(&lsn.lock);
    return rc;
}

int
db_listen_reconnect_hook(void (*fn)(void *ctx), void *ctx)
{
    int rc = -1;

    pthread_mutex_lock(&lsn.lock);
    if (lsn.nhooks < MAX_HOOKS) {
        lsn.hook[lsn.nhooks].fn = fn;
        lsn.hook[lsn.nhooks].ctx = ctx;
        lsn.nhooks++;
        rc = 0;
    }
    pthread_mutex_unlock(&lsn.lock);
    return rc;
}

bool
db_listener_live(void)
{
    return __atomic_load_n(&lsn.live, __ATOMIC_SEQ_CST) && !__atomic_load_n(&lsn.dirty, __ATOMIC_SEQ_CST);
}

void
db_listener_stop(void)
{
    if (!lsn.running)
        return;
    __atomic_store_n(&lsn.stop, true, __ATOMIC_RELEASE);
    pthread_join(lsn.thread, NULL);
    lsn.running = false;
}

static void
cache_on_notify(const char *channel, const char *payload, void *cache)
{
    (void)channel;
    (void)payload;
    gh_cache_flush(cache);
}

static void
cache_on_reconnect(void *cache)
{
    gh_cache_flush(cache);
}

struct gh_cache *
db_cache_new(long max_entries, const char *channel)
{
    struct gh_cache *c;

    if (max_entries <= 0)
        return gh_cache_new(0, NULL);
    c = gh_cache_new(max_entries, db_listener_live);
    if (c && (db_listen_reconnect_hook(cache_on_reconnect, c) < 0 || db_listen(channel, cache_on_notify, c) < 0)) {
        /* c stays allocated: a hook may already point at it */
        GH_LOG(WARN, "db_cache", "cannot listen on %s: that cache stays off", channel);
        c = gh_cache_new(0, NULL);
    }
    return c;
}

int
db_notify(const char *channel, const char *payload, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    int rc = db_query(a, e, "SELECT pg_notify($1, $2)", 2, channel, payload ? payload : "") ? 0 : -1;

    gh_arena_free(a);
    return rc;
}
