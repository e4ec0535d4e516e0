/*
 * gateway/session.c — MCP sessions: rows in PostgreSQL (mcp_sessions) and
 * an in-process cache in front of them, so a restarted process or a second
 * one on the same database serves the same session.
 *
 * The wire id is 32 random bytes in hex; only its SHA-256 is stored and
 * used as the cache key.  A session is bound to the agent and the user it
 * was created for: anyone else presenting the id gets 404, as for an
 * unknown one.  Last-seen times are written at most once a minute (or a
 * quarter of the idle limit); a DELETE reaches every process via NOTIFY.
 * A session's upstream state and its persistence are upstate.c's.
 */
#include "gateway/mcp_int.h"
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024
#define CHANNEL_SESSIONS "gw_sessions"

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_session *buckets[NBUCKETS];
static long nsessions;
static int64_t last_sweep;

/* Who hears that a session ended (DELETE, the limit, idle; here or in
 * another process): the endpoint's listen streams (gw_session_watch). */
static struct {
    gw_session_ended_fn fn;
    void *ctx;
} watch;

void
gw_session_watch(gw_session_ended_fn fn, void *ctx)
{
    watch.fn = fn;
    watch.ctx = ctx;
}

static void
ended(const char *id_hash)
{
    if (watch.fn)
        watch.fn(id_hash, watch.ctx);
}

static unsigned
bucket_of(const char *id_hash)
{
    unsigned h = 0;

    for (int i = 0; i < 8 && id_hash[i]; i++)
        h = h * 16 + (unsigned)(id_hash[i] <= '9' ? id_hash[i] - '0' : id_hash[i] - 'a' + 10);
    return h % NBUCKETS;
}

static void
session_free(struct gw_session *s)
{
    for (int i = 0; i < s->nups; i++) {
        struct gw_upstate *u = &s->ups[i];
        if (u->listen) {
            gw_up_cancel(u->listen);
            gw_up_release(u->listen);
        }
        free(u->sid);
        json_decref(u->tools);
        json_decref(u->prompts);
        json_decref(u->resources);
        json_decref(u->templates);
    }
    free(s->ups);
    free(s->user_id);
    json_decref(s->client_info);
    json_decref(s->client_caps);
    pthread_cond_destroy(&s->hs_done);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void
gw_session_ref(struct gw_session *s)
{
    pthread_mutex_lock(&cache_lock);
    s->refs++;
    pthread_mutex_unlock(&cache_lock);
}

void
gw_session_put(struct gw_session *s)
{
    bool last;

    if (s == NULL)
        return;
    pthread_mutex_lock(&cache_lock);
    last = --s->refs == 0;
    pthread_mutex_unlock(&cache_lock);
    if (last)
        session_free(s);
}

/* Under cache_lock. */
static struct gw_session *
cache_find(const char *id_hash)
{
    for (struct gw_session *s = buckets[bucket_of(id_hash)]; s; s = s->next)
        if (!strcmp(s->id_hash, id_hash))
            return s;
    return NULL;
}

/* Under cache_lock: takes the cache's reference away. */
static void
cache_unlink(struct gw_session *s)
{
    for (struct gw_session **p = &buckets[bucket_of(s->id_hash)]; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            s->next = NULL;
            nsessions--;
            s->gone = true;
            s->refs--;          /* caller still holds one (asserted by callers) */
            return;
        }
}

/* Inserts s (which carries one reference for the caller) unless an equal
 * one is cached already; returns the cached one, referenced. */
static struct gw_session *
cache_insert(struct gw_session *s)
{
    struct gw_session *old;

    pthread_mutex_lock(&cache_lock);
    old = cache_find(s->id_hash);
    if (old) {
        old->refs++;
        pthread_mutex_unlock(&cache_lock);
        session_free(s);
        return old;
    }
    s->refs = 2;                /* the cache's and the caller's */
    s->next = buckets[bucket_of(s->id_hash)];
    buckets[bucket_of(s->id_hash)] = s;
    nsessions++;
    pthread_mutex_unlock(&cache_lock);
    return s;
}

static struct gw_session *
session_new(const char *id_hash, const char *agent_id, const char *slug, const char *user_id,
            const char *proto)
{
    struct gw_session *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    snprintf(s->id_hash, sizeof(s->id_hash), "%s", id_hash);
    snprintf(s->agent_id, sizeof(s->agent_id), "%s", agent_id);
    snprintf(s->agent_slug, sizeof(s->agent_slug), "%s", slug ? slug : "");
    snprintf(s->proto, sizeof(s->proto), "%s", proto ? proto : "");
    if (user_id && (s->user_id = strdup(user_id)) == NULL) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->hs_done, NULL);
    s->last_seen = s->last_written = gh_time_s();
    s->refs = 1;
    return s;
}

static bool
same_user(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && !strcmp(a, b));
}

static bool
bound_to(const struct gw_session *s, const struct authz_credential *who)
{
    return !strcmp(s->agent_id, who->agent.id) && same_user(s->user_id, who->user_id);
}

/* ---------------------------------------------------------------- create / get */

static const char SQL_INSERT[] =
    "INSERT INTO mcp_sessions (id_hash, agent_id, user_id, credential_kind, protocol_version, client_info,"
    "                          client_capabilities)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)";

/* every process drops the swept sessions and ends their GET streams */
static const char SQL_SWEEP[] =
    "WITH d AS (DELETE FROM mcp_sessions WHERE last_seen_at < now() - make_interval(secs => $1::int)"
    "  RETURNING id_hash)"
    " SELECT pg_notify('" CHANNEL_SESSIONS "', id_hash) FROM d";

static void
sweep(struct gh_arena *a)
{
    int64_t now = gh_time_s();
    struct gh_err e = {0};
    char idle[24];

    if (now - __atomic_load_n(&last_sweep, __ATOMIC_RELAXED) < 60)
        return;
    __atomic_store_n(&last_sweep, now, __ATOMIC_RELAXED);
    snprintf(idle, sizeof(idle), "%ld", gh_cfg.mcp_session_idle_seconds);
    if (db_query(a, &e, SQL_SWEEP, 1, idle) == NULL)
        GH_LOG(WARN, "gw_session", "sweeping idle sessions: %s", e.detail[0] ? e.detail : e.msg);
}

/* ---------------------------------------------------------------- the per-member limit
 * GATEHOUSE_MCP_SESSIONS_PER_MEMBER sessions per agent and user: a new one
 * beyond it ends the member's least recently seen ones (last-seen is
 * written at most once a minute, so "least recently" is to that
 * precision), exactly as a DELETE would: the row goes, every process drops
 * it on NOTIFY, and its upstream sessions are ended.  A client that never
 * DELETEs its sessions is not locked out; the oldest simply answer 404. */

static const char SQL_OVER_LIMIT[] =
    "DELETE FROM mcp_sessions WHERE id_hash IN ("
    "  SELECT id_hash FROM mcp_sessions"
    "   WHERE agent_id = $1::uuid AND user_id IS NOT DISTINCT FROM $2::uuid AND id_hash <> $3"
    "   ORDER BY last_seen_at DESC, created_at DESC OFFSET $4::int)"
    " RETURNING id_hash, upstreams";

static void evict(const char *id_hash);

/* What the store hands back of the sessions a new one evicted: their
 * upstream sessions, for the caller to end upstream (the store is below
 * the upstream side and calls nothing of it). */
struct evicted {
    struct gh_arena *a;
    struct gw_evicted_up *v;
    int n, cap;
};

static void
evicted_add(struct evicted *ev, const char *connector_id, const char *sid, const char *proto)
{
    if (sid == NULL || connector_id == NULL)
        return;
    if (ev->n == ev->cap) {
        int nc = ev->cap ? ev->cap * 2 : 8;
        struct gw_evicted_up *nv = gh_arena_alloc(ev->a, sizeof(*nv) * (size_t)nc);
        if (nv == NULL)
            return;     /* that upstream session then idles out on its own */
        if (ev->n)
            memcpy(nv, ev->v, sizeof(*nv) * (size_t)ev->n);
        ev->v = nv;
        ev->cap = nc;
    }
    ev->v[ev->n++] = (struct gw_evicted_up){ gh_arena_strdup(ev->a, connector_id), gh_arena_strdup(ev->a, sid),
                                             gh_arena_strdup(ev->a, proto ? proto : "") };
}

/* One session ended for the limit: its upstream sessions (the row's, and
 * this process's if it holds the session) into ev, the cache here, and
 * NOTIFY. */
static void
end_evicted(struct gh_arena *a, struct evicted *ev, const char *id_hash, const char *sealed)
{
    struct gw_session *cached;
    json_t *row = NULL, *v;
    const char *k;
    struct gh_err e = {0};

    if (sealed) {
        unsigned char *pt;
        size_t n;
        if (gh_unseal(a, sealed, id_hash, &pt, &n) == 0) {
            row = gh_arena_json(a, json_loadb((const char *)pt, n, 0, NULL));
            gh_wipe(pt, n);
        }
    }
    json_object_foreach(row, k, v)
        evicted_add(ev, k, gh_json_str(v, "sid"), gh_json_str(v, "proto"));
    cached = gw_session_find(id_hash);
    if (cached) {
        /* this process's state may be newer than the row's: copied under
         * the lock, ended after it */
        struct gw_upstate *ups;
        int nups;
        pthread_mutex_lock(&cached->lock);
        nups = cached->nups;
        ups = gh_arena_alloc(a, sizeof(*ups) * (size_t)(nups + 1));
        for (int i = 0; ups && i < nups; i++) {
            ups[i] = cached->ups[i];
            ups[i].sid = gh_arena_strdup(a, cached->ups[i].sid);
        }
        pthread_mutex_unlock(&cached->lock);
        for (int i = 0; ups && i < nups; i++) {
            const char *rs = gh_json_str(json_object_get(row, ups[i].connector_id), "sid");
            if (ups[i].sid && !gw_same_str(rs, ups[i].sid))
                evicted_add(ev, ups[i].connector_id, ups[i].sid, ups[i].proto);
        }
        gw_session_put(cached);
    }
    evict(id_hash);
    if (db_notify(CHANNEL_SESSIONS, id_hash, &e) < 0)
        GH_LOG(WARN, "gw_session", "session ended for the limit, NOTIFY failed: %s", e.detail);
}

static void
enforce_limit(struct gh_arena *a, const struct authz_credential *who, const char *new_hash,
              struct evicted *ev)
{
    struct gh_err e = {0};
    char keep[24];
    PGresult *res;
    int rows;

    snprintf(keep, sizeof(keep), "%ld", gh_cfg.mcp_sessions_per_member - 1);
    res = db_query(a, &e, SQL_OVER_LIMIT, 4, who->agent.id, who->user_id, new_hash, keep);
    if (res == NULL) {
        /* the new session stands; the next initialize tries again */
        GH_LOG(WARN, "gw_session", "session limit not enforced: %s", e.detail[0] ? e.detail : e.msg);
        return;
    }
    rows = PQntuples(res);
    if (rows == 0)
        return;
    for (int i = 0; i < rows; i++)
        end_evicted(a, ev, db_val(res, i, 0), db_val(res, i, 1));
    GH_LOG(INFO, "gw_session", "%d session(s) of a member of agent %s ended: over %ld sessions per member",
           rows, who->agent.slug ? who->agent.slug : who->agent.id, gh_cfg.mcp_sessions_per_member);
}

struct gw_session *
gw_session_create(struct gh_arena *a, const struct authz_credential *who, const char *proto,
                  json_t *client_info, json_t *client_caps, char **wire_id,
                  struct gw_evicted_up **evicted, int *nevicted, struct gh_err *e)
{
    char *id = gh_token_hex(a, "", 32), hash[65], *ci = NULL, *cc = NULL;
    struct gw_session *s;
    struct evicted ev = { .a = a };

    if (id == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "session id");
        return NULL;
    }
    gh_sha256_hex(id, hash);
    if (client_info) {
        char *js = json_dumps(client_info, JSON_COMPACT);
        ci = js ? gh_arena_strdup(a, js) : NULL;
        free(js);
    }
    if (!json_is_object(client_caps))
        client_caps = NULL;
    if (client_caps) {
        char *js = json_dumps(client_caps, JSON_COMPACT);
        cc = js ? gh_arena_strdup(a, js) : NULL;
        free(js);
    }
    if (db_query(a, e, SQL_INSERT, 7, hash, who->agent.id, who->user_id, who->kind, proto, ci, cc) == NULL)
        return NULL;
    enforce_limit(a, who, hash, &ev);
    *evicted = ev.v;
    *nevicted = ev.n;
    sweep(a);
    s = session_new(hash, who->agent.id, who->agent.slug, who->user_id, proto);
    if (s == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "out of memory");
        return NULL;
    }
    s->client_info = json_incref(client_info);
    s->client_caps = json_incref(client_caps);
    *wire_id = id;
    return cache_insert(s);
}

static const char SQL_GET[] =
    "SELECT agent_id, user_id, protocol_version, client_info::text, upstreams,"
    "       extract(epoch from last_seen_at)::bigint, client_capabilities::text"
    "  FROM mcp_sessions WHERE id_hash = $1"
    "   AND last_seen_at > now() - make_interval(secs => $2::int)";

static const char SQL_TOUCH[] = "UPDATE mcp_sessions SET last_seen_at = now() WHERE id_hash = $1";
static const char SQL_DELETE[] = "DELETE FROM mcp_sessions WHERE id_hash = $1";

static int
not_found(struct gh_err *e)
{
    return gh_err_set(e, 404, "session_not_found", "Session not found or expired.", NULL);
}

/* The row, or NULL (not there, expired, or the database failed: e says). */
static struct gw_session *
load(struct gh_arena *a, const char *hash, const char *slug, struct gh_err *e)
{
    char idle[24];
    PGresult *res;
    struct gw_session *s;
    const char *ci;

    snprintf(idle, sizeof(idle), "%ld", gh_cfg.mcp_session_idle_seconds);
    res = db_query(a, e, SQL_GET, 2, hash, idle);
    if (res == NULL)
        return NULL;
    if (PQntuples(res) != 1) {
        not_found(e);
        return NULL;
    }
    s = session_new(hash, db_val(res, 0, 0), slug, db_val(res, 0, 1), db_val(res, 0, 2));
    if (s == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "out of memory");
        return NULL;
    }
    ci = db_val(res, 0, 3);
    if (ci)
        s->client_info = json_loads(ci, 0, NULL);
    ci = db_val(res, 0, 6);
    if (ci)
        s->client_caps = json_loads(ci, 0, NULL);
    s->last_seen = s->last_written = db_ll(res, 0, 5, gh_time_s());
    gw_upstate_load(a, s, db_val(res, 0, 4));
    return s;
}

struct gw_session *
gw_session_get(struct gh_arena *a, const char *wire_id, const struct authz_credential *who,
               struct gh_err *e)
{
    char hash[65];
    struct gw_session *s;
    bool stale;

    if (wire_id == NULL || strlen(wire_id) != 64 || strspn(wire_id, "0123456789abcdef") != 64) {
        not_found(e);
        return NULL;
    }
    gh_sha256_hex(wire_id, hash);
    pthread_mutex_lock(&cache_lock);
    s = cache_find(hash);
    if (s)
        s->refs++;
    pthread_mutex_unlock(&cache_lock);
    if (s) {
        pthread_mutex_lock(&s->lock);
        stale = gh_time_s() - s->last_seen > gh_cfg.mcp_session_idle_seconds;
        pthread_mutex_unlock(&s->lock);
        /* a deletion elsewhere reaches us by NOTIFY: while the listener is
         * not live we cannot know of one, so the row decides then too */
        if (stale || !db_listener_live()) {
            /* another process may have kept it alive (or ended it): the row decides */
            struct gw_session *fresh = load(a, hash, who->agent.slug, e);
            if (fresh == NULL) {
                pthread_mutex_lock(&cache_lock);
                if (!s->gone)
                    cache_unlink(s);
                pthread_mutex_unlock(&cache_lock);
                gw_session_put(s);
                return NULL;
            }
            pthread_mutex_lock(&s->lock);
            s->last_seen = fresh->last_seen;
            pthread_mutex_unlock(&s->lock);
            session_free(fresh);
        }
    } else {
        s = load(a, hash, who->agent.slug, e);
        if (s == NULL)
            return NULL;
        s = cache_insert(s);
    }
    if (s->gone || !bound_to(s, who)) {
        gw_session_put(s);
        gh_err_clear(e);
        not_found(e);
        return NULL;
    }
    gw_session_touch(s);
    return s;
}

struct gw_session *
gw_session_stateless(const struct authz_credential *who)
{
    char key[256], hash[65];
    struct gw_session *s;

    snprintf(key, sizeof(key), "stateless\n%s\n%s", who->agent.id, who->user_id ? who->user_id : "");
    gh_sha256_hex(key, hash);
    pthread_mutex_lock(&cache_lock);
    s = cache_find(hash);
    if (s)
        s->refs++;
    pthread_mutex_unlock(&cache_lock);
    if (s)
        return s;
    s = session_new(hash, who->agent.id, who->agent.slug, who->user_id, GW_PROTO_2026_07_28);
    if (s == NULL)
        return NULL;
    s->stateless = true;
    return cache_insert(s);
}

struct gw_session *
gw_session_find(const char *id_hash)
{
    struct gw_session *s;

    pthread_mutex_lock(&cache_lock);
    s = cache_find(id_hash);
    if (s && s->gone)
        s = NULL;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&cache_lock);
    return s;
}

void
gw_session_touch(struct gw_session *s)
{
    int64_t now = gh_time_s(), every = gh_cfg.mcp_session_idle_seconds / 4;
    bool write;

    if (every > 60)
        every = 60;
    pthread_mutex_lock(&s->lock);
    s->last_seen = now;
    write = !s->stateless && now - s->last_written >= every;
    if (write)
        s->last_written = now;
    pthread_mutex_unlock(&s->lock);
    if (write) {
        struct gh_arena *a = gh_arena_new(0);
        struct gh_err e = {0};
        if (a && db_query(a, &e, SQL_TOUCH, 1, s->id_hash) == NULL)
            GH_LOG(WARN, "gw_session", "last-seen: %s", e.detail[0] ? e.detail : e.msg);
        gh_arena_free(a);
    }
}

static void
evict(const char *id_hash)
{
    struct gw_session *s;

    pthread_mutex_lock(&cache_lock);
    s = cache_find(id_hash);
    if (s) {
        s->refs++;
        cache_unlink(s);
    }
    pthread_mutex_unlock(&cache_lock);
    gw_session_put(s);
}

int
gw_session_delete(struct gw_session *s, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    int rc = -1;

    if (a == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
    if (db_query(a, e, SQL_DELETE, 1, s->id_hash) == NULL)
        goto out;
    evict(s->id_hash);
    ended(s->id_hash);
    db_notify(CHANNEL_SESSIONS, s->id_hash, e);
    gh_err_clear(e);
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

static void
on_notify(const char *channel, const char *payload, void *ctx)
{
    (void)channel;
    (void)ctx;
    if (payload && strlen(payload) == 64) {
        evict(payload);
        ended(payload);
    }
}

long
gw_session_count(void)
{
    return __atomic_load_n(&nsessions, __ATOMIC_RELAXED);
}

void
gw_session_each(const char *agent_id, void (*fn)(struct gw_session *s, void *ctx), void *ctx)
{
    struct gw_session **list = NULL;
    long n = 0, cap;

    pthread_mutex_lock(&cache_lock);
    cap = nsessions;
    list = cap ? calloc((size_t)cap, sizeof(*list)) : NULL;
    for (int b = 0; list && b < NBUCKETS; b++)
        for (struct gw_session *s = buckets[b]; s && n < cap; s = s->next)
            if (agent_id == NULL || !strcmp(s->agent_id, agent_id)) {
                s->refs++;
                list[n++] = s;
            }
    pthread_mutex_unlock(&cache_lock);
    for (long i = 0; i < n; i++) {
        fn(list[i], ctx);
        gw_session_put(list[i]);
    }
    free(list);
}

/* Drops idle sessions from the cache (the rows go in sweep()). */
static void
expire_one(struct gw_session *s, void *ctx)
{
    int64_t now = *(int64_t *)ctx;
    bool idle;

    pthread_mutex_lock(&s->lock);
    idle = now - s->last_seen > gh_cfg.mcp_session_idle_seconds;
    pthread_mutex_unlock(&s->lock);
    if (idle) {
        pthread_mutex_lock(&cache_lock);
        if (!s->gone)
            cache_unlink(s);
        pthread_mutex_unlock(&cache_lock);
    }
}

void
gw_session_expire(void)
{
    int64_t now = gh_time_s();
    struct gh_arena *a = gh_arena_new(0);

    gw_session_each(NULL, expire_one, &now);
    if (a)
        sweep(a);
    gh_arena_free(a);
}

static void flush_all(void *ctx);

int
gw_session_init(struct gh_err *e)
{
    if (db_listen(CHANNEL_SESSIONS, on_notify, NULL) < 0)
        return gh_err_set(e, 500, "server_error", "", "cannot listen for session deletions");
    /* a deletion announced while the listener was reconnecting was missed:
     * the cache starts over from the rows */
    db_listen_reconnect_hook(flush_all, NULL);
    return 0;
}

void
gw_session_stop(void)
{
    flush_all(NULL);
}

static void
flush_all(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&cache_lock);
    for (int b = 0; b < NBUCKETS; b++)
        while (buckets[b]) {
            struct gw_session *s = buckets[b];
            s->refs++;
            cache_unlink(s);
            pthread_mutex_unlock(&cache_lock);
            gw_session_put(s);
            pthread_mutex_lock(&cache_lock);
        }
    pthread_mutex_unlock(&cache_lock);
}
