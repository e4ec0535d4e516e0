/*
 * gateway/listen.c — server-to-client streams: a session's GET stream and
 * a stateless subscriptions/listen, the notifications they carry, and the
 * end of those whose credential fell or whose session ended.
 */
#include "gateway/endpoint_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- listeners */


static uint64_t cred_serial;        /* bumped by every credential change (see listens_recheck) */
static pthread_mutex_t lsn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_listener *listeners;
static void listens_recheck_post(void);

static void
listener_free(struct gw_chan *c)
{
    struct gw_listener *l = (struct gw_listener *)c;

    json_decref(l->sub_id);
    free(l);
}

static void
listener_done(void *ctx)
{
    struct gw_listener *l = ctx;

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
    gw_chan_unregister(&l->ch);
    gw_chan_unref(&l->ch);     /* the stream's reference */
}

static bool
wants(const struct gw_listener *l, const char *method)
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
listener_send(struct gw_listener *l, const char *method, json_t *params)
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
    gw_chan_queue(&l->ch, msg, false);
    json_decref(msg);
}

/* To the streams of one session (id_hash), of one member's stateless
 * listens in an agent (agent_id and user_id), or of a whole agent. */
static void
notify(const char *id_hash, const char *agent_id, const char *user_id, const char *method, json_t *params)
{
    struct gw_listener **hit = NULL;
    int n = 0, cap = 0;

    /* queue under lsn_lock, wake after it (see chan_queue) */
    pthread_mutex_lock(&lsn_lock);
    for (struct gw_listener *l = listeners; l; l = l->next) {
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
            struct gw_listener **nh = realloc(hit, sizeof(*hit) * (size_t)(cap ? cap * 2 : 16));
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
        gw_chan_unref(&hit[i]->ch);
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

struct gw_listener *
gw_listener_open(struct gw_mreq *m, json_t *sub_id, json_t *filter)
{
    struct gw_listener *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    gw_chan_init(&l->ch, 15 * 1000000LL, listener_free);
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

int
gw_listener_start(struct gw_mreq *m, struct gw_listener *l, json_t *ack)
{
    struct web_stream *ws = NULL;

    web_add_header(m->r, "X-Accel-Buffering", "no");
    l->ch.refs++;           /* the stream's */
    pthread_mutex_lock(&l->ch.lock);
    gw_chan_put_locked(&l->ch, ": stream open\n\n", 16);
    pthread_mutex_unlock(&l->ch.lock);
    if (ack) {
        gw_chan_send(&l->ch, ack, false);
    }
    if (web_reply_stream(m->r, 200, "text/event-stream", gw_chan_read, &l->ch, listener_done, &ws) < 0) {
        l->ch.refs--;
        gw_chan_unref(&l->ch);
        return gw_reply_rpc_error(m->r, 500, NULL, GW_RPC_INTERNAL, "Cannot open the stream.", NULL);
    }
    pthread_mutex_lock(&l->ch.lock);
    l->ch.ws = ws;
    pthread_mutex_unlock(&l->ch.lock);
    gw_chan_register(&l->ch);
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
    gw_chan_unref(&l->ch);     /* ours; the stream and registry keep it */
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
listens_end(bool (*match)(const struct gw_listener *l, const void *ctx), const void *ctx)
{
    struct gw_listener **ended = NULL;
    int n = 0, cap = 0;

    pthread_mutex_lock(&lsn_lock);
    for (struct gw_listener *l = listeners; l; l = l->next)
        cap++;
    if (cap)
        ended = malloc(sizeof(*ended) * (size_t)cap);
    for (struct gw_listener *l = listeners; ended && l; l = l->next) {
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
        gw_chan_unref(&ended[i]->ch);
    }
    free(ended);
    return n;
}

struct fallen { const char **kind, **id; int n; };

static bool
credential_fell(const struct gw_listener *l, const void *ctx)
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
    for (struct gw_listener *l = listeners; l; l = l->next)
        cap += l->cred_id[0] != '\0';
    kind = gh_arena_alloc(a, sizeof(*kind) * (size_t)(cap + 1));
    id = gh_arena_alloc(a, sizeof(*id) * (size_t)(cap + 1));
    for (struct gw_listener *l = listeners; kind && id && l; l = l->next)
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
of_session(const struct gw_listener *l, const void *ctx)
{
    return l->id_hash[0] && !strcmp(l->id_hash, ctx);
}

static void
session_ended(const char *id_hash, void *ctx)
{
    int n = listens_end(of_session, id_hash);

    (void)ctx;
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

uint64_t
gw_listen_serial(void)
{
    return __atomic_load_n(&cred_serial, __ATOMIC_SEQ_CST);
}

void
gw_listen_tick(void)
{
    if (__atomic_exchange_n(&recheck_failed, false, __ATOMIC_SEQ_CST))
        listens_recheck_post();
}

int
gw_listen_start(void)
{
    gw_session_watch(session_ended, NULL);
    return authz_credentials_watch(on_credentials_changed, NULL);
}
