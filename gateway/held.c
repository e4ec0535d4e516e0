/*
 * gateway/held.c — a stateless (2026-07-28) client's call held while a
 * session-based upstream waits for the client's answers: the registry of
 * held calls, the sealed requestState, the rounds, the retry that continues
 * a held call, and the ticker's sweep.  Part of the call layer with
 * call.c (they share call_int.h).
 */
#include "gateway/call_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- held calls
 * A stateless (2026-07-28) client has no stream a session-based upstream's
 * request could travel on while the call runs.  So the call is held: the
 * client's request ends with an input-required result carrying the
 * upstream's requests and a requestState naming the held call (sealed under
 * the server key, bound to the member, the agent and the tool, single use,
 * expiring with the upstream call timeout); the upstream transfer stays
 * open here.  The client's retry (gw_held_retry) carries the answers,
 * which go upstream as the responses to its requests, and reads the rest of
 * the call: its final result, or one more input-required round.  Held calls
 * live in this process only (the transfer is here): a retry that reaches
 * another instance is told so. */

#define GW_HELD_AAD "gw_held:v1"
#define GW_HELD_PER_MEMBER 8

static struct {
    pthread_mutex_t lock;
    struct gw_call *head;           /* each referenced */
    char            boot[17];       /* this process: a state from another says so */
} H = { .lock = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t held_once = PTHREAD_ONCE_INIT;

static void
held_boot_init(void)
{
    unsigned char b[8] = {0};

    if (gh_random_bytes(b, sizeof(b)) < 0)
        GH_LOG(WARN, "gw_forward", "no random boot nonce for held calls");
    for (int i = 0; i < 8; i++)
        snprintf(H.boot + 2 * i, 3, "%02x", b[i]);
}

static const char *
held_member(const struct gw_call *f)
{
    return f->who.user_id ? f->who.user_id : f->who.token_id ? f->who.token_id : "";
}

static void
held_hex(char out[33])
{
    unsigned char b[16] = {0};

    (void)gh_random_bytes(b, sizeof(b));    /* all zero only if the kernel fails us */
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Lists f (once), a reference taken: false past the member's cap. */
static bool
held_list(struct gw_call *f)
{
    int n = 0;
    bool ok = true;

    pthread_mutex_lock(&H.lock);
    for (struct gw_call *p = H.head; p; p = p->held_next) {
        if (p == f)
            goto out;
        if (!strcmp(held_member(p), held_member(f)))
            n++;
    }
    ok = n < GW_HELD_PER_MEMBER;
    if (ok) {
        held_hex(f->held_id);
        pthread_mutex_lock(&f->ch.lock);
        f->ch.refs++;
        pthread_mutex_unlock(&f->ch.lock);
        f->held_next = H.head;
        H.head = f;
    }
out:
    pthread_mutex_unlock(&H.lock);
    return ok;
}

void
gw_held_unlist(struct gw_call *f)
{
    bool was = false;

    pthread_mutex_lock(&H.lock);
    for (struct gw_call **p = &H.head; *p; p = &(*p)->held_next)
        if (*p == f) {
            *p = f->held_next;
            f->held_next = NULL;
            was = true;
            break;
        }
    pthread_mutex_unlock(&H.lock);
    if (was)
        gw_chan_unref(&f->ch);
}

/* The held call named id, referenced, or NULL. */
static struct gw_call *
held_find(const char *id)
{
    struct gw_call *f = NULL;

    pthread_mutex_lock(&H.lock);
    for (struct gw_call *p = H.head; p; p = p->held_next)
        if (!strcmp(p->held_id, id)) {
            f = p;
            pthread_mutex_lock(&f->ch.lock);
            f->ch.refs++;
            pthread_mutex_unlock(&f->ch.lock);
            break;
        }
    pthread_mutex_unlock(&H.lock);
    return f;
}

/* A new sealed state for f's next retry (arena a), its nonce in f. */
static char *
held_state(struct gh_arena *a, struct gw_call *f, int64_t deadline_us)
{
    char nonce[33], *js, *sealed = NULL;
    json_t *st;

    held_hex(nonce);
    st = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "b", H.boot, "h", f->held_id, "n", nonce,
                   "u", held_member(f), "a", f->who.agent.id, "t", f->tool ? f->tool : "", "x",
                   (json_int_t)deadline_us);
    js = st ? json_dumps(st, JSON_COMPACT) : NULL;
    if (js)
        sealed = gh_seal(a, js, strlen(js), GW_HELD_AAD);
    free(js);
    json_decref(st);
    if (sealed) {
        pthread_mutex_lock(&f->ch.lock);
        memcpy(f->held_nonce, nonce, sizeof(nonce));
        f->held_deadline_us = deadline_us;
        pthread_mutex_unlock(&f->ch.lock);
    }
    return sealed ? gh_arena_printf(a, GW_HELD_PREFIX "%s", sealed) : NULL;
}

/* Ends what the client reads now with an input-required result: the
 * upstream's unanswered requests and a new state.  The call is held until
 * the retry comes (or its deadline passes).  false: it cannot be held. */
static bool
call_hold_round(struct gw_call *f)
{
    struct gh_arena *a = gh_arena_new(0);
    int64_t deadline = gh_now_us() + gh_cfg.upstream_call_timeout_ms * 1000LL;
    json_t *reqs = json_object(), *q, *res = NULL, *msg = NULL;
    struct gw_chan *o = NULL;
    const char *key;
    char *state;
    bool ok = false;

    pthread_once(&held_once, held_boot_init);
    if (a == NULL || reqs == NULL || !held_list(f) || (state = held_state(a, f, deadline)) == NULL)
        goto out;
    pthread_mutex_lock(&f->ch.lock);
    json_object_foreach(f->held_reqs, key, q)
        json_object_set_new(reqs, key, json_pack("{s:O, s:O}", "method", json_object_get(q, "method"),
                                                 "params", json_object_get(q, "params")));
    o = f->out;                 /* f's reference, now ours */
    f->out = NULL;
    f->held = o != NULL;
    pthread_mutex_unlock(&f->ch.lock);
    if (o == NULL)
        goto out;               /* the client left meanwhile */
    res = json_pack("{s:s, s:O, s:s}", "resultType", "input_required", "inputRequests", reqs,
                    "requestState", state);
    msg = res ? gw_rpc_result(f->down_id, res) : NULL;   /* takes res */
    res = NULL;
    gw_chan_send(o, msg, true);
    if (o != &f->ch)
        gw_chan_unref(o);
    ok = msg != NULL;
    GH_LOG(INFO, "gw_forward", "%s %s held: %zu request(s) of connector %s to the client", f->method,
           f->tool ? f->tool : "", json_object_size(reqs), f->c.name);
out:
    json_decref(msg);
    json_decref(res);
    json_decref(reqs);
    gh_arena_free(a);
    return ok;
}

/* I/O thread: a session-based upstream's request during a stateless
 * client's call.  true when it was taken (held for the client, queued for
 * its next round, or refused here with why); false: the caller refuses. */
bool
gw_held_hold(struct gw_call *f, const struct gw_relay_call *rc, json_t *msg)
{
    const char *method = gh_json_str(msg, "method"), *why;
    json_t *params = json_object_get(msg, "params");
    char key[32];
    bool queued, over;

    if (!strcmp(method, "ping"))
        return false;
    if ((why = gw_relay_missing(f->client_caps, method, params)) != NULL) {
        gw_relay_refuse(rc, msg, why);
        return true;
    }
    pthread_mutex_lock(&f->ch.lock);
    if (f->state >= GW_CALL_ANSWERED || (!f->held && f->out == NULL)) {
        pthread_mutex_unlock(&f->ch.lock);
        return false;
    }
    if (f->held_reqs == NULL)
        f->held_reqs = json_object();
    snprintf(key, sizeof(key), "gh-%ld", ++f->held_seq);
    json_object_set_new(f->held_reqs, key, json_pack("{s:O, s:s, s:O}", "id", json_object_get(msg, "id"),
                                                      "method", method, "params", params ? params : json_null()));
    queued = f->held;           /* the client has a round already: this one goes in the next */
    over = !queued && ++f->held_rounds > GW_CALL_INPUT_ROUNDS;
    pthread_mutex_unlock(&f->ch.lock);
    if (queued)
        return true;
    if (over)
        gw_call_error(f, "The upstream asked for input too many times.");
    else if (!call_hold_round(f))
        gw_call_error(f, "Too many calls of this member wait for their retry.");
    else
        return true;
    gw_up_cancel(f->x);
    gw_call_send_cancelled(f, "The gateway ended the call.");
    return true;
}

/* ---------------------------------------------------------------- a held call's retry */

/* What a retry reads: a channel of its own, holding the call it continues
 * until its stream is over. */
struct call_retry {
    struct gw_chan  ch;             /* first */
    struct gw_call *f;
};

static void
retry_free(struct gw_chan *c)
{
    free(c);
}

static void
retry_stream_done(void *ctx)
{
    struct call_retry *rt = ctx;
    struct gw_call *f = rt->f;
    bool mine;

    pthread_mutex_lock(&rt->ch.lock);
    rt->ch.gone = true;
    pthread_mutex_unlock(&rt->ch.lock);
    gw_chan_unregister(&rt->ch);
    pthread_mutex_lock(&f->ch.lock);
    mine = f->out == &rt->ch;   /* else the call is held again, or over */
    if (mine)
        f->out = NULL;
    pthread_mutex_unlock(&f->ch.lock);
    if (mine) {
        gw_chan_unref(&rt->ch);     /* the call's reference */
        if (gw_call_stop(f, GW_CALL_LEFT, "The client disconnected."))
            GH_LOG(INFO, "gw_forward", "client gone: held call to %s cancelled", f->c.name);
    }
    gw_chan_unref(&f->ch);
    gw_chan_unref(&rt->ch);         /* the stream's */
}

/* Why the state does not name a held call this member may continue with
 * this tool (NULL: it does; the call in *held, referenced and claimed). */
static const char *
held_open(struct gw_mreq *m, const char *state, struct gw_call **held)
{
    unsigned char *pt = NULL;
    size_t n = 0;
    json_t *st;
    struct gw_call *f;
    const char *who = m->who->user_id ? m->who->user_id : m->who->token_id ? m->who->token_id : "";
    bool claimed;

    *held = NULL;
    pthread_once(&held_once, held_boot_init);
    if (gh_unseal(m->a, state, GW_HELD_AAD, &pt, &n) < 0 ||
        (st = gh_arena_json(m->a, json_loadb((const char *)pt, n, 0, NULL))) == NULL ||
        !gh_json_str(st, "h") || !gh_json_str(st, "n") || !json_is_integer(json_object_get(st, "x")))
        return "The requestState is not one this gateway issued.";
    if (strcmp(gh_json_str(st, "u") ?: "", who) || strcmp(gh_json_str(st, "a") ?: "", m->who->agent.id) ||
        strcmp(gh_json_str(st, "t") ?: "", m->tool ? m->tool : ""))
        return "The requestState belongs to another member, agent or tool.";
    if (gh_now_us() >= json_integer_value(json_object_get(st, "x")))
        return "The requestState has expired: call the tool again.";
    if (strcmp(gh_json_str(st, "b") ?: "", H.boot))
        return "The call this requestState names is held by another Gatehouse instance (or one since restarted):"
               " the retry must reach the instance that answered, or call the tool again.";
    if ((f = held_find(gh_json_str(st, "h"))) == NULL)
        return "The call this requestState names is over: call the tool again.";
    pthread_mutex_lock(&f->ch.lock);
    claimed = f->held && f->state < GW_CALL_ANSWERED && f->held_nonce[0] &&
              !strcmp(f->held_nonce, gh_json_str(st, "n"));
    if (claimed)
        f->held_nonce[0] = '\0';    /* single use; held until the retry reads it */
    pthread_mutex_unlock(&f->ch.lock);
    if (!claimed) {
        gw_chan_unref(&f->ch);
        return "The requestState was used already.";
    }
    *held = f;
    return NULL;
}

/* The retry's answers to the upstream, each as the response to its
 * request; what the client did not answer stays for the next round.  true
 * when some request is still unanswered. */
static bool
held_answer(struct gw_call *f, json_t *answers)
{
    struct gw_relay_call rc = { { f->s, &f->c, f->hdrs, f->nhdrs }, true, f->request_id,
                                f, gw_call_relay_send, gw_call_relay_hold, NULL };
    json_t *go = json_array(), *q, *one;
    const char *key, *sid;
    void *tmp;
    size_t i;
    bool left;

    pthread_mutex_lock(&f->ch.lock);
    json_object_foreach_safe(f->held_reqs, tmp, key, q) {
        json_t *a = json_object_get(answers, key);
        if (!json_is_object(a))
            continue;
        json_array_append_new(go, json_pack("{s:O, s:O}", "id", json_object_get(q, "id"), "result", a));
        json_object_del(f->held_reqs, key);
    }
    left = json_object_size(f->held_reqs) > 0;
    sid = f->up_sid;
    pthread_mutex_unlock(&f->ch.lock);
    json_array_foreach(go, i, one)
        if (!gw_relay_answer(&rc, json_object_get(one, "id"), json_object_get(one, "result"), sid))
            GH_LOG(WARN, "gw_forward", "connector %s: an answer was not sent", f->c.name);
    json_decref(go);
    return left;
}

/* A stateless client's retry of a held call (its state after the prefix):
 * the answers go upstream and the retry reads the rest of the call.  No
 * row of its own: the held call's row is completed when it ends. */
int
gw_held_retry(struct gw_mreq *m, json_t *id, json_t *params, const char *state)
{
    struct gw_call *f;
    struct call_retry *rt;
    struct web_stream *ws = NULL;
    const char *why = held_open(m, state, &f);

    if (why) {
        GH_LOG(INFO, "gw_forward", "retry of a held call refused: %s", why);
        return gw_deny(m, "tools/call", why, 400, id, GW_RPC_INVALID_PARAMS, why, NULL);
    }
    rt = calloc(1, sizeof(*rt));
    if (rt == NULL) {
        gw_call_error(f, "Internal error.");
        gw_chan_unref(&f->ch);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    gw_chan_init(&rt->ch, 2 * 1000000LL, retry_free);
    rt->f = f;                      /* held_open's reference */
    rt->ch.refs += 2;               /* the stream's, the call's */
    rt->ch.deferred = true;
    if (web_reply_deferred(m->r, gw_chan_read, &rt->ch, retry_stream_done, gw_chan_start, &ws) < 0) {
        gw_call_error(f, "Internal error.");
        gw_chan_unref(&f->ch);
        free(rt);
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    }
    pthread_mutex_lock(&rt->ch.lock);
    rt->ch.ws = ws;
    pthread_mutex_unlock(&rt->ch.lock);
    gw_chan_register(&rt->ch);
    pthread_mutex_lock(&f->ch.lock);
    f->held = false;
    f->out = &rt->ch;
    f->down_id = gh_arena_json(f->a, json_incref(id));
    pthread_mutex_unlock(&f->ch.lock);
    GH_LOG(INFO, "gw_forward", "%s %s: the retry continues the held call", f->method, f->tool ? f->tool : "");
    if (held_answer(f, json_object_get(params, "inputResponses")) && !call_hold_round(f))
        gw_call_error(f, "Too many calls of this member wait for their retry.");
    gw_chan_unref(&rt->ch);         /* ours */
    return 0;
}

/* The ticker: a held call whose retry did not come in time ends, its row
 * completed with that outcome; the upstream is told. */
void
gw_call_held_sweep(void)
{
    struct gw_call *dead = NULL, *f;
    int64_t now = gh_now_us();

    pthread_mutex_lock(&H.lock);
    for (struct gw_call **p = &H.head; (f = *p);) {
        bool drop;
        pthread_mutex_lock(&f->ch.lock);
        drop = (f->held && now >= f->held_deadline_us) || f->state >= GW_CALL_ANSWERED;
        pthread_mutex_unlock(&f->ch.lock);
        if (drop) {
            *p = f->held_next;
            f->held_next = dead;
            dead = f;
        } else {
            p = &f->held_next;
        }
    }
    pthread_mutex_unlock(&H.lock);
    while ((f = dead)) {
        struct gw_up_xfer *x;
        dead = f->held_next;
        f->held_next = NULL;
        if (gw_call_now(f) < GW_CALL_ANSWERED) {
            gh_log_context(f->request_id, "gw_forward");
            gw_call_error(f, "The client did not retry the held call in time.");
            gh_log_context(NULL, NULL);
            pthread_mutex_lock(&f->ch.lock);
            x = f->x;
            pthread_mutex_unlock(&f->ch.lock);
            gw_up_cancel(x);
            gw_call_send_cancelled(f, "The client did not retry in time.");
        }
        gw_chan_unref(&f->ch);      /* the registry's */
    }
}

/* Shutdown: the registry lets its calls go (their transfers end with the
 * upstream client). */
void
gw_call_held_stop(void)
{
    struct gw_call *f;

    pthread_mutex_lock(&H.lock);
    f = H.head;
    H.head = NULL;
    pthread_mutex_unlock(&H.lock);
    while (f) {
        struct gw_call *next = f->held_next;
        f->held_next = NULL;
        gw_chan_unref(&f->ch);
        f = next;
    }
}
