/*
 * tests/unit/db/pool.c — the connection pool against a real PostgreSQL:
 * a connection whose server process died comes back with the session
 * settings every pooled connection has (statement_timeout), whether it is
 * reset by db_reset() itself or by db_execv()'s one retry.
 */
#include "tests/unit/unit_db.h"
#include "db/db_int.h"

/* SHOW statement_timeout on c, copied into out. */
static void
show_timeout(struct db_conn *c, char *out, size_t len)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    PGresult *res = db_exec(c, a, &e, "SHOW statement_timeout", 0);

    snprintf(out, len, "%s", res ? db_val(res, 0, 0) : "(error)");
    gh_arena_free(a);
}

/* Ends c's server process from another connection, as a restarted or
 * administratively killed server would; then, with wait, uses c until it
 * has seen the end (else the pool finds out at c's next statement). */
static void
kill_backend(struct db_conn *c, bool wait)
{
    struct gh_err e = {0};
    PGconn *other = db_connect_raw(&e);
    char pid[16];
    const char *params[1] = { pid };

    UNIT_TRUE(other != NULL);
    if (other == NULL)
        return;
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(db_pg(c)));
    /* returns once the process has ended (or after 5 s) */
    PQclear(PQexecParams(other, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL, params, NULL, NULL, 0));
    PQfinish(other);
    for (int i = 0; wait && i < 100; i++) {
        PGresult *r = PQexec(db_pg(c), "SELECT 1");
        ExecStatusType st = PQresultStatus(r);

        PQclear(r);
        if (st != PGRES_TUPLES_OK)
            break;
        usleep(10000);
    }
}

/* A pooled connection whose server process is killed comes back, through
 * reset() (db_reset, or db_execv's own retry when NULL), with the session
 * settings and another server process. */
static void
check_comes_back(bool (*reset)(struct db_conn *c))
{
    struct gh_err e = {0};
    struct db_conn *c = db_get(&e);
    char v[32];
    int before;

    UNIT_TRUE(c != NULL);
    if (c == NULL)
        return;
    before = PQbackendPID(db_pg(c));
    kill_backend(c, reset != NULL);
    if (reset) {
        UNIT_TRUE(PQstatus(db_pg(c)) != CONNECTION_OK);
        UNIT_TRUE(reset(c));
    }
    show_timeout(c, v, sizeof(v));
    UNIT_EQ_STR(v, "30s");
    UNIT_TRUE(PQbackendPID(db_pg(c)) != before);
    db_put(c);
}

static void
test_new_connection_has_settings(void)
{
    struct gh_err e = {0};
    struct db_conn *c = db_get(&e);
    char v[32];

    UNIT_TRUE(c != NULL);
    if (c == NULL)
        return;
    show_timeout(c, v, sizeof(v));
    UNIT_EQ_STR(v, "30s");
    db_put(c);
}

static void
test_reset_reapplies_settings(void)
{
    check_comes_back(db_reset);
}

/* the server process ends while the connection is idle in the pool: its
 * next statement is retried once on a new connection */
static void
test_exec_retry_reapplies_settings(void)
{
    check_comes_back(NULL);
}

int
main(void)
{
    if (unit_db_start("pool") < 0)
        return 1;
    UNIT_RUN(test_new_connection_has_settings);
    UNIT_RUN(test_reset_reapplies_settings);
    UNIT_RUN(test_exec_retry_reapplies_settings);
    return unit_db_stop();
}
