/*
 * authz/frame.c — the page frame every signed-in page calls: the signed-in
 * user handed to web/'s console layout, which draws the one navigation.
 * Apart from the route registrar (pages.c) so that the pages calling it and
 * the registrar calling them make no circle.
 */
#include "authz/authz_int.h"
#include <string.h>

char *
authz_page(struct web_req *r, struct authz_user *u, const char *title, const char *body)
{
    struct web_viewer v;

    if (u == NULL)
        return web_page(web_arena(r), title, body);
    v = (struct web_viewer){ .user_id = u->id, .email = u->email, .admin = !strcmp(u->role, "admin") };
    return web_console_page(r, &v, title, body);
}

/* A page in the console's layout saying, in a sentence, why there is
 * nothing to show (a 403, a 404 where a page belongs, a bad request). */
int
authz_page_sentence(struct web_req *r, struct authz_user *u, int status, const char *title, const char *text)
{
    struct gh_arena *a = web_arena(r);

    return web_reply_html(r, status, authz_page(r, u, title, gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>%s</h1><p id=\"sentence\">%s</p><p><a href=\"/agents\">Your agents</a></p></div>",
        gh_html_escape(a, title), gh_html_escape(a, text))));
}

/* A form's error above its fields, or nothing. */
const char *
authz_page_error_box(struct gh_arena *a, const char *error)
{
    return error ? gh_arena_printf(a, "<p class=\"error\" role=\"alert\">%s</p>", gh_html_escape(a, error)) : "";
}
