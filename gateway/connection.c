/*
 * gateway/connection.c — the upstream credential of a per-member
 * (oauth-app or oauth-discovery) connector: the calling member's own access token, opened from the vault
 * with the credential the call presents (authz_vault_unlock), refreshed in
 * flight when it is within a minute of expiry.
 *
 * One refresh per connection, whatever the number of calls and processes:
 * the refresh runs under a transaction-level advisory lock on the
 * connection; a call that waited for it reads the row again and uses the
 * winner's tokens.  The new tokens are stored (sealed) in the same
 * transaction, before any call uses the new access token, so a rotated
 * refresh token is never lost.  A provider that does not rotate keeps the
 * old refresh token.  A refresh that fails marks the connection "needs
 * reconnect"; the call gets a tool error saying so.  No token reaches a
 * log line or an error message.
 */
#include "gateway/gw_int.h"
#include "gateway/mcp_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_AHEAD_S 60

static int
need_connect(struct gh_arena *a, const struct gw_connector *c, const char *why, struct gh_err *e)
{
    const char *slug = c->agent_slug ? c->agent_slug : "default";

    gh_err_set(e, 403, "connection_needed", "", "connector %s: %s", c->name, why);
    snprintf(e->msg, sizeof(e->msg), "%s Connect it at %s", why,
             gh_config_url(a, gh_arena_printf(a, "/agents/%s/connections", slug)));
    return -1;
}

struct conn {
    const char *sealed;
    int64_t     expires_at;     /* 0 = unknown */
    bool        needs_reconnect;
    bool        found;
    bool        touch;          /* last used over a minute ago: say it is used now */
};

static int
conn_read(struct db_conn *dc, struct gh_arena *a, const struct gw_connector *c, const char *user_id,
          struct conn *out, struct gh_err *e)
{
    PGresult *res = db_exec(dc, a, e,
        "SELECT sealed, coalesce(extract(epoch from expires_at)::bigint, 0), needs_reconnect,"
        "       last_used_at IS NULL OR last_used_at < now() - interval '1 minute'"
        "  FROM vault_connections WHERE agent_id = $1 AND user_id = $2 AND connector_id = $3",
        3, c->agent_id, user_id, c->id);

    memset(out, 0, sizeof(*out));
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return 0;
    out->found = true;
    out->sealed = gh_arena_strdup(a, db_val(res, 0, 0));
    out->expires_at = db_ll(res, 0, 1, 0);
    out->needs_reconnect = db_bool(res, 0, 2);
    out->touch = db_bool(res, 0, 3);
    return 0;
}

/* The tokens of a connection: {"a": access, "r": refresh or null}. */
static json_t *
conn_open(struct gh_arena *a, const struct gw_connector *c, const char *user_id, const unsigned char priv[32],
          const char *sealed)
{
    unsigned char *pt = NULL;
    size_t n = 0;
    json_t *j;

    if (authz_vault_open_with(a, priv, gw_connection_aad(a, c->agent_id, user_id, c->id), sealed, &pt, &n) < 0)
        return NULL;
    j = gh_arena_json(a, json_loadb((const char *)pt, n, 0, NULL));
    gh_wipe(pt, n);
    return json_is_object(j) && gh_json_str(j, "a") ? j : NULL;
}

/* The connection as it is now (on dc), opened: 0 with *tok, -1 with e. */
static int
conn_current(struct db_conn *dc, struct gh_arena *a, const struct gw_connector *c, const char *user_id,
             const unsigned char priv[32], json_t **tok, struct gh_err *e)
{
    struct conn now;

    if (conn_read(dc, a, c, user_id, &now, e) < 0)
        return -1;
    if (!now.found)
        return need_connect(a, c, gh_arena_printf(a, "Connector '%s' needs your own account.", c->name), e);
    if (now.needs_reconnect)
        return need_connect(a, c, gh_arena_printf(a, "Your connection to '%s' must be renewed.", c->name), e);
    if ((*tok = conn_open(a, c, user_id, priv, now.sealed)) == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "connection of %s does not open", c->name);
    return 0;
}

/* The refreshed tokens sealed and stored over the row that was refreshed
 * (`was`), on dc only: the calls waiting for the lock each hold a pool
 * connection, so asking the pool for another one here could starve until
 * its timeout and lose the rotated refresh token.  1 stored, 0 the row
 * changed meanwhile (a reconnect or disconnect wins), -1 with e. */
static int
conn_store(struct db_conn *dc, struct gh_arena *a, const struct gw_connector *c, const char *user_id,
           const char *was, json_t *fresh, struct gh_err *e)
{
    json_t *exp = json_object_get(fresh, "expires_in");
    json_t *pack = json_pack("{s:s,s:s?}", "a", gh_json_str(fresh, "access_token"), "r", gh_json_str(fresh, "refresh_token"));
    char *pt = pack ? json_dumps(pack, JSON_COMPACT) : NULL, *sealed, when[24] = "";
    PGresult *res;

    json_decref(pack);
    if (pt == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "json");
    sealed = authz_vault_seal_on(dc, a, c->agent_id, user_id, gw_connection_aad(a, c->agent_id, user_id, c->id),
                                 pt, strlen(pt), e);
    gh_wipe(pt, strlen(pt));
    free(pt);
    if (sealed == NULL)
        return -1;
    if (json_is_integer(exp) && json_integer_value(exp) > 0)
        snprintf(when, sizeof(when), "%lld", (long long)json_integer_value(exp));
    res = db_exec(dc, a, e, "UPDATE vault_connections SET sealed = $4,"
                  " expires_at = CASE WHEN $5 <> '' THEN now() + make_interval(secs => $5::int) END"
                  " WHERE agent_id = $1 AND user_id = $2 AND connector_id = $3 AND sealed = $6",
                  6, c->agent_id, user_id, c->id, sealed, when, was);
    return res == NULL ? -1 : atoi(PQcmdTuples(res)) == 1;
}

/* Refreshes the connection under its lock (the caller's transaction on dc,
 * app and secret read before it): 0 with *tok the tokens to use (the
 * winner's, when another call refreshed after this one read `seen`, or a
 * reconnect's), 1 when the provider refused (marked needs reconnect), -1
 * with e.  force: refresh even when not due (the upstream refused the
 * access token).  Nothing here asks the pool for a connection. */
static int
refresh_locked(struct db_conn *dc, struct gh_arena *a, const struct gw_connector *c,
               const struct gw_connector_auth *app, const char *secret, const char *user_id,
               const unsigned char priv[32], const char *seen, bool force, json_t **tok, struct gh_err *e)
{
    struct conn now;
    const char *rt, *perr;
    char *form;
    json_t *fresh, *old;
    PGresult *res;
    long status = 0;
    int st;

    if (!db_exec(dc, a, e, "SELECT pg_advisory_xact_lock(hashtextextended($1, 17))", 1,
                 gh_arena_printf(a, "gw_connection:%s:%s:%s", c->agent_id, user_id, c->id)) ||
        conn_read(dc, a, c, user_id, &now, e) < 0)
        return -1;
    if (!now.found)
        return need_connect(a, c, gh_arena_printf(a, "Connector '%s' needs your own account.", c->name), e);
    if (now.needs_reconnect)
        return need_connect(a, c, gh_arena_printf(a, "Your connection to '%s' must be renewed.", c->name), e);
    if ((old = conn_open(a, c, user_id, priv, now.sealed)) == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "connection of %s does not open", c->name);
    /* another call refreshed while this one waited (the row changed since
     * it was read), or nothing is due: use what is stored */
    if (strcmp(now.sealed, seen) || (!force && (now.expires_at == 0 || now.expires_at > gh_time_s() + REFRESH_AHEAD_S))) {
        *tok = old;
        return 0;
    }
    if ((rt = gh_json_str(old, "r")) == NULL)
        goto failed;
    form = gh_arena_printf(a, "grant_type=refresh_token&refresh_token=%s&client_id=%s%s%s%s%s",
                           gh_url_encode(a, rt), gh_url_encode(a, app->client_id), secret ? "&client_secret=" : "",
                           secret ? gh_url_encode(a, secret) : "", app->resource ? "&resource=" : "",
                           app->resource ? gh_url_encode(a, app->resource) : "");
    fresh = gw_oauth_fetch(a, app->token_url, form, NULL, &status, e);
    gh_wipe(form, strlen(form));
    if (fresh == NULL && status == 0)
        return -1;                      /* the provider unreachable: try again later, not a reconnect */
    gh_err_clear(e);
    perr = fresh ? gh_json_str(fresh, "error") : NULL;
    if (fresh == NULL || status != 200 || perr || gh_json_str(fresh, "access_token") == NULL) {
        GH_LOG(INFO, "connection_refresh_failed", "connector %s, user %s: HTTP %ld, error %s", c->name, user_id,
               status, perr && gh_text_ok(perr, strlen(perr)) && strlen(perr) < 64 ? perr : "(none)");
        goto failed;
    }
    /* a provider that does not rotate sends no refresh token: keep ours */
    if (gh_json_str(fresh, "refresh_token") == NULL)
        json_object_set_new(fresh, "refresh_token", json_string(rt));
    st = conn_store(dc, a, c, user_id, now.sealed, fresh, e);
    if (st <= 0) {
        json_object_clear(fresh);
        return st < 0 ? -1 : conn_current(dc, a, c, user_id, priv, tok, e);
    }
    GH_LOG(INFO, "connection_refreshed", "connector %s, user %s: tokens refreshed", c->name, user_id);
    *tok = json_pack("{s:s,s:s}", "a", gh_json_str(fresh, "access_token"), "r", gh_json_str(fresh, "refresh_token"));
    gh_arena_json(a, *tok);
    json_object_clear(fresh);
    return 0;
failed:
    /* only the row that failed: a connection made again meanwhile is not condemned */
    res = db_exec(dc, a, e, "UPDATE vault_connections SET needs_reconnect = true WHERE agent_id = $1"
                  " AND user_id = $2 AND connector_id = $3 AND sealed = $4", 4, c->agent_id, user_id, c->id, now.sealed);
    if (res == NULL)
        return -1;
    return atoi(PQcmdTuples(res)) == 1 ? 1 : conn_current(dc, a, c, user_id, priv, tok, e);
}

/* 0 with the tokens, refreshed when due, and *touch when the connection's
 * last use is over a minute old; -1 with e. */
static int
conn_tokens(struct gh_arena *a, const struct gw_connector *c, const char *user_id, const unsigned char priv[32],
            bool force, json_t **tok, bool *touch, struct gh_err *e)
{
    struct db_conn *dc = db_get(e);
    struct gw_connector_auth app;
    struct conn cur;
    char *secret = NULL;
    int rc = -1;

    if (dc == NULL || conn_read(dc, a, c, user_id, &cur, e) < 0)
        goto out;
    *touch = cur.touch;
    if (!cur.found) {
        need_connect(a, c, gh_arena_printf(a, "Connector '%s' needs your own account.", c->name), e);
        goto out;
    }
    if (cur.needs_reconnect) {
        need_connect(a, c, gh_arena_printf(a, "Your connection to '%s' must be renewed: its refresh failed.", c->name), e);
        goto out;
    }
    if (!force && (cur.expires_at == 0 || cur.expires_at > gh_time_s() + REFRESH_AHEAD_S)) {
        *tok = conn_open(a, c, user_id, priv, cur.sealed);
        rc = *tok ? 0 : gh_err_set(e, 500, "server_error", "internal error", "connection of %s does not open", c->name);
        goto out;
    }
    /* due: the app's settings are read holding no connection, so that the
     * lock's holder never waits for the pool its waiters fill */
    db_put(dc);
    dc = NULL;
    if (gw_connector_oauth_app(a, c->id, &app, &secret, e) < 0 || (dc = db_get(e)) == NULL || db_begin(dc, e) < 0)
        goto out;
    rc = refresh_locked(dc, a, c, &app, secret, user_id, priv, cur.sealed, force, tok, e);
    if (rc >= 0 && db_commit(dc, e) < 0)
        rc = -1;
    else if (rc < 0)
        db_rollback(dc);
    if (rc == 1) {
        gw_connections_changed(c->agent_id, user_id);
        rc = need_connect(a, c, gh_arena_printf(a, "Your connection to '%s' must be renewed: the provider refused "
                                                   "to refresh it.", c->name), e);
    }
out:
    if (secret)
        gh_wipe(secret, strlen(secret));
    if (dc)
        db_put(dc);
    return rc;
}

int
gw_connection_headers(struct gh_arena *a, const struct gw_connector *c, const struct authz_credential *who,
                      bool force_refresh, struct gw_header **out, int *n, struct gh_err *e)
{
    unsigned char priv[32];
    struct gw_header *h;
    json_t *tok = NULL;
    bool touch = false;
    int rc = -1;

    if (who == NULL || who->user_id == NULL)
        return need_connect(a, c, gh_arena_printf(a, "Connector '%s' needs your own account.", c->name), e);
    if (who->bearer == NULL)
        return need_connect(a, c, gh_arena_printf(a, "Connector '%s' needs your own account, opened with the "
                                                     "token of this request.", c->name), e);
    switch (authz_vault_unlock(a, who, who->bearer, priv, e)) {
    case -1:
        return -1;
    case 0:
        return need_connect(a, c, gh_arena_printf(a, "Connector '%s' needs your own account, and this token cannot "
                                                     "open your connections (made where your key was not at hand: "
                                                     "use another token, or Reset lost key).", c->name), e);
    }
    if (conn_tokens(a, c, who->user_id, priv, force_refresh, &tok, &touch, e) < 0)
        goto out;
    h = gh_arena_alloc(a, 2 * sizeof(*h));
    if (h == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "arena full");
        goto out;
    }
    h[0].name = "Authorization";
    h[0].value = gh_arena_printf(a, "Bearer %s", gh_json_str(tok, "a"));
    *out = h;
    *n = 1;
    /* read with the connection: no statement per call, one a minute */
    if (touch)
        db_query(a, &(struct gh_err){0}, "UPDATE vault_connections SET last_used_at = now() WHERE agent_id = $1"
                 " AND user_id = $2 AND connector_id = $3"
                 " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                 3, c->agent_id, who->user_id, c->id);
    rc = 0;
out:
    gh_wipe(priv, sizeof(priv));
    if (tok)
        json_object_clear(tok);
    return rc;
}

/* ---- NOTIFY gw_connections "<agent id>:<user id>": that member's sessions
 * fetch their lists again and hear list_changed. */

static void
member_changed(struct gw_session *s, void *ctx)
{
    const char *user_id = ctx;

    if (s->user_id == NULL || strcmp(s->user_id, user_id))
        return;
    gw_agg_invalidate(s, NULL);
    gw_notify_session(s, "notifications/tools/list_changed", NULL);
    gw_notify_session(s, "notifications/prompts/list_changed", NULL);
    gw_notify_session(s, "notifications/resources/list_changed", NULL);
}

static void
on_connections(const char *channel, const char *payload, void *ctx)
{
    char agent_id[40], user_id[40];
    const char *colon = payload ? strchr(payload, ':') : NULL;

    (void)channel;
    (void)ctx;
    if (colon == NULL || colon - payload >= (long)sizeof(agent_id) || strlen(colon + 1) >= sizeof(user_id))
        return;
    snprintf(agent_id, sizeof(agent_id), "%.*s", (int)(colon - payload), payload);
    snprintf(user_id, sizeof(user_id), "%s", colon + 1);
    gw_session_each(agent_id, member_changed, user_id);
}

int
gw_connection_watch(void)
{
    return db_listen(GW_CHANNEL_CONNECTIONS, on_connections, NULL);
}

const char *
gw_connection_needed(struct gh_arena *a, const struct authz_credential *who, const char *name)
{
    struct gw_connector *cs;
    struct gw_header *h;
    struct gh_err e = {0};
    int n, nh;

    if (who == NULL || gw_connectors_for_agent(a, who->agent.id, &cs, &n, &e) < 0)
        return NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(cs[i].name, name) && gw_auth_per_member(cs[i].auth_mode) &&
            gw_connection_headers(a, &cs[i], who, false, &h, &nh, &e) < 0 && !strcmp(e.code, "connection_needed"))
            return gh_arena_strdup(a, e.msg);
    return NULL;
}
