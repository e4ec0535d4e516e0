/*
 * db/migrate.c — numbered migrations, each in its own transaction and
 * recorded in schema_migrations.  An advisory lock makes concurrent
 * starts of several processes safe.
 */
#include "db/db_int.h"
#include <stdio.h>

#define MIGRATE_LOCK_KEY "7244871"

static const char SQL_VERSION_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

int
db_migrate(struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct db_conn *c = db_get(e);
    PGresult *res;
    int rc = -1, applied = 0;

    if (c == NULL || a == NULL)
        goto out;
    if (!db_exec(c, a, e, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0) ||
        !db_exec(c, a, e, SQL_VERSION_TABLE, 0))
        goto out;
    for (int i = 0; i < db_migrations_count; i++) {
        const struct db_migration *m = &db_migrations[i];
        char ver[16];
        PGresult *r;

        snprintf(ver, sizeof(ver), "%d", m->version);
        res = db_exec(c, a, e, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, ver);
        if (res == NULL)
            goto out;
        if (PQntuples(res) > 0)
            continue;
        if (db_begin(c, e) < 0)
            goto out;
        /* a migration file may hold several statements: simple protocol */
        r = PQexec(db_pg(c), m->sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            gh_err_set(e, 500, "server_error", "a database migration failed",
                       "migration %s: %s", m->name, PQresultErrorMessage(r));
            PQclear(r);
            db_rollback(c);
            goto out;
        }
        PQclear(r);
        if (!db_exec(c, a, e, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                     2, ver, m->name) ||
            db_commit(c, e) < 0) {
            db_rollback(c);
            goto out;
        }
        GH_LOG(INFO, "db_migrate", "applied migration %s", m->name);
        applied++;
    }
    GH_LOG(INFO, "db_migrate", "schema up to date (%d applied)", applied);
    rc = applied;
out:
    if (c) {
        PQclear(PQexec(db_pg(c), "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
        db_put(c);
    }
    gh_arena_free(a);
    return rc;
}
