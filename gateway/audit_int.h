/*
 * gateway/audit_int.h — what the audit log's three files share:
 * audit.c (the writer thread, group commit, the API), audit_rows.c (rows
 * as COPY text or INSERT parameters, the statements that write a batch)
 * and audit_held.c (rows held through a failure: memory, the spool file,
 * the merge).  The writer thread alone calls the functions below.
 */
#ifndef GH_GW_AUDIT_INT_H
#define GH_GW_AUDIT_INT_H

#include "gateway/gw_int.h"
#include <stdint.h>

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

struct pending {
    const struct gw_audit *row;
    const char     *request_id;
    int64_t         at_us;      /* wall clock when queued */
    struct pending *next;
    int             state;      /* 0 queued, 1 committed, -1 failed */
    gw_audit_done_fn done;      /* gw_audit_submit: called, then the node freed */
    void           *ctx;
};

/* audit_rows.c */
/* SQLSTATE of the last statement that failed ("" when there was none,
 * e.g. the connection failed) */
extern char gw_audit_err_state[6];
void gw_audit_note_error(const PGresult *res);
void gw_audit_counted(long batches, long rows);
/* Room for `need` bytes in a growing buffer (doubling from `first`). */
bool gw_audit_buf_room(char **buf, size_t *cap, size_t need, size_t first);
/* p as one COPY line, valid until the next row is formatted; NULL: no memory. */
const char *gw_audit_line(const struct pending *p, size_t *n);
/* One COPY (`sql`) of buf.  *sent tells whether the data left (after that
 * a failure is ambiguous and must not be retried). */
int  gw_audit_copy(PGconn *pg, const char *sql, const char *buf, size_t len, bool *sent, char *detail, size_t dlen);
/* n new rows, or n outcomes, in one transaction: 0 or -1 (logged). */
int  gw_audit_write_rows(struct db_conn *c, struct pending **rows, int n);
int  gw_audit_write_outcomes(struct db_conn *c, struct pending **rows, int n);
/* nr new rows and no outcomes in one transaction (one commit where the
 * two above take two): 0, or -1 with nothing committed, unless *ambiguous
 * (the COMMIT was sent and the connection broke: it may have). */
int  gw_audit_write_both(struct db_conn *c, struct pending **rows, int nr, struct pending **outs, int no,
                         bool *ambiguous);
void gw_audit_row_lost(const struct pending *p, const char *why);
void gw_audit_rows_free(void);

/* audit_held.c */
void gw_audit_hold(const struct pending *p);        /* a failed row the upstream has */
int  gw_audit_retry_held(void);                     /* 0 when none are left */
int  gw_audit_held_rows(void);
void gw_audit_held_taken(bool took);                /* the last batch's new rows committed */
void gw_audit_spool_take_up(void);                  /* earlier processes' files, at start */
void gw_audit_spool_sync(void);                     /* before a batch's replies go */
void gw_audit_held_end(void);                       /* at shutdown: retry, report, close */

#endif
