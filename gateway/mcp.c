/*
 * gateway/mcp.c — the MCP endpoint: /mcp (default agent) and
 * /agents/STAR/mcp, Streamable HTTP in both protocol generations.
 *
 * A POST is checked in this order: Host/Origin (DNS rebinding), the
 * credential, the body limit, Content-Type and Accept, the JSON-RPC shape,
 * then the protocol generation: a request whose _meta carries a protocol version
 * (or whose MCP-Protocol-Version header says 2026-07-28) is served
 * statelessly; anything else belongs to an initialize-made session.
 *
 * Requests the gateway answers itself (initialize, ping, lists,
 * server/discover) get one JSON reply.  Requests forwarded to one
 * upstream (tools/call, prompts/get, resources/read) get an SSE stream fed
 * from the upstream I/O thread as each upstream message arrives: the
 * server thread returns at once and the connection is parked until there
 * are bytes (web_reply_stream).  The final message is held back until its
 * audit row is committed (a worker does the blocking write).
 */
#include "gateway/mcp_int.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define GW_ALLOW_MESSAGE "allow (no policy engine)"

static const char *const legacy_versions[] = { GW_PROTO_2025_11_25, GW_PROTO_2025_06_18, GW_PROTO_2025_03_26 };

bool
gw_proto_supported(const char *v)
{
    if (v == NULL)
        return false;
    for (size_t i = 0; i < GH_ARRAY_LEN(legacy_versions); i++)
        if (!strcmp(v, legacy_versions[i]))
            return true;
    return !strcmp(v, GW_PROTO_2026_07_28);
}

bool
gw_proto_is_stateless(const char *v)
{
    return v && !strcmp(v, GW_PROTO_2026_07_28);
}

/* ---------------------------------------------------------------- replies */

static json_t *
rpc_error(json_t *id, int code, const char *msg, json_t *data)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", msg);

    if (data)
        json_object_set_new(err, "data", data);
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", err);
}

static int
reply_rpc_error(struct web_req *r, int status, json_t *id, int code, const char *msg, json_t *data)
{
    web_add_header(r, "Cache-Control", "no-store");
    return web_reply_json(r, status, rpc_error(id, code, msg, data));
}

/* A failure the caller may simply repeat (the database is away:
 * e->retry_after) says so, in the error's data, which a streamed final
 * message can carry too.  NULL for any other failure. */
static json_t *
retry_hint(const struct gh_err *e)
{
    return e->retry_after > 0 ? json_pack("{s:b, s:i}", "retryable", 1, "retryAfter", e->retry_after) : NULL;
}

/* A request the gateway could not serve for e: an outage (e->retry_after)
 * is 503 with Retry-After and the hint, not a 200 the client takes for an
 * answer; any other failure keeps the status the method gives it. */
static int
reply_failure(struct web_req *r, int status, json_t *id, const struct gh_err *e)
{
    if (e->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", e->retry_after);
        web_add_header(r, "Retry-After", ra);
        status = 503;
    }
    return reply_rpc_error(r, status, id, GW_RPC_INTERNAL, e->msg[0] ? e->msg : "Internal error.", retry_hint(e));
}

static json_t *
rpc_result(json_t *id, json_t *result)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* 2026-07-28: every complete result says so; the cacheable ones carry
 * caching hints.  Lists are per member (private) and change with
 * list_changed, so they are fresh for no time at all. */
static void
stateless_result(json_t *result, const char *method)
{
    if (!json_is_object(result))
        return;
    if (!json_object_get(result, "resultType"))
        json_object_set_new(result, "resultType", json_string("complete"));
    if (method && (!strcmp(method, "server/discover") || !strcmp(method, "tools/list") ||
                   !strcmp(method, "prompts/list") || !strcmp(method, "resources/list") ||
                   !strcmp(method, "resources/templates/list") || !strcmp(method, "resources/read"))) {
        if (!json_is_integer(json_object_get(result, "ttlMs")))
            json_object_set_new(result, "ttlMs", json_integer(0));
        if (!json_is_string(json_object_get(result, "cacheScope")))
            json_object_set_new(result, "cacheScope", json_string("private"));
    }
}

/* 2026-07-28 (Error Codes): "Implementations of this protocol version MUST
 * NOT emit these codes: -32002 — resource not found (2025-11-25 and
 * earlier; replaced by -32602)".  A session-era upstream's -32002 reaches
 * a stateless caller as -32602. */
static void
stateless_error(json_t *error)
{
    json_t *code = json_object_get(error, "code");

    if (json_is_integer(code) && json_integer_value(code) == GW_RPC_RESOURCE_NOT_FOUND_LEGACY)
        json_object_set_new(error, "code", json_integer(GW_RPC_INVALID_PARAMS));
}

/* ---------------------------------------------------------------- context */

struct mreq {
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
    int     upstream_status;
    const char *new_session;        /* initialize: the id sent once its row is committed */
    uint64_t cred_serial;           /* cred_serial before the credential was authenticated */
};

static void
session_put_cb(void *p)
{
    gw_session_put(p);
}

/* The request's audit row, committed (group commit) before this returns.
 * -1 when it could not be: a request that would do something then answers
 * audit_unavailable() instead and does nothing; a refusal goes out as it is
 * (it did nothing either way, and the failure is logged). */
static void
audit_row(const struct mreq *m, const char *method, const char *decision, const char *message,
          struct gw_audit *row)
{
    *row = (struct gw_audit){
        .who = m->who,
        .agent_id = m->who->agent.id,
        .session_id = m->s && !m->stateless ? m->s->id_hash : NULL,
        .method = method ? method : "(invalid)",
        .tool = m->tool,
        .connector = m->connector,
        .decision = decision ? decision : "allow",
        /* until the policy engine decides per method, what it allows says so */
        .message = message ? message : (decision && strcmp(decision, "allow") ? NULL : GW_ALLOW_MESSAGE),
        .policy_ids = m->policy_ids,
        .policy_versions = m->policy_versions,
        .upstream_status = m->upstream_status,
        .duration_us = gh_now_us() - m->start_us,
    };
}

static int
audit(struct mreq *m, const char *method)
{
    struct gw_audit row;
    struct gh_err e = {0};

    audit_row(m, method, m->decision, m->message, &row);
    if (gw_audit_write(&row, &e) < 0) {
        GH_LOG(ERROR, "gw_audit", "audit row not written: %s", e.detail[0] ? e.detail : e.msg);
        return -1;
    }
    return 0;
}

static int
audit_unavailable(struct web_req *r, json_t *id)
{
    web_add_header(r, "Retry-After", "2");
    return reply_rpc_error(r, 503, id, GW_RPC_INTERNAL, "The audit log is unavailable; nothing was done.", NULL);
}

/* ---------------------------------------------------------------- Host / Origin */

/* host[:port] or [v6][:port] -> lower-case host and port (may be ""). */
static void
split_host(const char *in, size_t n, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon;
    size_t k;

    port[0] = '\0';
    if (n && in[0] == '[') {
        const char *rb = memchr(in, ']', n);
        k = rb ? (size_t)(rb - in) + 1 : n;
        if (rb && k < n && in[k] == ':')
            snprintf(port, pl, "%.*s", (int)(n - k - 1), in + k + 1);
    } else {
        colon = memchr(in, ':', n);
        k = colon ? (size_t)(colon - in) : n;
        if (colon)
            snprintf(port, pl, "%.*s", (int)(n - k - 1), colon + 1);
    }
    snprintf(host, hl, "%.*s", (int)k, in);
    for (char *p = host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

static bool
entry_matches(const char *entry, size_t n, const char *host, const char *port)
{
    char eh[256], ep[16];

    while (n && (*entry == ' ' || *entry == '\t'))
        entry++, n--;
    while (n && (entry[n - 1] == ' ' || entry[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(eh))
        return false;
    split_host(entry, n, eh, sizeof(eh), ep, sizeof(ep));
    return !strcmp(eh, host) && (!ep[0] || !strcmp(ep, port));
}

static bool
host_allowed(const char *hostport)
{
    char host[256], port[16];
    size_t n = strlen(hostport);

    if (n == 0 || n >= sizeof(host))
        return false;
    split_host(hostport, n, host, sizeof(host), port, sizeof(port));
    if (gh_cfg.allowed_hosts && gh_cfg.allowed_hosts[0]) {
        for (const char *p = gh_cfg.allowed_hosts; *p;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            if (entry_matches(p, len, host, port))
                return true;
            p += len + (c ? 1 : 0);
        }
        return false;
    }
    if (!strcmp(host, "localhost") || !strcmp(host, "127.0.0.1") || !strcmp(host, "[::1]"))
        return true;
    {
        const char *u = strstr(gh_cfg.public_url, "://");
        const char *end;
        char ph[256], pp[16];
        if (u == NULL)
            return false;
        u += 3;
        end = u + strcspn(u, "/?#");
        split_host(u, (size_t)(end - u), ph, sizeof(ph), pp, sizeof(pp));
        return !strcmp(ph, host);
    }
}

/* ---------------------------------------------------------------- refusals before authentication */

static const char *
slug_of(struct web_req *r)
{
    const char *slug = web_path_param(r, 0);
    return slug && *slug ? slug : "default";
}

/* A request refused before it is authenticated (Host, Origin, no token, a
 * bad one, one of another agent or without the mcp scope) writes its audit
 * row like any other, under the agent its path names, before the refusal
 * leaves: the member when the token is live, else only the kind an unknown
 * token claims; the method is the HTTP one (the body of an unauthenticated
 * request is not read).  Those rows are budgeted per client IP
 * (rate_mcp_refused_per_min): past it the answer is a 429 and only the
 * access log has the request, so a flood of bad tokens cannot fill the
 * table.  No row for an unknown agent (a 404 like any unknown path).
 * true when the caller sends its refusal; false when the 429 went instead. */
static bool
audit_refusal(struct web_req *r, const struct authz_agent *ag, const struct authz_credential *who,
              const char *claimed_kind, const char *message)
{
    struct authz_credential as = {0};
    struct gw_audit row;
    struct gh_err e = {0};

    if (ag == NULL)
        return true;
    if (authz_rate_check(r, "mcp_refused", gh_cfg.rate_mcp_refused_per_min, &e) < 0) {
        web_reply_err(r, &e);
        return false;
    }
    if (who)
        as = *who;
    else
        as.kind = claimed_kind;
    as.agent = *ag;     /* the row names the agent asked, not the token's */
    row = (struct gw_audit){
        .who = &as,
        .agent_id = ag->id,
        .method = web_method(r),
        .decision = "deny",
        .message = message,
        .duration_us = -1,
    };
    if (gw_audit_write(&row, &e) < 0)
        GH_LOG(ERROR, "gw_audit", "audit row of a refusal not written: %s", e.detail[0] ? e.detail : e.msg);
    return true;
}

/* 0 when fine; otherwise the reply has been sent. */
static int
check_rebinding(struct web_req *r)
{
    const char *host = web_header(r, "Host"), *origin = web_header(r, "Origin");
    const char *why = NULL;
    struct gh_err e = {0};
    int status = 0;

    if (host == NULL || !host_allowed(host)) {
        status = 421;
        why = "Host not allowed.";
    } else if (origin) {
        const char *u = strstr(origin, "://");
        bool ok = u && !strchr(u + 3, '/') && host_allowed(u + 3) &&
                  (!strncmp(origin, "http://", 7) || !strncmp(origin, "https://", 8));
        if (!ok) {
            status = 403;
            why = "Origin not allowed.";
        }
    }
    if (why == NULL)
        return 0;
    if (audit_refusal(r, authz_agent_by_slug(web_arena(r), slug_of(r), &e), NULL, NULL, why))
        reply_rpc_error(r, status, NULL, GW_RPC_INVALID_REQUEST, why, NULL);
    return -1;
}

/* ---------------------------------------------------------------- authentication */

static uint64_t cred_serial;        /* bumped by every credential change (see listens_recheck) */

/* The request's credential, or NULL when the reply was sent.  *serial is
 * cred_serial as it was before the credential was looked at. */
static const struct authz_credential *
authenticate(struct web_req *r, uint64_t *serial)
{
    struct gh_arena *a = web_arena(r);
    const struct authz_credential *who;
    struct authz_mcp_refusal no;

    *serial = __atomic_load_n(&cred_serial, __ATOMIC_SEQ_CST);

    if (gh_cfg.test_unauthenticated_mcp && web_header(r, "Authorization") == NULL) {
        struct gh_err e = {0};
        struct authz_agent *ag = authz_agent_by_slug(a, slug_of(r), &e);
        struct authz_credential *cr;
        if (ag == NULL) {
            web_reply_err(r, &e);
            return NULL;
        }
        cr = gh_arena_alloc(a, sizeof(*cr));
        if (cr == NULL) {
            gh_err_set(&e, 500, "server_error", "internal error", "out of memory");
            web_reply_err(r, &e);
            return NULL;
        }
        cr->kind = "test";
        cr->client_name = "unauthenticated test mode";
        cr->scope = "mcp";
        cr->agent = *ag;
        return cr;
    }
    who = authz_mcp_authenticate(r, slug_of(r), &no);
    if (who == NULL && no.e.status >= 500) {
        /* the database is away: still a JSON-RPC answer, with when to come back */
        GH_LOG(ERROR, "gw_auth", "%d: %s", no.e.status, no.e.detail[0] ? no.e.detail : no.e.msg);
        reply_failure(r, no.e.status, NULL, &no.e);
    } else if (who == NULL && audit_refusal(r, no.agent, no.who, no.claimed_kind, no.e.msg)) {
        web_reply_err(r, &no.e);
    }
    if (who && who->agent.disabled) {
        /* the kill switch (authz_agent_set_disabled): refused and audited
         * under the member; their credentials stay for when it is back on */
        static const char off[] = "This agent was disabled by its owner.";
        if (audit_refusal(r, &who->agent, who, NULL, off))
            reply_rpc_error(r, 403, NULL, GW_RPC_INVALID_REQUEST, off, NULL);
        return NULL;
    }
    return who;
}

/* ---------------------------------------------------------------- downstream SSE channels
 * A channel is the producer side of one SSE response: a byte queue the
 * reader drains.  Forwarded calls and listen streams are both channels;
 * the ticker writes keep-alive comments so a vanished client is noticed
 * even while the connection is parked. */

struct chan {
    pthread_mutex_t     lock;
    char               *buf;
    size_t              len, off, cap;
    bool                ended;      /* nothing more will be queued */
    bool                gone;       /* done() ran: the response is over */
    struct web_stream  *ws;
    int                 refs;
    int64_t             last_us;    /* last write */
    int64_t             keepalive_us;
    bool                is_fwd;     /* a forwarded call (struct fwd) */
    bool                deferred;   /* web_reply_deferred: not begun yet */
    json_t             *whole;      /* the one message of a reply that never streamed */
    void              (*free_fn)(struct chan *);
    struct chan        *next, *prev;    /* registry, for the ticker */
};

static pthread_mutex_t chans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chan *chans;

static void
chan_unref(struct chan *c)
{
    bool last;

    pthread_mutex_lock(&c->lock);
    last = --c->refs == 0;
    pthread_mutex_unlock(&c->lock);
    if (!last)
        return;
    web_stream_release(c->ws);
    json_decref(c->whole);
    free(c->buf);
    pthread_mutex_destroy(&c->lock);
    c->free_fn(c);
}

static void
chan_init(struct chan *c, int64_t keepalive_us, void (*free_fn)(struct chan *))
{
    pthread_mutex_init(&c->lock, NULL);
    c->refs = 1;
    c->keepalive_us = keepalive_us;
    c->last_us = gh_now_us();
    c->free_fn = free_fn;
}

static void
chan_register(struct chan *c)
{
    pthread_mutex_lock(&c->lock);
    c->refs++;              /* the registry's */
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&chans_lock);
    c->next = chans;
    if (chans)
        chans->prev = c;
    chans = c;
    pthread_mutex_unlock(&chans_lock);
}

static void
chan_unregister(struct chan *c)
{
    bool was = false;

    pthread_mutex_lock(&chans_lock);
    if (c->prev || c->next || chans == c) {
        if (c->prev)
            c->prev->next = c->next;
        else
            chans = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->next = c->prev = NULL;
        was = true;
    }
    pthread_mutex_unlock(&chans_lock);
    if (was)
        chan_unref(c);
}

/* Under c->lock: room for n more bytes, or -1 (nothing is queued then). */
static int
chan_room_locked(struct chan *c, size_t n)
{
    if (c->gone || c->ended)
        return -1;
    if (c->off > 0 && c->off == c->len)
        c->off = c->len = 0;
    if (c->len + n > c->cap) {
        size_t nc = c->cap ? c->cap : 512;
        char *nb;
        while (nc < c->len + n)
            nc *= 2;
        if (nc > ((size_t)64 << 20))
            return -1;          /* a client that does not read: stop queueing */
        nb = realloc(c->buf, nc);
        if (nb == NULL)
            return -1;
        c->buf = nb;
        c->cap = nc;
    }
    return 0;
}

/* Under c->lock. */
static int
chan_put_locked(struct chan *c, const char *s, size_t n)
{
    if (chan_room_locked(c, n) < 0)
        return -1;
    memcpy(c->buf + c->len, s, n);
    c->len += n;
    c->last_us = gh_now_us();
    return 0;
}

/* Queues one SSE event carrying a JSON-RPC message; end closes the stream
 * after it.  Returns the stream to wake: the caller wakes it holding none
 * of our locks (a wake may wait for MHD, and MHD may be in a done()
 * callback that wants one of them). */
static struct web_stream *
chan_queue(struct chan *c, json_t *msg, bool end)
{
    char *js;
    size_t jl;
    struct web_stream *ws;

    pthread_mutex_lock(&c->lock);
    if (msg && end && c->deferred && c->off == c->len && c->whole == NULL && !c->gone && !c->ended) {
        /* the first and last message of a reply not begun: it goes as one
         * plain JSON response (chan_start) */
        c->whole = json_incref(msg);
        c->ended = true;
        ws = c->ws;
        pthread_mutex_unlock(&c->lock);
        return ws;
    }
    pthread_mutex_unlock(&c->lock);
    js = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    pthread_mutex_lock(&c->lock);
    if (js && chan_room_locked(c, 21 + (jl = strlen(js)) + 2) == 0) {
        /* the whole event or none of it: never half an event on the stream */
        chan_put_locked(c, "event: message\ndata: ", 21);
        chan_put_locked(c, js, jl);
        chan_put_locked(c, "\n\n", 2);
    }
    if (end)
        c->ended = true;
    ws = c->gone ? NULL : c->ws;
    pthread_mutex_unlock(&c->lock);
    free(js);
    return ws;
}

/* web_reply_deferred's start: on a server thread once the channel was first
 * woken.  One final message and nothing before it: a plain JSON response;
 * anything else (a notification first, a keep-alive, an empty end): the
 * SSE stream, from what is queued. */
static void
chan_start(void *ctx, struct web_req *r)
{
    struct chan *c = ctx;
    json_t *whole;

    pthread_mutex_lock(&c->lock);
    whole = c->whole;
    c->whole = NULL;
    c->deferred = false;
    pthread_mutex_unlock(&c->lock);
    if (whole) {
        web_reply_json(r, 200, whole);
        return;
    }
    web_add_header(r, "X-Accel-Buffering", "no");
    web_stream_begin(r, 200, "text/event-stream");
}

static void
chan_send(struct chan *c, json_t *msg, bool end)
{
    web_stream_wake(chan_queue(c, msg, end));
}

static ssize_t
chan_read(void *ctx, char *buf, size_t max)
{
    struct chan *c = ctx;
    ssize_t n = WEB_STREAM_WAIT;

    pthread_mutex_lock(&c->lock);
    if (c->off < c->len) {
        size_t k = c->len - c->off < max ? c->len - c->off : max;
        memcpy(buf, c->buf + c->off, k);
        c->off += k;
        n = (ssize_t)k;
    } else if (c->ended) {
        n = WEB_STREAM_END;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* ---------------------------------------------------------------- listeners */

struct listener {
    struct chan  ch;                /* first: a listener is a channel */
    char         agent_id[40];
    char         id_hash[65];       /* session, or "" for a stateless listen */
    char         user_id[40];       /* the member's ("" for the test identity) */
    json_t      *sub_id;            /* stateless: the listen request's id */
    bool         tools, prompts, resources;
    char         cred_kind[8];      /* "pat" | "oauth" ("" for the test identity) */
    char         cred_id[40];       /* its token id */
    uint64_t     cred_serial;       /* cred_serial before it was authenticated */
    struct listener *next, *prev;
};

static pthread_mutex_t lsn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct listener *listeners;
static void listens_recheck_post(void);

static void
listener_free(struct chan *c)
{
    struct listener *l = (struct listener *)c;

    json_decref(l->sub_id);
    free(l);
}

static void
listener_done(void *ctx)
{
    struct listener *l = ctx;

    pthread_mutex_lock(&lsn_lock);
    if (l->prev)
        l->prev->next = l->next;
    else if (listeners == l)
        listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->next = l->prev = NULL;
    pthread_mutex_unlock(&lsn_lock);
    pthread_mutex_lock(&l->ch.lock);
    l->ch.gone = true;
    pthread_mutex_unlock(&l->ch.lock);
    chan_unregister(&l->ch);
    chan_unref(&l->ch);     /* the stream's reference */
}

static bool
wants(const struct listener *l, const char *method)
{
    if (!strcmp(method, "notifications/tools/list_changed"))
        return l->tools;
    if (!strcmp(method, "notifications/prompts/list_changed"))
        return l->prompts;
    if (!strcmp(method, "notifications/resources/list_changed"))
        return l->resources;
    return l->id_hash[0] != '\0';   /* other notifications: session streams only */
}

static void
listener_send(struct listener *l, const char *method, json_t *params)
{
    json_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);

    if (params)
        json_object_set(msg, "params", params);
    if (l->sub_id) {
        json_t *p = json_object_get(msg, "params");
        json_t *meta;
        if (p == NULL) {
            p = json_object();
            json_object_set_new(msg, "params", p);
        } else {
            p = json_deep_copy(p);
            json_object_set_new(msg, "params", p);
        }
        meta = json_object_get(p, "_meta");
        if (!json_is_object(meta)) {
            meta = json_object();
            json_object_set_new(p, "_meta", meta);
        }
        json_object_set(meta, "io.modelcontextprotocol/subscriptionId", l->sub_id);
    }
    chan_queue(&l->ch, msg, false);
    json_decref(msg);
}

/* To the streams of one session (id_hash), of one member's stateless
 * listens in an agent (agent_id and user_id), or of a whole agent. */
static void
notify(const char *id_hash, const char *agent_id, const char *user_id, const char *method, json_t *params)
{
    struct listener **hit = NULL;
    int n = 0, cap = 0;

    /* queue under lsn_lock, wake after it (see chan_queue) */
    pthread_mutex_lock(&lsn_lock);
    for (struct listener *l = listeners; l; l = l->next) {
        if (id_hash && strcmp(l->id_hash, id_hash))
            continue;
        if (agent_id && strcmp(l->agent_id, agent_id))
            continue;
        if (user_id && (l->id_hash[0] || strcmp(l->user_id, user_id)))
            continue;
        if (!wants(l, method))
            continue;
        listener_send(l, method, params);
        if (n == cap) {
            struct listener **nh = realloc(hit, sizeof(*hit) * (size_t)(cap ? cap * 2 : 16));
            if (nh == NULL)
                continue;       /* queued; the next keep-alive wakes it */
            hit = nh;
            cap = cap ? cap * 2 : 16;
        }
        pthread_mutex_lock(&l->ch.lock);
        l->ch.refs++;
        pthread_mutex_unlock(&l->ch.lock);
        hit[n++] = l;
        if (id_hash && l->id_hash[0])
            break;      /* a session's message goes on one of its streams only */
    }
    pthread_mutex_unlock(&lsn_lock);
    for (int i = 0; i < n; i++) {
        struct web_stream *ws;
        pthread_mutex_lock(&hit[i]->ch.lock);
        ws = hit[i]->ch.gone ? NULL : hit[i]->ch.ws;
        pthread_mutex_unlock(&hit[i]->ch.lock);
        web_stream_wake(ws);
        chan_unref(&hit[i]->ch);
    }
    free(hit);
}

void
gw_notify_session(struct gw_session *s, const char *method, json_t *params)
{
    if (s->stateless)   /* the implicit state of one member: that member's listens */
        notify(NULL, s->agent_id, s->user_id ? s->user_id : "", method, params);
    else
        notify(s->id_hash, NULL, NULL, method, params);
}

void
gw_notify_agent(const char *agent_id, const char *method)
{
    notify(NULL, agent_id, NULL, method, NULL);
}

static struct listener *
listener_open(struct mreq *m, json_t *sub_id, json_t *filter)
{
    struct listener *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    chan_init(&l->ch, 15 * 1000000LL, listener_free);
    snprintf(l->agent_id, sizeof(l->agent_id), "%s", m->who->agent.id);
    snprintf(l->user_id, sizeof(l->user_id), "%s", m->who->user_id ? m->who->user_id : "");
    if (!m->stateless)
        snprintf(l->id_hash, sizeof(l->id_hash), "%s", m->s->id_hash);
    if (m->who->token_id && (!strcmp(m->who->kind, "pat") || !strcmp(m->who->kind, "oauth"))) {
        snprintf(l->cred_kind, sizeof(l->cred_kind), "%s", m->who->kind);
        snprintf(l->cred_id, sizeof(l->cred_id), "%s", m->who->token_id);
    }
    l->cred_serial = m->cred_serial;
    l->sub_id = json_incref(sub_id);
    l->tools = filter ? json_is_true(json_object_get(filter, "toolsListChanged")) : true;
    l->prompts = filter ? json_is_true(json_object_get(filter, "promptsListChanged")) : true;
    l->resources = filter ? json_is_true(json_object_get(filter, "resourcesListChanged")) : true;
    return l;
}

static int
listener_start(struct mreq *m, struct listener *l, json_t *ack)
{
    struct web_stream *ws = NULL;

    web_add_header(m->r, "X-Accel-Buffering", "no");
    l->ch.refs++;           /* the stream's */
    pthread_mutex_lock(&l->ch.lock);
    chan_put_locked(&l->ch, ": stream open\n\n", 16);
    pthread_mutex_unlock(&l->ch.lock);
    if (ack) {
        chan_send(&l->ch, ack, false);
    }
    if (web_reply_stream(m->r, 200, "text/event-stream", chan_read, &l->ch, listener_done, &ws) < 0) {
        l->ch.refs--;
        chan_unref(&l->ch);
        return reply_rpc_error(m->r, 500, NULL, GW_RPC_INTERNAL, "Cannot open the stream.", NULL);
    }
    pthread_mutex_lock(&l->ch.lock);
    l->ch.ws = ws;
    pthread_mutex_unlock(&l->ch.lock);
    chan_register(&l->ch);
    pthread_mutex_lock(&lsn_lock);
    l->next = listeners;
    if (listeners)
        listeners->prev = l;
    listeners = l;
    pthread_mutex_unlock(&lsn_lock);
    /* a change since the credential was looked at: a recheck that began
     * before we were listed would have missed us */
    if (l->cred_serial != __atomic_load_n(&cred_serial, __ATOMIC_SEQ_CST))
        listens_recheck_post();
    chan_unref(&l->ch);     /* ours; the stream and registry keep it */
    return 0;
}

/* ---------------------------------------------------------------- listens of fallen credentials
 * A listen stream (GET or subscriptions/listen) outlives the request that
 * authenticated it.  After every change that may have revoked a credential
 * (authz_credentials_watch: here, in another process, or missed while the
 * database listener was away) a worker asks the database which of the
 * open streams' credentials no longer stand and ends those streams; the
 * client comes back with a credential that works, or not at all.  One
 * pass at a time is queued; a change during a pass queues the next. */

static bool recheck_queued, recheck_failed;

/* Ends the listen streams that match() picks (called under lsn_lock); the
 * clients see their stream close.  Returns how many were ended. */
static int
listens_end(bool (*match)(const struct listener *l, const void *ctx), const void *ctx)
{
    struct listener **ended = NULL;
    int n = 0, cap = 0;

    pthread_mutex_lock(&lsn_lock);
    for (struct listener *l = listeners; l; l = l->next)
        cap++;
    if (cap)
        ended = malloc(sizeof(*ended) * (size_t)cap);
    for (struct listener *l = listeners; ended && l; l = l->next) {
        if (!match(l, ctx))
            continue;
        pthread_mutex_lock(&l->ch.lock);
        if (!l->ch.ended && !l->ch.gone) {
            l->ch.ended = true;
            l->ch.refs++;
            ended[n++] = l;
        }
        pthread_mutex_unlock(&l->ch.lock);
    }
    pthread_mutex_unlock(&lsn_lock);
    if (cap && ended == NULL)
        GH_LOG(WARN, "gw_listen", "out of memory: listen streams not ended");
    /* woken holding none of our locks (see chan_queue) */
    for (int i = 0; i < n; i++) {
        web_stream_wake(ended[i]->ch.ws);
        chan_unref(&ended[i]->ch);
    }
    free(ended);
    return n;
}

struct fallen { const char **kind, **id; int n; };

static bool
credential_fell(const struct listener *l, const void *ctx)
{
    const struct fallen *f = ctx;

    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->id[i], l->cred_id) && !strcmp(f->kind[i], l->cred_kind))
            return true;
    return false;
}

static void
listens_recheck(void *ctx)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    const char **kind = NULL, **id = NULL;
    bool *fallen = NULL;
    int n = 0, cap = 0, nfallen = 0, nended;

    (void)ctx;
    __atomic_store_n(&recheck_queued, false, __ATOMIC_SEQ_CST);
    if (a == NULL)
        goto failed;
    pthread_mutex_lock(&lsn_lock);
    for (struct listener *l = listeners; l; l = l->next)
        cap += l->cred_id[0] != '\0';
    kind = gh_arena_alloc(a, sizeof(*kind) * (size_t)(cap + 1));
    id = gh_arena_alloc(a, sizeof(*id) * (size_t)(cap + 1));
    for (struct listener *l = listeners; kind && id && l; l = l->next)
        if (l->cred_id[0]) {
            kind[n] = gh_arena_strdup(a, l->cred_kind);
            id[n] = gh_arena_strdup(a, l->cred_id);
            if (kind[n] == NULL || id[n] == NULL)
                break;
            n++;
        }
    pthread_mutex_unlock(&lsn_lock);
    if (n < cap)
        goto failed;
    if (n == 0)
        goto out;
    fallen = gh_arena_alloc(a, sizeof(*fallen) * (size_t)n);
    if (fallen == NULL || authz_credentials_fallen(a, kind, id, n, fallen, &e) < 0)
        goto failed;
    /* the fallen ones (few) to the front */
    for (int i = 0; i < n; i++)
        if (fallen[i]) {
            kind[nfallen] = kind[i];
            id[nfallen++] = id[i];
        }
    if (nfallen == 0)
        goto out;
    /* the streams of those credentials: ones opened since the snapshot were
     * checked at their own authentication or queue their own pass */
    nended = listens_end(credential_fell, &(struct fallen){ kind, id, nfallen });
    if (nended)
        GH_LOG(INFO, "gw_listen", "%d listen stream(s) ended: their credential was revoked", nended);
    goto out;
failed:
    /* the ticker queues the next attempt */
    GH_LOG(WARN, "gw_listen", "cannot recheck the credentials of open streams: %s",
           e.detail[0] ? e.detail : e.msg[0] ? e.msg : "out of memory");
    __atomic_store_n(&recheck_failed, true, __ATOMIC_SEQ_CST);
out:
    gh_arena_free(a);
}

static bool
of_session(const struct listener *l, const void *ctx)
{
    return l->id_hash[0] && !strcmp(l->id_hash, ctx);
}

void
gw_mcp_session_ended(const char *id_hash)
{
    int n = listens_end(of_session, id_hash);

    if (n)
        GH_LOG(INFO, "gw_listen", "%d GET stream(s) ended with their session", n);
}

static void
listens_recheck_post(void)
{
    if (__atomic_exchange_n(&recheck_queued, true, __ATOMIC_SEQ_CST))
        return;
    if (gw_work_post(listens_recheck, NULL) < 0)
        __atomic_store_n(&recheck_queued, false, __ATOMIC_SEQ_CST);     /* stopping */
}

static void
on_credentials_changed(void *ctx)
{
    (void)ctx;
    __atomic_add_fetch(&cred_serial, 1, __ATOMIC_SEQ_CST);
    listens_recheck_post();
}

/* ---------------------------------------------------------------- replies after their audit row
 * The credential and the row's strings are copied: the response (and the
 * request arena) may end before the writer thread has formatted the row. */

static char *
xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void
cred_dup(struct authz_credential *d, const struct authz_credential *w)
{
    d->kind = xstrdup(w->kind);
    d->token_id = xstrdup(w->token_id);
    d->grant_id = xstrdup(w->grant_id);
    d->user_id = xstrdup(w->user_id);
    d->user_email = xstrdup(w->user_email);
    d->client_id = xstrdup(w->client_id);
    d->client_name = xstrdup(w->client_name);
    d->scope = xstrdup(w->scope);
    d->agent.id = xstrdup(w->agent.id);
    d->agent.slug = xstrdup(w->agent.slug);
    d->agent.name = xstrdup(w->agent.name);
    d->agent.untrusted = w->agent.untrusted;
    d->expires_at = w->expires_at;
}

static void
cred_release(struct authz_credential *c)
{
    free((char *)c->kind);
    free(c->token_id);
    free(c->grant_id);
    free(c->user_id);
    free(c->user_email);
    free(c->client_id);
    free(c->client_name);
    free(c->scope);
    free(c->agent.id);
    free(c->agent.slug);
    free(c->agent.name);
}

struct areply {
    struct chan  ch;                /* first: an audited reply is a channel */
    struct authz_credential who;
    struct gw_audit row;
    char        *strs[9];           /* what row points to */
    char        *body;
    json_t      *id;                /* the request's, for an error instead of body */
    bool         unaudited;         /* the row could not be written: body is the error */
    /* initialize: the new session, announced only with its row committed,
     * else deleted again */
    struct gw_session *s;
    char        *session_wire;
};

static void
areply_free(struct chan *c)
{
    struct areply *ar = (struct areply *)c;

    cred_release(&ar->who);
    for (size_t i = 0; i < GH_ARRAY_LEN(ar->strs); i++)
        free(ar->strs[i]);
    free(ar->body);
    json_decref(ar->id);
    if (ar->s)
        gw_session_put(ar->s);
    free(ar->session_wire);
    free(ar);
}

static void
areply_audited(void *ctx, int ok)
{
    struct areply *ar = ctx;
    struct web_stream *ws;

    if (ok < 0) {
        /* no answer leaves without its audit row: the client gets an error instead */
        GH_LOG(ERROR, "gw_audit", "audit row of %s not written", ar->row.method);
        /* answered here, nothing was done upstream: the same request may be sent again */
        json_t *err = rpc_error(ar->id, GW_RPC_INTERNAL, "The audit log is unavailable.",
                                json_pack("{s:b, s:i}", "retryable", 1, "retryAfter", 2));
        free(ar->body);
        ar->body = json_dumps(err, JSON_COMPACT);
        json_decref(err);
    }
    pthread_mutex_lock(&ar->ch.lock);
    ar->unaudited = ok < 0;
    ar->ch.ended = true;
    ws = ar->ch.ws;
    pthread_mutex_unlock(&ar->ch.lock);
    web_stream_wake(ws);
    chan_unref(&ar->ch);        /* the audit's reference */
}

/* A session created by initialize whose id was never sent: deleted again. */
static void
forget_session(struct gw_session *s)
{
    struct gh_err e = {0};

    if (gw_session_delete(s, &e) < 0)
        GH_LOG(WARN, "gw_session", "unannounced session not deleted: %s", e.detail[0] ? e.detail : e.msg);
}

/* On a server thread once the row is committed (or at shutdown, before). */
static void
areply_start(void *ctx, struct web_req *r)
{
    struct areply *ar = ctx;
    bool ready, unaudited;

    pthread_mutex_lock(&ar->ch.lock);
    ready = ar->ch.ended && ar->body;
    unaudited = ar->unaudited;
    pthread_mutex_unlock(&ar->ch.lock);
    if (ar->s && (!ready || unaudited))
        forget_session(ar->s);  /* its initialize has no row, or no answer */
    else if (ar->session_wire)
        web_add_header(r, "Mcp-Session-Id", ar->session_wire);
    if (ready && unaudited) {
        web_add_header(r, "Retry-After", "2");
        web_reply(r, 503, "application/json", ar->body, strlen(ar->body));
    } else if (ready)
        web_reply(r, 200, "application/json", ar->body, strlen(ar->body));
    else
        reply_rpc_error(r, 503, ar->id, GW_RPC_INTERNAL, "The server is shutting down.", NULL);
}

static void
areply_done(void *ctx)
{
    struct areply *ar = ctx;

    pthread_mutex_lock(&ar->ch.lock);
    ar->ch.gone = true;
    pthread_mutex_unlock(&ar->ch.lock);
    chan_unref(&ar->ch);        /* the stream's reference */
}

/* The 200 reply to a request the gateway answered itself, sent once its
 * audit row is committed — without this thread waiting for the commit. */
static int
reply_audited(struct mreq *m, const char *method, json_t *id, json_t *result)
{
    struct areply *ar;
    struct web_stream *ws = NULL;
    char *body;

    if (m->stateless)
        stateless_result(result, m->method);
    body = json_dumps(gh_arena_json(m->a, rpc_result(id, result)), JSON_COMPACT);
    ar = calloc(1, sizeof(*ar));
    if (body == NULL || ar == NULL) {
        free(body);
        free(ar);
        if (m->new_session)
            forget_session(m->s);
        audit(m, method);
        return reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    chan_init(&ar->ch, 15 * 1000000LL, areply_free);
    ar->body = body;
    ar->id = json_incref(id);
    if (m->new_session) {
        gw_session_ref(m->s);
        ar->s = m->s;
        ar->session_wire = xstrdup(m->new_session);
    }
    cred_dup(&ar->who, m->who);
    ar->row = (struct gw_audit){
        .who = &ar->who,
        .agent_id = ar->who.agent.id,
        .session_id = ar->strs[0] = xstrdup(m->s && !m->stateless ? m->s->id_hash : NULL),
        .method = ar->strs[1] = xstrdup(method),
        .tool = ar->strs[2] = xstrdup(m->tool),
        .connector = ar->strs[3] = xstrdup(m->connector),
        .decision = ar->strs[4] = xstrdup(m->decision ? m->decision : "allow"),
        .message = ar->strs[5] = xstrdup(m->message ? m->message
                                         : (m->decision && strcmp(m->decision, "allow") ? NULL : GW_ALLOW_MESSAGE)),
        .policy_ids = ar->strs[6] = xstrdup(m->policy_ids),
        .policy_versions = ar->strs[7] = xstrdup(m->policy_versions),
        .request_id = ar->strs[8] = xstrdup(web_request_id(m->r)),
        .upstream_status = m->upstream_status,
        .duration_us = gh_now_us() - m->start_us,
    };
    ar->ch.refs++;              /* the stream's */
    if (web_reply_deferred(m->r, chan_read, &ar->ch, areply_done, areply_start, &ws) < 0) {
        ar->ch.refs--;
        if (m->new_session)
            forget_session(m->s);
        audit(m, method);
        chan_unref(&ar->ch);
        return reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    pthread_mutex_lock(&ar->ch.lock);
    ar->ch.ws = ws;
    ar->ch.refs++;              /* the audit's */
    pthread_mutex_unlock(&ar->ch.lock);
    if (gw_audit_submit(&ar->row, ar->row.request_id, areply_audited, ar) < 0) {
        struct gh_err e = {0};
        areply_audited(ar, gw_audit_write(&ar->row, &e));
    }
    chan_unref(&ar->ch);        /* ours */
    return 0;
}

/* ---------------------------------------------------------------- forwarded calls */

struct fwd {
    struct chan  ch;                /* first: a forwarded call is a channel */
    struct gw_session *s;
    struct gw_connector c;          /* heap copies */
    struct gw_header *hdrs;         /* credentials: wiped at free */
    int          nhdrs;
    json_t      *msg;               /* the upstream request (our id) */
    json_t      *down_id;
    json_t      *up_id;
    char        *proto_up;          /* upstream revision at start */
    bool         stateless;
    bool         no_logs;           /* stateless without a logLevel in _meta */
    bool         retried;
    bool         final_seen;        /* the upstream's response came */
    bool         upstream_done;
    bool         cancel_sent;
    bool         client_cancelled;  /* notifications/cancelled from the client */
    json_t      *final;             /* waiting for its audit row */
    struct gw_up_xfer *x;
    /* audit */
    struct authz_credential who;
    char        *method, *tool, *request_id, *policy_ids, *policy_versions;
    int64_t      start_us;
    int          upstream_status;
    char        *message;
    char         call_id[GW_AUDIT_CALL_ID_LEN + 1];  /* of its write-ahead row */
    struct gw_audit row;            /* the outcome, submitted at the end */
};

static void
fwd_free(struct chan *c)
{
    struct fwd *f = (struct fwd *)c;

    gw_up_release(f->x);
    gw_session_put(f->s);
    free(f->c.id);
    free(f->c.name);
    free(f->c.url);
    for (int i = 0; i < f->nhdrs; i++) {
        free(f->hdrs[i].name);
        if (f->hdrs[i].value) {
            gh_wipe(f->hdrs[i].value, strlen(f->hdrs[i].value));
            free(f->hdrs[i].value);
        }
    }
    free(f->hdrs);
    json_decref(f->msg);
    json_decref(f->down_id);
    json_decref(f->up_id);
    json_decref(f->final);
    free(f->proto_up);
    cred_release(&f->who);
    free(f->method);
    free(f->tool);
    free(f->request_id);
    free(f->policy_ids);
    free(f->policy_versions);
    free(f->message);
    free(f);
}

static void fwd_start(struct fwd *f);
static void fwd_send_cancelled(struct fwd *f, const char *reason);
static bool fwd_relay_send(void *call, json_t *msg);
static void fwd_relay_hold(void *call, bool take);

/* The final message goes once its audit row is committed: the row is
 * submitted to the group commit without a thread waiting for it, and the
 * writer thread lets the message go (or, with the writer stopped, this
 * thread writes and waits). */
static void
fwd_release_final(struct fwd *f)
{
    json_t *final;

    pthread_mutex_lock(&f->ch.lock);
    final = f->final;
    f->final = NULL;
    pthread_mutex_unlock(&f->ch.lock);
    chan_send(&f->ch, final, true);
    json_decref(final);
    chan_unref(&f->ch);     /* the audit's reference */
}

static void
fwd_audited(void *ctx, int ok)
{
    struct fwd *f = ctx;

    if (ok < 0) {
        /* the upstream's answer does not leave without its audit row */
        GH_LOG(ERROR, "gw_audit", "audit row of %s not written", f->method);
        pthread_mutex_lock(&f->ch.lock);
        if (f->final) {
            /* its row was written ahead, so the upstream had the call: not to be repeated blindly */
            json_decref(f->final);
            f->final = rpc_error(f->down_id, GW_RPC_INTERNAL, "The audit log is unavailable.",
                                 json_pack("{s:b}", "retryable", 0));
        }
        pthread_mutex_unlock(&f->ch.lock);
    }
    fwd_release_final(f);
}

/* The call's audit row: written ahead by forward(), completed by
 * fwd_conclude() with the outcome. */
static void
fwd_row(const struct fwd *f, struct gw_audit *row)
{
    *row = (struct gw_audit){
        .who = &f->who,
        .agent_id = f->who.agent.id,
        .session_id = f->stateless ? NULL : f->s->id_hash,
        .method = f->method,
        .tool = f->tool,
        .connector = f->c.name,
        .decision = "allow",
        .policy_ids = f->policy_ids,
        .policy_versions = f->policy_versions,
        .message = f->message,
        .request_id = f->request_id,
        .call_id = f->call_id,
        .duration_us = -1,
    };
}

/* Any thread: the answer is known; audit, then send. */
static void
fwd_conclude(struct fwd *f, json_t *final)
{
    pthread_mutex_lock(&f->ch.lock);
    f->final = final;
    f->ch.refs++;
    pthread_mutex_unlock(&f->ch.lock);
    fwd_row(f, &f->row);
    f->row.outcome = true;
    f->row.acted = true;            /* its row exists: the outcome is kept until written */
    f->row.upstream_status = f->upstream_status;
    f->row.duration_us = gh_now_us() - f->start_us;
    f->row.upstream_error = final ? gh_json_str(json_object_get(final, "error"), "message") : "cancelled by the client";
    if (gw_audit_submit(&f->row, f->request_id, fwd_audited, f) < 0) {
        struct gh_err e = {0};
        fwd_audited(f, gw_audit_write(&f->row, &e));
    }
}

/* The audit row keeps the decision's message (why the call was allowed);
 * what went wrong upstream goes to the log and to the client. */
static void
fwd_error(struct fwd *f, const char *text)
{
    bool own = gh_log_request_id()[0] == '\0';   /* an I/O or worker thread */

    if (own)
        gh_log_context(f->request_id, "gw_forward");
    GH_LOG(WARN, "gw_forward", "%s %s: %s", f->method, f->tool ? f->tool : "", text);
    if (own)
        gh_log_context(NULL, NULL);
    fwd_conclude(f, rpc_error(f->down_id, GW_RPC_UPSTREAM, text, NULL));
}

static void
fwd_on_message(struct gw_up_xfer *x, json_t *msg, void *ctx)
{
    struct fwd *f = ctx;
    json_t *id = json_object_get(msg, "id");
    const char *method = gh_json_str(msg, "method");

    if (f->final_seen)
        return;
    if (method == NULL && id && json_equal(id, f->up_id)) {
        /* msg was parsed for this call alone: it is ours to change */
        json_t *out = json_incref(msg);
        json_t *res = json_object_get(out, "result");
        if (gw_up_status(x) == 404 && f->proto_up && strcmp(f->proto_up, GW_PROTO_2026_07_28) && !f->retried) {
            json_decref(out);   /* the upstream lost its session: on_done redoes it */
            return;
        }
        f->final_seen = true;
        json_object_set(out, "id", f->down_id);
        if (f->stateless) {
            stateless_result(res, f->method);
            stateless_error(json_object_get(out, "error"));
        }
        f->upstream_status = (int)gw_up_status(x);
        fwd_conclude(f, out);
        return;
    }
    if (method && id == NULL) {
        /* progress, log messages and the like: on to the client now; a
         * 2026-07-28 request gets log messages only when it asked */
        if (f->no_logs && !strcmp(method, "notifications/message"))
            return;
        chan_send(&f->ch, msg, false);
        return;
    }
    if (method && id) {
        /* a request from the upstream (sampling, elicitation, roots, ping) */
        struct gw_relay_call rc = { { f->s, &f->c, f->hdrs, f->nhdrs }, f->stateless, f->request_id,
                                    f, fwd_relay_send, fwd_relay_hold };
        gw_relay_request(&rc, msg);
    }
}

/* How relay.c reaches a forwarded call: its stream while it is open, and a
 * reference while a relay waits for the client. */
static bool
fwd_relay_send(void *call, json_t *msg)
{
    struct fwd *f = call;
    bool open;

    pthread_mutex_lock(&f->ch.lock);
    open = !f->ch.gone && !f->ch.ended && !f->final_seen;
    pthread_mutex_unlock(&f->ch.lock);
    if (open && msg)
        chan_send(&f->ch, msg, false);
    return open;
}

static void
fwd_relay_hold(void *call, bool take)
{
    struct fwd *f = call;

    if (!take) {
        chan_unref(&f->ch);
        return;
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;
    pthread_mutex_unlock(&f->ch.lock);
}

static void
fwd_retry_work(void *ctx)
{
    struct fwd *f = ctx;
    struct gh_arena *a = gh_arena_new(0);
    struct gw_call_target t = { f->s, &f->c, f->hdrs, f->nhdrs };
    struct gh_err e = {0};

    if (a == NULL || gw_up_ensure(a, &t, true, &e) < 0) {
        fwd_error(f, e.msg[0] ? e.msg : "Upstream unavailable.");
    } else {
        bool gone;
        pthread_mutex_lock(&f->ch.lock);
        gone = f->ch.gone;
        pthread_mutex_unlock(&f->ch.lock);
        if (gone)
            fwd_error(f, "client disconnected");
        else
            fwd_start(f);
    }
    gh_arena_free(a);
    chan_unref(&f->ch);     /* the work's reference */
}

static void
fwd_on_done(struct gw_up_xfer *x, void *ctx)
{
    struct fwd *f = ctx;
    long st = gw_up_status(x);
    bool gone;

    f->upstream_status = (int)st;
    pthread_mutex_lock(&f->ch.lock);
    gone = f->ch.gone;
    pthread_mutex_unlock(&f->ch.lock);
    if (!f->final_seen) {
        char text[200];
        if (st == 404 && f->proto_up && strcmp(f->proto_up, GW_PROTO_2026_07_28) && !f->retried && !gone) {
            /* the upstream dropped its session: new handshake, then again */
            f->retried = true;
            pthread_mutex_lock(&f->ch.lock);
            f->ch.refs++;
            pthread_mutex_unlock(&f->ch.lock);
            if (gw_work_post(fwd_retry_work, f) == 0)
                goto out;
            chan_unref(&f->ch);
        }
        if (f->client_cancelled) {
            /* the client cancelled: no response is due, only the audit row */
            f->final_seen = true;
            fwd_conclude(f, NULL);
            goto out;
        }
        if (gone)
            snprintf(text, sizeof(text), "client disconnected");
        else if (gw_up_timed_out(x)) {
            snprintf(text, sizeof(text), "Upstream '%s' timed out.", f->c.name);
            fwd_send_cancelled(f, "The gateway's call timeout passed.");
        }
        else if (st >= 400)
            snprintf(text, sizeof(text), "Upstream '%s' answered HTTP %ld.", f->c.name, st);
        else if (st == 0)
            snprintf(text, sizeof(text), "Upstream '%s' is unavailable.", f->c.name);
        else
            snprintf(text, sizeof(text), "Upstream '%s' ended without an answer.", f->c.name);
        f->final_seen = true;
        fwd_error(f, text);
    }
out:
    chan_unref(&f->ch);     /* the transfer's reference */
}

static void
fwd_start(struct fwd *f)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gw_call_target t = { f->s, &f->c, f->hdrs, f->nhdrs };
    struct gw_up_req rq = {0};
    struct gh_err e = {0};
    json_t *msg = f->msg;       /* gw_up_prepare copies it if it must change it */
    struct gw_up_xfer *x;
    struct gw_upstate *u;
    bool gone;

    if (a == NULL || msg == NULL || gw_up_prepare(a, &t, msg, &rq, &e) < 0) {
        fwd_error(f, "Internal error.");
        goto out;
    }
    pthread_mutex_lock(&f->s->lock);
    u = gw_session_upstate(f->s, &f->c);
    free(f->proto_up);
    f->proto_up = xstrdup(u ? u->proto : "");
    pthread_mutex_unlock(&f->s->lock);
    rq.on_message = fwd_on_message;
    rq.on_done = fwd_on_done;
    rq.ctx = f;
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;           /* the transfer's */
    pthread_mutex_unlock(&f->ch.lock);
    x = gw_up_start(&rq);
    if (x == NULL) {
        chan_unref(&f->ch);
        fwd_error(f, "Internal error.");
        goto out;
    }
    pthread_mutex_lock(&f->ch.lock);
    gw_up_release(f->x);
    f->x = x;
    gone = f->ch.gone;
    pthread_mutex_unlock(&f->ch.lock);
    if (gone)
        gw_up_cancel(x);        /* the client left while this one started */
out:
    gh_arena_free(a);
}

/* The writer thread (or forward's, the writer stopped): the call's
 * write-ahead row is committed, so the call may go upstream — unless the
 * client has left meanwhile (then its outcome says so); or it is not, and
 * nothing goes: the client gets the error, the row no outcome. */
static void
fwd_ahead_done(void *ctx, int ok)
{
    struct fwd *f = ctx;
    bool gone;

    pthread_mutex_lock(&f->ch.lock);
    gone = f->ch.gone;
    if (ok < 0)
        f->final_seen = true;
    pthread_mutex_unlock(&f->ch.lock);
    if (ok < 0) {
        json_t *err = rpc_error(f->down_id, GW_RPC_INTERNAL, "The audit log is unavailable; nothing was done.", NULL);
        GH_LOG(ERROR, "gw_audit", "write-ahead row of %s (request %s) not written: not forwarded", f->method,
               f->request_id ? f->request_id : "-");
        chan_send(&f->ch, err, true);
        json_decref(err);
    } else if (gone) {
        f->final_seen = true;
        fwd_error(f, "client disconnected");
    } else {
        fwd_start(f);
    }
    chan_unref(&f->ch);     /* the audit's reference */
}

static void
cancel_done(struct gw_up_xfer *x, void *ctx)
{
    (void)x;
    (void)ctx;
}

static void
cancel_msg(struct gw_up_xfer *x, json_t *m, void *ctx)
{
    (void)x;
    (void)m;
    (void)ctx;
}

/* A legacy upstream learns of a cancel from notifications/cancelled (a
 * 2026-07-28 upstream from the closed stream alone).  Any thread. */
static void
fwd_send_cancelled(struct fwd *f, const char *reason)
{
    struct gh_arena *a;
    struct gw_call_target t = { f->s, &f->c, f->hdrs, f->nhdrs };
    struct gw_up_req rq = {0};
    struct gh_err e = {0};
    json_t *note;

    if (f->proto_up == NULL || !strcmp(f->proto_up, GW_PROTO_2026_07_28))
        return;
    a = gh_arena_new(0);
    note = json_pack("{s:s, s:s, s:{s:O, s:s}}", "jsonrpc", "2.0", "method", "notifications/cancelled",
                     "params", "requestId", f->up_id, "reason", reason);
    if (a && note && gw_up_prepare(a, &t, note, &rq, &e) == 0) {
        rq.on_message = cancel_msg;
        rq.on_done = cancel_done;
        gw_up_release(gw_up_start(&rq));
    }
    json_decref(note);
    gh_arena_free(a);
}

/* notifications/cancelled from a session's client: the forwarded call with
 * that request id stops upstream, and its stream ends without a response. */
static void
cancel_by_client(struct gw_session *s, json_t *request_id, const char *reason)
{
    struct fwd *hit = NULL;
    struct gw_up_xfer *x = NULL;
    bool go = false;

    if (request_id == NULL)
        return;
    pthread_mutex_lock(&chans_lock);
    for (struct chan *c = chans; c && !hit; c = c->next) {
        struct fwd *f = (struct fwd *)c;
        if (!c->is_fwd || f->s != s || !json_equal(f->down_id, request_id))
            continue;
        pthread_mutex_lock(&c->lock);
        c->refs++;
        pthread_mutex_unlock(&c->lock);
        hit = f;
    }
    pthread_mutex_unlock(&chans_lock);
    if (hit == NULL)
        return;
    pthread_mutex_lock(&hit->ch.lock);
    if (!hit->final_seen && !hit->cancel_sent) {
        hit->cancel_sent = hit->client_cancelled = go = true;
        x = hit->x;
    }
    pthread_mutex_unlock(&hit->ch.lock);
    if (go && x) {
        gw_up_cancel(x);
        fwd_send_cancelled(hit, reason ? reason : "The client cancelled the request.");
    }
    chan_unref(&hit->ch);
}

/* A notification or a response from the client of s (msg, method NULL
 * for a response), once its audit row is committed: a cancellation goes
 * to the call it names, an answer to the relayed request it answers. */
static void
client_note(struct gw_session *s, const char *method, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");

    if (method && !strcmp(method, "notifications/cancelled"))
        cancel_by_client(s, json_object_get(params, "requestId"), gh_json_str(params, "reason"));
    if (method == NULL)
        gw_relay_response(s, msg);
}

/* The client went away (or the response ended): stop the upstream work. */
static void
fwd_stream_done(void *ctx)
{
    struct fwd *f = ctx;
    struct gw_up_xfer *x;
    bool cancel;

    pthread_mutex_lock(&f->ch.lock);
    f->ch.gone = true;
    cancel = !f->final_seen && !f->cancel_sent;
    f->cancel_sent = true;
    x = f->x;
    pthread_mutex_unlock(&f->ch.lock);
    chan_unregister(&f->ch);
    if (cancel && x) {
        gw_up_cancel(x);
        fwd_send_cancelled(f, "The client disconnected.");
        GH_LOG(INFO, "gw_forward", "client gone: upstream request to %s cancelled", f->c.name);
    }
    chan_unref(&f->ch);     /* the stream's reference */
}

/* Forwards msg (already renamed for the upstream) and answers with the
 * upstream's stream. */
static int
forward(struct mreq *m, struct gw_connector *c, json_t *id, const char *method, json_t *params)
{
    struct gh_arena *a = m->a;
    struct gw_call_target t = { m->s, c, NULL, 0 };
    struct gh_err e = {0};
    struct fwd *f;
    struct web_stream *ws = NULL;
    const struct authz_credential *w = m->who;

    m->connector = c->name;
    if (gw_connector_auth_headers(a, c, m->who, &t.headers, &t.nheaders, &e) < 0 ||
        gw_up_ensure(a, &t, false, &e) < 0) {
        m->message = e.msg[0] ? gh_arena_strdup(a, e.msg) : "Upstream unavailable.";
        audit(m, method);
        GH_LOG(WARN, "gw_forward", "connector %s: %s", c->name, e.detail[0] ? e.detail : e.msg);
        return web_reply_json(m->r, 200, rpc_error(id, GW_RPC_UPSTREAM, m->message, NULL));
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    chan_init(&f->ch, 2 * 1000000LL, fwd_free);
    f->ch.is_fwd = true;
    f->s = m->s;
    gw_session_ref(m->s);       /* the call's own: it may outlive the request */
    f->request_id = xstrdup(web_request_id(m->r));
    f->policy_ids = xstrdup(m->policy_ids);
    f->policy_versions = xstrdup(m->policy_versions);
    f->c.id = xstrdup(c->id);
    f->c.name = xstrdup(c->name);
    f->c.url = xstrdup(c->url);
    f->c.agent_id = NULL;
    f->c.enabled = true;
    f->hdrs = calloc((size_t)t.nheaders + 1, sizeof(*f->hdrs));
    for (int i = 0; f->hdrs && i < t.nheaders; i++) {
        f->hdrs[i].name = xstrdup(t.headers[i].name);
        f->hdrs[i].value = xstrdup(t.headers[i].value);
        f->nhdrs++;
    }
    f->up_id = gw_up_next_id();
    f->down_id = json_incref(id);
    f->msg = json_pack("{s:s, s:O, s:s, s:O}", "jsonrpc", "2.0", "id", f->up_id, "method", method,
                       "params", params);
    f->stateless = m->stateless;
    f->no_logs = m->stateless &&
                 !gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/logLevel");
    cred_dup(&f->who, w);
    f->method = xstrdup(method);
    f->tool = xstrdup(m->tool);
    f->message = xstrdup(m->message ? m->message : GW_ALLOW_MESSAGE);
    f->start_us = m->start_us;
    if (f->c.id == NULL || f->c.name == NULL || f->c.url == NULL || f->msg == NULL || f->hdrs == NULL) {
        chan_unref(&f->ch);
        return reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    if (gw_audit_call_id(f->call_id) < 0) {
        chan_unref(&f->ch);
        return audit_unavailable(m->r, id);
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;           /* the stream's */
    f->ch.deferred = true;
    pthread_mutex_unlock(&f->ch.lock);
    if (web_reply_deferred(m->r, chan_read, &f->ch, fwd_stream_done, chan_start, &ws) < 0) {
        f->ch.refs--;
        chan_unref(&f->ch);
        return reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.ws = ws;
    pthread_mutex_unlock(&f->ch.lock);
    chan_register(&f->ch);
    /* write-ahead: the call goes upstream once its row is committed
     * (fwd_ahead_done), without this thread waiting for the commit */
    fwd_row(f, &f->row);
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;           /* the audit's */
    pthread_mutex_unlock(&f->ch.lock);
    if (gw_audit_submit(&f->row, f->request_id, fwd_ahead_done, f) < 0)
        fwd_ahead_done(f, -1);  /* the writer is not running */
    chan_unref(&f->ch);     /* ours */
    return 0;
}

/* ---------------------------------------------------------------- methods */

static json_t *
capabilities(void)
{
    return json_pack("{s:{s:b}, s:{s:b, s:b}, s:{s:b}, s:{}, s:{}}", "tools", "listChanged", 1, "resources",
                     "listChanged", 1, "subscribe", 1, "prompts", "listChanged", 1, "logging",
                     "completions");
}

static json_t *
server_info(void)
{
    return json_pack("{s:s, s:s, s:s}", "name", "gatehouse", "title", "Gatehouse MCP gateway",
                     "version", "0.1.0");
}

static int
reply_result(struct mreq *m, json_t *id, json_t *result)
{
    if (m->stateless)
        stateless_result(result, m->method);
    web_add_header(m->r, "Cache-Control", "no-store");
    return web_reply_json(m->r, 200, rpc_result(id, result));
}

static int
do_initialize(struct mreq *m, json_t *id, json_t *params)
{
    const char *want = gh_json_str(params, "protocolVersion");
    const char *v = GW_PROTO_LATEST_SESSION;
    struct gh_err e = {0};
    char *wire = NULL;
    json_t *res;

    if (!json_is_object(params) || want == NULL) {
        m->decision = "deny";
        m->message = "initialize without protocolVersion";
        audit(m, "initialize");
        return reply_rpc_error(m->r, 400, id, GW_RPC_INVALID_PARAMS, "initialize needs params.protocolVersion.", NULL);
    }
    if (gw_proto_supported(want) && !gw_proto_is_stateless(want))
        v = want;
    m->s = gw_session_create(m->a, m->who, v, json_object_get(params, "clientInfo"),
                              json_object_get(params, "capabilities"), &wire, &e);
    if (m->s == NULL) {
        audit(m, "initialize");
        return reply_failure(m->r, e.status ? e.status : 500, id, &e);
    }
    gh_arena_defer(m->a, session_put_cb, m->s);
    m->proto = v;
    res = json_pack("{s:s, s:o, s:o, s:s}", "protocolVersion", v, "capabilities", capabilities(),
                    "serverInfo", server_info(), "instructions",
                    "Tools, prompts and resources of this agent's connectors, named <connector>__<name>.");
    m->new_session = wire;      /* sent with the reply once its row is committed */
    return reply_audited(m, "initialize", id, res);
}

static const char *
list_field(enum gw_kind k)
{
    static const char *const f[] = { "tools", "prompts", "resources", "resourceTemplates" };
    return f[k];
}

static int
do_list(struct mreq *m, json_t *id, json_t *params, enum gw_kind kind, const char *method)
{
    struct gw_list l;
    struct gh_err e = {0};
    const char *cursor = gh_json_str(params, "cursor");
    int off = 0, page = (int)gh_cfg.mcp_page_size;
    json_t *items, *res;

    if (json_object_get(params, "cursor") && (cursor == NULL || gw_agg_cursor_parse(cursor, &off) < 0)) {
        m->decision = "deny";
        m->message = "invalid cursor";
        audit(m, method);
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "Invalid cursor.", NULL);
    }
    if (gw_agg_list(m->a, m->s, m->who, kind, &l, &e) < 0) {
        m->message = e.msg;
        audit(m, method);
        return reply_failure(m->r, 200, id, &e);
    }
    items = json_array();
    for (int i = off; i < l.n && i < off + page; i++)
        json_array_append(items, l.e[i].item);
    res = json_pack("{s:o}", list_field(kind), items);
    if (off + page < l.n)
        json_object_set_new(res, "nextCursor", json_string(gw_agg_cursor_make(m->a, off + page)));
    if (l.nfailed) {
        json_t *f = json_array();
        for (int i = 0; i < l.nfailed; i++)
            json_array_append_new(f, json_string(l.failed[i]));
        json_object_set_new(res, "_meta", json_pack("{s:o}", "io.gatehouse/unavailableConnectors", f));
    }
    return reply_audited(m, method, id, res);
}

static struct gw_connector *
conn_by_id(struct gw_list *l, const char *id)
{
    for (int i = 0; i < l->nconns; i++)
        if (!strcmp(l->conns[i].id, id))
            return &l->conns[i];
    return NULL;
}

static struct gw_connector *
conn_by_name(struct gw_list *l, const char *name)
{
    for (int i = 0; i < l->nconns; i++)
        if (!strcmp(l->conns[i].name, name) && l->conns[i].enabled)
            return &l->conns[i];
    return NULL;
}

/* tools/call and prompts/get: route by aggregated name. */
static int
do_named(struct mreq *m, json_t *id, json_t *params, enum gw_kind kind, const char *method)
{
    const char *name = gh_json_str(params, "name");
    struct gw_list l;
    struct gh_err e = {0};
    const struct gw_entry *en;
    struct gw_connector *c;
    const char *down;
    json_t *up;

    if (!json_is_object(params) || name == NULL) {
        m->decision = "deny";
        m->message = "missing name";
        audit(m, method);
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "params.name is required.", NULL);
    }
    if (kind == GW_TOOLS)
        m->tool = name;
    if (json_object_get(params, "arguments") && !json_is_object(json_object_get(params, "arguments"))) {
        m->decision = "deny";
        m->message = "arguments not an object";
        audit(m, method);
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "params.arguments must be an object.", NULL);
    }
    if (gw_agg_list(m->a, m->s, m->who, kind, &l, &e) < 0) {
        m->message = e.msg;
        audit(m, method);
        return reply_failure(m->r, 200, id, &e);
    }
    en = gw_agg_find(&l, name);
    c = en ? conn_by_id(&l, en->connector_id) : NULL;
    down = c == NULL ? gw_agg_failed_owner(&l, name) : NULL;
    if (down) {
        /* its connector did not answer or cannot be called: say which */
        char *msg = gh_arena_printf(m->a, "Connector '%s' is unavailable.", down);
        m->connector = down;
        m->decision = "deny";
        m->message = "connector unavailable";
        audit(m, method);
        return reply_rpc_error(m->r, 200, id, GW_RPC_UPSTREAM, msg ? msg : "Connector unavailable.",
                               json_pack("{s:s}", "connector", down));
    }
    if (c == NULL) {
        char *msg = gh_arena_printf(m->a, "Unknown %s: %s", kind == GW_TOOLS ? "tool" : "prompt", name);
        m->decision = "deny";
        m->message = msg;
        audit(m, method);
        /* an unknown tool is a tool error (what the SDK servers answer, so a
         * client sees the same through the gateway); an unknown prompt is -32602 */
        if (kind == GW_TOOLS)
            return reply_result(m, id, json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text",
                                                 "text", msg ? msg : "Unknown tool.", "isError", 1));
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, msg ? msg : "Unknown name.", NULL);
    }
    if (kind == GW_TOOLS) {
        /* the enforcement seam: once, here, before anything is forwarded */
        struct gw_decision d = {0};
        m->connector = c->name;
        /* the row names the upstream's tool by its full name, not by the
         * shortened or rehashed one a client may see, which only says
         * which tool it is while the lists stay as they are */
        m->tool = gh_arena_printf(m->a, "%s__%s", c->name, en->orig);
        if (m->tool == NULL)
            m->tool = name;
        if (gw_policy_decide(m->a, m->who, c, en->orig, json_object_get(params, "arguments"), &d, &e) < 0) {
            d.allow = false;
            d.decision = "deny";
            d.message = "The policy could not be evaluated.";
        }
        m->decision = d.decision ? d.decision : (d.allow ? "allow" : "deny");
        m->policy_ids = d.policy_ids;
        m->policy_versions = d.policy_versions;
        m->message = d.message;
        if (!d.allow) {
            json_t *res = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                                    d.message ? d.message : "Denied by policy.", "isError", 1);
            audit(m, method);
            return reply_result(m, id, res);
        }
    }
    up = gh_arena_json(m->a, json_deep_copy(params));
    json_object_set_new(up, "name", json_string(en->orig));
    return forward(m, c, id, method, up);
}

/* resources/read, resources/subscribe, resources/unsubscribe: route by URI.
 * A listed URI names its connector; "gh://<connector>/<uri>" does too; a
 * URI made from a template goes to the connector whose template's fixed
 * prefix fits best; with one connector there is nothing to choose. */
static int
do_uri(struct mreq *m, json_t *id, json_t *params, const char *method)
{
    const char *uri = gh_json_str(params, "uri");
    struct gw_list l, tl;
    struct gh_err e = {0};
    const struct gw_entry *en;
    struct gw_connector *c = NULL;
    char *cn, *orig = NULL;
    json_t *up;

    if (uri == NULL) {
        m->decision = "deny";
        m->message = "missing uri";
        audit(m, method);
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "params.uri is required.", NULL);
    }
    if (gw_agg_list(m->a, m->s, m->who, GW_RESOURCES, &l, &e) < 0) {
        audit(m, method);
        return reply_failure(m->r, 200, id, &e);
    }
    en = gw_agg_find(&l, uri);
    if (en) {
        c = conn_by_id(&l, en->connector_id);
        orig = (char *)en->orig;
    } else if (gw_agg_uri_unwrap(m->a, uri, &cn, &orig) == 0) {
        c = conn_by_name(&l, cn);
    } else {
        /* a templated URI: the connector whose template's fixed prefix fits best */
        size_t best = 0;
        if (gw_agg_list(m->a, m->s, m->who, GW_TEMPLATES, &tl, &e) == 0)
            for (int i = 0; i < tl.n; i++) {
                const char *t = gh_json_str(tl.e[i].item, "uriTemplate");
                size_t fixed = t ? strcspn(t, "{") : 0;
                if (fixed > best && !strncmp(t, uri, fixed)) {
                    best = fixed;
                    c = conn_by_id(&tl, tl.e[i].connector_id);
                }
            }
        orig = (char *)uri;
        if (c == NULL) {
            int n = 0;
            for (int i = 0; i < l.nconns; i++)
                if (l.conns[i].enabled)
                    c = n++ ? NULL : &l.conns[i];
            if (n != 1)
                c = NULL;
        }
    }
    if (c == NULL) {
        m->decision = "deny";
        m->message = "unknown resource";
        audit(m, method);
        /* 2026-07-28 Resources, Error Handling: "servers MUST return a
         * JSON-RPC error with code -32602"; the session revisions: -32002 */
        return reply_rpc_error(m->r, 200, id, m->stateless ? GW_RPC_INVALID_PARAMS : GW_RPC_RESOURCE_NOT_FOUND_LEGACY,
                               "Resource not found.",
                               json_pack("{s:s}", "uri", uri));
    }
    up = gh_arena_json(m->a, json_deep_copy(params));
    if (!strcmp(method, "completion/complete")) {
        json_object_del(up, "uri");
        json_object_set_new(json_object_get(up, "ref"), "uri", json_string(orig));
    } else {
        json_object_set_new(up, "uri", json_string(orig));
    }
    return forward(m, c, id, method, up);
}

/* completion/complete: the reference names a prompt or a resource (template),
 * which names the connector. */
static int
do_complete(struct mreq *m, json_t *id, json_t *params)
{
    json_t *ref = json_object_get(params, "ref"), *up;
    const char *type = gh_json_str(ref, "type");
    struct gh_err e = {0};

    if (type && !strcmp(type, "ref/prompt") && gh_json_str(ref, "name")) {
        struct gw_list l;
        const struct gw_entry *en;
        struct gw_connector *c;
        if (gw_agg_list(m->a, m->s, m->who, GW_PROMPTS, &l, &e) < 0) {
            audit(m, "completion/complete");
            return reply_failure(m->r, 200, id, &e);
        }
        en = gw_agg_find(&l, gh_json_str(ref, "name"));
        c = en ? conn_by_id(&l, en->connector_id) : NULL;
        if (c == NULL) {
            m->decision = "deny";
            m->message = "unknown prompt";
            audit(m, "completion/complete");
            return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "Unknown prompt.", NULL);
        }
        up = gh_arena_json(m->a, json_deep_copy(params));
        json_object_set_new(json_object_get(up, "ref"), "name", json_string(en->orig));
        return forward(m, c, id, "completion/complete", up);
    }
    if (type && !strcmp(type, "ref/resource") && gh_json_str(ref, "uri")) {
        /* the URI routing of resources/read, on a params object whose uri is the ref's */
        json_t *p = gh_arena_json(m->a, json_deep_copy(params));
        json_object_set_new(p, "uri", json_string(gh_json_str(ref, "uri")));
        return do_uri(m, id, p, "completion/complete");
    }
    m->decision = "deny";
    m->message = "invalid ref";
    audit(m, "completion/complete");
    return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "params.ref must name a prompt or a resource.", NULL);
}

/* fn(m, target, ctx) for every enabled connector of the request's agent
 * whose credential for this member is at hand; blocking work is fn's. */
static void
each_upstream(struct mreq *m, void (*fn)(struct mreq *, struct gw_call_target *, void *), void *ctx)
{
    struct gw_connector *conns = NULL;
    int n = 0;
    struct gh_err e = {0};

    if (gw_agg_connectors(m->a, m->who->agent.id, &conns, &n, &e) < 0)
        return;
    for (int i = 0; i < n; i++) {
        struct gw_call_target t = { m->s, &conns[i], NULL, 0 };
        struct gh_err ue = {0};
        if (conns[i].enabled &&
            gw_connector_auth_headers(m->a, &conns[i], m->who, &t.headers, &t.nheaders, &ue) == 0)
            fn(m, &t, ctx);
    }
}

static void
set_level_one(struct mreq *m, struct gw_call_target *t, void *params)
{
    struct gh_err e = {0};

    gw_up_rpc_sync(m->a, t, "logging/setLevel", params, NULL, &e);
}

/* logging/setLevel: every connector of the session gets it. */
static int
do_set_level(struct mreq *m, json_t *id, json_t *params)
{
    if (!json_is_string(json_object_get(params, "level"))) {
        m->decision = "deny";
        m->message = "invalid params";
        audit(m, "logging/setLevel");
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "params.level is required.", NULL);
    }
    each_upstream(m, set_level_one, params);
    return reply_audited(m, "logging/setLevel", id, json_object());
}

static void
listen_one(struct mreq *m, struct gw_call_target *t, void *ctx)
{
    struct gh_err e = {0};

    (void)ctx;
    if (gw_up_ensure(m->a, t, false, &e) < 0)
        GH_LOG(INFO, "gw_listen", "connector %s not listened to: %s", t->c->name,
               e.detail[0] ? e.detail : e.msg);
}

static int
do_listen(struct mreq *m, json_t *id, json_t *params)
{
    json_t *filter = json_object_get(params, "notifications");
    struct listener *l;
    json_t *ack, *agreed;

    if (filter && !json_is_object(filter)) {
        m->decision = "deny";
        m->message = "invalid params";
        audit(m, "subscriptions/listen");
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "params.notifications must be an object.", NULL);
    }
    if (audit(m, "subscriptions/listen") < 0)
        return audit_unavailable(m->r, id);
    /* the upstreams' own list changes come through the member's implicit
     * state: its upstream sessions and their streams must exist, even if
     * nothing else was asked yet (may_block sent us off the server thread) */
    if (m->stateless && m->s)
        each_upstream(m, listen_one, NULL);
    l = listener_open(m, id, filter ? filter : json_object_get(params, "notifications"));
    if (l == NULL)
        return reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    if (filter == NULL)
        l->tools = l->prompts = l->resources = false;
    agreed = json_object();
    if (l->tools)
        json_object_set_new(agreed, "toolsListChanged", json_true());
    if (l->prompts)
        json_object_set_new(agreed, "promptsListChanged", json_true());
    if (l->resources)
        json_object_set_new(agreed, "resourcesListChanged", json_true());
    ack = json_pack("{s:s, s:s, s:{s:o}}", "jsonrpc", "2.0", "method",
                    "notifications/subscriptions/acknowledged", "params", "notifications", agreed);
    json_object_set_new(json_object_get(ack, "params"), "_meta",
                        json_pack("{s:O}", "io.modelcontextprotocol/subscriptionId", id));
    listener_start(m, l, ack);
    json_decref(ack);
    return 0;
}

static int
do_discover(struct mreq *m, json_t *id)
{
    json_t *caps = capabilities();
    json_t *res;

    /* "subscribe: whether the server supports resource-specific update
     * notifications for resources requested through subscriptions/listen
     * using the resourceSubscriptions filter": this listen does not */
    json_object_del(json_object_get(caps, "resources"), "subscribe");
    res = json_pack("{s:[s,s,s,s], s:o, s:{s:o}, s:s}", "supportedVersions",
                    GW_PROTO_2026_07_28, GW_PROTO_2025_11_25, GW_PROTO_2025_06_18, GW_PROTO_2025_03_26,
                    "capabilities", caps, "_meta", "io.modelcontextprotocol/serverInfo",
                    server_info(), "instructions",
                    "Tools, prompts and resources of this agent's connectors, named <connector>__<name>.");
    return reply_audited(m, "server/discover", id, res);
}

/* One request (session or stateless; the session is in m->s). */
static int
dispatch(struct mreq *m, const char *method, json_t *id, json_t *params)
{
    int nf_status = m->stateless ? 404 : 200;

    m->method = method;
    if (params && !json_is_object(params)) {
        m->decision = "deny";
        m->message = "params not an object";
        audit(m, method);
        return reply_rpc_error(m->r, 200, id, GW_RPC_INVALID_PARAMS, "params must be an object.", NULL);
    }
    /* methods 2026-07-28 removed (Key Changes 4, 5: resources/subscribe and
     * /unsubscribe replaced by subscriptions/listen; ping and
     * logging/setLevel removed): not implemented in that revision, which
     * says "If the server does not implement the requested RPC method, it
     * MUST respond with 404 Not Found and a JSON-RPC error with code
     * -32601".  Served, they would leave state behind on the member's
     * shared upstream sessions that later stateless requests inherit. */
    if (m->stateless && (!strcmp(method, "ping") || !strcmp(method, "logging/setLevel") ||
                         !strcmp(method, "resources/subscribe") || !strcmp(method, "resources/unsubscribe")))
        goto not_found;
    if (!strcmp(method, "ping"))
        return reply_audited(m, method, id, json_object());
    if (!strcmp(method, "tools/list"))
        return do_list(m, id, params, GW_TOOLS, method);
    if (!strcmp(method, "prompts/list"))
        return do_list(m, id, params, GW_PROMPTS, method);
    if (!strcmp(method, "resources/list"))
        return do_list(m, id, params, GW_RESOURCES, method);
    if (!strcmp(method, "resources/templates/list"))
        return do_list(m, id, params, GW_TEMPLATES, method);
    if (!strcmp(method, "tools/call"))
        return do_named(m, id, params, GW_TOOLS, method);
    if (!strcmp(method, "prompts/get"))
        return do_named(m, id, params, GW_PROMPTS, method);
    if (!strcmp(method, "resources/read") || !strcmp(method, "resources/subscribe") ||
        !strcmp(method, "resources/unsubscribe"))
        return do_uri(m, id, params, method);
    if (!strcmp(method, "logging/setLevel"))
        return do_set_level(m, id, params);
    if (!strcmp(method, "completion/complete"))
        return do_complete(m, id, params);
    if (m->stateless && !strcmp(method, "server/discover"))
        return do_discover(m, id);
    if (m->stateless && !strcmp(method, "subscriptions/listen"))
        return do_listen(m, id, params);
    if (!strcmp(method, "initialize")) {
        m->decision = "deny";
        m->message = "already initialized";
        audit(m, method);
        return reply_rpc_error(m->r, 400, id, GW_RPC_INVALID_REQUEST, "The session is already initialized.", NULL);
    }
not_found:
    m->decision = "deny";
    m->message = "method not found";
    audit(m, method);
    return reply_rpc_error(m->r, nf_status, id, GW_RPC_METHOD_NOT_FOUND, "Method not found.", NULL);
}

/* ---------------------------------------------------------------- request checks */

/* ---------------------------------------------------------------- offloading
 * A request that needs something from an upstream first (a handshake, a
 * list not cached yet, logging/setLevel's round of calls) may wait for
 * seconds; on a server thread that would stall every other connection the
 * thread serves.  Such requests run on the offload pool instead, the
 * connection waiting without a thread (web_offload_begin).  The common case
 * — a session whose upstreams are known and lists cached — stays here. */

struct offload {
    struct mreq m;
    const char *method;
    json_t     *id, *params;
    json_t     *batch;              /* instead of method: a 2025-03-26 batch */
};

static int batch_run(struct mreq *m, json_t *batch);

static bool
may_block(struct mreq *m, const char *method)
{
    static const struct { const char *method; enum gw_kind kind, also; } needs[] = {
        { "tools/list", GW_TOOLS, GW_TOOLS },
        { "tools/call", GW_TOOLS, GW_TOOLS },
        { "prompts/list", GW_PROMPTS, GW_PROMPTS },
        { "prompts/get", GW_PROMPTS, GW_PROMPTS },
        { "resources/list", GW_RESOURCES, GW_RESOURCES },
        { "resources/templates/list", GW_TEMPLATES, GW_TEMPLATES },
        { "resources/read", GW_RESOURCES, GW_TEMPLATES },
        { "resources/subscribe", GW_RESOURCES, GW_TEMPLATES },
        { "resources/unsubscribe", GW_RESOURCES, GW_TEMPLATES },
        { "completion/complete", GW_PROMPTS, GW_TEMPLATES },
    };

    if (!strcmp(method, "logging/setLevel"))
        return true;            /* a call to every upstream */
    if (!strcmp(method, "subscriptions/listen"))
        return m->stateless && m->s && !gw_agg_warm(m->a, m->s, GW_NKINDS);   /* handshakes first */
    for (size_t i = 0; i < GH_ARRAY_LEN(needs); i++)
        if (!strcmp(method, needs[i].method))
            return !gw_agg_warm(m->a, m->s, needs[i].kind) || !gw_agg_warm(m->a, m->s, needs[i].also);
    return false;
}

static void
offload_run(void *ctx)
{
    struct offload *o = ctx;
    struct web_req *r = o->m.r;

    gh_log_context(web_request_id(r), web_route_pattern(r));
    if (o->batch)
        batch_run(&o->m, o->batch);
    else
        dispatch(&o->m, o->method, o->id, o->params);
    gh_log_context(NULL, NULL);
    web_offload_end(r);         /* the last use of r (and of o, in its arena) */
}

/* Hands o to the offload pool: the connection waits without a server thread. */
static int
offload(struct offload *o)
{
    web_offload_begin(o->m.r);
    if (gw_offload_post(offload_run, o) < 0)
        offload_run(o);         /* stopping: here, then */
    return 0;
}

static int
dispatch_or_offload(struct mreq *m, const char *method, json_t *id, json_t *params)
{
    struct offload *o;

    if (!may_block(m, method) || (o = gh_arena_alloc(m->a, sizeof(*o))) == NULL)
        return dispatch(m, method, id, params);
    *o = (struct offload){ *m, method, id, params, NULL };
    return offload(o);
}

static bool
accepts(const char *accept, const char *type)
{
    if (accept == NULL)
        return false;
    return strcasestr(accept, type) != NULL || strstr(accept, "*/*") != NULL;
}

static bool
valid_id(json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

/* A header value as RFC 9110 allows it and the 2026-07-28 transport's
 * Value Encoding asks of a plain value: visible ASCII, space and tab only
 * (anything else must come Base64-encoded). */
static bool
header_chars_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (!(*p == '\t' || (*p >= 0x20 && *p <= 0x7e)))
            return false;
    return true;
}

/* Decodes an Mcp-Name header value (plain, or =?base64?...?=) into the
 * arena, its length in *len (a decoded value may hold a NUL byte, which
 * must not end the comparison early).  NULL when the value holds a
 * character no header value may, or its Base64 is not canonical
 * (gh_b64_decode): an intermediary reading the header must not see a name
 * other than the one checked here. */
static char *
header_value(struct gh_arena *a, const char *v, size_t *len)
{
    size_t n = strlen(v);
    unsigned char *out;

    if (!header_chars_ok(v))
        return NULL;
    if (!(n >= 11 && gh_str_has_prefix(v, "=?base64?") && !strcmp(v + n - 2, "?="))) {
        *len = n;
        return gh_arena_strdup(a, v);
    }
    return gh_b64_decode(a, v + 9, n - 11, &out, len) == 0 ? (char *)out : NULL;
}

/* 2026-07-28: the mirrored headers must match the body. */
static int
check_stateless_headers(struct mreq *m, json_t *msg, const char *method, json_t *params, json_t *id)
{
    const char *hv = web_header(m->r, "MCP-Protocol-Version");
    const char *mv = gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/protocolVersion");
    const char *hm = web_header(m->r, "Mcp-Method");
    const char *hn = web_header(m->r, "Mcp-Name");
    const char *why = NULL;

    (void)msg;
    /* one field line each: a repeated header is a value an intermediary
     * may read differently (the first, the last, or all joined) */
    if (web_header_count(m->r, "MCP-Protocol-Version") > 1)
        why = "MCP-Protocol-Version header repeated";
    else if (web_header_count(m->r, "Mcp-Method") > 1)
        why = "Mcp-Method header repeated";
    else if (web_header_count(m->r, "Mcp-Name") > 1)
        why = "Mcp-Name header repeated";
    else if ((hv && !header_chars_ok(hv)) || (hm && !header_chars_ok(hm)))
        why = "a header value holds a character header values may not";
    else if (mv == NULL)
        why = "the request's _meta carries no io.modelcontextprotocol/protocolVersion";
    else if (hv == NULL)
        why = "MCP-Protocol-Version header missing";
    else if (strcmp(hv, mv))
        why = "MCP-Protocol-Version header does not match _meta";
    if (why == NULL && !gw_proto_supported(mv)) {
        m->decision = "deny";
        m->message = "unsupported protocol version";
        audit(m, method);
        reply_rpc_error(m->r, 400, id, GW_RPC_UNSUPPORTED_VER, "Unsupported protocol version",
                        json_pack("{s:[s,s,s,s], s:s}", "supported", GW_PROTO_2026_07_28,
                                  GW_PROTO_2025_11_25, GW_PROTO_2025_06_18, GW_PROTO_2025_03_26,
                                  "requested", mv));
        return -1;
    }
    if (why == NULL && (hm == NULL || strcmp(hm, method)))
        why = hm ? "Mcp-Method header does not match the body" : "Mcp-Method header missing";
    if (why == NULL && (!strcmp(method, "tools/call") || !strcmp(method, "prompts/get") ||
                        !strcmp(method, "resources/read"))) {
        const char *bn = gh_json_str(params, !strcmp(method, "resources/read") ? "uri" : "name");
        size_t dl = 0;
        char *dv = hn ? header_value(m->a, hn, &dl) : NULL;
        if (hn == NULL)
            why = "Mcp-Name header missing";
        else if (dv == NULL)
            why = "Mcp-Name header is not a valid header value";
        else if (bn == NULL || dl != strlen(bn) || memcmp(dv, bn, dl))
            why = "Mcp-Name header does not match the body";
    }
    if (why) {
        char *text = gh_arena_printf(m->a, "Header mismatch: %s", why);
        m->decision = "deny";
        m->message = text;
        audit(m, method);
        reply_rpc_error(m->r, 400, id, GW_RPC_HEADER_MISMATCH, text ? text : "Header mismatch", NULL);
        return -1;
    }
    return 0;
}

static const char *
msg_method(json_t *msg)
{
    return gh_json_str(msg, "method");
}

/* Not a JSON-RPC message we take, alone or in a batch: not an object,
 * jsonrpc not "2.0", a method that is not a string, an id neither a
 * string, an integer nor null, neither method nor id, a response
 * without result or error, or one with both (JSON-RPC 2.0 §5: "Either
 * the result member or error member MUST be included, but both members
 * MUST NOT be included"). */
static bool
msg_invalid(json_t *msg)
{
    const char *method = msg_method(msg), *v = gh_json_str(msg, "jsonrpc");
    json_t *id = json_object_get(msg, "id");

    return !json_is_object(msg) || v == NULL || strcmp(v, "2.0") ||
           (json_object_get(msg, "method") && method == NULL) || (id && !valid_id(id) && !json_is_null(id)) ||
           (method == NULL && id == NULL) ||
           (method == NULL && !json_object_get(msg, "result") && !json_object_get(msg, "error")) ||
           (json_object_get(msg, "result") && json_object_get(msg, "error"));
}

/* ---------------------------------------------------------------- handlers */

static void
mreq_init(struct mreq *m, struct web_req *r, const struct authz_credential *who)
{
    memset(m, 0, sizeof(*m));
    m->r = r;
    m->a = web_arena(r);
    m->who = who;
    m->start_us = gh_now_us();
}

/* What every request to the endpoint passes first, in this order: Host and
 * Origin, the credential (refusals before authentication: audit_refusal),
 * then a body over GATEHOUSE_HTTP_MAX_BODY, which the web layer leaves to
 * us (WEB_OWN_413) because the request reached the gateway all the same:
 * 413 with the member's row (the method is the HTTP one: the body is not
 * read).  The credential with m ready, or NULL when the reply was sent. */
static const struct authz_credential *
mcp_begin(struct web_req *r, struct mreq *m)
{
    const struct authz_credential *who;
    uint64_t serial;

    if (check_rebinding(r) < 0 || (who = authenticate(r, &serial)) == NULL)
        return NULL;
    mreq_init(m, r, who);
    m->cred_serial = serial;
    /* one field line each: a proxy that reads the last of two and we, who
     * read the first, would disagree on the session or the revision.  A
     * POST's MCP-Protocol-Version is checked with its body (stateless:
     * HeaderMismatch; else check_version_header). */
    if (web_header_count(r, "Mcp-Session-Id") > 1 ||
        (strcmp(web_method(r), "POST") && web_header_count(r, "MCP-Protocol-Version") > 1)) {
        m->decision = "deny";
        m->message = "repeated header";
        audit(m, web_method(r));
        reply_rpc_error(r, 400, NULL, GW_RPC_INVALID_REQUEST,
                        "Mcp-Session-Id and MCP-Protocol-Version may each be sent once.", NULL);
        return NULL;
    }
    if (web_body_too_large(r)) {
        m->decision = "deny";
        m->message = "request body too large";
        audit(m, web_method(r));
        reply_rpc_error(r, 413, NULL, GW_RPC_INVALID_REQUEST, "Request body too large.", NULL);
        return NULL;
    }
    return who;
}

/* The session named by the Mcp-Session-Id header: 0, or the reply is sent. */
static int
require_session(struct mreq *m, const char *method, json_t *id)
{
    const char *sid = web_header(m->r, "Mcp-Session-Id");
    struct gh_err e = {0};

    if (sid == NULL) {
        m->decision = "deny";
        m->message = "missing session";
        audit(m, method);
        reply_rpc_error(m->r, 400, id, GW_RPC_INVALID_REQUEST, "Mcp-Session-Id header required.", NULL);
        return -1;
    }
    m->s = gw_session_get(m->a, sid, m->who, &e);
    if (m->s == NULL) {
        m->decision = "deny";
        m->message = e.status == 404 ? "unknown session" : "session lookup failed";
        audit(m, method);
        if (e.status == 404)
            reply_rpc_error(m->r, 404, id, GW_RPC_INVALID_REQUEST, e.msg[0] ? e.msg : "Session not found.", NULL);
        else
            reply_failure(m->r, e.status ? e.status : 500, id, &e);
        return -1;
    }
    gh_arena_defer(m->a, session_put_cb, m->s);
    m->proto = m->s->proto;
    return 0;
}

static int
check_version_header(struct mreq *m, const char *method, json_t *id)
{
    const char *hv = web_header(m->r, "MCP-Protocol-Version");

    if (web_header_count(m->r, "MCP-Protocol-Version") > 1) {
        m->decision = "deny";
        m->message = "repeated header";
        audit(m, method);
        reply_rpc_error(m->r, 400, id, GW_RPC_INVALID_REQUEST, "MCP-Protocol-Version may be sent once.", NULL);
        return -1;
    }
    if (hv && (!gw_proto_supported(hv) || gw_proto_is_stateless(hv))) {
        m->decision = "deny";
        m->message = "unsupported protocol version";
        audit(m, method);
        reply_rpc_error(m->r, 400, id, GW_RPC_INVALID_REQUEST, "Unsupported MCP-Protocol-Version.",
                        json_pack("{s:[s,s,s], s:s}", "supported", GW_PROTO_2025_11_25,
                                  GW_PROTO_2025_06_18, GW_PROTO_2025_03_26, "requested", hv));
        return -1;
    }
    return 0;
}

/* A 2025-03-26 batch: requests answered together in one JSON array (the
 * forwarded ones are not streamed in a batch).  At most
 * GATEHOUSE_MCP_BATCH_MAX messages; the audit rows of the answered ones go
 * to the writer together, one group commit and one wait for the batch. */

/* tools/list inside a batch: the whole list (no paging in a batch). */
static json_t *
batch_tools(struct mreq *m, json_t *id, const char **why)
{
    struct gw_list l;
    struct gh_err e = {0};
    json_t *items, *res;

    if (gw_agg_list(m->a, m->s, m->who, GW_TOOLS, &l, &e) < 0) {
        *why = e.msg[0] ? gh_arena_strdup(m->a, e.msg) : "Internal error.";
        return rpc_error(id, GW_RPC_INTERNAL, *why, NULL);
    }
    items = json_array();
    for (int k = 0; k < l.n; k++)
        json_array_append(items, l.e[k].item);
    res = json_pack("{s:o}", "tools", items);
    if (l.nfailed) {
        json_t *f = json_array();
        for (int i = 0; i < l.nfailed; i++)
            json_array_append_new(f, json_string(l.failed[i]));
        json_object_set_new(res, "_meta", json_pack("{s:o}", "io.gatehouse/unavailableConnectors", f));
    }
    return rpc_result(id, res);
}

static int
do_batch(struct mreq *m, json_t *batch)
{
    size_t i, size = json_array_size(batch);
    json_t *msg;

    if (size == 0) {
        m->decision = "deny";
        m->message = "empty batch";
        audit(m, "(batch)");
        return reply_rpc_error(m->r, 400, NULL, GW_RPC_INVALID_REQUEST, "Empty batch.", NULL);
    }
    if (require_session(m, "(batch)", NULL) < 0 || check_version_header(m, "(batch)", NULL) < 0)
        return 0;
    if (size > (size_t)gh_cfg.mcp_batch_max) {
        m->decision = "deny";
        m->message = "batch too long";
        audit(m, "(batch)");
        return reply_rpc_error(m->r, 400, NULL, GW_RPC_INVALID_REQUEST,
                               gh_arena_printf(m->a, "A batch may hold at most %ld messages.", gh_cfg.mcp_batch_max),
                               json_pack("{s:I}", "maxBatchSize", (json_int_t)gh_cfg.mcp_batch_max));
    }
    if (strcmp(m->s->proto, GW_PROTO_2025_03_26)) {
        m->decision = "deny";
        m->message = "batch in a revision without batches";
        audit(m, "(batch)");
        return reply_rpc_error(m->r, 400, NULL, GW_RPC_INVALID_REQUEST,
                               "JSON-RPC batches are not supported in this protocol revision.", NULL);
    }
    /* a tools/list in it may wait for the upstreams: not on a server thread */
    json_array_foreach(batch, i, msg) {
        const char *method = json_is_object(msg) ? msg_method(msg) : NULL;
        if (method && !strcmp(method, "tools/list") && may_block(m, method)) {
            struct offload *o = gh_arena_alloc(m->a, sizeof(*o));
            if (o == NULL)
                break;
            *o = (struct offload){ *m, NULL, NULL, NULL, batch };
            return offload(o);
        }
    }
    return batch_run(m, batch);
}

/* Answers the messages of a batch that passed do_batch's checks. */
static int
batch_run(struct mreq *m, json_t *batch)
{
    size_t i, size = json_array_size(batch);
    json_t *msg, *out;
    struct gw_audit *rows;
    struct gh_err e = {0};
    int nrows = 0;

    rows = gh_arena_alloc(m->a, sizeof(*rows) * size);
    out = gh_arena_json(m->a, json_array());
    if (rows == NULL || out == NULL)
        return reply_rpc_error(m->r, 500, NULL, GW_RPC_INTERNAL, "Internal error.", NULL);
    json_array_foreach(batch, i, msg) {
        const char *method = msg_method(msg), *why = NULL;
        json_t *id = json_object_get(msg, "id");

        m->start_us = gh_now_us();
        if (msg_invalid(msg)) {
            audit_row(m, method, "deny", "invalid request", &rows[nrows++]);
            json_array_append_new(out, rpc_error(NULL, GW_RPC_INVALID_REQUEST, "Invalid request.", NULL));
            continue;
        }
        if (method == NULL || id == NULL) {
            /* notifications and responses: nothing to answer; acted on
             * (below) once their rows are committed, as when sent alone */
            audit_row(m, method ? method : "(response)", NULL, NULL, &rows[nrows++]);
            continue;
        }
        if (!valid_id(id)) {
            audit_row(m, method, "deny", "invalid id", &rows[nrows++]);
            json_array_append_new(out, rpc_error(NULL, GW_RPC_INVALID_REQUEST, "Invalid id.", NULL));
        } else if (!strcmp(method, "ping")) {
            audit_row(m, method, NULL, NULL, &rows[nrows++]);
            json_array_append_new(out, rpc_result(id, json_object()));
        } else if (!strcmp(method, "tools/list")) {
            json_array_append_new(out, batch_tools(m, id, &why));
            audit_row(m, method, NULL, why, &rows[nrows++]);
        } else {
            audit_row(m, method, "deny", "not available in a batch", &rows[nrows++]);
            json_array_append_new(out, rpc_error(id, GW_RPC_INVALID_REQUEST,
                                                 "Only ping and tools/list are served inside a batch.", NULL));
        }
    }
    /* no answer leaves before its row is committed */
    if (gw_audit_write_many(rows, nrows, &e) < 0) {
        GH_LOG(ERROR, "gw_audit", "audit rows of a batch not written: %s", e.detail[0] ? e.detail : e.msg);
        if (e.retry_after)
            web_add_header(m->r, "Retry-After", gh_arena_printf(m->a, "%d", e.retry_after));
        return reply_rpc_error(m->r, 503, NULL, GW_RPC_INTERNAL, "The audit log is unavailable.", NULL);
    }
    json_array_foreach(batch, i, msg) {
        const char *method = msg_method(msg);
        json_t *id = json_object_get(msg, "id");

        if (!msg_invalid(msg) && (method == NULL) != (id == NULL))
            client_note(m->s, method, msg);     /* not a request (answered above), not invalid */
    }
    if (json_array_size(out) == 0)
        return web_reply(m->r, 202, NULL, "", 0);
    return web_reply_json(m->r, 200, json_incref(out));
}

static int
mcp_post(struct web_req *r)
{
    const struct authz_credential *who;
    struct mreq m;
    const char *ct, *method;
    json_t *body, *id, *params;
    json_error_t je;
    size_t len;
    const char *raw;
    bool stateless;

    if ((who = mcp_begin(r, &m)) == NULL)
        return 0;
    ct = web_header(r, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) || (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        m.decision = "deny";
        m.message = "unsupported content type";
        audit(&m, NULL);
        return reply_rpc_error(r, 415, NULL, GW_RPC_INVALID_REQUEST, "Content-Type must be application/json.", NULL);
    }
    if (!accepts(web_header(r, "Accept"), "application/json") ||
        !accepts(web_header(r, "Accept"), "text/event-stream")) {
        m.decision = "deny";
        m.message = "not acceptable";
        audit(&m, NULL);
        return reply_rpc_error(r, 406, NULL, GW_RPC_INVALID_REQUEST,
                               "Accept must list application/json and text/event-stream.", NULL);
    }
    raw = web_body(r, &len);
    body = gh_arena_json(m.a, json_loadb(raw, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je));
    if (body == NULL) {
        m.decision = "deny";
        m.message = "parse error";
        audit(&m, NULL);
        return reply_rpc_error(r, 400, NULL, GW_RPC_PARSE_ERROR, "Parse error.", NULL);
    }
    if (json_is_array(body))
        return do_batch(&m, body);
    method = msg_method(body);
    id = json_object_get(body, "id");
    params = json_object_get(body, "params");
    if (msg_invalid(body)) {
        m.decision = "deny";
        m.message = "invalid request";
        audit(&m, method);
        return reply_rpc_error(r, 400, valid_id(id) ? id : NULL, GW_RPC_INVALID_REQUEST, "Invalid request.", NULL);
    }
    if (method && json_is_null(id)) {
        m.decision = "deny";
        m.message = "null id";
        audit(&m, method);
        return reply_rpc_error(r, 400, NULL, GW_RPC_INVALID_REQUEST, "A request id must be a string or an integer.", NULL);
    }

    stateless = method && strcmp(method, "initialize") &&
                (gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/protocolVersion") ||
                 (web_header(r, "MCP-Protocol-Version") &&
                  gw_proto_is_stateless(web_header(r, "MCP-Protocol-Version"))));
    if (stateless) {
        m.stateless = true;
        m.proto = GW_PROTO_2026_07_28;
        if (check_stateless_headers(&m, body, method, params, id) < 0)
            return 0;
        if (id == NULL) {
            audit(&m, method);
            return web_reply(r, 202, NULL, "", 0);
        }
        m.s = gw_session_stateless(who);
        if (m.s == NULL)
            return reply_rpc_error(r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
        gh_arena_defer(m.a, session_put_cb, m.s);
        gw_session_touch(m.s);
        return dispatch_or_offload(&m, method, id, params);
    }

    if (method && !strcmp(method, "initialize")) {
        if (id == NULL) {
            m.decision = "deny";
            m.message = "initialize without an id";
            audit(&m, method);
            return reply_rpc_error(r, 400, NULL, GW_RPC_INVALID_REQUEST, "initialize must be a request.", NULL);
        }
        return do_initialize(&m, id, params);
    }
    if (require_session(&m, method ? method : "(response)", id) < 0 ||
        check_version_header(&m, method ? method : "(response)", id) < 0)
        return 0;
    if (id == NULL || method == NULL) {
        /* notifications and responses to us: accepted, nothing to say */
        if (audit(&m, method ? method : "(response)") < 0)
            return audit_unavailable(r, NULL);
        client_note(m.s, method, body);
        return web_reply(r, 202, NULL, "", 0);
    }
    return dispatch_or_offload(&m, method, id, params);
}

static int
mcp_get(struct web_req *r)
{
    struct mreq m;
    struct listener *l;

    if (mcp_begin(r, &m) == NULL)
        return 0;
    if (gw_proto_is_stateless(web_header(r, "MCP-Protocol-Version"))) {
        m.decision = "deny";
        m.message = "GET in the stateless revision";
        audit(&m, "GET");
        web_add_header(r, "Allow", "POST");
        return reply_rpc_error(r, 405, NULL, GW_RPC_INVALID_REQUEST, "Method not allowed.", NULL);
    }
    if (!accepts(web_header(r, "Accept"), "text/event-stream")) {
        m.decision = "deny";
        m.message = "not acceptable";
        audit(&m, "GET");
        return reply_rpc_error(r, 406, NULL, GW_RPC_INVALID_REQUEST, "Accept must list text/event-stream.", NULL);
    }
    if (require_session(&m, "GET", NULL) < 0 || check_version_header(&m, "GET", NULL) < 0)
        return 0;
    if (audit(&m, "GET") < 0)
        return audit_unavailable(r, NULL);
    l = listener_open(&m, NULL, NULL);
    if (l == NULL)
        return reply_rpc_error(r, 500, NULL, GW_RPC_INTERNAL, "Internal error.", NULL);
    return listener_start(&m, l, NULL);
}

/* The client ends its session: so do we with each upstream (fire and forget). */
static void
end_upstream_sessions(struct mreq *m)
{
    struct gw_connector *conns = NULL;
    int n = 0;
    struct gh_err e = {0};

    if (gw_agg_connectors(m->a, m->s->agent_id, &conns, &n, &e) < 0)
        return;
    for (int i = 0; i < n; i++) {
        struct gw_call_target t = { m->s, &conns[i], NULL, 0 };
        struct gw_upstate *u;
        char *sid = NULL, proto[16] = "";

        pthread_mutex_lock(&m->s->lock);
        u = gw_session_upstate(m->s, &conns[i]);
        if (u && u->sid) {
            sid = gh_arena_strdup(m->a, u->sid);
            snprintf(proto, sizeof(proto), "%s", u->proto);
        }
        pthread_mutex_unlock(&m->s->lock);
        if (sid && gw_connector_auth_headers(m->a, &conns[i], m->who, &t.headers, &t.nheaders, &e) == 0)
            gw_up_end_session(m->a, &t, sid, proto);
    }
}

static int
mcp_delete(struct web_req *r)
{
    struct mreq m;
    struct gh_err e = {0};

    if (mcp_begin(r, &m) == NULL)
        return 0;
    if (gw_proto_is_stateless(web_header(r, "MCP-Protocol-Version"))) {
        m.decision = "deny";
        m.message = "DELETE in the stateless revision";
        audit(&m, "DELETE");
        web_add_header(r, "Allow", "POST");
        return reply_rpc_error(r, 405, NULL, GW_RPC_INVALID_REQUEST, "Method not allowed.", NULL);
    }
    if (require_session(&m, "DELETE", NULL) < 0)
        return 0;
    if (audit(&m, "DELETE") < 0)
        return audit_unavailable(r, NULL);
    end_upstream_sessions(&m);
    if (gw_session_delete(m.s, &e) < 0)
        return reply_failure(r, e.status ? e.status : 500, NULL, &e);
    return web_reply(r, 200, NULL, "", 0);
}

/* Every method comes here: one the endpoint does not serve (PUT, PATCH,
 * HEAD, OPTIONS — a CORS preflight too) reached the gateway as much as a
 * POST, so it passes the same checks and is refused with its row. */
static int
mcp_any(struct web_req *r)
{
    const char *method = web_method(r);
    struct mreq m;

    if (!strcmp(method, "POST"))
        return mcp_post(r);
    if (!strcmp(method, "GET"))
        return mcp_get(r);
    if (!strcmp(method, "DELETE"))
        return mcp_delete(r);
    if (mcp_begin(r, &m) == NULL)
        return 0;
    m.decision = "deny";
    m.message = "method not allowed";
    audit(&m, method);
    web_add_header(r, "Allow", "GET, POST, DELETE");
    return reply_rpc_error(r, 405, NULL, GW_RPC_INVALID_REQUEST, "Method not allowed.", NULL);
}

/* ---------------------------------------------------------------- background */

static struct {
    pthread_t       th;
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    bool            running, stop;
} tick = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void
keepalives(void)
{
    int64_t now = gh_now_us();
    struct web_stream *wake[256];
    struct chan *held[256];
    int n = 0;

    pthread_mutex_lock(&chans_lock);
    for (struct chan *c = chans; c && n < 256; c = c->next) {
        pthread_mutex_lock(&c->lock);
        if (!c->gone && !c->ended && now - c->last_us >= c->keepalive_us) {
            if (c->off == c->len)
                chan_put_locked(c, ":\n\n", 3);
            else
                c->last_us = now;       /* bytes are waiting: a wake is enough */
            c->refs++;
            held[n] = c;
            wake[n++] = c->ws;
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&chans_lock);
    for (int i = 0; i < n; i++) {
        web_stream_wake(wake[i]);
        chan_unref(held[i]);
    }
}

static void *
tick_main(void *arg)
{
    int64_t last_expire = gh_time_s();

    (void)arg;
    pthread_mutex_lock(&tick.lock);
    while (!tick.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&tick.cond, &tick.lock, &ts);
        if (tick.stop)
            break;
        pthread_mutex_unlock(&tick.lock);
        keepalives();
        if (__atomic_exchange_n(&recheck_failed, false, __ATOMIC_SEQ_CST))
            listens_recheck_post();
        if (gh_time_s() - last_expire >= 60) {
            last_expire = gh_time_s();
            gw_session_expire();
        }
        pthread_mutex_lock(&tick.lock);
    }
    pthread_mutex_unlock(&tick.lock);
    return NULL;
}

/* NOTIFY gw_connectors <agent id>: another list for that agent's clients. */
static void
invalidate_one(struct gw_session *s, void *ctx)
{
    (void)ctx;
    gw_agg_invalidate(s, NULL);
}

static void
on_connectors(const char *channel, const char *payload, void *ctx)
{
    (void)channel;
    (void)ctx;
    if (payload == NULL || strlen(payload) >= 40)
        return;
    gw_session_each(payload, invalidate_one, NULL);
    gw_notify_agent(payload, "notifications/tools/list_changed");
    gw_notify_agent(payload, "notifications/prompts/list_changed");
    gw_notify_agent(payload, "notifications/resources/list_changed");
}

static long g_sessions(void) { return gw_session_count(); }
static long g_inflight(void) { return gw_up_inflight(); }

int
gw_mcp_register_routes(void)
{
    struct gh_err e = {0};
    static const char *const pats[] = { "/mcp", "/agents/*/mcp" };

    if (gw_up_init(&e) < 0 || gw_session_init(&e) < 0) {
        GH_LOG(ERROR, "gw_start", "%s", e.detail[0] ? e.detail : e.msg);
        return -1;
    }
    db_listen(GW_CHANNEL_CONNECTORS, on_connectors, NULL);
    if (authz_credentials_watch(on_credentials_changed, NULL) < 0) {
        GH_LOG(ERROR, "gw_start", "cannot watch for revoked credentials");
        return -1;
    }
    if (gh_cfg.test_unauthenticated_mcp)
        GH_LOG(WARN, "gw_start", "GATEHOUSE_TEST_UNAUTHENTICATED_MCP is ON: the MCP endpoint admits "
                                 "requests WITHOUT credentials as a test identity. Never use this in production.");
    for (size_t i = 0; i < GH_ARRAY_LEN(pats); i++)
        web_route(NULL, pats[i], WEB_API | WEB_OWN_413, mcp_any);
    web_metrics_register_gauge("gatehouse_mcp_sessions_open", "MCP sessions held in this process.", g_sessions);
    web_metrics_register_gauge("gatehouse_mcp_upstream_inflight", "Upstream requests in flight.", g_inflight);
    tick.stop = false;
    if (pthread_create(&tick.th, NULL, tick_main, NULL) == 0)
        tick.running = true;
    return 0;
}

void
gw_mcp_stop(void)
{
    if (tick.running) {
        pthread_mutex_lock(&tick.lock);
        tick.stop = true;
        pthread_cond_signal(&tick.cond);
        pthread_mutex_unlock(&tick.lock);
        pthread_join(tick.th, NULL);
        tick.running = false;
    }
    gw_agg_upkeep_stop();       /* no stream reopened once the I/O thread stops */
    gw_up_stop();
    gw_session_stop();
}
