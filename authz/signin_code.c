/*
 * authz/signin_code.c — signing in with a six-digit code sent by mail
 * (offered when GATEHOUSE_SMTP_URL is set).
 *
 * A code is stored as SHA-256 of "<user id>:<code>", is good for
 * signin_code_ttl seconds and once, and a new one retires the older ones.
 * Sending is limited per IP (a token bucket) and per account (three codes
 * in ten minutes, counted in the database); the answer never says whether
 * an account exists.  Wrong codes count as failed sign-ins of the account
 * and the IP (throttle.c).  The second factor still follows when the
 * account has one.  Sending waits on the mail server, so it runs on a
 * worker thread.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>

#define CODES_PER_ACCOUNT  "3"     /* sent per account per ten minutes */
#define SENDS_PER_IP_MIN   10

static const char SQL_RECENT[] =
    "SELECT u.id, (SELECT count(*) FROM signin_codes c WHERE c.user_id = u.id"
    "               AND c.created_at > now() - interval '10 minutes') >= $2::int"
    "  FROM users u WHERE lower(u.email) = lower($1) AND NOT u.disabled";

static void
code_hash(const char *user_id, const char *code, char out[65])
{
    char buf[128];

    snprintf(buf, sizeof(buf), "%s:%s", user_id, code);
    gh_sha256_hex(buf, out);
    gh_wipe(buf, sizeof(buf));
}

/* Six uniformly random digits. */
static int
code_new(char out[7])
{
    uint32_t v;

    do {
        if (gh_random_bytes(&v, sizeof(v)) < 0)
            return -1;
    } while (v >= 4294000000u);     /* a multiple of 10^6: no digit is likelier */
    snprintf(out, 7, "%06u", v % 1000000u);
    gh_wipe(&v, sizeof(v));
    return 0;
}

char *
authz_login_options(struct web_req *r, const char *next)
{
    struct gh_arena *a = web_arena(r);

    return gh_arena_printf(a, "%s%s", authz_sso_button(r, next),
        authz_mail_enabled() ? gh_arena_printf(a, "<p class=\"muted\"><a id=\"email-code\" href=\"/login/code?next=%s\">"
                                                  "Email me a sign-in code instead</a></p>",
                                               gh_html_escape(a, gh_url_encode(a, next ? next : "/profile")))
                             : "");
}

static int
email_form(struct web_req *r, int status, const char *error, const char *next)
{
    struct gh_arena *a = web_arena(r);

    return web_reply_html(r, status, authz_page(r, NULL, "Sign in with a code", gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Sign in with a code</h1>%s%s%s"
        "<p class=\"muted\">We mail you a six-digit code that signs you in once.</p>"
        "<form method=\"post\" action=\"/login/code\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"next\" value=\"%s\">"
        "<label for=\"email\">Email</label><input id=\"email\" type=\"email\" name=\"email\" autocomplete=\"username\" required autofocus>"
        "<div class=\"actions\"><button type=\"submit\">Send me a code</button></div></form>"
        "<p><a href=\"/login\">Sign in with a password</a></p></div>",
        error ? "<p class=\"error\" role=\"alert\">" : "", error ? gh_html_escape(a, error) : "", error ? "</p>" : "",
        web_csrf_token(r), gh_html_escape(a, next))));
}

static int
code_form(struct web_req *r, int status, const char *error, const char *email, const char *next)
{
    struct gh_arena *a = web_arena(r);

    return web_reply_html(r, status, authz_page(r, NULL, "Enter your code", gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Enter your code</h1>%s%s%s"
        "<p>If there is an account for <strong>%s</strong>, a sign-in code is on its way. It is good for %ld minutes.</p>"
        "<form method=\"post\" action=\"/login/code/verify\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"next\" value=\"%s\"><input type=\"hidden\" name=\"email\" value=\"%s\">"
        "<label for=\"code\">Code</label>"
        "<input id=\"code\" type=\"text\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" maxlength=\"6\" required autofocus>"
        "<div class=\"actions\"><button type=\"submit\">Sign in</button></div></form></div>",
        error ? "<p class=\"error\" role=\"alert\">" : "", error ? gh_html_escape(a, error) : "", error ? "</p>" : "",
        gh_html_escape(a, email), (gh_cfg.signin_code_ttl + 59) / 60, web_csrf_token(r), gh_html_escape(a, next),
        gh_html_escape(a, email))));
}

static int
get_login_code(struct web_req *r)
{
    const char *next = web_query(r, "next");
    struct gh_err e = {0};

    if (!authz_mail_enabled()) {
        gh_err_set(&e, 404, "not_found", "Sign-in codes are not offered on this server.", NULL);
        return web_reply_err(r, &e);
    }
    return email_form(r, 200, NULL, authz_local_path(next) ? next : "/profile");
}

/* Issues and mails a code to the account of this email, if it exists and
 * has not had its share lately.  Only a database failure is an error. */
static int
code_send(struct gh_arena *a, const char *email, struct gh_err *e)
{
    PGresult *res = db_query(a, e, SQL_RECENT, 2, email, CODES_PER_ACCOUNT);
    char code[7] = "", hash[65], ttl[24], *body;
    struct gh_err me = {0};
    int rc = -1;

    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0 || db_bool(res, 0, 1)) {
        GH_LOG(INFO, "signin_code_skipped", "%s", PQntuples(res) ? "account had its share of codes" : "no such account");
        return 0;
    }
    if (code_new(code) < 0) {
        gh_err_set(e, 500, "server_error", "internal error", "no entropy");
        goto out;
    }
    code_hash(db_val(res, 0, 0), code, hash);
    snprintf(ttl, sizeof(ttl), "%ld", gh_cfg.signin_code_ttl);
    /* older codes retire; rows past the counting window go */
    if (!db_query(a, e, "DELETE FROM signin_codes WHERE created_at < now() - interval '1 day'", 0) ||
        !db_query(a, e, "UPDATE signin_codes SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
                  1, db_val(res, 0, 0)) ||
        !db_query(a, e, "INSERT INTO signin_codes (user_id, code_hash, expires_at)"
                        " VALUES ($1, $2, now() + make_interval(secs => $3::int))", 3, db_val(res, 0, 0), hash, ttl))
        goto out;
    body = gh_arena_printf(a, "Your Gatehouse sign-in code is %s\n\nIt is good for %ld minutes and signs in once.\n"
                              "If you did not ask for it, ignore this mail: nobody can sign in without it.\n",
                           code, (gh_cfg.signin_code_ttl + 59) / 60);
    if (authz_mail_send(email, "Your Gatehouse sign-in code", body, &me) < 0)
        GH_LOG(WARN, "signin_code_mail", "the sign-in code could not be mailed: %s", me.detail);
    else
        GH_LOG(INFO, "signin_code_sent", "a sign-in code was mailed to user %s", db_val(res, 0, 0));
    gh_wipe(body, strlen(body));
    rc = 0;
out:
    gh_wipe(code, sizeof(code));
    return rc;
}

static int
post_login_code(struct web_req *r)
{
    const char *next = web_form(r, "next"), *email;
    struct gh_err e = {0};
    size_t len = 0;
    char ra[16];

    if (!authz_mail_enabled())
        return get_login_code(r);
    if (authz_offload(r, post_login_code))
        return 0;
    if (!authz_local_path(next))
        next = "/profile";
    email = web_form_n(r, "email", &len);
    if (authz_rate_check(r, "signin_code", SENDS_PER_IP_MIN, &e) < 0) {
        snprintf(ra, sizeof(ra), "%d", e.retry_after);
        web_add_header(r, "Retry-After", ra);
        return email_form(r, 429, e.msg, next);
    }
    if (email == NULL || !email[0] || len > 320 || !gh_text_ok(email, len) || !strchr(email, '@'))
        return email_form(r, 400, "Enter a valid email address.", next);
    if (code_send(web_arena(r), email, &e) < 0)
        return web_reply_err(r, &e);
    return code_form(r, 200, NULL, email, next);
}

/* Spends the code of the account of this email: its user, or NULL (wrong,
 * used, expired, no such account; e set only on a database error). */
static struct authz_user *
code_take(struct gh_arena *a, const char *email, const char *code, struct gh_err *e)
{
    struct authz_user *u;
    PGresult *res;
    char hash[65];

    res = db_query(a, e, "SELECT id, email, role FROM users WHERE lower(email) = lower($1) AND NOT disabled", 1, email);
    if (res == NULL || PQntuples(res) != 1)
        return NULL;
    u = gh_arena_alloc(a, sizeof(*u));
    u->id = gh_arena_strdup(a, db_val(res, 0, 0));
    u->email = gh_arena_strdup(a, db_val(res, 0, 1));
    u->role = gh_arena_strdup(a, db_val(res, 0, 2));
    code_hash(u->id, code, hash);
    res = db_query(a, e, "UPDATE signin_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2"
                         " AND used_at IS NULL AND expires_at > now() RETURNING 1", 2, u->id, hash);
    return res && PQntuples(res) == 1 ? u : NULL;
}

static int
post_login_code_verify(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *next = web_form(r, "next"), *email = web_form(r, "email"), *code = web_form(r, "code");
    struct gh_err e = {0};
    struct authz_user *u;
    char ra[16];

    if (!authz_mail_enabled())
        return get_login_code(r);
    if (!authz_local_path(next))
        next = "/profile";
    if (email == NULL || !email[0] || strlen(email) > 320 || !gh_text_ok(email, strlen(email)))
        return email_form(r, 400, "Enter a valid email address.", next);
    if (authz_rate_check(r, "login", gh_cfg.rate_login_per_min, &e) < 0 ||
        authz_throttle_check(a, email, web_client_ip(r), authz_throttle_device(r), &e) < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        snprintf(ra, sizeof(ra), "%d", e.retry_after);
        web_add_header(r, "Retry-After", ra);
        return code_form(r, 429, e.msg, email, next);
    }
    if (!authz_totp_code_shape(code))
        return code_form(r, 400, "Enter the six digits from the mail.", email, next);
    u = code_take(a, email, code, &e);
    if (u == NULL && gh_err_isset(&e))
        return web_reply_err(r, &e);
    if (u == NULL) {
        authz_throttle_fail(a, email, web_client_ip(r), authz_throttle_device(r));
        GH_LOG(INFO, "signin_code_failed", "wrong, used or expired sign-in code");
        return code_form(r, 401, "That code is not right, has expired or has been used.", email, next);
    }
    authz_throttle_reset(a, email, authz_throttle_device(r));
    if (authz_sso_password_refused(a, u->id))
        return code_form(r, 403, "This account signs in with single sign-on.", email, next);
    switch (authz_mfa_after_password(r, u, next, &e)) {
    case 1:
        return 0;
    case -1:
        return web_reply_err(r, &e);
    }
    if (authz_session_create(r, u->id, &e) < 0)
        return web_reply_err(r, &e);
    authz_throttle_device_issue(r, u->id, authz_throttle_device(r));
    GH_LOG(INFO, "login", "user %s signed in with a mailed code", u->id);
    return web_redirect(r, 303, next);
}

int
authz_signin_code_routes(void)
{
    web_route("GET", "/login/code", WEB_PAGE, get_login_code);
    web_route("POST", "/login/code", WEB_PAGE, post_login_code);
    web_route("POST", "/login/code/verify", WEB_PAGE, post_login_code_verify);
    return 0;
}
