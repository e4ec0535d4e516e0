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
 * administratively killed server would. */
static void
kill_backend(struct db_conn *c)
{
    struct gh_err e = {0};
    PGconn *other = db_connect_raw(&e);
    char pid[16];
    const char *params[1] = { pid };

    UNIT_TRUE(other != NULL);
    if (other == NULL)
        return;
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(db_pg(c)));
    PQclear(PQexecParams(other, "SELECT pg_terminate_backend($1::int)", 1, NULL, params, NULL, NULL, 0));
    PQfinish(other);
    /* let the terminated process go before c is used again */
    for (int i = 0; i < 100; i++) {
        PGresult *r = PQexec(db_pg(c), "SELECT 1");
        ExecStatusType st = PQresultStatus(r);

        PQclear(r);
        if (st != PGRES_TUPLES_OK)
            break;
        usleep(10000);
    }
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
    struct gh_err e = {0};
    struct db_conn *c = db_get(&e);
    char v[32];
    int before;

    UNIT_TRUE(c != NULL);
    if (c == NULL)
        return;
    before = PQbackendPID(db_pg(c));
    kill_backend(c);
    UNIT_TRUE(PQstatus(db_pg(c)) != CONNECTION_OK);
    UNIT_TRUE(db_reset(c));
    UNIT_TRUE(PQbackendPID(db_pg(c)) != before);
    show_timeout(c, v, sizeof(v));
    UNIT_EQ_STR(v, "30s");
    db_put(c);
}

static void
test_exec_retry_reapplies_settings(void)
{
    struct gh_err e = {0};
    struct db_conn *c = db_get(&e);
    char v[32];
    int before;

    UNIT_TRUE(c != NULL);
    if (c == NULL)
        return;
    before = PQbackendPID(db_pg(c));
    /* the server process ends while the connection is idle in the pool:
     * its next statement is retried once on a new connection */
    {
        struct gh_err e2 = {0};
        PGconn *other = db_connect_raw(&e2);
        char pid[16];
        const char *params[1] = { pid };

        UNIT_TRUE(other != NULL);
        if (other == NULL) {
            db_put(c);
            return;
        }
        snprintf(pid, sizeof(pid), "%d", before);
        PQclear(PQexecParams(other, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL, params, NULL,
                             NULL, 0));
        PQfinish(other);
    }
    show_timeout(c, v, sizeof(v));
    UNIT_EQ_STR(v, "30s");
    UNIT_TRUE(PQbackendPID(db_pg(c)) != before);
    db_put(c);
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
