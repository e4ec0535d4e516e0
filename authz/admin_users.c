/*
 * authz/admin_users.c — /admin/users: every account, and an admin's four
 * actions on one (disable, enable, make admin, remove admin), each a
 * CSRF-protected POST /admin/users/{action} naming the user by id.
 *
 * The server never loses its last active administrator: disabling or
 * demoting an active admin is refused (409) unless another active admin
 * remains.  The check and the change are one statement that first locks
 * the rows of every active admin, so two admins removing each other at
 * once cannot both succeed: the second finds the first's change.
 */
#include "authz/authz_int.h"
#include <string.h>

#define LIST_MAX  500
#define LIST_MAXS "500"

/* $1 the user id.  The CTE locks every active admin before the guard
 * reads them (see above); a row comes back only when something changed. */
#define ACTIVE_ADMINS "WITH admins AS (SELECT id FROM users WHERE role = 'admin' AND NOT disabled FOR UPDATE) "

static const struct user_action {
    const char *name;       /* POST /admin/users/{name} */
    const char *sql;
    bool        guarded;    /* refused when it would leave no active admin */
    const char *done;       /* the notice: "<email> <done>." */
} ACTIONS[] = {
    { "disable",
      ACTIVE_ADMINS "UPDATE users SET disabled = true, updated_at = now()"
      " WHERE id = $1 AND NOT disabled AND (role <> 'admin' OR EXISTS (SELECT 1 FROM admins WHERE id <> $1))"
      " RETURNING email",
      true, "is disabled and signed out everywhere" },
    { "enable",
      "UPDATE users SET disabled = false, updated_at = now() WHERE id = $1 AND disabled RETURNING email",
      false, "may sign in again" },
    { "make-admin",
      "UPDATE users SET role = 'admin', updated_at = now() WHERE id = $1 AND role <> 'admin' RETURNING email",
      false, "is an administrator" },
    { "remove-admin",
      ACTIVE_ADMINS "UPDATE users SET role = 'user', updated_at = now()"
      " WHERE id = $1 AND role = 'admin' AND (disabled OR EXISTS (SELECT 1 FROM admins WHERE id <> $1))"
      " RETURNING email",
      true, "is no longer an administrator" },
};

static const struct user_action *
action_named(const char *name)
{
    for (size_t i = 0; name && i < GH_ARRAY_LEN(ACTIONS); i++)
        if (!strcmp(ACTIONS[i].name, name))
            return &ACTIONS[i];
    return NULL;
}

static char *
button(struct web_req *r, const char *id, const char *action, const char *label, const char *cls)
{
    struct gh_arena *a = web_arena(r);

    return gh_arena_printf(a,
        "<form method=\"post\" action=\"/admin/users/%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"user\" value=\"%s\"><button class=\"%s\" type=\"submit\">%s</button></form>",
        action, web_csrf_token(r), gh_html_escape(a, id), cls, label);
}

static char *
user_row(struct web_req *r, struct authz_user *me, PGresult *res, int i)
{
    struct gh_arena *a = web_arena(r);
    const char *id = db_val(res, i, 0);
    bool admin = !strcmp(db_val(res, i, 2), "admin"), disabled = db_bool(res, i, 3);

    return gh_arena_printf(a,
        "<tr data-user=\"%s\"><td>%s%s</td><td>%s</td><td>%s</td><td>%s</td><td class=\"actions\">%s %s</td></tr>",
        gh_html_escape(a, db_val(res, i, 1)), gh_html_escape(a, db_val(res, i, 1)),
        !strcmp(id, me->id) ? " <span class=\"muted\">(you)</span>" : "",
        admin ? "admin" : "user", disabled ? "disabled" : "active", db_val(res, i, 4),
        disabled ? button(r, id, "enable", "Enable", "secondary") : button(r, id, "disable", "Disable", "danger"),
        admin ? button(r, id, "remove-admin", "Remove admin", "secondary")
              : button(r, id, "make-admin", "Make admin", "secondary"));
}

/* The list, with a notice (after an action) or an error (a refusal). */
static int
users_page(struct web_req *r, struct authz_user *me, int status, const char *notice, const char *error)
{
    struct gh_arena *a = web_arena(r);
    size_t qlen = 0;
    const char *q = web_query_n(r, "email", &qlen);
    struct gh_err e = {0};
    PGresult *res;
    char *rows, *body;
    int n;

    /* the database refuses what is not text: a sentence, not a 500 */
    if (q && !gh_text_ok(q, qlen)) {
        q = NULL;
        if (error == NULL) {
            status = 400;
            error = "Filter by text: the email filter held characters no email has.";
        }
    }
    q = q ? q : "";
    res = db_query(a, &e, "SELECT id, email, role, disabled, created_at::timestamp(0) FROM users"
                          " WHERE $1 = '' OR strpos(lower(email), lower($1)) > 0"
                          " ORDER BY lower(email) LIMIT " LIST_MAXS " + 1", 1, q);
    if (res == NULL)
        return web_reply_err(r, &e);
    n = PQntuples(res) > LIST_MAX ? LIST_MAX : PQntuples(res);
    rows = gh_arena_strdup(a, "");
    for (int i = 0; i < n && rows; i++)
        rows = gh_arena_printf(a, "%s%s", rows, user_row(r, me, res, i));
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>Users</h1>%s%s%s%s%s%s"
        "<form method=\"get\" action=\"/admin/users\">"
        "<label for=\"email\">Email contains</label><input id=\"email\" type=\"text\" name=\"email\" value=\"%s\">"
        "<div class=\"actions\"><button type=\"submit\" class=\"secondary\">Filter</button></div></form>"
        "<table><thead><tr><th>Email</th><th>Role</th><th>Status</th><th>Created (UTC)</th><th></th></tr></thead>"
        "<tbody>%s</tbody></table>%s</div>",
        notice ? "<p class=\"notice\" role=\"status\">" : "", notice ? gh_html_escape(a, notice) : "",
        notice ? "</p>" : "", error ? "<p class=\"error\" role=\"alert\">" : "",
        error ? gh_html_escape(a, error) : "", error ? "</p>" : "", gh_html_escape(a, q), rows,
        n == 0 ? "<p class=\"muted\">No users match.</p>"
        : PQntuples(res) > LIST_MAX ? "<p class=\"muted\">Only the first " LIST_MAXS
                                      " are shown: narrow the filter.</p>" : "");
    return web_reply_html(r, status, authz_page(r, me, "Users", body));
}

static int
get_users(struct web_req *r)
{
    struct authz_user *me = authz_require_admin(r);
    const struct user_action *act = action_named(web_query(r, "done"));
    const char *id = web_query(r, "user"), *notice = NULL;
    struct gh_err e = {0};
    PGresult *res;

    if (me == NULL)
        return 0;
    /* the notice names the user from the database, never from the link */
    if (act && gh_uuid_ok(id)) {
        res = db_query(web_arena(r), &e, "SELECT email FROM users WHERE id = $1", 1, id);
        if (res == NULL)
            return web_reply_err(r, &e);
        if (PQntuples(res) == 1)
            notice = gh_arena_printf(web_arena(r), "%s %s.", db_val(res, 0, 0), act->done);
    }
    return users_page(r, me, 200, notice, NULL);
}

static int
post_user_action(struct web_req *r)
{
    struct authz_user *me = authz_require_admin(r);
    const struct user_action *act = action_named(web_path_param(r, 0));
    size_t idlen = 0;
    const char *id = web_form_n(r, "user", &idlen);
    struct gh_arena *a;
    struct gh_err e = {0};
    PGresult *res;
    const char *email;
    bool last_admin;

    if (me == NULL)
        return 0;
    a = web_arena(r);
    if (act == NULL) {
        gh_err_set(&e, 404, "not_found", "There is no such action on users.", NULL);
        return web_reply_err(r, &e);
    }
    if (id && strlen(id) != idlen)         /* a %00 would cut the id short unseen */
        id = NULL;
    res = gh_uuid_ok(id) ? db_query(a, &e, "SELECT email, role, disabled FROM users WHERE id = $1", 1, id) : NULL;
    if (gh_err_isset(&e))
        return web_reply_err(r, &e);
    if (res == NULL || PQntuples(res) == 0)
        return users_page(r, me, gh_uuid_ok(id) ? 404 : 400, NULL, "There is no such user.");
    email = gh_arena_strdup(a, db_val(res, 0, 0));
    /* an active admin the guarded statement leaves alone was the last one */
    last_admin = act->guarded && !strcmp(db_val(res, 0, 1), "admin") && !db_bool(res, 0, 2);
    res = db_query(a, &e, act->sql, 1, id);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(res) == 0 && last_admin)
        return users_page(r, me, 409, NULL,
                          gh_arena_printf(a, "%s is the last active administrator: make another user an "
                                             "administrator first.", email));
    if (PQntuples(res) == 1) {
        /* this process at once; the others through the users trigger */
        authz_credentials_changed("user changed by an admin");
        if (!strcmp(act->name, "disable") &&
            !db_query(a, &e, "DELETE FROM web_sessions WHERE user_id = $1", 1, id))
            return web_reply_err(r, &e);
        GH_LOG(INFO, "admin_user", "user %s: %s by %s", id, act->name, me->id);
    }
    /* who just removed their own access goes where they still may */
    if (!strcmp(id, me->id) && strcmp(act->name, "enable") && strcmp(act->name, "make-admin"))
        return web_redirect(r, 303, "/");
    return web_redirect(r, 303, gh_arena_printf(a, "/admin/users?done=%s&user=%s", act->name, id));
}

int
authz_admin_users_routes(void)
{
    web_route("GET", "/admin/users", WEB_PAGE, get_users);
    web_route("POST", "/admin/users/*", WEB_PAGE, post_user_action);
    return 0;
}
