/*
 * gateway/upstate.c — a session's upstream side as state: the one writer of
 * struct gw_upstate (the upstream side and the lists ask through the
 * gw_upstate_* here), and its persistence: the upstream session ids and
 * revisions sealed under the server key (bound to the session's id hash)
 * in mcp_sessions.upstreams, merged under the row lock with what other
 * processes wrote.  session.c loads it with the session.
 */
#include "gateway/mcp_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- upstream ids */

void
gw_upstate_load(struct gh_arena *a, struct gw_session *s, const char *sealed)
{
    unsigned char *pt;
    size_t n;
    json_t *o, *v;
    const char *k;

    if (sealed == NULL || gh_unseal(a, sealed, s->id_hash, &pt, &n) < 0)
        return;     /* no key or another key: the handshakes are simply redone */
    o = json_loadb((const char *)pt, n, 0, NULL);
    gh_wipe(pt, n);
    json_object_foreach(o, k, v) {
        struct gw_connector c = { .id = (char *)k, .name = (char *)"" };
        struct gw_upstate *u = gw_session_upstate(s, &c);
        const char *sid = gh_json_str(v, "sid"), *proto = gh_json_str(v, "proto");
        if (u == NULL)
            break;
        u->sid = sid ? strdup(sid) : NULL;
        snprintf(u->proto, sizeof(u->proto), "%s", proto ? proto : "");
    }
    json_decref(o);
}

struct gw_upstate *
gw_session_upstate(struct gw_session *s, const struct gw_connector *c)
{
    struct gw_upstate *u;

    for (int i = 0; i < s->nups; i++)
        if (!strcmp(s->ups[i].connector_id, c->id)) {
            if (c->name[0] && !s->ups[i].connector[0])
                snprintf(s->ups[i].connector, sizeof(s->ups[i].connector), "%s", c->name);
            return &s->ups[i];
        }
    if (s->nups == s->capups) {
        int nc = s->capups ? s->capups * 2 : 4;
        struct gw_upstate *n = realloc(s->ups, sizeof(*n) * (size_t)nc);
        if (n == NULL)
            return NULL;
        s->ups = n;
        s->capups = nc;
    }
    u = &s->ups[s->nups++];
    memset(u, 0, sizeof(*u));
    snprintf(u->connector_id, sizeof(u->connector_id), "%s", c->id);
    snprintf(u->connector, sizeof(u->connector), "%s", c->name);
    return u;
}

/* ---- the upstream state's writes: this file alone changes a gw_upstate
 * (the upstream side and the lists ask through these). */

static json_t **
list_slot(struct gw_upstate *u, enum gw_kind k)
{
    switch (k) {
    case GW_TOOLS:     return &u->tools;
    case GW_PROMPTS:   return &u->prompts;
    case GW_RESOURCES: return &u->resources;
    default:           return &u->templates;
    }
}

json_t *
gw_upstate_list(struct gw_session *s, const struct gw_connector *c, enum gw_kind k)
{
    struct gw_upstate *u;
    json_t *l = NULL;

    pthread_mutex_lock(&s->lock);
    if ((u = gw_session_upstate(s, c)) != NULL)
        l = json_incref(*list_slot(u, k));
    pthread_mutex_unlock(&s->lock);
    return l;
}

bool
gw_upstate_has_list(const struct gw_upstate *u, enum gw_kind k)
{
    return *list_slot((struct gw_upstate *)u, k) != NULL;
}

void
gw_upstate_list_set(struct gw_session *s, const struct gw_connector *c, enum gw_kind k, json_t *list)
{
    struct gw_upstate *u;

    pthread_mutex_lock(&s->lock);
    if ((u = gw_session_upstate(s, c)) != NULL) {
        json_decref(*list_slot(u, k));
        *list_slot(u, k) = json_incref(list);
    }
    pthread_mutex_unlock(&s->lock);
}

void
gw_upstate_lists_drop(struct gw_session *s, const char *connector_id)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->nups; i++)
        if (connector_id == NULL || !strcmp(s->ups[i].connector_id, connector_id))
            for (int k = 0; k < GW_NKINDS; k++) {
                json_t **slot = list_slot(&s->ups[i], (enum gw_kind)k);
                json_decref(*slot);
                *slot = NULL;
            }
    pthread_mutex_unlock(&s->lock);
}

/* Two calls needing the same upstream session at once would each run a
 * handshake, the last replacing the others' upstream session while their
 * requests (and the upstream's requests relayed from them) still use it.
 * So one runs it and the others wait for its end on s->hs_done. */
bool
gw_upstate_hs_begin(struct gw_session *s, const struct gw_connector *c, struct gh_err *e)
{
    struct gw_upstate *u;
    unsigned gen;
    bool lead = true;

    pthread_mutex_lock(&s->lock);
    u = gw_session_upstate(s, c);
    if (u && u->hs_busy) {
        gen = u->hs_gen;
        /* ups may move (realloc) while we wait: looked up again each time */
        while ((u = gw_session_upstate(s, c)) && u->hs_busy && u->hs_gen == gen)
            pthread_cond_wait(&s->hs_done, &s->lock);
        lead = u == NULL;
        if (u && u->hs_err.status)
            *e = u->hs_err;
    }
    if (lead && u)
        u->hs_busy = true;
    pthread_mutex_unlock(&s->lock);
    return lead;
}

void
gw_upstate_hs_end(struct gw_session *s, const struct gw_connector *c, const struct gh_err *e)
{
    struct gw_upstate *u;

    pthread_mutex_lock(&s->lock);
    u = gw_session_upstate(s, c);
    if (u) {
        u->hs_busy = false;
        u->hs_gen++;
        u->hs_err = *e;
    }
    pthread_cond_broadcast(&s->hs_done);
    pthread_mutex_unlock(&s->lock);
}

void
gw_upstate_forget(struct gw_session *s, const struct gw_connector *c)
{
    struct gw_upstate *u;

    pthread_mutex_lock(&s->lock);
    if ((u = gw_session_upstate(s, c)) != NULL) {
        u->proto[0] = '\0';
        free(u->sid);
        u->sid = NULL;
        json_decref(u->tools);
        u->tools = NULL;
        u->pending = true;
    }
    pthread_mutex_unlock(&s->lock);
}

void
gw_upstate_handshake(struct gw_session *s, const struct gw_connector *c, const char *proto, bool with_sid,
                     const char *sid)
{
    struct gw_upstate *u;

    pthread_mutex_lock(&s->lock);
    if ((u = gw_session_upstate(s, c)) != NULL) {
        snprintf(u->proto, sizeof(u->proto), "%s", proto);
        if (with_sid) {
            free(u->sid);
            u->sid = sid ? strdup(sid) : NULL;
            u->pending = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

unsigned
gw_upstate_listen_begin(struct gh_arena *a, struct gw_session *s, const struct gw_connector *c, char **sid,
                        char proto[16])
{
    struct gw_upstate *u;
    unsigned gen = 0;

    pthread_mutex_lock(&s->lock);
    if ((u = gw_session_upstate(s, c)) != NULL) {
        *sid = u->sid ? gh_arena_strdup(a, u->sid) : NULL;
        snprintf(proto, 16, "%s", u->proto);
        gen = ++u->listen_gen;
    }
    pthread_mutex_unlock(&s->lock);
    return gen;
}

struct gw_up_xfer *
gw_upstate_listen_set(struct gw_session *s, const struct gw_connector *c, unsigned gen, struct gw_up_xfer *x)
{
    struct gw_upstate *u;
    struct gw_up_xfer *old;

    pthread_mutex_lock(&s->lock);
    u = gw_session_upstate(s, c);
    if (u && u->listen_gen == gen) {
        old = u->listen;
        u->listen = x;
    } else {
        old = x;        /* a newer stream was started meanwhile: it stays */
    }
    pthread_mutex_unlock(&s->lock);
    return old;
}

static const char SQL_LOCK_UPSTREAMS[] =
    "SELECT upstreams FROM mcp_sessions WHERE id_hash = $1 FOR UPDATE";
static const char SQL_SAVE_UPSTREAMS[] =
    "UPDATE mcp_sessions SET upstreams = $2, last_seen_at = now() WHERE id_hash = $1";
static const char SQL_GET_UPSTREAMS[] = "SELECT upstreams FROM mcp_sessions WHERE id_hash = $1";

/* The row's upstream states, unsealed: a new reference, or NULL. */
static json_t *
upstreams_open(struct gh_arena *a, struct gw_session *s, PGresult *res)
{
    unsigned char *pt;
    size_t n;
    json_t *o;

    if (res == NULL || PQntuples(res) != 1 || db_val(res, 0, 0) == NULL ||
        gh_unseal(a, db_val(res, 0, 0), s->id_hash, &pt, &n) < 0)
        return NULL;
    o = json_loadb((const char *)pt, n, 0, NULL);
    gh_wipe(pt, n);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Under s->lock: what the row holds for connector id k (v) merged into this
 * process's state, and the upstream session id of connector_id it replaces. */
static void
merge_one(struct gw_session *s, const char *k, json_t *v, const char *connector_id, char **replaced)
{
    struct gw_connector c = { .id = (char *)k, .name = (char *)"" };
    struct gw_upstate *u = gw_session_upstate(s, &c);
    const char *sid = gh_json_str(v, "sid"), *proto = gh_json_str(v, "proto");

    if (u == NULL)
        return;
    if (connector_id && !strcmp(k, connector_id)) {
        /* our handshake wins; the session it replaces is ended upstream */
        if (sid && !gw_same_str(sid, u->sid) && replaced)
            *replaced = strdup(sid);
        return;
    }
    if (u->pending || (gw_same_str(sid, u->sid) && !strcmp(proto ? proto : "", u->proto)))
        return;
    /* another process redid this one: its session is the live one */
    free(u->sid);
    u->sid = sid ? strdup(sid) : NULL;
    snprintf(u->proto, sizeof(u->proto), "%s", proto ? proto : "");
}

/* The row's state (old, may be NULL) merged with ours, sealed for the row.
 * A handshake of another connector still running (pending) keeps the row's
 * entry: its own save writes it, and finds there what it replaces. */
static char *
upstreams_merge(struct gh_arena *a, struct gw_session *s, json_t *old, const char *connector_id,
                char **replaced)
{
    json_t *o = old ? json_deep_copy(old) : json_object(), *v;
    const char *k;
    char *js, *sealed = NULL;

    if (o == NULL)
        return NULL;
    pthread_mutex_lock(&s->lock);
    json_object_foreach(old, k, v)
        merge_one(s, k, v, connector_id, replaced);
    for (int i = 0; i < s->nups; i++) {
        struct gw_upstate *u = &s->ups[i];
        bool ours = connector_id && !strcmp(u->connector_id, connector_id);
        if (ours)
            u->pending = false;
        else if (u->pending)
            continue;
        if (u->sid || u->proto[0])
            json_object_set_new(o, u->connector_id,
                                json_pack("{s:s?, s:s}", "sid", u->sid, "proto", u->proto));
        else
            json_object_del(o, u->connector_id);
    }
    pthread_mutex_unlock(&s->lock);
    js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (js) {
        sealed = gh_seal(a, js, strlen(js), s->id_hash);
        gh_wipe(js, strlen(js));
        free(js);
    }
    return sealed;
}

void
gw_session_save_upstreams(struct gw_session *s, const char *connector_id, char **replaced)
{
    struct gh_arena *a;
    struct gh_err e = {0};
    struct db_conn *c = NULL;
    PGresult *res;
    json_t *old = NULL;
    char *sealed;

    if (replaced)
        *replaced = NULL;
    if (s->stateless)
        return;
    a = gh_arena_new(0);
    if (a == NULL)
        return;
    /* read, merge and write under the row lock, so two processes finishing
     * handshakes at once each see the other's */
    c = db_get(&e);
    if (c == NULL || db_begin(c, &e) < 0)
        goto out;
    res = db_exec(c, a, &e, SQL_LOCK_UPSTREAMS, 1, s->id_hash);
    if (res == NULL || PQntuples(res) != 1) {
        db_rollback(c);
        goto out;       /* the session was ended meanwhile */
    }
    old = upstreams_open(a, s, res);
    sealed = upstreams_merge(a, s, old, connector_id, replaced);
    if (sealed == NULL || db_exec(c, a, &e, SQL_SAVE_UPSTREAMS, 2, s->id_hash, sealed) == NULL ||
        db_commit(c, &e) < 0) {
        db_rollback(c);
        goto out;
    }
out:
    if (e.status)
        GH_LOG(WARN, "gw_session", "saving upstream sessions: %s", e.detail[0] ? e.detail : e.msg);
    if (c)
        db_put(c);
    json_decref(old);
    gh_arena_free(a);
}

bool
gw_session_adopt_upstream(struct gw_session *s, const struct gw_connector *c, const char *dead_sid)
{
    struct gh_arena *a;
    struct gh_err e = {0};
    json_t *row, *v;
    const char *sid, *proto;
    bool adopted = false;

    if (s->stateless || dead_sid == NULL || (a = gh_arena_new(0)) == NULL)
        return false;
    row = upstreams_open(a, s, db_query(a, &e, SQL_GET_UPSTREAMS, 1, s->id_hash));
    v = json_object_get(row, c->id);
    sid = gh_json_str(v, "sid");
    proto = gh_json_str(v, "proto");
    if (sid && proto && proto[0] && strcmp(sid, dead_sid)) {
        struct gw_upstate *u;
        pthread_mutex_lock(&s->lock);
        u = gw_session_upstate(s, c);
        if (u && gw_same_str(u->sid, dead_sid)) {
            free(u->sid);
            u->sid = strdup(sid);
            snprintf(u->proto, sizeof(u->proto), "%s", proto);
            adopted = u->sid != NULL;
        }
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(row);
    gh_arena_free(a);
    return adopted;
}
