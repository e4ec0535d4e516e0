/*
 * gateway/audit.c — the audit log with group commit: the writer thread
 * and the API (rows: audit_rows.c; held rows and the spool: audit_held.c).
 *
 * A request thread queues its row (a node on its own stack: no allocation)
 * and sleeps until the writer thread has committed the batch holding it.
 * The writer takes everything queued, up to BATCH_MAX rows, and writes them
 * with one COPY — one statement, one transaction — then wakes the waiters;
 * a batch of one row (an idle server's every call) is one INSERT instead,
 * one round trip to PostgreSQL where a COPY takes two.
 * Under load the batches grow by themselves: while one commits, the next
 * one queues.  If a batch fails on bad data (the connection still up), its
 * rows are retried one by one so one odd row cannot fail its neighbours;
 * if the database is gone, every waiter of the batch gets a 503 and its
 * caller answers with that instead of a response without an audit row.
 *
 * A failed row of a request the upstream already has (gw_audit.acted: a
 * forwarded call the gateway cannot take back) is also *held*: its COPY
 * line, with its own time, waits in memory (at most HELD_MAX bytes) and is
 * written once the log takes rows again (retried every HELD_RETRY_MS), so
 * the log misses no call that happened.  If the connection broke just as
 * such a batch committed, its rows are in the log already: the retry goes
 * through the staging table audit_events_held and inserts only the rows
 * the log lacks, so none is written twice.  Each held row is also appended, and synced
 * before the replies go, to this process's spool file in the data folder:
 * rows still held when the process ends — at shutdown or in a crash — are
 * taken up by the next process that starts on that folder, through the
 * same retry.  A row that does not fit in memory is reported in the log.
 * The retry waits (advisory lock) for audit commits still under way, so a
 * batch whose connection broke mid-commit is not written twice; a held row
 * the database refuses on its own is reported and dropped rather than
 * blocking the others for good.
 *
 * Write-ahead: a forwarded call's row is committed (gw_audit_write, group
 * commit) before the call goes upstream, with a call id and no outcome; a
 * call that cannot get its row is not forwarded.  Its outcome comes later
 * as a row of its own (gw_audit.outcome) that the writer turns into an
 * UPDATE of that row by call id: a batch's new rows in one INSERT or COPY,
 * its outcomes in one UPDATE from a JSON array.  An outcome that cannot be
 * committed is held like any acted row: its line carries the whole row,
 * and the merge completes the row it names (or inserts it, should it be
 * missing) without touching an outcome already there.
 */
#include "gateway/audit_int.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  work;       /* the writer waits here */
    pthread_cond_t  done;       /* the request threads wait here */
    struct pending *head, **tail;
    bool            running, stopping;
    pthread_t       thread;
} q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .tail = &q.head,
};

typedef int (*write_fn)(struct db_conn *c, struct pending **rows, int n);

/* rows by fn in one transaction; result[i] 1 or -1 */
static void
write_group(struct db_conn *c, write_fn fn, struct pending **rows, int n, int *result)
{
    int rc = fn(c, rows, n);

    for (int i = 0; i < n; i++)
        result[i] = rc == 0 ? 1 : -1;
    if (rc < 0 && n > 1 && PQstatus(db_pg(c)) == CONNECTION_OK) {
        /* bad data in one row must not cost the others theirs */
        for (int i = 0; i < n; i++)
            result[i] = fn(c, rows + i, 1) == 0 ? 1 : -1;
    }
}

/* Writes the batch: its new rows and its outcomes in one transaction
 * when it has both, else (or when that fails on the data) its new rows,
 * then its outcomes (an outcome never follows its own row in one batch:
 * that row was committed before the call went out); result[i] is 1
 * (committed) or -1.  The nodes are only read here: their states are set
 * under the lock by the caller, as a waiter may return the moment it sees
 * its state. */
static void
write_batch(struct pending **rows, int n, int *result)
{
    struct gh_err e = {0};
    struct db_conn *c = db_get(&e);
    struct pending *part[2][BATCH_MAX];
    int at[2][BATCH_MAX], k[2] = {0, 0}, res[BATCH_MAX];
    bool ambiguous;

    if (c == NULL) {
        GH_LOG(ERROR, "audit_write", "%d audit row(s) not written: %s", n, e.detail);
        for (int i = 0; i < n; i++)
            result[i] = -1;
        return;
    }
    for (int i = 0; i < n; i++) {
        int pass = rows[i]->row->outcome ? 1 : 0;
        part[pass][k[pass]] = rows[i];
        at[pass][k[pass]++] = i;
    }
    if (k[0] > 0 && k[1] > 0) {
        int rc = gw_audit_write_both(c, part[0], k[0], part[1], k[1], &ambiguous);
        if (rc == 0 || ambiguous) {
            if (ambiguous)
                GH_LOG(ERROR, "audit_write", "%d audit row(s) and outcome(s): the connection broke during the commit",
                       n);
            for (int i = 0; i < n; i++)
                result[i] = rc == 0 ? 1 : -1;
            db_put(c);
            return;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        if (k[pass] == 0)
            continue;
        write_group(c, pass ? gw_audit_write_outcomes : gw_audit_write_rows, part[pass], k[pass], res);
        for (int i = 0; i < k[pass]; i++)
            result[at[pass][i]] = res[i];
    }
    db_put(c);
}

static void *
writer_main(void *arg)
{
    struct pending *batch[BATCH_MAX];
    int result[BATCH_MAX];

    gh_log_context(NULL, "audit");
    gw_audit_spool_take_up();
    (void)gw_audit_retry_held();
    pthread_mutex_lock(&q.lock);
    for (;;) {
        int n = 0;

        while (q.head == NULL && !q.stopping) {
            if (gw_audit_held_rows() == 0) {
                pthread_cond_wait(&q.work, &q.lock);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += HELD_RETRY_MS / 1000;
            if (pthread_cond_timedwait(&q.work, &q.lock, &until) != 0 && q.head == NULL && !q.stopping) {
                pthread_mutex_unlock(&q.lock);
                (void)gw_audit_retry_held();
                pthread_mutex_lock(&q.lock);
            }
        }
        if (q.head == NULL)
            break;                          /* stopping, and everything flushed */
        while (q.head && n < BATCH_MAX) {
            batch[n++] = q.head;
            q.head = q.head->next;
        }
        if (q.head == NULL)
            q.tail = &q.head;
        pthread_mutex_unlock(&q.lock);

        write_batch(batch, n, result);
        bool took = false;                  /* the log took rows */
        for (int i = 0; i < n; i++) {
            took = took || result[i] > 0;
            if (result[i] < 0 && batch[i]->row->acted)
                gw_audit_hold(batch[i]);
        }
        gw_audit_spool_sync();
        gw_audit_held_taken(took);

        pthread_mutex_lock(&q.lock);
        {
            /* submitted rows are the writer's to finish; a waiter's node
             * may be gone the moment its state is set */
            struct pending *async[BATCH_MAX];
            int na = 0;
            for (int i = 0; i < n; i++) {
                if (batch[i]->done) {
                    batch[i]->state = result[i];
                    async[na++] = batch[i];
                }
            }
            for (int i = 0; i < n; i++)
                if (!batch[i]->done)
                    batch[i]->state = result[i];
            pthread_cond_broadcast(&q.done);
            pthread_mutex_unlock(&q.lock);
            for (int i = 0; i < na; i++) {
                async[i]->done(async[i]->ctx, async[i]->state > 0 ? 0 : -1);
                free(async[i]);
            }
            /* the log takes rows again: the held ones now, after this
             * batch's replies have gone */
            if (took && gw_audit_held_rows() > 0)
                (void)gw_audit_retry_held();
            pthread_mutex_lock(&q.lock);
        }
    }
    pthread_mutex_unlock(&q.lock);
    gw_audit_held_end();
    return NULL;
}

int
gw_audit_call_id(char out[GW_AUDIT_CALL_ID_LEN + 1])
{
    unsigned char b[GW_AUDIT_CALL_ID_LEN / 2];

    if (gh_random_bytes(b, sizeof(b)) < 0)
        return -1;
    gh_hex_encode(b, sizeof(b), out);
    return 0;
}

int
gw_audit_submit(const struct gw_audit *row, const char *request_id, gw_audit_done_fn done, void *ctx)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct timespec ts;

    if (p == NULL)
        return -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->row = row;
    p->request_id = request_id ? request_id : row->request_id;
    p->at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    p->done = done;
    p->ctx = ctx;
    pthread_mutex_lock(&q.lock);
    if (!q.running || q.stopping) {
        pthread_mutex_unlock(&q.lock);
        free(p);
        return -1;
    }
    *q.tail = p;
    q.tail = &p->next;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.lock);
    return 0;
}

static int
unavailable(struct gh_err *e, const char *detail)
{
    gh_err_set(e, 503, "temporarily_unavailable", "the audit log is unavailable", "%s", detail);
    e->retry_after = 2;
    return -1;
}

/* Queues p[0..n-1] at once (the writer takes them in one COPY, up to
 * BATCH_MAX, unless rows queued before them fill it) and waits until each
 * is committed or failed. */
static int
queue_and_wait(struct pending *p, int n, struct gh_err *e)
{
    struct timespec ts;
    int64_t at_us;
    bool waiting = true, failed = false;

    clock_gettime(CLOCK_REALTIME, &ts);
    at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    for (int i = 0; i < n; i++) {
        p[i].request_id = p[i].row->request_id ? p[i].row->request_id : gh_log_request_id();
        p[i].at_us = at_us;
        p[i].next = i + 1 < n ? &p[i + 1] : NULL;
    }
    pthread_mutex_lock(&q.lock);
    if (!q.running || q.stopping) {
        pthread_mutex_unlock(&q.lock);
        return unavailable(e, "audit writer not running");
    }
    *q.tail = &p[0];
    q.tail = &p[n - 1].next;
    pthread_cond_signal(&q.work);
    while (waiting) {
        waiting = false;
        for (int i = 0; i < n && !waiting; i++)
            waiting = p[i].state == 0;
        if (waiting)
            pthread_cond_wait(&q.done, &q.lock);
    }
    pthread_mutex_unlock(&q.lock);
    for (int i = 0; i < n; i++)
        failed = failed || p[i].state < 0;
    return failed ? unavailable(e, "audit row not committed") : 0;
}

int
gw_audit_write(const struct gw_audit *row, struct gh_err *e)
{
    struct pending p = { .row = row };

    return queue_and_wait(&p, 1, e);
}

int
gw_audit_write_many(const struct gw_audit *rows, int n, struct gh_err *e)
{
    struct pending *p;
    int rc;

    if (n <= 0)
        return 0;
    p = calloc((size_t)n, sizeof(*p));
    if (p == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
    for (int i = 0; i < n; i++)
        p[i].row = &rows[i];
    rc = queue_and_wait(p, n, e);
    free(p);
    return rc;
}

int
gw_audit_start(struct gh_err *e)
{
    static bool gauges;
    int rc;

    pthread_mutex_lock(&q.lock);
    if (q.running) {
        pthread_mutex_unlock(&q.lock);
        return 0;
    }
    q.stopping = false;
    rc = pthread_create(&q.thread, NULL, writer_main, NULL);
    q.running = rc == 0;
    pthread_mutex_unlock(&q.lock);
    if (rc != 0)
        return gh_err_set(e, 500, "server_error", "internal error", "audit writer thread: error %d", rc);
    if (!gauges) {
        gauges = true;
        web_metrics_register_gauge("gatehouse_audit_batches_total",
                                   "Audit group commits (transactions) written.", gw_audit_batches_total);
        web_metrics_register_gauge("gatehouse_audit_rows_total", "Audit rows committed.", gw_audit_rows_total);
    }
    return 0;
}

void
gw_audit_stop(void)
{
    pthread_mutex_lock(&q.lock);
    if (!q.running) {
        pthread_mutex_unlock(&q.lock);
        return;
    }
    q.stopping = true;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.lock);
    pthread_join(q.thread, NULL);   /* the writer flushes the queue first */
    pthread_mutex_lock(&q.lock);
    q.running = false;
    gw_audit_rows_free();
    pthread_mutex_unlock(&q.lock);
}

