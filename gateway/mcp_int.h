/*
 * gateway/mcp_int.h — what the lower parts of the endpoint share with it:
 * session.c (MCP sessions), upsession.c (the upstream side of a session),
 * aggregate.c (merged lists, names), relay.c (an upstream's requests to
 * the client, and the answers back), upstream.c (the libcurl client and
 * its I/O thread).  The endpoint's own files share endpoint_int.h.
 *
 * Threads: MHD's server threads run the handlers; one upstream I/O thread
 * drives every upstream transfer (curl multi); one small worker pool runs
 * the steps that block (an upstream handshake, an audit commit) for work
 * that started on the I/O thread; the db listener thread delivers NOTIFY;
 * an upkeep thread (upsession.c, started on first need) reopens upstream
 * streams after their backoff.
 */
#ifndef GH_GW_MCP_INT_H
#define GH_GW_MCP_INT_H

#include "gateway/gw_int.h"
#include <pthread.h>
#include <string.h>

/* Protocol revisions, oldest first.  The last is the stateless one. */
#define GW_PROTO_2025_03_26 "2025-03-26"
#define GW_PROTO_2025_06_18 "2025-06-18"
#define GW_PROTO_2025_11_25 "2025-11-25"
#define GW_PROTO_2026_07_28 "2026-07-28"
#define GW_PROTO_LATEST_SESSION GW_PROTO_2025_11_25

/* JSON-RPC error codes. */
#define GW_RPC_PARSE_ERROR      (-32700)
#define GW_RPC_INVALID_REQUEST  (-32600)
#define GW_RPC_METHOD_NOT_FOUND (-32601)
#define GW_RPC_INVALID_PARAMS   (-32602)
#define GW_RPC_INTERNAL         (-32603)
#define GW_RPC_UPSTREAM         (-32000)   /* an upstream failed or timed out */
#define GW_RPC_RESOURCE_NOT_FOUND_LEGACY (-32002)  /* session revisions only; 2026-07-28: -32602 */
#define GW_RPC_DENIED           (-32003)   /* a policy denied it (tools/call: a tool error instead) */
#define GW_RPC_HEADER_MISMATCH  (-32020)
#define GW_RPC_UNSUPPORTED_VER  (-32022)

bool gw_proto_supported(const char *v);   /* any revision we speak downstream */
bool gw_proto_is_stateless(const char *v);

/* ---------------------------------------------------------------- SSE parser
 * Incremental: feed any split of the byte stream; each complete event is
 * handed to fn as it ends.  Lines end in \n, \r\n or \r. */
typedef void (*gw_sse_event_fn)(void *ctx, const char *event, const char *data, size_t len);
struct gw_sse {
    char   *line;  size_t line_len, line_cap;
    char   *data;  size_t data_len, data_cap;
    char    event[64];
    bool    cr;                 /* last byte was \r: a following \n is part of it */
    size_t  max;                /* cap on one event's data (0 = 16 MiB) */
};
int  gw_sse_feed(struct gw_sse *p, const char *buf, size_t n, gw_sse_event_fn fn, void *ctx);
void gw_sse_free(struct gw_sse *p);

/* ---------------------------------------------------------------- worker pool */
typedef void (*gw_work_fn)(void *ctx);
int  gw_work_post(gw_work_fn fn, void *ctx);
/* A request's handling that may block (methods.c, with web_offload_begin):
 * its own pool, so that it can wait for steps posted with gw_work_post. */
int  gw_offload_post(gw_work_fn fn, void *ctx);

/* ---------------------------------------------------------------- upstream client
 * One HTTP exchange with an upstream MCP server.  The callbacks run on the
 * I/O thread and must not block.  on_message gets each JSON-RPC message of
 * the response (a JSON body or one SSE event at a time, as it arrives);
 * on_done runs exactly once at the end.  The caller holds one reference
 * and drops it with gw_up_release(); the I/O thread holds the other until
 * on_done has run. */
struct gw_up_xfer;
typedef void (*gw_up_msg_fn)(struct gw_up_xfer *x, json_t *msg, void *ctx);
typedef void (*gw_up_done_fn)(struct gw_up_xfer *x, void *ctx);

struct gw_up_req {
    const char *url;
    const char *method;              /* "POST" (default), "GET", "DELETE" */
    const struct gw_header *headers; /* credentials: never logged */
    int         nheaders;
    const char *body;                /* NULL for GET/DELETE */
    long        timeout_ms;          /* 0 = none (long-lived GET stream) */
    gw_up_msg_fn  on_message;
    gw_up_done_fn on_done;
    void         *ctx;
};

struct gw_up_xfer *gw_up_start(const struct gw_up_req *rq);  /* NULL when out of memory */
void gw_up_cancel(struct gw_up_xfer *x);     /* any thread; on_done still runs */
void gw_up_release(struct gw_up_xfer *x);
/* Results, valid in and after on_done. */
long        gw_up_status(const struct gw_up_xfer *x);        /* HTTP status, 0 if none */
const char *gw_up_session_id(const struct gw_up_xfer *x);    /* Mcp-Session-Id answered */
bool        gw_up_timed_out(const struct gw_up_xfer *x);
bool        gw_up_failed(const struct gw_up_xfer *x);        /* no HTTP answer at all */
bool        gw_up_connect_failed(const struct gw_up_xfer *x);
bool        gw_up_sent(const struct gw_up_xfer *x);          /* the request went out */
const char *gw_up_error(const struct gw_up_xfer *x);         /* short, client-safe */

int  gw_up_init(struct gh_err *e);
void gw_up_stop(void);
long gw_up_inflight(void);
/* A fresh upstream request id: never collides across concurrent calls. */
json_t *gw_up_next_id(void);

/* ---------------------------------------------------------------- sessions */
struct gw_upstate {             /* one connector's upstream session */
    char   connector_id[40];
    char   connector[40];
    char  *sid;                 /* upstream Mcp-Session-Id, NULL when none */
    char   proto[16];           /* negotiated upstream revision, "" = not yet */
    struct gw_up_xfer *listen;  /* our GET stream to it (list_changed) */
    unsigned listen_gen;        /* counts the streams opened: a reopen of an older one is void */
    bool   pending;             /* handshake not yet saved: the row's state does not replace it */
    /* single flight: one handshake at a time; the others wait (s->hs_done)
     * and share its outcome (gw_upstate_hs_begin) */
    bool   hs_busy;
    unsigned hs_gen;            /* handshakes ended */
    struct gh_err hs_err;       /* the last one's failure (status 0: none) */
    json_t *tools;              /* cached upstream tools (all pages), or NULL */
    json_t *prompts, *resources, *templates;
};

struct gw_session {
    char   id_hash[65];         /* SHA-256 of the wire id (also the cache key) */
    char   agent_id[40];
    char   agent_slug[72];
    char  *user_id;             /* NULL for the unauthenticated test identity */
    char   proto[16];
    bool   stateless;           /* implicit per-(agent,user) state of 2026-07-28 */
    json_t *client_info;
    json_t *client_caps;        /* capabilities declared at initialize, or NULL */
    pthread_mutex_t lock;       /* guards the fields below */
    char   log_level[16];       /* the client's logging/setLevel, "" = none yet (in
                                 * this process: a 2026-07-28 upstream hears it in
                                 * each request's _meta) */
    struct gw_upstate *ups;
    int    nups, capups;
    pthread_cond_t hs_done;     /* a handshake of one of ups ended (with lock) */
    int64_t last_seen;          /* wall seconds */
    int64_t last_written;
    bool   gone;                /* deleted or expired: no new work */
    int    refs;
    struct gw_session *next;    /* cache bucket chain */
};

int  gw_session_init(struct gh_err *e);
void gw_session_stop(void);
/* An upstream session of a session the store ended for the per-member
 * limit: the caller ends it upstream (gw_up_end_evicted). */
struct gw_evicted_up {
    const char *connector_id, *sid, *proto;
};
/* New session after initialize; *wire_id (arena) is what the client sends.
 * The member's sessions past the limit are ended (rows, caches, NOTIFY);
 * their upstream sessions come back in *evicted (arena, *nevicted). */
struct gw_session *gw_session_create(struct gh_arena *a, const struct authz_credential *who,
                                     const char *proto, json_t *client_info, json_t *client_caps,
                                     char **wire_id, struct gw_evicted_up **evicted, int *nevicted,
                                     struct gh_err *e);
/* The session for a wire id: NULL with 404 when unknown, expired or bound
 * to another caller. */
struct gw_session *gw_session_get(struct gh_arena *a, const char *wire_id,
                                  const struct authz_credential *who, struct gh_err *e);
/* The implicit state of a stateless caller (never stored). */
struct gw_session *gw_session_stateless(const struct authz_credential *who);
int  gw_session_delete(struct gw_session *s, struct gh_err *e);
/* A session ended (DELETE, the per-member limit, idle; here or in another
 * process): fn hears it (listen.c ends its GET streams).  One watcher. */
typedef void (*gw_session_ended_fn)(const char *id_hash, void *ctx);
void gw_session_watch(gw_session_ended_fn fn, void *ctx);
void gw_session_ref(struct gw_session *s);
void gw_session_put(struct gw_session *s);
/* Drops idle sessions from the cache and their rows (the ticker, each minute). */
void gw_session_expire(void);
/* Under s->lock: the upstream state of a connector (created empty), to
 * read; upstate.c alone writes it, through the gw_upstate_* below. */
struct gw_upstate *gw_session_upstate(struct gw_session *s, const struct gw_connector *c);
/* A loaded session's upstream states from its row's sealed column (session.c). */
void gw_upstate_load(struct gh_arena *a, struct gw_session *s, const char *sealed);
/* Both NULL, or both the same string. */
static inline bool
gw_same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && !strcmp(a, b));
}
/* the kinds of merged lists (aggregate.c) */
enum gw_kind { GW_TOOLS, GW_PROMPTS, GW_RESOURCES, GW_TEMPLATES, GW_NKINDS };
/* A cached list of c (incref'd, NULL when none); replaces it; drops every
 * kind of connector_id (NULL: all connectors). */
json_t *gw_upstate_list(struct gw_session *s, const struct gw_connector *c, enum gw_kind k);
void    gw_upstate_list_set(struct gw_session *s, const struct gw_connector *c, enum gw_kind k, json_t *list);
void    gw_upstate_lists_drop(struct gw_session *s, const char *connector_id);
/* Under s->lock: whether u has the list of kind k cached. */
bool    gw_upstate_has_list(const struct gw_upstate *u, enum gw_kind k);
/* Single flight of the handshake with c: true, the caller runs it and then
 * calls gw_upstate_hs_end with its outcome; false, one was running and has
 * ended meanwhile: its outcome is *e's (status 0: it succeeded). */
bool    gw_upstate_hs_begin(struct gw_session *s, const struct gw_connector *c, struct gh_err *e);
void    gw_upstate_hs_end(struct gw_session *s, const struct gw_connector *c, const struct gh_err *e);
/* A handshake to redo: no revision, session id or tools, pending. */
void    gw_upstate_forget(struct gw_session *s, const struct gw_connector *c);
/* A handshake done: its revision and (with_sid) its session id, pending
 * until saved. */
void    gw_upstate_handshake(struct gw_session *s, const struct gw_connector *c, const char *proto, bool with_sid,
                             const char *sid);
/* A stream to the upstream is opening: its generation (0: no state), with
 * the session id and revision to open it with; then the transfer it
 * became, kept unless a newer one began: returns the one to cancel. */
unsigned gw_upstate_listen_begin(struct gh_arena *a, struct gw_session *s, const struct gw_connector *c,
                                 char **sid, char proto[16]);
struct gw_up_xfer *gw_upstate_listen_set(struct gw_session *s, const struct gw_connector *c, unsigned gen,
                                         struct gw_up_xfer *x);
/* Persists the upstream session ids after a handshake with connector_id,
 * merged with the row under its lock: for connector_id ours wins, and
 * *replaced (malloc, or NULL) is the upstream session id the row held for
 * it before, to be ended upstream; for the others the row's (another
 * process redid them) replaces ours unless ours is pending. */
void gw_session_save_upstreams(struct gw_session *s, const char *connector_id, char **replaced);
/* After the upstream answered 404 for dead_sid: adopts the row's session
 * id for c if another process has a newer one (true), instead of a new
 * handshake. */
bool gw_session_adopt_upstream(struct gw_session *s, const struct gw_connector *c, const char *dead_sid);
/* The cached session with this id hash, referenced; NULL if none or gone. */
struct gw_session *gw_session_find(const char *id_hash);
void gw_session_touch(struct gw_session *s);
long gw_session_count(void);
/* Calls fn for every cached session of an agent (NULL = all), with a reference held. */
void gw_session_each(const char *agent_id, void (*fn)(struct gw_session *s, void *ctx), void *ctx);

/* ---------------------------------------------------------------- listeners
 * Server-to-client streams: the GET stream of a session, or a stateless
 * subscriptions/listen.  (listen.c) */
void gw_notify_session(struct gw_session *s, const char *method, json_t *params);
void gw_notify_agent(const char *agent_id, const char *method);

/* ---------------------------------------------------------------- upstream MCP
 * (upsession.c) The upstream side of one session: handshake, a request
 * with retry after a dropped upstream session, list fetching. */
struct gw_call_target {
    struct gw_session   *s;
    struct gw_connector *c;
    struct gw_header    *headers;     /* from gw_connector_auth_headers */
    int                  nheaders;
};
/* Runs the handshake if this session has none with the connector yet;
 * blocking (a server or worker thread, never the I/O thread). */
int gw_up_ensure(struct gh_arena *a, struct gw_call_target *t, bool force, struct gh_err *e);
/* The headers and body of one upstream request (arena). */
int gw_up_prepare(struct gh_arena *a, struct gw_call_target *t, json_t *msg,
                  struct gw_up_req *rq, struct gh_err *e);
/* One blocking request: the final response's message (borrowed from a). */
json_t *gw_up_rpc_sync(struct gh_arena *a, struct gw_call_target *t, const char *method,
                       json_t *params, long *status, struct gh_err *e);
/* DELETE of the upstream session sid (revision proto) at t's connector with
 * t's headers; fire and forget.  t->s is not used. */
void gw_up_end_session(struct gh_arena *a, const struct gw_call_target *t, const char *sid,
                       const char *proto);
/* What an upstream says on its own stream to one session (list changes,
 * resource updates): changed when its lists of that kind are stale.  On
 * the I/O thread; must not block.  One watcher (the endpoint). */
typedef void (*gw_up_note_fn)(struct gw_session *s, const char *connector_id, const char *method,
                              json_t *params, bool changed);
void gw_up_watch(gw_up_note_fn fn);
/* Stops the thread that reopens upstream streams (before gw_up_stop). */
void gw_up_upkeep_stop(void);
/* What the gateway declares to an upstream at initialize: the relayable
 * capabilities the session's client declared (a new object, never NULL
 * unless out of memory). */
json_t *gw_up_client_caps(const struct gw_session *s);
/* DELETE of the upstream sessions of sessions the store evicted
 * (gw_session_create), with the member's credentials; fire and forget. */
void gw_up_end_evicted(struct gh_arena *a, const struct authz_credential *who,
                       const struct gw_evicted_up *ev, int n);

/* ---------------------------------------------------------------- relay
 * (relay.c) Requests an upstream sends the client in the middle of a
 * forwarded call (sampling/createMessage, elicitation/create, roots/list,
 * ping): sent on that call's stream under an id of ours, and the client's
 * response POSTed back to the upstream that asked, under its own id. */
struct gw_relay_call {
    struct gw_call_target t;        /* the call's session, connector, credentials */
    bool        stateless;          /* a 2026-07-28 caller: nothing is relayed */
    const char *request_id;         /* of the forwarded call (log lines) */
    void       *call;               /* the forwarded call, held while a relay is pending */
    /* Queues msg on the call's stream; false once the call is over (msg
     * NULL: only asks).  Any thread, takes the call's own lock. */
    bool      (*send)(void *call, json_t *msg);
    void      (*hold)(void *call, bool take);   /* a reference on the call */
    /* The upstream session the call went on (NULL: the session's current
     * one): what it asks is answered there, should a handshake have
     * replaced the session's meanwhile.  Valid while the call is held. */
    const char *up_sid;
};
#define GW_RELAY_MAX_PER_SESSION 16
/* Refusals of upstream requests POSTed back and not yet answered, in all:
 * past it an upstream's request goes unanswered (an upstream flooding a
 * call with requests it never takes the answers to holds no more). */
#define GW_RELAY_REFUSALS_MAX 64
#define GW_RELAY_REFUSALS_PER_CONNECTOR 16   /* one flooding upstream leaves the rest to the others */
/* I/O thread: msg is a request from the upstream of rc.  Relayed to the
 * client, or answered to the upstream at once with a JSON-RPC error (the
 * client lacks the capability, a stateless caller, too many pending). */
/* Whether the upstream at url serves capability cap (with its flag sub
 * set, when sub) to a client of that generation, as far as this process
 * has heard from it: 1, 0 (no: it said so; or a session's
 * resources/subscribe to a 2026-07-28-only upstream, which has no way
 * there), -1 not known yet. */
int  gw_up_serves(const char *url, bool stateless, const char *cap, const char *sub);
void gw_relay_request(const struct gw_relay_call *rc, json_t *msg);
/* The inputRequests of a 2026-07-28 upstream's input-required result, to
 * the session's client: done(call, answers) once each is answered (key ->
 * the client's result), or done(call, NULL, why) when one is refused or
 * not answered in time; once.  -1 with *why when none can go (a stateless
 * caller, a request the client did not declare): done() does not run. */
int  gw_relay_inputs(const struct gw_relay_call *rc, json_t *requests,
                     void (*done)(void *call, json_t *answers, const char *why), const char **why);
/* NULL when a client that declared caps (its capabilities object) may be
 * asked method (with params), else why not. */
const char *gw_relay_missing(json_t *caps, const char *method, json_t *params);
/* Answers the upstream's request msg with -32601 and why (bounded as every
 * refusal is). */
void gw_relay_refuse(const struct gw_relay_call *rc, json_t *msg, const char *why);
/* POSTs result to the upstream of rc as the answer to its request up_id,
 * on upstream session sid (NULL: the session's current one); does not
 * wait.  false when nothing was sent. */
bool gw_relay_answer(const struct gw_relay_call *rc, json_t *up_id, json_t *result, const char *sid);
/* A JSON-RPC response the client of s POSTed: true when it answered a
 * pending relay of this session and went to the upstream; anything else
 * (unknown, another session's, answered, expired) is logged and dropped. */
bool gw_relay_response(struct gw_session *s, json_t *msg);
long gw_relay_pending(void);
/* Drops the relays past their deadline or call (the ticker: a round's
 * call has no transfer that would time out meanwhile). */
void gw_relay_sweep(void);
/* Drops every pending relay (shutdown, before the upstream client stops). */
void gw_relay_stop(void);

/* Aggregated lists: an array of entries in the order clients see. */
struct gw_entry {
    json_t     *item;               /* as the client sees it (renamed) */
    const char *connector_id;       /* routing back */
    const char *connector;
    const char *orig;               /* upstream name or uri */
    const char *prefix;             /* the connector's tool prefix ("" = none) */
};
struct gw_list {
    struct gw_entry *e;
    int              n;
    struct gw_connector *conns;
    int              nconns;
    char           **failed;        /* connectors that did not answer */
    const char     **failed_prefix; /* their tool prefixes */
    int              nfailed;
    enum gw_kind     kind;          /* what gw_agg_find matches: name, uri, uriTemplate */
};
int gw_agg_list(struct gh_arena *a, struct gw_session *s, const struct authz_credential *who,
                enum gw_kind kind, struct gw_list *out, struct gh_err *e);
/* Routes an aggregated name (tool, prompt) or a URI back to its upstream:
 * the entry whose own key (l->kind's: name, uri, uriTemplate) is name. */
const struct gw_entry *gw_agg_find(const struct gw_list *l, const char *name);
/* The connector left out of l (l->failed) that an aggregated name
 * "<prefix>__..." belongs to (the first without prefix when none has the
 * name's), or NULL: a call to it is "unavailable", not "unknown". */
const char *gw_agg_failed_owner(const struct gw_list *l, const char *name);
void gw_agg_invalidate(struct gw_session *s, const char *connector_id);   /* NULL = all */
/* Whether answering needs nothing from an upstream: every enabled
 * connector of the session's agent has its handshake done and, for a kind
 * below GW_NKINDS, that list cached.  (A false answer costs nothing but a
 * trip through the offload pool.) */
bool gw_agg_warm(struct gh_arena *a, struct gw_session *s, enum gw_kind kind);
/* The enabled connectors of an agent (gw_connectors_for_agent). */
int  gw_agg_connectors(struct gh_arena *a, const char *agent_id, struct gw_connector **out, int *n,
                       struct gh_err *e);

/* Pure helpers (unit-tested). */
#define GW_NAME_MAX 64
/* Names every entry "<prefix>__<orig>" ("<orig>" for an empty prefix;
 * prefixes NULL or prefixes[i] NULL: the connector's name) or a shortened,
 * collision-free form hashed from "<connector>__<orig>"; names[i] receive
 * GW_NAME_MAX+1 bytes each. */
void gw_agg_names(const char *const *prefixes, const char *const *connectors, const char *const *origs,
                  int n, char (*names)[GW_NAME_MAX + 1]);
/* At most this many entries of one kind are taken from one upstream. */
#define GW_AGG_LIST_MAX 10000
/* Appends to list the entries of page (one upstream's, one kind) that are
 * objects with their kind's key (name, uri, uriTemplate) not yet in seen,
 * while list holds fewer than GW_AGG_LIST_MAX; a repeated key (the first
 * is kept: the one the upstream itself finds by it) adds 1 to *repeats,
 * an entry past the cap 1 to *over, a malformed one nothing. */
void gw_agg_take(json_t *list, json_t *seen, json_t *page, enum gw_kind kind, int *repeats, int *over);
/* URIs: "gh-<connector>+<original uri>" is reversible without state. */
char *gw_agg_uri_wrap(struct gh_arena *a, const char *connector, const char *uri);
int   gw_agg_uri_unwrap(struct gh_arena *a, const char *wrapped, char **connector, char **uri);
/* Opaque page cursor over our own answers. */
char *gw_agg_cursor_make(struct gh_arena *a, int offset);
int   gw_agg_cursor_parse(const char *cursor, int *offset);

#endif
