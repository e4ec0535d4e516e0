/*
 * tests/unit/web/page.c — the console's navigation: the items each viewer
 * gets from the one table, the current item marked, the owner predicate
 * opening no admin item.
 */
#include "tests/unit/unit.h"
#include "web/web_int.h"

static int asked;
static bool owns(const char *user_id) { asked++; return !strcmp(user_id, "owner-id"); }

/* The header of the page a viewer gets at path. */
static const char *
render(struct gh_arena *a, const char *path, const char *id, bool admin)
{
    struct web_req *r = gh_arena_alloc(a, sizeof(*r));
    struct web_viewer v = { .user_id = id, .email = "who@example.test", .admin = admin };
    char *html, *end;

    memset(r, 0, sizeof(*r));
    r->arena = a;
    r->path = path;
    r->csrf = "c5rf";
    html = web_console_page(r, &v, "Title", "<p>body</p>");
    end = html ? strstr(html, "</header>") : NULL;
    if (end)
        *end = '\0';
    return html ? strstr(html, "<header>") : NULL;
}

static bool
has(const char *html, const char *s)
{
    return html && strstr(html, s) != NULL;
}

static void
test_member_and_admin(void)
{
    struct gh_arena *a = gh_arena_new(0);
    const char *m = render(a, "/profile/tokens", "member-id", false);
    const char *ad = render(a, "/admin/audit", "admin-id", true);

    UNIT_TRUE(has(m, "<nav aria-label=\"Console\"><a href=\"/agents\">Agents</a><a href=\"/profile/tokens\" "
                     "aria-current=\"page\">Tokens</a><a href=\"/profile/connections\">Apps</a>"
                     "<a href=\"/profile/activity\">Activity</a><a href=\"/profile/security\">Security</a></nav>"));
    UNIT_TRUE(!has(m, "/admin/"));
    UNIT_TRUE(has(m, "<input type=\"hidden\" name=\"csrf\" value=\"c5rf\">"));
    UNIT_TRUE(has(m, ">who@example.test</a>"));
    UNIT_TRUE(has(ad, "<a href=\"/profile/security\">Security</a><span class=\"group\">Admin</span>"
                      "<a href=\"/admin/agents\">Agents</a><a href=\"/admin/users\">Users</a>"
                      "<a href=\"/admin/connectors\">Connectors</a><a href=\"/admin/connections\">Apps</a>"
                      "<a href=\"/admin/audit\" aria-current=\"page\">Audit</a>"
                      "<a href=\"/admin/sso\">SSO</a></nav>"));
    gh_arena_free(a);
}

static void
test_current_item(void)
{
    struct gh_arena *a = gh_arena_new(0);

    /* a page below an item marks it; a path that merely starts alike does not */
    UNIT_TRUE(has(render(a, "/agents/ops/members", "m", false), "<a href=\"/agents\" aria-current=\"page\">"));
    UNIT_TRUE(!has(render(a, "/agentsx", "m", false), "aria-current"));
    UNIT_TRUE(!has(render(a, "/profile", "m", false), "aria-current"));
    UNIT_TRUE(has(render(a, "/admin/users", "m", true), "<a href=\"/admin/users\" aria-current=\"page\">"));
    gh_arena_free(a);
}

static void
test_owner_hook(void)
{
    struct gh_arena *a = gh_arena_new(0);
    const char *m;

    /* a registered predicate that says "owns" opens no admin item, and
     * while no row is for owners it is never asked (no query per page) */
    web_nav_owner_hook(owns);
    asked = 0;
    m = render(a, "/agents", "owner-id", false);
    UNIT_TRUE(has(m, "<a href=\"/profile/security\">Security</a></nav>"));
    UNIT_TRUE(!has(m, "/admin/"));
    UNIT_TRUE(!has(m, "class=\"group\""));
    UNIT_EQ_INT(asked, 0);
    UNIT_TRUE(has(render(a, "/agents", "admin-id", true), "<a href=\"/admin/agents\">Agents</a>"));
    UNIT_EQ_INT(asked, 0);
    web_nav_owner_hook(NULL);
    gh_arena_free(a);
}

int
main(void)
{
    UNIT_RUN(test_member_and_admin);
    UNIT_RUN(test_current_item);
    UNIT_RUN(test_owner_hook);
    return UNIT_DONE();
}
