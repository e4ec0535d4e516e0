/*
 * gateway/call.c — a forwarded call: one request sent to one upstream, its
 * messages streamed back on the call's channel as they arrive (I/O thread),
 * a retry after the upstream lost its session, cancellation by the client
 * or by its leaving, the relay of the upstream's own requests, and the
 * final message held until its audit row is committed.
 */
#include "gateway/endpoint_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- forwarded calls */

struct fwd {
    struct gw_chan  ch;                /* first: a forwarded call is a channel */
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
    bool         reached;           /* the upstream has had the request */
    char        *message;
    struct gw_audit row;            /* submitted at the end */
};

static void
fwd_free(struct gw_chan *c)
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
    gw_cred_release(&f->who);
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
    gw_chan_send(&f->ch, final, true);
    json_decref(final);
    gw_chan_unref(&f->ch);     /* the audit's reference */
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
            json_decref(f->final);
            f->final = gw_rpc_error(f->down_id, GW_RPC_INTERNAL, "The audit log is unavailable.", NULL);
        }
        pthread_mutex_unlock(&f->ch.lock);
    }
    fwd_release_final(f);
}

/* Any thread: the answer is known; audit, then send. */
static void
fwd_conclude(struct fwd *f, json_t *final)
{
    pthread_mutex_lock(&f->ch.lock);
    f->final = final;
    f->ch.refs++;
    pthread_mutex_unlock(&f->ch.lock);
    f->row = (struct gw_audit){
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
        .upstream_status = f->upstream_status,
        .duration_us = gh_now_us() - f->start_us,
        .request_id = f->request_id,
        .acted = f->reached,
    };
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
    fwd_conclude(f, gw_rpc_error(f->down_id, GW_RPC_UPSTREAM, text, NULL));
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
            gw_stateless_result(res, f->method);
            gw_stateless_error(json_object_get(out, "error"));
        }
        f->upstream_status = (int)gw_up_status(x);
        f->reached = true;
        fwd_conclude(f, out);
        return;
    }
    if (method && id == NULL) {
        /* progress, log messages and the like: on to the client now; a
         * 2026-07-28 request gets log messages only when it asked */
        if (f->no_logs && !strcmp(method, "notifications/message"))
            return;
        gw_chan_send(&f->ch, msg, false);
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
        gw_chan_send(&f->ch, msg, false);
    return open;
}

static void
fwd_relay_hold(void *call, bool take)
{
    struct fwd *f = call;

    if (!take) {
        gw_chan_unref(&f->ch);
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
    gw_chan_unref(&f->ch);     /* the work's reference */
}

static void
fwd_on_done(struct gw_up_xfer *x, void *ctx)
{
    struct fwd *f = ctx;
    long st = gw_up_status(x);
    bool gone;

    f->upstream_status = (int)st;
    /* an answer, or the request went out (then a timeout, a cancel or a
     * broken connection): the upstream may have acted on it */
    if (st > 0 || gw_up_sent(x))
        f->reached = true;
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
            gw_chan_unref(&f->ch);
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
    gw_chan_unref(&f->ch);     /* the transfer's reference */
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
    f->proto_up = gw_xstrdup(u ? u->proto : "");
    pthread_mutex_unlock(&f->s->lock);
    rq.on_message = fwd_on_message;
    rq.on_done = fwd_on_done;
    rq.ctx = f;
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;           /* the transfer's */
    pthread_mutex_unlock(&f->ch.lock);
    x = gw_up_start(&rq);
    if (x == NULL) {
        gw_chan_unref(&f->ch);
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

struct call_key { struct gw_session *s; json_t *down_id; };

static bool
call_of(struct gw_chan *c, const void *ctx)
{
    const struct call_key *key = ctx;
    struct fwd *f = (struct fwd *)c;

    return c->is_fwd && f->s == key->s && json_equal(f->down_id, key->down_id);
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
    hit = (struct fwd *)gw_chan_find(call_of, &(struct call_key){ s, request_id });
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
    gw_chan_unref(&hit->ch);
}

/* A notification or a response from the client of s (msg, method NULL
 * for a response), once its audit row is committed: a cancellation goes
 * to the call it names, an answer to the relayed request it answers. */
void
gw_client_note(struct gw_session *s, const char *method, json_t *msg)
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
    gw_chan_unregister(&f->ch);
    if (cancel && x) {
        gw_up_cancel(x);
        fwd_send_cancelled(f, "The client disconnected.");
        GH_LOG(INFO, "gw_forward", "client gone: upstream request to %s cancelled", f->c.name);
    }
    gw_chan_unref(&f->ch);     /* the stream's reference */
}

/* Forwards msg (already renamed for the upstream) and answers with the
 * upstream's stream. */
int
gw_forward(struct gw_mreq *m, struct gw_connector *c, json_t *id, const char *method, json_t *params)
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
        gw_mreq_audit(m, method);
        GH_LOG(WARN, "gw_forward", "connector %s: %s", c->name, e.detail[0] ? e.detail : e.msg);
        return web_reply_json(m->r, 200, gw_rpc_error(id, GW_RPC_UPSTREAM, m->message, NULL));
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    gw_chan_init(&f->ch, 2 * 1000000LL, fwd_free);
    f->ch.is_fwd = true;
    f->s = m->s;
    gw_session_ref(m->s);       /* the call's own: it may outlive the request */
    f->request_id = gw_xstrdup(web_request_id(m->r));
    f->policy_ids = gw_xstrdup(m->policy_ids);
    f->policy_versions = gw_xstrdup(m->policy_versions);
    f->c.id = gw_xstrdup(c->id);
    f->c.name = gw_xstrdup(c->name);
    f->c.url = gw_xstrdup(c->url);
    f->c.agent_id = NULL;
    f->c.enabled = true;
    f->hdrs = calloc((size_t)t.nheaders + 1, sizeof(*f->hdrs));
    for (int i = 0; f->hdrs && i < t.nheaders; i++) {
        f->hdrs[i].name = gw_xstrdup(t.headers[i].name);
        f->hdrs[i].value = gw_xstrdup(t.headers[i].value);
        f->nhdrs++;
    }
    f->up_id = gw_up_next_id();
    f->down_id = json_incref(id);
    f->msg = json_pack("{s:s, s:O, s:s, s:O}", "jsonrpc", "2.0", "id", f->up_id, "method", method,
                       "params", params);
    f->stateless = m->stateless;
    f->no_logs = m->stateless &&
                 !gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/logLevel");
    gw_cred_dup(&f->who, w);
    f->method = gw_xstrdup(method);
    f->tool = gw_xstrdup(m->tool);
    f->message = gw_xstrdup(m->message ? m->message : GW_ALLOW_MESSAGE);
    f->start_us = m->start_us;
    if (f->c.id == NULL || f->c.name == NULL || f->c.url == NULL || f->msg == NULL || f->hdrs == NULL) {
        gw_chan_unref(&f->ch);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;           /* the stream's */
    f->ch.deferred = true;
    pthread_mutex_unlock(&f->ch.lock);
    if (web_reply_deferred(m->r, gw_chan_read, &f->ch, fwd_stream_done, gw_chan_start, &ws) < 0) {
        f->ch.refs--;
        gw_chan_unref(&f->ch);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.ws = ws;
    pthread_mutex_unlock(&f->ch.lock);
    gw_chan_register(&f->ch);
    fwd_start(f);
    gw_chan_unref(&f->ch);     /* ours */
    return 0;
}
