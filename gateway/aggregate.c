/*
 * gateway/aggregate.c — the upstream side of a session and the merged
 * lists clients see.
 *
 * Upstream: the gateway runs each upstream's handshake itself (initialize
 * + notifications/initialized, or nothing for a 2026-07-28 upstream, found
 * by one server/discover probe per URL and process), keeps the upstream's
 * Mcp-Session-Id in the session, and redoes the handshake once when the
 * upstream answers 404 for its session (or takes up the newer upstream
 * session another process saved in the row).  A handshake that replaces an
 * upstream session id the row held (another process's) DELETEs that one
 * upstream.  Each upstream also gets a stream of ours (GET, or
 * subscriptions/listen) so its own list_changed notifications reach our
 * clients; one the upstream ends is reopened by the upkeep thread.
 *
 * Names: "<connector>__<name>"; past 64 characters the first 55 bytes are
 * kept and "_" plus 8 hex digits of SHA-256(full name) appended; a name
 * already taken (in list order) is rehashed with a counter until free.
 * Resource URIs pass through unchanged (tool results refer to them); a URI
 * two connectors share is given to the first and shown as
 * "gh://<connector>/<uri>" for the others, which routes without state.
 * An entry is found by its kind's key only (name, uri, uriTemplate).  Of
 * one upstream's list the gateway keeps the first entry of each key and at
 * most GW_AGG_LIST_MAX entries (gw_agg_take), once per fetch.
 */
#include "gateway/mcp_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- pure helpers */

static void
hash8(const char *s, long k, char out[9])
{
    unsigned char d[32];
    char hex[65];

    if (k == 0) {
        gh_sha256(s, strlen(s), d);
    } else {
        size_t n = strlen(s);
        char *buf = malloc(n + 24);
        if (buf == NULL) {
            memset(out, '0', 8);
            out[8] = '\0';
            return;
        }
        snprintf(buf, n + 24, "%s\n%ld", s, k);
        gh_sha256(buf, strlen(buf), d);
        free(buf);
    }
    gh_hex_encode(d, 4, hex);
    memcpy(out, hex, 8);
    out[8] = '\0';
}

static void
shorten(const char *full, long k, char out[GW_NAME_MAX + 1])
{
    size_t n = strlen(full), keep = GW_NAME_MAX - 9;
    char h[9];

    if (k == 0 && n <= GW_NAME_MAX) {
        memcpy(out, full, n + 1);
        return;
    }
    if (n < keep)
        keep = n;
    while (keep > 0 && ((unsigned char)full[keep] & 0xC0) == 0x80)
        keep--;                 /* never split a UTF-8 sequence */
    hash8(full, k, h);
    memcpy(out, full, keep);
    out[keep] = '_';
    memcpy(out + keep + 1, h, 9);
}

void
gw_agg_names(const char *const *connectors, const char *const *origs, int n,
             char (*names)[GW_NAME_MAX + 1])
{
    /* taken: every name given so far; counter: the last counter each full
     * name was rehashed with.  Counting on from there gives the name that
     * counting from 1 would (every earlier counter of that full name is
     * taken, and taken names stay taken) without retrying them: n repeats
     * of one name cost n hashes, not n * n / 2. */
    json_t *taken = json_object(), *counter = json_object();

    for (int i = 0; i < n; i++) {
        size_t len = strlen(connectors[i]) + strlen(origs[i]) + 3;
        char *full = malloc(len);
        long k;

        if (full == NULL) {
            snprintf(names[i], GW_NAME_MAX + 1, "%.64s", connectors[i]);
            continue;
        }
        snprintf(full, len, "%s__%s", connectors[i], origs[i]);
        shorten(full, 0, names[i]);
        if (json_object_get(taken, names[i])) {
            k = (long)json_integer_value(json_object_get(counter, full));
            do
                shorten(full, ++k, names[i]);
            while (json_object_get(taken, names[i]) && k < 1000000);
            json_object_set_new(counter, full, json_integer(k));
        }
        json_object_set_new(taken, names[i], json_true());
        free(full);
    }
    json_decref(counter);
    json_decref(taken);
}

char *
gw_agg_uri_wrap(struct gh_arena *a, const char *connector, const char *uri)
{
    return gh_arena_printf(a, "gh://%s/%s", connector, uri);
}

int
gw_agg_uri_unwrap(struct gh_arena *a, const char *wrapped, char **connector, char **uri)
{
    const char *p, *slash;

    if (!gh_str_has_prefix(wrapped, "gh://"))
        return -1;
    p = wrapped + 5;
    slash = strchr(p, '/');
    if (slash == NULL || slash == p || slash[1] == '\0')
        return -1;
    *connector = gh_arena_strndup(a, p, (size_t)(slash - p));
    *uri = gh_arena_strdup(a, slash + 1);
    return *connector && *uri ? 0 : -1;
}

char *
gw_agg_cursor_make(struct gh_arena *a, int offset)
{
    char raw[32], *hex;
    size_t n;

    n = (size_t)snprintf(raw, sizeof(raw), "gh1:%d", offset);
    hex = gh_arena_alloc(a, 2 * n + 1);
    if (hex)
        gh_hex_encode((unsigned char *)raw, n, hex);
    return hex;
}

int
gw_agg_cursor_parse(const char *cursor, int *offset)
{
    unsigned char raw[32];
    size_t n = cursor ? strlen(cursor) : 0;
    char *end;
    long v;

    if (n == 0 || n % 2 || n / 2 >= sizeof(raw) || gh_hex_decode(cursor, raw, n / 2) < 0)
        return -1;
    raw[n / 2] = '\0';
    if (memcmp(raw, "gh1:", 4))
        return -1;
    v = strtol((char *)raw + 4, &end, 10);
    if (*end || end == (char *)raw + 4 || v < 0 || v > 100000000)
        return -1;
    *offset = (int)v;
    return 0;
}

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
static json_t *eras;        /* url -> "modern" | "legacy" */

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
era_set(const char *url, bool modern)
{
    pthread_mutex_lock(&era_lock);
    if (eras == NULL)
        eras = json_object();
    if (json_object_size(eras) < 10000)
        json_object_set_new(eras, url, json_string(modern ? "modern" : "legacy"));
    pthread_mutex_unlock(&era_lock);
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

static void
lc_one(struct gw_session *s, void *ctx)
{
    struct lc_apply *ap = ctx;

    if (strcmp(s->id_hash, ap->l->id_hash))
        return;
    if (ap->changed)
        gw_agg_invalidate(s, ap->l->connector_id);
    gw_notify_session(s, ap->method, ap->params);
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
    if (a == NULL || gw_agg_connectors(a, s->agent_id, &conns, &n, &e) < 0)
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
gw_agg_upkeep_stop(void)
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
    struct gw_upstate *u;
    int n = 0;
    unsigned gen;
    char *sid = NULL, proto[16] = "";

    if (h == NULL || l == NULL) {
        free(l);
        return;
    }
    pthread_mutex_lock(&t->s->lock);
    u = gw_session_upstate(t->s, t->c);
    if (u) {
        sid = u->sid ? gh_arena_strdup(a, u->sid) : NULL;
        snprintf(proto, sizeof(proto), "%s", u->proto);
        l->gen = ++u->listen_gen;
    }
    pthread_mutex_unlock(&t->s->lock);
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
    pthread_mutex_lock(&t->s->lock);
    u = gw_session_upstate(t->s, t->c);
    if (u && u->listen_gen == gen) {
        old = u->listen;
        u->listen = x;
    } else {
        old = x;        /* a newer stream was started meanwhile: it stays */
    }
    pthread_mutex_unlock(&t->s->lock);
    if (old) {
        gw_up_cancel(old);
        gw_up_release(old);
    }
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

static int
probe_modern(struct gh_arena *a, struct gw_call_target *t, bool *modern)
{
    struct gw_up_req rq = {0};
    json_t *id = gh_arena_json(a, gw_up_next_id()), *resp = NULL, *msg, *sv;
    struct gw_header *h = gh_arena_alloc(a, sizeof(*h) * (size_t)(t->nheaders + 4));
    struct gw_up_xfer *x;
    char *body;
    int n = 0;

    *modern = false;
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
        json_array_foreach(sv, i, v)
            if (json_is_string(v) && !strcmp(json_string_value(v), GW_PROTO_2026_07_28))
                *modern = true;
    }
    gw_up_release(x);
    json_decref(resp);
    era_set(t->c->url, *modern);
    return 0;
}

int
gw_up_ensure(struct gh_arena *a, struct gw_call_target *t, bool force, struct gh_err *e)
{
    struct gw_upstate *u;
    struct gw_up_req rq = {0};
    struct gw_up_xfer *x;
    json_t *id, *msg, *resp = NULL, *res;
    const char *era, *v;
    bool have, resume, modern = false;
    char *sid, *dead = NULL, *replaced = NULL;

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
    if (force && dead && gw_session_adopt_upstream(t->s, t->c, dead)) {
        /* another process replaced the one that is gone: use its session
         * rather than replace that one in turn */
        GH_LOG(INFO, "gw_upstream", "connector %s: the session's newer upstream session adopted",
               t->c->name);
        return 0;
    }
    if (force) {
        pthread_mutex_lock(&t->s->lock);
        u = gw_session_upstate(t->s, t->c);
        if (u) {
            u->proto[0] = '\0';
            free(u->sid);
            u->sid = NULL;
            json_decref(u->tools);
            u->tools = NULL;
            u->pending = true;
        }
        pthread_mutex_unlock(&t->s->lock);
    }

    era = era_get(t->c->url);
    if (era == NULL) {
        if (probe_modern(a, t, &modern) < 0)
            modern = false;     /* the initialize below reports the failure */
    } else {
        modern = !strcmp(era, "modern");
    }
    if (modern) {
        pthread_mutex_lock(&t->s->lock);
        u = gw_session_upstate(t->s, t->c);
        if (u)
            snprintf(u->proto, sizeof(u->proto), "%s", GW_PROTO_2026_07_28);
        pthread_mutex_unlock(&t->s->lock);
        listen_start(a, t, 0);
        return 0;
    }

    id = gh_arena_json(a, gw_up_next_id());
    msg = gh_arena_json(a, json_pack("{s:s, s:O, s:s, s:{s:s, s:o, s:{s:s, s:s}}}",
                                     "jsonrpc", "2.0", "id", id, "method", "initialize", "params",
                                     "protocolVersion", GW_PROTO_LATEST_SESSION, "capabilities",
                                     gw_relay_upstream_caps(t->s),
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
    sid = gw_up_session_id(x) ? gh_arena_strdup(a, gw_up_session_id(x)) : NULL;
    pthread_mutex_lock(&t->s->lock);
    u = gw_session_upstate(t->s, t->c);
    if (u) {
        snprintf(u->proto, sizeof(u->proto), "%s", v);
        free(u->sid);
        u->sid = sid ? strdup(sid) : NULL;
        u->pending = true;
    }
    pthread_mutex_unlock(&t->s->lock);
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

/* ---------------------------------------------------------------- connectors
 * One name for the gateway's reads of an agent's enabled connectors, so a
 * cache in front of gw_connectors_for_agent (the perf-cache branch puts
 * one in connector.c) changes nothing here. */
int
gw_agg_connectors(struct gh_arena *a, const char *agent_id, struct gw_connector **out, int *n,
                  struct gh_err *e)
{
    return gw_connectors_for_agent(a, agent_id, out, n, e);
}

/* ---------------------------------------------------------------- lists */

static const char *const kind_method[GW_NKINDS] = {
    "tools/list", "prompts/list", "resources/list", "resources/templates/list" };
static const char *const kind_field[GW_NKINDS] = { "tools", "prompts", "resources", "resourceTemplates" };
/* what names an entry of each kind, upstream and to clients */
static const char *const kind_key[GW_NKINDS] = { "name", "name", "uri", "uriTemplate" };

static json_t **
cache_slot(struct gw_upstate *u, enum gw_kind k)
{
    switch (k) {
    case GW_TOOLS:     return &u->tools;
    case GW_PROMPTS:   return &u->prompts;
    case GW_RESOURCES: return &u->resources;
    default:           return &u->templates;
    }
}

bool
gw_agg_warm(struct gh_arena *a, struct gw_session *s, enum gw_kind kind)
{
    struct gw_connector *conns = NULL;
    struct gh_err e = {0};
    int n = 0;
    bool warm = true;

    if (gw_agg_connectors(a, s->agent_id, &conns, &n, &e) < 0)
        return false;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < n && warm; i++) {
        struct gw_upstate *u = NULL;
        if (!conns[i].enabled || conns[i].unavailable)
            continue;           /* nothing to wait for: it fails at once */
        for (int k = 0; k < s->nups && u == NULL; k++)
            if (!strcmp(s->ups[k].connector_id, conns[i].id))
                u = &s->ups[k];
        warm = u && u->proto[0] && (kind >= GW_NKINDS || *cache_slot(u, kind));
    }
    pthread_mutex_unlock(&s->lock);
    return warm;
}

void
gw_agg_invalidate(struct gw_session *s, const char *connector_id)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->nups; i++)
        if (connector_id == NULL || !strcmp(s->ups[i].connector_id, connector_id))
            for (int k = 0; k < GW_NKINDS; k++) {
                json_t **slot = cache_slot(&s->ups[i], (enum gw_kind)k);
                json_decref(*slot);
                *slot = NULL;
            }
    pthread_mutex_unlock(&s->lock);
}

void
gw_agg_take(json_t *list, json_t *seen, json_t *page, enum gw_kind kind, int *repeats, int *over)
{
    size_t i;
    json_t *it;

    json_array_foreach(page, i, it) {
        const char *key = gh_json_str(it, kind_key[kind]);
        if (!json_is_object(it) || key == NULL)
            continue;           /* malformed upstream entry: left out */
        if (json_object_get(seen, key)) {
            (*repeats)++;
            continue;
        }
        if (json_array_size(list) >= GW_AGG_LIST_MAX) {
            (*over)++;
            continue;
        }
        json_object_set_new(seen, key, json_true());
        json_array_append(list, it);
    }
}

/* Every page of one upstream's list, as gw_agg_take keeps it: no page is
 * asked for once GW_AGG_LIST_MAX entries are in; one WARN line says what
 * was left out.  A new reference, or NULL with e. */
static json_t *
fetch_all(struct gh_arena *a, struct gw_call_target *t, enum gw_kind k, struct gh_err *e)
{
    json_t *all = json_array(), *seen = json_object(), *cursor = NULL;
    int repeats = 0, over = 0;
    bool more = false;

    for (int page = 0; page < 1000; page++) {
        json_t *params = cursor ? json_pack("{s:O}", "cursor", cursor) : NULL;
        json_t *resp = gw_up_rpc_sync(a, t, kind_method[k], params, NULL, e);
        json_t *res, *items;

        json_decref(params);
        if (resp == NULL)
            goto fail;
        res = json_object_get(resp, "result");
        if (res == NULL) {
            /* an upstream without this capability answers -32601: an empty list */
            json_t *err = json_object_get(resp, "error");
            if (json_integer_value(json_object_get(err, "code")) == GW_RPC_METHOD_NOT_FOUND)
                break;
            gh_err_set(e, 502, "upstream", "", "%s: %s failed", t->c->name, kind_method[k]);
            snprintf(e->msg, sizeof(e->msg), "Upstream '%s' failed to list.", t->c->name);
            goto fail;
        }
        items = json_object_get(res, kind_field[k]);
        if (json_is_array(items))
            gw_agg_take(all, seen, items, k, &repeats, &over);
        cursor = json_object_get(res, "nextCursor");
        more = json_is_string(cursor) && json_string_length(cursor) > 0;
        if (!more || json_array_size(all) >= GW_AGG_LIST_MAX)
            break;
    }
    if (json_array_size(all) < GW_AGG_LIST_MAX)
        more = false;           /* a page limit, not ours: nothing to say */
    if (over || more)
        GH_LOG(WARN, "gw_aggregate", "connector %s: %s: only the first %d entries taken, the rest "
               "left out (%d repeated %s left out too, the first kept)", t->c->name, kind_method[k],
               GW_AGG_LIST_MAX, repeats, kind_key[k]);
    else if (repeats)
        GH_LOG(WARN, "gw_aggregate", "connector %s: %s: %d repeated %s left out, the first kept",
               t->c->name, kind_method[k], repeats, kind_key[k]);
    json_decref(seen);
    return all;
fail:
    json_decref(seen);
    json_decref(all);
    return NULL;
}

struct fetch_wait {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    int             pending, finished;
};

struct fetch_job {
    struct fetch_wait    *w;
    struct gw_call_target t;
    enum gw_kind          kind;
    int                   idx;          /* into the connector array */
    bool                  done;         /* failed before starting */
    json_t               *list;         /* the result (a reference), or NULL with e */
    struct gh_err         e;
};

/* One upstream's list, on a worker or the caller (its own arena: an arena
 * belongs to one thread). */
static void
fetch_job_run(void *ctx)
{
    struct fetch_job *j = ctx;
    struct gh_arena *a = gh_arena_new(0);

    if (a == NULL)
        gh_err_set(&j->e, 500, "server_error", "internal error", "out of memory");
    else
        j->list = fetch_all(a, &j->t, j->kind, &j->e);
    gh_arena_free(a);
    pthread_mutex_lock(&j->w->lock);
    j->w->finished++;
    pthread_cond_signal(&j->w->cond);
    pthread_mutex_unlock(&j->w->lock);
}

int
gw_agg_list(struct gh_arena *a, struct gw_session *s, const struct authz_credential *who,
            enum gw_kind kind, struct gw_list *out, struct gh_err *e)
{
    struct gw_connector *conns = NULL;
    int nconns = 0, total = 0;
    json_t **lists;

    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (gw_agg_connectors(a, s->agent_id, &conns, &nconns, e) < 0)
        return -1;
    out->conns = conns;
    out->nconns = nconns;
    lists = gh_arena_alloc(a, sizeof(*lists) * (size_t)(nconns + 1));
    out->failed = gh_arena_alloc(a, sizeof(char *) * (size_t)(nconns + 1));
    if (lists == NULL || out->failed == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");

    /* cached lists first; what is missing is fetched from all those
     * upstreams at once (workers), so the slowest sets the pace, not the sum */
    {
        struct fetch_job *jobs = gh_arena_alloc(a, sizeof(*jobs) * (size_t)(nconns + 1));
        struct fetch_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
        int njobs = 0;

        if (jobs == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
        for (int i = 0; i < nconns; i++) {
            struct gw_upstate *u;
            json_t *l = NULL;

            if (!conns[i].enabled)
                continue;
            pthread_mutex_lock(&s->lock);
            u = gw_session_upstate(s, &conns[i]);
            if (u && *cache_slot(u, kind))
                l = json_incref(*cache_slot(u, kind));
            pthread_mutex_unlock(&s->lock);
            if (l) {
                lists[i] = gh_arena_json(a, l);
                continue;
            }
            jobs[njobs] = (struct fetch_job){ .w = &w, .t = { s, &conns[i], NULL, 0 }, .kind = kind, .idx = i };
            /* no credential for it: it fails alone, without running */
            jobs[njobs].done = gw_connector_auth_headers(a, &conns[i], who, &jobs[njobs].t.headers,
                                                         &jobs[njobs].t.nheaders, &jobs[njobs].e) < 0;
            if (!jobs[njobs].done)
                w.pending++;
            njobs++;
        }
        /* the last one runs here; a refused post runs here too */
        for (int k = 0, last = njobs - 1; k < njobs; k++)
            if (!jobs[k].done && (k == last || gw_work_post(fetch_job_run, &jobs[k]) < 0))
                fetch_job_run(&jobs[k]);
        pthread_mutex_lock(&w.lock);
        while (w.finished < w.pending)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.cond);

        for (int k = 0; k < njobs; k++) {
            struct fetch_job *j = &jobs[k];
            struct gw_connector *c = &conns[j->idx];
            struct gw_upstate *u;
            if (j->list == NULL) {
                GH_LOG(WARN, "gw_aggregate", "connector %s: %s", c->name,
                       j->e.detail[0] ? j->e.detail : j->e.msg);
                out->failed[out->nfailed++] = c->name;
                continue;
            }
            pthread_mutex_lock(&s->lock);
            u = gw_session_upstate(s, c);
            if (u) {
                json_decref(*cache_slot(u, kind));
                *cache_slot(u, kind) = json_incref(j->list);
            }
            pthread_mutex_unlock(&s->lock);
            lists[j->idx] = gh_arena_json(a, j->list);
        }
    }
    for (int i = 0; i < nconns; i++)
        total += lists[i] ? (int)json_array_size(lists[i]) : 0;

    out->e = gh_arena_alloc(a, sizeof(*out->e) * (size_t)(total + 1));
    if (out->e == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "list too large");
    for (int i = 0; i < nconns; i++) {
        size_t j;
        json_t *it;
        if (lists[i] == NULL)
            continue;
        json_array_foreach(lists[i], j, it) {
            const char *key = gh_json_str(it, kind_key[kind]);
            struct gw_entry *en;
            if (!json_is_object(it) || key == NULL)
                continue;       /* malformed upstream entry: left out */
            en = &out->e[out->n++];
            en->item = it;
            en->connector_id = conns[i].id;
            en->connector = conns[i].name;
            en->orig = key;
        }
    }

    if (kind == GW_TOOLS || kind == GW_PROMPTS) {
        const char **cn = gh_arena_alloc(a, sizeof(char *) * (size_t)(out->n + 1));
        const char **on = gh_arena_alloc(a, sizeof(char *) * (size_t)(out->n + 1));
        char (*names)[GW_NAME_MAX + 1] = gh_arena_alloc(a, sizeof(*names) * (size_t)(out->n + 1));
        if (cn == NULL || on == NULL || names == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "list too large");
        for (int i = 0; i < out->n; i++) {
            cn[i] = out->e[i].connector;
            on[i] = out->e[i].orig;
        }
        gw_agg_names(cn, on, out->n, names);
        for (int i = 0; i < out->n; i++) {
            json_t *c = gh_arena_json(a, json_copy(out->e[i].item));
            json_object_set_new(c, "name", json_string(names[i]));
            out->e[i].item = c;
        }
    } else {
        json_t *seen = gh_arena_json(a, json_object());
        const char *field = kind == GW_RESOURCES ? "uri" : "uriTemplate";
        for (int i = 0; i < out->n; i++) {
            if (json_object_get(seen, out->e[i].orig)) {
                json_t *c = gh_arena_json(a, json_copy(out->e[i].item));
                json_object_set_new(c, field, json_string(gw_agg_uri_wrap(a, out->e[i].connector,
                                                                          out->e[i].orig)));
                out->e[i].item = c;
            } else {
                json_object_set_new(seen, out->e[i].orig, json_true());
            }
        }
    }
    return 0;
}

const struct gw_entry *
gw_agg_find(const struct gw_list *l, const char *name)
{
    /* only the list's own key: a tool or prompt is found by the name we
     * gave it, never by a "uri" (or anything else) its upstream added,
     * which could name another connector's tool */
    const char *field = kind_key[l->kind < GW_NKINDS ? l->kind : GW_TOOLS];

    for (int i = 0; name && i < l->n; i++) {
        const char *k = gh_json_str(l->e[i].item, field);
        if (k && !strcmp(k, name))
            return &l->e[i];
    }
    return NULL;
}

const char *
gw_agg_failed_owner(const struct gw_list *l, const char *name)
{
    for (int i = 0; name && i < l->nfailed; i++) {
        size_t n = strlen(l->failed[i]);
        if (!strncmp(name, l->failed[i], n) && name[n] == '_' && name[n + 1] == '_')
            return l->failed[i];
    }
    return NULL;
}
