/*
 * gateway/call_int.h — what call.c and held.c (one layer: a forwarded call,
 * and a stateless client's call held for its retry) share.
 */
#ifndef GH_GATEWAY_CALL_INT_H
#define GH_GATEWAY_CALL_INT_H

#include "gateway/endpoint_int.h"

/* A held call's requestState starts so; the rest is sealed. */
#define GW_HELD_PREFIX "gh-held."
/* At most this many input-required rounds per call. */
#define GW_CALL_INPUT_ROUNDS 8

struct gw_call {
    struct gw_chan  ch;             /* first: a forwarded call is a channel */
    struct gh_arena *a;             /* what the call owns; freed with it */
    enum gw_call_state state;       /* under ch.lock, call_state() only */
    struct gw_session *s;           /* referenced (a cleanup of a) */
    struct gw_connector c;          /* copies in a */
    struct gw_header *hdrs;         /* credentials: wiped by a's cleanups */
    int          nhdrs;
    json_t      *msg;               /* the upstream request (our id) */
    json_t      *down_id;
    json_t      *up_id;
    char         proto_up[16];      /* upstream revision at (re)start, under ch.lock */
    bool         stateless;
    bool         no_logs;           /* stateless without a logLevel in _meta */
    json_t      *final;             /* waiting for its audit row */
    /* input rounds (a 2026-07-28 upstream, a session client), under ch.lock */
    bool         input_wait;        /* its requests are with the client */
    bool         input_xfer_over;   /* the transfer that asked has ended */
    json_t      *input_next;        /* the call to send once it has */
    int          input_rounds;
    struct gw_up_xfer *x;
    /* a stateless client's call held for its retry (a session-based
     * upstream asked it something), under ch.lock */
    struct gw_chan *out;            /* what the client reads: &ch, a retry's (referenced), NULL */
    json_t      *client_caps;       /* the stateless client's (in msg) */
    char        *up_sid;            /* the upstream session the call went on (a), NULL: none */
    json_t      *held_reqs;         /* key -> {id, method, params}: the upstream's, unanswered */
    bool         held;              /* waiting for the retry */
    char         held_id[33], held_nonce[33];
    int64_t      held_deadline_us;
    int          held_rounds;
    long         held_seq;
    struct gw_call *held_next;      /* the registry's (H.lock) */
    /* audit */
    struct authz_credential who;
    char        *bearer;            /* what opens the member's connection again
                                     * for a refresh after an upstream 401 */
    bool         auth_retry;        /* the retry is for a refused token */
    const char  *method, *tool, *request_id, *policy_ids, *policy_versions, *policy_shadow, *message;
    int64_t      start_us;
    int          upstream_status;
    char         call_id[GW_AUDIT_CALL_ID_LEN + 1];  /* of its write-ahead row */
    struct gw_audit row;            /* the row ahead, then the outcome */
};

/* call.c */
enum gw_call_state gw_call_now(struct gw_call *f);
/* The call's outcome is an upstream error with text (its row completed). */
void gw_call_error(struct gw_call *f, const char *text);
/* A legacy upstream is sent notifications/cancelled. */
void gw_call_send_cancelled(struct gw_call *f, const char *reason);
/* Stops a running call upstream: false when it was not running. */
bool gw_call_stop(struct gw_call *f, enum gw_call_state why, const char *reason);
/* relay.c's way to a call: its stream while open; a reference taken/dropped. */
bool gw_call_relay_send(void *call, json_t *msg);
void gw_call_relay_hold(void *call, bool take);

/* held.c */
/* I/O thread: a session upstream's request during a stateless client's
 * call; true when taken (held, queued or refused), false: relay refuses. */
bool gw_held_hold(struct gw_call *f, const struct gw_relay_call *rc, json_t *msg);
/* The call leaves the registry (its reference dropped), if it was in it. */
void gw_held_unlist(struct gw_call *f);
/* A stateless client's retry of a held call (state after the prefix). */
int  gw_held_retry(struct gw_mreq *m, json_t *id, json_t *params, const char *state);

#endif
