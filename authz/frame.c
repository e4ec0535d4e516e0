/*
 * authz/frame.c — the page frame every authz page calls: the common layout
 * with the signed-in user's navigation.  Apart from the route registrar
 * (pages.c) so that the pages calling it and the registrar calling them
 * make no circle.
 */
#include "authz/authz_int.h"
#include <string.h>

char *
authz_page(struct web_req *r, struct authz_user *u, const char *title, const char *body)
{
    struct gh_arena *a = web_arena(r);
    char *nav = NULL;

    if (u) {
        bool admin = !strcmp(u->role, "admin");
        nav = gh_arena_printf(a,
            "<nav><a href=\"/profile\">Profile</a><a href=\"/profile/connections\">Connections</a>"
            "<a href=\"/profile/tokens\">Tokens</a>%s</nav>"
            "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
            "<span class=\"muted\">%s</span> <button class=\"secondary\" type=\"submit\">Sign out</button></form>",
            admin ? "<a href=\"/admin/connections\">Admin</a>" : "",
            web_csrf_token(r), gh_html_escape(a, u->email));
    }
    return web_page_nav(a, title, nav, body);
}
