/*
 * gateway/audit_held.c — audit rows held through a failure: a row of a
 * request the upstream already has (gw_audit.acted) that could not be
 * committed waits in memory and in this process's spool file, and is
 * merged into the log once it takes rows again, skipping rows a batch
 * committed as its connection broke (audit.c has the whole design).
 * Writer thread only.
 */
#include "gateway/audit_int.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
static const char HELD_CLEAR_SQL[] = "DELETE FROM audit_events_held";

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
void
gw_audit_spool_sync(void)
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
    if (!gw_audit_buf_room(&held.buf, &held.cap, from + grown, 16 * 1024)) {
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
    if (held.len + size > HELD_MAX || !gw_audit_buf_room(&held.buf, &held.cap, held.len + size, 16 * 1024) ||
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

void
gw_audit_spool_take_up(void)
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
    gw_audit_spool_sync();
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
 * has, for retry_held(). */
void
gw_audit_hold(const struct pending *p)
{
    const char *why = "out of memory", *line;
    size_t n = 0;

    if ((line = gw_audit_line(p, &n)) == NULL)
        goto lost;
    if (held.len + n > HELD_MAX) {
        why = "too many rows held already";
        goto lost;
    }
    if (!gw_audit_buf_room(&held.buf, &held.cap, held.len + n, 16 * 1024))
        goto lost;
    memcpy(held.buf + held.len, line, n);
    spool_append(held.buf + held.len, n);
    held.len += n;
    held.rows++;
    GH_LOG(WARN, "audit_write", "audit row of request %s (%s, reached connector %s) held until the log takes rows again",
           p->request_id ? p->request_id : "-", p->row->method, p->row->connector ? p->row->connector : "-");
    return;
lost:
    gw_audit_row_lost(p, why);
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
        gw_audit_note_error(res);
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

    gw_audit_err_state[0] = '\0';
    *written = 0;
    ok = held_step(pg, HELD_BEGIN_SQL, NULL, detail, dlen) &&
         gw_audit_copy(pg, HELD_COPY_SQL, buf, len, &sent, detail, dlen) == 0 &&
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
        if (strncmp(gw_audit_err_state, classes[i], 2) == 0)
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
    gw_audit_counted(merged, written);
    held.len = keep;
    held.rows = rows;
    return rows == 0 ? 0 : -1;
}

/* Writes the held rows that the log does not have yet, in one
 * transaction (or one by one when one of them is refused); 0 when none
 * are left. */
int
gw_audit_retry_held(void)
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
        gw_audit_counted(1, written);
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

int
gw_audit_held_rows(void)
{
    return held.rows;
}

void
gw_audit_held_taken(bool took)
{
    held.log_takes = took;
}

void
gw_audit_held_end(void)
{
    if (gw_audit_retry_held() < 0 && held.spool_broken)
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
}
