/*
 * authz/oauth.c — discovery documents (RFC 8414, OpenID discovery,
 * RFC 9728) and the authorization endpoint with its consent page.
 *
 * /oauth/authorize: until client_id and redirect_uri are known good, errors
 * are an HTML page (never a redirect to an untrusted URI); after that they
 * go back to the client with error, state and iss (RFC 9207), but only for
 * a client the signed-in user has approved before or has just answered
 * (client_known: RFC 9700 §4.11.2); else they are the HTML page too.  The consent
 * form posts back to /oauth/authorize with every parameter, CSRF-checked by
 * web/; approve issues a one-shot code, deny is remembered for code_ttl.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ metadata */

static json_t *
as_metadata(struct gh_arena *a)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:[s], s:[s,s], s:[s], s:[s,s,s], s:[s,s,s],"
        " s:[s,s], s:[s,s], s:b, s:b, s:s}",
        "issuer", gh_cfg.public_url,
        "authorization_endpoint", gh_config_url(a, "/oauth/authorize"),
        "token_endpoint", gh_config_url(a, "/oauth/token"),
        "registration_endpoint", gh_config_url(a, "/oauth/register"),
        "revocation_endpoint", gh_config_url(a, "/oauth/revoke"),
        "introspection_endpoint", gh_config_url(a, "/oauth/introspect"),
        "response_types_supported", "code",
        "response_modes_supported", "query",
        "grant_types_supported", "authorization_code", "refresh_token",
        "code_challenge_methods_supported", "S256",
        "token_endpoint_auth_methods_supported", "none", "client_secret_basic", "client_secret_post",
        "revocation_endpoint_auth_methods_supported", "none", "client_secret_basic", "client_secret_post",
        "introspection_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post",
        "scopes_supported", "mcp", "offline_access",
        "authorization_response_iss_parameter_supported", 1,
        "client_id_metadata_document_supported", 1,
        "service_documentation", gh_config_url(a, "/"));
}

static int
get_as_metadata(struct web_req *r)
{
    const char *path = web_path(r), *issuer_path, *host;
    struct gh_err e = {0};

    /* path-inserted form (RFC 8414 3.1) when the issuer has a path */
    host = strstr(gh_cfg.public_url, "://");
    issuer_path = host ? strchr(host + 3, '/') : NULL;
    if (strcmp(path, "/.well-known/oauth-authorization-server") &&
        strcmp(path, "/.well-known/openid-configuration")) {
        const char *suffix = strchr(path + 2, '/');
        suffix = suffix ? strchr(suffix + 1, '/') : NULL;      /* after /.well-known/<name> */
        if (issuer_path == NULL || suffix == NULL || strcmp(suffix, issuer_path)) {
            gh_err_set(&e, 404, "not_found", "not found", NULL);
            return web_reply_err(r, &e);
        }
    }
    web_add_header(r, "Cache-Control", "public, max-age=300");
    return web_reply_json(r, 200, as_metadata(web_arena(r)));
}

static int
get_resource_metadata(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *slug = web_path_param(r, 0);
    struct authz_agent *ag;
    struct gh_err e = {0};
    char *resource;

    ag = authz_agent_by_slug(a, slug ? slug : "default", &e);
    if (ag == NULL)
        return web_reply_err(r, &e);
    resource = slug ? authz_agent_resource(a, ag->slug) : gh_config_url(a, "/mcp");
    web_add_header(r, "Cache-Control", "public, max-age=300");
    return web_reply_json(r, 200, json_pack("{s:s, s:[s], s:[s], s:[s], s:s}",
        "resource", resource, "authorization_servers", gh_cfg.public_url,
        "scopes_supported", "mcp", "bearer_methods_supported", "header",
        "resource_name", gh_arena_printf(a, "Gatehouse — %s", ag->name)));
}

static int
cors_preflight(struct web_req *r)
{
    return web_reply(r, 204, NULL, "", 0);
}

/* ------------------------------------------------------------ authorize */

struct areq {
    const char *client_id, *redirect_uri, *response_type, *state, *scope, *challenge, *method;
    const char *resource;
    const char *target;           /* the redirect URI to use */
    char *canon;                  /* canonical resource */
    char *scope_norm;
    struct authz_client *client;
    struct authz_agent *agent;
    bool answered;                /* the signed-in user has answered this client's consent */
};

static const char *const PARAMS[] = { "client_id", "redirect_uri", "response_type", "state", "scope",
                                      "code_challenge", "code_challenge_method", "resource" };

static const char *
param(struct web_req *r, const char *name)
{
    return !strcmp(web_method(r), "POST") ? web_form(r, name) : web_query(r, name);
}

/* The same with the decoded length (a %00 makes it differ from strlen). */
static const char *
param_n(struct web_req *r, const char *name, size_t *len)
{
    return !strcmp(web_method(r), "POST") ? web_form_n(r, name, len) : web_query_n(r, name, len);
}

/* The client_id named, if it is well-formed (else validate() refuses it). */
static const char *
client_named(struct web_req *r)
{
    size_t len;
    const char *id = param_n(r, "client_id", &len);

    return id && authz_client_id_ok(id, len) ? id : NULL;
}

static int
param_count(struct web_req *r, const char *name)
{
    if (!strcmp(web_method(r), "POST"))
        return web_form_count(r, name);
    /* MHD keeps the first of repeated query arguments; detect repeats in the raw URL */
    {
        const char *full = web_full_path(r), *p = strchr(full, '?');
        size_t n = strlen(name);
        int count = 0;
        while (p) {
            p++;
            if (!strncmp(p, name, n) && (p[n] == '=' || p[n] == '&' || p[n] == '\0'))
                count++;
            p = strchr(p, '&');
        }
        return count;
    }
}

static int
error_page(struct web_req *r, int status, const char *msg)
{
    struct gh_err e = {0};

    gh_err_set(&e, status, "invalid_request", msg, NULL);
    return web_reply_err(r, &e);
}

static char *
with_params(struct gh_arena *a, const char *uri, const char *query)
{
    return gh_arena_printf(a, "%s%s%s", uri, strchr(uri, '?') ? "&" : "?", query);
}

/* RFC 9700 §4.11.2: anyone may register a redirect URI, so an error is
 * sent back to one only for a client the signed-in user has approved
 * before (a grant, even a revoked one) or has just answered; else this
 * origin would bounce any browser, signed in or not, to the registrant's
 * site.  The error is shown here instead. */
static bool
client_known(struct web_req *r, struct areq *q)
{
    struct authz_user *u;
    struct gh_err e = {0};
    PGresult *res;

    if (q->answered)
        return true;
    if ((u = authz_session_user(r)) == NULL)
        return false;
    res = db_query(web_arena(r), &e, "SELECT 1 FROM oauth_grants WHERE user_id = $1 AND client_id = $2 LIMIT 1",
                   2, u->id, q->client->client_id);
    return res && PQntuples(res) > 0;
}

static int
redirect_error(struct web_req *r, struct areq *q, const char *code, const char *desc)
{
    struct gh_arena *a = web_arena(r);
    char *qs;

    if (!client_known(r, q)) {
        GH_LOG(INFO, "authorize_error", "client %s: %s (shown, not redirected: not approved by this user)",
               q->client_id, code);
        return error_page(r, 400, gh_arena_printf(a, "This authorization request cannot be served (%s): %s",
                                                  code, desc));
    }
    qs = gh_arena_printf(a, "error=%s&error_description=%s", code, gh_url_encode(a, desc));

    if (q->state)
        qs = gh_arena_printf(a, "%s&state=%s", qs, gh_url_encode(a, q->state));
    qs = gh_arena_printf(a, "%s&iss=%s", qs, gh_url_encode(a, gh_cfg.public_url));
    GH_LOG(INFO, "authorize_error", "client %s: %s", q->client_id, code);
    return web_redirect(r, 302, with_params(a, q->target, qs));
}

static bool
challenge_ok(const char *c)
{
    size_t n = c ? strlen(c) : 0;

    return n >= 43 && n <= 128 &&
           strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == n;
}

/* Returns 0 when the request is good, 1 when a reply has been sent. */
static int
validate(struct web_req *r, struct areq *q)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    json_t *uris;
    char buf[512], *save = NULL, *tok;
    bool offline = false;
    size_t idlen;

    for (size_t i = 0; i < GH_ARRAY_LEN(PARAMS); i++)
        if (param_count(r, PARAMS[i]) > 1 && i < 2)
            return error_page(r, 400, "A parameter was repeated."), 1;
    q->client_id = param_n(r, "client_id", &idlen);
    q->redirect_uri = param(r, "redirect_uri");
    q->response_type = param(r, "response_type");
    q->state = param(r, "state");
    q->scope = param(r, "scope");
    q->challenge = param(r, "code_challenge");
    q->method = param(r, "code_challenge_method");
    q->resource = param(r, "resource");
    if (q->client_id == NULL || !*q->client_id)
        return error_page(r, 400, "The request has no client_id."), 1;
    if (!authz_client_id_ok(q->client_id, idlen))      /* before the database sees it */
        return error_page(r, 400, "The client_id is malformed."), 1;
    q->client = authz_client_get(a, q->client_id, &e);
    if (q->client == NULL) {
        if (e.status < 500) {
            char *m = gh_arena_printf(a, "This application is not registered: %s", e.msg);
            gh_err_clear(&e);
            gh_err_set(&e, 400, "invalid_client", m, NULL);
        }
        return web_reply_err(r, &e), 1;
    }
    uris = json_object_get(q->client->metadata, "redirect_uris");
    if (q->redirect_uri == NULL) {
        if (json_array_size(uris) != 1)
            return error_page(r, 400, "The request has no redirect_uri."), 1;
        q->target = json_string_value(json_array_get(uris, 0));
    } else if (!authz_client_redirect_ok(q->client, q->redirect_uri)) {
        return error_page(r, 400, "The redirect_uri is not registered for this application."), 1;
    } else {
        q->target = q->redirect_uri;
    }
    /* from here on errors go back to the client */
    for (size_t i = 2; i < GH_ARRAY_LEN(PARAMS); i++)
        if (param_count(r, PARAMS[i]) > 1)
            return redirect_error(r, q, "invalid_request", "A parameter was repeated."), 1;
    if (q->state && strlen(q->state) > 1024)
        return redirect_error(r, q, "invalid_request", "state is too long."), 1;
    if (q->response_type == NULL || strcmp(q->response_type, "code"))
        return redirect_error(r, q, "unsupported_response_type", "Only response_type=code is supported."), 1;
    if (q->challenge == NULL)
        return redirect_error(r, q, "invalid_request", "PKCE is required: send code_challenge."), 1;
    if (q->method == NULL || strcmp(q->method, "S256"))
        return redirect_error(r, q, "invalid_request", "code_challenge_method must be S256."), 1;
    if (!challenge_ok(q->challenge))
        return redirect_error(r, q, "invalid_request", "code_challenge is malformed."), 1;
    snprintf(buf, sizeof(buf), "%s", q->scope && *q->scope ? q->scope : "mcp");
    if (q->scope && strlen(q->scope) >= sizeof(buf))
        return redirect_error(r, q, "invalid_scope", "The scope is too long."), 1;
    for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (strcmp(tok, "mcp") && strcmp(tok, "offline_access"))
            return redirect_error(r, q, "invalid_scope", "Supported scopes: mcp, offline_access."), 1;
        offline |= !strcmp(tok, "offline_access");
    }
    /* mcp is what every token is for; offline_access only adds a line on the consent page */
    q->scope_norm = gh_arena_strdup(a, offline ? "mcp offline_access" : "mcp");
    q->agent = authz_resource_agent(a, q->resource, &q->canon, &e);
    if (q->agent == NULL) {
        if (e.status >= 500)
            return web_reply_err(r, &e), 1;
        return redirect_error(r, q, "invalid_target", e.msg), 1;
    }
    return 0;
}

static const char *
redirect_host(struct gh_arena *a, const char *uri)
{
    const char *p = strstr(uri, "://");
    size_t n;

    if (p == NULL)
        return gh_arena_strndup(a, uri, strcspn(uri, ":"));
    p += 3;
    n = strcspn(p, "/?#");
    return gh_arena_strndup(a, p, n);
}

static bool
denied_recently(struct gh_arena *a, const char *user_id, const char *client_id)
{
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e, "SELECT 1 FROM oauth_denials WHERE user_id = $1 AND client_id = $2"
                                    " AND until > now()", 2, user_id, client_id);

    return res && PQntuples(res) > 0;
}

static int
consent_page(struct web_req *r, struct authz_user *u, struct areq *q)
{
    struct gh_arena *a = web_arena(r);
    const char *name = q->client->name && *q->client->name ? q->client->name : "An unnamed application";
    char *hidden = gh_arena_strdup(a, ""), *kind, *scopes, *body;

    for (size_t i = 0; i < GH_ARRAY_LEN(PARAMS); i++) {
        const char *v = param(r, PARAMS[i]);
        if (v)
            hidden = gh_arena_printf(a, "%s<input type=\"hidden\" name=\"%s\" value=\"%s\">", hidden,
                                     PARAMS[i], gh_html_escape(a, v));
    }
    kind = q->client->cimd_host
        ? gh_arena_printf(a, "Identified by a client metadata document at <strong>%s</strong>.",
                          gh_html_escape(a, q->client->cimd_host))
        : gh_arena_strdup(a, "This application registered dynamically; its name is not verified.");
    scopes = gh_arena_strdup(a, "<li>Use the tools of this agent as you (<code>mcp</code>)</li>");
    if (strstr(q->scope_norm, "offline_access"))
        scopes = gh_arena_printf(a, "%s<li>Stay connected when you are away (<code>offline_access</code>)</li>", scopes);
    body = gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Authorize %s</h1>"
        "<p><strong>%s</strong> wants to act for you on the agent <strong>%s</strong> (%s).</p>"
        "<p class=\"muted\">%s</p>"
        "<p>After your answer you go back to <strong>%s</strong>.</p>"
        "<h2>It will be able to</h2><ul>%s</ul>"
        "<p class=\"muted\">Signed in as %s. You can disconnect it at any time under Connections.</p>"
        "<form method=\"post\" action=\"/oauth/authorize\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">%s"
        "<div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>"
        "<button type=\"submit\" class=\"secondary\" name=\"decision\" value=\"deny\">Deny</button></div>"
        "</form></div>",
        gh_html_escape(a, name), gh_html_escape(a, name), gh_html_escape(a, q->agent->name),
        q->agent->untrusted ? "untrusted" : "trusted", kind,
        gh_html_escape(a, redirect_host(a, q->target)), scopes, gh_html_escape(a, u->email),
        web_csrf_token(r), hidden);
    /* the answer redirects the form's submission on to the client: CSP
     * form-action must name it, or the browser stops there */
    web_csp_form_target(r, q->target);
    return web_reply_html(r, 200, authz_page(r, u, "Authorize access", body));
}

/* Only an approved member (or an admin) may let a client act on an agent:
 * anyone else reads which agent it is and how to ask for access, and
 * their way back takes access_denied to the client. */
static int
not_member_page(struct web_req *r, struct authz_user *u, struct areq *q)
{
    struct gh_arena *a = web_arena(r);
    char *back = gh_arena_printf(a, "error=access_denied&error_description=%s",
                                 gh_url_encode(a, "The user is not a member of this agent."));
    char *body;

    if (q->state)
        back = gh_arena_printf(a, "%s&state=%s", back, gh_url_encode(a, q->state));
    back = with_params(a, q->target, gh_arena_printf(a, "%s&iss=%s", back, gh_url_encode(a, gh_cfg.public_url)));
    body = gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>You are not a member of %s</h1>"
        "<p>Signed in as <strong>%s</strong>, you may not use the agent <strong>%s</strong> yet, so no "
        "application can act for you on it.</p>"
        "<p>To ask for access, ask an owner of the agent or an administrator to invite you; "
        "the invite arrives as a link for your email address.</p>"
        "<div class=\"actions\"><a class=\"button secondary\" id=\"back\" href=\"%s\">Back to the application</a></div>"
        "</div>",
        gh_html_escape(a, q->agent->name), gh_html_escape(a, u->email), gh_html_escape(a, q->agent->name),
        gh_html_escape(a, back));
    GH_LOG(INFO, "consent_not_member", "user %s is not a member of agent %s", u->id, q->agent->slug);
    return web_reply_html(r, 403, authz_page(r, u, "Not a member", body));
}

static int
get_authorize(struct web_req *r)
{
    struct areq q = {0};
    struct authz_user *u;
    struct gh_err e = {0};

    if (authz_cimd_offload(r, client_named(r), get_authorize))
        return 0;               /* its client metadata document is fetched first */
    if (validate(r, &q))
        return 0;
    u = authz_require_login(r);
    if (u == NULL)
        return 0;
    if (denied_recently(web_arena(r), u->id, q.client->client_id)) {
        q.answered = true;
        return redirect_error(r, &q, "access_denied", "You denied this application a moment ago.");
    }
    switch (authz_member_ok(web_arena(r), u->id, q.agent->id, &e)) {
    case -1: return web_reply_err(r, &e);
    case 0:  return not_member_page(r, u, &q);
    }
    return consent_page(r, u, &q);
}

static int
post_authorize(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *decision = web_form(r, "decision");
    struct authz_user *u = authz_session_user(r);
    struct areq q = {0};
    struct gh_err e = {0};
    char ttl[24], hash[65], *code, *qs;
    PGresult *res;

    if (u == NULL)
        return error_page(r, 403, "Your session has ended. Start again from the application.");
    if (authz_cimd_offload(r, client_named(r), post_authorize))
        return 0;
    if (validate(r, &q))
        return 0;
    snprintf(ttl, sizeof(ttl), "%ld", gh_cfg.code_ttl);
    if (decision == NULL || strcmp(decision, "approve")) {
        db_query(a, &e, "INSERT INTO oauth_denials (user_id, client_id, until)"
                        " VALUES ($1, $2, now() + make_interval(secs => $3::int))"
                        " ON CONFLICT (user_id, client_id) DO UPDATE SET until = EXCLUDED.until",
                 3, u->id, q.client->client_id, ttl);
        GH_LOG(INFO, "consent_denied", "user %s denied client %s", u->id, q.client->client_id);
        q.answered = true;
        return redirect_error(r, &q, "access_denied", "The user denied the request.");
    }
    switch (authz_member_ok(a, u->id, q.agent->id, &e)) {
    case -1: return web_reply_err(r, &e);
    case 0:  q.answered = true;     /* the user submitted the consent form */
             return redirect_error(r, &q, "access_denied", "The user is not a member of this agent.");
    }
    res = db_query(a, &e,
        "INSERT INTO oauth_grants (user_id, client_id, agent_id, scope) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (user_id, client_id, agent_id) WHERE revoked_at IS NULL"
        " DO UPDATE SET scope = EXCLUDED.scope RETURNING id", 4, u->id, q.client->client_id,
        q.agent->id, q.scope_norm);
    if (res == NULL)
        return web_reply_err(r, &e);
    code = gh_token_hex(a, "gth_ac_", 32);
    if (code == NULL)
        return error_page(r, 500, "internal error");
    gh_sha256_hex(code, hash);
    if (!db_query(a, &e, "INSERT INTO oauth_codes (code_hash, grant_id, client_id, redirect_uri, code_challenge,"
                         " resource, scope, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7,"
                         " now() + make_interval(secs => $8::int))",
                  8, hash, db_val(res, 0, 0), q.client->client_id, q.redirect_uri ? q.redirect_uri : "",
                  q.challenge, q.canon, q.scope_norm, ttl))
        return web_reply_err(r, &e);
    db_query(a, &e, "DELETE FROM oauth_denials WHERE user_id = $1 AND client_id = $2", 2, u->id,
             q.client->client_id);
    authz_vault_credential_new(r, q.agent->id, u->id, "code", code, gh_cfg.code_ttl);
    GH_LOG(INFO, "consent_approved", "user %s approved client %s", u->id, q.client->client_id);
    qs = gh_arena_printf(a, "code=%s", code);
    if (q.state)
        qs = gh_arena_printf(a, "%s&state=%s", qs, gh_url_encode(a, q.state));
    qs = gh_arena_printf(a, "%s&iss=%s", qs, gh_url_encode(a, gh_cfg.public_url));
    gh_wipe(code, strlen(code));
    return web_redirect(r, 303, with_params(a, q.target, qs));
}

int
authz_oauth_routes(void)
{
    static const char *const docs[] = {
        "/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/**",
        "/.well-known/openid-configuration", "/.well-known/openid-configuration/**",
    };
    static const char *const prm[] = {
        "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource/agents/*/mcp",
    };

    for (size_t i = 0; i < GH_ARRAY_LEN(docs); i++) {
        web_route("GET", docs[i], WEB_API | WEB_CORS, get_as_metadata);
        web_route("OPTIONS", docs[i], WEB_API | WEB_CORS, cors_preflight);
    }
    for (size_t i = 0; i < GH_ARRAY_LEN(prm); i++) {
        web_route("GET", prm[i], WEB_API | WEB_CORS, get_resource_metadata);
        web_route("OPTIONS", prm[i], WEB_API | WEB_CORS, cors_preflight);
    }
    web_route("GET", "/oauth/authorize", WEB_PAGE, get_authorize);
    web_route("POST", "/oauth/authorize", WEB_PAGE, post_authorize);
    return 0;
}
