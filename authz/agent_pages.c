/*
 * authz/agent_pages.c — the agents console: /agents (my agents, their MCP
 * URL and how to connect each client), /agents/{slug}/members,
 * /agents/{slug}/settings and /admin/agents.  Rendered in the common
 * frame (authz_page); every change goes through members.c and agent.c,
 * which check that the actor may make it.
 */
#include "authz/authz_int.h"
#include <stdlib.h>
#include <string.h>

/* The copy buttons: the one script of the console, served from here
 * (CSP script-src 'self'); without it the snippets are still selectable. */
static const char COPY_JS[] =
    "document.addEventListener('click', function (ev) {\n"
    "  var b = ev.target.closest('button[data-copy]');\n"
    "  if (!b) return;\n"
    "  var text = document.getElementById(b.getAttribute('data-copy')).textContent;\n"
    "  var done = function () { b.textContent = 'Copied'; };\n"
    "  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }\n"
    "  var t = document.createElement('textarea'); t.value = text; document.body.appendChild(t); t.select();\n"
    "  document.execCommand('copy'); t.remove(); done();\n"
    "});\n";

static int
serve_js(struct web_req *r)
{
    web_add_header(r, "Cache-Control", "public, max-age=3600");
    return web_reply(r, 200, "text/javascript; charset=utf-8", COPY_JS, sizeof(COPY_JS) - 1);
}

/* ---------------------------------------------------------------- /agents */

/* One client's instructions: a title, a sentence, a snippet and its copy button. */
static char *
snippet(struct gh_arena *a, const char *slug, const char *key, const char *title, const char *how, const char *text)
{
    return gh_arena_printf(a,
        "<h3>%s</h3><p class=\"muted\">%s</p><pre><code id=\"%s-%s\">%s</code></pre>"
        "<button type=\"button\" class=\"secondary\" data-copy=\"%s-%s\">Copy</button>",
        title, how, key, slug, gh_html_escape(a, text), key, slug);
}

static char *
connect_help(struct gh_arena *a, const char *slug, const char *url)
{
    char *s = snippet(a, slug, "url", "Claude.ai and ChatGPT",
                      "Add a custom connector with this URL; they sign you in with OAuth themselves.", url);

    s = gh_arena_printf(a, "%s%s", s, snippet(a, slug, "cursor", "Cursor", "In <code>~/.cursor/mcp.json</code>:",
        gh_arena_printf(a, "{\n  \"mcpServers\": {\n    \"%s\": { \"url\": \"%s\" }\n  }\n}", slug, url)));
    s = gh_arena_printf(a, "%s%s", s, snippet(a, slug, "vscode", "VS Code", "In <code>.vscode/mcp.json</code>:",
        gh_arena_printf(a, "{\n  \"servers\": {\n    \"%s\": { \"type\": \"http\", \"url\": \"%s\" }\n  }\n}", slug, url)));
    s = gh_arena_printf(a, "%s%s", s, snippet(a, slug, "claude-code", "Claude Code", "In a terminal:",
        gh_arena_printf(a, "claude mcp add --transport http %s %s", slug, url)));
    s = gh_arena_printf(a, "%s%s", s, snippet(a, slug, "mcp-remote", "mcp-remote",
        "For clients that only start local servers; create a <a href=\"/profile/tokens\">personal access token</a> "
        "and put it in <code>GATEHOUSE_PAT</code>:",
        gh_arena_printf(a, "npx mcp-remote %s --header \"Authorization: Bearer ${GATEHOUSE_PAT}\"", url)));
    return gh_arena_printf(a, "%s%s", s, snippet(a, slug, "curl", "cURL", "With a personal access token:",
        gh_arena_printf(a, "curl -s %s \\\n  -H \"Authorization: Bearer $GATEHOUSE_PAT\" \\\n"
                           "  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n"
                           "  -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                           "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"curl\",\"version\":\"1\"}}}'",
                        url)));
}

static char *
agent_card(struct gh_arena *a, PGresult *res, int i)
{
    const char *slug = db_val(res, i, 0), *state = db_val(res, i, 4);
    bool owner = db_bool(res, i, 5), pending = !strcmp(state, "pending");
    char *url = authz_agent_resource(a, slug);

    return gh_arena_printf(a,
        "<div class=\"card agent\" id=\"agent-%s\"><h2>%s <span class=\"muted\">%s · %s%s%s</span></h2>"
        "%s<p>MCP URL: <code>%s</code></p><p>%s%s</p>%s</div>",
        slug, gh_html_escape(a, db_val(res, i, 1)), db_bool(res, i, 2) ? "untrusted" : "trusted",
        owner ? "owner" : "member", db_bool(res, i, 3) ? " · <strong class=\"bad\">disabled</strong>" : "",
        pending ? " · waiting for approval" : "",
        db_bool(res, i, 3) ? "<p class=\"notice\">This agent was disabled by its owner: its MCP endpoint refuses every call.</p>" : "",
        gh_html_escape(a, url),
        gh_arena_printf(a, "<a href=\"/agents/%s/members\">Members</a>%s", slug, pending ? ""
                        : gh_arena_printf(a, " · <a href=\"/agents/%s/connections\">Your connections</a>", slug)),
        owner ? gh_arena_printf(a, " · <a href=\"/agents/%s/policies\">Policies</a> · "
                                   "<a href=\"/agents/%s/audit\">Audit</a> · "
                                   "<a href=\"/agents/%s/settings\">Settings</a>", slug, slug, slug) : "",
        pending ? "" : gh_arena_printf(a, "<details><summary>Connect a client</summary>%s</details>",
                                       connect_help(a, slug, url)));
}

static int
get_agents(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    PGresult *res;
    char *cards;

    if (u == NULL)
        return 0;
    res = db_query(a, &e,
        "SELECT ag.slug, ag.name, ag.untrusted, ag.disabled, coalesce(m.state, 'approved'),"
        "       u.role = 'admin' OR (m.role = 'owner' AND m.state = 'approved')"
        "  FROM agents ag CROSS JOIN users u"
        "  LEFT JOIN agent_members m ON m.agent_id = ag.id AND m.user_id = u.id"
        " WHERE u.id = $1 AND (u.role = 'admin' OR m.state IN ('approved', 'pending'))"
        " ORDER BY ag.slug = 'default' DESC, ag.slug", 1, u->id);
    if (res == NULL)
        return web_reply_err(r, &e);
    cards = gh_arena_strdup(a, "");
    for (int i = 0; i < PQntuples(res); i++)
        cards = gh_arena_printf(a, "%s%s", cards, agent_card(a, res, i));
    return web_reply_html(r, 200, authz_page(r, u, "Agents", gh_arena_printf(a,
        "<script src=\"/static/copy.js\" defer></script>"
        "<div class=\"card\"><h1>Your agents</h1><p class=\"muted\">Each agent has its own MCP URL. "
        "Only approved members may connect to it.</p>%s</div>%s",
        PQntuples(res) ? "" : "<p id=\"no-agents\">You are not a member of any agent yet: ask an owner to invite you.</p>",
        cards)));
}

/* ---------------------------------------------------------------- /agents/{slug}/members */

static char *
member_button(struct gh_arena *a, struct web_req *r, const char *slug, const char *email, const char *action,
              const char *label, bool danger)
{
    return gh_arena_printf(a,
        "<form method=\"post\" action=\"/agents/%s/members\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"email\" value=\"%s\"><button class=\"%s\" type=\"submit\" name=\"action\" "
        "value=\"%s\">%s</button></form> ",
        slug, web_csrf_token(r), gh_html_escape(a, email), danger ? "danger" : "secondary", action, label);
}

static char *
member_actions(struct gh_arena *a, struct web_req *r, const char *slug, const char *email, const char *state,
               bool owner_row)
{
    if (!strcmp(state, "invited"))
        return member_button(a, r, slug, email, "revoke", "Revoke invite", true);
    if (!strcmp(state, "pending"))
        return gh_arena_printf(a, "%s%s", member_button(a, r, slug, email, "approve", "Approve", false),
                               member_button(a, r, slug, email, "reject", "Reject", true));
    if (!strcmp(state, "approved"))
        return gh_arena_printf(a, "%s%s",
                               owner_row ? member_button(a, r, slug, email, "unowner", "Remove owner", false)
                                         : member_button(a, r, slug, email, "owner", "Make owner", false),
                               member_button(a, r, slug, email, "remove", "Remove", true));
    return member_button(a, r, slug, email, "approve", "Approve", false);
}

static int
members_page(struct web_req *r, struct authz_user *u, struct authz_agent *ag, int status, const char *notice,
             const char *error)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    bool owner = authz_owner_check(a, u, ag, &e) == 0;
    PGresult *res;
    char *rows = gh_arena_strdup(a, ""), *invite = "";

    if (!owner && e.status >= 500)
        return web_reply_err(r, &e);
    res = db_query(a, &e, "SELECT email, state, role, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
                          "  FROM agent_members WHERE agent_id = $1 AND ($2 OR user_id = $3)"
                          " ORDER BY array_position(ARRAY['pending','invited','approved','rejected','removed'], state),"
                          "          lower(email)", 3, ag->id, owner ? "true" : "false", u->id);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (!owner && PQntuples(res) == 0)
        return authz_page_sentence(r, u, 403, "Not a member",
                                   "You are not a member of this agent: ask an owner to invite you.");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *email = db_val(res, i, 0), *state = db_val(res, i, 1);
        bool self = !owner;
        rows = gh_arena_printf(a, "%s<tr data-email=\"%s\"><td>%s</td><td class=\"state\">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>",
            rows, gh_html_escape(a, email), gh_html_escape(a, email), state, db_val(res, i, 2), db_val(res, i, 3),
            self ? (strcmp(state, "approved") && strcmp(state, "pending") ? ""
                    : member_button(a, r, ag->slug, email, "leave", "Leave", true))
                 : member_actions(a, r, ag->slug, email, state, !strcmp(db_val(res, i, 2), "owner")));
    }
    if (owner)
        invite = gh_arena_printf(a,
            "<div class=\"card\"><h2>Invite someone</h2><form method=\"post\" action=\"/agents/%s/members\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"action\" value=\"invite\">"
            "<label for=\"email\">Email</label><input id=\"email\" type=\"email\" name=\"email\" required>"
            "<label><input type=\"checkbox\" name=\"approve_on_accept\" value=\"1\"> Approve when they accept</label>"
            "<div class=\"actions\"><button type=\"submit\">Invite</button></div></form></div>",
            ag->slug, web_csrf_token(r));
    return web_reply_html(r, status, authz_page(r, u, "Members", gh_arena_printf(a,
        "<div class=\"card\"><h1>Members of %s</h1>%s%s"
        "<table><thead><tr><th>Email</th><th>State</th><th>Role</th><th>Since</th><th></th></tr></thead>"
        "<tbody>%s</tbody></table></div>%s",
        gh_html_escape(a, ag->name), notice ? notice : "", authz_page_error_box(a, error), rows, invite)));
}

/* The agent the path names, or NULL when a page has been sent. */
static struct authz_agent *
path_agent(struct web_req *r, struct authz_user *u)
{
    struct gh_err e = {0};
    struct authz_agent *ag = authz_agent_by_slug(web_arena(r), web_path_param(r, 0), &e);

    if (ag == NULL) {
        if (e.status >= 500)
            web_reply_err(r, &e);
        else
            authz_page_sentence(r, u, 404, "No such agent", "There is no agent at this address.");
    }
    return ag;
}

static int
get_members(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct authz_agent *ag = u ? path_agent(r, u) : NULL;

    return ag ? members_page(r, u, ag, 200, NULL, NULL) : 0;
}

static int
post_invite_member(struct web_req *r, struct authz_user *u, struct authz_agent *ag)
{
    struct gh_arena *a = web_arena(r);
    const char *email = web_form(r, "email");
    struct gh_err e = {0};
    char *link = NULL, *notice;
    bool mailed = false;
    int rc;

    if (authz_member_invite(u, ag->slug, email, web_form(r, "approve_on_accept") != NULL, &link, &mailed, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : members_page(r, u, ag, e.status, NULL, e.msg);
    notice = gh_arena_printf(a,
        "<div class=\"notice\"><p>Send this link to %s; it is shown only now, works once and for 7 days%s.</p>"
        "<p><code id=\"invite-link\">%s</code></p></div>",
        gh_html_escape(a, email), mailed ? " (it was also mailed)" : "", gh_html_escape(a, link));
    gh_wipe(link, strlen(link));
    free(link);
    rc = members_page(r, u, ag, 201, notice, NULL);
    gh_wipe(notice, strlen(notice));
    return rc;
}

static int
post_members(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct authz_agent *ag = u ? path_agent(r, u) : NULL;
    const char *action = web_form(r, "action");
    struct gh_err e = {0};

    if (ag == NULL)
        return 0;
    if (action == NULL)
        return members_page(r, u, ag, 400, NULL, "Choose an action.");
    if (!strcmp(action, "invite"))
        return post_invite_member(r, u, ag);
    if (authz_member_act(u, ag->slug, web_form(r, "email"), action, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : members_page(r, u, ag, e.status, NULL, e.msg);
    if (!strcmp(action, "leave"))
        return web_redirect(r, 303, "/agents");
    return web_redirect(r, 303, gh_arena_printf(web_arena(r), "/agents/%s/members", ag->slug));
}

/* ---------------------------------------------------------------- /agents/{slug}/settings */

static int
settings_page(struct web_req *r, struct authz_user *u, struct authz_agent *ag, int status, const char *error)
{
    struct gh_arena *a = web_arena(r);
    const char *csrf = web_csrf_token(r);

    return web_reply_html(r, status, authz_page(r, u, "Agent settings", gh_arena_printf(a,
        "<div class=\"card\"><h1>Settings of %s</h1>%s"
        "<p>Trust mode: <strong id=\"trust\">%s</strong> <span class=\"muted\">(chosen when the agent was created)</span></p>"
        "<form method=\"post\" action=\"/agents/%s/settings\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"name\">Name</label><input id=\"name\" type=\"text\" name=\"name\" maxlength=\"100\" value=\"%s\" required>"
        "<label for=\"timezone\">Time zone (IANA)</label><input id=\"timezone\" type=\"text\" name=\"timezone\" value=\"%s\" required>"
        "<div class=\"actions\"><button type=\"submit\" name=\"action\" value=\"save\">Save</button></div></form></div>"
        "<div class=\"card\"><h2>Kill switch</h2><p id=\"kill-state\">%s</p>"
        "<form method=\"post\" action=\"/agents/%s/settings\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<div class=\"actions\"><button type=\"submit\" class=\"%s\" name=\"action\" value=\"%s\">%s</button></div></form></div>"
        "<div class=\"card\"><h2>Delete</h2><p>Deleting the agent revokes every token and grant of it and removes its "
        "members and connectors. Type its slug, <code>%s</code>, to confirm.</p>"
        "<form method=\"post\" action=\"/agents/%s/settings\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"confirm\">Slug</label><input id=\"confirm\" type=\"text\" name=\"confirm\" autocomplete=\"off\">"
        "<div class=\"actions\"><button type=\"submit\" class=\"danger\" name=\"action\" value=\"delete\">Delete agent</button></div>"
        "</form></div>",
        gh_html_escape(a, ag->name), authz_page_error_box(a, error), ag->untrusted ? "untrusted" : "trusted",
        ag->slug, csrf,
        gh_html_escape(a, ag->name), gh_html_escape(a, ag->timezone ? ag->timezone : "UTC"),
        ag->disabled ? "The agent is disabled: its MCP endpoint refuses every call. Credentials are kept."
                     : "The agent is enabled.",
        ag->slug, csrf, ag->disabled ? "" : "danger", ag->disabled ? "enable" : "disable",
        ag->disabled ? "Enable the agent" : "Disable the agent", ag->slug, ag->slug, csrf)));
}

static int
get_settings(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct authz_agent *ag = u ? path_agent(r, u) : NULL;
    struct gh_err e = {0};

    if (ag == NULL)
        return 0;
    if (authz_owner_check(web_arena(r), u, ag, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : authz_page_sentence(r, u, 403, "Owners only", e.msg);
    return settings_page(r, u, ag, 200, NULL);
}

static int
post_settings(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct authz_agent *ag = u ? path_agent(r, u) : NULL;
    const char *action = web_form(r, "action"), *confirm = web_form(r, "confirm");
    struct gh_err e = {0};
    int rc;

    if (ag == NULL)
        return 0;
    if (action && !strcmp(action, "save"))
        rc = authz_agent_set(u, ag->slug, web_form(r, "name") ? web_form(r, "name") : "", web_form(r, "timezone"), &e);
    else if (action && (!strcmp(action, "disable") || !strcmp(action, "enable")))
        rc = authz_agent_set_disabled(u, ag->slug, !strcmp(action, "disable"), &e);
    else if (action && !strcmp(action, "delete") && (confirm == NULL || strcmp(confirm, ag->slug)))
        rc = gh_err_set(&e, 400, "invalid_request", "Type the agent's slug to confirm deleting it.", NULL);
    else if (action && !strcmp(action, "delete"))
        rc = authz_agent_delete(u, ag->slug, &e);
    else
        rc = gh_err_set(&e, 400, "invalid_request", "Choose an action.", NULL);
    if (rc < 0 && e.status == 403)
        return authz_page_sentence(r, u, 403, "Owners only", e.msg);
    if (rc < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : settings_page(r, u, ag, e.status, e.msg);
    if (!strcmp(action, "delete"))
        return web_redirect(r, 303, !strcmp(u->role, "admin") ? "/admin/agents" : "/agents");
    return web_redirect(r, 303, gh_arena_printf(web_arena(r), "/agents/%s/settings", ag->slug));
}

/* ---------------------------------------------------------------- /admin/agents */

static int
admin_page(struct web_req *r, struct authz_user *u, int status, const char *error)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e,
        "SELECT ag.slug, ag.name, ag.untrusted, ag.timezone, ag.disabled,"
        "       (SELECT count(*) FROM agent_members m WHERE m.agent_id = ag.id AND m.state = 'approved'),"
        "       (SELECT count(*) FROM agent_members m WHERE m.agent_id = ag.id AND m.state = 'pending')"
        "  FROM agents ag ORDER BY ag.slug = 'default' DESC, ag.slug", 0);
    char *rows = gh_arena_strdup(a, "");

    if (res == NULL)
        return web_reply_err(r, &e);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *slug = db_val(res, i, 0);
        rows = gh_arena_printf(a,
            "%s<tr data-slug=\"%s\"><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td class=\"state\">%s</td>"
            "<td>%s approved, %s pending</td><td><a href=\"/agents/%s/members\">Members</a> "
            "<a href=\"/agents/%s/policies\">Policies</a> <a href=\"/agents/%s/settings\">Settings</a> "
            "<form method=\"post\" action=\"/agents/%s/settings\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
            "<button class=\"secondary\" type=\"submit\" name=\"action\" value=\"%s\">%s</button></form></td></tr>",
            rows, slug, slug, gh_html_escape(a, db_val(res, i, 1)), db_bool(res, i, 2) ? "untrusted" : "trusted",
            gh_html_escape(a, db_val(res, i, 3)), db_bool(res, i, 4) ? "disabled" : "enabled", db_val(res, i, 5),
            db_val(res, i, 6), slug, slug, slug, slug, web_csrf_token(r), db_bool(res, i, 4) ? "enable" : "disable",
            db_bool(res, i, 4) ? "Enable" : "Disable");
    }
    return web_reply_html(r, status, authz_page(r, u, "Agents", gh_arena_printf(a,
        "<div class=\"card\"><h1>All agents</h1>%s<table><thead><tr><th>Slug</th><th>Name</th><th>Trust</th>"
        "<th>Time zone</th><th>State</th><th>Members</th><th></th></tr></thead><tbody>%s</tbody></table></div>"
        "<div class=\"card\"><h2>New agent</h2><form method=\"post\" action=\"/admin/agents\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"slug\">Slug (its MCP URL is /agents/&lt;slug&gt;/mcp)</label>"
        "<input id=\"slug\" type=\"text\" name=\"slug\" maxlength=\"63\" pattern=\"[a-z0-9][a-z0-9\\-]*\" required>"
        "<label for=\"name\">Name</label><input id=\"name\" type=\"text\" name=\"name\" maxlength=\"100\" required>"
        "<label for=\"trust\">Trust mode</label><select id=\"trust\" name=\"trust\">"
        "<option value=\"trusted\">trusted: one policy set for the agent</option>"
        "<option value=\"untrusted\">untrusted: a policy set per member</option></select>"
        "<label for=\"timezone\">Time zone (IANA)</label><input id=\"timezone\" type=\"text\" name=\"timezone\" value=\"UTC\">"
        "<div class=\"actions\"><button type=\"submit\">Create agent</button></div></form></div>",
        authz_page_error_box(a, error), rows, web_csrf_token(r))));
}

static int
get_admin_agents(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);

    return u ? admin_page(r, u, 200, NULL) : 0;
}

static int
post_admin_agents(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    const char *trust = web_form(r, "trust");
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    if (trust == NULL || (strcmp(trust, "trusted") && strcmp(trust, "untrusted")))
        return admin_page(r, u, 400, "Choose a trust mode.");
    if (authz_agent_create(u, web_form(r, "slug"), web_form(r, "name"), !strcmp(trust, "untrusted"),
                           web_form(r, "timezone"), &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : admin_page(r, u, e.status, e.msg);
    return web_redirect(r, 303, "/admin/agents");
}

int
authz_agent_pages_routes(void)
{
    web_route("GET", "/static/copy.js", WEB_NO_DB, serve_js);
    web_route("GET", "/agents", WEB_PAGE, get_agents);
    web_route("GET", "/agents/*/members", WEB_PAGE, get_members);
    web_route("POST", "/agents/*/members", WEB_PAGE, post_members);
    web_route("GET", "/agents/*/settings", WEB_PAGE, get_settings);
    web_route("POST", "/agents/*/settings", WEB_PAGE, post_settings);
    web_route("GET", "/admin/agents", WEB_PAGE, get_admin_agents);
    web_route("POST", "/admin/agents", WEB_PAGE, post_admin_agents);
    return 0;
}
