/*
 * gateway/call.c — a forwarded call: one request sent to one upstream, its
 * messages streamed back on the call's channel as they arrive (I/O thread),
 * a retry after the upstream lost its session, cancellation by the client
 * or by its leaving, the relay of the upstream's own requests, and the
 * final message held until its audit row is committed.
 *
 * A call is one object (struct gw_call) that owns an arena: everything it
 * copies from the request (connector, credentials, the row's strings) lives
 * there and goes with it, the upstream credentials wiped first.  Its
 * progress is one state, changed only by call_state() under the channel's
 * lock, along the transitions gw_call_may() allows:
 *
 *   AHEAD ──row committed──▶ SENT ──404, session lost──▶ RETRY ──▶ RESENT
 *     │                        │ client cancels / leaves  │          │
 *     │                        └──────▶ CANCELLED, LEFT ◀─┴──────────┘
 *     │ its row not written                  │
 *     │               any state before ──▶ ANSWERED (the outcome is known;
 *     └──────────────────────────────▶ DONE  its row is being completed)
 *                                      ▲          │
 *                                      └──────────┘ (the final message went)
 *
 * Write-ahead: the call's row (who called what, with which decision) is
 * committed before the call goes upstream (AHEAD); the outcome completes
 * that row (gw_audit's call_id) when the call is over.
 *
 * A 2026-07-28 upstream's input-required result, for a session's client,
 * is no answer yet: its input requests go to the client (gw_relay_inputs)
 * and, with every answer in, the call goes upstream again carrying them
 * (inputResponses, and the upstream's requestState), as often as the
 * upstream asks (at most GW_CALL_INPUT_ROUNDS), in the state it is in: one
 * call, one row.  A stateless client gets the result as it is and retries
 * itself.
 */
#include "gateway/call_int.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- the call
 * struct gw_call is in call_int.h: held.c (a stateless client's call held
 * for its retry) shares it. */

bool
gw_call_may(enum gw_call_state from, enum gw_call_state to)
{
    switch (from) {
    case GW_CALL_AHEAD:
        /* DONE: its row could not be written; nothing went upstream */
        return to == GW_CALL_SENT || to == GW_CALL_CANCELLED || to == GW_CALL_LEFT ||
               to == GW_CALL_ANSWERED || to == GW_CALL_DONE;
    case GW_CALL_SENT:
        return to == GW_CALL_RETRY || to == GW_CALL_CANCELLED || to == GW_CALL_LEFT || to == GW_CALL_ANSWERED;
    case GW_CALL_RETRY:
    case GW_CALL_RESENT:
        /* one retry: RESENT does not go back to RETRY */
        return (from == GW_CALL_RETRY && to == GW_CALL_RESENT) || to == GW_CALL_CANCELLED ||
               to == GW_CALL_LEFT || to == GW_CALL_ANSWERED;
    case GW_CALL_CANCELLED:
    case GW_CALL_LEFT:
        return to == GW_CALL_ANSWERED;
    case GW_CALL_ANSWERED:
        return to == GW_CALL_DONE;
    default:
        return false;
    }
}

/* The one place a call's state changes: false (and no change) when the
 * call is not where `to` may follow. */
static bool
call_state(struct gw_call *f, enum gw_call_state to)
{
    bool ok;

    pthread_mutex_lock(&f->ch.lock);
    ok = gw_call_may(f->state, to);
    if (ok)
        f->state = to;
    pthread_mutex_unlock(&f->ch.lock);
    return ok;
}

enum gw_call_state
gw_call_now(struct gw_call *f)
{
    enum gw_call_state st;

    pthread_mutex_lock(&f->ch.lock);
    st = f->state;
    pthread_mutex_unlock(&f->ch.lock);
    return st;
}

/* A 2026-07-28 upstream has no session to lose, and learns of a cancel from
 * its closed stream alone. */
static bool
call_legacy(struct gw_call *f)
{
    bool legacy;

    pthread_mutex_lock(&f->ch.lock);
    legacy = strcmp(f->proto_up, GW_PROTO_2026_07_28) != 0;
    pthread_mutex_unlock(&f->ch.lock);
    return legacy;
}

static void
call_free(struct gw_chan *c)
{
    struct gw_call *f = (struct gw_call *)c;

    gw_up_release(f->x);
    if (f->out && f->out != &f->ch)
        gw_chan_unref(f->out);
    json_decref(f->held_reqs);
    json_decref(f->final);
    json_decref(f->input_next);
    gh_arena_free(f->a);
    free(f);
}

static void call_start(struct gw_call *f);
static bool call_unauthorized(struct gw_call *f, long st);
static char *call_str(struct gw_call *f, const char *s);
static void wipe_cb(void *p);
static bool call_take_input(struct gw_call *f, json_t *res);

/* The channel the client reads now, a reference taken: NULL while the
 * call is held for a retry, or once its client left. */
static struct gw_chan *
call_out(struct gw_call *f)
{
    struct gw_chan *o;

    pthread_mutex_lock(&f->ch.lock);
    o = f->out;
    if (o == &f->ch)
        f->ch.refs++;
    else if (o) {
        pthread_mutex_lock(&o->lock);
        o->refs++;
        pthread_mutex_unlock(&o->lock);
    }
    pthread_mutex_unlock(&f->ch.lock);
    return o;
}

static void
call_send_out(struct gw_call *f, json_t *msg, bool end)
{
    struct gw_chan *o = call_out(f);

    if (o) {
        gw_chan_send(o, msg, end);
        gw_chan_unref(o);
    }
}

/* The client left (a held call's client is only away until its retry). */
static bool
call_client_gone(struct gw_call *f)
{
    struct gw_chan *o;
    bool gone;

    pthread_mutex_lock(&f->ch.lock);
    gone = !f->held && f->out == NULL;
    pthread_mutex_unlock(&f->ch.lock);
    if (gone || (o = call_out(f)) == NULL)
        return gone;
    pthread_mutex_lock(&o->lock);
    gone = o->gone;
    pthread_mutex_unlock(&o->lock);
    gw_chan_unref(o);
    return gone;
}

/* The final message goes once its audit row is committed: the row is
 * submitted to the group commit without a thread waiting for it, and the
 * writer thread lets the message go (or, with the writer stopped, this
 * thread writes and waits). */
static void
call_release_final(struct gw_call *f)
{
    json_t *final;

    pthread_mutex_lock(&f->ch.lock);
    final = f->final;
    f->final = NULL;
    pthread_mutex_unlock(&f->ch.lock);
    call_state(f, GW_CALL_DONE);
    call_send_out(f, final, true);
    json_decref(final);
    gw_chan_unref(&f->ch);     /* the audit's reference */
}

static void
call_audited(void *ctx, int ok)
{
    struct gw_call *f = ctx;

    if (ok < 0) {
        /* the upstream's answer does not leave without its audit row */
        GH_LOG(ERROR, "gw_audit", "audit row of %s not written", f->method);
        pthread_mutex_lock(&f->ch.lock);
        if (f->final) {
            /* its row was written ahead, so the upstream had the call: not to be repeated blindly */
            json_decref(f->final);
            f->final = gw_rpc_error(f->down_id, GW_RPC_INTERNAL, "The audit log is unavailable.",
                                    json_pack("{s:b}", "retryable", 0));
        }
        pthread_mutex_unlock(&f->ch.lock);
    }
    call_release_final(f);
}

/* The call's audit row: written ahead by gw_forward, completed by
 * call_conclude with the outcome. */
static void
call_row(struct gw_call *f)
{
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
        .policy_shadow = f->policy_shadow,
        .message = f->message,
        .request_id = f->request_id,
        .call_id = f->call_id,
        .duration_us = -1,
    };
}

/* Any thread: the answer is known (final, or NULL when none is due);
 * complete the row, then send.  Once per call: a later outcome is dropped. */
static void
call_conclude(struct gw_call *f, json_t *final)
{
    if (!call_state(f, GW_CALL_ANSWERED)) {
        json_decref(final);
        return;
    }
    pthread_mutex_lock(&f->ch.lock);
    f->final = final;
    f->held = false;
    f->ch.refs++;
    pthread_mutex_unlock(&f->ch.lock);
    gw_held_unlist(f);
    call_row(f);
    f->row.outcome = true;
    f->row.acted = true;            /* its row exists: the outcome is kept until written */
    f->row.upstream_status = f->upstream_status;
    f->row.duration_us = gh_now_us() - f->start_us;
    f->row.upstream_error = final ? gh_json_str(json_object_get(final, "error"), "message") : "cancelled by the client";
    if (gw_audit_submit(&f->row, f->request_id, call_audited, f) < 0) {
        struct gh_err e = {0};
        call_audited(f, gw_audit_write(&f->row, &e));
    }
}

/* The audit row keeps the decision's message (why the call was allowed);
 * what went wrong upstream goes to the log and to the client. */
void
gw_call_error(struct gw_call *f, const char *text)
{
    bool own = gh_log_request_id()[0] == '\0';   /* an I/O or worker thread */

    if (own)
        gh_log_context(f->request_id, "gw_forward");
    GH_LOG(WARN, "gw_forward", "%s %s: %s", f->method, f->tool ? f->tool : "", text);
    if (own)
        gh_log_context(NULL, NULL);
    call_conclude(f, gw_rpc_error(f->down_id, GW_RPC_UPSTREAM, text, NULL));
}

static void
call_on_message(struct gw_up_xfer *x, json_t *msg, void *ctx)
{
    struct gw_call *f = ctx;
    json_t *id = json_object_get(msg, "id");
    const char *method = gh_json_str(msg, "method");
    enum gw_call_state st = gw_call_now(f);

    if (st >= GW_CALL_ANSWERED)
        return;
    if (method == NULL && id && json_equal(id, f->up_id)) {
        /* msg was parsed for this call alone: it is ours to change */
        json_t *out = json_incref(msg);
        json_t *res = json_object_get(out, "result");
        if (((gw_up_status(x) == 404 && call_legacy(f)) || call_unauthorized(f, gw_up_status(x))) &&
            gw_call_may(st, GW_CALL_RETRY)) {
            json_decref(out);   /* the upstream lost its session: on_done redoes it */
            return;
        }
        if (!f->stateless && call_take_input(f, res)) {
            json_decref(out);
            return;
        }
        json_object_set(out, "id", f->down_id);
        if (f->stateless) {
            long hs = gw_up_status(x);
            gw_stateless_result(res, f->method);
            gw_stateless_error(json_object_get(out, "error"));
            /* 2026-07-28 gives errors HTTP statuses (a missing client
             * capability is a 400): an upstream's 400 error answer keeps
             * its status when it is all the client gets (not a 404, which
             * may be a session-based upstream's lost session) */
            struct gw_chan *o = json_object_get(out, "error") && hs == 400 ? call_out(f) : NULL;
            if (o) {
                pthread_mutex_lock(&o->lock);
                o->whole_status = (int)hs;
                pthread_mutex_unlock(&o->lock);
                gw_chan_unref(o);
            }
        }
        f->upstream_status = (int)gw_up_status(x);
        call_conclude(f, out);
        return;
    }
    if (method && id == NULL) {
        /* progress, log messages and the like: on to the client now; a
         * 2026-07-28 request gets log messages only when it asked */
        if (f->no_logs && !strcmp(method, "notifications/message"))
            return;
        call_send_out(f, msg, false);
        return;
    }
    if (method && id) {
        /* a request from the upstream (sampling, elicitation, roots, ping) */
        struct gw_relay_call rc = { { f->s, &f->c, f->hdrs, f->nhdrs }, f->stateless, f->request_id,
                                    f, gw_call_relay_send, gw_call_relay_hold, NULL };
        pthread_mutex_lock(&f->ch.lock);
        rc.up_sid = f->up_sid;
        pthread_mutex_unlock(&f->ch.lock);
        if (!f->stateless || !call_legacy(f) || !gw_held_hold(f, &rc, msg))
            gw_relay_request(&rc, msg);
    }
}

/* How relay.c reaches a forwarded call: its stream while it is open, and a
 * reference while a relay waits for the client. */
bool
gw_call_relay_send(void *call, json_t *msg)
{
    struct gw_call *f = call;
    bool open;

    pthread_mutex_lock(&f->ch.lock);
    open = !f->ch.gone && !f->ch.ended && f->state < GW_CALL_ANSWERED;
    pthread_mutex_unlock(&f->ch.lock);
    if (open && msg)
        gw_chan_send(&f->ch, msg, false);
    return open;
}

void
gw_call_relay_hold(void *call, bool take)
{
    struct gw_call *f = call;

    if (!take) {
        gw_chan_unref(&f->ch);
        return;
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;
    pthread_mutex_unlock(&f->ch.lock);
}

/* An oauth-app connector's upstream answered 401 to the member's token. */
static bool
call_unauthorized(struct gw_call *f, long st)
{
    return st == 401 && f->bearer && gw_auth_per_member(f->c.auth_mode);
}

/* The member's token refreshed (once per connection, whoever asks), and
 * the call's Authorization header replaced by the new one. */
static int
call_reauth(struct gw_call *f, struct gh_arena *a, struct gh_err *e)
{
    struct authz_credential w = f->who;
    struct gw_header *h;
    int n = 0;

    w.bearer = f->bearer;
    if (gw_connection_headers(a, &f->c, &w, true, &h, &n, e) < 0)
        return -1;
    for (int i = 0; i < f->nhdrs && n > 0; i++)
        if (!strcasecmp(f->hdrs[i].name, h[0].name)) {
            f->hdrs[i].value = call_str(f, h[0].value);
            if (f->hdrs[i].value == NULL || gh_arena_defer(f->a, wipe_cb, f->hdrs[i].value) < 0)
                return gh_err_set(e, 500, "server_error", "internal error", "arena full");
        }
    gh_wipe(h[0].value, strlen(h[0].value));
    return 0;
}

/* A worker: the new handshake after the upstream lost its session, then
 * the call once more (unless the client cancelled or left meanwhile). */
static void
call_retry_work(void *ctx)
{
    struct gw_call *f = ctx;
    struct gh_arena *a = gh_arena_new(0);
    struct gw_call_target t = { f->s, &f->c, f->hdrs, f->nhdrs };
    struct gh_err e = {0};

    if (a == NULL || (f->auth_retry ? call_reauth(f, a, &e) : gw_up_ensure(a, &t, true, &e)) < 0)
        gw_call_error(f, e.msg[0] ? e.msg : "Upstream unavailable.");
    else if (call_state(f, GW_CALL_RESENT))
        call_start(f);
    else if (gw_call_now(f) == GW_CALL_CANCELLED)
        call_conclude(f, NULL);     /* no response is due, only the audit row */
    else
        gw_call_error(f, "client disconnected");
    gh_arena_free(a);
    gw_chan_unref(&f->ch);     /* the work's reference */
}

/* What the client reads when the transfer ended without the upstream's
 * answer (text, for the log and the error). */
static void
call_failure(struct gw_call *f, struct gw_up_xfer *x, bool gone, char *text, size_t n)
{
    long st = gw_up_status(x);

    if (gone)
        snprintf(text, n, "client disconnected");
    else if (gw_up_timed_out(x)) {
        snprintf(text, n, "Upstream '%s' timed out.", f->c.name);
        gw_call_send_cancelled(f, "The gateway's call timeout passed.");
    } else if (st >= 400)
        snprintf(text, n, "Upstream '%s' answered HTTP %ld.", f->c.name, st);
    else if (st == 0)
        snprintf(text, n, "Upstream '%s' is unavailable.", f->c.name);
    else
        snprintf(text, n, "Upstream '%s' ended without an answer.", f->c.name);
}

/* The next round of an input-required call: the same request with the
 * client's answers (msg, a reference taken), under a new upstream id. */
static void
call_resume(struct gw_call *f, json_t *msg)
{
    enum gw_call_state now = gw_call_now(f);

    if (now == GW_CALL_CANCELLED || now == GW_CALL_LEFT) {
        json_decref(msg);
        if (now == GW_CALL_CANCELLED)
            call_conclude(f, NULL);
        else
            gw_call_error(f, "client disconnected");
        return;
    }
    pthread_mutex_lock(&f->ch.lock);
    f->input_wait = false;
    f->up_id = gh_arena_json(f->a, gw_up_next_id());
    json_object_set(msg, "id", f->up_id);
    f->msg = gh_arena_json(f->a, msg);
    pthread_mutex_unlock(&f->ch.lock);
    call_start(f);
}

/* gw_relay_inputs' done: every answer is in (or why not). */
static void
call_inputs_done(void *call, json_t *answers, const char *why)
{
    struct gw_call *f = call;
    json_t *msg, *params;
    bool go;

    if (answers == NULL) {
        gw_call_error(f, why ? why : "The client did not answer.");
        return;
    }
    pthread_mutex_lock(&f->ch.lock);
    msg = json_deep_copy(f->msg);
    params = json_object_get(msg, "params");
    if (json_is_object(params))
        json_object_set(params, "inputResponses", answers);
    go = f->input_xfer_over;
    if (!go) {
        json_decref(f->input_next);
        f->input_next = msg;    /* call_on_done sends it */
        msg = NULL;
    }
    pthread_mutex_unlock(&f->ch.lock);
    if (go && msg)
        call_resume(f, msg);
    else if (go)
        gw_call_error(f, "Internal error.");
}

/* An upstream's result that asks for input (SEP-2322), for a session
 * client: true when its requests went to the client (the call goes on
 * once they are answered) or the call ended because they cannot. */
static bool
call_take_input(struct gw_call *f, json_t *res)
{
    struct gw_relay_call rc = { { f->s, &f->c, f->hdrs, f->nhdrs }, f->stateless, f->request_id,
                                f, gw_call_relay_send, gw_call_relay_hold, NULL };
    const char *rt = gh_json_str(res, "resultType"), *why = NULL;
    json_t *state = json_object_get(res, "requestState"), *params;

    if (rt == NULL || strcmp(rt, "input_required"))
        return false;
    pthread_mutex_lock(&f->ch.lock);
    if (++f->input_rounds > GW_CALL_INPUT_ROUNDS) {
        pthread_mutex_unlock(&f->ch.lock);
        gw_call_error(f, "The upstream asked for input too many times.");
        return true;
    }
    /* the next round carries the upstream's state back, or none */
    params = json_object_get(f->msg, "params");
    json_object_del(params, "inputResponses");
    if (json_is_string(state))
        json_object_set(params, "requestState", state);
    else
        json_object_del(params, "requestState");
    f->input_wait = true;
    f->input_xfer_over = false;
    pthread_mutex_unlock(&f->ch.lock);
    if (gw_relay_inputs(&rc, json_object_get(res, "inputRequests"), call_inputs_done, &why) < 0) {
        pthread_mutex_lock(&f->ch.lock);
        f->input_wait = false;
        pthread_mutex_unlock(&f->ch.lock);
        gw_call_error(f, why);
    }
    return true;
}

static void
call_on_done(struct gw_up_xfer *x, void *ctx)
{
    struct gw_call *f = ctx;
    long st = gw_up_status(x);
    enum gw_call_state now;
    char text[200];
    bool gone;

    f->upstream_status = (int)st;
    gone = call_client_gone(f);
    now = gw_call_now(f);
    if (now >= GW_CALL_ANSWERED)
        goto out;
    pthread_mutex_lock(&f->ch.lock);
    if (f->input_wait) {
        /* it asked for input: the next round goes once the answers are in */
        json_t *next = f->input_next;
        f->input_xfer_over = true;
        f->input_next = NULL;
        pthread_mutex_unlock(&f->ch.lock);
        if (next)
            call_resume(f, next);
        goto out;
    }
    pthread_mutex_unlock(&f->ch.lock);
    if (((st == 404 && call_legacy(f)) || call_unauthorized(f, st)) && !gone && call_state(f, GW_CALL_RETRY)) {
        /* the upstream dropped its session: new handshake, then again; or
         * it refused the member's token: refreshed once, then again */
        f->auth_retry = st == 401;
        pthread_mutex_lock(&f->ch.lock);
        f->ch.refs++;
        pthread_mutex_unlock(&f->ch.lock);
        if (gw_work_post(call_retry_work, f) == 0)
            goto out;
        gw_chan_unref(&f->ch);
    }
    if (gw_call_now(f) == GW_CALL_CANCELLED) {
        /* the client cancelled: no response is due, only the audit row */
        call_conclude(f, NULL);
        goto out;
    }
    call_failure(f, x, gone, text, sizeof(text));
    gw_call_error(f, text);
out:
    gw_chan_unref(&f->ch);     /* the transfer's reference */
}

static void
call_start(struct gw_call *f)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gw_call_target t = { f->s, &f->c, f->hdrs, f->nhdrs };
    struct gw_up_req rq = {0};
    struct gh_err e = {0};
    struct gw_up_xfer *x;
    struct gw_upstate *u;
    char proto[16];
    bool gone;

    /* gw_up_prepare copies f->msg if it must change it */
    if (a == NULL || f->msg == NULL || gw_up_prepare(a, &t, f->msg, &rq, &e) < 0) {
        gw_call_error(f, "Internal error.");
        goto out;
    }
    pthread_mutex_lock(&f->s->lock);
    u = gw_session_upstate(f->s, &f->c);
    snprintf(proto, sizeof(proto), "%s", u ? u->proto : "");
    pthread_mutex_unlock(&f->s->lock);
    rq.on_message = call_on_message;
    rq.on_done = call_on_done;
    rq.ctx = f;
    /* the answers to what the upstream asks during the call (relayed, or a
     * held call's) go to the upstream session that asks, should a handshake
     * have replaced the session's meanwhile */
    for (int i = 0; i < rq.nheaders; i++)
        if (!strcasecmp(rq.headers[i].name, "Mcp-Session-Id")) {
            char *sid = gh_arena_strdup(f->a, rq.headers[i].value);
            pthread_mutex_lock(&f->ch.lock);
            f->up_sid = sid;
            pthread_mutex_unlock(&f->ch.lock);
        }
    pthread_mutex_lock(&f->ch.lock);
    memcpy(f->proto_up, proto, sizeof(proto));
    f->ch.refs++;           /* the transfer's */
    pthread_mutex_unlock(&f->ch.lock);
    x = gw_up_start(&rq);
    if (x == NULL) {
        gw_chan_unref(&f->ch);
        gw_call_error(f, "Internal error.");
        goto out;
    }
    pthread_mutex_lock(&f->ch.lock);
    gw_up_release(f->x);
    f->x = x;
    pthread_mutex_unlock(&f->ch.lock);
    gone = call_client_gone(f);
    if (gone)
        gw_up_cancel(x);        /* the client left while this one started */
out:
    gh_arena_free(a);
}

/* The writer thread (or gw_forward's, the writer stopped): the call's
 * write-ahead row is committed, so the call may go upstream — unless the
 * client has cancelled or left meanwhile (then its outcome says so); or it
 * is not, and nothing goes: the client gets the error, the row no outcome. */
static void
call_ahead_done(void *ctx, int ok)
{
    struct gw_call *f = ctx;

    if (ok < 0) {
        /* a call cancelled or left meanwhile stays where it is: no
         * transfer will ever move it */
        json_t *err = gw_rpc_error(f->down_id, GW_RPC_INTERNAL, "The audit log is unavailable; nothing was done.",
                                   NULL);
        call_state(f, GW_CALL_DONE);
        GH_LOG(ERROR, "gw_audit", "write-ahead row of %s (request %s) not written: not forwarded", f->method,
               f->request_id ? f->request_id : "-");
        gw_chan_send(&f->ch, err, true);
        json_decref(err);
    } else if (call_state(f, GW_CALL_SENT)) {
        call_start(f);
    } else if (gw_call_now(f) == GW_CALL_CANCELLED) {
        call_conclude(f, NULL);     /* no response is due, only the outcome */
    } else {
        gw_call_error(f, "client disconnected");
    }
    gw_chan_unref(&f->ch);     /* the audit's reference */
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
void
gw_call_send_cancelled(struct gw_call *f, const char *reason)
{
    struct gh_arena *a;
    struct gw_call_target t = { f->s, &f->c, f->hdrs, f->nhdrs };
    struct gw_up_req rq = {0};
    struct gh_err e = {0};
    json_t *note;

    if (!call_legacy(f))
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
    struct gw_call *f = (struct gw_call *)c;

    return c->is_fwd && f->s == key->s && json_equal(f->down_id, key->down_id);
}

/* Stops a running call upstream (the client cancelled or left): false when
 * it was no longer running, or was stopped already. */
bool
gw_call_stop(struct gw_call *f, enum gw_call_state why, const char *reason)
{
    struct gw_up_xfer *x;

    if (!call_state(f, why))
        return false;
    pthread_mutex_lock(&f->ch.lock);
    x = f->x;
    pthread_mutex_unlock(&f->ch.lock);
    if (x == NULL)
        return false;
    gw_up_cancel(x);
    gw_call_send_cancelled(f, reason);
    return true;
}

/* notifications/cancelled from a session's client: the forwarded call with
 * that request id stops upstream, and its stream ends without a response. */
static void
cancel_by_client(struct gw_session *s, json_t *request_id, const char *reason)
{
    struct gw_call *hit;

    if (request_id == NULL)
        return;
    hit = (struct gw_call *)gw_chan_find(call_of, &(struct call_key){ s, request_id });
    if (hit == NULL)
        return;
    gw_call_stop(hit, GW_CALL_CANCELLED, reason ? reason : "The client cancelled the request.");
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
call_stream_done(void *ctx)
{
    struct gw_call *f = ctx;
    bool mine;

    pthread_mutex_lock(&f->ch.lock);
    f->ch.gone = true;
    mine = f->out == &f->ch;    /* else the call is held, or a retry reads it */
    if (mine)
        f->out = NULL;
    pthread_mutex_unlock(&f->ch.lock);
    gw_chan_unregister(&f->ch);
    if (mine && gw_call_stop(f, GW_CALL_LEFT, "The client disconnected."))
        GH_LOG(INFO, "gw_forward", "client gone: upstream request to %s cancelled", f->c.name);
    gw_chan_unref(&f->ch);     /* the stream's reference */
}

static void
wipe_cb(void *p)
{
    gh_wipe(p, strlen(p));
}

static char *
call_str(struct gw_call *f, const char *s)
{
    return s ? gh_arena_strdup(f->a, s) : NULL;
}

/* The call's copies of what it needs from the request, in its arena: false
 * when out of memory. */
static bool
call_fill(struct gw_call *f, struct gw_mreq *m, const struct gw_call_target *t, json_t *id,
          const char *method, json_t *params)
{
    struct gh_arena *a = f->a;

    gw_session_ref(m->s);       /* the call's own: it may outlive the request */
    f->s = m->s;
    if (gh_arena_defer(a, gw_session_put_cb, f->s) < 0) {
        gw_session_put(f->s);
        f->s = NULL;
        return false;
    }
    f->c = (struct gw_connector){ .id = call_str(f, t->c->id), .name = call_str(f, t->c->name),
                                  .url = call_str(f, t->c->url), .enabled = true,
                                  .agent_id = call_str(f, t->c->agent_id), .agent_slug = call_str(f, t->c->agent_slug),
                                  .auth_mode = call_str(f, t->c->auth_mode) };
    f->bearer = call_str(f, m->who ? m->who->bearer : NULL);
    if (f->bearer && gh_arena_defer(a, wipe_cb, f->bearer) < 0)
        return false;
    f->hdrs = gh_arena_alloc(a, sizeof(*f->hdrs) * (size_t)(t->nheaders + 1));
    for (int i = 0; f->hdrs && i < t->nheaders; i++) {
        struct gw_header *h = &f->hdrs[f->nhdrs];
        h->name = call_str(f, t->headers[i].name);
        h->value = call_str(f, t->headers[i].value);
        if (h->name == NULL || h->value == NULL || gh_arena_defer(a, wipe_cb, h->value) < 0)
            return false;
        f->nhdrs++;
    }
    f->up_id = gh_arena_json(a, gw_up_next_id());
    f->down_id = gh_arena_json(a, json_incref(id));
    f->msg = gh_arena_json(a, json_pack("{s:s, s:O, s:s, s:O}", "jsonrpc", "2.0", "id", f->up_id,
                                        "method", method, "params", params));
    f->stateless = m->stateless;
    f->out = &f->ch;
    f->client_caps = json_object_get(json_object_get(json_object_get(f->msg, "params"), "_meta"),
                                     "io.modelcontextprotocol/clientCapabilities");
    f->no_logs = m->stateless &&
                 !gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/logLevel");
    gw_cred_copy(a, &f->who, m->who);
    f->request_id = call_str(f, web_request_id(m->r));
    f->policy_ids = call_str(f, m->policy_ids);
    f->policy_versions = call_str(f, m->policy_versions);
    f->policy_shadow = call_str(f, m->policy_shadow);
    f->method = call_str(f, method);
    f->tool = call_str(f, m->tool);
    f->message = call_str(f, m->message ? m->message : GW_ALLOW_MESSAGE);
    f->start_us = m->start_us;
    return f->c.id && f->c.name && f->c.url && f->hdrs && f->up_id && f->msg && f->who.agent.id &&
           f->method && f->message;
}

/* Forwards msg (already renamed for the upstream) and answers with the
 * upstream's stream. */
int
gw_forward(struct gw_mreq *m, struct gw_connector *c, json_t *id, const char *method, json_t *params)
{
    struct gh_arena *a = m->a;
    struct gw_call_target t = { m->s, c, NULL, 0 };
    struct gh_err e = {0};
    struct gw_call *f;
    struct web_stream *ws = NULL;
    const char *state = gh_json_str(params, "requestState");

    m->connector = c->name;
    if (m->stateless && state && !strncmp(state, GW_HELD_PREFIX, strlen(GW_HELD_PREFIX)))
        return gw_held_retry(m, id, params, state + strlen(GW_HELD_PREFIX));
    if (gw_connector_auth_headers(a, c, m->who, &t.headers, &t.nheaders, &e) < 0 ||
        gw_up_ensure(a, &t, false, &e) < 0) {
        m->message = e.msg[0] ? gh_arena_strdup(a, e.msg) : "Upstream unavailable.";
        /* a member without their own account at this connector: a tool
         * error naming it and the page to connect it at */
        if (!strcmp(e.code, "connection_needed") && !strcmp(method, "tools/call"))
            return gw_deny_tool(m, method, m->message, id, m->message);
        gw_mreq_audit(m, method);
        GH_LOG(WARN, "gw_forward", "connector %s: %s", c->name, e.detail[0] ? e.detail : e.msg);
        return web_reply_json(m->r, 200, gw_rpc_error(id, GW_RPC_UPSTREAM, m->message, NULL));
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL || (f->a = gh_arena_new(0)) == NULL) {
        free(f);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    gw_chan_init(&f->ch, 2 * 1000000LL, call_free);
    f->ch.is_fwd = true;
    f->state = GW_CALL_AHEAD;
    if (!call_fill(f, m, &t, id, method, params)) {
        gw_chan_unref(&f->ch);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    if (gw_audit_call_id(f->call_id) < 0) {
        gw_chan_unref(&f->ch);
        return gw_reply_audit_down(m->r, id);
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;           /* the stream's */
    f->ch.deferred = true;
    pthread_mutex_unlock(&f->ch.lock);
    if (web_reply_deferred(m->r, gw_chan_read, &f->ch, call_stream_done, gw_chan_start, &ws) < 0) {
        f->ch.refs--;
        gw_chan_unref(&f->ch);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    pthread_mutex_lock(&f->ch.lock);
    f->ch.ws = ws;
    pthread_mutex_unlock(&f->ch.lock);
    gw_chan_register(&f->ch);
    /* write-ahead: the call goes upstream once its row is committed
     * (call_ahead_done), without this thread waiting for the commit */
    call_row(f);
    pthread_mutex_lock(&f->ch.lock);
    f->ch.refs++;           /* the audit's */
    pthread_mutex_unlock(&f->ch.lock);
    if (gw_audit_submit(&f->row, f->request_id, call_ahead_done, f) < 0)
        call_ahead_done(f, -1);     /* the writer is not running */
    gw_chan_unref(&f->ch);     /* ours */
    return 0;
}
