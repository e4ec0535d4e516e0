/*
 * gateway/relay.c — requests an upstream sends the client while it answers
 * a forwarded call (sampling/createMessage, elicitation/create, roots/list,
 * ping), for the session-based revisions.
 *
 * The upstream's request goes out on the stream of the call being answered
 * (the Streamable HTTP way: a server request related to a client request
 * travels on that request's SSE stream) under an id of ours, "gh-r-<boot
 * nonce>-<counter>", which no other message of any session carries.  The
 * client POSTs its response to the endpoint; mcp_post hands it here, and
 * it goes to the upstream that asked, on that upstream's session, under the
 * upstream's own id.  A pending relay lives as long as its call: it holds a
 * reference on the call, and an answer that arrives once the call's stream
 * is over, or after the call timeout, is dropped (and so are answers to
 * unknown, another session's or already answered ids).  Pending relays are
 * bounded per session; they are local to this process (the stream they
 * were sent on is here).
 *
 * A stateless (2026-07-28) caller has no channel for this: call.c holds
 * the call and hands the upstream's requests to the client in an
 * input-required result instead; the answers of its retry go upstream
 * through gw_relay_answer.
 *
 * The other way round, a 2026-07-28 upstream asks with an input-required
 * result (SEP-2322) instead of requests: for a session's client each of its
 * inputRequests goes out the same way, under an id of ours, and the answers
 * are gathered into one round (gw_relay_inputs); when the last is in, the
 * call's done() sends the call again with them (call.c).  A round whose
 * client refuses one request, or never answers before the call timeout,
 * ends the call with an error.
 * Refusals are POSTed back too, at most GW_RELAY_REFUSALS_PER_CONNECTOR at
 * a time per connector and GW_RELAY_REFUSALS_MAX in all: an upstream that
 * floods a call with requests and never takes the answers gets no more, so
 * it cannot make the gateway hold a transfer (and a log line) per request,
 * nor leave the other connectors' requests unanswered.
 */
#include "gateway/mcp_int.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The input requests of one input-required result, answered together. */
struct round {
    pthread_mutex_t lock;
    int     refs;                   /* one per pending relay */
    int     pending;                /* keys not answered yet */
    bool    over;                   /* done() ran */
    json_t *answers;                /* key -> the client's result */
    void   *call;
    void  (*done)(void *call, json_t *answers, const char *why);
};

struct relay {
    char    id[48];                 /* ours, as the client sees it */
    json_t *up_id;                  /* the upstream's (NULL: a round's) */
    struct round *round;            /* an input request's round, else NULL */
    char   *key;                    /* its key in the round */
    bool    answered;
    struct gw_relay_call rc;        /* pointers valid while rc.call is held */
    int64_t deadline_us;
    struct relay *next;
};

static struct {
    pthread_mutex_t lock;
    struct relay   *head;
    long            n;
    long            counter;
    char            boot[9];        /* told apart from a previous process's ids */
} R = { .lock = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static atomic_long refusals_dropped;        /* not sent: too many in flight */

/* Refusals in flight, in all and per connector (by id; a connector with
 * none in flight has no slot). */
#define REFUSAL_SLOTS (GW_RELAY_REFUSALS_MAX + 1)
static struct {
    pthread_mutex_t lock;
    long            total;
    struct { char id[40]; long n; } slot[REFUSAL_SLOTS];
} RF = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Takes one refusal in flight for connector id: false past either cap. */
static bool
refusal_take(const char *id)
{
    int free_slot = -1, i;
    bool ok = false;

    pthread_mutex_lock(&RF.lock);
    for (i = 0; i < REFUSAL_SLOTS; i++) {
        if (RF.slot[i].n > 0 && !strcmp(RF.slot[i].id, id))
            break;
        if (RF.slot[i].n == 0 && free_slot < 0)
            free_slot = i;
    }
    if (i == REFUSAL_SLOTS && free_slot >= 0) {
        i = free_slot;
        snprintf(RF.slot[i].id, sizeof(RF.slot[i].id), "%s", id);
    }
    if (i < REFUSAL_SLOTS && RF.total < GW_RELAY_REFUSALS_MAX && RF.slot[i].n < GW_RELAY_REFUSALS_PER_CONNECTOR) {
        RF.slot[i].n++;
        RF.total++;
        ok = true;
    }
    pthread_mutex_unlock(&RF.lock);
    return ok;
}

static void
refusal_give(const char *id)
{
    pthread_mutex_lock(&RF.lock);
    for (int i = 0; i < REFUSAL_SLOTS; i++)
        if (RF.slot[i].n > 0 && !strcmp(RF.slot[i].id, id)) {
            RF.slot[i].n--;
            RF.total--;
            break;
        }
    pthread_mutex_unlock(&RF.lock);
}

static void
boot_init(void)
{
    unsigned char b[4] = {0};

    if (gh_random_bytes(b, sizeof(b)) < 0)
        GH_LOG(WARN, "gw_relay", "no random boot nonce: relay ids restart at the same values");
    snprintf(R.boot, sizeof(R.boot), "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

/* Ends a round once: done() with the answers, or with why (answers NULL). */
static void
round_end(struct round *rd, const char *why)
{
    bool run;
    json_t *answers;

    pthread_mutex_lock(&rd->lock);
    run = !rd->over && (why || rd->pending == 0);
    if (run)
        rd->over = true;
    answers = run && !why ? json_incref(rd->answers) : NULL;
    pthread_mutex_unlock(&rd->lock);
    if (run)
        rd->done(rd->call, answers, why);
    json_decref(answers);
}

static void
round_put(struct round *rd)
{
    bool last;

    pthread_mutex_lock(&rd->lock);
    last = --rd->refs == 0;
    pthread_mutex_unlock(&rd->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&rd->lock);
    json_decref(rd->answers);
    free(rd);
}

static void
relay_free(struct relay *r)
{
    if (r->round) {
        /* unanswered: expired, or its call is over */
        if (!r->answered)
            round_end(r->round, "The client did not answer the upstream's request in time.");
        round_put(r->round);
        free(r->key);
    }
    r->rc.hold(r->rc.call, false);
    json_decref(r->up_id);
    free(r);
}

static void
free_list(struct relay *r)
{
    while (r) {
        struct relay *next = r->next;
        relay_free(r);
        r = next;
    }
}

/* Under R.lock: unlinks what expired or whose call is over onto *dead
 * (freed by the caller without the lock: dropping the last reference on a
 * call frees it). */
static void
sweep_locked(struct relay **dead)
{
    int64_t now = gh_now_us();

    for (struct relay **p = &R.head; *p;) {
        struct relay *r = *p;
        if (now >= r->deadline_us || !r->rc.send(r->rc.call, NULL)) {
            *p = r->next;
            r->next = *dead;
            *dead = r;
            R.n--;
        } else {
            p = &r->next;
        }
    }
}

/* ---------------------------------------------------------------- to the upstream */

static void
posted_msg(struct gw_up_xfer *x, json_t *msg, void *ctx)
{
    (void)x;
    (void)msg;
    (void)ctx;
}

/* What a POST to the upstream carries to its end: the connector. */
struct posted {
    char id[40];
    char name[];
};

static void
posted_done(struct gw_up_xfer *x, void *ctx)
{
    struct posted *p = ctx;
    long st = gw_up_status(x);

    if (st == 0 || st >= 300)
        GH_LOG(WARN, "gw_relay", "connector %s did not take the answer to its request: %s", p->name,
               st ? "refused" : gw_up_error(x));
    free(p);
}

static void
refusal_done(struct gw_up_xfer *x, void *ctx)
{
    refusal_give(((struct posted *)ctx)->id);
    posted_done(x, ctx);
}

/* POSTs one JSON-RPC response (result or error) to the upstream of rc, on
 * its session, under its own id.  Does not wait.  done runs when the POST
 * is over, whatever became of it (not when this returns false: nothing was
 * sent). */
static bool
post_upstream(const struct gw_relay_call *rc, json_t *up_id, json_t *result, json_t *error,
              gw_up_done_fn done, const char *sid)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gw_call_target t = rc->t;
    struct gw_up_req rq = {0};
    struct gh_err e = {0};
    json_t *msg = json_pack("{s:s, s:O}", "jsonrpc", "2.0", "id", up_id);
    struct posted *connector = NULL;
    bool started = false;

    if (a == NULL || msg == NULL)
        goto out;
    if (sid == NULL)
        sid = rc->up_sid;
    if (result)
        json_object_set(msg, "result", result);
    else
        json_object_set(msg, "error", error);
    if (gw_up_prepare(a, &t, msg, &rq, &e) < 0) {
        GH_LOG(WARN, "gw_relay", "connector %s: %s", t.c->name, e.detail[0] ? e.detail : e.msg);
        goto out;
    }
    /* the upstream session that asked, should the session's have changed since */
    for (int i = 0; sid && i < rq.nheaders; i++)
        if (!strcasecmp(rq.headers[i].name, "Mcp-Session-Id"))
            ((struct gw_header *)rq.headers)[i].value = gh_arena_strdup(a, sid);
    connector = malloc(sizeof(*connector) + strlen(t.c->name) + 1);
    if (connector == NULL)
        goto out;
    snprintf(connector->id, sizeof(connector->id), "%s", t.c->id);
    strcpy(connector->name, t.c->name);
    rq.on_message = posted_msg;
    rq.on_done = done;
    rq.ctx = connector;
    rq.timeout_ms = gh_cfg.upstream_call_timeout_ms;
    {
        struct gw_up_xfer *x = gw_up_start(&rq);
        if (x == NULL)
            free(connector);    /* on_done will not run */
        started = x != NULL;
        gw_up_release(x);
    }
out:
    json_decref(msg);
    gh_arena_free(a);
    return started;
}

/* Answers the upstream's request with a JSON-RPC error, unless too many
 * refusals are in flight already, of this connector or in all: false when
 * it was not sent. */
static bool
refuse(const struct gw_relay_call *rc, json_t *up_id, int code, const char *text)
{
    json_t *err;
    long dropped;

    if (!refusal_take(rc->t.c->id)) {
        dropped = atomic_fetch_add(&refusals_dropped, 1);
        if (dropped % 10000 == 0)
            GH_LOG(WARN, "gw_relay", "connector %s: too many refusals in flight (%d of its own, %d in all at most);"
                   " its requests go unanswered (%ld so far)", rc->t.c->name, GW_RELAY_REFUSALS_PER_CONNECTOR,
                   GW_RELAY_REFUSALS_MAX, dropped + 1);
        return false;
    }
    err = json_pack("{s:i, s:s}", "code", code, "message", text);
    if (err == NULL || !post_upstream(rc, up_id, NULL, err, refusal_done, NULL)) {
        refusal_give(rc->t.c->id);
        json_decref(err);
        return false;
    }
    json_decref(err);
    return true;
}

/* ---------------------------------------------------------------- capabilities */

/* NULL when a client that declared caps may be asked method, else why not. */
const char *
gw_relay_missing(json_t *caps, const char *method, json_t *params)
{
    json_t *c;

    if (!strcmp(method, "ping"))
        return NULL;
    if (!strcmp(method, "sampling/createMessage")) {
        c = json_object_get(caps, "sampling");
        if (!json_is_object(c))
            return "The client did not declare the sampling capability.";
        if (json_object_get(params, "tools") && !json_is_object(json_object_get(c, "tools")))
            return "The client did not declare sampling with tools.";
        return NULL;
    }
    if (!strcmp(method, "elicitation/create")) {
        const char *mode = gh_json_str(params, "mode");
        c = json_object_get(caps, "elicitation");
        if (!json_is_object(c))
            return "The client did not declare the elicitation capability.";
        if (mode && !strcmp(mode, "url"))
            return json_is_object(json_object_get(c, "url")) ? NULL
                   : "The client did not declare URL elicitation.";
        /* an empty elicitation object means form mode */
        return json_object_size(c) == 0 || json_is_object(json_object_get(c, "form")) ? NULL
               : "The client did not declare form elicitation.";
    }
    if (!strcmp(method, "roots/list"))
        return json_is_object(json_object_get(caps, "roots")) ? NULL
               : "The client did not declare the roots capability.";
    return "The gateway does not relay this request to the client.";
}

/* Lists r, a relay of rc's call, under a new id (copied to rid, room for
 * sizeof(r->id): once listed, r is the list's and a sweep may free it); the call is held
 * until it is answered or swept.  false past the session's cap: r is
 * not listed and stays the caller's. */
static bool
relay_list(struct relay *r, const struct gw_relay_call *rc, char *rid)
{
    struct relay *dead = NULL;
    int n = 0;

    r->rc = *rc;
    r->deadline_us = gh_now_us() + gh_cfg.upstream_call_timeout_ms * 1000LL;
    rc->hold(rc->call, true);
    pthread_mutex_lock(&R.lock);
    sweep_locked(&dead);
    for (struct relay *p = R.head; p; p = p->next)
        if (!strcmp(p->rc.t.s->id_hash, rc->t.s->id_hash))
            n++;
    if (n < GW_RELAY_MAX_PER_SESSION) {
        snprintf(r->id, sizeof(r->id), "gh-r-%s-%ld", R.boot, ++R.counter);
        memcpy(rid, r->id, sizeof(r->id));
        r->next = R.head;
        R.head = r;
        R.n++;
    }
    pthread_mutex_unlock(&R.lock);
    free_list(dead);
    return n < GW_RELAY_MAX_PER_SESSION;
}

/* ---------------------------------------------------------------- the two hooks */

void
gw_relay_request(const struct gw_relay_call *rc, json_t *msg)
{
    const char *method = gh_json_str(msg, "method");
    json_t *up_id = json_object_get(msg, "id"), *out = NULL;
    const char *why = NULL;
    struct relay *r = NULL;
    bool own = gh_log_request_id()[0] == '\0';     /* the I/O thread */
    int code = GW_RPC_METHOD_NOT_FOUND;
    char rid[sizeof(r->id)] = "";

    if (own)
        gh_log_context(rc->request_id, "gw_relay");
    if (method == NULL || up_id == NULL)
        goto out;
    if (rc->stateless) {
        why = "The gateway does not relay requests to the client.";
        goto refused;
    }
    if ((why = gw_relay_missing(rc->t.s->client_caps, method, json_object_get(msg, "params"))) != NULL)
        goto refused;
    pthread_once(&boot_once, boot_init);
    r = calloc(1, sizeof(*r));
    out = json_deep_copy(msg);
    if (r == NULL || out == NULL) {
        free(r);
        code = GW_RPC_INTERNAL;
        why = "Internal error.";
        goto refused;
    }
    r->up_id = json_deep_copy(up_id);
    if (r->up_id == NULL) {
        free(r);
        r = NULL;
        code = GW_RPC_INTERNAL;
        why = "Internal error.";
        goto refused;
    }
    if (!relay_list(r, rc, rid)) {
        relay_free(r);
        r = NULL;
        code = GW_RPC_INTERNAL;
        why = "Too many requests to the client are pending.";
        goto refused;
    }
    json_object_set_new(out, "id", json_string(rid));
    if (!rc->send(rc->call, out)) {
        /* the call ended meanwhile: the pending entry goes at the next sweep */
        code = GW_RPC_INTERNAL;
        why = "The call this request belongs to has ended.";
        goto refused;
    }
    GH_LOG(INFO, "gw_relay", "connector %s asked the client for %s: relayed as %s", rc->t.c->name, method, rid);
    goto out;
refused:
    if (refuse(rc, up_id, code, why))
        GH_LOG(INFO, "gw_relay", "connector %s asked the client for %s: refused (%s)", rc->t.c->name, method, why);
out:
    json_decref(out);
    if (own)
        gh_log_context(NULL, NULL);
}

void
gw_relay_refuse(const struct gw_relay_call *rc, json_t *msg, const char *why)
{
    const char *method = gh_json_str(msg, "method");
    json_t *up_id = json_object_get(msg, "id");

    if (method && up_id && refuse(rc, up_id, GW_RPC_METHOD_NOT_FOUND, why))
        GH_LOG(INFO, "gw_relay", "connector %s asked the client for %s: refused (%s)", rc->t.c->name, method, why);
}

bool
gw_relay_answer(const struct gw_relay_call *rc, json_t *up_id, json_t *result, const char *sid)
{
    return post_upstream(rc, up_id, result, NULL, posted_done, sid);
}

/* The client's error object as JSON-RPC wants it, or a stand-in. */
static json_t *
client_error(json_t *err)
{
    if (json_is_object(err) && json_is_integer(json_object_get(err, "code")) &&
        json_is_string(json_object_get(err, "message")))
        return json_incref(err);
    return json_pack("{s:i, s:s}", "code", GW_RPC_INTERNAL, "message", "The client answered with an invalid error.");
}

bool
gw_relay_response(struct gw_session *s, json_t *msg)
{
    json_t *id = json_object_get(msg, "id"), *result = json_object_get(msg, "result"), *err;
    struct relay *hit = NULL, *dead = NULL;
    const char *idv = json_string_value(id);
    bool foreign = false;

    if (idv == NULL || strncmp(idv, "gh-r-", 5)) {
        GH_LOG(INFO, "gw_relay", "a response to no request of ours: ignored");
        return false;
    }
    pthread_mutex_lock(&R.lock);
    /* before the sweep: a late answer is told apart from an unknown one */
    for (struct relay **p = &R.head; *p; p = &(*p)->next) {
        struct relay *r = *p;
        if (strcmp(r->id, idv))
            continue;
        if (strcmp(r->rc.t.s->id_hash, s->id_hash)) {
            foreign = true;     /* stays pending for its own session */
            break;
        }
        *p = r->next;
        r->next = NULL;
        R.n--;
        hit = r;
        break;
    }
    sweep_locked(&dead);
    pthread_mutex_unlock(&R.lock);
    free_list(dead);
    if (hit == NULL) {
        GH_LOG(INFO, "gw_relay", "response to %s: %s, ignored", idv,
               foreign ? "another session's request" : "unknown or already answered");
        return false;
    }
    if (gh_now_us() >= hit->deadline_us || !hit->rc.send(hit->rc.call, NULL)) {
        GH_LOG(INFO, "gw_relay", "response to %s came after its call ended: ignored", idv);
        relay_free(hit);
        return false;
    }
    if (hit->round) {
        hit->answered = true;
        if (json_is_object(result)) {
            pthread_mutex_lock(&hit->round->lock);
            json_object_set(hit->round->answers, hit->key, result);
            hit->round->pending--;
            pthread_mutex_unlock(&hit->round->lock);
            round_end(hit->round, NULL);
        } else {
            round_end(hit->round, "The client refused the upstream's request.");
        }
        GH_LOG(INFO, "gw_relay", "response to %s: input %s of connector %s", idv, hit->key, hit->rc.t.c->name);
        relay_free(hit);
        return true;
    }
    err = result ? NULL : client_error(json_object_get(msg, "error"));
    if (result || err)
        (void)post_upstream(&hit->rc, hit->up_id, result, err, posted_done, NULL);
    json_decref(err);
    GH_LOG(INFO, "gw_relay", "response to %s passed to connector %s", idv, hit->rc.t.c->name);
    relay_free(hit);
    return true;
}

/* Lists one relay of a round; its id in rid.  -1 past the session's cap. */
static int
round_add(const struct gw_relay_call *rc, struct round *rd, const char *key, char *rid)
{
    struct relay *r = calloc(1, sizeof(*r));

    if (r == NULL || (r->key = strdup(key)) == NULL) {
        free(r);
        return -1;
    }
    r->round = rd;
    pthread_mutex_lock(&rd->lock);
    rd->refs++;
    pthread_mutex_unlock(&rd->lock);
    if (!relay_list(r, rc, rid)) {
        r->answered = true;     /* the caller ends the round with its own reason */
        relay_free(r);
        return -1;
    }
    return 0;
}

int
gw_relay_inputs(const struct gw_relay_call *rc, json_t *requests,
                void (*done)(void *call, json_t *answers, const char *why), const char **why)
{
    struct round *rd;
    const char *key;
    json_t *q;

    *why = NULL;
    if (rc->stateless || !json_is_object(requests) || json_object_size(requests) == 0) {
        *why = "The upstream's input request cannot be relayed.";
        return -1;
    }
    /* every request must be one the client declared, before any goes out */
    json_object_foreach(requests, key, q) {
        const char *method = gh_json_str(q, "method");
        if (method == NULL || !strcmp(method, "ping") ||
            (*why = gw_relay_missing(rc->t.s->client_caps, method, json_object_get(q, "params"))) != NULL) {
            if (*why == NULL)
                *why = "The upstream's input request is not one the gateway relays.";
            return -1;
        }
    }
    pthread_once(&boot_once, boot_init);
    rd = calloc(1, sizeof(*rd));
    if (rd == NULL || (rd->answers = json_object()) == NULL) {
        free(rd);
        *why = "Internal error.";
        return -1;
    }
    pthread_mutex_init(&rd->lock, NULL);
    rd->refs = 1;               /* ours, until every relay is listed */
    rd->pending = (int)json_object_size(requests);
    rd->call = rc->call;
    rd->done = done;
    json_object_foreach(requests, key, q) {
        char rid[48] = "";
        json_t *out;
        if (round_add(rc, rd, key, rid) < 0) {
            round_end(rd, "Too many requests to the client are pending.");
            break;
        }
        out = json_pack("{s:s, s:s, s:s, s:O}", "jsonrpc", "2.0", "id", rid, "method", gh_json_str(q, "method"),
                        "params", json_is_object(json_object_get(q, "params")) ? json_object_get(q, "params")
                                                                             : json_object());
        if (out == NULL || !rc->send(rc->call, out)) {
            json_decref(out);
            round_end(rd, "The call this request belongs to has ended.");
            break;
        }
        GH_LOG(INFO, "gw_relay", "connector %s asked the client for %s (input %s): relayed as %s",
               rc->t.c->name, gh_json_str(q, "method"), key, rid);
        json_decref(out);
    }
    round_put(rd);
    return 0;                   /* a round that ended early has called done() */
}

void
gw_relay_sweep(void)
{
    struct relay *dead = NULL;

    pthread_mutex_lock(&R.lock);
    sweep_locked(&dead);
    pthread_mutex_unlock(&R.lock);
    free_list(dead);
}

long
gw_relay_pending(void)
{
    long n;

    pthread_mutex_lock(&R.lock);
    n = R.n;
    pthread_mutex_unlock(&R.lock);
    return n;
}

void
gw_relay_stop(void)
{
    struct relay *all;

    pthread_mutex_lock(&R.lock);
    all = R.head;
    R.head = NULL;
    R.n = 0;
    pthread_mutex_unlock(&R.lock);
    free_list(all);
}
