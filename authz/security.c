/*
 * authz/security.c — /profile/security: setting up the second factor
 * (QR code, confirmation with a code, ten recovery codes shown once), the
 * user's signed-in browser sessions with a sign-out for each, and for
 * administrators the reset of another user's second factor.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>

#define RECOVERY_CODES 10

static const char SQL_SESSIONS[] =
    "SELECT ref, to_char(created_at, 'YYYY-MM-DD HH24:MI'), to_char(last_seen, 'YYYY-MM-DD HH24:MI'),"
    "       coalesce(ip, ''), coalesce(user_agent, ''), id_hash = $2"
    "  FROM web_sessions WHERE user_id = $1 AND NOT mfa_pending AND expires_at > now()"
    "   AND last_seen > now() - make_interval(secs => $3::int)"
    " ORDER BY last_seen DESC LIMIT 100";

static const char *
notice(struct gh_arena *a, const char *cls, const char *text)
{
    return text ? gh_arena_printf(a, "<p class=\"%s\" role=\"alert\">%s</p>", cls, gh_html_escape(a, text)) : "";
}

/* The enrolment card: QR code and key of the key being set up. */
static char *
enrol_card(struct web_req *r, struct authz_user *u, const char *sealed, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    unsigned char *key = NULL;
    size_t n = 0;
    char *b32, *uri, *svg, *html = NULL;

    if (gh_unseal(a, sealed, authz_mfa_aad(a, u->id), &key, &n) < 0) {
        gh_err_set(e, 500, "server_error", "The key being set up could not be read.",
                   "enrolling TOTP key of user %s does not open", u->id);
        goto out;
    }
    b32 = authz_totp_base32(a, key, n);
    uri = b32 ? authz_totp_uri(a, u->email, b32) : NULL;
    svg = uri ? authz_totp_qr_svg(a, uri) : NULL;
    if (svg == NULL) {
        gh_err_set(e, 500, "server_error", "The QR code could not be made.", "QR code for enrolment failed");
        goto out;
    }
    html = gh_arena_printf(a,
        "<p>Scan this code with your authenticator app, or type the key below into it.</p>%s"
        "<p>Key: <code id=\"totp-key\">%s</code></p>"
        "<form method=\"post\" action=\"/profile/security/totp/confirm\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"code\">Six-digit code from the app</label>"
        "<input id=\"code\" type=\"text\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" maxlength=\"6\" required>"
        "<div class=\"actions\"><button type=\"submit\">Turn on two-step verification</button></div></form>",
        svg, b32, web_csrf_token(r));
out:
    if (key)
        gh_wipe(key, n);
    return html;
}

static char *
sessions_card(struct web_req *r, struct authz_user *u, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *cookie = web_cookie(r, AUTHZ_SESSION_COOKIE);
    char hash[65] = "", idle[24], *rows = "";
    PGresult *res;

    if (cookie && strlen(cookie) == 64)
        gh_sha256_hex(cookie, hash);
    snprintf(idle, sizeof(idle), "%ld", gh_cfg.session_idle_seconds);
    res = db_query(a, e, SQL_SESSIONS, 3, u->id, hash, idle);
    if (res == NULL)
        return NULL;
    for (int i = 0; i < PQntuples(res); i++)
        rows = gh_arena_printf(a,
            "%s<tr><td>%s</td><td>%s</td><td>%s</td><td class=\"ua\">%s</td><td>%s"
            "<form method=\"post\" action=\"/profile/security/sessions/end\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"session\" value=\"%s\">"
            "<button class=\"secondary\" type=\"submit\">Sign out</button></form></td></tr>",
            rows, db_val(res, i, 1), db_val(res, i, 2), gh_html_escape(a, db_val(res, i, 3)),
            gh_html_escape(a, db_val(res, i, 4)), db_bool(res, i, 5) ? "<strong>this browser</strong> " : "",
            web_csrf_token(r), db_val(res, i, 0));
    return gh_arena_printf(a,
        "<div class=\"card\"><h2>Signed-in browsers</h2>"
        "<table class=\"sessions\"><thead><tr><th>Signed in</th><th>Last seen</th><th>IP address</th>"
        "<th>Browser</th><th></th></tr></thead><tbody>%s</tbody></table></div>", rows);
}

static char *
mfa_card(struct web_req *r, struct authz_user *u, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    PGresult *res;
    char *inner;

    res = db_query(a, e, "SELECT totp_secret IS NOT NULL, totp_enrolling,"
                         " (SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL)"
                         " FROM users WHERE id = $1", 1, u->id);
    if (res == NULL || PQntuples(res) == 0)
        return NULL;
    if (db_bool(res, 0, 0))
        inner = gh_arena_printf(a, "<p id=\"mfa-state\">Two-step verification is <strong>on</strong>. "
                                   "%s of your recovery codes are unused.</p>", db_val(res, 0, 2));
    else if (db_val(res, 0, 1))
        inner = enrol_card(r, u, db_val(res, 0, 1), e);
    else
        inner = gh_arena_printf(a,
            "<p id=\"mfa-state\">Two-step verification is <strong>off</strong>: a password alone signs in to this account.</p>"
            "<form method=\"post\" action=\"/profile/security/totp\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
            "<div class=\"actions\"><button type=\"submit\">Set up an authenticator app</button></div></form>",
            web_csrf_token(r));
    if (inner == NULL)
        return NULL;
    return gh_arena_printf(a, "<div class=\"card\"><h2>Two-step verification</h2>%s%s</div>",
                           u->must_enrol ? notice(a, "error", "Your organisation requires two-step verification. "
                                                  "Set it up to continue.") : "", inner);
}

static const char *
admin_card(struct web_req *r, struct authz_user *u)
{
    if (strcmp(u->role, "admin") || u->must_enrol)
        return "";
    return gh_arena_printf(web_arena(r),
        "<div class=\"card\"><h2>Reset another user's second factor</h2>"
        "<p class=\"muted\">For someone who lost their authenticator app and recovery codes: "
        "they sign in with the password alone and set it up again.</p>"
        "<form method=\"post\" action=\"/admin/mfa-reset\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"reset-email\">Email</label><input id=\"reset-email\" type=\"email\" name=\"email\" required>"
        "<div class=\"actions\"><button class=\"secondary\" type=\"submit\">Reset second factor</button></div>"
        "</form><p><a href=\"/admin/sso\">Single sign-on settings</a></p></div>", web_csrf_token(r));
}

static int
security_page(struct web_req *r, struct authz_user *u, int status, const char *error, const char *ok)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    char *mfa = mfa_card(r, u, &e), *sessions = mfa ? sessions_card(r, u, &e) : NULL;

    if (sessions == NULL)
        return web_reply_err(r, &e);
    return web_reply_html(r, status, authz_page(r, u, "Security",
        gh_arena_printf(a, "<h1>Security</h1>%s%s%s%s%s", notice(a, "error", error), notice(a, "notice", ok),
                        mfa, sessions, admin_card(r, u))));
}

static int
get_security(struct web_req *r)
{
    struct authz_user *u = authz_require_enrolling(r);

    return u ? security_page(r, u, 200, NULL, NULL) : 0;
}

static int
post_totp_start(struct web_req *r)
{
    struct authz_user *u = authz_require_enrolling(r);
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    char *b32 = NULL, *sealed;

    if (u == NULL)
        return 0;
    if (authz_mfa_enrolled(a, u->id, &e) || gh_err_isset(&e))
        return gh_err_isset(&e) ? web_reply_err(r, &e)
                                : security_page(r, u, 409, "Two-step verification is already on.", NULL);
    sealed = authz_mfa_new_key(a, u->id, &b32);
    if (sealed == NULL) {
        gh_err_set(&e, 500, "server_error", "internal error", "sealing a new TOTP key failed");
        return web_reply_err(r, &e);
    }
    if (!db_query(a, &e, "UPDATE users SET totp_enrolling = $2 WHERE id = $1 AND totp_secret IS NULL",
                  2, u->id, sealed))
        return web_reply_err(r, &e);
    return web_redirect(r, 303, "/profile/security");
}

/* Ten new recovery codes in place of any old ones; the list for the page. */
static char *
recovery_codes_issue(struct gh_arena *a, const char *user_id, struct gh_err *e)
{
    char *list = "", *code, hash[65];

    if (!db_query(a, e, "DELETE FROM recovery_codes WHERE user_id = $1", 1, user_id))
        return NULL;
    for (int i = 0; i < RECOVERY_CODES; i++) {
        if ((code = authz_recovery_code_new(a)) == NULL) {
            gh_err_set(e, 500, "server_error", "internal error", "no entropy for recovery codes");
            return NULL;
        }
        authz_recovery_code_hash(code, hash);
        if (!db_query(a, e, "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)", 2, user_id, hash))
            return NULL;
        list = gh_arena_printf(a, "%s<li><code>%s</code></li>", list, code);
    }
    return list;
}

static int
post_totp_confirm(struct web_req *r)
{
    struct authz_user *u = authz_require_enrolling(r);
    struct gh_arena *a = web_arena(r);
    const char *code = web_form(r, "code"), *sealed;
    struct gh_err e = {0};
    PGresult *res;
    int64_t step = 0;
    char step_s[24], *list;
    int v;

    if (u == NULL)
        return 0;
    if (authz_throttle_check(a, u->email, web_client_ip(r), authz_throttle_device(r), &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : security_page(r, u, 429, e.msg, NULL);
    res = db_query(a, &e, "SELECT totp_enrolling FROM users WHERE id = $1 AND totp_secret IS NULL", 1, u->id);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(res) == 0 || (sealed = db_val(res, 0, 0)) == NULL)
        return security_page(r, u, 409, "There is no authenticator app being set up.", NULL);
    if (!authz_totp_code_shape(code))
        return security_page(r, u, 400, "Enter the six-digit code your app shows.", NULL);
    v = authz_mfa_totp_ok(a, u->id, sealed, NULL, code, &step, &e);
    if (v < 0)
        return web_reply_err(r, &e);
    if (v > 0) {
        authz_throttle_fail(a, u->email, web_client_ip(r), authz_throttle_device(r));
        return security_page(r, u, 400, "That code is not right. Check the time on your device and try again.", NULL);
    }
    snprintf(step_s, sizeof(step_s), "%lld", (long long)step);
    /* only the key that was shown, only once */
    res = db_query(a, &e, "UPDATE users SET totp_secret = totp_enrolling, totp_enrolling = NULL,"
                          " totp_last_step = $3::bigint, updated_at = now()"
                          " WHERE id = $1 AND totp_enrolling = $2 AND totp_secret IS NULL RETURNING 1",
                   3, u->id, sealed, step_s);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(res) == 0)
        return security_page(r, u, 409, "Two-step verification is already on.", NULL);
    if ((list = recovery_codes_issue(a, u->id, &e)) == NULL)
        return web_reply_err(r, &e);
    GH_LOG(INFO, "mfa_enrolled", "user %s turned on two-step verification", u->id);
    u->must_enrol = false;
    return web_reply_html(r, 200, authz_page(r, u, "Recovery codes", gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Two-step verification is on</h1>"
        "<p>Keep these recovery codes somewhere safe. Each signs you in once if you lose your authenticator app. "
        "They are shown only now.</p><ul id=\"recovery-codes\" class=\"codes\">%s</ul>"
        "<p><a href=\"/profile/security\">Done</a></p></div>", list)));
}

static int
post_session_end(struct web_req *r)
{
    struct authz_user *u = authz_require_enrolling(r);
    struct gh_arena *a = web_arena(r);
    const char *ref = web_form(r, "session"), *cookie = web_cookie(r, AUTHZ_SESSION_COOKIE);
    struct gh_err e = {0};
    PGresult *res;
    char hash[65] = "";

    if (u == NULL)
        return 0;
    if (ref == NULL || !gh_uuid_ok(ref))
        return security_page(r, u, 400, "Choose a session to sign out.", NULL);
    if (cookie && strlen(cookie) == 64)
        gh_sha256_hex(cookie, hash);
    res = db_query(a, &e, "DELETE FROM web_sessions WHERE ref = $1 AND user_id = $2 RETURNING id_hash = $3",
                   3, ref, u->id, hash);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(res) == 0)
        return security_page(r, u, 404, "That session has already ended.", NULL);
    GH_LOG(INFO, "session_ended", "user %s signed out one of their sessions", u->id);
    if (db_bool(res, 0, 0)) {
        authz_session_destroy(r);
        return web_redirect(r, 303, "/login");
    }
    return security_page(r, u, 200, NULL, "That browser is signed out.");
}

static int
post_admin_mfa_reset(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    const char *email = web_form(r, "email");
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    if (email == NULL || !email[0] || !gh_text_ok(email, strlen(email)))
        return security_page(r, u, 400, "Enter the email of the account.", NULL);
    if (authz_mfa_reset(email, u->id, &e) < 0)
        return e.status == 404 ? security_page(r, u, 404, e.msg, NULL) : web_reply_err(r, &e);
    return security_page(r, u, 200, NULL, "The second factor of that account is reset.");
}

int
authz_security_routes(void)
{
    web_route("GET", "/profile/security", WEB_PAGE, get_security);
    web_route("POST", "/profile/security/totp", WEB_PAGE, post_totp_start);
    web_route("POST", "/profile/security/totp/confirm", WEB_PAGE, post_totp_confirm);
    web_route("POST", "/profile/security/sessions/end", WEB_PAGE, post_session_end);
    web_route("POST", "/admin/mfa-reset", WEB_PAGE, post_admin_mfa_reset);
    return 0;
}
