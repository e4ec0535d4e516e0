/*
 * gateway/connector_auth.c — how a connector authenticates upstream:
 * none, static (the sealed headers of connector.c), oauth-app (each
 * member's own account through the provider's OAuth app), its presets, or
 * oauth-discovery (each member's own account at an upstream that does MCP
 * authorization itself: discovered and registered on saving, discovery.c),
 * the checks made on saving, and the settings page
 * /admin/connectors/auth?agent=…&name=… (admins and the agent's owners).
 *
 * The OAuth app's client secret is write-only: sealed under the server key
 * with the connector id and token endpoint as associated data (a secret
 * copied to another row, or a token URL changed in the database alone,
 * does not open), never shown, listed or logged; a form left with the
 * secret empty keeps the stored one.
 */
#include "gateway/gw_int.h"
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct preset {
    const char *name, *label, *authorize, *token, *userinfo, *scopes;
};

/* Endpoints as each provider documents them for its OAuth apps. */
static const struct preset PRESETS[] = {
    { "github", "GitHub", "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token",
      "https://api.github.com/user", "repo read:user" },
    { "slack", "Slack", "https://slack.com/oauth/v2_user/authorize", "https://slack.com/api/oauth.v2.user.access",
      "https://slack.com/api/openid.connect.userInfo", "channels:read chat:write users:read" },
    { "linear", "Linear", "https://linear.app/oauth/authorize", "https://api.linear.app/oauth/token",
      NULL, "read write" },
    { "google", "Google", "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token",
      "https://openidconnect.googleapis.com/v1/userinfo", "openid email profile" },
};

static const struct preset *
preset_find(const char *name)
{
    for (size_t i = 0; name && i < GH_ARRAY_LEN(PRESETS); i++)
        if (!strcmp(PRESETS[i].name, name))
            return &PRESETS[i];
    return NULL;
}

static char *
secret_aad(struct gh_arena *a, const char *connector_id, const char *token_url)
{
    return gh_arena_printf(a, "gw_connector_oauth:v1:%s:%s", connector_id, token_url);
}

/* a registration's client secret: bound to the connector, the token
 * endpoint and the resource it was registered for */
static char *
disc_aad(struct gh_arena *a, const char *connector_id, const char *token_url, const char *resource)
{
    return gh_arena_printf(a, "gw_connector_disc:v1:%s:%s:%s", connector_id, token_url, resource);
}

bool
gw_auth_per_member(const char *mode)
{
    return mode && (!strcmp(mode, "oauth-app") || !strcmp(mode, "oauth-discovery"));
}

/* ---- checks */

/* An OAuth endpoint: what gw_connector_url_check accepts, over https, or
 * http to this machine only (a provider under test): the token endpoint
 * receives the client secret. */
static int
endpoint_check(const char *what, const char *url, struct gh_err *e)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL;
    bool ok;

    if (gw_connector_url_check(url, e) < 0) {
        snprintf(e->msg, sizeof(e->msg), "The %s must be an https URL with a host.", what);
        return -1;
    }
    u = curl_url();
    ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
         (!strcasecmp(scheme, "https") || !strcmp(host, "127.0.0.1") || !strcmp(host, "[::1]") ||
          !strcasecmp(host, "localhost"));
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    if (!ok) {
        gh_err_set(e, 400, "invalid_request", "", "endpoint not https");
        snprintf(e->msg, sizeof(e->msg), "The %s must use https (http only on this machine).", what);
        return -1;
    }
    return 0;
}

/* Printable ASCII without spaces (client ids and secrets as providers issue them). */
static bool
token_text(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* RFC 6749 3.3: scope tokens of NQCHAR separated by single spaces. */
static bool
scopes_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n > 512)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' ? (i == 0 || i + 1 == n || s[i + 1] == ' ') : (c < 0x21 || c == '"' || c == '\\' || c >= 0x7f))
            return false;
    }
    return true;
}

static const char *
blank_null(const char *s)
{
    return s && *s ? s : NULL;
}

/* Fills what the preset knows into the empty fields and checks the whole. */
static int
auth_check(struct gw_connector_auth *in, bool secret_stored, struct gh_err *e)
{
    const struct preset *p = NULL;

    if (in->mode == NULL || (strcmp(in->mode, "none") && strcmp(in->mode, "static") && strcmp(in->mode, "oauth-app") &&
                             strcmp(in->mode, "oauth-discovery")))
        return gh_err_set(e, 400, "invalid_request",
                          "The authentication must be none, static, oauth-app or oauth-discovery.", NULL);
    if (strcmp(in->mode, "oauth-app"))
        return 0;
    in->preset = blank_null(in->preset);
    if (in->preset && (p = preset_find(in->preset)) == NULL)
        return gh_err_set(e, 400, "invalid_request",
                          "Unknown preset: choose github, slack, linear or google, or enter the endpoints.", NULL);
    if (p) {
        in->authorize_url = blank_null(in->authorize_url) ? in->authorize_url : p->authorize;
        in->token_url = blank_null(in->token_url) ? in->token_url : p->token;
        in->userinfo_url = blank_null(in->userinfo_url) ? in->userinfo_url : p->userinfo;
        in->scopes = blank_null(in->scopes) ? in->scopes : p->scopes;
    }
    in->userinfo_url = blank_null(in->userinfo_url);
    in->scopes = blank_null(in->scopes);
    if (!token_text(in->client_id, 256))
        return gh_err_set(e, 400, "invalid_request", "Enter the OAuth app's client ID (no spaces).", NULL);
    in->client_secret = blank_null(in->client_secret);
    if (in->client_secret ? !token_text(in->client_secret, 512) : !secret_stored)
        return gh_err_set(e, 400, "invalid_request", "Enter the OAuth app's client secret (no spaces).", NULL);
    if (blank_null(in->authorize_url) == NULL || blank_null(in->token_url) == NULL)
        return gh_err_set(e, 400, "invalid_request",
                          "Enter the authorization and token endpoints, or choose a preset.", NULL);
    if (endpoint_check("authorization endpoint", in->authorize_url, e) < 0 ||
        endpoint_check("token endpoint", in->token_url, e) < 0 ||
        (in->userinfo_url && endpoint_check("user info endpoint", in->userinfo_url, e) < 0))
        return -1;
    if (!scopes_ok(in->scopes))
        return gh_err_set(e, 400, "invalid_request",
                          "Scopes are words separated by single spaces (no quotes or backslashes).", NULL);
    return 0;
}

/* ---- the row */

static const char SQL_AUTH[] =
    "SELECT c.id, c.auth_mode, c.oauth_preset, c.oauth_client_id, c.oauth_secret_sealed, c.oauth_authorize_url,"
    "       c.oauth_token_url, c.oauth_userinfo_url, c.oauth_scopes, c.disc_resource, c.disc_issuer, c.disc_kind,"
    "       c.disc_client_id, c.disc_secret_sealed, c.disc_authorize_url, c.disc_token_url, c.disc_scopes, c.url"
    "  FROM connectors c JOIN agents ag ON ag.id = c.agent_id";

static void
auth_fill(struct gh_arena *a, PGresult *res, struct gw_connector_auth *out)
{
    memset(out, 0, sizeof(*out));
    out->mode = gh_arena_strdup(a, db_val(res, 0, 1));
    out->preset = db_val(res, 0, 2) ? gh_arena_strdup(a, db_val(res, 0, 2)) : NULL;
    out->client_id = db_val(res, 0, 3) ? gh_arena_strdup(a, db_val(res, 0, 3)) : NULL;
    out->has_secret = db_val(res, 0, 4) != NULL;
    out->authorize_url = db_val(res, 0, 5) ? gh_arena_strdup(a, db_val(res, 0, 5)) : NULL;
    out->token_url = db_val(res, 0, 6) ? gh_arena_strdup(a, db_val(res, 0, 6)) : NULL;
    out->userinfo_url = db_val(res, 0, 7) ? gh_arena_strdup(a, db_val(res, 0, 7)) : NULL;
    out->scopes = db_val(res, 0, 8) ? gh_arena_strdup(a, db_val(res, 0, 8)) : NULL;
    out->resource = db_val(res, 0, 9) ? gh_arena_strdup(a, db_val(res, 0, 9)) : NULL;
    out->disc.issuer = db_val(res, 0, 10) ? gh_arena_strdup(a, db_val(res, 0, 10)) : NULL;
    out->disc.kind = db_val(res, 0, 11) ? gh_arena_strdup(a, db_val(res, 0, 11)) : NULL;
    out->disc.client_id = db_val(res, 0, 12) ? gh_arena_strdup(a, db_val(res, 0, 12)) : NULL;
    out->disc.authorize_url = db_val(res, 0, 14) ? gh_arena_strdup(a, db_val(res, 0, 14)) : NULL;
    out->disc.token_url = db_val(res, 0, 15) ? gh_arena_strdup(a, db_val(res, 0, 15)) : NULL;
    out->disc.scopes = db_val(res, 0, 16) ? gh_arena_strdup(a, db_val(res, 0, 16)) : NULL;
    out->url = gh_arena_strdup(a, db_val(res, 0, 17));
}

int
gw_connector_auth_get(struct gh_arena *a, const char *agent_slug, const char *name, struct gw_connector_auth *out,
                      struct gh_err *e)
{
    PGresult *res;

    if (gw_connector_name_check(name, e) < 0)
        return -1;
    res = db_query(a, e, gh_arena_printf(a, "%s WHERE ag.slug = $1 AND c.name = $2", SQL_AUTH), 2,
                   agent_slug ? agent_slug : "", name);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 404, "not_found", "no connector with this name on this agent", NULL);
    auth_fill(a, res, out);
    out->connector_id = gh_arena_strdup(a, db_val(res, 0, 0));
    return 0;
}

int
gw_connector_oauth_app(struct gh_arena *a, const char *connector_id, struct gw_connector_auth *out, char **secret,
                       struct gh_err *e)
{
    unsigned char *pt = NULL;
    size_t n = 0;
    PGresult *res = db_query(a, e, gh_arena_printf(a, "%s WHERE c.id = $1::uuid", SQL_AUTH), 1, connector_id);

    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0 || !gw_auth_per_member(db_val(res, 0, 1)))
        return gh_err_set(e, 404, "not_found", "This connector does not use per-member accounts.", NULL);
    auth_fill(a, res, out);
    out->connector_id = gh_arena_strdup(a, connector_id);
    *secret = NULL;
    if (!strcmp(out->mode, "oauth-discovery")) {
        /* what discovery registered stands in for the app */
        out->client_id = out->disc.client_id;
        out->authorize_url = out->disc.authorize_url;
        out->token_url = out->disc.token_url;
        out->scopes = out->disc.scopes;
        out->userinfo_url = NULL;
        if (db_val(res, 0, 13) == NULL)
            return 0;           /* a public client */
        if (gh_unseal(a, db_val(res, 0, 13), disc_aad(a, connector_id, out->token_url, out->resource), &pt, &n) < 0)
            return gh_err_set(e, 503, "temporarily_unavailable", "The connector's registration cannot be read.",
                              "registration secret of connector %s does not open", connector_id);
        *secret = (char *)pt;
        return 0;
    }
    out->resource = NULL;
    if (gh_unseal(a, db_val(res, 0, 4), secret_aad(a, connector_id, out->token_url), &pt, &n) < 0)
        return gh_err_set(e, 503, "temporarily_unavailable", "The connector's OAuth app secret cannot be read.",
                          "oauth secret of connector %s does not open", connector_id);
    *secret = (char *)pt;
    return 0;
}

/* Discovers the upstream's authorization and registers there (discovery.c),
 * then stores the registration: nothing is changed when any step fails. */
static int
discovery_set(struct gh_arena *a, const char *name, const char *agent_slug, const struct gw_connector_auth *cur,
              struct gh_err *e)
{
    struct gw_connector_auth d = {0};
    char *sealed = NULL;
    PGresult *res;
    int rc = -1;

    if (gw_discovery_run(a, cur->url, &d, e) < 0) {
        GH_LOG(INFO, "connector_discovery_failed", "connector %s of agent %s: %s", name, agent_slug, e->detail);
        goto out;
    }
    if (d.client_secret && (sealed = gh_seal(a, d.client_secret, strlen(d.client_secret),
                                             disc_aad(a, cur->connector_id, d.disc.token_url, d.resource))) == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "sealing the registration secret failed");
        goto out;
    }
    res = db_query(a, e,
        "UPDATE connectors SET auth_mode = 'oauth-discovery', updated_at = now(), disc_resource = $2,"
        "   disc_issuer = $3, disc_kind = $4, disc_client_id = $5, disc_secret_sealed = $6,"
        "   disc_authorize_url = $7, disc_token_url = $8, disc_scopes = $9"
        " WHERE id = $1::uuid AND url = $2 RETURNING agent_id",
        9, cur->connector_id, d.resource, d.disc.issuer, d.disc.kind, d.disc.client_id, sealed,
        d.disc.authorize_url, d.disc.token_url, d.disc.scopes);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 409, "conflict", "The connector changed while it was being saved: try again.", NULL);
        goto out;
    }
    GH_LOG(INFO, "connector_auth_set", "connector %s of agent %s: authentication oauth-discovery, issuer %s, "
           "registered by %s", name, agent_slug, d.disc.issuer, d.disc.kind);
    gw_connector_changed(db_val(res, 0, 0));
    rc = 0;
out:
    if (d.client_secret)
        gh_wipe((char *)d.client_secret, strlen(d.client_secret));
    return rc;
}

int
gw_connector_auth_set(struct gh_arena *a, const char *agent_slug, const char *name, struct gw_connector_auth *in,
                      struct gh_err *e)
{
    struct gw_connector_auth cur;
    unsigned char *pt = NULL;
    char *sealed = NULL;
    const char *agent_id;
    PGresult *res;
    size_t n = 0;
    bool oauth;
    int rc = -1;

    if (gw_connector_auth_get(a, agent_slug, name, &cur, e) < 0 || auth_check(in, cur.has_secret, e) < 0)
        goto out;
    if (!strcmp(in->mode, "oauth-discovery")) {
        rc = discovery_set(a, name, agent_slug, &cur, e);
        goto out;
    }
    oauth = !strcmp(in->mode, "oauth-app");
    if (oauth && in->client_secret) {
        sealed = gh_seal(a, in->client_secret, strlen(in->client_secret), secret_aad(a, cur.connector_id, in->token_url));
    } else if (oauth) {
        /* the stored secret, bound again to the (maybe new) token endpoint */
        res = db_query(a, e, "SELECT oauth_secret_sealed FROM connectors WHERE id = $1::uuid", 1, cur.connector_id);
        if (res == NULL || PQntuples(res) == 0 ||
            gh_unseal(a, db_val(res, 0, 0), secret_aad(a, cur.connector_id, cur.token_url), &pt, &n) < 0) {
            if (!gh_err_isset(e))
                gh_err_set(e, 400, "invalid_request", "The stored client secret cannot be read: enter it again.", NULL);
            goto out;
        }
        sealed = gh_seal(a, pt, n, secret_aad(a, cur.connector_id, in->token_url));
    }
    if (oauth && sealed == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "sealing the client secret failed");
        goto out;
    }
    /* other modes keep the app's settings, so switching back needs no retyping */
    res = db_query(a, e,
        "UPDATE connectors SET auth_mode = $2, updated_at = now(),"
        "   oauth_preset = CASE WHEN $3 THEN $4 ELSE oauth_preset END,"
        "   oauth_client_id = CASE WHEN $3 THEN $5 ELSE oauth_client_id END,"
        "   oauth_secret_sealed = CASE WHEN $3 THEN $6 ELSE oauth_secret_sealed END,"
        "   oauth_authorize_url = CASE WHEN $3 THEN $7 ELSE oauth_authorize_url END,"
        "   oauth_token_url = CASE WHEN $3 THEN $8 ELSE oauth_token_url END,"
        "   oauth_userinfo_url = CASE WHEN $3 THEN $9 ELSE oauth_userinfo_url END,"
        "   oauth_scopes = CASE WHEN $3 THEN $10 ELSE oauth_scopes END"
        " WHERE id = $1::uuid RETURNING agent_id",
        10, cur.connector_id, in->mode, oauth ? "true" : "false", in->preset, in->client_id, sealed,
        in->authorize_url, in->token_url, in->userinfo_url, in->scopes);
    if (res == NULL || PQntuples(res) == 0)
        goto out;
    agent_id = db_val(res, 0, 0);
    GH_LOG(INFO, "connector_auth_set", "connector %s of agent %s: authentication %s%s%s", name, agent_slug,
           in->mode, in->preset ? ", preset " : "", in->preset ? in->preset : "");
    gw_connector_changed(agent_id);
    rc = 0;
out:
    if (pt)
        gh_wipe(pt, n);
    return rc;
}

/* ---- /admin/connectors/auth */

static const char *
esc(struct gh_arena *a, const char *s)
{
    return s ? gh_html_escape(a, s) : "";
}

static char *
option(struct gh_arena *a, const char *value, const char *label, const char *selected)
{
    return gh_arena_printf(a, "<option value=\"%s\"%s>%s</option>", value,
                           selected && !strcmp(selected, value) ? " selected" : "", label);
}

/* What saving in oauth-discovery mode found, or how it works. */
static char *
discovered(struct gh_arena *a, const struct gw_connector_auth *f)
{
    if (f->disc.client_id == NULL)
        return "<p class=\"muted\" id=\"discovery\">When the upstream does MCP authorization itself, choose the "
               "discovered mode: saving finds its authorization server and registers Gatehouse there. "
               "There is no app to register.</p>";
    return gh_arena_printf(a,
        "<p id=\"discovery\">Authorization server <code>%s</code>; registered as <code>%s</code> (%s); "
        "tokens requested for <code>%s</code>%s%s%s. Saving in this mode again discovers and registers anew.</p>",
        esc(a, f->disc.issuer), esc(a, f->disc.client_id),
        f->disc.kind && !strcmp(f->disc.kind, "cimd") ? "client metadata document" : "dynamic registration",
        esc(a, gw_connector_url_shown(a, f->resource)), f->disc.scopes ? ", scopes <code>" : "",
        esc(a, f->disc.scopes), f->disc.scopes ? "</code>" : "");
}

static int
auth_page(struct web_req *r, struct authz_user *u, int status, const char *agent, const char *name,
          const struct gw_connector_auth *f, const char *error, const char *notice)
{
    struct gh_arena *a = web_arena(r);
    char *modes, *presets = option(a, "", "none (enter the endpoints)", f->preset ? f->preset : "");
    char *body;

    modes = gh_arena_printf(a, "%s%s%s%s", option(a, "none", "None", f->mode),
                            option(a, "static", "Static headers (one service account)", f->mode),
                            option(a, "oauth-app", "Each member's own account (OAuth app)", f->mode),
                            option(a, "oauth-discovery", "Each member's own account (the upstream's own "
                                   "authorization, discovered)", f->mode));
    for (size_t i = 0; i < GH_ARRAY_LEN(PRESETS); i++)
        presets = gh_arena_printf(a, "%s%s", presets, option(a, PRESETS[i].name, PRESETS[i].label, f->preset));
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>Connector %s: authentication</h1>"
        "<p class=\"muted\">Agent <code>%s</code>. <a href=\"/admin/connectors\">All connectors</a></p>%s%s"
        "<form method=\"post\" action=\"/admin/connectors/auth\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"agent\" value=\"%s\"><input type=\"hidden\" name=\"name\" value=\"%s\">"
        "<label for=\"mode\">Authentication</label><select id=\"mode\" name=\"mode\">%s</select>"
        "<h2>Discovered authorization</h2>%s"
        "<h2>OAuth app</h2>"
        "<p>Register this callback URL at the provider: <code id=\"callback-url\">%s</code></p>"
        "<label for=\"preset\">Preset</label><select id=\"preset\" name=\"preset\">%s</select>"
        "<label for=\"client_id\">Client ID</label>"
        "<input id=\"client_id\" type=\"text\" name=\"client_id\" value=\"%s\" maxlength=\"256\" autocomplete=\"off\">"
        "<label for=\"client_secret\">Client secret</label>"
        "<input id=\"client_secret\" type=\"password\" name=\"client_secret\" value=\"\" maxlength=\"512\" "
        "autocomplete=\"off\" placeholder=\"%s\">"
        "<label for=\"authorize_url\">Authorization endpoint</label>"
        "<input id=\"authorize_url\" type=\"url\" name=\"authorize_url\" value=\"%s\" placeholder=\"from the preset\">"
        "<label for=\"token_url\">Token endpoint</label>"
        "<input id=\"token_url\" type=\"url\" name=\"token_url\" value=\"%s\" placeholder=\"from the preset\">"
        "<label for=\"userinfo_url\">User info endpoint (optional: names the connected account)</label>"
        "<input id=\"userinfo_url\" type=\"url\" name=\"userinfo_url\" value=\"%s\">"
        "<label for=\"scopes\">Scopes</label>"
        "<input id=\"scopes\" type=\"text\" name=\"scopes\" value=\"%s\" maxlength=\"512\" placeholder=\"from the preset\">"
        "<p class=\"muted\">The client secret is stored encrypted and never shown again; leave it empty to keep it.</p>"
        "<div class=\"actions\"><button type=\"submit\">Save</button></div></form></div>",
        esc(a, name), esc(a, agent),
        error ? gh_arena_printf(a, "<p class=\"error\" role=\"alert\">%s</p>", esc(a, error)) : "",
        notice ? gh_arena_printf(a, "<p class=\"notice\">%s</p>", esc(a, notice)) : "",
        web_csrf_token(r), esc(a, agent), esc(a, name), modes, discovered(a, f),
        esc(a, gh_config_url(a, "/connect/callback")),
        presets, esc(a, f->client_id), f->has_secret ? "stored: leave empty to keep" : "",
        esc(a, f->authorize_url), esc(a, f->token_url), esc(a, f->userinfo_url), esc(a, f->scopes));
    return web_reply_html(r, status, authz_page(r, u, "Connector authentication", body));
}

static int
not_found(struct web_req *r, struct authz_user *u)
{
    return web_reply_html(r, 404, authz_page(r, u, "No such connector",
        "<div class=\"card\"><h1>No such connector</h1><p class=\"error\" role=\"alert\">"
        "There is no connector with this name on this agent. <a href=\"/admin/connectors\">All connectors</a></p></div>"));
}

/* The signed-in admin or owner of the agent, or NULL when a page was sent. */
static struct authz_user *
require_owner(struct web_req *r, const char *agent)
{
    struct authz_user *u = authz_require_login(r);
    struct authz_agent *ag;
    struct gh_err e = {0};

    if (u == NULL)
        return NULL;
    ag = agent ? authz_agent_by_slug(web_arena(r), agent, &e) : NULL;
    if (ag == NULL && e.status >= 500) {
        web_reply_err(r, &e);
        return NULL;
    }
    if (ag == NULL || authz_owner_check(web_arena(r), u, ag, &e) < 0) {
        if (e.status >= 500)
            web_reply_err(r, &e);
        else
            web_reply_html(r, 403, authz_page(r, u, "Not allowed", "<div class=\"card\"><h1>Not allowed</h1>"
                "<p class=\"error\" role=\"alert\">Only an owner of the agent or an administrator sets how its "
                "connectors authenticate.</p></div>"));
        return NULL;
    }
    return u;
}

static int
get_auth(struct web_req *r)
{
    const char *agent = web_query(r, "agent"), *name = web_query(r, "name");
    struct authz_user *u = require_owner(r, agent);
    struct gw_connector_auth f;
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    if (gw_connector_auth_get(web_arena(r), agent, name, &f, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : not_found(r, u);
    return auth_page(r, u, 200, agent, name, &f, NULL, web_query(r, "saved") ? "Saved." : NULL);
}

static int
post_auth(struct web_req *r)
{
    const char *agent = web_form(r, "agent"), *name = web_form(r, "name");
    struct authz_user *u;
    struct gh_arena *a = web_arena(r);
    struct gw_connector_auth f = {0}, cur;
    struct gh_err e = {0};
    size_t len = 0;
    int rc;

    if (authz_offload(r, post_auth))
        return 0;               /* discovery waits on the upstream and its authorization server */
    if ((u = require_owner(r, agent)) == NULL)
        return 0;
    if (gw_connector_auth_get(a, agent, name, &cur, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : not_found(r, u);
    f.mode = web_form(r, "mode");
    f.preset = web_form(r, "preset");
    f.client_id = web_form(r, "client_id");
    f.client_secret = web_form_n(r, "client_secret", &len);
    f.authorize_url = web_form(r, "authorize_url");
    f.token_url = web_form(r, "token_url");
    f.userinfo_url = web_form(r, "userinfo_url");
    f.scopes = web_form(r, "scopes");
    if (f.client_secret && strlen(f.client_secret) != len)
        rc = gh_err_set(&e, 400, "invalid_request", "The form must not contain NUL characters.", NULL);
    else
        rc = gw_connector_auth_set(a, agent, name, &f, &e);
    if (f.client_secret)
        gh_wipe((char *)f.client_secret, len);
    if (rc < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        /* the typed fields back, never the secret */
        f.has_secret = cur.has_secret;
        f.client_secret = NULL;
        f.disc = cur.disc;
        f.resource = cur.resource;
        return auth_page(r, u, e.status, agent, name, &f, e.msg, NULL);
    }
    GH_LOG(INFO, "connector_auth_by", "admin %s set the authentication of connector %s", u->id, name);
    return web_redirect(r, 303, gh_arena_printf(a, "/admin/connectors/auth?agent=%s&name=%s&saved=1",
                                                gh_url_encode(a, agent), gh_url_encode(a, name)));
}

int
gw_connector_auth_routes(void)
{
    web_route("GET", "/admin/connectors/auth", WEB_PAGE, get_auth);
    web_route("POST", "/admin/connectors/auth", WEB_PAGE, post_auth);
    return 0;
}
