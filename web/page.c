/*
 * web/page.c — the common page layout and the one stylesheet.  No inline
 * script: the CSP allows scripts from the server only (script-src 'self').
 */
#include "web/web_int.h"
#include <string.h>

static const char CSS[] =
    ":root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--accent:#2456d6;--bad:#b42318;--bg:#f6f7f9}"
    "*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "color:var(--fg);background:var(--bg)}"
    "header{background:#fff;border-bottom:1px solid var(--line);padding:10px 24px;display:flex;gap:18px;align-items:center}"
    "header .brand{font-weight:700;letter-spacing:.2px}header nav a{margin-right:14px;color:var(--muted);text-decoration:none}"
    "header form{margin-left:auto}"
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
    "th{font-size:13px;color:var(--muted);font-weight:600}td form{display:inline}";

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
        "</head><body><header><span class=\"brand\">Gatehouse</span>%s</header>"
        "<main>%s</main></body></html>",
        gh_html_escape(a, title), nav_html ? nav_html : "", body_html);
}

char *
web_page(struct gh_arena *a, const char *title, const char *body_html)
{
    return web_page_nav(a, title, NULL, body_html);
}
