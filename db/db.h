/*
 * db/db.h — PostgreSQL through libpq: a reconnecting connection pool,
 * parameterized queries only, numbered migrations, LISTEN/NOTIFY, and the
 * embedded cluster the server runs when no database URL is configured.
 *
 * db/ may call core/ only.
 */
#ifndef GH_DB_H
#define GH_DB_H

#include "core/core.h"
#include <libpq-fe.h>

struct db_conn;

/* Starts the embedded cluster when gh_cfg.database_url is empty, opens the
 * pool.  Does not migrate. */
int  db_init(struct gh_err *e);
void db_shutdown(void);              /* closes the pool, stops the cluster */
const char *db_conninfo(void);

int  db_migrate(struct gh_err *e);   /* applies pending db/migrations/NNN_*.sql */
/* The server key against the database's key check (migration 031): the
 * first caller stores its value; a different key is refused (-1, a
 * one-line message naming the setting, never the key) and forgotten.
 * Called by the processes that seal or unseal: serve, connector add. */
int  db_server_key_check(struct gh_err *e);

/* Pool.  db_get waits briefly for a free connection and reconnects a broken
 * one; on failure e is 503 with Retry-After. */
struct db_conn *db_get(struct gh_err *e);
void db_put(struct db_conn *c);
PGconn *db_pg(struct db_conn *c);
/* Reconnects c (PQreset) and applies the session settings a new pooled
 * connection gets (statement_timeout): true when it is connected again.
 * Every reset of a pooled connection goes through here. */
bool db_reset(struct db_conn *c);

/* Parameterized statement; NULL params are SQL NULL.  Returns a result the
 * arena clears, or NULL with e set (503 when the server is unreachable). */
PGresult *db_execv(struct db_conn *c, struct gh_arena *a, struct gh_err *e,
                   const char *sql, int n, const char *const *params);
PGresult *db_exec(struct db_conn *c, struct gh_arena *a, struct gh_err *e,
                  const char *sql, int n, ...);
/* The same as a statement prepared under `name` (a static string) on c's
 * session, prepared before its first use there and again on every new
 * session: the hot path spends more time parsing and planning a statement
 * than running it.  Falls back to db_execv()'s handling on any failure. */
PGresult *db_exec_prepared(struct db_conn *c, struct gh_arena *a, struct gh_err *e, const char *name,
                           const char *sql, int n, const char *const *params);
/* Whether `name` is prepared on c's session, preparing it if not (false
 * when that fails: send the text), for callers that send it themselves
 * (PQsendQueryPrepared). */
bool db_prepare(struct db_conn *c, const char *name, const char *sql, int n);
/* One-shot: takes a pooled connection for one statement (prepared: as
 * db_exec_prepared, for the statements of a hot path). */
PGresult *db_query_prepared(struct gh_arena *a, struct gh_err *e, const char *name, const char *sql, int n,
                            const char *const *params);
PGresult *db_query(struct gh_arena *a, struct gh_err *e, const char *sql, int n, ...);

int db_begin(struct db_conn *c, struct gh_err *e);
int db_commit(struct db_conn *c, struct gh_err *e);
void db_rollback(struct db_conn *c);

/* Result helpers: NULL for SQL NULL. */
const char *db_val(PGresult *res, int row, int col);
long long   db_ll(PGresult *res, int row, int col, long long dflt);
bool        db_bool(PGresult *res, int row, int col);

/* LISTEN/NOTIFY across processes: callbacks run on the listener thread. */
typedef void (*db_notify_fn)(const char *channel, const char *payload, void *ctx);
int db_listen(const char *channel, db_notify_fn fn, void *ctx);
int db_notify(const char *channel, const char *payload, struct gh_err *e);
/* Runs fn on the listener thread after every (re)connect, before the
 * listener is live again: notifications sent meanwhile were missed. */
int db_listen_reconnect_hook(void (*fn)(void *ctx), void *ctx);
/* true while the listener is connected and LISTENs to every registered
 * channel, i.e. no notification can be missed.  Caches serve only then. */
bool db_listener_live(void);
/* A gh_cache (core/cache.c) that serves only while db_listener_live() and
 * is flushed by every NOTIFY on `channel` and every listener reconnect.
 * max_entries 0: a cache that is always off. */
struct gh_cache *db_cache_new(long max_entries, const char *channel);

bool db_ready(void);
void db_pool_stats(long *size, long *in_use, long *waits);

/* Embedded cluster, also used by the test harness through `gatehouse`. */
int  db_cluster_start(const char *data_dir, struct gh_err *e);
/* serve: own the cluster (start or adopt it, stop it at exit) or refuse a
 * data folder another gatehouse process holds; before db_init. */
void db_cluster_set_exclusive(bool exclusive);
/* serve has started: a cluster found running with no owner (a killed
 * process's) is now this process's to stop at exit. */
void db_cluster_take_over(void);
void db_cluster_stop(void);

#endif
