/*
 * db/pool.c — a fixed-size pool of libpq connections.
 *
 * Connections are opened lazily and reset when libpq reports them broken,
 * so a restarted PostgreSQL is picked up without restarting Gatehouse;
 * meanwhile callers get a 503 with Retry-After instead of a hang.
 */
#include "db/db_int.h"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GET_WAIT_MS 3000
#define PREPARED_MAX 16

/* prepared: the names of the statements prepared on this very session
 * (static strings of their callers), forgotten whenever the session is
 * replaced, so a statement is prepared again before its first use on a
 * new one instead of failing there ("prepared statement … does not
 * exist" in the server's log). */
struct db_conn {
    PGconn     *pg;
    bool        busy;
    const char *prepared[PREPARED_MAX];
    int         nprepared;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    struct db_conn *conns;
    long            size;
    long            in_use;
    long            waits;
    char           *conninfo;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0, NULL };

const char *
db_conninfo(void)
{
    return pool.conninfo;
}

int
db_pool_open(const char *conninfo, long size, struct gh_err *e)
{
    pool.conninfo = strdup(conninfo);
    pool.conns = calloc((size_t)size, sizeof(*pool.conns));
    if (pool.conninfo == NULL || pool.conns == NULL)
        return gh_err_set(e, 500, "server_error", "out of memory", "pool allocation");
    pool.size = size;
    return 0;
}

void
db_pool_close(void)
{
    pthread_mutex_lock(&pool.lock);
    for (long i = 0; i < pool.size; i++)
        if (pool.conns[i].pg)
            PQfinish(pool.conns[i].pg);
    free(pool.conns);
    pool.conns = NULL;
    pool.size = 0;
    pthread_mutex_unlock(&pool.lock);
    free(pool.conninfo);
    pool.conninfo = NULL;
}

/* The settings every session of Gatehouse's runs with, after each connect
 * and each reset: queries never hang forever on a wedged server. */
static void
session_setup(PGconn *pg)
{
    PQclear(PQexec(pg, "SET statement_timeout = '30s'"));
}

/* Seconds a connection attempt may take, unless the URL names its own
 * connect_timeout: without one libpq waits on a server that accepted the
 * connection but never answers (a partition, a wedged proxy) for as long
 * as TCP does, holding the request thread that needed a connection. */
#define CONNECT_TIMEOUT_S "10"

PGconn *
db_connect_raw(struct gh_err *e)
{
    /* the URL is expanded after the default, so its own value wins */
    static const char *const keys[] = { "connect_timeout", "dbname", NULL };
    const char *const vals[] = { CONNECT_TIMEOUT_S, pool.conninfo, NULL };
    PGconn *pg = PQconnectdbParams(keys, vals, 1);

    if (PQstatus(pg) != CONNECTION_OK) {
        /* libpq's message may name the host but never carries a password */
        char detail[256];
        snprintf(detail, sizeof(detail), "%s", PQerrorMessage(pg));
        detail[strcspn(detail, "\n")] = '\0';
        PQfinish(pg);
        gh_err_set(e, 503, "temporarily_unavailable", "the database is unavailable", "connect: %s", detail);
        e->retry_after = 2;
        return NULL;
    }
    session_setup(pg);
    return pg;
}

bool
db_reset(struct db_conn *c)
{
    c->nprepared = 0;           /* a new session knows none */
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK)
        return false;
    session_setup(c->pg);
    return true;
}

struct db_conn *
db_get(struct gh_err *e)
{
    struct db_conn *c = NULL;
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += GET_WAIT_MS / 1000;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        for (long i = 0; i < pool.size; i++) {
            if (!pool.conns[i].busy) {
                c = &pool.conns[i];
                c->busy = true;
                pool.in_use++;
                break;
            }
        }
        if (c)
            break;
        pool.waits++;
        if (pthread_cond_timedwait(&pool.cond, &pool.lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&pool.lock);
            gh_err_set(e, 503, "temporarily_unavailable", "the server is busy", "pool exhausted");
            e->retry_after = 1;
            return NULL;
        }
    }
    pthread_mutex_unlock(&pool.lock);

    if (c->pg && PQstatus(c->pg) != CONNECTION_OK) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (c->pg == NULL) {
        c->nprepared = 0;
        c->pg = db_connect_raw(e);
        if (c->pg == NULL) {
            db_put(c);
            return NULL;
        }
    }
    return c;
}

void
db_put(struct db_conn *c)
{
    if (c == NULL)
        return;
    /* a connection left inside a transaction must not leak it to the next user */
    if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    pthread_mutex_lock(&pool.lock);
    c->busy = false;
    pool.in_use--;
    pthread_cond_signal(&pool.cond);
    pthread_mutex_unlock(&pool.lock);
}

PGconn *
db_pg(struct db_conn *c)
{
    return c->pg;
}

static void
result_cleanup(void *p)
{
    PQclear(p);
}

bool
db_prepare(struct db_conn *c, const char *name, const char *sql, int n)
{
    PGresult *res;
    bool ok;

    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == name || !strcmp(c->prepared[i], name))
            return true;
    if (c->nprepared == PREPARED_MAX)
        return false;
    res = PQprepare(c->pg, name, sql, n, NULL);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (ok)
        c->prepared[c->nprepared++] = name;
    return ok;
}

/* e from a failed result: 503 when the session is lost, else 500 with
 * the SQLSTATE as the code (callers tell a unique violation from a bug). */
static void
exec_failed(struct db_conn *c, PGresult *res, struct gh_err *e)
{
    if (PQstatus(c->pg) != CONNECTION_OK) {
        gh_err_set(e, 503, "temporarily_unavailable", "the database is unavailable",
                   "query: connection lost");
        e->retry_after = 2;
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
        msg[strcspn(msg, "\n")] = '\0';
        gh_err_set(e, 500, state ? state : "server_error", "internal error", "query failed: %s", msg);
    }
}

static PGresult *
run_prepared(struct db_conn *c, const char *name, const char *sql, int n, const char *const *params)
{
    return db_prepare(c, name, sql, n) ? PQexecPrepared(c->pg, name, n, params, NULL, NULL, 0) : NULL;
}

static bool
result_ok(PGresult *res)
{
    return PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
}

PGresult *
db_exec_prepared(struct db_conn *c, struct gh_arena *a, struct gh_err *e, const char *name,
                 const char *sql, int n, const char *const *params)
{
    bool idle = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    PGresult *res = run_prepared(c, name, sql, n, params);

    /* a session lost with a restarted server: outside a transaction,
     * reconnect once and prepare on the new session, as db_execv retries */
    if (!result_ok(res) && idle && PQstatus(c->pg) != CONNECTION_OK) {
        PQclear(res);
        (void)db_reset(c);
        res = run_prepared(c, name, sql, n, params);
    }
    if (result_ok(res)) {
        if (a)
            gh_arena_defer(a, result_cleanup, res);
        return res;
    }
    if (res == NULL && PQstatus(c->pg) == CONNECTION_OK && idle)
        return db_execv(c, a, e, sql, n, params);     /* could not prepare: the text */
    exec_failed(c, res, e);
    PQclear(res);
    return NULL;
}

PGresult *
db_query_prepared(struct gh_arena *a, struct gh_err *e, const char *name, const char *sql, int n,
                  const char *const *params)
{
    struct db_conn *c = db_get(e);
    PGresult *res;

    if (c == NULL)
        return NULL;
    res = db_exec_prepared(c, a, e, name, sql, n, params);
    db_put(c);
    return res;
}

PGresult *
db_execv(struct db_conn *c, struct gh_arena *a, struct gh_err *e,
         const char *sql, int n, const char *const *params)
{
    bool idle = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    PGresult *res = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    /* A pooled connection that died with a restarted server fails on first
     * use; outside a transaction, reconnect once and retry so callers see
     * the restart only while the server is really down. */
    if (st == PGRES_FATAL_ERROR && idle && PQstatus(c->pg) != CONNECTION_OK) {
        PQclear(res);
        (void)db_reset(c);
        res = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
        st = PQresultStatus(res);
    }

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (a)
            gh_arena_defer(a, result_cleanup, res);
        return res;
    }
    exec_failed(c, res, e);
    PQclear(res);
    return NULL;
}

PGresult *
db_exec(struct db_conn *c, struct gh_arena *a, struct gh_err *e, const char *sql, int n, ...)
{
    const char *params[32];
    va_list ap;

    if (n > 32)
        return gh_err_set(e, 500, "server_error", "internal error", "too many params"), NULL;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        params[i] = va_arg(ap, const char *);
    va_end(ap);
    return db_execv(c, a, e, sql, n, params);
}

PGresult *
db_query(struct gh_arena *a, struct gh_err *e, const char *sql, int n, ...)
{
    const char *params[32];
    struct db_conn *c;
    PGresult *res;
    va_list ap;

    if (n > 32)
        return gh_err_set(e, 500, "server_error", "internal error", "too many params"), NULL;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        params[i] = va_arg(ap, const char *);
    va_end(ap);
    c = db_get(e);
    if (c == NULL)
        return NULL;
    res = db_execv(c, a, e, sql, n, params);
    db_put(c);
    return res;
}

int
db_begin(struct db_conn *c, struct gh_err *e)
{
    PGresult *r = PQexec(c->pg, "BEGIN");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

    PQclear(r);
    if (!ok) {
        gh_err_set(e, PQstatus(c->pg) == CONNECTION_OK ? 500 : 503, "server_error",
                   "internal error", "begin failed");
        e->retry_after = PQstatus(c->pg) == CONNECTION_OK ? 0 : 2;
        return -1;
    }
    return 0;
}

int
db_commit(struct db_conn *c, struct gh_err *e)
{
    PGresult *r = PQexec(c->pg, "COMMIT");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

    PQclear(r);
    if (!ok) {
        db_rollback(c);
        gh_err_set(e, PQstatus(c->pg) == CONNECTION_OK ? 500 : 503, "server_error",
                   "internal error", "commit failed");
        return -1;
    }
    return 0;
}

void
db_rollback(struct db_conn *c)
{
    PQclear(PQexec(c->pg, "ROLLBACK"));
}

const char *
db_val(PGresult *res, int row, int col)
{
    if (res == NULL || row >= PQntuples(res) || PQgetisnull(res, row, col))
        return NULL;
    return PQgetvalue(res, row, col);
}

long long
db_ll(PGresult *res, int row, int col, long long dflt)
{
    const char *v = db_val(res, row, col);

    return v ? strtoll(v, NULL, 10) : dflt;
}

bool
db_bool(PGresult *res, int row, int col)
{
    const char *v = db_val(res, row, col);

    return v && v[0] == 't';
}

bool
db_ready(void)
{
    struct gh_err e = {0};
    struct db_conn *c = db_get(&e);
    PGresult *r;
    bool ok;

    if (c == NULL)
        return false;
    r = PQexec(c->pg, "SELECT 1");
    ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    db_put(c);
    return ok;
}

void
db_pool_stats(long *size, long *in_use, long *waits)
{
    pthread_mutex_lock(&pool.lock);
    *size = pool.size;
    *in_use = pool.in_use;
    *waits = pool.waits;
    pthread_mutex_unlock(&pool.lock);
}
