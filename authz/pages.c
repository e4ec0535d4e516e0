/*
 * authz/pages.c — sign-in, sign-out, first-run setup and the profile page,
 * and the registrar of every authz route.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>

#define SETUP_TTL "86400"

static int
login_form(struct web_req *r, int status, const char *error, const char *email, const char *next)
{
    struct gh_arena *a = web_arena(r);
    char *body = gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Sign in</h1>%s%s%s"
        "<form method=\"post\" action=\"/login\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"next\" value=\"%s\">"
        "<label for=\"email\">Email</label>"
        "<input id=\"email\" type=\"email\" name=\"email\" value=\"%s\" autocomplete=\"username\" required autofocus>"
        "<label for=\"password\">Password</label>"
        "<input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>"
        "<div class=\"actions\"><button type=\"submit\">Sign in</button></div></form>%s</div>",
        error ? "<p class=\"error\" role=\"alert\">" : "", error ? gh_html_escape(a, error) : "",
        error ? "</p>" : "", web_csrf_token(r), gh_html_escape(a, next ? next : "/profile"),
        gh_html_escape(a, email ? email : ""), authz_login_options(r, next));

    return web_reply_html(r, status, web_page(a, "Sign in", body));
}

static int
get_login(struct web_req *r)
{
    const char *next = web_query(r, "next");

    if (authz_session_user(r) && authz_local_path(next))
        return web_redirect(r, 303, next);
    return login_form(r, 200, NULL, NULL, authz_local_path(next) ? next : "/profile");
}

static int
post_login(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *password = web_form(r, "password"), *next = web_form(r, "next"), *email, *device;
    struct authz_user *u = NULL;
    struct gh_err e = {0};
    size_t email_len;
    char ra[16];

    email = web_form_n(r, "email", &email_len);
    if (!authz_local_path(next))
        next = "/profile";
    if (authz_rate_check(r, "login", gh_cfg.rate_login_per_min, &e) < 0) {
        snprintf(ra, sizeof(ra), "%d", e.retry_after);
        web_add_header(r, "Retry-After", ra);
        return login_form(r, 429, e.msg, email, next);
    }
    if (email == NULL || password == NULL || !email[0] || !password[0])
        return login_form(r, 400, "Enter your email and password.", email, next);
    if (!gh_text_ok(email, email_len))          /* the database refuses what is not text */
        return login_form(r, 400, "Enter a valid email address.", NULL, next);
    device = authz_throttle_device(r);
    if (authz_user_login(a, email, password, web_client_ip(r), device, &u, &e) < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        if (e.detail[0])
            GH_LOG(INFO, "login_failed", "%s", e.detail);
        if (e.retry_after) {
            snprintf(ra, sizeof(ra), "%d", e.retry_after);
            web_add_header(r, "Retry-After", ra);
        }
        return login_form(r, e.status, e.msg, email, next);
    }
    if (authz_sso_password_refused(a, u->id))
        return login_form(r, 403, "This account signs in with single sign-on.", email, next);
    authz_vault_signin(r, u->id, password);     /* before the second factor: its page has no password */
    switch (authz_mfa_after_password(r, u, next, &e)) {
    case 1:
        return 0;               /* on to /login/mfa */
    case -1:
        return web_reply_err(r, &e);
    }
    if (authz_session_create(r, u->id, &e) < 0)
        return web_reply_err(r, &e);
    authz_throttle_device_issue(r, u->id, device);
    GH_LOG(INFO, "login", "user %s signed in", u->id);
    return web_redirect(r, 303, next);
}

/* The console's front door: a signed-in person's agents, else sign-in. */
static int
get_root(struct web_req *r)
{
    return web_redirect(r, 303, authz_session_user(r) ? "/agents" : "/login");
}

static int
post_logout(struct web_req *r)
{
    authz_session_destroy(r);
    authz_vault_signout(r);
    return web_redirect(r, 303, "/login");
}

static int
get_profile(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    struct gh_arena *a = web_arena(r);
    char *body;

    if (u == NULL)
        return 0;
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>Your profile</h1>"
        "<p>Signed in as <strong>%s</strong> (%s).</p>"
        "<ul><li><a href=\"/profile/connections\">Connected apps</a></li>"
        "<li><a href=\"/profile/tokens\">Personal access tokens</a></li>"
        "<li><a href=\"/profile/security\">Security: two-step verification, signed-in browsers</a></li></ul></div>",
        gh_html_escape(a, u->email), gh_html_escape(a, u->role));
    return web_reply_html(r, 200, authz_page(r, u, "Profile", body));
}

/* ---- first-run setup */

int
authz_setup_announce(struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    PGresult *res;
    char *token, hash[65];
    int rc = -1;

    res = db_query(a, e, "SELECT 1 FROM users WHERE role = 'admin' AND NOT disabled LIMIT 1", 0);
    if (res == NULL)
        goto out;
    if (PQntuples(res) > 0) {
        rc = 0;
        goto out;
    }
    token = gh_token_hex(a, "", 24);
    if (token == NULL)
        goto out;
    gh_sha256_hex(token, hash);
    /* only the newest link works */
    if (!db_query(a, e, "DELETE FROM setup_tokens WHERE used_at IS NULL", 0) ||
        !db_query(a, e, "INSERT INTO setup_tokens (token_hash, expires_at) "
                        "VALUES ($1, now() + interval '" SETUP_TTL " seconds')", 1, hash))
        goto out;
    /* stdout, not the log: the link is a credential */
    printf("\nGatehouse has no administrator yet. Open this one-time link within 24 hours to create one:\n"
           "  %s/setup?token=%s\n\n", gh_cfg.public_url, token);
    fflush(stdout);
    GH_LOG(INFO, "setup_link", "one-time admin setup link printed on standard output");
    gh_wipe(token, strlen(token));
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

static int
setup_token_check(struct web_req *r, const char *token, struct gh_err *e)
{
    char hash[65];
    PGresult *res;

    if (token == NULL || strlen(token) != 48)
        return gh_err_set(e, 404, "not_found", "This setup link is not valid.", NULL);
    gh_sha256_hex(token, hash);
    res = db_query(web_arena(r), e, "SELECT used_at IS NOT NULL, expires_at < now() "
                                    "FROM setup_tokens WHERE token_hash = $1", 1, hash);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 404, "not_found", "This setup link is not valid.", NULL);
    if (db_bool(res, 0, 0) || db_bool(res, 0, 1))
        return gh_err_set(e, 410, "gone", "This setup link has already been used or has expired.", NULL);
    return 0;
}

static int
setup_form(struct web_req *r, int status, const char *token, const char *error)
{
    struct gh_arena *a = web_arena(r);
    char *body = gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Create the administrator</h1>"
        "<p class=\"muted\">This link works once. The account you create here manages Gatehouse.</p>%s%s%s"
        "<form method=\"post\" action=\"/setup\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"token\" value=\"%s\">"
        "<label for=\"email\">Email</label><input id=\"email\" type=\"email\" name=\"email\" required>"
        "<label for=\"password\">Password (at least 8 characters)</label>"
        "<input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"new-password\" required>"
        "<div class=\"actions\"><button type=\"submit\">Create administrator</button></div></form></div>",
        error ? "<p class=\"error\">" : "", error ? gh_html_escape(a, error) : "", error ? "</p>" : "",
        web_csrf_token(r), gh_html_escape(a, token));
    return web_reply_html(r, status, web_page(a, "Set up Gatehouse", body));
}

static int
get_setup(struct web_req *r)
{
    const char *token = web_query(r, "token");
    struct gh_err e = {0};

    if (setup_token_check(r, token, &e) < 0)
        return web_reply_err(r, &e);
    return setup_form(r, 200, token, NULL);
}

static int
post_setup(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *token = web_form(r, "token"), *email = web_form(r, "email");
    size_t plen = 0;
    const char *password = web_form_n(r, "password", &plen);
    struct authz_user *u = NULL;
    struct gh_err e = {0};
    char hash[65];
    PGresult *res;

    if (setup_token_check(r, token, &e) < 0)
        return web_reply_err(r, &e);
    /* a NUL (%00) would cut the password short unseen: the account would
     * get a shorter one than the one typed */
    if (password && strlen(password) != plen)
        return setup_form(r, 400, token, "The password must not contain NUL characters.");
    gh_sha256_hex(token, hash);
    /* claim the token first: two racing submissions cannot both succeed */
    res = db_query(a, &e, "UPDATE setup_tokens SET used_at = now() "
                          "WHERE token_hash = $1 AND used_at IS NULL RETURNING 1", 1, hash);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(res) == 0) {
        gh_err_set(&e, 410, "gone", "This setup link has already been used.", NULL);
        return web_reply_err(r, &e);
    }
    if (authz_user_add(email, password, true, &e) < 0) {
        db_query(a, &(struct gh_err){0}, "UPDATE setup_tokens SET used_at = NULL WHERE token_hash = $1",
                 1, hash);
        if (e.status >= 500)
            return web_reply_err(r, &e);
        return setup_form(r, e.status, token, e.msg);
    }
    gh_err_clear(&e);
    if (authz_user_login(a, email, password, web_client_ip(r), NULL, &u, &e) < 0 ||
        authz_session_create(r, u->id, &e) < 0)
        return web_reply_err(r, &e);
    authz_vault_signin(r, u->id, password);
    GH_LOG(INFO, "setup", "administrator created through the setup link");
    return web_redirect(r, 303, "/profile");
}

int
authz_register_routes(void)
{
    web_route("GET", "/", WEB_PAGE, get_root);
    web_route("GET", "/login", WEB_PAGE, get_login);
    web_route("POST", "/login", WEB_PAGE, post_login);
    web_route("POST", "/logout", WEB_PAGE, post_logout);
    web_route("GET", "/setup", WEB_PAGE, get_setup);
    web_route("POST", "/setup", WEB_PAGE, post_setup);
    web_route("GET", "/profile", WEB_PAGE, get_profile);
    /* the console's owner items follow agent ownership, which web/ cannot ask */
    web_nav_owner_hook(authz_user_owns_any_agent);
    authz_admin_users_routes();
    authz_oauth_routes();
    authz_client_routes();
    authz_token_routes();
    authz_pat_routes();
    authz_connections_routes();
    authz_invite_routes();
    authz_agent_pages_routes();
    authz_mfa_routes();
    authz_sso_routes();
    authz_signin_code_routes();
    authz_touch_start();
    authz_cache_start();
    return 0;
}
