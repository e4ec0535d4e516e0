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
