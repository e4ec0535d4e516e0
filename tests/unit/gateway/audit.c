/*
 * tests/unit/gateway/audit.c — the audit log's group commit against a real
 * PostgreSQL (the embedded cluster in a temporary data folder).
 */
#include "tests/unit/unit_db.h"
#include "gateway/gw_int.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define THREADS 32
#define PER_THREAD 20

struct worker {
    int  id;
    int  written;        /* gw_audit_write returned 0 */
    int  visible;        /* ... and the row was then found in the table */
};

static const struct authz_credential WHO = {
    .kind = "pat",
    .token_id = "00000000-0000-4000-8000-0000000abcde",
    .user_id = "00000000-0000-4000-8000-000000000001",
    .user_email = "unit@example.test",
    .client_name = "unit PAT",
    .agent = { .id = "00000000-0000-4000-8000-000000000002", .slug = "unit", .name = "Unit" },
};

static long long
count_where(const char *sql, const char *param)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e, sql, param ? 1 : 0, param);
    long long n = res ? db_ll(res, 0, 0, -1) : -1;

    gh_arena_free(a);
    return n;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    for (int j = 0; j < PER_THREAD; j++) {
        char sid[32];
        struct gh_err e = {0};
        snprintf(sid, sizeof(sid), "w%d-%d", w->id, j);
        struct gw_audit row = {
            .who = &WHO, .session_id = sid, .method = "tools/call", .tool = "fx__echo",
            .connector = "fx", .decision = "allow", .message = "allow (no policy engine)",
            .upstream_status = 200, .duration_us = 1234,
        };
        if (gw_audit_write(&row, &e) == 0) {
            w->written++;
            /* returned, so the row must already be committed */
            if (count_where("SELECT count(*) FROM audit_events WHERE session_id = $1", sid) == 1)
                w->visible++;
        }
    }
    return NULL;
}

static void
test_group_commit(void)
{
    pthread_t t[THREADS];
    struct worker w[THREADS];
    long b0 = gw_audit_batches_total(), r0 = gw_audit_rows_total();
    int written = 0, visible = 0;

    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .id = i };
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        written += w[i].written;
        visible += w[i].visible;
    }
    UNIT_EQ_INT(written, THREADS * PER_THREAD);
    UNIT_EQ_INT(visible, THREADS * PER_THREAD);
    UNIT_EQ_INT(gw_audit_rows_total() - r0, THREADS * PER_THREAD);
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE session_id LIKE 'w%'", NULL),
                THREADS * PER_THREAD);
    /* group commit: fewer transactions than calls */
    fprintf(stderr, "%d rows in %ld batches\n", THREADS * PER_THREAD, gw_audit_batches_total() - b0);
    UNIT_TRUE(gw_audit_batches_total() - b0 < THREADS * PER_THREAD);
    UNIT_TRUE(gw_audit_batches_total() - b0 >= 1);
}

/* gw_audit_write_many: the rows of one JSON-RPC batch, queued together,
 * commit in one transaction and return once all are committed. */
static void
test_write_many(void)
{
    struct gw_audit rows[64];
    char sids[64][16];
    struct gh_err e = {0};
    long b0 = gw_audit_batches_total(), r0 = gw_audit_rows_total();

    for (int i = 0; i < 64; i++) {
        snprintf(sids[i], sizeof(sids[i]), "many-%d", i);
        rows[i] = (struct gw_audit){ .who = &WHO, .session_id = sids[i], .method = "ping", .decision = "allow",
                                     .message = "allow (no policy engine)", .request_id = "rid-many" };
    }
    UNIT_EQ_INT(gw_audit_write_many(rows, 64, &e), 0);
    /* returned, so every row is already committed: in one transaction, as
     * nothing else is queued here */
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE session_id LIKE 'many-%'", NULL), 64);
    UNIT_EQ_INT(gw_audit_rows_total() - r0, 64);
    UNIT_EQ_INT(gw_audit_batches_total() - b0, 1);
    UNIT_EQ_INT(gw_audit_write_many(rows, 0, &e), 0);
}

static void
test_fields_roundtrip(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    char longtool[3000];
    struct gw_audit row = {
        .who = &WHO, .session_id = "rt-1", .method = "tools/call", .tool = longtool,
        .connector = "c\\d", .decision = "deny", .policy_ids = "p1,p2", .policy_versions = "3,7",
        .message = "tab\there\nnewline \\ backslash caf\xc3\xa9 bad\xff byte",
        .request_id = "rid-42", .upstream_status = 0, .duration_us = 99,
    };
    PGresult *res;

    memset(longtool, 'x', sizeof(longtool) - 1);
    longtool[sizeof(longtool) - 1] = '\0';
    UNIT_EQ_INT(gw_audit_write(&row, &e), 0);
    res = db_query(a, &e, "SELECT message, connector, length(tool), key_suffix, user_id::text, agent_slug,"
                          " credential_kind, upstream_status IS NULL, duration_us, decision, policy_ids,"
                          " policy_versions, request_id, agent_id::text, client_id IS NULL,"
                          " at > now() - interval '1 minute' AND at <= now()"
                          " FROM audit_events WHERE session_id = 'rt-1'", 0);
    UNIT_TRUE(res != NULL && PQntuples(res) == 1);
    if (res && PQntuples(res) == 1) {
        UNIT_EQ_STR(db_val(res, 0, 0), "tab\there\nnewline \\ backslash caf\xc3\xa9 bad? byte");
        UNIT_EQ_STR(db_val(res, 0, 1), "c\\d");
        UNIT_EQ_INT(db_ll(res, 0, 2, 0), 1024);          /* cut, not refused */
        UNIT_EQ_STR(db_val(res, 0, 3), "0abcde");        /* the row id's end, not token material */
        UNIT_EQ_STR(db_val(res, 0, 4), WHO.user_id);
        UNIT_EQ_STR(db_val(res, 0, 5), "unit");
        UNIT_EQ_STR(db_val(res, 0, 6), "pat");
        UNIT_TRUE(db_bool(res, 0, 7));
        UNIT_EQ_INT(db_ll(res, 0, 8, 0), 99);
        UNIT_EQ_STR(db_val(res, 0, 9), "deny");
        UNIT_EQ_STR(db_val(res, 0, 10), "p1,p2");
        UNIT_EQ_STR(db_val(res, 0, 11), "3,7");
        UNIT_EQ_STR(db_val(res, 0, 12), "rid-42");
        UNIT_EQ_STR(db_val(res, 0, 13), WHO.agent.id);
        UNIT_TRUE(db_bool(res, 0, 14));
        UNIT_TRUE(db_bool(res, 0, 15));
    }
    /* the same row twice in one batch goes by COPY (one row alone by
     * INSERT): both store the same values */
    {
        struct gw_audit two[2] = { row, row };
        two[0].session_id = two[1].session_id = "rt-2";
        UNIT_EQ_INT(gw_audit_write_many(two, 2, &e), 0);
        UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events a JOIN audit_events b ON b.session_id = 'rt-1'"
                                " WHERE a.session_id = 'rt-2' AND a.message = b.message AND a.connector = b.connector"
                                " AND a.tool = b.tool AND a.key_suffix = b.key_suffix AND a.user_id = b.user_id"
                                " AND a.upstream_status IS NULL AND a.duration_us = b.duration_us"
                                " AND a.policy_versions = b.policy_versions AND a.client_id IS NULL", NULL), 2);
        UNIT_TRUE(gw_audit_batches_total() > 0);
    }
    gh_arena_free(a);
}

static void
test_bad_row_alone(void)
{
    /* a non-uuid agent id is stored as NULL rather than failing the batch */
    struct gh_err e = {0};
    struct gw_audit row = { .agent_id = "not-a-uuid", .method = "initialize", .session_id = "bad-1",
                            .decision = "allow" };

    UNIT_EQ_INT(gw_audit_write(&row, &e), 0);
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE session_id = $1 AND agent_id IS NULL",
                            "bad-1"), 1);
}

/* A row the database refuses (here: a trigger) fails alone; the rows
 * committed with it in the same batch are not lost. */
struct poison_arg {
    int i;
    int rc;
};

static void *
poison_main(void *arg)
{
    struct poison_arg *p = arg;
    struct gh_err e = {0};
    char sid[32];

    snprintf(sid, sizeof(sid), "p-%d", p->i);
    struct gw_audit row = { .who = &WHO, .session_id = sid, .method = "tools/call", .decision = "allow",
                            .message = p->i == 7 ? "poison" : "fine" };
    p->rc = gw_audit_write(&row, &e);
    return NULL;
}

static void
test_bad_row_fails_alone(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    struct poison_arg args[24];
    pthread_t t[24];
    int ok = 0;

    UNIT_TRUE(db_query(a, &e, "CREATE FUNCTION unit_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
                              " BEGIN IF NEW.message = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;"
                              " RETURN NEW; END $$", 0) != NULL);
    UNIT_TRUE(db_query(a, &e, "CREATE TRIGGER unit_poison BEFORE INSERT ON audit_events"
                              " FOR EACH ROW EXECUTE FUNCTION unit_poison()", 0) != NULL);
    for (int i = 0; i < 24; i++) {
        args[i] = (struct poison_arg){ .i = i };
        pthread_create(&t[i], NULL, poison_main, &args[i]);
    }
    for (int i = 0; i < 24; i++) {
        pthread_join(t[i], NULL);
        ok += args[i].rc == 0;
    }
    UNIT_EQ_INT(args[7].rc, -1);
    UNIT_EQ_INT(ok, 23);
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE session_id LIKE 'p-%'", NULL), 23);
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE session_id = 'p-7'", NULL), 0);
    UNIT_TRUE(db_query(a, &e, "DROP TRIGGER unit_poison ON audit_events", 0) != NULL);
    gh_arena_free(a);
}

/* ---- held rows and their spool files */

/* Rows whose message is in unit_refused are refused by a trigger. */
static void
refuse(const char *message, bool on)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};

    UNIT_TRUE(db_query(a, &e, on ? "INSERT INTO unit_refused VALUES ($1)" : "DELETE FROM unit_refused WHERE m = $1",
                       1, message) != NULL);
    gh_arena_free(a);
}

/* A row of a call the upstream had (so held when it fails). */
static int
write_acted(const char *rid, const char *message)
{
    struct gh_err e = {0};
    struct gw_audit row = { .who = &WHO, .session_id = "held", .method = "tools/call", .tool = "fx__echo",
                            .connector = "fx", .decision = "allow", .message = message, .request_id = rid,
                            .upstream_status = 200, .acted = true };

    return gw_audit_write(&row, &e);
}

/* This process's spool files (but `except`) holding `needle`; -1 when
 * there are spool files of ours that do not hold it. */
static int
spool_files_with(const char *needle, const char *except)
{
    char prefix[64], path[512], text[8192];
    DIR *d = opendir(unit_db_dir);
    struct dirent *de;
    int n = 0;

    snprintf(prefix, sizeof(prefix), "audit-held-%ld-", (long)getpid());
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) || (except && strcmp(de->d_name, except) == 0))
            continue;
        snprintf(path, sizeof(path), "%s/%s", unit_db_dir, de->d_name);
        FILE *f = fopen(path, "r");
        size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
        if (f)
            fclose(f);
        text[len] = '\0';
        n = n < 0 ? n : strstr(text, needle) ? n + 1 : -1;
    }
    if (d)
        closedir(d);
    return n;
}

static bool
eventually_count(const char *sql, const char *param, long long want)
{
    for (int i = 0; i < 150; i++) {
        if (count_where(sql, param) == want)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

static void
test_held_setup(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};

    UNIT_TRUE(db_query(a, &e, "CREATE TABLE unit_refused (m text)", 0) != NULL);
    UNIT_TRUE(db_query(a, &e, "CREATE FUNCTION unit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
                              " BEGIN IF EXISTS (SELECT 1 FROM unit_refused WHERE m = NEW.message) THEN"
                              " RAISE EXCEPTION 'refused row (test)'; END IF; RETURN NEW; END $$", 0) != NULL);
    UNIT_TRUE(db_query(a, &e, "CREATE TRIGGER unit_refuse BEFORE INSERT ON audit_events"
                              " FOR EACH ROW EXECUTE FUNCTION unit_refuse()", 0) != NULL);
    gh_arena_free(a);
}

/* A file an earlier process with the same pid left (a container's pid is
 * the same at every start), here a damaged one left in place, takes the
 * spool's first name: the held row goes to the next name, not to memory
 * only. */
static void
test_spool_name_taken(void)
{
    char damaged[512], name[64];
    int fd;

    snprintf(name, sizeof(name), "audit-held-%ld-0.rows", (long)getpid());
    snprintf(damaged, sizeof(damaged), "%s/%s", unit_db_dir, name);
    fd = open(damaged, O_WRONLY | O_CREAT | O_EXCL, 0600);
    UNIT_TRUE(fd >= 0 && write(fd, "not\ta\trow\n", 10) == 10);
    close(fd);

    refuse("spool-1", true);
    UNIT_EQ_INT(write_acted("rid-spool-1", "spool-1"), -1);
    /* synced in a file of its own before gw_audit_write returned */
    UNIT_EQ_INT(spool_files_with("\trid-spool-1\ttools/call\tfx__echo\t", name), 1);
    refuse("spool-1", false);
    UNIT_TRUE(eventually_count("SELECT count(*) FROM audit_events WHERE request_id = $1", "rid-spool-1", 1));
    for (int i = 0; i < 50 && spool_files_with("", name) != 0; i++)
        usleep(100 * 1000);
    UNIT_EQ_INT(spool_files_with("", name), 0);    /* written: its file removed, the damaged one left */
    UNIT_TRUE(access(damaged, F_OK) == 0);
    unlink(damaged);
}

/* One held row the database refuses every time does not hold back the
 * others: once the log takes rows again, the held rows are merged one by
 * one, the refused one is reported lost and dropped, the spool removed.
 * While the log takes no rows at all, nothing held is dropped. */
static void
test_held_refused(void)
{
    char logpath[] = "/tmp/gh-unit-audit-log-XXXXXX", text[65536];
    int logfd = mkstemp(logpath), saved = dup(2);
    struct gh_err e = {0};
    struct gw_audit fine = { .who = &WHO, .session_id = "fine", .method = "ping", .decision = "allow" };
    FILE *f;
    size_t len;

    UNIT_TRUE(logfd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(logfd, 2);
    refuse("poison-held", true);
    refuse("temp-held", true);
    UNIT_EQ_INT(write_acted("rid-poison", "poison-held"), -1);
    UNIT_EQ_INT(write_acted("rid-temp", "temp-held"), -1);
    UNIT_EQ_INT(spool_files_with("\trid-poison\t", NULL), 1);
    UNIT_EQ_INT(spool_files_with("\trid-temp\t", NULL), 1);
    usleep(2500 * 1000);                /* a retry on the timer: the log took no row since, none dropped */
    UNIT_EQ_INT(spool_files_with("\trid-poison\t", NULL), 1);
    UNIT_EQ_INT(spool_files_with("\trid-temp\t", NULL), 1);

    refuse("temp-held", false);
    UNIT_EQ_INT(gw_audit_write(&fine, &e), 0);     /* the log takes rows: the held ones are retried */
    UNIT_TRUE(eventually_count("SELECT count(*) FROM audit_events WHERE request_id = $1", "rid-temp", 1));
    for (int i = 0; i < 50 && spool_files_with("", NULL) != 0; i++)
        usleep(100 * 1000);
    UNIT_EQ_INT(spool_files_with("", NULL), 0);
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE request_id = $1", "rid-poison"), 0);
    refuse("poison-held", false);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    f = fopen(logpath, "r");
    len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    text[len] = '\0';
    if (f)
        fclose(f);
    fputs(text, stderr);
    UNIT_TRUE(strstr(text, "held audit row of request rid-poison (tools/call fx__echo, connector fx) lost") != NULL);
    UNIT_TRUE(strstr(text, "held audit row of request rid-temp") == NULL);
    close(logfd);
    unlink(logpath);
    /* later held rows are not dropped with it */
    refuse("later-held", true);
    UNIT_EQ_INT(write_acted("rid-later", "later-held"), -1);
    refuse("later-held", false);
    UNIT_TRUE(eventually_count("SELECT count(*) FROM audit_events WHERE request_id = $1", "rid-later", 1));
}

/* ---- write-ahead rows and their outcomes */

/* A write-ahead row of call `id` (request rid), as forward() writes it. */
static struct gw_audit
ahead_row(const char *id, const char *rid, const char *message)
{
    return (struct gw_audit){ .who = &WHO, .session_id = "ahead", .method = "tools/call", .tool = "fx__gate",
                              .connector = "fx", .decision = "allow", .message = message, .request_id = rid,
                              .call_id = id, .duration_us = -1 };
}

/* Its outcome, as fwd_conclude() queues it. */
static struct gw_audit
outcome_of(struct gw_audit row, int status, long long us, const char *error)
{
    row.outcome = row.acted = true;
    row.upstream_status = status;
    row.duration_us = us;
    row.upstream_error = error;
    return row;
}

static const char *
field(struct gh_arena *a, const char *sql, const char *param)
{
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e, sql, 1, param);

    return res && PQntuples(res) == 1 ? db_val(res, 0, 0) : "(none)";
}

#define OUTCOME_OF "SELECT coalesce(upstream_status::text, '-') || '|' || coalesce(duration_us::text, '-') || '|'" \
                   " || coalesce(upstream_error, '-') || '|' || (outcome_at IS NOT NULL) FROM audit_events WHERE call_id = $1"

/* The row comes first, without an outcome; the outcome completes that row
 * (no second row), once: a later outcome of the same call changes nothing.
 * New rows and outcomes queued together are written together. */
static void
test_write_ahead(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    char id[GW_AUDIT_CALL_ID_LEN + 1], id2[GW_AUDIT_CALL_ID_LEN + 1];
    struct gw_audit row, two[2];

    UNIT_EQ_INT(gw_audit_call_id(id), 0);
    UNIT_EQ_INT(gw_audit_call_id(id2), 0);
    UNIT_EQ_INT((int)strlen(id), GW_AUDIT_CALL_ID_LEN);
    UNIT_TRUE(strcmp(id, id2) != 0);
    row = ahead_row(id, "rid-ahead", "allow (no policy engine)");
    UNIT_EQ_INT(gw_audit_write(&row, &e), 0);
    UNIT_EQ_STR(field(a, OUTCOME_OF, id), "-|-|-|false");

    two[0] = outcome_of(row, 200, 4321, "upstream said: bad\xff byte");
    two[1] = ahead_row(id2, "rid-ahead-2", "allow (no policy engine)");
    UNIT_EQ_INT(gw_audit_write_many(two, 2, &e), 0);
    UNIT_EQ_STR(field(a, OUTCOME_OF, id), "200|4321|upstream said: bad? byte|true");
    UNIT_EQ_STR(field(a, OUTCOME_OF, id2), "-|-|-|false");
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE request_id = $1", "rid-ahead"), 1);

    row = outcome_of(row, 502, 1, "late");
    UNIT_EQ_INT(gw_audit_write(&row, &e), 0);
    UNIT_EQ_STR(field(a, OUTCOME_OF, id), "200|4321|upstream said: bad? byte|true");
    /* a timed-out call: no status, an error */
    row = outcome_of(two[1], 0, 1500000, "Upstream 'fx' timed out.");
    UNIT_EQ_INT(gw_audit_write(&row, &e), 0);
    UNIT_EQ_STR(field(a, OUTCOME_OF, id2), "-|1500000|Upstream 'fx' timed out.|true");
    gh_arena_free(a);
}

/* An outcome that cannot be committed is held (spooled with its call id)
 * and completes its row once the log takes it: one row, with the outcome. */
static void
test_held_outcome(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    char id[GW_AUDIT_CALL_ID_LEN + 1], needle[128];
    struct gw_audit row, out;

    UNIT_TRUE(db_query(a, &e, "CREATE TRIGGER unit_refuse_update BEFORE UPDATE ON audit_events"
                              " FOR EACH ROW EXECUTE FUNCTION unit_refuse()", 0) != NULL);
    UNIT_EQ_INT(gw_audit_call_id(id), 0);
    row = ahead_row(id, "rid-held-outcome", "held-outcome");
    UNIT_EQ_INT(gw_audit_write(&row, &e), 0);
    refuse("held-outcome", true);
    out = outcome_of(row, 200, 77, NULL);
    UNIT_EQ_INT(gw_audit_write(&out, &e), -1);
    snprintf(needle, sizeof(needle), "\t%s\t", id);
    UNIT_EQ_INT(spool_files_with(needle, NULL), 1);
    UNIT_EQ_STR(field(a, OUTCOME_OF, id), "-|-|-|false");
    refuse("held-outcome", false);
    UNIT_TRUE(eventually_count("SELECT count(*) FROM audit_events WHERE call_id = $1 AND outcome_at IS NOT NULL", id, 1));
    UNIT_EQ_STR(field(a, OUTCOME_OF, id), "200|77|-|true");
    UNIT_EQ_INT(count_where("SELECT count(*) FROM audit_events WHERE request_id = $1", "rid-held-outcome"), 1);
    gh_arena_free(a);
}

/* A spool file of a build before write-ahead (20 columns a line) or
 * before the shadow outcome (23) is taken up by the next start, its rows
 * written with the new columns NULL. */
static void
test_spool_before_write_ahead(void)
{
    struct gh_err e = {0};
    char path[512];
    FILE *f;

    gw_audit_stop();
    snprintf(path, sizeof(path), "%s/audit-held-1-77.rows", unit_db_dir);
    f = fopen(path, "w");
    UNIT_TRUE(f != NULL);
    if (f) {
        fputs("2026-01-02 03:04:05.000006+00\t\\N\tunit\t\\N\tv1@example.test\tpat\tabcdef\t\\N\tv1\t"
              "v1-session\trid-v1\ttools/call\tfx__echo\tfx\tallow\t\\N\t\\N\tallow (no policy engine)\t200\t5\n", f);
        fputs("2026-01-02 03:04:06.000006+00\t\\N\tunit\t\\N\tv2@example.test\tpat\tabcdef\t\\N\tv2\t"
              "v2-session\trid-v2\ttools/call\tfx__echo\tfx\tallow\t\\N\t\\N\tallowed by policy\t200\t5\t"
              "\\N\t\\N\t\\N\n", f);
        fclose(f);
    }
    UNIT_EQ_INT(gw_audit_start(&e), 0);
    UNIT_TRUE(eventually_count("SELECT count(*) FROM audit_events WHERE request_id = $1 AND call_id IS NULL"
                               " AND outcome_at IS NULL AND upstream_status = 200", "rid-v1", 1));
    UNIT_TRUE(eventually_count("SELECT count(*) FROM audit_events WHERE request_id = $1 AND policy_shadow IS NULL"
                               " AND message = 'allowed by policy'", "rid-v2", 1));
    for (int i = 0; i < 50 && access(path, F_OK) == 0; i++)
        usleep(100 * 1000);
    UNIT_TRUE(access(path, F_OK) != 0);     /* written: removed */
}

static void
test_database_down(void)
{
    struct gh_err e = {0};
    struct gw_audit row = { .who = &WHO, .method = "tools/list", .session_id = "down-1", .decision = "allow" };

    db_cluster_stop();
    UNIT_EQ_INT(gw_audit_write(&row, &e), -1);
    UNIT_EQ_INT(e.status, 503);
    UNIT_TRUE(strstr(e.msg, "audit") != NULL);
}

static void
test_after_stop(void)
{
    struct gh_err e = {0};
    struct gw_audit row = { .method = "tools/list", .decision = "allow" };

    gw_audit_stop();
    UNIT_EQ_INT(gw_audit_write(&row, &e), -1);
    UNIT_EQ_INT(e.status, 503);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_audit_write_many(&row, 1, &e), -1);
    UNIT_EQ_INT(e.status, 503);
}

int
main(void)
{
    struct gh_err e = {0};

    setenv("GATEHOUSE_DB_POOL_SIZE", "40", 1);
    if (unit_db_start("audit") < 0)
        return 1;
    if (gw_audit_start(&e) < 0) {
        fprintf(stderr, "setup: %s (%s)\n", e.msg, e.detail);
        db_shutdown();
        return 1;
    }
    UNIT_RUN(test_group_commit);
    UNIT_RUN(test_write_many);
    UNIT_RUN(test_fields_roundtrip);
    UNIT_RUN(test_bad_row_alone);
    UNIT_RUN(test_bad_row_fails_alone);
    UNIT_RUN(test_held_setup);
    UNIT_RUN(test_spool_name_taken);
    UNIT_RUN(test_held_refused);
    UNIT_RUN(test_write_ahead);
    UNIT_RUN(test_held_outcome);
    UNIT_RUN(test_spool_before_write_ahead);
    UNIT_RUN(test_database_down);
    UNIT_RUN(test_after_stop);
    return unit_db_stop();
}
