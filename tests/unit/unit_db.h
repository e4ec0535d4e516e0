/*
 * tests/unit/unit_db.h — a unit test that needs the database: the server's
 * own embedded PostgreSQL cluster in a throwaway data folder, migrated.
 *
 *     if (unit_db_start("audit") < 0) return 1;
 *     UNIT_RUN(...);
 *     return unit_db_stop();      (UNIT_DONE's result)
 *
 * Extra GATEHOUSE_* settings go in the environment before unit_db_start.
 */
#ifndef GH_UNIT_DB_H
#define GH_UNIT_DB_H

#include "tests/unit/unit.h"
#include "core/core.h"
#include "db/db.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char unit_db_dir[64];

static int
unit_db_start(const char *name)
{
    struct gh_err e = {0};

    snprintf(unit_db_dir, sizeof(unit_db_dir), "/tmp/gh-unit-%s-XXXXXX", name);
    if (mkdtemp(unit_db_dir) == NULL || chmod(unit_db_dir, 0755) < 0) {
        perror("mkdtemp");
        return -1;
    }
    setenv("GATEHOUSE_DATA_DIR", unit_db_dir, 1);
    setenv("GATEHOUSE_DATABASE_URL", "", 1);
    gh_log_init(GH_LOG_WARN);
    if (gh_config_load(NULL, &e) < 0 || gh_server_key_init(&e) < 0 || db_init(&e) < 0 ||
        db_migrate(&e) < 0) {
        fprintf(stderr, "setup: %s (%s)\n", e.msg, e.detail);
        db_shutdown();
        return -1;
    }
    return 0;
}

/* Stops the cluster, removes its folder, and returns UNIT_DONE(). */
static int
unit_db_stop(void)
{
    char cmd[128];
    int rc;

    db_shutdown();
    rc = UNIT_DONE();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", unit_db_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", unit_db_dir);
    return rc;
}

#endif
