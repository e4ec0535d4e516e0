/*
 * gateway/audit_rows.c — an audit row as the database takes it: a COPY
 * text line (escaped, invalid UTF-8 replaced, long values cut on a
 * character boundary) or, for a batch of one, an INSERT's parameters; and
 * the statements that write a batch's new rows (one INSERT or one COPY)
 * and its outcomes (one UPDATE from a JSON array), each retried once on a
 * fresh connection when nothing was sent (audit.c has the whole design).
 */
#include "gateway/audit_int.h"
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char INSERT_SQL[] =
    "INSERT INTO audit_events (" COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,"
    " $21, $22, $23, $24)";
static const char COPY_SQL[] = "COPY audit_events (" COLS ") FROM STDIN";
/* A batch's outcomes: one statement completes every write-ahead row they
 * name (an outcome already there stays as it is).  The LIMIT (the count)
 * tells the planner how few rows the JSON holds: without it the function's
 * default estimate, 100, made a scan of the whole log cheaper on paper
 * than 100 index probes, and every batch read audit_events from end to end
 * (bench/RESULTS.md). */
static const char OUTCOME_SQL[] =
    "UPDATE audit_events a SET upstream_status = v.upstream_status, duration_us = v.duration_us,"
    " upstream_error = v.upstream_error, outcome_at = v.outcome_at"
    " FROM (SELECT * FROM json_to_recordset($1::json) AS v(call_id text, upstream_status integer,"
    "       duration_us bigint, upstream_error text, outcome_at timestamptz) LIMIT $2::int) v"
    " WHERE a.call_id = v.call_id AND a.outcome_at IS NULL";

/* the writer's scratch buffer, reused */
static struct {
    char   *buf;
    size_t  len, cap;
    /* one-row batches: put_row writes each value NUL-terminated and notes
     * where it starts (-1: NULL) for an INSERT's parameters instead */
    bool    as_params;
    long    param_off[NCOLS];
    int     nparams;
} q;

static atomic_long n_batches, n_rows;

char gw_audit_err_state[6];

void
gw_audit_note_error(const PGresult *res)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    snprintf(gw_audit_err_state, sizeof(gw_audit_err_state), "%s", st ? st : "");
}

void
gw_audit_counted(long batches, long rows)
{
    atomic_fetch_add(&n_batches, batches);
    atomic_fetch_add(&n_rows, rows);
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

bool
gw_audit_buf_room(char **buf, size_t *cap, size_t need, size_t first)
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
    return gw_audit_buf_room(&q.buf, &q.cap, q.len + more, 64 * 1024);
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
            gw_audit_note_error(res);
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

int
gw_audit_copy(PGconn *pg, const char *sql, const char *buf, size_t len, bool *sent, char *detail, size_t dlen)
{
    PGresult *res = PQexec(pg, sql);
    int rc = 0;

    *sent = false;
    gw_audit_err_state[0] = '\0';
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        snprintf(detail, dlen, "COPY: %s", PQerrorMessage(pg));
        gw_audit_note_error(res);
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
/* A statement of the writer's sent prepared when it can be: parsing and
 * planning it cost PostgreSQL more than running it (bench/RESULTS.md). */
static int
send_stmt(struct db_conn *c, const char *name, const char *sql, int n, const char *const *params)
{
    PGconn *pg = db_pg(c);

    return db_prepare(c, name, sql, n) ? PQsendQueryPrepared(pg, name, n, params, NULL, NULL, 0)
                                       : PQsendQueryParams(pg, sql, n, NULL, params, NULL, NULL, 0);
}

static int
insert_one(struct db_conn *c, bool *sent, char *detail, size_t dlen)
{
    PGconn *pg = db_pg(c);
    const char *values[NCOLS];

    for (int i = 0; i < NCOLS; i++)
        values[i] = q.param_off[i] < 0 ? NULL : q.buf + q.param_off[i];
    *sent = false;
    if (!send_stmt(c, "gw_audit_insert", INSERT_SQL, NCOLS, values)) {
        snprintf(detail, dlen, "INSERT: %s", PQerrorMessage(pg));
        return -1;
    }
    *sent = true;
    return finish_results(pg, "INSERT", 0, detail, dlen);
}

/* Writes n rows in one transaction: one INSERT for one row (an idle
 * server's every call), one COPY for more. */
static int
write_once(struct db_conn *c, int n, bool *sent, char *detail, size_t dlen)
{
    return n == 1 ? insert_one(c, sent, detail, dlen)
                  : gw_audit_copy(db_pg(c), COPY_SQL, q.buf, q.len, sent, detail, dlen);
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
outcome_once(struct db_conn *c, const char *json, int n, bool *sent, char *detail, size_t dlen)
{
    PGconn *pg = db_pg(c);
    char count[16];
    const char *params[2] = { json, count };

    *sent = false;
    gw_audit_err_state[0] = '\0';
    snprintf(count, sizeof count, "%d", n);
    if (!send_stmt(c, "gw_audit_outcome", OUTCOME_SQL, 2, params)) {
        snprintf(detail, dlen, "UPDATE: %s", PQerrorMessage(pg));
        return -1;
    }
    *sent = true;
    return finish_results(pg, "UPDATE", 0, detail, dlen);
}

/* The outcomes as the JSON array OUTCOME_SQL takes (malloc'd), or NULL. */
static char *
outcomes_json(struct pending **rows, int n)
{
    json_t *arr = json_array();
    char *text = NULL;

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
    if (arr)
        text = json_dumps(arr, JSON_COMPACT);
out:
    json_decref(arr);
    return text;
}

/* n outcomes in one transaction: each completes the write-ahead row of
 * its call id. */
int
gw_audit_write_outcomes(struct db_conn *c, struct pending **rows, int n)
{
    char *text = outcomes_json(rows, n), detail[256] = "out of memory";
    bool sent = false;
    int rc = -1;

    if (text == NULL)
        goto out;
    rc = outcome_once(c, text, n, &sent, detail, sizeof(detail));
    if (rc < 0 && !sent && PQstatus(db_pg(c)) != CONNECTION_OK && db_reset(c))
        rc = outcome_once(c, text, n, &sent, detail, sizeof(detail));   /* as write_rows */
out:
    detail[strcspn(detail, "\n")] = '\0';
    if (rc == 0)
        atomic_fetch_add(&n_batches, 1);
    else
        GH_LOG(ERROR, "audit_write", "%d audit outcome(s) not written: %s", n, detail);
    free(text);
    return rc;
}

/* Formats rows into q (COPY lines, or an INSERT's parameters for one). */
static bool
rows_fill(struct pending **rows, int n)
{
    q.len = 0;
    q.nparams = 0;
    q.as_params = n == 1;
    for (int i = 0; i < n; i++)
        if (!put_row(rows[i]))
            return false;
    return true;
}

static bool
exec_ok(PGconn *pg, const char *sql, char *detail, size_t dlen)
{
    PGresult *res = PQexec(pg, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    if (!ok) {
        snprintf(detail, dlen, "%s: %s", sql, PQresultErrorMessage(res));
        gw_audit_note_error(res);
    }
    PQclear(res);
    return ok;
}

int
gw_audit_write_both(struct db_conn *c, struct pending **rows, int nr, struct pending **outs, int no, bool *ambiguous)
{
    PGconn *pg = db_pg(c);
    char *json = NULL, detail[256] = "out of memory";
    bool sent = false;
    int rc = -1;

    *ambiguous = false;
    if (!rows_fill(rows, nr) || (json = outcomes_json(outs, no)) == NULL)
        goto out;
    if (exec_ok(pg, "BEGIN", detail, sizeof detail) && write_once(c, nr, &sent, detail, sizeof detail) == 0 &&
        outcome_once(c, json, no, &sent, detail, sizeof detail) == 0) {
        rc = exec_ok(pg, "COMMIT", detail, sizeof detail) ? 0 : -1;
        /* a COMMIT whose answer was lost may have committed */
        *ambiguous = rc < 0 && PQstatus(pg) != CONNECTION_OK;
    }
    if (rc < 0 && PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) != PQTRANS_IDLE)
        PQclear(PQexec(pg, "ROLLBACK"));
out:
    q.as_params = false;
    free(json);
    detail[strcspn(detail, "\n")] = '\0';
    if (rc == 0) {
        atomic_fetch_add(&n_batches, 1);
        atomic_fetch_add(&n_rows, nr);
    } else {
        GH_LOG(DEBUG, "audit_write", "%d row(s) and %d outcome(s) not written together: %s", nr, no, detail);
    }
    return rc;
}

int
gw_audit_write_rows(struct db_conn *c, struct pending **rows, int n)
{
    char detail[256] = "";
    bool sent = false;
    int rc = -1;

    if (!rows_fill(rows, n)) {
        snprintf(detail, sizeof(detail), "out of memory");
        goto out;
    }
    rc = write_once(c, n, &sent, detail, sizeof(detail));
    if (rc < 0 && !sent && PQstatus(db_pg(c)) != CONNECTION_OK) {
        /* a pooled connection that died with a restarted server: nothing
         * was sent, so one retry on a fresh connection is safe */
        if (db_reset(c))
            rc = write_once(c, n, &sent, detail, sizeof(detail));
    }
out:
    q.as_params = false;            /* gw_audit_line formats COPY lines */
    detail[strcspn(detail, "\n")] = '\0';
    if (rc == 0) {
        atomic_fetch_add(&n_batches, 1);
        atomic_fetch_add(&n_rows, n);
    } else {
        GH_LOG(ERROR, "audit_write", "%d audit row(s) not written: %s", n, detail);
    }
    return rc;
}

void
gw_audit_row_lost(const struct pending *p, const char *why)
{
    const struct gw_audit *r = p->row;

    GH_LOG(ERROR, "audit_write", "audit row of request %s (%s%s%s, connector %s) lost: %s",
           p->request_id ? p->request_id : "-", r->method, r->tool ? " " : "", r->tool ? r->tool : "",
           r->connector ? r->connector : "-", why);
}

const char *
gw_audit_line(const struct pending *p, size_t *n)
{
    size_t mark = q.len;
    bool ok = put_row(p);

    /* formatted past the rows being written, which stay as they are */
    *n = q.len - mark;
    q.len = mark;
    return ok ? q.buf + mark : NULL;
}

void
gw_audit_rows_free(void)
{
    free(q.buf);
    q.buf = NULL;
    q.len = q.cap = 0;
}
