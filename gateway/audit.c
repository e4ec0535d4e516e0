/*
 * gateway/audit.c — the audit log with group commit.
 *
 * A request thread queues its row (a node on its own stack: no allocation)
 * and sleeps until the writer thread has committed the batch holding it.
 * The writer takes everything queued, up to BATCH_MAX rows, and writes them
 * with one COPY — one statement, one transaction — then wakes the waiters;
 * a batch of one row (an idle server's every call) is one INSERT instead,
 * one round trip to PostgreSQL where a COPY takes two.
 * Under load the batches grow by themselves: while one commits, the next
 * one queues.  If a batch fails on bad data (the connection still up), its
 * rows are retried one by one so one odd row cannot fail its neighbours;
 * if the database is gone, every waiter of the batch gets a 503 and its
 * caller answers with that instead of a response without an audit row.
 *
 * A failed row of a request the upstream already has (gw_audit.acted: a
 * forwarded call the gateway cannot take back) is also *held*: its COPY
 * line, with its own time, waits in memory (at most HELD_MAX bytes) and is
 * written once the log takes rows again (retried every HELD_RETRY_MS), so
 * the log misses no call that happened.  If the connection broke just as
 * such a batch committed, its rows are in the log already: the retry goes
 * through the staging table audit_events_held and inserts only the rows
 * the log lacks, so none is written twice.  Each held row is also appended, and synced
 * before the replies go, to this process's spool file in the data folder:
 * rows still held when the process ends — at shutdown or in a crash — are
 * taken up by the next process that starts on that folder, through the
 * same retry.  A row that does not fit in memory is reported in the log.
 * The retry waits (advisory lock) for audit commits still under way, so a
 * batch whose connection broke mid-commit is not written twice; a held row
 * the database refuses on its own is reported and dropped rather than
 * blocking the others for good.
 *
 * Write-ahead: a forwarded call's row is committed (gw_audit_write, group
 * commit) before the call goes upstream, with a call id and no outcome; a
 * call that cannot get its row is not forwarded.  Its outcome comes later
 * as a row of its own (gw_audit.outcome) that the writer turns into an
 * UPDATE of that row by call id: a batch's new rows in one INSERT or COPY,
 * its outcomes in one UPDATE from a JSON array.  An outcome that cannot be
 * committed is held like any acted row: its line carries the whole row,
 * and the merge completes the row it names (or inserts it, should it be
 * missing) without touching an outcome already there.
 */
#include "gateway/gw_int.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX   512
#define FIELD_MAX   1024        /* bytes per text field; longer values are cut */
#define MESSAGE_MAX 2048
#define HELD_MAX    ((size_t)8 << 20)
#define NCOLS       24          /* audit_events columns written */
#define NCOLS_V1    20          /* spool lines of builds before write-ahead (migration 060) */
#define NCOLS_V2    23          /* spool lines of builds before the shadow outcome (migration 071) */
#define HELD_RETRY_MS 2000

#define COLS "at, agent_id, agent_slug, user_id, user_email, credential_kind, key_suffix, client_id," \
             " client_name, session_id, request_id, method, tool, connector, decision, policy_ids," \
             " policy_versions, message, upstream_status, duration_us, call_id, outcome_at, upstream_error," \
             " policy_shadow"
static const char INSERT_SQL[] =
    "INSERT INTO audit_events (" COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,"
    " $21, $22, $23, $24)";
static const char COPY_SQL[] = "COPY audit_events (" COLS ") FROM STDIN";
/* Held rows go through the staging table audit_events_held (migration
 * 032: no TEMP privilege needed) and are inserted unless the log has them
 * already: the batch that failed may have committed just as its connection
 * broke.  A row is known by its time (microseconds), request id, method,
 * tool and connector; rows of one batch commit together, so either all of
 * a held batch's rows are there or none.  The staging rows are deleted in
 * the same transaction, which the advisory lock keeps to one at a time. */
/* The advisory lock also waits for every audit INSERT or COPY still
 * committing: each takes it shared until its commit ends (migration 032's
 * statement trigger), so a batch whose connection broke while its backend
 * was still committing — and it may yet commit — is seen committed, or
 * not at all, before NOT EXISTS looks.  A backend that is stuck only
 * delays the merge: after lock_timeout it fails and is retried later. */
static const char HELD_BEGIN_SQL[] =
    "BEGIN; SET LOCAL lock_timeout = '2s';"
    " SELECT pg_advisory_xact_lock(7140365317)";   /* one merge at a time, across processes */
static const char HELD_COPY_SQL[] = "COPY audit_events_held (" COLS ") FROM STDIN";
/* A held outcome (a call id) completes its write-ahead row, unless an
 * outcome is there already (its own commit went through after all);
 * the same call id twice (a spool left twice on disk) counts once. */
static const char HELD_MERGE_SQL[] =
    "INSERT INTO audit_events (" COLS ") SELECT " COLS
    " FROM (SELECT DISTINCT ON (coalesce(call_id, ctid::text)) * FROM audit_events_held) h"
    " WHERE h.call_id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.at = h.at"
    "   AND a.request_id IS NOT DISTINCT FROM h.request_id AND a.method IS NOT DISTINCT FROM h.method"
    "   AND a.tool IS NOT DISTINCT FROM h.tool AND a.connector IS NOT DISTINCT FROM h.connector)"
    " ON CONFLICT (call_id) WHERE call_id IS NOT NULL DO UPDATE SET"
    "   upstream_status = EXCLUDED.upstream_status, duration_us = EXCLUDED.duration_us,"
    "   upstream_error = EXCLUDED.upstream_error, outcome_at = EXCLUDED.outcome_at"
    " WHERE audit_events.outcome_at IS NULL";
/* A batch's outcomes: one statement completes every write-ahead row they
 * name (an outcome already there stays as it is). */
static const char OUTCOME_SQL[] =
    "UPDATE audit_events a SET upstream_status = v.upstream_status, duration_us = v.duration_us,"
    " upstream_error = v.upstream_error, outcome_at = v.outcome_at"
    " FROM json_to_recordset($1::json) AS v(call_id text, upstream_status integer, duration_us bigint,"
    " upstream_error text, outcome_at timestamptz)"
    " WHERE a.call_id = v.call_id AND a.outcome_at IS NULL";
static const char HELD_CLEAR_SQL[] = "DELETE FROM audit_events_held";

struct pending {
    const struct gw_audit *row;
    const char     *request_id;
    int64_t         at_us;      /* wall clock when queued */
    struct pending *next;
    int             state;      /* 0 queued, 1 committed, -1 failed */
    gw_audit_done_fn done;      /* gw_audit_submit: called, then the node freed */
    void           *ctx;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  work;       /* the writer waits here */
    pthread_cond_t  done;       /* the request threads wait here */
    struct pending *head, **tail;
    bool            running, stopping;
    pthread_t       thread;
    char           *buf;        /* the writer's COPY buffer, reused */
    size_t          len, cap;
    /* one-row batches: put_row writes each value NUL-terminated and notes
     * where it starts (-1: NULL) for an INSERT's parameters instead */
    bool            as_params;
    long            param_off[NCOLS];
    int             nparams;
} q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .tail = &q.head,
};

/* held rows (writer thread only) */
#define SPOOL_FILES_MAX 32
static struct {
    char  *buf;
    size_t len, cap;
    int    rows;
    int    fd;                  /* this process's spool file, -1 while none */
    char   path[4096];
    bool   unsynced;
    bool   spool_broken;        /* a write or sync failed: rows held since are in memory
                                 * only (until every held row is written) */
    bool   log_takes;           /* the last batch of new rows committed */
    struct spooled {            /* earlier processes' files taken up, locked */
        int   fd;
        char *path;
    } taken[SPOOL_FILES_MAX];
    int    ntaken;
} held = { .fd = -1 };

static atomic_long n_batches, n_rows;

/* SQLSTATE of the last statement that failed (writer thread only; "" when
 * there was none, e.g. the connection failed) */
static char err_state[6];

static void
note_error(const PGresult *res)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    snprintf(err_state, sizeof(err_state), "%s", st ? st : "");
}

long
gw_audit_batches_total(void)
{
    return atomic_load(&n_batches);
}

long
gw_audit_rows_total(void)
{
    return atomic_load(&n_rows);
}

/* ---- the COPY text format */

/* Room for `need` bytes in a growing buffer (doubling from `first`). */
static bool
buf_room(char **buf, size_t *cap, size_t need, size_t first)
{
    size_t nc = *cap ? *cap : first;
    char *p;

    if (need <= *cap)
        return true;
    while (nc < need)
        nc *= 2;
    if ((p = realloc(*buf, nc)) == NULL)
        return false;
    *buf = p;
    *cap = nc;
    return true;
}

static bool
reserve(size_t more)
{
    return buf_room(&q.buf, &q.cap, q.len + more, 64 * 1024);
}

/* Length of the valid UTF-8 sequence at s, 0 when invalid. */
static size_t
utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xe0 && s[0] <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f))
            return 0;
        return 3;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

/* Where the next value starts, as an INSERT parameter (-1: NULL). */
static void
param_mark(bool null)
{
    if (q.nparams < NCOLS)
        q.param_off[q.nparams++] = null ? -1 : (long)q.len;
}

/* One text column: escaped for COPY (or, for an INSERT's parameter, as it
 * is and NUL-terminated), invalid UTF-8 replaced by '?', cut at max bytes
 * on a character boundary.  NULL is \N (a NULL parameter). */
static bool
put_text(const char *s, size_t max, bool last)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t used = 0;

    if (!reserve(2 * max + 4))
        return false;
    if (q.as_params) {
        param_mark(s == NULL);
        if (s == NULL)
            return true;
    }
    if (s == NULL) {
        memcpy(q.buf + q.len, "\\N", 2);
        q.len += 2;
    } else {
        while (*p) {
            size_t n = utf8_len(p);
            if (used + (n ? n : 1) > max)
                break;
            if (n == 0) {
                q.buf[q.len++] = '?';
                used++;
                p++;
                continue;
            }
            if (n == 1 && !q.as_params && (*p == '\\' || *p == '\t' || *p == '\n' || *p == '\r')) {
                q.buf[q.len++] = '\\';
                q.buf[q.len++] = *p == '\\' ? '\\' : *p == '\t' ? 't' : *p == '\n' ? 'n' : 'r';
            } else {
                memcpy(q.buf + q.len, p, n);
                q.len += n;
            }
            used += n;
            p += n;
        }
    }
    q.buf[q.len++] = q.as_params ? '\0' : last ? '\n' : '\t';
    return true;
}

static bool
put_int(long long v, bool null, bool last)
{
    if (!reserve(24))
        return false;
    if (q.as_params) {
        param_mark(null);
        if (!null)
            q.len += (size_t)snprintf(q.buf + q.len, 24, "%lld", v) + 1;   /* with its NUL */
        return true;
    }
    if (null)
        q.len += (size_t)snprintf(q.buf + q.len, 24, "\\N%c", last ? '\n' : '\t');
    else
        q.len += (size_t)snprintf(q.buf + q.len, 24, "%lld%c", v, last ? '\n' : '\t');
    return true;
}

/* A wall-clock time in microseconds as timestamptz text. */
static void
fmt_at(int64_t at_us, char out[48])
{
    struct tm tm;
    time_t secs = (time_t)(at_us / 1000000);

    gmtime_r(&secs, &tm);
    snprintf(out, 48, "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(at_us % 1000000));
}

static bool
put_row(const struct pending *p)
{
    const struct gw_audit *r = p->row;
    const struct authz_credential *w = r->who;
    const char *agent_id = r->agent_id ? r->agent_id : w ? w->agent.id : NULL;
    const char *suffix = NULL;
    char at[48];

    fmt_at(p->at_us, at);
    /* the credential's row id ends the suffix: it names the key, it is not it */
    if (w && w->token_id && strlen(w->token_id) >= 6)
        suffix = w->token_id + strlen(w->token_id) - 6;
    return put_text(at, sizeof(at), false) &&
           put_text(gh_uuid_ok(agent_id) ? agent_id : NULL, 36, false) &&
           put_text(w ? w->agent.slug : NULL, FIELD_MAX, false) &&
           put_text(w && gh_uuid_ok(w->user_id) ? w->user_id : NULL, 36, false) &&
           put_text(w ? w->user_email : NULL, FIELD_MAX, false) &&
           put_text(w ? w->kind : NULL, 16, false) &&
           put_text(suffix, 6, false) &&
           put_text(w ? w->client_id : NULL, FIELD_MAX, false) &&
           put_text(w ? w->client_name : NULL, FIELD_MAX, false) &&
           put_text(r->session_id, FIELD_MAX, false) &&
           put_text(p->request_id, 64, false) &&
           put_text(r->method, FIELD_MAX, false) &&
           put_text(r->tool, FIELD_MAX, false) &&
           put_text(r->connector, FIELD_MAX, false) &&
           put_text(r->decision ? r->decision : "none", 32, false) &&
           put_text(r->policy_ids, FIELD_MAX, false) &&
           put_text(r->policy_versions, FIELD_MAX, false) &&
           put_text(r->message, MESSAGE_MAX, false) &&
           put_int(r->upstream_status, r->upstream_status <= 0, false) &&
           put_int(r->duration_us, r->duration_us < 0, false) &&
           put_text(r->call_id, GW_AUDIT_CALL_ID_LEN, false) &&
           put_text(r->outcome ? at : NULL, sizeof(at), false) &&
           put_text(r->outcome ? r->upstream_error : NULL, MESSAGE_MAX, false) &&
           put_text(r->policy_shadow, FIELD_MAX, true);
}

/* Reads a statement's results to the end; rc, or -1 with the first error
 * in detail if one failed. */
static int
finish_results(PGconn *pg, const char *what, int rc, char *detail, size_t dlen)
{
    PGresult *res;

    while ((res = PQgetResult(pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
            snprintf(detail, dlen, "%s: %s", what, PQresultErrorMessage(res));
            note_error(res);
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

/* One COPY (`sql`) of buf.  *sent tells whether the data left (after that
 * a failure is ambiguous and must not be retried). */
static int
copy_buf(PGconn *pg, const char *sql, const char *buf, size_t len, bool *sent, char *detail, size_t dlen)
{
    PGresult *res = PQexec(pg, sql);
    int rc = 0;

    *sent = false;
    err_state[0] = '\0';
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        snprintf(detail, dlen, "COPY: %s", PQerrorMessage(pg));
        note_error(res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    *sent = true;
    if (PQputCopyData(pg, buf, (int)len) != 1 || PQputCopyEnd(pg, NULL) != 1) {
        snprintf(detail, dlen, "COPY data: %s", PQerrorMessage(pg));
        rc = -1;
    }
    return finish_results(pg, "COPY", rc, detail, dlen);
}

/* One row as one INSERT (PQsendQueryParams: statement and values in one
 * message, so one round trip where a COPY takes two); the values are the
 * NUL-terminated ones at q.param_off.  *sent as for copy_buf. */
static int
insert_one(PGconn *pg, bool *sent, char *detail, size_t dlen)
{
    const char *values[NCOLS];

    for (int i = 0; i < NCOLS; i++)
        values[i] = q.param_off[i] < 0 ? NULL : q.buf + q.param_off[i];
    *sent = false;
    if (!PQsendQueryParams(pg, INSERT_SQL, NCOLS, NULL, values, NULL, NULL, 0)) {
        snprintf(detail, dlen, "INSERT: %s", PQerrorMessage(pg));
        return -1;
    }
    *sent = true;
    return finish_results(pg, "INSERT", 0, detail, dlen);
}

/* Writes n rows in one transaction: one INSERT for one row (an idle
 * server's every call), one COPY for more. */
static int
write_once(PGconn *pg, int n, bool *sent, char *detail, size_t dlen)
{
    return n == 1 ? insert_one(pg, sent, detail, dlen) : copy_buf(pg, COPY_SQL, q.buf, q.len, sent, detail, dlen);
}

/* Text as a JSON string: invalid UTF-8 replaced by '?', cut at max bytes
 * on a character boundary (as put_text does for a column). */
static json_t *
json_text(const char *s, size_t max)
{
    char out[MESSAGE_MAX + 1];
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;

    if (s == NULL)
        return json_null();
    if (max > MESSAGE_MAX)
        max = MESSAGE_MAX;
    while (*p) {
        size_t n = utf8_len(p);
        if (k + (n ? n : 1) > max)
            break;
        if (n == 0) {
            out[k++] = '?';
            p++;
            continue;
        }
        memcpy(out + k, p, n);
        k += n;
        p += n;
    }
    return json_stringn(out, k);
}

/* One UPDATE of the outcomes in json.  *sent as for copy_buf. */
static int
outcome_once(PGconn *pg, const char *json, bool *sent, char *detail, size_t dlen)
{
    *sent = false;
    err_state[0] = '\0';
    if (!PQsendQueryParams(pg, OUTCOME_SQL, 1, NULL, &json, NULL, NULL, 0)) {
        snprintf(detail, dlen, "UPDATE: %s", PQerrorMessage(pg));
        return -1;
    }
    *sent = true;
    return finish_results(pg, "UPDATE", 0, detail, dlen);
}

/* n outcomes in one transaction: each completes the write-ahead row of
 * its call id. */
static int
write_outcomes(struct db_conn *c, struct pending **rows, int n)
{
    json_t *arr = json_array();
    char *text = NULL, detail[256] = "out of memory";
    bool sent = false;
    int rc = -1;

    for (int i = 0; arr && i < n; i++) {
        const struct gw_audit *r = rows[i]->row;
        char at[48];

        fmt_at(rows[i]->at_us, at);
        if (json_array_append_new(arr, json_pack("{s:s, s:o, s:o, s:o, s:s}", "call_id", r->call_id ? r->call_id : "",
                "upstream_status", r->upstream_status > 0 ? json_integer(r->upstream_status) : json_null(),
                "duration_us", r->duration_us >= 0 ? json_integer(r->duration_us) : json_null(),
                "upstream_error", json_text(r->upstream_error, MESSAGE_MAX), "outcome_at", at)) < 0)
            goto out;
    }
    if (arr == NULL || (text = json_dumps(arr, JSON_COMPACT)) == NULL)
        goto out;
    rc = outcome_once(db_pg(c), text, &sent, detail, sizeof(detail));
    if (rc < 0 && !sent && PQstatus(db_pg(c)) != CONNECTION_OK && db_reset(c))
        rc = outcome_once(db_pg(c), text, &sent, detail, sizeof(detail));   /* as write_rows */
out:
    detail[strcspn(detail, "\n")] = '\0';
    if (rc == 0)
        atomic_fetch_add(&n_batches, 1);
    else
        GH_LOG(ERROR, "audit_write", "%d audit outcome(s) not written: %s", n, detail);
    free(text);
    json_decref(arr);
    return rc;
}

static int
write_rows(struct db_conn *c, struct pending **rows, int n)
{
    char detail[256] = "";
    bool sent = false;
    int rc = -1;

    q.len = 0;
    q.nparams = 0;
    q.as_params = n == 1;
    for (int i = 0; i < n; i++)
        if (!put_row(rows[i])) {
            snprintf(detail, sizeof(detail), "out of memory");
            goto out;
        }
    rc = write_once(db_pg(c), n, &sent, detail, sizeof(detail));
    if (rc < 0 && !sent && PQstatus(db_pg(c)) != CONNECTION_OK) {
        /* a pooled connection that died with a restarted server: nothing
         * was sent, so one retry on a fresh connection is safe */
        if (db_reset(c))
            rc = write_once(db_pg(c), n, &sent, detail, sizeof(detail));
    }
out:
    q.as_params = false;            /* hold() formats COPY lines */
    detail[strcspn(detail, "\n")] = '\0';
    if (rc == 0) {
        atomic_fetch_add(&n_batches, 1);
        atomic_fetch_add(&n_rows, n);
    } else {
        GH_LOG(ERROR, "audit_write", "%d audit row(s) not written: %s", n, detail);
    }
    return rc;
}

static void
row_lost(const struct pending *p, const char *why)
{
    const struct gw_audit *r = p->row;

    GH_LOG(ERROR, "audit_write", "audit row of request %s (%s%s%s, connector %s) lost: %s",
           p->request_id ? p->request_id : "-", r->method, r->tool ? " " : "", r->tool ? r->tool : "",
           r->connector ? r->connector : "-", why);
}

/* ---------------------------------------------------------------- the spool
 * A held row is in memory and in <data_dir>/audit-held-<pid>-<n>.rows
 * (COPY lines, 0600, appended, fdatasync'd before the batch's replies go,
 * flock'd while this process lives).  A process that starts takes up
 * every such file no live process holds — left by a shutdown with the log
 * still down, or by a crash — and writes its rows through retry_held,
 * whose merge skips rows already in the log; once that has committed the
 * files are removed. */

#define SPOOL_PREFIX "audit-held-"
#define SPOOL_SUFFIX ".rows"
#define SPOOL_OPEN_TRIES 100    /* serials tried for a name of our own */

/* The rows of a spool file's complete lines (*used: their bytes; a last
 * line cut short by a crash or a full disk is left out), or -1 when a
 * line lacks the columns of a row: a damaged file must not block the
 * held rows behind it. */
static int
spool_rows(const char *buf, size_t len, size_t *used, int *old)
{
    int rows = 0, tabs = 0;

    *used = 0;
    *old = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\t') {
            tabs++;
        } else if (buf[i] == '\n') {
            if (tabs != NCOLS - 1 && tabs != NCOLS_V2 - 1 && tabs != NCOLS_V1 - 1)
                return -1;
            *old += NCOLS - 1 - tabs;   /* the columns it lacks */
            tabs = 0;
            rows++;
            *used = i + 1;
        }
    }
    return rows;
}

static bool
write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

/* Opens a new spool file of this process.  Its name takes the pid and the
 * next serial; a name already taken — a file an earlier process with the
 * same pid left (in a container the pid is the same at every start), still
 * held or damaged — moves on to the next serial. */
static bool
spool_open(void)
{
    static unsigned serial;

    (void)mkdir(gh_cfg.data_dir, 0700);    /* with an external database it may not exist yet */
    for (int tries = 0; tries < SPOOL_OPEN_TRIES; tries++) {
        snprintf(held.path, sizeof(held.path), "%s/" SPOOL_PREFIX "%ld-%u" SPOOL_SUFFIX, gh_cfg.data_dir,
                 (long)getpid(), serial++);
        held.fd = open(held.path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (held.fd < 0 && errno == EEXIST)
            continue;
        if (held.fd < 0)
            return false;
        if (flock(held.fd, LOCK_EX | LOCK_NB) == 0)
            return true;
        close(held.fd);                     /* not ours after all: another name */
        unlink(held.path);
        held.fd = -1;
    }
    return false;
}

static void
spool_broke(const char *what)
{
    GH_LOG(ERROR, "audit_write", "held audit rows cannot be kept in %s (%s): from now on, until every held row"
           " is written, they are in memory only and a crash would lose them", gh_cfg.data_dir, what);
    held.spool_broken = true;
}

static void
spool_append(const char *line, size_t n)
{
    if (held.spool_broken)      /* nothing is appended behind a failed write */
        return;
    if (held.fd < 0 && !spool_open()) {
        spool_broke("no spool file could be created");
        return;
    }
    if (!write_all(held.fd, line, n)) {
        spool_broke("a write failed");
        return;
    }
    held.unsynced = true;
}

/* A failed sync breaks the spool like a failed write: the kernel may have
 * dropped the pages, and a later sync would not report it again. */
static void
spool_sync(void)
{
    if (held.fd >= 0 && held.unsynced && !held.spool_broken && fdatasync(held.fd) < 0)
        spool_broke("a sync failed");
    held.unsynced = false;
}

static bool
read_all(int fd, char *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        buf += r;
        n -= (size_t)r;
    }
    return true;
}

/* The lines of earlier builds among the n bytes of held rows from `from`
 * on lack the later columns (`old` of them in all: three of write-ahead,
 * one of the shadow outcome): they get them, NULL; *len is the bytes they
 * take then. */
static bool
spool_upgrade(size_t from, size_t n, int old, size_t *len)
{
    static const char pad[] = "\t\\N";
    size_t grown = n + (size_t)old * (sizeof(pad) - 1), k = 0;
    char *tmp;
    int tabs = 0;

    *len = n;
    if (old == 0)
        return true;
    if (from + grown > HELD_MAX || (tmp = malloc(grown)) == NULL)
        return false;
    if (!buf_room(&held.buf, &held.cap, from + grown, 16 * 1024)) {
        free(tmp);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = held.buf[from + i];
        for (int m = ch == '\n' ? NCOLS - 1 - tabs : 0; m > 0; m--) {
            memcpy(tmp + k, pad, sizeof(pad) - 1);
            k += sizeof(pad) - 1;
        }
        tabs = ch == '\n' ? 0 : tabs + (ch == '\t');
        tmp[k++] = ch;
    }
    memcpy(held.buf + from, tmp, k);
    free(tmp);
    *len = k;
    return true;
}

/* Reads one earlier process's file into the held rows; leaves it as it is
 * when a live process holds it, or it is gone, damaged or too large. */
static void
spool_take(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rows, old = 0;
    size_t size, used = 0, len = 0;

    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0 || st.st_nlink == 0 || st.st_size <= 0) {
        close(fd);      /* a live process's, or removed meanwhile */
        return;
    }
    size = (size_t)st.st_size;
    if (held.len + size > HELD_MAX || !buf_room(&held.buf, &held.cap, held.len + size, 16 * 1024) ||
        !read_all(fd, held.buf + held.len, size) ||
        (rows = spool_rows(held.buf + held.len, size, &used, &old)) < 0 ||
        !spool_upgrade(held.len, used, old, &len) ||
        (held.taken[held.ntaken].path = strdup(path)) == NULL) {
        GH_LOG(ERROR, "audit_write", "held audit rows in %s not taken up (unreadable, damaged or too large);"
               " left in place", path);
        close(fd);
        return;
    }
    if (rows == 0) {
        GH_LOG(WARN, "audit_write", "%s holds no complete audit row: removed", path);
        free(held.taken[held.ntaken].path);
        unlink(path);
        close(fd);
        return;
    }
    held.taken[held.ntaken++].fd = fd;
    held.len += len;
    held.rows += rows;
    GH_LOG(WARN, "audit_write", "%d held audit row(s) of an earlier process taken up from %s%s", rows, path,
           used < size ? " (an incomplete last line left out)" : "");
}

static void
spool_take_up(void)
{
    DIR *d = opendir(gh_cfg.data_dir);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && held.ntaken < SPOOL_FILES_MAX) {
        size_t nl = strlen(de->d_name), sl = strlen(SPOOL_SUFFIX);
        char path[4096];

        if (strncmp(de->d_name, SPOOL_PREFIX, strlen(SPOOL_PREFIX)) || nl <= sl ||
            strcmp(de->d_name + nl - sl, SPOOL_SUFFIX))
            continue;
        snprintf(path, sizeof(path), "%s/%s", gh_cfg.data_dir, de->d_name);
        spool_take(path);
    }
    closedir(d);
}

/* Closes every spool file; `remove` (their rows are in the log) deletes
 * them first.  Without it they stay for the next process. */
static void
spool_close(bool remove)
{
    for (int i = 0; i < held.ntaken; i++) {
        if (remove && unlink(held.taken[i].path) < 0 && errno != ENOENT)
            GH_LOG(WARN, "audit_write", "cannot remove %s (its rows are in the log)", held.taken[i].path);
        close(held.taken[i].fd);
        free(held.taken[i].path);
    }
    held.ntaken = 0;
    if (held.fd >= 0) {
        if (remove && unlink(held.path) < 0)
            GH_LOG(WARN, "audit_write", "cannot remove %s (its rows are in the log)", held.path);
        close(held.fd);
        held.fd = -1;
    }
    held.unsynced = false;
}

/* Some held rows went (written, or refused and reported) and others stay:
 * the ones that stay go to a new spool file of this process, synced, and
 * only then are the old files removed, so a crash in between leaves rows
 * twice on disk (the merge writes them once), never none.  It also mends
 * a broken spool.  If the new file fails, the old files stay. */
static void
spool_rewrite(void)
{
    struct spooled taken[SPOOL_FILES_MAX];
    int fd = held.fd, ntaken = held.ntaken;
    bool broken = held.spool_broken;
    char path[sizeof(held.path)];

    memcpy(path, held.path, sizeof(path));
    memcpy(taken, held.taken, sizeof(taken[0]) * (size_t)ntaken);
    held.fd = -1;
    held.ntaken = 0;
    held.spool_broken = false;
    held.unsynced = false;
    spool_append(held.buf, held.len);
    spool_sync();
    if (held.spool_broken) {
        if (held.fd >= 0) {
            unlink(held.path);
            close(held.fd);
        }
        held.fd = fd;
        memcpy(held.path, path, sizeof(path));
        memcpy(held.taken, taken, sizeof(taken[0]) * (size_t)ntaken);
        held.ntaken = ntaken;
        held.spool_broken = broken;
        return;
    }
    for (int i = 0; i < ntaken; i++) {
        if (unlink(taken[i].path) < 0 && errno != ENOENT)
            GH_LOG(WARN, "audit_write", "cannot remove %s (its rows are in %s)", taken[i].path, held.path);
        close(taken[i].fd);
        free(taken[i].path);
    }
    if (fd >= 0) {
        if (unlink(path) < 0)
            GH_LOG(WARN, "audit_write", "cannot remove %s (its rows are in %s)", path, held.path);
        close(fd);
    }
}

/* Keeps the COPY line of a failed row whose request the upstream already
 * has, for retry_held().  q.buf is the writer's scratch: the line is
 * formatted past its end and copied out. */
static void
hold(const struct pending *p)
{
    size_t mark = q.len, n;
    const char *why = "out of memory";

    if (!put_row(p))
        goto lost;
    n = q.len - mark;
    if (held.len + n > HELD_MAX) {
        why = "too many rows held already";
        goto lost;
    }
    if (!buf_room(&held.buf, &held.cap, held.len + n, 16 * 1024))
        goto lost;
    memcpy(held.buf + held.len, q.buf + mark, n);
    spool_append(held.buf + held.len, n);
    held.len += n;
    held.rows++;
    q.len = mark;
    GH_LOG(WARN, "audit_write", "audit row of request %s (%s, reached connector %s) held until the log takes rows again",
           p->request_id ? p->request_id : "-", p->row->method, p->row->connector ? p->row->connector : "-");
    return;
lost:
    q.len = mark;
    row_lost(p, why);
}

/* One statement of retry_held's transaction: true when it did what it
 * should; *n gets the rows it affected. */
static bool
held_step(PGconn *pg, const char *sql, long *n, char *detail, size_t dlen)
{
    PGresult *res = PQexec(pg, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok) {
        snprintf(detail, dlen, "%.40s: %s", sql, PQresultErrorMessage(res));
        note_error(res);
    }
    else if (n)
        *n = atol(PQcmdTuples(res));
    PQclear(res);
    return ok;
}

/* One merge of held COPY lines (buf, len) in one transaction: true when
 * it committed; *written gets the rows the log lacked. */
static bool
held_merge(PGconn *pg, const char *buf, size_t len, long *written, char *detail, size_t dlen)
{
    bool sent, ok;

    err_state[0] = '\0';
    *written = 0;
    ok = held_step(pg, HELD_BEGIN_SQL, NULL, detail, dlen) &&
         copy_buf(pg, HELD_COPY_SQL, buf, len, &sent, detail, dlen) == 0 &&
         held_step(pg, HELD_MERGE_SQL, written, detail, dlen) &&
         held_step(pg, HELD_CLEAR_SQL, NULL, detail, dlen) &&
         held_step(pg, "COMMIT", NULL, detail, dlen);
    if (!ok && PQstatus(pg) == CONNECTION_OK)
        PQclear(PQexec(pg, "ROLLBACK"));
    detail[strcspn(detail, "\n")] = '\0';
    return ok;
}

/* Errors that name the row, not the log's state: a data exception, a
 * violated constraint, a trigger's RAISE, a refused change.  A lock or
 * statement timeout, a lost connection, a full disk, a missing privilege
 * say nothing about the row. */
static bool
row_refused(void)
{
    static const char *const classes[] = { "22", "23", "P0", "27", "09", "44" };

    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (strncmp(err_state, classes[i], 2) == 0)
            return true;
    return false;
}

/* Column `col` of a held COPY line, as it is (escaped), for the log. */
static void
line_field(const char *line, size_t n, int col, char *out, size_t olen)
{
    size_t i = 0, k = 0;

    for (int c = 0; c < col && i < n; i++)
        if (line[i] == '\t')
            c++;
    while (i < n && line[i] != '\t' && line[i] != '\n' && k + 1 < olen)
        out[k++] = line[i++];
    out[k] = '\0';
}

static void
held_lost(const char *line, size_t n, const char *why)
{
    char rid[72], method[64], tool[128], connector[128];

    line_field(line, n, 10, rid, sizeof(rid));
    line_field(line, n, 11, method, sizeof(method));
    line_field(line, n, 12, tool, sizeof(tool));
    line_field(line, n, 13, connector, sizeof(connector));
    GH_LOG(ERROR, "audit_write", "held audit row of request %s (%s %s, connector %s) lost: the database refuses"
           " it: %s", rid, method, tool, connector, why);
}

/* After the held rows' merge failed on a row the database refuses, with
 * the connection up and the log taking new rows: one row refused every
 * time must not hold back the others (nor, through the spool, every later
 * process's).  Each row is merged on its own, the same way; a row refused
 * on its own is reported and dropped; the rows left when the connection
 * breaks or the log stops taking rows stay held.  Returns 0 when none are
 * left. */
static int
retry_held_rows(PGconn *pg)
{
    size_t at = 0, keep = 0;
    long written = 0, w;
    int merged = 0, lost = 0, rows = 0;
    bool going = true;
    char detail[256];

    while (at < held.len) {
        const char *nl = memchr(held.buf + at, '\n', held.len - at);
        size_t n = nl ? (size_t)(nl - (held.buf + at)) + 1 : held.len - at;

        if (going && held_merge(pg, held.buf + at, n, &w, detail, sizeof(detail))) {
            written += w;
            merged++;
        } else if (going && PQstatus(pg) == CONNECTION_OK && row_refused()) {
            held_lost(held.buf + at, n, detail);
            lost++;
        } else {
            going = false;                  /* this row and the rest stay held */
            memmove(held.buf + keep, held.buf + at, n);
            keep += n;
            rows++;
        }
        at += n;
    }
    GH_LOG(INFO, "audit_write", "%d held audit row(s) written one at a time (%ld of them already in the log), %d"
           " refused and lost, %d still held", merged, merged - written, lost, rows);
    atomic_fetch_add(&n_batches, merged);
    atomic_fetch_add(&n_rows, written);
    held.len = keep;
    held.rows = rows;
    return rows == 0 ? 0 : -1;
}

/* Writes the held rows that the log does not have yet, in one
 * transaction (or one by one when one of them is refused); 0 when none
 * are left. */
static int
retry_held(void)
{
    struct gh_err e = {0};
    struct db_conn *c;
    PGconn *pg;
    char detail[256] = "";
    long written = 0;
    int before = held.rows, rc = 0;

    if (held.rows == 0)
        return 0;
    if ((c = db_get(&e)) == NULL)
        return -1;
    pg = db_pg(c);
    if (held_merge(pg, held.buf, held.len, &written, detail, sizeof(detail))) {
        GH_LOG(INFO, "audit_write", "%d held audit row(s) written, %ld of them already in the log", held.rows,
               held.rows - written);
        atomic_fetch_add(&n_batches, 1);
        atomic_fetch_add(&n_rows, written);
        held.len = 0;
        held.rows = 0;
    } else if (PQstatus(pg) == CONNECTION_OK && held.log_takes && row_refused()) {
        GH_LOG(WARN, "audit_write", "%d held audit row(s) not written together: %s; now one at a time", held.rows,
               detail);
        rc = retry_held_rows(pg);
    } else {
        GH_LOG(DEBUG, "audit_write", "%d held audit row(s) still not written: %s", held.rows, detail);
        rc = -1;
    }
    db_put(c);
    if (held.rows == 0) {
        spool_close(true);
        held.spool_broken = false;          /* nothing held is missing from a spool file now */
    } else if (held.rows < before) {
        spool_rewrite();
    }
    return rc;
}

typedef int (*write_fn)(struct db_conn *c, struct pending **rows, int n);

/* rows by fn in one transaction; result[i] 1 or -1 */
static void
write_group(struct db_conn *c, write_fn fn, struct pending **rows, int n, int *result)
{
    int rc = fn(c, rows, n);

    for (int i = 0; i < n; i++)
        result[i] = rc == 0 ? 1 : -1;
    if (rc < 0 && n > 1 && PQstatus(db_pg(c)) == CONNECTION_OK) {
        /* bad data in one row must not cost the others theirs */
        for (int i = 0; i < n; i++)
            result[i] = fn(c, rows + i, 1) == 0 ? 1 : -1;
    }
}

/* Writes the batch: its new rows, then its outcomes (an outcome never
 * follows its own row in one batch: that row was committed before the
 * call went out); result[i] is 1 (committed) or -1.  The nodes are only
 * read here: their states are set under the lock by the caller, as a
 * waiter may return the moment it sees its state. */
static void
write_batch(struct pending **rows, int n, int *result)
{
    struct gh_err e = {0};
    struct db_conn *c = db_get(&e);
    struct pending *part[BATCH_MAX];
    int at[BATCH_MAX], res[BATCH_MAX];

    if (c == NULL) {
        GH_LOG(ERROR, "audit_write", "%d audit row(s) not written: %s", n, e.detail);
        for (int i = 0; i < n; i++)
            result[i] = -1;
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (rows[i]->row->outcome == (pass == 1)) {
                part[k] = rows[i];
                at[k++] = i;
            }
        }
        if (k == 0)
            continue;
        write_group(c, pass ? write_outcomes : write_rows, part, k, res);
        for (int i = 0; i < k; i++)
            result[at[i]] = res[i];
    }
    db_put(c);
}

static void *
writer_main(void *arg)
{
    struct pending *batch[BATCH_MAX];
    int result[BATCH_MAX];

    gh_log_context(NULL, "audit");
    spool_take_up();
    (void)retry_held();
    pthread_mutex_lock(&q.lock);
    for (;;) {
        int n = 0;

        while (q.head == NULL && !q.stopping) {
            if (held.rows == 0) {
                pthread_cond_wait(&q.work, &q.lock);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += HELD_RETRY_MS / 1000;
            if (pthread_cond_timedwait(&q.work, &q.lock, &until) != 0 && q.head == NULL && !q.stopping) {
                pthread_mutex_unlock(&q.lock);
                (void)retry_held();
                pthread_mutex_lock(&q.lock);
            }
        }
        if (q.head == NULL)
            break;                          /* stopping, and everything flushed */
        while (q.head && n < BATCH_MAX) {
            batch[n++] = q.head;
            q.head = q.head->next;
        }
        if (q.head == NULL)
            q.tail = &q.head;
        pthread_mutex_unlock(&q.lock);

        write_batch(batch, n, result);
        bool took = false;                  /* the log took rows */
        for (int i = 0; i < n; i++) {
            took = took || result[i] > 0;
            if (result[i] < 0 && batch[i]->row->acted)
                hold(batch[i]);
        }
        spool_sync();
        held.log_takes = took;

        pthread_mutex_lock(&q.lock);
        {
            /* submitted rows are the writer's to finish; a waiter's node
             * may be gone the moment its state is set */
            struct pending *async[BATCH_MAX];
            int na = 0;
            for (int i = 0; i < n; i++) {
                if (batch[i]->done) {
                    batch[i]->state = result[i];
                    async[na++] = batch[i];
                }
            }
            for (int i = 0; i < n; i++)
                if (!batch[i]->done)
                    batch[i]->state = result[i];
            pthread_cond_broadcast(&q.done);
            pthread_mutex_unlock(&q.lock);
            for (int i = 0; i < na; i++) {
                async[i]->done(async[i]->ctx, async[i]->state > 0 ? 0 : -1);
                free(async[i]);
            }
            /* the log takes rows again: the held ones now, after this
             * batch's replies have gone */
            if (took && held.rows > 0)
                (void)retry_held();
            pthread_mutex_lock(&q.lock);
        }
    }
    pthread_mutex_unlock(&q.lock);
    if (retry_held() < 0 && held.spool_broken)
        GH_LOG(ERROR, "audit_write", "%d held audit row(s) not written at shutdown, and not all of them are in"
               " %s (a write there failed): those are lost (each was named when it was held)", held.rows,
               gh_cfg.data_dir);
    else if (held.rows > 0)
        GH_LOG(WARN, "audit_write", "%d held audit row(s) not written at shutdown: they stay in %s for the next"
               " process that starts on it", held.rows, gh_cfg.data_dir);
    spool_close(false);     /* synced as each batch's rows were held */
    free(held.buf);
    held.buf = NULL;
    held.len = held.cap = 0;
    held.rows = 0;
    return NULL;
}

int
gw_audit_call_id(char out[GW_AUDIT_CALL_ID_LEN + 1])
{
    unsigned char b[GW_AUDIT_CALL_ID_LEN / 2];

    if (gh_random_bytes(b, sizeof(b)) < 0)
        return -1;
    gh_hex_encode(b, sizeof(b), out);
    return 0;
}

int
gw_audit_submit(const struct gw_audit *row, const char *request_id, gw_audit_done_fn done, void *ctx)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct timespec ts;

    if (p == NULL)
        return -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->row = row;
    p->request_id = request_id ? request_id : row->request_id;
    p->at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    p->done = done;
    p->ctx = ctx;
    pthread_mutex_lock(&q.lock);
    if (!q.running || q.stopping) {
        pthread_mutex_unlock(&q.lock);
        free(p);
        return -1;
    }
    *q.tail = p;
    q.tail = &p->next;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.lock);
    return 0;
}

static int
unavailable(struct gh_err *e, const char *detail)
{
    gh_err_set(e, 503, "temporarily_unavailable", "the audit log is unavailable", "%s", detail);
    e->retry_after = 2;
    return -1;
}

/* Queues p[0..n-1] at once (the writer takes them in one COPY, up to
 * BATCH_MAX, unless rows queued before them fill it) and waits until each
 * is committed or failed. */
static int
queue_and_wait(struct pending *p, int n, struct gh_err *e)
{
    struct timespec ts;
    int64_t at_us;
    bool waiting = true, failed = false;

    clock_gettime(CLOCK_REALTIME, &ts);
    at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    for (int i = 0; i < n; i++) {
        p[i].request_id = p[i].row->request_id ? p[i].row->request_id : gh_log_request_id();
        p[i].at_us = at_us;
        p[i].next = i + 1 < n ? &p[i + 1] : NULL;
    }
    pthread_mutex_lock(&q.lock);
    if (!q.running || q.stopping) {
        pthread_mutex_unlock(&q.lock);
        return unavailable(e, "audit writer not running");
    }
    *q.tail = &p[0];
    q.tail = &p[n - 1].next;
    pthread_cond_signal(&q.work);
    while (waiting) {
        waiting = false;
        for (int i = 0; i < n && !waiting; i++)
            waiting = p[i].state == 0;
        if (waiting)
            pthread_cond_wait(&q.done, &q.lock);
    }
    pthread_mutex_unlock(&q.lock);
    for (int i = 0; i < n; i++)
        failed = failed || p[i].state < 0;
    return failed ? unavailable(e, "audit row not committed") : 0;
}

int
gw_audit_write(const struct gw_audit *row, struct gh_err *e)
{
    struct pending p = { .row = row };

    return queue_and_wait(&p, 1, e);
}

int
gw_audit_write_many(const struct gw_audit *rows, int n, struct gh_err *e)
{
    struct pending *p;
    int rc;

    if (n <= 0)
        return 0;
    p = calloc((size_t)n, sizeof(*p));
    if (p == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
    for (int i = 0; i < n; i++)
        p[i].row = &rows[i];
    rc = queue_and_wait(p, n, e);
    free(p);
    return rc;
}

int
gw_audit_start(struct gh_err *e)
{
    static bool gauges;
    int rc;

    pthread_mutex_lock(&q.lock);
    if (q.running) {
        pthread_mutex_unlock(&q.lock);
        return 0;
    }
    q.stopping = false;
    rc = pthread_create(&q.thread, NULL, writer_main, NULL);
    q.running = rc == 0;
    pthread_mutex_unlock(&q.lock);
    if (rc != 0)
        return gh_err_set(e, 500, "server_error", "internal error", "audit writer thread: error %d", rc);
    if (!gauges) {
        gauges = true;
        web_metrics_register_gauge("gatehouse_audit_batches_total",
                                   "Audit group commits (transactions) written.", gw_audit_batches_total);
        web_metrics_register_gauge("gatehouse_audit_rows_total", "Audit rows committed.", gw_audit_rows_total);
    }
    return 0;
}

void
gw_audit_stop(void)
{
    pthread_mutex_lock(&q.lock);
    if (!q.running) {
        pthread_mutex_unlock(&q.lock);
        return;
    }
    q.stopping = true;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.lock);
    pthread_join(q.thread, NULL);   /* the writer flushes the queue first */
    pthread_mutex_lock(&q.lock);
    q.running = false;
    free(q.buf);
    q.buf = NULL;
    q.len = q.cap = 0;
    pthread_mutex_unlock(&q.lock);
}
