/* db/db.c — start-up and shut-down of the database layer. */
#include "db/db_int.h"
#include <stdio.h>
#include <string.h>

const char *db_cluster_socket_dir(void);

int
db_init(struct gh_err *e)
{
    char conninfo[1024];
    PGconn *probe;

    if (gh_cfg.database_url[0]) {
        if (db_pool_open(gh_cfg.database_url, gh_cfg.db_pool_size, e) < 0)
            return -1;
        return 0;
    }
    if (db_cluster_start(gh_cfg.data_dir, e) < 0)
        return -1;
    snprintf(conninfo, sizeof(conninfo), "host=%s user=gatehouse dbname=postgres",
             db_cluster_socket_dir());
    /* first start: create the application database */
    probe = PQconnectdb(conninfo);
    if (PQstatus(probe) == CONNECTION_OK) {
        PGresult *r = PQexec(probe, "SELECT 1 FROM pg_database WHERE datname = 'gatehouse'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0)
            PQclear(PQexec(probe, "CREATE DATABASE gatehouse"));
        PQclear(r);
    }
    PQfinish(probe);
    snprintf(conninfo, sizeof(conninfo), "host=%s user=gatehouse dbname=gatehouse",
             db_cluster_socket_dir());
    return db_pool_open(conninfo, gh_cfg.db_pool_size, e);
}

static const char SQL_KEY_CHECK_STORE[] =
    "INSERT INTO server_key_check (check_value) VALUES ($1) ON CONFLICT (id) DO NOTHING";
static const char SQL_KEY_CHECK_GET[] = "SELECT check_value FROM server_key_check";

int
db_server_key_check(struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    char mine[65];
    PGresult *res;
    int rc = -1;

    if (a == NULL || gh_server_key_check_value(mine) < 0) {
        gh_err_set(e, 500, "server_error", "the server key is not loaded", NULL);
        goto out;
    }
    /* the first process on this database sets the check; later ones compare */
    if (db_query(a, e, SQL_KEY_CHECK_STORE, 1, mine) == NULL ||
        (res = db_query(a, e, SQL_KEY_CHECK_GET, 0)) == NULL)
        goto out;
    if (PQntuples(res) != 1 || !gh_ct_streq(db_val(res, 0, 0), mine)) {
        gh_err_set(e, 500, "config", "", "server key check mismatch");
        snprintf(e->msg, sizeof(e->msg),
                 "the server key from %s is not the key this database's secrets are sealed with;"
                 " set GATEHOUSE_SERVER_KEY to that key", gh_server_key_origin());
        gh_server_key_forget();
        goto out;
    }
    rc = 0;
out:
    gh_wipe(mine, sizeof(mine));
    gh_arena_free(a);
    return rc;
}

void
db_shutdown(void)
{
    db_listener_stop();
    db_pool_close();
    db_cluster_stop();
}
