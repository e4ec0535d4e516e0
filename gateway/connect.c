/*
 * gateway/connect.c — members' own upstream accounts: the page
 * /agents/{slug}/connections (every enabled connector with its status,
 * Connect / Reconnect / Disconnect, Reset lost key), the authorization
 * code flow with PKCE S256 against an oauth-app connector's provider, and
 * its callback /connect/callback.
 *
 * The state is bound to the browser session that started it, single use
 * and good for ten minutes (connect_states, migration 083).  The tokens
 * the provider returns are sealed at once to the membership's vault key
 * (authz_vault_seal, docs/VAULT.md): this server cannot open them again
 * without a credential of the member.  Nothing of the tokens, the code or
 * the verifier is logged or shown.
 */
#include "gateway/gw_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_TTL      "600"
#define FETCH_MAX      (256 * 1024)
#define FETCH_TIMEOUT  10000L

/* ------------------------------------------------------------ the provider */

json_t *
gw_oauth_fetch(struct gh_arena *a, const char *url, const char *form, const char *bearer, long *status,
               struct gh_err *e)
{
    struct authz_fetch f = { .url = url, .form = form, .bearer = bearer, .who = "provider",
                             .timeout_ms = FETCH_TIMEOUT, .max_bytes = FETCH_MAX };

    return authz_fetch_json(a, &f, status, e);
}

char *
gw_connection_aad(struct gh_arena *a, const char *agent_id, const char *user_id, const char *connector_id)
{
    return gh_arena_printf(a, "gw_connection:v1:%s:%s:%s", agent_id, user_id, connector_id);
}

int
gw_connection_store_on(struct db_conn *dc, struct gh_arena *a, const char *agent_id, const char *user_id,
                       const char *connector_id, json_t *tok, const char *account, struct gh_err *e)
{
    static const char SQL_UPSERT[] =
        "INSERT INTO vault_connections (agent_id, user_id, connector_id, sealed, account, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 <> '' THEN now() + make_interval(secs => $6::int) END)"
        " ON CONFLICT (agent_id, user_id, connector_id) DO UPDATE SET sealed = EXCLUDED.sealed,"
        "   account = coalesce(EXCLUDED.account, vault_connections.account),"
        "   expires_at = EXCLUDED.expires_at, needs_reconnect = false,"
        "   connected_at = CASE WHEN $7 THEN now() ELSE vault_connections.connected_at END";
    const char *at = gh_json_str(tok, "access_token"), *rt = gh_json_str(tok, "refresh_token");
    json_t *exp = json_object_get(tok, "expires_in"), *pack;
    char *pt, *sealed, when[24] = "";

    if (at == NULL || !*at)
        return gh_err_set(e, 502, "bad_gateway", "The provider sent no access token.",
                          "token response without access_token");
    if (json_is_integer(exp) && json_integer_value(exp) > 0)
        snprintf(when, sizeof(when), "%lld", (long long)json_integer_value(exp));
    pack = json_pack("{s:s,s:s?}", "a", at, "r", rt);
    pt = pack ? json_dumps(pack, JSON_COMPACT) : NULL;
    json_decref(pack);          /* its copies of the tokens go with it; the dump is wiped below */
    if (pt == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "json");
    sealed = authz_vault_seal(a, agent_id, user_id, gw_connection_aad(a, agent_id, user_id, connector_id),
                              pt, strlen(pt), e);
    gh_wipe(pt, strlen(pt));
    free(pt);
    if (sealed == NULL)
        return -1;
    {
        const char *p[] = { agent_id, user_id, connector_id, sealed, account, when, account ? "true" : "false" };
        if (!(dc ? db_execv(dc, a, e, SQL_UPSERT, 7, p) : db_query(a, e, SQL_UPSERT, 7, p[0], p[1], p[2], p[3], p[4],
                                                                    p[5], p[6])))
            return -1;
    }
    return 0;
}

int
gw_connection_store(struct gh_arena *a, const char *agent_id, const char *user_id, const char *connector_id,
                    json_t *tok, const char *account, struct gh_err *e)
{
    return gw_connection_store_on(NULL, a, agent_id, user_id, connector_id, tok, account, e);
}

/* A name for the connected account from the provider's user info: the
 * first of email, login, name, preferred_username, sub; NULL when there
 * is none (the connection works without it). */
static const char *
account_name(struct gh_arena *a, const struct gw_connector_auth *app, const char *access)
{
    static const char *const keys[] = { "email", "login", "name", "preferred_username", "sub" };
    struct gh_err e = {0};
    long status;
    json_t *j;

    if (app->userinfo_url == NULL)
        return NULL;
    j = gw_oauth_fetch(a, app->userinfo_url, NULL, access, &status, &e);
    if (j == NULL || status != 200)
        return NULL;
    for (size_t i = 0; i < GH_ARRAY_LEN(keys); i++) {
        const char *v = gh_json_str(j, keys[i]);
        if (v && *v && gh_text_ok(v, strlen(v)) && strlen(v) <= 200)
            return gh_arena_strdup(a, v);
    }
    return NULL;
}

void
gw_connections_changed(const char *agent_id, const char *user_id)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};

    if (a && db_notify(GW_CHANNEL_CONNECTIONS, gh_arena_printf(a, "%s:%s", agent_id, user_id), &e) < 0)
        GH_LOG(WARN, "gw_notify", "connections of user %s changed, NOTIFY failed: %s", user_id, e.detail);
    gh_arena_free(a);
}

/* ------------------------------------------------------------ the page */

static const char *
esc(struct gh_arena *a, const char *s)
{
    return s ? gh_html_escape(a, s) : "";
}

static char *
button(struct web_req *r, const char *slug, const char *action, const char *connector, const char *label,
       const char *cls)
{
    struct gh_arena *a = web_arena(r);

    return gh_arena_printf(a,
        "<form method=\"post\" action=\"/agents/%s/connections\" class=\"inline\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"action\" value=\"%s\">"
        "<input type=\"hidden\" name=\"connector\" value=\"%s\">"
        "<button type=\"submit\" class=\"%s\" data-action=\"%s\" data-connector=\"%s\">%s</button></form>",
        esc(a, slug), web_csrf_token(r), action, esc(a, connector), cls, action, esc(a, connector), label);
}

static char *
connector_row(struct web_req *r, struct authz_agent *ag, const struct gw_connector *c, PGresult *mine)
{
    struct gh_arena *a = web_arena(r);
    int row = -1;

    if (!gw_auth_per_member(c->auth_mode))
        return gh_arena_printf(a, "<tr data-connector=\"%s\"><td><code>%s</code></td>"
                                  "<td colspan=\"3\" class=\"muted\">Shared: no account of yours is needed.</td><td></td></tr>",
                               esc(a, c->name), esc(a, c->name));
    for (int i = 0; i < PQntuples(mine); i++)
        if (!strcmp(db_val(mine, i, 0), c->id))
            row = i;
    if (row < 0)
        return gh_arena_printf(a, "<tr data-connector=\"%s\"><td><code>%s</code></td><td>Not connected</td>"
                                  "<td></td><td></td><td>%s</td></tr>", esc(a, c->name), esc(a, c->name),
                               button(r, ag->slug, "connect", c->name, "Connect", ""));
    return gh_arena_printf(a,
        "<tr data-connector=\"%s\"><td><code>%s</code></td><td>%s%s%s</td><td>%s</td><td>%s</td><td>%s%s</td></tr>",
        esc(a, c->name), esc(a, c->name),
        db_bool(mine, row, 4) ? "<span class=\"error\">Needs reconnect</span>" : "Connected",
        db_val(mine, row, 1) ? " as " : "", esc(a, db_val(mine, row, 1)), db_val(mine, row, 2),
        db_val(mine, row, 3) ? db_val(mine, row, 3) : "never",
        button(r, ag->slug, "connect", c->name, "Reconnect", "secondary"),
        button(r, ag->slug, "disconnect", c->name, "Disconnect", "danger"));
}

static int
connections_page(struct web_req *r, struct authz_user *u, struct authz_agent *ag, int status,
                 const char *error, const char *notice)
{
    struct gh_arena *a = web_arena(r);
    struct gw_connector *cs;
    struct gh_err e = {0};
    PGresult *mine, *key;
    char *rows = gh_arena_strdup(a, "");
    int n;

    if (gw_connectors_for_agent(a, ag->id, &cs, &n, &e) < 0)
        return web_reply_err(r, &e);
    mine = db_query(a, &e,
        "SELECT connector_id, account, to_char(connected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
        "       to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), needs_reconnect"
        "  FROM vault_connections WHERE agent_id = $1 AND user_id = $2", 2, ag->id, u->id);
    key = db_query(a, &e, "SELECT 1 FROM vault_keys WHERE agent_id = $1 AND user_id = $2", 2, ag->id, u->id);
    if (mine == NULL || key == NULL)
        return web_reply_err(r, &e);
    for (int i = 0; i < n; i++) {
        struct gw_connector_auth app;
        if (cs[i].unavailable)
            continue;
        rows = gh_arena_printf(a, "%s%s", rows, connector_row(r, ag, &cs[i], mine));
        /* Connect's answer redirects the form on to the provider: CSP
         * form-action must name it, or the browser stops there */
        if (gw_auth_per_member(cs[i].auth_mode) && gw_connector_auth_get(a, ag->slug, cs[i].name, &app, &e) == 0) {
            const char *to = strcmp(cs[i].auth_mode, "oauth-app") ? app.disc.authorize_url : app.authorize_url;
            if (to)
                web_csp_form_target(r, to);
        }
        gh_err_clear(&e);
    }
    return web_reply_html(r, status, authz_page(r, u, "Connections", gh_arena_printf(a,
        "<div class=\"card\"><h1>Your connections on %s</h1>"
        "<p class=\"muted\">Connect your own account at each service; the agent's calls to it go out as you. "
        "Your tokens are sealed with a key only your own credentials open: nobody else, administrators "
        "included, can read them.</p>%s%s%s"
        "<table><thead><tr><th>Connector</th><th>Status</th><th>Connected (UTC)</th><th>Last used</th><th></th></tr>"
        "</thead><tbody>%s</tbody></table>%s</div>"
        "<div class=\"card\"><h2>Reset lost key</h2><p>If none of your tokens or connected apps for this agent "
        "works any more, your connections cannot be opened. Resetting deletes them all and a new key is made "
        "with your next token or app: then connect again.</p>%s</div>",
        esc(a, ag->name),
        error ? gh_arena_printf(a, "<p class=\"error\" role=\"alert\">%s</p>", esc(a, error)) : "",
        notice ? gh_arena_printf(a, "<p class=\"notice\">%s</p>", esc(a, notice)) : "",
        PQntuples(key) ? "" : "<p class=\"notice\">Create a personal access token or connect a client for "
                              "this agent first: that makes the key your connections are sealed with.</p>",
        rows, n ? "" : "<p class=\"muted\">This agent has no connectors.</p>",
        button(r, ag->slug, "reset", "", "Reset lost key", "danger"))));
}

/* The signed-in member and the agent of the path, or NULL when a page was sent. */
static struct authz_agent *
member_agent(struct web_req *r, struct authz_user **u)
{
    struct gh_arena *a = web_arena(r);
    struct authz_agent *ag;
    struct gh_err e = {0};

    if ((*u = authz_require_login(r)) == NULL)
        return NULL;
    ag = authz_agent_by_slug(a, web_path_param(r, 0), &e);
    if (ag != NULL) {
        switch (authz_member_ok(a, (*u)->id, ag->id, &e)) {
        case 1: return ag;
        case 0: gh_err_set(&e, 403, "forbidden", "You are not a member of this agent.", NULL); break;
        }
    }
    if (e.status >= 500)
        web_reply_err(r, &e);
    else
        web_reply_html(r, e.status ? e.status : 404, authz_page(r, *u, "Connections", gh_arena_printf(a,
            "<div class=\"card\"><h1>Connections</h1><p class=\"error\" role=\"alert\">%s</p></div>",
            e.status == 403 ? "You are not a member of this agent." : "There is no agent at this address.")));
    return NULL;
}

static int
get_connections(struct web_req *r)
{
    struct authz_user *u;
    struct authz_agent *ag = member_agent(r, &u);
    const char *done = web_query(r, "connected");

    if (ag == NULL)
        return 0;
    return connections_page(r, u, ag, 200, NULL,
                            done ? gh_arena_printf(web_arena(r), "Connected %s.", done) : NULL);
}

/* ------------------------------------------------------------ connect */

static int
start_connect(struct web_req *r, struct authz_user *u, struct authz_agent *ag, const struct gw_connector *c)
{
    struct gh_arena *a = web_arena(r);
    struct gw_connector_auth app;
    struct gh_err e = {0};
    unsigned char digest[32];
    char *state = gh_token_hex(a, "", 32), *verifier = gh_token_hex(a, "", 32), *secret = NULL, *sealed, *url;
    char hash[65], sess[65];

    PGresult *key;

    if (gw_connector_oauth_app(a, c->id, &app, &secret, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : connections_page(r, u, ag, e.status, e.msg, NULL);
    if (secret)
        gh_wipe(secret, strlen(secret));
    /* the tokens are sealed to the member's key: without one, nothing to seal to */
    key = db_query(a, &e, "SELECT 1 FROM vault_keys WHERE agent_id = $1 AND user_id = $2", 2, ag->id, u->id);
    if (key == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(key) == 0)
        return connections_page(r, u, ag, 409, "Create a personal access token or connect a client for this agent "
                                "first: your connections are sealed with a key only your credentials open.", NULL);
    if (state == NULL || verifier == NULL || !authz_session_hash(r, sess)) {
        gh_err_set(&e, 500, "server_error", "internal error", "no entropy or session");
        return web_reply_err(r, &e);
    }
    gh_sha256_hex(state, hash);
    gh_sha256(verifier, strlen(verifier), digest);
    sealed = gh_seal(a, verifier, strlen(verifier), hash);
    if (sealed == NULL ||
        !db_query(a, &e, "DELETE FROM connect_states WHERE created_at < now() - interval '1 hour'", 0) ||
        !db_query(a, &e, "INSERT INTO connect_states (state_hash, session_hash, user_id, agent_id, connector_id,"
                         " verifier_sealed) VALUES ($1, $2, $3, $4, $5, $6)",
                  6, hash, sess, u->id, ag->id, c->id, sealed)) {
        gh_err_set(&e, 500, "server_error", "internal error", "storing the connect state failed");
        return web_reply_err(r, &e);
    }
    url = gh_arena_printf(a, "%s%cresponse_type=code&client_id=%s&redirect_uri=%s&state=%s"
                             "&code_challenge=%s&code_challenge_method=S256%s%s%s%s",
                          app.authorize_url, strchr(app.authorize_url, '?') ? '&' : '?',
                          gh_url_encode(a, app.client_id), gh_url_encode(a, gh_config_url(a, "/connect/callback")),
                          state, gh_b64url_encode(a, digest, sizeof(digest)),
                          app.scopes ? "&scope=" : "", app.scopes ? gh_url_encode(a, app.scopes) : "",
                          app.resource ? "&resource=" : "", app.resource ? gh_url_encode(a, app.resource) : "");
    gh_wipe(verifier, strlen(verifier));
    GH_LOG(INFO, "connect_started", "user %s connects connector %s of agent %s", u->id, c->name, ag->slug);
    return web_redirect(r, 303, url);
}

static int
post_connections(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u;
    struct authz_agent *ag = member_agent(r, &u);
    const char *action = web_form(r, "action"), *name = web_form(r, "connector");
    struct gw_connector *cs, *c = NULL;
    struct gh_err e = {0};
    PGresult *res;
    int n;

    if (ag == NULL)
        return 0;
    if (action && !strcmp(action, "reset")) {
        if (authz_vault_reset(ag->id, u->id, &e) < 0)
            return web_reply_err(r, &e);
        gw_connections_changed(ag->id, u->id);
        return connections_page(r, u, ag, 200, NULL, "Your key and connections of this agent are deleted: create "
                                "a token or connect a client, then connect your services again.");
    }
    if (gw_connectors_for_agent(a, ag->id, &cs, &n, &e) < 0)
        return web_reply_err(r, &e);
    for (int i = 0; name && i < n; i++)
        if (!strcmp(cs[i].name, name))
            c = &cs[i];
    if (c == NULL || !gw_auth_per_member(c->auth_mode))
        return connections_page(r, u, ag, 400, "This connector does not take an account of yours.", NULL);
    if (action && !strcmp(action, "connect"))
        return start_connect(r, u, ag, c);
    if (action == NULL || strcmp(action, "disconnect"))
        return connections_page(r, u, ag, 400, "Unknown action.", NULL);
    res = db_query(a, &e, "DELETE FROM vault_connections WHERE agent_id = $1 AND user_id = $2 AND connector_id = $3"
                          " RETURNING 1", 3, ag->id, u->id, c->id);
    if (res == NULL)
        return web_reply_err(r, &e);
    GH_LOG(INFO, "connection_deleted", "user %s disconnected connector %s of agent %s", u->id, c->name, ag->slug);
    gw_connections_changed(ag->id, u->id);
    return connections_page(r, u, ag, 200, NULL, PQntuples(res) ? gh_arena_printf(a, "Disconnected %s.", c->name)
                                                                 : "It was not connected.");
}

/* ------------------------------------------------------------ the callback */

struct pending {
    const char *agent_id, *slug, *connector_id, *connector;
    char       *verifier;
};

/* Takes the connect the state names, once: this session's, ten minutes old at most. */
static int
pending_take(struct web_req *r, struct authz_user *u, struct pending *p, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *state = web_query(r, "state");
    unsigned char *pt;
    char hash[65], sess[65];
    PGresult *res;
    size_t n;

    if (state == NULL || strlen(state) != 64 || !authz_session_hash(r, sess))
        return gh_err_set(e, 400, "invalid_request", "This connection attempt has expired or was already used. "
                          "Start again from your connections page.", "connect callback without a valid state");
    gh_sha256_hex(state, hash);
    res = db_query(a, e,
        "DELETE FROM connect_states s USING agents ag, connectors c"
        " WHERE s.state_hash = $1 AND ag.id = s.agent_id AND c.id = s.connector_id"
        " RETURNING s.session_hash = $2 AND s.user_id = $3::uuid,"
        "           s.created_at > now() - make_interval(secs => $4::int), s.verifier_sealed, s.agent_id, ag.slug,"
        "           s.connector_id, c.name", 4, hash, sess, u->id, STATE_TTL);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0 || !db_bool(res, 0, 1))
        return gh_err_set(e, 400, "invalid_request", "This connection attempt has expired or was already used. "
                          "Start again from your connections page.", "connect callback: unknown, used or expired state");
    if (!db_bool(res, 0, 0))
        return gh_err_set(e, 400, "invalid_request", "This connection attempt was started in another browser "
                          "session. Start again from your connections page.", "connect callback: another session's state");
    if (gh_unseal(a, db_val(res, 0, 2), hash, &pt, &n) < 0)
        return gh_err_set(e, 500, "server_error", "internal error", "connect verifier does not open");
    p->verifier = (char *)pt;
    p->agent_id = gh_arena_strdup(a, db_val(res, 0, 3));
    p->slug = gh_arena_strdup(a, db_val(res, 0, 4));
    p->connector_id = gh_arena_strdup(a, db_val(res, 0, 5));
    p->connector = gh_arena_strdup(a, db_val(res, 0, 6));
    return 0;
}

static int
exchange(struct gh_arena *a, const struct pending *p, const char *code, const char *user_id, struct gh_err *e)
{
    struct gw_connector_auth app;
    char *secret = NULL, *form;
    const char *account, *perr;
    json_t *tok;
    long status;
    int rc = -1;

    if (gw_connector_oauth_app(a, p->connector_id, &app, &secret, e) < 0)
        return -1;
    /* client_secret_post: what GitHub, Slack, Linear and Google all take;
     * a registration without a secret is a public client (PKCE alone) */
    form = gh_arena_printf(a, "grant_type=authorization_code&code=%s&redirect_uri=%s&code_verifier=%s"
                              "&client_id=%s%s%s%s%s", gh_url_encode(a, code),
                           gh_url_encode(a, gh_config_url(a, "/connect/callback")), p->verifier,
                           gh_url_encode(a, app.client_id), secret ? "&client_secret=" : "",
                           secret ? gh_url_encode(a, secret) : "", app.resource ? "&resource=" : "",
                           app.resource ? gh_url_encode(a, app.resource) : "");
    tok = gw_oauth_fetch(a, app.token_url, form, NULL, &status, e);
    gh_wipe(form, strlen(form));
    if (secret)
        gh_wipe(secret, strlen(secret));
    if (tok == NULL)
        goto out;
    if ((perr = gh_json_str(tok, "error")) != NULL || status != 200) {
        gh_err_set(e, 502, "bad_gateway", "", "token endpoint: HTTP %ld, error %s", status,
                   perr && gh_text_ok(perr, strlen(perr)) ? perr : "(none)");
        snprintf(e->msg, sizeof(e->msg), "The provider refused the connection (%s). Try again.",
                 perr && strlen(perr) < 64 && gh_text_ok(perr, strlen(perr)) ? perr : "no access token");
        goto out;
    }
    account = gh_json_str(tok, "access_token") ? account_name(a, &app, gh_json_str(tok, "access_token")) : NULL;
    rc = gw_connection_store(a, p->agent_id, user_id, p->connector_id, tok, account, e);
out:
    if (tok)
        json_object_clear(tok);
    return rc;
}

static int
callback_fail(struct web_req *r, struct authz_user *u, const struct gh_err *e, const char *slug)
{
    struct gh_arena *a = web_arena(r);

    if (e->detail[0])
        GH_LOG(INFO, "connect_failed", "user %s: %s", u->id, e->detail);
    return web_reply_html(r, e->status ? e->status : 400, authz_page(r, u, "Connection failed", gh_arena_printf(a,
        "<div class=\"card\"><h1>Connection failed</h1><p class=\"error\" role=\"alert\">%s</p>%s</div>",
        esc(a, e->msg[0] ? e->msg : "The connection failed."),
        slug ? gh_arena_printf(a, "<p><a href=\"/agents/%s/connections\">Back to your connections</a></p>",
                               esc(a, gh_url_encode(a, slug))) : "")));
}

static int
get_callback(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u;
    const char *code = web_query(r, "code"), *perr = web_query(r, "error");
    struct pending p = {0};
    struct gh_err e = {0};

    if (authz_offload(r, get_callback))
        return 0;
    if ((u = authz_require_login(r)) == NULL)
        return 0;
    if (pending_take(r, u, &p, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : callback_fail(r, u, &e, NULL);
    if (perr) {
        gh_err_set(&e, 400, "access_denied", "", "provider error on callback");
        snprintf(e.msg, sizeof(e.msg), "The provider did not connect your account (%s).",
                 strlen(perr) < 64 && gh_text_ok(perr, strlen(perr)) ? perr : "error");
    } else if (code == NULL || !*code) {
        gh_err_set(&e, 400, "invalid_request", "The provider sent no authorization code.", "callback without code");
    }
    if (gh_err_isset(&e) || exchange(a, &p, code, u->id, &e) < 0) {
        gh_wipe(p.verifier, strlen(p.verifier));
        return e.status >= 500 && e.status != 502 ? web_reply_err(r, &e) : callback_fail(r, u, &e, p.slug);
    }
    gh_wipe(p.verifier, strlen(p.verifier));
    GH_LOG(INFO, "connection_made", "user %s connected connector %s of agent %s", u->id, p.connector, p.slug);
    gw_connections_changed(p.agent_id, u->id);
    return web_redirect(r, 303, gh_arena_printf(a, "/agents/%s/connections?connected=%s", gh_url_encode(a, p.slug),
                                                gh_url_encode(a, p.connector)));
}

int
gw_connect_routes(void)
{
    web_route("GET", "/agents/*/connections", WEB_PAGE, get_connections);
    web_route("POST", "/agents/*/connections", WEB_PAGE, post_connections);
    web_route("GET", "/connect/callback", WEB_PAGE, get_callback);
    if (gw_discovery_routes() < 0)
        return -1;
    return gw_connection_watch();
}
