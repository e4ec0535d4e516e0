/*
 * web/page.c — the common page layout, the console's one navigation and the
 * one stylesheet.  No inline script: the CSP allows scripts from the server
 * only (script-src 'self').
 */
#include "web/web_int.h"
#include <string.h>

static const char CSS[] =
    ":root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--accent:#2456d6;--bad:#b42318;--bg:#f6f7f9}"
    "*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "color:var(--fg);background:var(--bg)}"
    "header{background:#fff;border-bottom:1px solid var(--line);padding:10px 20px;display:flex;gap:8px 16px;align-items:center}"
    "header .brand{font-weight:700;letter-spacing:.2px;color:var(--fg);text-decoration:none}"
    "header nav{flex:1;min-width:0;display:flex;flex-wrap:wrap;align-items:center;gap:4px 10px;font-size:14px}"
    "header nav a{color:var(--muted);text-decoration:none;padding:2px 0;border-bottom:2px solid transparent}"
    "header nav a:hover{color:var(--fg)}header nav a[aria-current=page]{color:var(--fg);border-bottom-color:var(--accent)}"
    "header nav .group{font-size:12px;text-transform:uppercase;letter-spacing:.6px;color:var(--muted);"
    "border-left:1px solid var(--line);padding-left:10px}"
    "header form{margin-left:auto;display:flex;align-items:center;gap:10px;white-space:nowrap;font-size:14px}"
    "header form a{color:var(--muted);max-width:170px;overflow:hidden;text-overflow:ellipsis}"
    "header form button{padding:5px 12px}"
    "main{max-width:880px;margin:32px auto;padding:0 24px}"
    ".card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:24px 28px;margin-bottom:20px}"
    ".narrow{max-width:420px;margin:48px auto}"
    "h1{font-size:22px;margin:0 0 16px}h2{font-size:17px;margin:24px 0 8px}"
    "label{display:block;margin:12px 0 4px;font-weight:600}"
    "input[type=text],input[type=email],input[type=password],input[type=number],input[type=url],select,textarea{width:100%;padding:9px 10px;"
    "border:1px solid var(--line);border-radius:6px;font:inherit}"
    "button{font:inherit;padding:8px 16px;border-radius:6px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}"
    "button.secondary{background:#fff;color:var(--fg);border-color:var(--line)}button.danger{background:var(--bad);border-color:var(--bad)}"
    ".actions{display:flex;gap:10px;margin-top:20px}"
    ".error{color:var(--bad);background:#fef3f2;border:1px solid #fecdca;padding:8px 12px;border-radius:6px}"
    ".notice{background:#eff4ff;border:1px solid #c7d7fe;padding:8px 12px;border-radius:6px}"
    ".muted{color:var(--muted)}code{background:#eef0f4;padding:1px 5px;border-radius:4px}"
    "table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:8px 6px;border-bottom:1px solid var(--line);vertical-align:top}"
    "th{font-size:13px;color:var(--muted);font-weight:600}td form{display:inline}td.actions{white-space:nowrap}"
    "textarea.code,pre.diff{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
    "pre{overflow-x:auto;white-space:pre-wrap;word-break:break-word}ul.error{padding-left:28px}"
    "pre.diff{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 0}"
    "pre.diff span{display:block;padding:0 10px}pre.diff .add{background:#e6ffec}pre.diff .del{background:#ffebe9}"
    "pre.diff .hunk{color:var(--muted);background:#f1f4fb}";

static int
serve_css(struct web_req *r)
{
    web_add_header(r, "Cache-Control", "public, max-age=3600");
    return web_reply(r, 200, "text/css; charset=utf-8", CSS, sizeof(CSS) - 1);
}

int
web_static_register(void)
{
    return web_route("GET", "/static/gatehouse.css", WEB_NO_DB, serve_css);
}

char *
web_page_nav(struct gh_arena *a, const char *title, const char *nav_html, const char *body_html)
{
    return gh_arena_printf(a,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<title>%s · Gatehouse</title><link rel=\"stylesheet\" href=\"/static/gatehouse.css\">"
        "</head><body><header><a class=\"brand\" href=\"/\">Gatehouse</a>%s</header>"
        "<main>%s</main></body></html>",
        gh_html_escape(a, title), nav_html ? nav_html : "", body_html);
}

char *
web_page(struct gh_arena *a, const char *title, const char *body_html)
{
    return web_page_nav(a, title, NULL, body_html);
}

/* ---- the console's navigation
 * One table: every signed-in page shows the items its viewer may use, in
 * this order, so no page grows a navigation of its own.  An item for the
 * owners of some agent is a row with NAV_OWNER: none yet, /admin/agents
 * being for admins; the predicate is asked only when such a row is drawn. */

enum nav_who {
    NAV_SIGNED_IN,      /* everyone signed in */
    NAV_OWNER,          /* owners of some agent (admins own every agent) */
    NAV_ADMIN,          /* admins */
};

static const struct nav_item {
    const char  *href;
    const char  *label;
    enum nav_who who;
} NAV[] = {
    { "/agents",              "Agents",      NAV_SIGNED_IN },
    { "/profile/tokens",      "Tokens",      NAV_SIGNED_IN },
    { "/profile/connections", "Apps",        NAV_SIGNED_IN },
    { "/profile/activity",    "Activity",    NAV_SIGNED_IN },
    { "/profile/security",    "Security",    NAV_SIGNED_IN },
    { "/admin/agents",        "Agents",      NAV_ADMIN },
    { "/admin/users",         "Users",       NAV_ADMIN },
    { "/admin/connectors",    "Connectors",  NAV_ADMIN },
    { "/admin/connections",   "Apps",        NAV_ADMIN },
    { "/admin/audit",         "Audit",       NAV_ADMIN },
    { "/admin/sso",           "SSO",         NAV_ADMIN },
};

/* Set once at start-up, before the server threads run. */
static bool (*owner_hook)(const char *user_id);

void
web_nav_owner_hook(bool (*owns_any_agent)(const char *user_id))
{
    owner_hook = owns_any_agent;
}

/* The item a path belongs to: its own href or one below it. */
static bool
nav_current(const char *href, const char *path)
{
    size_t n = strlen(href);

    return path && !strncmp(path, href, n) && (path[n] == '\0' || path[n] == '/');
}

static char *
nav_html(struct web_req *r, const struct web_viewer *v)
{
    struct gh_arena *a = web_arena(r);
    const char *path = web_path(r);
    /* the predicate is asked only when an owner item is to be decided */
    int owner = v->admin ? 1 : owner_hook ? -1 : 0;
    bool grouped = false;
    char *out = gh_arena_strdup(a, "<nav aria-label=\"Console\">");

    for (size_t i = 0; i < GH_ARRAY_LEN(NAV) && out; i++) {
        const struct nav_item *it = &NAV[i];

        if (it->who == NAV_ADMIN && !v->admin)
            continue;
        if (it->who == NAV_OWNER) {
            if (owner < 0)
                owner = owner_hook(v->user_id) ? 1 : 0;
            if (!owner)
                continue;
        }
        if (it->who != NAV_SIGNED_IN && !grouped) {
            out = gh_arena_printf(a, "%s<span class=\"group\">%s</span>", out, v->admin ? "Admin" : "Manage");
            grouped = true;
        }
        out = gh_arena_printf(a, "%s<a href=\"%s\"%s>%s</a>", out, it->href,
                              nav_current(it->href, path) ? " aria-current=\"page\"" : "", it->label);
    }
    return out ? gh_arena_printf(a, "%s</nav>", out) : NULL;
}

char *
web_console_page(struct web_req *r, const struct web_viewer *v, const char *title, const char *body_html)
{
    struct gh_arena *a = web_arena(r);
    char *nav = nav_html(r, v);

    if (nav)
        nav = gh_arena_printf(a,
            "%s<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
            "<a href=\"/profile\" title=\"%s\">%s</a> <button class=\"secondary\" type=\"submit\">Sign out</button></form>",
            nav, web_csrf_token(r), gh_html_escape(a, v->email), gh_html_escape(a, v->email));
    return web_page_nav(a, title, nav, body_html);
}
