/*
 * authz/connections.c — who holds a grant: /profile/connections for the
 * signed-in user, /admin/connections for administrators (filters, one
 * grant, every grant of a client, everything of a user).  Revoking a grant
 * revokes every access and refresh token issued under it.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>

static const char SQL_GRANTS[] =
    "SELECT g.id, coalesce(c.client_name, g.client_id), g.client_id, ag.name,"
    "       to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
    "       coalesce(to_char(g.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 'never'),"
    "       u.email, u.id, c.kind"
    "  FROM oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id"
    "  JOIN agents ag ON ag.id = g.agent_id JOIN users u ON u.id = g.user_id"
    " WHERE g.revoked_at IS NULL";

static char *
button(struct web_req *r, const char *action, const char *field, const char *value, const char *label,
       const char *cls)
{
    struct gh_arena *a = web_arena(r);

    return gh_arena_printf(a,
        "<form method=\"post\" action=\"%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"%s\" value=\"%s\"><button class=\"%s\" type=\"submit\">%s</button></form>",
        action, web_csrf_token(r), field, gh_html_escape(a, value), cls, label);
}

static int
get_profile_connections(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct gh_arena *a;
    struct gh_err e = {0};
    PGresult *res;
    char *rows, *body;

    if (u == NULL)
        return 0;
    a = web_arena(r);
    res = db_query(a, &e, "SELECT * FROM (SELECT g.id, coalesce(c.client_name, g.client_id), g.client_id, ag.name,"
        "       to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
        "       coalesce(to_char(g.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 'never'), g.created_at"
        "  FROM oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id"
        "  JOIN agents ag ON ag.id = g.agent_id"
        " WHERE g.revoked_at IS NULL AND g.user_id = $1) x ORDER BY 7 DESC", 1, u->id);
    if (res == NULL)
        return web_reply_err(r, &e);
    rows = gh_arena_strdup(a, "");
    for (int i = 0; i < PQntuples(res); i++)
        rows = gh_arena_printf(a, "%s<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>", rows,
            gh_html_escape(a, db_val(res, i, 1)), gh_html_escape(a, db_val(res, i, 3)), db_val(res, i, 4),
            db_val(res, i, 5), button(r, "/profile/connections/revoke", "grant", db_val(res, i, 0),
                                      "Disconnect", "danger"));
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>Connected apps</h1>"
        "<p class=\"muted\">Applications you allowed to act for you. Disconnecting one revokes its tokens at once; "
        "personal access tokens are managed under <a href=\"/profile/tokens\">Tokens</a>.</p>"
        "<table><thead><tr><th>App</th><th>Agent</th><th>Granted</th><th>Last used</th><th></th></tr></thead>"
        "<tbody>%s</tbody></table>%s</div>", rows,
        PQntuples(res) ? "" : "<p class=\"muted\">No connected apps.</p>");
    return web_reply_html(r, 200, authz_page(r, u, "Connected apps", body));
}

static int
post_profile_revoke(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    const char *id = web_form(r, "grant");
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    if (gh_uuid_ok(id) && authz_grant_revoke(web_arena(r), id, u->id, &e) < 0)
        return web_reply_err(r, &e);
    GH_LOG(INFO, "grant_revoked", "user %s disconnected a grant", u->id);
    return web_redirect(r, 303, "/profile/connections");
}

static int
get_admin_connections(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    const char *fu = web_query(r, "user"), *fc = web_query(r, "client");
    struct gh_arena *a;
    struct gh_err e = {0};
    PGresult *res;
    char *rows, *body, *sql;

    if (u == NULL)
        return 0;
    a = web_arena(r);
    sql = gh_arena_printf(a, "%s AND ($1 = '' OR u.email ILIKE '%%' || $1 || '%%')"
                             " AND ($2 = '' OR g.client_id = $2 OR c.client_name ILIKE '%%' || $2 || '%%')"
                             " ORDER BY u.email, g.created_at DESC LIMIT 500", SQL_GRANTS);
    res = db_query(a, &e, sql, 2, fu ? fu : "", fc ? fc : "");
    if (res == NULL)
        return web_reply_err(r, &e);
    rows = gh_arena_strdup(a, "");
    for (int i = 0; i < PQntuples(res); i++)
        rows = gh_arena_printf(a,
            "%s<tr><td>%s</td><td>%s<br><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td>"
            "<td>%s %s %s</td></tr>", rows,
            gh_html_escape(a, db_val(res, i, 6)), gh_html_escape(a, db_val(res, i, 1)),
            gh_html_escape(a, db_val(res, i, 2)), gh_html_escape(a, db_val(res, i, 3)), db_val(res, i, 4),
            db_val(res, i, 5),
            button(r, "/admin/connections/revoke", "grant", db_val(res, i, 0), "Disconnect", "danger"),
            button(r, "/admin/connections/revoke-client", "client_id", db_val(res, i, 2),
                   "Revoke every grant of this client", "secondary"),
            button(r, "/admin/connections/revoke-user", "user_id", db_val(res, i, 7),
                   "Revoke everything of this user", "secondary"));
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>All connected apps</h1>"
        "<form method=\"get\" action=\"/admin/connections\" class=\"filters\">"
        "<label for=\"user\">User email contains</label><input id=\"user\" type=\"text\" name=\"user\" value=\"%s\">"
        "<label for=\"client\">Client id or name</label><input id=\"client\" type=\"text\" name=\"client\" value=\"%s\">"
        "<div class=\"actions\"><button type=\"submit\" class=\"secondary\">Filter</button></div></form>"
        "<table><thead><tr><th>User</th><th>App</th><th>Agent</th><th>Granted</th><th>Last used</th><th></th></tr></thead>"
        "<tbody>%s</tbody></table>%s</div>",
        gh_html_escape(a, fu ? fu : ""), gh_html_escape(a, fc ? fc : ""), rows,
        PQntuples(res) ? "" : "<p class=\"muted\">No grants match.</p>");
    return web_reply_html(r, 200, authz_page(r, u, "All connected apps", body));
}

static int
post_admin_revoke(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    struct gh_arena *a = web_arena(r);
    const char *path = web_path(r);
    struct gh_err e = {0};
    const char *v;

    if (u == NULL)
        return 0;
    if (!strcmp(path, "/admin/connections/revoke")) {
        v = web_form(r, "grant");
        if (gh_uuid_ok(v) && authz_grant_revoke(a, v, NULL, &e) < 0)
            return web_reply_err(r, &e);
    } else if (!strcmp(path, "/admin/connections/revoke-client")) {
        v = web_form(r, "client_id");
        if (v && !db_query(a, &e,
                "WITH g AS (UPDATE oauth_grants SET revoked_at = now() WHERE client_id = $1"
                "             AND revoked_at IS NULL RETURNING id)"
                " UPDATE oauth_tokens SET revoked_at = now() WHERE grant_id IN (SELECT id FROM g)"
                "   AND revoked_at IS NULL", 1, v))
            return web_reply_err(r, &e);
        GH_LOG(INFO, "grants_revoked", "admin %s revoked every grant of client %s", u->id, v ? v : "");
    } else {
        v = web_form(r, "user_id");
        if (gh_uuid_ok(v) &&
            (!db_query(a, &e,
                "WITH g AS (UPDATE oauth_grants SET revoked_at = now() WHERE user_id = $1::uuid"
                "             AND revoked_at IS NULL RETURNING id)"
                " UPDATE oauth_tokens SET revoked_at = now() WHERE grant_id IN (SELECT id FROM g)"
                "   AND revoked_at IS NULL", 1, v) ||
             !db_query(a, &e, "UPDATE pats SET revoked_at = now() WHERE user_id = $1::uuid AND revoked_at IS NULL",
                       1, v)))
            return web_reply_err(r, &e);
        GH_LOG(INFO, "grants_revoked", "admin %s revoked every grant and token of user %s", u->id, v ? v : "");
    }
    authz_credentials_changed("admin revocation");
    return web_redirect(r, 303, "/admin/connections");
}

int
authz_connections_routes(void)
{
    web_route("GET", "/profile/connections", WEB_PAGE, get_profile_connections);
    web_route("POST", "/profile/connections/revoke", WEB_PAGE, post_profile_revoke);
    web_route("GET", "/admin/connections", WEB_PAGE, get_admin_connections);
    web_route("POST", "/admin/connections/revoke", WEB_PAGE, post_admin_revoke);
    web_route("POST", "/admin/connections/revoke-client", WEB_PAGE, post_admin_revoke);
    web_route("POST", "/admin/connections/revoke-user", WEB_PAGE, post_admin_revoke);
    return 0;
}
