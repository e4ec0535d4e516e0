/* db/db_int.h — private to db/. */
#ifndef GH_DB_INT_H
#define GH_DB_INT_H

#include "db/db.h"

struct db_migration {
    int         version;
    const char *name;
    const char *sql;
};
extern const struct db_migration db_migrations[];
extern const int db_migrations_count;

int     db_pool_open(const char *conninfo, long size, struct gh_err *e);
void    db_pool_close(void);
PGconn *db_connect_raw(struct gh_err *e);
void    db_listener_stop(void);

#endif
