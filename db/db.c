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

void
db_shutdown(void)
{
    db_listener_stop();
    db_pool_close();
    db_cluster_stop();
}
