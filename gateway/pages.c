/*
 * gateway/pages.c — the gateway's pages.
 *
 *   /admin/connectors    list per agent, add (header values write-only),
 *                        enable/disable, tool prefix (CSRF-protected
 *                        POSTs)                                      admins
 *   /admin/audit         the audit log: filters, keyset paging     admins
 *   /admin/audit.csv     the same rows as CSV                       admins
 *   /profile/activity    the signed-in member's own rows            members
 *   /agents/{slug}/audit the audit log of one agent                owners
 *
 * Policy ids and versions are shown to admins and owners, and to members
 * only for agents whose policies are their own (untrusted agents); the
 * policy filter is offered where they are shown.
 *
 * Everything from the database or the request is escaped on output; header
 * values are never rendered, not even back into a form after an error.
 */
#include "gateway/gw_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_ROWS   50
#define CSV_MAX     50000

static const char *
esc(struct gh_arena *a, const char *s)
{
    return s ? gh_html_escape(a, s) : "";
}

/* ---- /admin/connectors */

static char *
toggle_button(struct web_req *r, const struct gw_connector *c)
{
    struct gh_arena *a = web_arena(r);

    return gh_arena_printf(a,
        "<form method=\"post\" action=\"/admin/connectors/%s\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"agent\" value=\"%s\"><input type=\"hidden\" name=\"name\" value=\"%s\">"
        "<button class=\"%s\" type=\"submit\" data-connector=\"%s/%s\">%s</button></form>",
        c->enabled ? "disable" : "enable", web_csrf_token(r), esc(a, c->agent_slug), esc(a, c->name),
        c->enabled ? "danger" : "secondary", esc(a, c->agent_slug), esc(a, c->name),
        c->enabled ? "Disable" : "Enable");
}

/* The tool prefix of a row, and the form that sets it (empty: none). */
static char *
prefix_form(struct web_req *r, const struct gw_connector *c)
{
    struct gh_arena *a = web_arena(r);

    return gh_arena_printf(a,
        "<form method=\"post\" action=\"/admin/connectors/prefix\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"agent\" value=\"%s\"><input type=\"hidden\" name=\"name\" value=\"%s\">"
        "<input type=\"text\" name=\"prefix\" value=\"%s\" maxlength=\"32\" pattern=\"[A-Za-z0-9_.\\-]{0,32}\" "
        "aria-label=\"Tool prefix of %s\" placeholder=\"(none)\" data-prefix=\"%s/%s\">"
        "<button class=\"secondary\" type=\"submit\">Save</button></form>",
        web_csrf_token(r), esc(a, c->agent_slug), esc(a, c->name), esc(a, c->prefix), esc(a, c->name),
        esc(a, c->agent_slug), esc(a, c->name));
}

/* The <option>s of the agents, the selected one marked. */
static char *
agent_options(struct gh_arena *a, const char *selected, bool with_any, struct gh_err *e)
{
    PGresult *res = db_query(a, e, "SELECT slug, name FROM agents ORDER BY slug", 0);
    char *out;

    if (res == NULL)
        return NULL;
    out = gh_arena_strdup(a, with_any ? "<option value=\"\">any</option>" : "");
    for (int i = 0; i < PQntuples(res); i++)
        out = gh_arena_printf(a, "%s<option value=\"%s\"%s>%s (%s)</option>", out, esc(a, db_val(res, i, 0)),
                              selected && !strcmp(selected, db_val(res, i, 0)) ? " selected" : "",
                              esc(a, db_val(res, i, 1)), esc(a, db_val(res, i, 0)));
    return out;
}

static int
connectors_page(struct web_req *r, struct authz_user *u, int status, const char *error, const char *notice,
                const char *f_agent, const char *f_name, const char *f_url, const char *f_prefix,
                bool no_prefix)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    struct gw_connector *cs;
    char *rows, *opts, *body, *names;
    int n;

    if (gw_connector_list(a, NULL, &cs, &n, &e) < 0 || (opts = agent_options(a, f_agent, false, &e)) == NULL)
        return web_reply_err(r, &e);
    rows = gh_arena_strdup(a, "");
    for (int i = 0; i < n; i++) {
        names = gh_arena_strdup(a, "");
        for (int k = 0; k < cs[i].nheader_names; k++)
            names = gh_arena_printf(a, "%s%s<code>%s</code>", names, k ? " " : "",
                                    esc(a, cs[i].header_names[k]));
        rows = gh_arena_printf(a,
            "%s<tr data-connector=\"%s/%s\"><td>%s</td><td><code>%s</code>%s</td><td>%s</td><td>%s</td>"
            "<td>%s</td><td>%s</td><td>%s</td></tr>", rows,
            esc(a, cs[i].agent_slug), esc(a, cs[i].name), esc(a, cs[i].agent_slug), esc(a, cs[i].name),
            prefix_form(r, &cs[i]),
            esc(a, gw_connector_url_shown(a, cs[i].url)), cs[i].enabled ? "enabled" : "<span class=\"muted\">disabled</span>",
            cs[i].nheader_names ? names : "<span class=\"muted\">none</span>", esc(a, cs[i].created_at),
            gh_arena_printf(a, "%s<a href=\"/admin/connectors/auth?agent=%s&amp;name=%s\">Authentication</a>",
                            toggle_button(r, &cs[i]), esc(a, gh_url_encode(a, cs[i].agent_slug)),
                            esc(a, gh_url_encode(a, cs[i].name))));
    }
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>Connectors</h1>"
        "<p class=\"muted\">Upstream MCP servers (Streamable HTTP) behind each agent's endpoint. Their tools "
        "appear to clients as <code>prefix__tool</code>, the prefix being the connector's name unless you set "
        "another; an empty prefix keeps the upstream's own names. Policies name tools "
        "<code>Tool::\"connector/tool\"</code> whatever the prefix.</p>%s%s"
        "<table><thead><tr><th>Agent</th><th>Name, tool prefix</th><th>URL</th><th>Status</th><th>Headers</th>"
        "<th>Added (UTC)</th><th></th></tr></thead><tbody>%s</tbody></table>%s</div>"
        "<div class=\"card\"><h2>Add a connector</h2>"
        "<form method=\"post\" action=\"/admin/connectors\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"agent\">Agent</label><select id=\"agent\" name=\"agent\">%s</select>"
        "<label for=\"name\">Name</label>"
        "<input id=\"name\" type=\"text\" name=\"name\" value=\"%s\" required maxlength=\"32\" "
        "pattern=\"[a-z0-9][a-z0-9_\\-]{0,31}\" placeholder=\"github\">"
        "<label for=\"prefix\">Tool prefix (empty: the name)</label>"
        "<input id=\"prefix\" type=\"text\" name=\"prefix\" value=\"%s\" maxlength=\"32\" "
        "pattern=\"[A-Za-z0-9_.\\-]{0,32}\" placeholder=\"the connector's name\">"
        "<label><input type=\"checkbox\" name=\"no_prefix\" value=\"1\"%s> No prefix: the upstream's own "
        "tool names</label>"
        "<label for=\"url\">URL</label>"
        "<input id=\"url\" type=\"url\" name=\"url\" value=\"%s\" required placeholder=\"https://mcp.example.com/mcp\">"
        "<label for=\"headers\">Headers (one per line, <code>Name: value</code>)</label>"
        "<textarea id=\"headers\" name=\"headers\" rows=\"3\" autocomplete=\"off\" spellcheck=\"false\" "
        "placeholder=\"Authorization: Bearer …\"></textarea>"
        "<p class=\"muted\">Header values are stored encrypted and are never shown again.</p>"
        "<div class=\"actions\"><button type=\"submit\">Add connector</button></div></form></div>",
        error ? gh_arena_printf(a, "<p class=\"error\" role=\"alert\">%s</p>", esc(a, error)) : "",
        notice ? gh_arena_printf(a, "<p class=\"notice\">%s</p>", esc(a, notice)) : "",
        rows, n ? "" : "<p class=\"muted\">No connectors yet.</p>", web_csrf_token(r), opts,
        esc(a, f_name), esc(a, f_prefix), no_prefix ? " checked" : "", esc(a, f_url));
    return web_reply_html(r, status, authz_page(r, u, "Connectors", body));
}

static int
get_connectors(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    struct gh_arena *a;
    const char *added, *changed;

    if (u == NULL)
        return 0;
    a = web_arena(r);
    added = web_query(r, "added");
    changed = web_query(r, "changed");
    return connectors_page(r, u, 200, NULL,
                           added ? gh_arena_printf(a, "Connector %s added.", added)
                           : changed ? gh_arena_printf(a, "Connector %s changed.", changed) : NULL,
                           NULL, NULL, NULL, NULL, false);
}

/* A form field as a C string; *nul is set when it holds a NUL byte (sent
 * as %00), which would otherwise cut it short unseen: a header value, a
 * name or a URL other than the one typed. */
static const char *
form_field(struct web_req *r, const char *name, bool *nul)
{
    size_t len = 0;
    const char *v = web_form_n(r, name, &len);

    if (v && strlen(v) != len)
        *nul = true;
    return v;
}

/* Splits the textarea into header lines (CRLF or LF); blank lines skipped. */
static int
parse_header_lines(struct gh_arena *a, const char *text, struct gw_header *out, int *n, struct gh_err *e)
{
    const char *p = text ? text : "";

    *n = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line;

        if (len > 0 && p[len - 1] == '\r')
            len--;
        line = gh_arena_strndup(a, p, len);
        if (line == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "arena full");
        if (line[strspn(line, " \t")] != '\0') {
            if (*n >= GW_MAX_HEADERS)
                return gh_err_set(e, 400, "invalid_request", "at most 16 headers per connector", NULL);
            if (gw_header_parse(a, line, &out[*n], e) < 0)
                return -1;
            (*n)++;
        }
        p += nl ? (size_t)(nl - p) + 1 : len;
        if (!nl)
            break;
    }
    return 0;
}

static int
post_connectors(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    struct gh_arena *a;
    struct gw_header hdr[GW_MAX_HEADERS] = {0};
    bool nul = false;
    const char *agent = form_field(r, "agent", &nul), *name = form_field(r, "name", &nul);
    const char *url = form_field(r, "url", &nul), *headers = form_field(r, "headers", &nul);
    const char *prefix = form_field(r, "prefix", &nul);
    bool no_prefix = form_field(r, "no_prefix", &nul) != NULL;
    struct gh_err e = {0};
    int n = 0, rc;

    if (u == NULL)
        return 0;
    a = web_arena(r);
    if (nul)
        gh_err_set(&e, 400, "invalid_request", "the form must not contain NUL characters", NULL);
    if (no_prefix)
        prefix = "";
    else if (prefix && !*prefix)
        prefix = NULL;          /* left empty: the name */
    if (nul || gw_connector_prefix_check(prefix, &e) < 0 || parse_header_lines(a, headers, hdr, &n, &e) < 0 ||
        gw_connector_add(a, agent ? agent : "", name, url, hdr, n, NULL, &e) < 0 ||
        (prefix && gw_connector_set_prefix(a, agent ? agent : "", name, prefix, &e) < 0)) {
        if (e.status >= 500)
            rc = web_reply_err(r, &e);
        else
            rc = connectors_page(r, u, e.status ? e.status : 400,
                                 e.status == 404 ? "No such agent." : e.msg, NULL, agent, name, url,
                                 no_prefix ? NULL : prefix, no_prefix);
    } else {
        GH_LOG(INFO, "connector_added_by", "admin %s added connector %s", u->id, name);
        rc = web_redirect(r, 303, gh_arena_printf(a, "/admin/connectors?added=%s", gh_url_encode(a, name)));
    }
    for (int i = 0; i < n; i++)
        if (hdr[i].value)
            gh_wipe(hdr[i].value, strlen(hdr[i].value));
    return rc;
}

static int
post_toggle(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    bool nul = false;
    const char *agent = form_field(r, "agent", &nul), *name = form_field(r, "name", &nul);
    bool on = !strcmp(web_path(r), "/admin/connectors/enable");
    struct gh_arena *a;
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    a = web_arena(r);
    if (nul)
        gh_err_set(&e, 400, "invalid_request", "the form must not contain NUL characters", NULL);
    if (nul || gw_connector_set_enabled(a, agent ? agent : "", name, on, &e) < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        return connectors_page(r, u, e.status, e.msg, NULL, NULL, NULL, NULL, NULL, false);
    }
    GH_LOG(INFO, "connector_toggled_by", "admin %s %s connector %s", u->id, on ? "enabled" : "disabled", name);
    return web_redirect(r, 303, gh_arena_printf(a, "/admin/connectors?changed=%s", gh_url_encode(a, name)));
}

static int
post_prefix(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    bool nul = false;
    const char *agent = form_field(r, "agent", &nul), *name = form_field(r, "name", &nul);
    const char *prefix = form_field(r, "prefix", &nul);
    struct gh_arena *a;
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    a = web_arena(r);
    if (nul)
        gh_err_set(&e, 400, "invalid_request", "the form must not contain NUL characters", NULL);
    /* an empty field: none, the upstream's own names */
    if (nul || gw_connector_set_prefix(a, agent ? agent : "", name, prefix ? prefix : "", &e) < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        return connectors_page(r, u, e.status, e.msg, NULL, NULL, NULL, NULL, NULL, false);
    }
    GH_LOG(INFO, "connector_prefix_by", "admin %s set the tool prefix of connector %s", u->id, name);
    return web_redirect(r, 303, gh_arena_printf(a, "/admin/connectors?changed=%s", gh_url_encode(a, name)));
}

/* ---- the audit log */

struct audit_filter {
    const char *agent, *user, *client, *tool, *decision, *from, *to;
    const char *policy;           /* a policy id among the row's policy_ids */
    bool        all_policies;     /* the viewer may see every row's policy ids */
    bool        fixed;            /* one agent's page: agent is the path's */
    const char *own_user_id;      /* /profile/activity: the member's own rows */
    const char *before, *after;   /* keyset cursors "<at in µs>.<id>" */
    long        limit;
};

static const char SQL_AUDIT[] =
    "SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), agent_slug, user_email,"
    "       credential_kind, key_suffix, client_id, client_name, session_id, request_id, method, tool,"
    "       connector, decision, policy_ids, policy_versions, message, upstream_status, duration_us,"
    "       (extract(epoch FROM at) * 1000000)::bigint || '.' || id,"
    /* 20: whether the viewer sees the row's policy ids (owners and admins;
     * a member on an untrusted agent, whose policies are their own) */
    "       $11::boolean OR EXISTS (SELECT 1 FROM agents g WHERE g.id = audit_events.agent_id AND (g.untrusted"
    "           OR EXISTS (SELECT 1 FROM agent_members m WHERE m.agent_id = g.id AND m.user_id = $8::uuid"
    "                      AND m.state = 'approved' AND m.role = 'owner')))"
    "  FROM audit_events"
    " WHERE ($1::text IS NULL OR agent_slug = $1)"
    "   AND ($2::text IS NULL OR user_email ILIKE '%' || $2 || '%')"
    "   AND ($3::text IS NULL OR client_id = $3 OR client_name ILIKE '%' || $3 || '%')"
    "   AND ($4::text IS NULL OR tool = $4)"
    "   AND ($5::text IS NULL OR decision = $5)"
    "   AND ($6::timestamptz IS NULL OR at >= $6::timestamptz)"
    "   AND ($7::timestamptz IS NULL OR at < $7::timestamptz)"
    "   AND ($8::uuid IS NULL OR user_id = $8::uuid)"
    /* the form the GIN index of migration 073 answers */
    "   AND ($12::text IS NULL OR string_to_array(policy_ids, ',') @> ARRAY[$12::text])";

static const char *
nz(const char *s)
{
    return s && *s ? s : NULL;
}

/* "YYYY-MM-DD", "YYYY-MM-DDTHH:MM" or "...:SS" (UTC) → a timestamptz literal. */
static int
time_param(struct gh_arena *a, const char *in, const char *which, const char **out, struct gh_err *e)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t n = in ? strlen(in) : 0;

    *out = NULL;
    if (n == 0)
        return 0;
    if (n != 10 && n != 16 && n != 19)
        goto bad;
    for (size_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? (in[i] < '0' || in[i] > '9') : (in[i] != shape[i] && !(i == 10 && in[i] == ' ')))
            goto bad;
    *out = gh_arena_printf(a, "%.10s %s+00", in, n > 10 ? in + 11 : "00:00");
    return 0;
bad:
    return gh_err_set(e, 400, "invalid_request",
                      "from and to must be a date and time in UTC: YYYY-MM-DDTHH:MM", "bad %s", which);
}

static int
cursor_ok(const char *c)
{
    size_t n = c ? strlen(c) : 0, dot = c ? strcspn(c, ".") : 0;

    if (n == 0 || n > 40 || dot == 0 || dot >= n - 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (i != dot && (c[i] < '0' || c[i] > '9'))
            return 0;
    return 1;
}

/* Runs the query.  limit 0 = CSV (newest first, capped). *reversed is set
 * when the rows came oldest-first (paging back) and must be shown reversed. */
static PGresult *
audit_query(struct gh_arena *a, const struct audit_filter *f, long limit, bool *reversed,
            const char *from, const char *to, struct gh_err *e)
{
    const char *cur = NULL, *params[12];
    char lim[24], *sql;
    bool back = false;
    struct db_conn *c;
    PGresult *res;

    if (limit > 0 && nz(f->after) && cursor_ok(f->after)) {
        cur = f->after;
        back = true;
    } else if (limit > 0 && nz(f->before) && cursor_ok(f->before)) {
        cur = f->before;
    }
    snprintf(lim, sizeof(lim), "%ld", limit > 0 ? limit + 1 : CSV_MAX + 1);
    sql = gh_arena_printf(a,
        "%s AND ($9::text IS NULL OR (at, id) %s (timestamptz 'epoch' + split_part($9, '.', 1)::bigint"
        "          * interval '1 microsecond', split_part($9, '.', 2)::bigint))"
        " ORDER BY at %s, id %s LIMIT $10::int",
        SQL_AUDIT, back ? ">" : "<", back ? "ASC" : "DESC", back ? "ASC" : "DESC");
    params[0] = nz(f->agent);
    params[1] = nz(f->user);
    params[2] = nz(f->client);
    params[3] = nz(f->tool);
    params[4] = nz(f->decision);
    params[5] = from;
    params[6] = to;
    params[7] = f->own_user_id;
    params[8] = cur;
    params[9] = lim;
    params[10] = f->all_policies ? "true" : "false";
    params[11] = nz(f->policy);
    *reversed = back;
    c = db_get(e);
    if (c == NULL)
        return NULL;
    res = db_execv(c, a, e, sql, 12, params);
    db_put(c);
    /* a date PostgreSQL refuses (2026-02-30) or a cursor out of range is
     * the caller's mistake, not ours */
    if (res == NULL && !strncmp(e->code, "22", 2)) {
        gh_err_clear(e);
        gh_err_set(e, 400, "invalid_request", "a filter or page link is not valid", NULL);
    }
    return res;
}

static void
filter_read(struct web_req *r, struct audit_filter *f)
{
    f->agent = web_query(r, "agent");
    f->user = web_query(r, "user");
    f->client = web_query(r, "client");
    f->tool = web_query(r, "tool");
    f->decision = web_query(r, "decision");
    f->policy = web_query(r, "policy");
    f->from = web_query(r, "from");
    f->to = web_query(r, "to");
    f->before = web_query(r, "before");
    f->after = web_query(r, "after");
}

/* The filters as a query string (without the cursors), for links. */
static char *
filter_query(struct gh_arena *a, const struct audit_filter *f)
{
    const char *names[] = { "agent", "user", "client", "tool", "decision", "policy", "from", "to" };
    const char *vals[] = { f->agent, f->user, f->client, f->tool, f->decision, f->policy, f->from, f->to };
    char *q = gh_arena_strdup(a, "");

    for (size_t i = 0; i < GH_ARRAY_LEN(names); i++)
        if (nz(vals[i]) && !(f->own_user_id && !strcmp(names[i], "user")) && !(f->fixed && !strcmp(names[i], "agent")))
            q = gh_arena_printf(a, "%s%s%s=%s", q, *q ? "&" : "", names[i], gh_url_encode(a, vals[i]));
    return q;
}

static char *
duration_ms(struct gh_arena *a, const char *us)
{
    return us ? gh_arena_printf(a, "%.1f", (double)atoll(us) / 1000.0) : "";
}

/* The row's policies, "id@version" each (a link to the rows of that policy
 * where the page filters by policy), when the viewer may see them. */
static const char *
policy_cell(struct gh_arena *a, PGresult *res, int i, const char *base, bool links)
{
    const char *ids = db_val(res, i, 14), *vers = db_val(res, i, 15);
    char *out = gh_arena_strdup(a, ""), *il, *vl, *sp1, *sp2;

    if (ids == NULL || !db_bool(res, i, 20))
        return "";
    il = gh_arena_strdup(a, ids);
    vl = gh_arena_strdup(a, vers ? vers : "");
    if (il == NULL || vl == NULL)
        return "";
    for (char *id = strtok_r(il, ",", &sp1), *v = strtok_r(vl, ",", &sp2); id;
         id = strtok_r(NULL, ",", &sp1), v = v ? strtok_r(NULL, ",", &sp2) : NULL)
        /* the first 8 characters of the id say which; the whole one is its title */
        out = links ? gh_arena_printf(a, "%s%s<a class=\"policy\" title=\"%s\" href=\"%s?policy=%s\">%.8s@%s</a>", out,
                                      *out ? " " : "", esc(a, id), base, esc(a, gh_url_encode(a, id)), esc(a, id),
                                      esc(a, v ? v : "?"))
                    : gh_arena_printf(a, "%s%s<span class=\"policy\" title=\"%s\">%.8s@%s</span>", out,
                                      *out ? " " : "", esc(a, id), esc(a, id), esc(a, v ? v : "?"));
    return gh_arena_printf(a, "<br><span class=\"muted\">policy %s</span>", out);
}

/* The rows of the page, newest first. */
static char *
audit_rows(struct gh_arena *a, PGresult *res, int n, bool reversed, bool mine, const char *base, bool links)
{
    char *rows = gh_arena_strdup(a, "");

    for (int k = 0; k < n; k++) {
        int i = reversed ? n - 1 - k : k;
        const char *suffix = db_val(res, i, 5), *client = db_val(res, i, 7) ? db_val(res, i, 7) : db_val(res, i, 6);
        const char *ms = duration_ms(a, db_val(res, i, 18));
        char *cred = gh_arena_printf(a, "%s%s%s", esc(a, db_val(res, i, 4)), suffix ? " …" : "", esc(a, suffix));
        rows = gh_arena_printf(a,
            "%s<tr class=\"audit-row\" data-id=\"%s\"><td title=\"session %s, request %s\">%s</td>"
            "<td>%s<br><span class=\"muted\">%s%s%s</span></td><td>%s</td>"
            "<td>%s<br><code>%s</code></td><td>%s<br><span class=\"muted\">%s</span>%s</td>"
            "<td>%s<br><span class=\"muted\">%s%s</span></td></tr>", rows,
            db_val(res, i, 0), esc(a, db_val(res, i, 8) ? db_val(res, i, 8) : "-"),
            esc(a, db_val(res, i, 9) ? db_val(res, i, 9) : "-"), esc(a, db_val(res, i, 1)),
            /* admins: who, then client and credential; members: the client */
            mine ? esc(a, client) : esc(a, db_val(res, i, 3)), mine ? "" : esc(a, client),
            mine || !client ? "" : " · ", cred,
            esc(a, db_val(res, i, 2)), esc(a, db_val(res, i, 10)), esc(a, db_val(res, i, 11)),
            esc(a, db_val(res, i, 13)), esc(a, db_val(res, i, 16)), policy_cell(a, res, i, base, links),
            db_val(res, i, 17) ? esc(a, db_val(res, i, 17)) : "-", ms, *ms ? " ms" : "");
    }
    return rows;
}

/* ag: one agent's page (owners); else mine: the member's own rows, or
 * the whole log (admins). */
static int
audit_page(struct web_req *r, struct authz_user *u, bool mine, const struct authz_agent *ag)
{
    struct gh_arena *a = web_arena(r);
    struct audit_filter f = {0};
    struct gh_err e = {0};
    const char *from, *to, *base = ag ? gh_arena_printf(a, "/agents/%s/audit", ag->slug)
                                      : mine ? "/profile/activity" : "/admin/audit";
    char *rows, *body, *opts, *fq, *nav = "", *filters;
    bool reversed, more;
    PGresult *res;
    int n, first, last;

    filter_read(r, &f);
    f.all_policies = !mine;
    if (mine) {
        f.own_user_id = u->id;
        f.user = NULL;
        f.policy = NULL;        /* not offered: the ids are not all theirs to see */
    }
    if (ag) {
        f.agent = ag->slug;
        f.fixed = true;
    }
    if (time_param(a, f.from, "from", &from, &e) < 0 || time_param(a, f.to, "to", &to, &e) < 0)
        return web_reply_err(r, &e);
    res = audit_query(a, &f, PAGE_ROWS, &reversed, from, to, &e);
    if (res == NULL || (opts = agent_options(a, f.agent, true, &e)) == NULL)
        return web_reply_err(r, &e);
    n = PQntuples(res);
    more = n > PAGE_ROWS;
    if (more)
        n = PAGE_ROWS;
    rows = audit_rows(a, res, n, reversed, mine, base, !mine);
    /* newer rows exist when we paged back and found more, or paged forward
     * at all; older ones when forward paging found more, or we came back */
    fq = filter_query(a, &f);
    if (n > 0) {
        first = reversed ? n - 1 : 0;
        last = reversed ? 0 : n - 1;
        bool has_newer = reversed ? more : nz(f.before) != NULL;
        bool has_older = reversed ? true : more;
        nav = gh_arena_printf(a, "<div class=\"actions\">%s%s</div>",
            has_newer ? gh_arena_printf(a, "<a rel=\"prev\" href=\"%s?%s%safter=%s\">← Newer</a>", base,
                                        esc(a, fq), *fq ? "&amp;" : "", db_val(res, first, 19)) : "",
            has_older ? gh_arena_printf(a, "<a rel=\"next\" href=\"%s?%s%sbefore=%s\">Older →</a>", base,
                                        esc(a, fq), *fq ? "&amp;" : "", db_val(res, last, 19)) : "");
    } else if (nz(f.before) || nz(f.after)) {
        nav = gh_arena_printf(a, "<div class=\"actions\"><a href=\"%s?%s\">Back to the newest</a></div>", base,
                              esc(a, fq));
    }
    filters = gh_arena_printf(a,
        "<form method=\"get\" action=\"%s\" class=\"filters\"><table><tr>%s%s"
        "<td><label for=\"client\">Client (id or name)</label>"
        "<input id=\"client\" type=\"text\" name=\"client\" value=\"%s\"></td>"
        "<td><label for=\"tool\">Tool</label><input id=\"tool\" type=\"text\" name=\"tool\" value=\"%s\"></td>"
        "</tr><tr><td><label for=\"decision\">Decision</label><select id=\"decision\" name=\"decision\">"
        "<option value=\"\">any</option><option value=\"allow\"%s>allow</option>"
        "<option value=\"deny\"%s>deny</option></select></td>"
        "<td><label for=\"from\">From (UTC)</label>"
        "<input id=\"from\" type=\"datetime-local\" name=\"from\" value=\"%s\"></td>"
        "<td><label for=\"to\">To (UTC)</label>"
        "<input id=\"to\" type=\"datetime-local\" name=\"to\" value=\"%s\"></td>%s</tr></table>"
        "<div class=\"actions\"><button type=\"submit\" class=\"secondary\">Filter</button>%s</div></form>",
        base,
        ag ? "" : gh_arena_printf(a, "<td><label for=\"agent\">Agent</label><select id=\"agent\" name=\"agent\">%s"
                                     "</select></td>", opts),
        mine ? "" : gh_arena_printf(a, "<td><label for=\"user\">User email contains</label>"
                                       "<input id=\"user\" type=\"text\" name=\"user\" value=\"%s\"></td>",
                                    esc(a, f.user)),
        esc(a, f.client), esc(a, f.tool),
        f.decision && !strcmp(f.decision, "allow") ? " selected" : "",
        f.decision && !strcmp(f.decision, "deny") ? " selected" : "",
        esc(a, f.from), esc(a, f.to),
        mine ? "" : gh_arena_printf(a, "<td><label for=\"policy\">Policy id</label>"
                                       "<input id=\"policy\" type=\"text\" name=\"policy\" value=\"%s\"></td>",
                                    esc(a, f.policy)),
        mine || ag ? "" : gh_arena_printf(a, "<a id=\"csv\" class=\"secondary\" href=\"/admin/audit.csv%s%s\">"
                                             "Export CSV</a>", *fq ? "?" : "", esc(a, fq)));
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>%s</h1><p class=\"muted\">%s</p>%s</div>"
        "<div class=\"card\"><table><thead><tr><th>Time (UTC)</th>%s<th>Agent</th><th>Request</th>"
        "<th>Decision</th><th>Upstream</th></tr></thead><tbody>%s</tbody></table>%s%s</div>",
        ag ? gh_arena_printf(a, "Audit log of %s", esc(a, ag->name)) : mine ? "Your activity" : "Audit log",
        mine ? "Every MCP request made with your tokens, newest first."
             : "One row per MCP request that reached the gateway, allowed or denied, newest first.",
        filters, mine ? "<th>Client</th>" : "<th>User</th>", rows,
        n ? "" : "<p class=\"muted\">No matching requests.</p>", nav);
    return web_reply_html(r, 200, authz_page(r, u, mine ? "Activity" : "Audit log", body));
}

static int
get_audit(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);

    return u ? audit_page(r, u, false, NULL) : 0;
}

static int
get_activity(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);

    return u ? audit_page(r, u, true, NULL) : 0;
}

/* /agents/{slug}/audit: the agent's rows, for its owners and admins. */
static int
get_agent_audit(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    struct authz_agent *ag;
    PGresult *res;

    if (u == NULL)
        return 0;
    if ((ag = authz_agent_by_slug(a, web_path_param(r, 0), &e)) == NULL)
        return e.status >= 500 ? web_reply_err(r, &e)
                               : authz_page_sentence(r, u, 404, "No such agent", "There is no agent at this address.");
    res = db_query(a, &e, "SELECT $2 = 'admin' OR EXISTS (SELECT 1 FROM agent_members WHERE agent_id = $1"
                          "   AND user_id = $3::uuid AND state = 'approved' AND role = 'owner')",
                   3, ag->id, u->role, u->id);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (!db_bool(res, 0, 0))
        return authz_page_sentence(r, u, 403, "Owners only",
                                   "The audit log of an agent is for its owners: see your own requests under Activity.");
    return audit_page(r, u, false, ag);
}

/* ---- CSV */

struct buf {
    char  *p;
    size_t len, cap;
    bool   oom;
};

static void
buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* RFC 4180 quoting; a cell a spreadsheet would run as a formula gets a
 * leading apostrophe. */
static void
csv_cell(struct buf *b, const char *s, bool last)
{
    if (s == NULL)
        s = "";
    bool formula = strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0';
    if (formula || strpbrk(s, ",\"\r\n")) {
        buf_put(b, "\"", 1);
        if (formula)
            buf_put(b, "'", 1);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                buf_put(b, "\"", 1);
            buf_put(b, p, 1);
        }
        buf_put(b, "\"", 1);
    } else {
        buf_put(b, s, strlen(s));
    }
    buf_put(b, last ? "\r\n" : ",", last ? 2 : 1);
}

static int
get_audit_csv(struct web_req *r)
{
    static const char *const head[] = {
        "id", "time_utc", "agent", "user", "credential_kind", "key_suffix", "client_id", "client_name",
        "session_id", "request_id", "method", "tool", "connector", "decision", "policy_ids",
        "policy_versions", "message", "upstream_status", "duration_us",
    };
    struct authz_user *u = authz_require_admin(r);
    struct audit_filter f = {0};
    struct buf b = {0};
    struct gh_arena *a;
    struct gh_err e = {0};
    const char *from, *to;
    bool reversed;
    PGresult *res;
    int n, rc;

    if (u == NULL)
        return 0;
    a = web_arena(r);
    filter_read(r, &f);
    f.before = f.after = NULL;
    f.all_policies = true;
    if (time_param(a, f.from, "from", &from, &e) < 0 || time_param(a, f.to, "to", &to, &e) < 0)
        return web_reply_err(r, &e);
    res = audit_query(a, &f, 0, &reversed, from, to, &e);
    if (res == NULL)
        return web_reply_err(r, &e);
    n = PQntuples(res);
    if (n > CSV_MAX) {
        n = CSV_MAX;
        web_add_header(r, "X-Gatehouse-Truncated", "50000");
    }
    for (size_t k = 0; k < GH_ARRAY_LEN(head); k++)
        csv_cell(&b, head[k], k + 1 == GH_ARRAY_LEN(head));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 19; k++)
            csv_cell(&b, db_val(res, i, k), k == 18);
    if (b.oom) {
        free(b.p);
        gh_err_set(&e, 500, "server_error", "internal error", "csv: out of memory");
        return web_reply_err(r, &e);
    }
    web_add_header(r, "Content-Disposition", "attachment; filename=\"gatehouse-audit.csv\"");
    web_add_header(r, "Cache-Control", "no-store");
    rc = web_reply(r, 200, "text/csv; charset=utf-8", b.p, b.len);
    free(b.p);
    return rc;
}

int
gw_pages_register_routes(void)
{
    web_route("GET", "/admin/connectors", WEB_PAGE, get_connectors);
    web_route("POST", "/admin/connectors", WEB_PAGE, post_connectors);
    web_route("POST", "/admin/connectors/enable", WEB_PAGE, post_toggle);
    web_route("POST", "/admin/connectors/disable", WEB_PAGE, post_toggle);
    web_route("POST", "/admin/connectors/prefix", WEB_PAGE, post_prefix);
    web_route("GET", "/admin/audit", WEB_PAGE, get_audit);
    web_route("GET", "/admin/audit.csv", WEB_PAGE, get_audit_csv);
    web_route("GET", "/profile/activity", WEB_PAGE, get_activity);
    web_route("GET", "/agents/*/audit", WEB_PAGE, get_agent_audit);
    return 0;
}
