/*
 * gateway/chan.c — replies and downstream channels: JSON-RPC replies (and
 * their 2026-07-28 forms), a request's audit row, the SSE channel a
 * forwarded call or a listen stream writes to, and the 200 reply sent once
 * its audit row is committed.
 */
#include "gateway/endpoint_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- replies */

json_t *
gw_rpc_error(json_t *id, int code, const char *msg, json_t *data)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", msg);

    if (data)
        json_object_set_new(err, "data", data);
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", err);
}

int
gw_reply_rpc_error(struct web_req *r, int status, json_t *id, int code, const char *msg, json_t *data)
{
    web_add_header(r, "Cache-Control", "no-store");
    return web_reply_json(r, status, gw_rpc_error(id, code, msg, data));
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
int
gw_reply_failure(struct web_req *r, int status, json_t *id, const struct gh_err *e)
{
    if (e->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", e->retry_after);
        web_add_header(r, "Retry-After", ra);
        status = 503;
    }
    return gw_reply_rpc_error(r, status, id, GW_RPC_INTERNAL, e->msg[0] ? e->msg : "Internal error.", retry_hint(e));
}

json_t *
gw_rpc_result(json_t *id, json_t *result)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* 2026-07-28: every complete result says so; the cacheable ones carry
 * caching hints.  Lists are per member (private) and change with
 * list_changed, so they are fresh for no time at all. */
void
gw_stateless_result(json_t *result, const char *method)
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
void
gw_stateless_error(json_t *error)
{
    json_t *code = json_object_get(error, "code");

    if (json_is_integer(code) && json_integer_value(code) == GW_RPC_RESOURCE_NOT_FOUND_LEGACY)
        json_object_set_new(error, "code", json_integer(GW_RPC_INVALID_PARAMS));
}

void
gw_session_put_cb(void *p)
{
    gw_session_put(p);
}

/* The request's audit row, committed (group commit) before this returns.
 * -1 when it could not be: a request that would do something then answers
 * audit_unavailable() instead and does nothing; a refusal goes out as it is
 * (it did nothing either way, and the failure is logged). */
void
gw_mreq_row(const struct gw_mreq *m, const char *method, const char *decision, const char *message,
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
        .policy_shadow = m->policy_shadow,
        .upstream_status = m->upstream_status,
        .duration_us = gh_now_us() - m->start_us,
    };
}

int
gw_mreq_audit(struct gw_mreq *m, const char *method)
{
    struct gw_audit row;
    struct gh_err e = {0};

    gw_mreq_row(m, method, m->decision, m->message, &row);
    if (gw_audit_write(&row, &e) < 0) {
        GH_LOG(ERROR, "gw_audit", "audit row not written: %s", e.detail[0] ? e.detail : e.msg);
        return -1;
    }
    return 0;
}

/* The one way a request is refused: its row (decision deny, why), then the
 * JSON-RPC error.  A refusal goes out even when its row could not be
 * written: it did nothing either way, and gw_mreq_audit logged the failure. */
int
gw_deny(struct gw_mreq *m, const char *method, const char *why, int status, json_t *id, int code,
        const char *text, json_t *data)
{
    m->decision = "deny";
    m->message = why;
    gw_mreq_audit(m, method);
    return gw_reply_rpc_error(m->r, status, id, code, text, data);
}

/* The same for a refusal MCP answers as a tool error (an unknown tool, a
 * policy's deny): the row, then a result with isError. */
int
gw_deny_tool(struct gw_mreq *m, const char *method, const char *why, json_t *id, const char *text)
{
    json_t *res = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", text, "isError", 1);

    m->decision = "deny";
    m->message = why;
    gw_mreq_audit(m, method);
    if (m->stateless)
        gw_stateless_result(res, m->method);
    web_add_header(m->r, "Cache-Control", "no-store");
    return web_reply_json(m->r, 200, gw_rpc_result(id, res));
}

int
gw_reply_audit_down(struct web_req *r, json_t *id)
{
    web_add_header(r, "Retry-After", "2");
    return gw_reply_rpc_error(r, 503, id, GW_RPC_INTERNAL, "The audit log is unavailable; nothing was done.", NULL);
}

/* ---------------------------------------------------------------- channels */


static pthread_mutex_t chans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_chan *chans;

void
gw_chan_unref(struct gw_chan *c)
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

void
gw_chan_init(struct gw_chan *c, int64_t keepalive_us, void (*free_fn)(struct gw_chan *))
{
    pthread_mutex_init(&c->lock, NULL);
    c->refs = 1;
    c->keepalive_us = keepalive_us;
    c->last_us = gh_now_us();
    c->free_fn = free_fn;
}

void
gw_chan_register(struct gw_chan *c)
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

void
gw_chan_unregister(struct gw_chan *c)
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
        gw_chan_unref(c);
}

/* Under c->lock: room for n more bytes, or -1 (nothing is queued then). */
static int
chan_room_locked(struct gw_chan *c, size_t n)
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
int
gw_chan_put_locked(struct gw_chan *c, const char *s, size_t n)
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
struct web_stream *
gw_chan_queue(struct gw_chan *c, json_t *msg, bool end)
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
        gw_chan_put_locked(c, "event: message\ndata: ", 21);
        gw_chan_put_locked(c, js, jl);
        gw_chan_put_locked(c, "\n\n", 2);
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
void
gw_chan_start(void *ctx, struct web_req *r)
{
    struct gw_chan *c = ctx;
    json_t *whole;

    int status;

    pthread_mutex_lock(&c->lock);
    whole = c->whole;
    c->whole = NULL;
    c->deferred = false;
    status = c->whole_status ? c->whole_status : 200;
    pthread_mutex_unlock(&c->lock);
    if (whole) {
        web_reply_json(r, status, whole);
        return;
    }
    web_add_header(r, "X-Accel-Buffering", "no");
    web_stream_begin(r, 200, "text/event-stream");
}

void
gw_chan_send(struct gw_chan *c, json_t *msg, bool end)
{
    web_stream_wake(gw_chan_queue(c, msg, end));
}

ssize_t
gw_chan_read(void *ctx, char *buf, size_t max)
{
    struct gw_chan *c = ctx;
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

/* ---------------------------------------------------------------- replies after their audit row
 * The credential and the row's strings are copied into the reply's own
 * arena: the response (and the request arena) may end before the writer
 * thread has formatted the row. */

static char *
astr(struct gh_arena *a, const char *s)
{
    return s ? gh_arena_strdup(a, s) : NULL;
}

void
gw_cred_copy(struct gh_arena *a, struct authz_credential *d, const struct authz_credential *w)
{
    *d = (struct authz_credential){
        .kind = astr(a, w->kind),
        .token_id = astr(a, w->token_id),
        .grant_id = astr(a, w->grant_id),
        .user_id = astr(a, w->user_id),
        .user_email = astr(a, w->user_email),
        .client_id = astr(a, w->client_id),
        .client_name = astr(a, w->client_name),
        .scope = astr(a, w->scope),
        .agent = { .id = astr(a, w->agent.id), .slug = astr(a, w->agent.slug),
                   .name = astr(a, w->agent.name), .untrusted = w->agent.untrusted,
                   .disabled = w->agent.disabled, .timezone = astr(a, w->agent.timezone) },
        .expires_at = w->expires_at,
    };
}

struct areply {
    struct gw_chan  ch;             /* first: an audited reply is a channel */
    struct gh_arena *a;             /* the copies below; freed with the reply */
    struct authz_credential who;
    struct gw_audit row;
    char        *body;              /* malloc: replaced on the writer thread */
    json_t      *id;                /* the request's, for an error instead of body */
    bool         unaudited;         /* the row could not be written: body is the error */
    /* initialize: the new session, announced only with its row committed,
     * else deleted again */
    struct gw_session *s;
    char        *session_wire;
};

static void
areply_free(struct gw_chan *c)
{
    struct areply *ar = (struct areply *)c;

    free(ar->body);
    gh_arena_free(ar->a);
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
        json_t *err = gw_rpc_error(ar->id, GW_RPC_INTERNAL, "The audit log is unavailable.",
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
    gw_chan_unref(&ar->ch);        /* the audit's reference */
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
        gw_reply_rpc_error(r, 503, ar->id, GW_RPC_INTERNAL, "The server is shutting down.", NULL);
}

static void
areply_done(void *ctx)
{
    struct areply *ar = ctx;

    pthread_mutex_lock(&ar->ch.lock);
    ar->ch.gone = true;
    pthread_mutex_unlock(&ar->ch.lock);
    gw_chan_unref(&ar->ch);        /* the stream's reference */
}

/* The 200 reply to a request the gateway answered itself, sent once its
 * audit row is committed — without this thread waiting for the commit. */
/* The reply's copy of what its row needs (ar->a): false when out of memory. */
static bool
areply_fill(struct areply *ar, struct gw_mreq *m, const char *method, json_t *id)
{
    struct gh_arena *a = ar->a;
    const char *decision = m->decision ? m->decision : "allow";

    ar->id = gh_arena_json(a, json_incref(id));
    if (m->new_session) {
        if (gh_arena_defer(a, gw_session_put_cb, m->s) < 0)
            return false;
        gw_session_ref(m->s);
        ar->s = m->s;
        ar->session_wire = astr(a, m->new_session);
    }
    gw_cred_copy(a, &ar->who, m->who);
    ar->row = (struct gw_audit){
        .who = &ar->who,
        .agent_id = ar->who.agent.id,
        .session_id = astr(a, m->s && !m->stateless ? m->s->id_hash : NULL),
        .method = astr(a, method),
        .tool = astr(a, m->tool),
        .connector = astr(a, m->connector),
        .decision = astr(a, decision),
        .message = astr(a, m->message ? m->message : strcmp(decision, "allow") ? NULL : GW_ALLOW_MESSAGE),
        .policy_ids = astr(a, m->policy_ids),
        .policy_versions = astr(a, m->policy_versions),
        .policy_shadow = astr(a, m->policy_shadow),
        .request_id = astr(a, web_request_id(m->r)),
        .upstream_status = m->upstream_status,
        .duration_us = gh_now_us() - m->start_us,
    };
    return ar->row.agent_id && ar->row.method && ar->row.decision && (!m->new_session || ar->session_wire);
}

/* The 200 reply to a request the gateway answered itself, sent once its
 * audit row is committed — without this thread waiting for the commit. */
int
gw_reply_audited(struct gw_mreq *m, const char *method, json_t *id, json_t *result)
{
    struct areply *ar;
    struct web_stream *ws = NULL;
    char *body;

    if (m->stateless)
        gw_stateless_result(result, m->method);
    body = json_dumps(gh_arena_json(m->a, gw_rpc_result(id, result)), JSON_COMPACT);
    ar = calloc(1, sizeof(*ar));
    if (body == NULL || ar == NULL || (ar->a = gh_arena_new(0)) == NULL) {
        free(body);
        free(ar);
        if (m->new_session)
            forget_session(m->s);
        gw_mreq_audit(m, method);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    gw_chan_init(&ar->ch, 15 * 1000000LL, areply_free);
    ar->body = body;
    if (!areply_fill(ar, m, method, id)) {
        gw_chan_unref(&ar->ch);
        if (m->new_session)
            forget_session(m->s);
        gw_mreq_audit(m, method);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    ar->ch.refs++;              /* the stream's */
    if (web_reply_deferred(m->r, gw_chan_read, &ar->ch, areply_done, areply_start, &ws) < 0) {
        ar->ch.refs--;
        if (m->new_session)
            forget_session(m->s);
        gw_mreq_audit(m, method);
        gw_chan_unref(&ar->ch);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    pthread_mutex_lock(&ar->ch.lock);
    ar->ch.ws = ws;
    ar->ch.refs++;              /* the audit's */
    pthread_mutex_unlock(&ar->ch.lock);
    if (gw_audit_submit(&ar->row, ar->row.request_id, areply_audited, ar) < 0) {
        struct gh_err e = {0};
        areply_audited(ar, gw_audit_write(&ar->row, &e));
    }
    gw_chan_unref(&ar->ch);        /* ours */
    return 0;
}

/* The first registered channel match() picks, referenced; NULL if none. */
struct gw_chan *
gw_chan_find(bool (*match)(struct gw_chan *c, const void *ctx), const void *ctx)
{
    struct gw_chan *hit = NULL;

    pthread_mutex_lock(&chans_lock);
    for (struct gw_chan *c = chans; c && !hit; c = c->next) {
        if (!match(c, ctx))
            continue;
        pthread_mutex_lock(&c->lock);
        c->refs++;
        pthread_mutex_unlock(&c->lock);
        hit = c;
    }
    pthread_mutex_unlock(&chans_lock);
    return hit;
}

/* The ticker, each second: a keep-alive comment on every quiet stream, so
 * a vanished client is noticed even while its connection is parked. */
void
gw_chan_keepalives(void)
{
    int64_t now = gh_now_us();
    struct web_stream *wake[256];
    struct gw_chan *held[256];
    int n = 0;

    pthread_mutex_lock(&chans_lock);
    for (struct gw_chan *c = chans; c && n < 256; c = c->next) {
        pthread_mutex_lock(&c->lock);
        if (!c->gone && !c->ended && now - c->last_us >= c->keepalive_us) {
            if (c->off == c->len)
                gw_chan_put_locked(c, ":\n\n", 3);
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
        gw_chan_unref(held[i]);
    }
}

