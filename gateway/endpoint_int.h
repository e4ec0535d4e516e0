/*
 * gateway/endpoint_int.h — what the files of the MCP endpoint share, top
 * to bottom (a file calls only those below it):
 *
 *   mcp.c      the endpoint: Host/Origin, authentication, request checks,
 *              POST/GET/DELETE, the ticker
 *   methods.c  the methods: dispatch, offloading, batches
 *   call.c     a forwarded call          listen.c  listen streams
 *   chan.c     replies, the audit row of a request, downstream channels
 *   check.c    pure request checks (unit-tested)
 *
 * Below them: session.c, aggregate.c, relay.c, upstream.c (mcp_int.h).
 */
#ifndef GH_GW_ENDPOINT_INT_H
#define GH_GW_ENDPOINT_INT_H

#include "gateway/mcp_int.h"

/* What the row of an allowed request no policy decides says (initialize,
 * ping, server/discover, notifications: docs/POLICIES.md). */
#define GW_ALLOW_MESSAGE "allow (not decided by policy)"

/* ---------------------------------------------------------------- one request */
/* What a request acts on, resolved before it is decided (methods.c): the
 * resource of its policy request, and what its handler then uses. */
struct gw_target {
    const char  *kind;              /* "Tool", "Prompt", "Resource", "Agent" */
    struct gw_connector *c;         /* the connector (NULL for the Agent) */
    const char  *name;              /* the upstream's name or URI; the agent's slug */
    json_t      *annotations;       /* a tool's */
    json_t      *arguments;         /* context.args: tools/call's, prompts/get's */
    struct gw_list list;            /* the merged list it was found in; a list method's answer */
    bool         filter;            /* a list method: its items follow the policy */
    struct gw_policy_item *items;   /* its items as the filter sees them (policy_list.c) */
};

struct gw_mreq {
    struct web_req *r;
    struct gh_arena *a;
    const struct authz_credential *who;
    struct gw_session *s;
    bool    stateless;
    const char *proto;
    const char *method;             /* of the request being answered */
    int64_t start_us;
    const char *decision;           /* for the audit row */
    const char *message;
    const char *tool;
    const char *connector;
    const char *policy_ids;
    const char *policy_versions;
    const char *policy_shadow;
    int     upstream_status;
    const char *new_session;        /* initialize: the id sent once its row is committed */
    uint64_t cred_serial;           /* gw_listen_serial() before the credential was authenticated */
    struct gw_target *target;       /* set by dispatch once the request is resolved and allowed */
};

/* ---------------------------------------------------------------- check.c */
bool gw_host_allowed(const char *hostport);
bool gw_origin_allowed(const char *origin);
bool gw_accepts(const char *accept, const char *type);
bool gw_valid_id(json_t *id);
/* Visible ASCII, space and tab only. */
bool gw_header_chars_ok(const char *v);
/* An Mcp-Name value (plain, or =?base64?…?= strictly decoded) into a, its
 * length in *len; NULL when it is not a valid header value. */
char *gw_header_value(struct gh_arena *a, const char *v, size_t *len);
/* The 2026-07-28 headers of a request: values (NULL when absent) and how
 * many field lines each came on. */
struct gw_stateless_hdrs {
    const char *version, *method, *name;
    int         nversion, nmethod, nname;
};
const char *gw_stateless_check(struct gh_arena *a, const struct gw_stateless_hdrs *h, const char *method,
                               json_t *params, const char *name_param, bool *unsupported);
/* The GW_REV_* bit of a revision we speak, 0 for any other. */
unsigned gw_proto_rev(const char *proto);
const char *gw_msg_method(json_t *msg);
/* Not a JSON-RPC message we take, alone or in a batch. */
bool gw_msg_invalid(json_t *msg);

/* ---------------------------------------------------------------- chan.c: replies */
json_t *gw_rpc_error(json_t *id, int code, const char *msg, json_t *data);
json_t *gw_rpc_result(json_t *id, json_t *result);
int  gw_reply_rpc_error(struct web_req *r, int status, json_t *id, int code, const char *msg, json_t *data);
/* A request the gateway could not serve for e: an outage (e->retry_after)
 * is 503 with Retry-After and a retry hint in the error's data. */
int  gw_reply_failure(struct web_req *r, int status, json_t *id, const struct gh_err *e);
void gw_stateless_result(json_t *result, const char *method);
void gw_stateless_error(json_t *error);
/* Refuses m: its row (deny, why), then the JSON-RPC error (status, code,
 * text, data).  Returns what the reply returned. */
int  gw_deny(struct gw_mreq *m, const char *method, const char *why, int status, json_t *id, int code,
             const char *text, json_t *data);
/* A refusal answered as a tool error: its row, then {content, isError}. */
int  gw_deny_tool(struct gw_mreq *m, const char *method, const char *why, json_t *id, const char *text);
/* 503 "nothing was done": the row of a request that would act is not written. */
int  gw_reply_audit_down(struct web_req *r, json_t *id);
/* An arena cleanup dropping a session reference. */
void gw_session_put_cb(void *p);
/* The row of m (for gw_audit_write_many), and the row written now. */
void gw_mreq_row(const struct gw_mreq *m, const char *method, const char *decision, const char *message,
                 struct gw_audit *row);
int  gw_mreq_audit(struct gw_mreq *m, const char *method);
/* The 200 reply of a request answered here, sent once its row is committed. */
int  gw_reply_audited(struct gw_mreq *m, const char *method, json_t *id, json_t *result);
/* A copy of a credential in a (an arena that outlives the request). */
void gw_cred_copy(struct gh_arena *a, struct authz_credential *d, const struct authz_credential *w);

/* ---------------------------------------------------------------- chan.c: channels
 * A channel is the producer side of one SSE response: a byte queue the
 * reader drains.  Forwarded calls and listen streams are both channels;
 * the ticker writes keep-alive comments so a vanished client is noticed
 * even while the connection is parked. */
struct gw_chan {
    pthread_mutex_t     lock;
    char               *buf;
    size_t              len, off, cap;
    bool                ended;      /* nothing more will be queued */
    bool                gone;       /* done() ran: the response is over */
    struct web_stream  *ws;
    int                 refs;
    int64_t             last_us;    /* last write */
    int64_t             keepalive_us;
    bool                is_fwd;     /* a forwarded call (call.c) */
    bool                deferred;   /* web_reply_deferred: not begun yet */
    json_t             *whole;      /* the one message of a reply that never streamed */
    int                 whole_status;   /* its HTTP status; 0 = 200 */
    void              (*free_fn)(struct gw_chan *);
    struct gw_chan     *next, *prev;    /* registry, for the ticker */
};
void gw_chan_init(struct gw_chan *c, int64_t keepalive_us, void (*free_fn)(struct gw_chan *));
void gw_chan_unref(struct gw_chan *c);
void gw_chan_register(struct gw_chan *c);
void gw_chan_unregister(struct gw_chan *c);
int  gw_chan_put_locked(struct gw_chan *c, const char *s, size_t n);
/* Queues one SSE event; the stream to wake, woken holding none of our locks. */
struct web_stream *gw_chan_queue(struct gw_chan *c, json_t *msg, bool end);
void gw_chan_send(struct gw_chan *c, json_t *msg, bool end);
void gw_chan_start(void *ctx, struct web_req *r);
ssize_t gw_chan_read(void *ctx, char *buf, size_t max);
struct gw_chan *gw_chan_find(bool (*match)(struct gw_chan *c, const void *ctx), const void *ctx);
void gw_chan_keepalives(void);

/* ---------------------------------------------------------------- listen.c */
struct gw_listener {
    struct gw_chan ch;              /* first: a listener is a channel */
    char         agent_id[40];
    char         id_hash[65];       /* session, or "" for a stateless listen */
    char         user_id[40];       /* the member's ("" for the test identity) */
    json_t      *sub_id;            /* stateless: the listen request's id */
    bool         tools, prompts, resources;
    char         cred_kind[8];      /* "pat" | "oauth" ("" for the test identity) */
    char         cred_id[40];       /* its token id */
    uint64_t     cred_serial;       /* gw_listen_serial() before it was authenticated */
    struct gw_listener *next, *prev;
};
struct gw_listener *gw_listener_open(struct gw_mreq *m, json_t *sub_id, json_t *filter);
int  gw_listener_start(struct gw_mreq *m, struct gw_listener *l, json_t *ack);
/* Counts credential changes: a stream authenticated before one is rechecked. */
uint64_t gw_listen_serial(void);
void gw_listen_tick(void);          /* the ticker: retries a failed recheck */
int  gw_listen_start(void);         /* watches for revoked credentials */

/* ---------------------------------------------------------------- call.c */
/* A forwarded call's progress (call.c): one state, changed in one place. */
enum gw_call_state {
    GW_CALL_AHEAD,          /* its write-ahead row is being committed; nothing sent yet */
    GW_CALL_SENT,           /* the request is on its way to the upstream */
    GW_CALL_RETRY,          /* the upstream lost its session: a new handshake */
    GW_CALL_RESENT,         /* sent once more after it (no further retry) */
    GW_CALL_CANCELLED,      /* the client cancelled: the upstream was told, no answer is due */
    GW_CALL_LEFT,           /* the client went away: the upstream was told */
    GW_CALL_ANSWERED,       /* the outcome is known; its audit row is being committed */
    GW_CALL_DONE,           /* the final message went out (or none was due) */
};
/* Whether a call in state from may go to state to. */
bool gw_call_may(enum gw_call_state from, enum gw_call_state to);
/* Forwards (method, params), already renamed for the upstream, to c and
 * answers with the upstream's stream. */
int  gw_forward(struct gw_mreq *m, struct gw_connector *c, json_t *id, const char *method, json_t *params);
/* The ticker: held calls (a stateless client's, waiting for its retry)
 * past their deadline end; at shutdown the registry lets them go. */
void gw_call_held_sweep(void);
void gw_call_held_stop(void);
/* A notification or response from the client of s, once its row is committed. */
void gw_client_note(struct gw_session *s, const char *method, json_t *msg);

/* ---------------------------------------------------------------- methods.c */
/* Revisions, a bit each: the ones a method exists in (gw_proto_rev). */
enum {
    GW_REV_2025_03_26 = 1 << 0,
    GW_REV_2025_06_18 = 1 << 1,
    GW_REV_2025_11_25 = 1 << 2,
    GW_REV_2026_07_28 = 1 << 3,
};
#define GW_REV_SESSION (GW_REV_2025_03_26 | GW_REV_2025_06_18 | GW_REV_2025_11_25)
#define GW_REV_ALL     (GW_REV_SESSION | GW_REV_2026_07_28)

/* What a method may wait for before it is answered: such a request runs on
 * the offload pool, not on a server thread. */
enum gw_wait {
    GW_WAIT_NONE,           /* answered from what is at hand */
    GW_WAIT_LISTS,          /* handshakes, and the lists kind and also cached */
    GW_WAIT_HANDSHAKES,     /* stateless: the member's upstream sessions */
    GW_WAIT_UPSTREAMS,      /* a call to every upstream */
};

/* A row of the method table (methods.c). */
struct gw_method {
    const char   *name;
    int         (*run)(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params);
    unsigned      revs;         /* GW_REV_*: elsewhere "Method not found" */
    enum gw_wait  wait;
    enum gw_kind  kind, also;   /* the lists it reads */
    /* its answer inside a 2025-03-26 batch; NULL: refused there */
    json_t     *(*in_batch)(struct gw_mreq *m, json_t *id, const char **why);
    const char   *mcp_name;     /* 2026-07-28: the param the Mcp-Name header mirrors */
    const char   *action;       /* the policy action, for the methods gw_policy_decide sees */
    /* resolves the request's target before it is decided; on a failure it
     * has answered (its row carries no decision) and returns false, rc set.
     * NULL: the target is the agent. */
    bool        (*resolve)(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params,
                           struct gw_target *t, int *rc);
};
/* The row of name if proto's revision has the method, else NULL. */
const struct gw_method *gw_method_find(const char *name, const char *proto);

int  gw_method_initialize(struct gw_mreq *m, json_t *id, json_t *params);
int  gw_dispatch_or_offload(struct gw_mreq *m, const char *method, json_t *id, json_t *params);
int  gw_batch_serve(struct gw_mreq *m, json_t *batch);

/* ---------------------------------------------------------------- policy_list.c */
/* The list filter: l's entries as the policy sees their calls (items[i]
 * for l->e[i]; the item action and kind into call), NULL for a kind not
 * filtered (resource templates name no one resource). */
struct gw_policy_item *gw_policy_list_items(struct gh_arena *a, const struct gw_list *l,
                                            struct gw_policy_call *call);
/* Drops from l, in order, the entries the decision hid. */
void gw_policy_list_drop(struct gw_list *l, const struct gw_policy_item *items);

#endif
