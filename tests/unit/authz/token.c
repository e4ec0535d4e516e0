/*
 * tests/unit/authz/token.c — last-used times coalesced in memory and
 * flushed in one statement per table, against a real PostgreSQL.
 */
#include "tests/unit/unit_db.h"
#include "authz/authz_int.h"
#include <stdlib.h>

#define GRANTS 3000
#define PATS 600
#define STR_(x) #x
#define STR(x) STR_(x)

static long long
count(const char *sql)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e, sql, 0);
    long long n = res ? db_ll(res, 0, 0, -1) : -1;

    if (res == NULL)
        fprintf(stderr, "%s: %s\n", sql, e.detail);
    gh_arena_free(a);
    return n;
}

static bool
exec(const char *sql)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    bool ok = db_query(a, &e, sql, 0) != NULL;

    if (!ok)
        fprintf(stderr, "%s: %s\n", sql, e.detail);
    gh_arena_free(a);
    return ok;
}

/* Every id of a query touched (twice, far apart: the second pass must find
 * the first pass's entry, not take a second slot). */
static int
touch_all(char kind, const char *sql, int passes)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e, sql, 0);
    int n = res ? PQntuples(res) : -1;

    for (int p = 0; p < passes; p++)
        for (int i = 0; i < n; i++)
            authz_touch(kind, db_val(res, i, 0));
    gh_arena_free(a);
    return n;
}

/* Thousands of distinct credentials in one flush window: every last-used
 * time lands, the memory the flush needs is linear, nothing is lost to a
 * duplicate taking a slot. */
static void
test_many_credentials_one_window(void)
{
    UNIT_TRUE(exec("INSERT INTO oauth_clients (client_id, kind, metadata, auth_method)"
                   " VALUES ('unit-client', 'dcr', '{}', 'none')"));
    UNIT_TRUE(exec("INSERT INTO users (email) SELECT 'u' || i || '@example.test'"
                   " FROM generate_series(1, " STR(GRANTS) ") i"));
    UNIT_TRUE(exec("INSERT INTO oauth_grants (user_id, client_id, agent_id, scope)"
                   " SELECT u.id, 'unit-client', (SELECT id FROM agents WHERE slug = 'default'), 'mcp'"
                   " FROM users u"));
    UNIT_TRUE(exec("INSERT INTO pats (user_id, agent_id, name, prefix, token_hash)"
                   " SELECT u.id, (SELECT id FROM agents WHERE slug = 'default'), 'unit', 'gth_pat_x', u.id::text"
                   " FROM users u LIMIT " STR(PATS)));
    UNIT_EQ_INT(touch_all('g', "SELECT id FROM oauth_grants", 2), GRANTS);
    UNIT_EQ_INT(touch_all('p', "SELECT id FROM pats", 2), PATS);
    authz_shutdown();                 /* no flusher thread here: flushes what is pending */
    UNIT_EQ_INT(count("SELECT count(*) FROM oauth_grants WHERE last_used_at > now() - interval '1 hour'"),
                GRANTS);
    UNIT_EQ_INT(count("SELECT count(*) FROM pats WHERE last_used_at > now() - interval '1 hour'"), PATS);
}

/* A later flush never moves a time backwards, and ids that are not uuids
 * (they would go into an array literal) are ignored. */
static void
test_flush_keeps_newest(void)
{
    UNIT_TRUE(exec("UPDATE oauth_grants SET last_used_at = now() + interval '1 day'"));
    authz_touch('g', "not,a\"uuid");
    UNIT_EQ_INT(touch_all('g', "SELECT id FROM oauth_grants LIMIT 10", 1), 10);
    authz_shutdown();
    UNIT_EQ_INT(count("SELECT count(*) FROM oauth_grants WHERE last_used_at > now() + interval '1 hour'"),
                GRANTS);
}

int
main(void)
{
    if (unit_db_start("token") < 0)
        return 1;
    UNIT_RUN(test_many_credentials_one_window);
    UNIT_RUN(test_flush_keeps_newest);
    return unit_db_stop();
}
