/*
 * gateway/upsession.c — the upstream side of a session.
 *
 * The gateway runs each upstream's handshake itself (initialize
 * + notifications/initialized, or nothing for a 2026-07-28 upstream, found
 * by one server/discover probe per URL and process), keeps the upstream's
 * Mcp-Session-Id in the session, and redoes the handshake once when the
 * upstream answers 404 for its session (or takes up the newer upstream
 * session another process saved in the row).  A handshake that replaces an
 * upstream session id the row held (another process's) DELETEs that one
 * upstream.  Each upstream also gets a stream of ours (GET, or
 * subscriptions/listen) so its own list_changed notifications reach our
 * clients; one the upstream ends is reopened by the upkeep thread.
 */
#include "gateway/mcp_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- blocking exchange */

struct sync {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    bool            done;
    json_t         *want_id;    /* the response we wait for */
    json_t         *resp;
};

static void
sync_msg(struct gw_up_xfer *x, json_t *msg, void *ctx)
{
    struct sync *w = ctx;
    json_t *id = json_object_get(msg, "id");

    (void)x;
    if (w->resp == NULL && id && json_equal(id, w->want_id) &&
        (json_object_get(msg, "result") || json_object_get(msg, "error")))
        w->resp = json_incref(msg);
}

static void
sync_done(struct gw_up_xfer *x, void *ctx)
{
    struct sync *w = ctx;

    (void)x;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* One exchange, waited for.  Returns the transfer (released by the caller)
 * with *resp the matching response, if any. */
static struct gw_up_xfer *
exchange(struct gw_up_req *rq, json_t *want_id, json_t **resp)
{
    struct sync w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, want_id, NULL };
    struct gw_up_xfer *x;

    rq->on_message = sync_msg;
    rq->on_done = sync_done;
    rq->ctx = &w;
    x = gw_up_start(rq);
    if (x == NULL)
        return NULL;
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    *resp = w.resp;
    return x;
}

static int
up_fail(struct gh_err *e, const char *connector, struct gw_up_xfer *x, const char *what)
{
    long st = x ? gw_up_status(x) : 0;

    gh_err_set(e, x && gw_up_timed_out(x) ? 504 : 502, "upstream", "", "%s: %s", connector, what);
    if (x && gw_up_timed_out(x))
        snprintf(e->msg, sizeof(e->msg), "Upstream '%s' timed out.", connector);
    else if (x && st)
        snprintf(e->msg, sizeof(e->msg), "Upstream '%s' answered HTTP %ld.", connector, st);
    else
        snprintf(e->msg, sizeof(e->msg), "Upstream '%s' is unavailable.", connector);
    return -1;
}

/* ---------------------------------------------------------------- era cache */

static pthread_mutex_t era_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *eras;        /* url -> "modern" | "legacy" | "both" */

static const char *
era_get(const char *url)
{
    const char *v;

    pthread_mutex_lock(&era_lock);
    v = eras ? json_string_value(json_object_get(eras, url)) : NULL;
    pthread_mutex_unlock(&era_lock);
    return v;       /* static strings below: safe after unlock */
}

static void
era_set(const char *url, bool modern, bool both)
{
    pthread_mutex_lock(&era_lock);
    if (eras == NULL)
        eras = json_object();
    if (json_object_size(eras) < 10000)
        json_object_set_new(eras, url, json_string(both ? "both" : modern ? "modern" : "legacy"));
    pthread_mutex_unlock(&era_lock);
}

/* What each upstream told this process it serves: url -> {"session":
 * capabilities from its initialize, "modern": from its server/discover}. */
static json_t *upcaps;

static void
caps_set(const char *url, const char *gen, json_t *caps)
{
    json_t *o;

    if (!json_is_object(caps))
        return;
    pthread_mutex_lock(&era_lock);
    if (upcaps == NULL)
        upcaps = json_object();
    o = json_object_get(upcaps, url);
    if (o == NULL && json_object_size(upcaps) < 10000) {
        o = json_object();
        json_object_set_new(upcaps, url, o);
    }
    if (o)
        json_object_set_new(o, gen, json_deep_copy(caps));
    pthread_mutex_unlock(&era_lock);
}

int
gw_up_serves(const char *url, bool stateless, const char *cap, const char *sub)
{
    const char *era = era_get(url), *gen;
    json_t *caps, *c;
    int r;

    if (era == NULL)
        return -1;
    if (!stateless && !strcmp(era, "modern") && sub && !strcmp(cap, "resources") && !strcmp(sub, "subscribe"))
        return 0;       /* a session client's resources/subscribe has no way there */
    /* the generation such a client gets (gw_up_ensure) */
    gen = stateless ? (!strcmp(era, "legacy") ? "session" : "modern") : (!strcmp(era, "modern") ? "modern" : "session");
    pthread_mutex_lock(&era_lock);
    caps = json_object_get(json_object_get(upcaps, url), gen);
    c = json_object_get(caps, cap);
    r = caps == NULL ? -1 : !json_is_object(c) ? 0 : sub ? json_is_true(json_object_get(c, sub)) : 1;
    pthread_mutex_unlock(&era_lock);
    return r;
}

/* ---------------------------------------------------------------- requests */

static bool
proto_at_least(const char *p, const char *v)
{
    return p && p[0] && strcmp(p, v) >= 0;
}

static json_t *
client_meta(void)
{
    return json_pack("{s:s, s:{s:s, s:s}, s:{}}",
                     "io.modelcontextprotocol/protocolVersion", GW_PROTO_2026_07_28,
                     "io.modelcontextprotocol/clientInfo", "name", "gatehouse", "version", "0.1.0",
                     "io.modelcontextprotocol/clientCapabilities");
}

int
gw_up_prepare(struct gh_arena *a, struct gw_call_target *t, json_t *msg, struct gw_up_req *rq,
              struct gh_err *e)
{
    struct gw_header *h;
    struct gw_upstate *u;
    char proto[16] = "", *sid = NULL, *body;
    const char *method = gh_json_str(msg, "method");
    int n = 0;

    pthread_mutex_lock(&t->s->lock);
    u = gw_session_upstate(t->s, t->c);
    if (u) {
        snprintf(proto, sizeof(proto), "%s", u->proto);
        sid = u->sid ? gh_arena_strdup(a, u->sid) : NULL;
    }
    pthread_mutex_unlock(&t->s->lock);
    if (u == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");

    if (!strcmp(proto, GW_PROTO_2026_07_28) && method) {
        json_t *params, *meta;
        /* the caller's message stays as it is (a retry sends it again) */
        msg = gh_arena_json(a, json_deep_copy(msg));
        if (msg == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
        params = json_object_get(msg, "params");
        if (!json_is_object(params)) {
            params = json_object();
            json_object_set_new(msg, "params", params);
        }
        meta = json_object_get(params, "_meta");
        if (!json_is_object(meta)) {
            meta = json_object();
            json_object_set_new(params, "_meta", meta);
        }
        json_object_update_missing(meta, gh_arena_json(a, client_meta()));
        /* a session client hears an upstream's log messages unless it set
         * a level (the session revisions' default); the stateless revision
         * sends none without a logLevel in _meta */
        /* what a session client declared the gateway relays to it
         * (gw_relay_inputs): the upstream may ask for that, and no more */
        if (!t->s->stateless) {
            json_t *caps = json_object();
            for (const char *const *k = (const char *const[]){ "sampling", "elicitation", "roots", NULL }; *k; k++)
                if (json_is_object(json_object_get(t->s->client_caps, *k)))
                    json_object_set(caps, *k, json_object_get(t->s->client_caps, *k));
            json_object_set_new(meta, "io.modelcontextprotocol/clientCapabilities", caps);
        }
        if (!t->s->stateless && !json_object_get(meta, "io.modelcontextprotocol/logLevel")) {
            char level[16];
            pthread_mutex_lock(&t->s->lock);
            snprintf(level, sizeof(level), "%s", t->s->log_level[0] ? t->s->log_level : "debug");
            pthread_mutex_unlock(&t->s->lock);
            json_object_set_new(meta, "io.modelcontextprotocol/logLevel", json_string(level));
        }
    }
    h = gh_arena_alloc(a, sizeof(*h) * (size_t)(t->nheaders + 8));
    if (h == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
    for (int i = 0; i < t->nheaders; i++)
        h[n++] = t->headers[i];
    h[n++] = (struct gw_header){ "Content-Type", "application/json" };
    h[n++] = (struct gw_header){ "Accept", "application/json, text/event-stream" };
    if (proto_at_least(proto, GW_PROTO_2025_06_18))
        h[n++] = (struct gw_header){ "MCP-Protocol-Version", gh_arena_strdup(a, proto) };
    if (sid)
        h[n++] = (struct gw_header){ "Mcp-Session-Id", sid };
    if (!strcmp(proto, GW_PROTO_2026_07_28) && method) {
        json_t *params = json_object_get(msg, "params");
        const char *name = gh_json_str(params, "name");
        if (name == NULL)
            name = gh_json_str(params, "uri");
        h[n++] = (struct gw_header){ "Mcp-Method", (char *)method };
        if (name && (!strcmp(method, "tools/call") || !strcmp(method, "resources/read") ||
                     !strcmp(method, "prompts/get"))) {
            bool plain = name[0] && name[0] != ' ' && name[strlen(name) - 1] != ' ' &&
                         !gh_str_has_prefix(name, "=?base64?");
            for (const char *p = name; plain && *p; p++)
                plain = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f;
            if (plain) {
                h[n++] = (struct gw_header){ "Mcp-Name", (char *)name };
            } else {
                char *b = gh_b64url_encode(a, (const unsigned char *)name, strlen(name));
                /* standard base64 is asked for: convert the url alphabet and pad */
                size_t bl = b ? strlen(b) : 0;
                char *v = gh_arena_alloc(a, bl + 16);
                if (b && v) {
                    for (size_t i = 0; i < bl; i++)
                        b[i] = b[i] == '-' ? '+' : b[i] == '_' ? '/' : b[i];
                    snprintf(v, bl + 16, "=?base64?%s%s?=", b, bl % 4 == 2 ? "==" : bl % 4 == 3 ? "=" : "");
                    h[n++] = (struct gw_header){ "Mcp-Name", v };
                }
            }
        }
    }
    body = json_dumps(msg, JSON_COMPACT);
    if (body == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "json_dumps");
    rq->body = gh_arena_strdup(a, body);
    free(body);
    rq->url = t->c->url;
    rq->method = "POST";
    rq->headers = h;
    rq->nheaders = n;
    rq->timeout_ms = gh_cfg.upstream_call_timeout_ms;
    return rq->body ? 0 : gh_err_set(e, 500, "server_error", "internal error", "out of memory");
}

/* ---- the upstream's own stream (GET, or subscriptions/listen): list_changed
 *
 * A stream the upstream ends (or that breaks) is reopened by the upkeep
 * thread after a backoff: LISTEN_BACKOFF_MS, doubling for each stream in a
 * row that ended within LISTEN_HEALTHY_US, at most LISTEN_BACKOFF_MAX_MS,
 * and no more after LISTEN_MAX_TRIES of those.  Not reopened: a stream we
 * cancelled (replaced by a newer one, session ended, shutdown), a session
 * no longer cached here, a connector disabled or removed, an answer that
 * says the stream will not come (4xx: the upstream session is gone, or it
 * offers no GET stream; the next request's handshake opens a new one). */

#define LISTEN_BACKOFF_MS     250
#define LISTEN_BACKOFF_MAX_MS 30000
#define LISTEN_HEALTHY_US     (10 * 1000000LL)
#define LISTEN_MAX_TRIES      8
#define LISTEN_QUEUE_MAX      10000

struct listen_ctx {
    char id_hash[65];
    char connector_id[40];
    unsigned gen;               /* the upstate's listen_gen when opened */
    int fails;                  /* streams in a row that ended early */
    int64_t started_us;
    int64_t due_us;             /* while queued for a reopen */
    struct listen_ctx *next;
};

struct lc_apply {
    const struct listen_ctx *l;
    const char *method;
    json_t *params;
    bool changed;
};

/* Who hears what an upstream says on its own stream (gw_up_watch): the
 * endpoint, which drops the cached lists and tells the session's client. */
static gw_up_note_fn note_fn;

void
gw_up_watch(gw_up_note_fn fn)
{
    note_fn = fn;
}

static void
lc_one(struct gw_session *s, void *ctx)
{
    struct lc_apply *ap = ctx;

    if (strcmp(s->id_hash, ap->l->id_hash) || note_fn == NULL)
        return;
    note_fn(s, ap->l->connector_id, ap->method, ap->params, ap->changed);
}

/* What an upstream says on its own stream: list changes (our cached lists
 * of that connector go) and resource updates are passed on; the rest
 * (requests to a client, log lines outside a call) is not relayed. */
static void
listen_msg(struct gw_up_xfer *x, json_t *msg, void *ctx)
{
    const char *m = gh_json_str(msg, "method");
    struct lc_apply ap = { ctx, m, NULL, false };

    (void)x;
    if (m == NULL || json_object_get(msg, "id"))
        return;
    ap.changed = !strcmp(m, "notifications/tools/list_changed") ||
                 !strcmp(m, "notifications/prompts/list_changed") ||
                 !strcmp(m, "notifications/resources/list_changed");
    if (ap.changed || !strcmp(m, "notifications/resources/updated")) {
        ap.params = json_object_get(msg, "params");
        gw_session_each(NULL, lc_one, &ap);     /* nothing here blocks the I/O thread */
    }
}

static void listen_start(struct gh_arena *a, struct gw_call_target *t, int fails);

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    pthread_t       th;
    bool            running, stop;
    struct listen_ctx *q;       /* waiting for their reopen */
    int             n;
} upkeep = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* The upkeep thread: reopens one stream, if it is still wanted. */
static void
reopen(struct listen_ctx *l)
{
    struct gw_session *s = gw_session_find(l->id_hash);
    struct gh_arena *a = NULL;
    struct gw_connector *conns = NULL, *c = NULL;
    struct gh_err e = {0};
    bool current = false;
    int n = 0;

    if (s == NULL)
        goto out;       /* ended, expired or evicted: nobody to tell */
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->nups; i++)
        if (!strcmp(s->ups[i].connector_id, l->connector_id))
            current = s->ups[i].listen_gen == l->gen && s->ups[i].proto[0];
    pthread_mutex_unlock(&s->lock);
    if (!current)
        goto out;       /* a newer stream (or handshake) took its place */
    a = gh_arena_new(0);
    if (a == NULL || gw_connectors_for_agent(a, s->agent_id, &conns, &n, &e) < 0)
        goto out;
    for (int i = 0; i < n && c == NULL; i++)
        if (!strcmp(conns[i].id, l->connector_id) && conns[i].enabled)
            c = &conns[i];
    if (c == NULL) {
        GH_LOG(DEBUG, "gw_upstream", "upstream stream not reopened: connector disabled or removed");
        goto out;
    }
    {
        /* the member the session belongs to, for the upstream credential */
        struct authz_credential who = { .user_id = s->user_id,
                                        .agent = { .id = s->agent_id, .slug = s->agent_slug } };
        struct gw_call_target t = { s, c, NULL, 0 };
        if (gw_connector_auth_headers(a, c, &who, &t.headers, &t.nheaders, &e) < 0)
            goto out;
        GH_LOG(INFO, "gw_upstream", "connector %s: upstream stream ended, reopening (%d early end(s) in a row)",
               c->name, l->fails);
        listen_start(a, &t, l->fails);
    }
out:
    if (e.status)
        GH_LOG(WARN, "gw_upstream", "upstream stream not reopened: %s", e.detail[0] ? e.detail : e.msg);
    gh_arena_free(a);
    gw_session_put(s);
    free(l);
}

static void *
upkeep_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&upkeep.lock);
    while (!upkeep.stop) {
        struct listen_ctx **first = NULL;
        int64_t now = gh_now_us();

        for (struct listen_ctx **p = &upkeep.q; *p; p = &(*p)->next)
            if (first == NULL || (*p)->due_us < (*first)->due_us)
                first = p;
        if (first == NULL) {
            pthread_cond_wait(&upkeep.cond, &upkeep.lock);
        } else if ((*first)->due_us > now) {
            struct timespec ts;
            int64_t wait = (*first)->due_us - now;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait / 1000000);
            ts.tv_nsec += (long)(wait % 1000000) * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&upkeep.cond, &upkeep.lock, &ts);
        } else {
            struct listen_ctx *l = *first;
            *first = l->next;
            upkeep.n--;
            pthread_mutex_unlock(&upkeep.lock);
            reopen(l);
            pthread_mutex_lock(&upkeep.lock);
        }
    }
    pthread_mutex_unlock(&upkeep.lock);
    return NULL;
}

/* Queues l for a reopen after its backoff; takes l.  Any thread (the I/O
 * thread included: nothing here blocks for long). */
static void
upkeep_schedule(struct listen_ctx *l)
{
    int shift = l->fails > 0 ? l->fails - 1 : 0;
    int64_t ms = shift >= 8 ? LISTEN_BACKOFF_MAX_MS : (int64_t)LISTEN_BACKOFF_MS << shift;

    if (ms > LISTEN_BACKOFF_MAX_MS)
        ms = LISTEN_BACKOFF_MAX_MS;
    l->due_us = gh_now_us() + ms * 1000;
    pthread_mutex_lock(&upkeep.lock);
    if (!upkeep.stop && !upkeep.running) {
        if (pthread_create(&upkeep.th, NULL, upkeep_main, NULL) == 0)
            upkeep.running = true;
        else
            GH_LOG(WARN, "gw_upstream", "cannot start the upstream stream upkeep thread");
    }
    if (upkeep.stop || !upkeep.running || upkeep.n >= LISTEN_QUEUE_MAX) {
        pthread_mutex_unlock(&upkeep.lock);
        free(l);
        return;
    }
    l->next = upkeep.q;
    upkeep.q = l;
    upkeep.n++;
    pthread_cond_signal(&upkeep.cond);
    pthread_mutex_unlock(&upkeep.lock);
}

void
gw_up_upkeep_stop(void)
{
    bool join;

    pthread_mutex_lock(&upkeep.lock);
    upkeep.stop = true;
    join = upkeep.running;
    upkeep.running = false;
    pthread_cond_signal(&upkeep.cond);
    pthread_mutex_unlock(&upkeep.lock);
    if (join)
        pthread_join(upkeep.th, NULL);
    pthread_mutex_lock(&upkeep.lock);
    while (upkeep.q) {
        struct listen_ctx *l = upkeep.q;
        upkeep.q = l->next;
        free(l);
    }
    upkeep.n = 0;
    pthread_mutex_unlock(&upkeep.lock);
}

/* The stream ended (I/O thread). */
static void
listen_done(struct gw_up_xfer *x, void *ctx)
{
    struct listen_ctx *l = ctx;
    long st = gw_up_status(x);

    if (!strcmp(gw_up_error(x), "cancelled") ||
        (st >= 400 && st < 500 && st != 408 && st != 429)) {
        free(l);
        return;
    }
    l->fails = st == 200 && gh_now_us() - l->started_us >= LISTEN_HEALTHY_US ? 0 : l->fails + 1;
    if (l->fails > LISTEN_MAX_TRIES) {
        GH_LOG(WARN, "gw_upstream", "upstream stream ended %d times in a row: not reopened",
               LISTEN_MAX_TRIES);
        free(l);
        return;
    }
    upkeep_schedule(l);
}

static void
listen_start(struct gh_arena *a, struct gw_call_target *t, int fails)
{
    struct gw_up_req rq = {0};
    struct gw_header *h = gh_arena_alloc(a, sizeof(*h) * (size_t)(t->nheaders + 3));
    struct listen_ctx *l = calloc(1, sizeof(*l));
    struct gw_up_xfer *x, *old = NULL;
    int n = 0;
    unsigned gen;
    char *sid = NULL, proto[16] = "";

    if (h == NULL || l == NULL) {
        free(l);
        return;
    }
    l->gen = gw_upstate_listen_begin(a, t->s, t->c, &sid, proto);
    snprintf(l->id_hash, sizeof(l->id_hash), "%s", t->s->id_hash);
    snprintf(l->connector_id, sizeof(l->connector_id), "%s", t->c->id);
    l->fails = fails;
    l->started_us = gh_now_us();
    if (!strcmp(proto, GW_PROTO_2026_07_28)) {
        /* a 2026-07-28 upstream: one subscriptions/listen, a POST whose
         * response stream stays open */
        json_t *msg = gh_arena_json(a, json_pack("{s:s, s:s, s:s, s:{s:{s:b, s:b, s:b}}}", "jsonrpc", "2.0",
                                                 "id", "gh-listen", "method", "subscriptions/listen",
                                                 "params", "notifications", "toolsListChanged", 1,
                                                 "promptsListChanged", 1, "resourcesListChanged", 1));
        struct gh_err e = {0};
        if (msg == NULL || gw_up_prepare(a, t, msg, &rq, &e) < 0) {
            free(l);
            return;
        }
        rq.timeout_ms = 0;
    } else {
        if (sid == NULL) {
            free(l);
            return;     /* a legacy upstream without sessions has no stream for us */
        }
        for (int i = 0; i < t->nheaders; i++)
            h[n++] = t->headers[i];
        h[n++] = (struct gw_header){ "Accept", "text/event-stream" };
        h[n++] = (struct gw_header){ "Mcp-Session-Id", sid };
        if (proto_at_least(proto, GW_PROTO_2025_06_18))
            h[n++] = (struct gw_header){ "MCP-Protocol-Version", gh_arena_strdup(a, proto) };
        rq.url = t->c->url;
        rq.method = "GET";
        rq.headers = h;
        rq.nheaders = n;
        rq.timeout_ms = 0;
    }
    rq.on_message = listen_msg;
    rq.on_done = listen_done;
    rq.ctx = l;
    gen = l->gen;       /* l belongs to the transfer from here on */
    x = gw_up_start(&rq);
    if (x == NULL) {
        free(l);
        return;
    }
    old = gw_upstate_listen_set(t->s, t->c, gen, x);
    if (old) {
        gw_up_cancel(old);
        gw_up_release(old);
    }
}

/* What the gateway declares to an upstream at initialize: the capabilities
 * the session's client declared that relay.c passes on. */
json_t *
gw_up_client_caps(const struct gw_session *s)
{
    json_t *out = json_object(), *c;

    if (out == NULL || s->stateless || !json_is_object(s->client_caps))
        return out;
    if (json_is_object(c = json_object_get(s->client_caps, "sampling")))
        json_object_set_new(out, "sampling", json_deep_copy(c));
    if (json_is_object(c = json_object_get(s->client_caps, "elicitation")))
        json_object_set_new(out, "elicitation", json_deep_copy(c));
    /* the client's roots/list_changed is not passed on: no listChanged */
    if (json_is_object(json_object_get(s->client_caps, "roots")))
        json_object_set_new(out, "roots", json_object());
    return out;
}

/* ---- handshake */

/* DELETE of an upstream session we no longer use; nobody waits for it. */
void
gw_up_end_session(struct gh_arena *a, const struct gw_call_target *t, const char *sid, const char *proto)
{
    struct gw_header *h = gh_arena_alloc(a, sizeof(*h) * (size_t)(t->nheaders + 2));
    struct gw_up_req rq = {0};
    int n = 0;

    if (h == NULL || sid == NULL)
        return;
    for (int i = 0; i < t->nheaders; i++)
        h[n++] = t->headers[i];
    h[n++] = (struct gw_header){ "Mcp-Session-Id", gh_arena_strdup(a, sid) };
    if (proto && proto_at_least(proto, GW_PROTO_2025_06_18))
        h[n++] = (struct gw_header){ "MCP-Protocol-Version", gh_arena_strdup(a, proto) };
    rq.url = t->c->url;
    rq.method = "DELETE";
    rq.headers = h;
    rq.nheaders = n;
    rq.timeout_ms = gh_cfg.upstream_call_timeout_ms;
    gw_up_release(gw_up_start(&rq));    /* no callbacks: nothing to hear */
}

void
gw_up_end_evicted(struct gh_arena *a, const struct authz_credential *who, const struct gw_evicted_up *ev, int n)
{
    struct gw_connector *conns = NULL;
    int nconns = 0;
    struct gh_err e = {0};

    if (n == 0 || gw_connectors_for_agent(a, who->agent.id, &conns, &nconns, &e) < 0)
        return;     /* the upstream sessions then idle out on their own */
    for (int i = 0; i < n; i++) {
        struct gw_call_target t = { NULL, NULL, NULL, 0 };
        struct gh_err he = {0};
        for (int k = 0; k < nconns && t.c == NULL; k++)
            if (!strcmp(conns[k].id, ev[i].connector_id))
                t.c = &conns[k];
        if (t.c && gw_connector_auth_headers(a, t.c, who, &t.headers, &t.nheaders, &he) == 0)
            gw_up_end_session(a, &t, ev[i].sid, ev[i].proto);
    }
}

/* server/discover: *modern when the upstream speaks 2026-07-28, *both when
 * its supportedVersions name a session revision we speak as well. */
static int
probe_modern(struct gh_arena *a, struct gw_call_target *t, bool *modern, bool *both)
{
    struct gw_up_req rq = {0};
    json_t *id = gh_arena_json(a, gw_up_next_id()), *resp = NULL, *msg, *sv;
    struct gw_header *h = gh_arena_alloc(a, sizeof(*h) * (size_t)(t->nheaders + 4));
    struct gw_up_xfer *x;
    char *body;
    int n = 0;

    *modern = *both = false;
    if (h == NULL)
        return -1;
    msg = gh_arena_json(a, json_pack("{s:s, s:O, s:s, s:{s:o}}", "jsonrpc", "2.0", "id", id,
                                     "method", "server/discover", "params", "_meta", client_meta()));
    body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    if (body == NULL)
        return -1;
    for (int i = 0; i < t->nheaders; i++)
        h[n++] = t->headers[i];
    h[n++] = (struct gw_header){ "Content-Type", "application/json" };
    h[n++] = (struct gw_header){ "Accept", "application/json, text/event-stream" };
    h[n++] = (struct gw_header){ "MCP-Protocol-Version", GW_PROTO_2026_07_28 };
    h[n++] = (struct gw_header){ "Mcp-Method", "server/discover" };
    rq.url = t->c->url;
    rq.headers = h;
    rq.nheaders = n;
    rq.body = gh_arena_strdup(a, body);
    free(body);
    rq.timeout_ms = gh_cfg.upstream_call_timeout_ms;
    x = exchange(&rq, id, &resp);
    if (x == NULL)
        return -1;
    if (gw_up_failed(x) || gw_up_timed_out(x)) {
        gw_up_release(x);
        json_decref(resp);
        return -1;          /* unreachable: don't remember an era */
    }
    sv = json_object_get(json_object_get(resp, "result"), "supportedVersions");
    if (gw_up_status(x) == 200 && json_is_array(sv)) {
        size_t i;
        json_t *v;
        bool session = false;
        json_array_foreach(sv, i, v) {
            const char *ver = json_string_value(v);
            if (ver && !strcmp(ver, GW_PROTO_2026_07_28))
                *modern = true;
            else if (ver && gw_proto_supported(ver))
                session = true;
        }
        *both = *modern && session;
        caps_set(t->c->url, "modern", json_object_get(json_object_get(resp, "result"), "capabilities"));
    }
    gw_up_release(x);
    json_decref(resp);
    era_set(t->c->url, *modern, *both);
    return 0;
}

/* The handshake itself (the caller is the one running it for this session
 * and connector): dead is the upstream session a forced one replaces. */
static int
handshake(struct gh_arena *a, struct gw_call_target *t, bool force, const char *dead, struct gh_err *e)
{
    struct gw_up_req rq = {0};
    struct gw_up_xfer *x;
    json_t *id, *msg, *resp = NULL, *res;
    const char *era, *v;
    bool modern = false, both = false;
    char *sid, *replaced = NULL;

    if (force && dead && gw_session_adopt_upstream(t->s, t->c, dead)) {
        /* another process replaced the one that is gone: use its session
         * rather than replace that one in turn */
        GH_LOG(INFO, "gw_upstream", "connector %s: the session's newer upstream session adopted",
               t->c->name);
        return 0;
    }
    if (force)
        gw_upstate_forget(t->s, t->c);

    era = era_get(t->c->url);
    if (era == NULL) {
        if (probe_modern(a, t, &modern, &both) < 0)
            modern = false;     /* the initialize below reports the failure */
    } else {
        modern = strcmp(era, "legacy") != 0;
        both = !strcmp(era, "both");
    }
    /* An upstream that speaks both generations serves each client in its
     * own: a session client gets an upstream session, where the upstream's
     * sampling, elicitation and roots requests, resources/subscribe and
     * logging/setLevel work as the client expects (the 2026-07-28 revision
     * has none of them in that form); a stateless client the stateless
     * revision. */
    if (both && !t->s->stateless)
        modern = false;
    if (modern) {
        gw_upstate_handshake(t->s, t->c, GW_PROTO_2026_07_28, false, NULL);
        listen_start(a, t, 0);
        return 0;
    }

    id = gh_arena_json(a, gw_up_next_id());
    msg = gh_arena_json(a, json_pack("{s:s, s:O, s:s, s:{s:s, s:o, s:{s:s, s:s}}}",
                                     "jsonrpc", "2.0", "id", id, "method", "initialize", "params",
                                     "protocolVersion", GW_PROTO_LATEST_SESSION, "capabilities",
                                     gw_up_client_caps(t->s),
                                     "clientInfo", "name", "gatehouse", "version", "0.1.0"));
    if (msg == NULL || gw_up_prepare(a, t, msg, &rq, e) < 0)
        return -1;
    x = exchange(&rq, id, &resp);
    if (x == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "cannot start a transfer");
    res = json_object_get(resp, "result");
    v = gh_json_str(res, "protocolVersion");
    if (gw_up_status(x) != 200 || res == NULL) {
        up_fail(e, t->c->name, x, "initialize failed");
        goto fail;
    }
    if (v == NULL || !gw_proto_supported(v) || gw_proto_is_stateless(v)) {
        gh_err_set(e, 502, "upstream", "", "%s: unsupported protocol version", t->c->name);
        snprintf(e->msg, sizeof(e->msg), "Upstream '%s' speaks no protocol version we support.",
                 t->c->name);
        goto fail;
    }
    v = gh_arena_strdup(a, v);          /* resp goes below */
    caps_set(t->c->url, "session", json_object_get(res, "capabilities"));
    sid = gw_up_session_id(x) ? gh_arena_strdup(a, gw_up_session_id(x)) : NULL;
    gw_upstate_handshake(t->s, t->c, v, true, sid);
    gw_up_release(x);
    json_decref(resp);
    resp = NULL;

    /* notifications/initialized: a 202 is all we need */
    {
        struct gw_up_req nq = {0};
        json_t *note = gh_arena_json(a, json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
                                                  "notifications/initialized"));
        if (note == NULL || gw_up_prepare(a, t, note, &nq, e) < 0)
            return -1;
        x = exchange(&nq, NULL, &resp);
        if (x == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "cannot start a transfer");
        if (gw_up_status(x) >= 300 || gw_up_status(x) == 0) {
            up_fail(e, t->c->name, x, "notifications/initialized refused");
            goto fail;
        }
        gw_up_release(x);
        json_decref(resp);
    }
    gw_session_save_upstreams(t->s, t->c->id, &replaced);
    if (replaced && !(dead && !strcmp(replaced, dead))) {
        /* another process's handshake for this session is superseded: end
         * its upstream session (one the upstream dropped needs nothing) */
        GH_LOG(INFO, "gw_upstream", "connector %s: ending the upstream session this handshake replaced",
               t->c->name);
        gw_up_end_session(a, t, replaced, v);
    }
    if (replaced)
        gh_wipe(replaced, strlen(replaced));
    free(replaced);
    listen_start(a, t, 0);
    GH_LOG(DEBUG, "gw_upstream", "connector %s: session established (%s)", t->c->name, v);
    return 0;
fail:
    gw_up_release(x);
    json_decref(resp);
    return -1;
}

/* Whether the session's state for c still needs the handshake asked for,
 * read as the one about to run it: a caller that found none may have
 * lost the race to one that has just ended. */
static bool
still_needed(struct gw_call_target *t, bool force, const char *dead)
{
    struct gw_upstate *u;
    bool need;

    pthread_mutex_lock(&t->s->lock);
    u = gw_session_upstate(t->s, t->c);
    need = u == NULL || (force ? gw_same_str(u->sid, dead) : !u->proto[0]);
    pthread_mutex_unlock(&t->s->lock);
    return need;
}

int
gw_up_ensure(struct gh_arena *a, struct gw_call_target *t, bool force, struct gh_err *e)
{
    struct gw_upstate *u;
    struct gh_err none = {0};
    bool have, resume;
    char *dead = NULL;
    int rc = 0;

    pthread_mutex_lock(&t->s->lock);
    u = gw_session_upstate(t->s, t->c);
    have = u && u->proto[0];
    /* an upstream session this process has never listened to: it came
     * from the row (a restart, or another process's handshake) */
    resume = have && u->listen_gen == 0;
    if (u && force && u->sid)
        dead = gh_arena_strdup(a, u->sid);
    pthread_mutex_unlock(&t->s->lock);
    if (u == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
    if (have && !force) {
        if (resume)
            listen_start(a, t, 0);
        return 0;
    }
    /* one handshake per session and connector at a time; the others
     * share its outcome */
    if (!gw_upstate_hs_begin(t->s, t->c, e))
        return e->status ? -1 : 0;
    if (still_needed(t, force, dead))
        rc = handshake(a, t, force, dead, e);
    gw_upstate_hs_end(t->s, t->c, rc < 0 ? e : &none);
    return rc;
}

json_t *
gw_up_rpc_sync(struct gh_arena *a, struct gw_call_target *t, const char *method, json_t *params,
               long *status, struct gh_err *e)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct gw_up_req rq = {0};
        struct gw_up_xfer *x;
        json_t *id = gh_arena_json(a, gw_up_next_id()), *resp = NULL, *msg;
        long st;
        bool had_sid;

        if (gw_up_ensure(a, t, attempt > 0, e) < 0)
            return NULL;
        msg = gh_arena_json(a, json_pack("{s:s, s:O, s:s}", "jsonrpc", "2.0", "id", id, "method", method));
        if (msg == NULL)
            break;
        if (params)
            json_object_set_new(msg, "params", json_deep_copy(params));
        if (gw_up_prepare(a, t, msg, &rq, e) < 0)
            return NULL;
        x = exchange(&rq, id, &resp);
        if (x == NULL)
            break;
        st = gw_up_status(x);
        if (status)
            *status = st;
        pthread_mutex_lock(&t->s->lock);
        {
            struct gw_upstate *u = gw_session_upstate(t->s, t->c);
            had_sid = u && u->sid;
        }
        pthread_mutex_unlock(&t->s->lock);
        if (st == 404 && had_sid && attempt == 0) {
            /* the upstream dropped its session: a new handshake, once */
            GH_LOG(INFO, "gw_upstream", "connector %s: upstream session gone, re-initializing",
                   t->c->name);
            gw_up_release(x);
            json_decref(resp);
            continue;
        }
        if (resp == NULL) {
            up_fail(e, t->c->name, x, gw_up_error(x)[0] ? gw_up_error(x) : "no response");
            gw_up_release(x);
            return NULL;
        }
        gw_up_release(x);
        return gh_arena_json(a, resp);
    }
    gh_err_set(e, 500, "server_error", "internal error", "upstream request failed");
    return NULL;
}

