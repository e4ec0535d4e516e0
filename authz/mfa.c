/*
 * authz/mfa.c — the second factor at sign-in (/login/mfa), checking a TOTP
 * or recovery code, and what GATEHOUSE_REQUIRE_MFA asks of whom.
 *
 * After the password, a user with a second factor gets a session marked
 * mfa_pending: signed in to nothing (session.c skips it) until a code
 * passes here, and then a new session id.  A TOTP code is good once: the
 * step it belongs to must be later than the last one accepted.  Failures
 * are counted by throttle.c with the password failures of the account.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOTP_KEY_BYTES 20

bool
authz_mfa_required(const char *role, bool agent_owner)
{
    const char *p = gh_cfg.require_mfa ? gh_cfg.require_mfa : "none";
    bool admin = !strcmp(role, "admin");

    if (!strcmp(p, "everyone"))
        return true;
    if (!strcmp(p, "owners"))           /* admins act as owners of every agent */
        return admin || agent_owner;
    return !strcmp(p, "admins") && admin;
}

bool
authz_mfa_enrolled(struct gh_arena *a, const char *user_id, struct gh_err *e)
{
    PGresult *res = db_query(a, e, "SELECT totp_secret IS NOT NULL FROM users WHERE id = $1", 1, user_id);

    return res && PQntuples(res) == 1 && db_bool(res, 0, 0);
}

/* The associated data of a sealed TOTP key: a sealed value copied to
 * another account does not open there. */
char *
authz_mfa_aad(struct gh_arena *a, const char *user_id)
{
    return gh_arena_printf(a, "totp:%s", user_id);
}

/* A fresh key, sealed; *b32 gets its text for the authenticator app. */
char *
authz_mfa_new_key(struct gh_arena *a, const char *user_id, char **b32)
{
    unsigned char key[TOTP_KEY_BYTES];
    char *sealed = NULL;

    if (gh_random_bytes(key, sizeof(key)) < 0)
        goto out;
    *b32 = authz_totp_base32(a, key, sizeof(key));
    if (*b32)
        sealed = gh_seal(a, key, sizeof(key), authz_mfa_aad(a, user_id));
out:
    gh_wipe(key, sizeof(key));
    return sealed;
}

/* 0 when code is right now for the sealed key and its step is later than
 * last_step (NULL: none yet); *step gets it.  1 when not; -1 on an error. */
int
authz_mfa_totp_ok(struct gh_arena *a, const char *user_id, const char *sealed, const char *last_step,
                  const char *code, int64_t *step, struct gh_err *e)
{
    unsigned char *key = NULL;
    size_t n = 0;
    int rc = 1;

    if (gh_unseal(a, sealed, authz_mfa_aad(a, user_id), &key, &n) < 0) {
        rc = -1;
        gh_err_set(e, 500, "server_error", "The second factor could not be checked.",
                   "TOTP key of user %s does not open under the server key", user_id);
        goto out;
    }
    if (authz_totp_check(key, n, code, step) == 0 && (last_step == NULL || *step > atoll(last_step)))
        rc = 0;
out:
    if (key)
        gh_wipe(key, n);
    return rc;
}

/* Checks a code at sign-in: six digits are a TOTP code, anything else a
 * recovery code.  Using either is a single UPDATE that only one request
 * can win, so a code raced twice still works once.  0 ok, 1 wrong or used,
 * -1 error. */
static int
second_factor_ok(struct gh_arena *a, const char *user_id, const char *code, struct gh_err *e)
{
    PGresult *res;
    int64_t step = 0;
    char hash[65], step_s[24];
    int rc;

    if (authz_totp_code_shape(code)) {
        res = db_query(a, e, "SELECT totp_secret, totp_last_step FROM users WHERE id = $1", 1, user_id);
        if (res == NULL || PQntuples(res) == 0 || db_val(res, 0, 0) == NULL)
            return res ? 1 : -1;
        rc = authz_mfa_totp_ok(a, user_id, db_val(res, 0, 0), db_val(res, 0, 1), code, &step, e);
        if (rc != 0)
            return rc;
        snprintf(step_s, sizeof(step_s), "%lld", (long long)step);
        res = db_query(a, e, "UPDATE users SET totp_last_step = $2 WHERE id = $1"
                             " AND (totp_last_step IS NULL OR totp_last_step < $2::bigint) RETURNING 1",
                       2, user_id, step_s);
        return res == NULL ? -1 : PQntuples(res) == 1 ? 0 : 1;
    }
    authz_recovery_code_hash(code, hash);
    res = db_query(a, e, "UPDATE recovery_codes SET used_at = now()"
                         " WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING 1",
                   2, user_id, hash);
    return res == NULL ? -1 : PQntuples(res) == 1 ? 0 : 1;
}

static int
code_form(struct web_req *r, int status, const char *error, const char *next)
{
    struct gh_arena *a = web_arena(r);
    char *body = gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Two-step verification</h1>%s%s%s"
        "<p class=\"muted\">Enter the six-digit code from your authenticator app, or one of your recovery codes.</p>"
        "<form method=\"post\" action=\"/login/mfa\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"next\" value=\"%s\">"
        "<label for=\"code\">Code</label>"
        "<input id=\"code\" type=\"text\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"text\" maxlength=\"32\" required autofocus>"
        "<div class=\"actions\"><button type=\"submit\">Verify</button></div></form></div>",
        error ? "<p class=\"error\" role=\"alert\">" : "", error ? gh_html_escape(a, error) : "",
        error ? "</p>" : "", web_csrf_token(r), gh_html_escape(a, next));
    return web_reply_html(r, status, authz_page(r, NULL, "Two-step verification", body));
}

/* Called by the password sign-in once the password passed: 1 when the
 * user has a second factor and the reply (to /login/mfa) is sent, 0 to
 * sign in now, -1 with e set. */
int
authz_mfa_after_password(struct web_req *r, struct authz_user *u, const char *next, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    bool has = authz_mfa_enrolled(a, u->id, e);

    if (gh_err_isset(e))
        return -1;
    if (!has)
        return 0;
    if (authz_session_begin(r, u->id, true, e) < 0)
        return -1;
    GH_LOG(INFO, "login_password", "user %s passed the first factor, second factor next", u->id);
    web_redirect(r, 303, gh_arena_printf(a, "/login/mfa?next=%s", gh_url_encode(a, next)));
    return 1;
}

static int
get_login_mfa(struct web_req *r)
{
    const char *next = web_query(r, "next");
    struct gh_err e = {0};

    if (authz_session_pending(r, &e) == NULL)
        return gh_err_isset(&e) ? web_reply_err(r, &e) : web_redirect(r, 303, "/login");
    return code_form(r, 200, NULL, authz_local_path(next) ? next : "/profile");
}

static int
post_login_mfa(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *next = web_form(r, "next"), *code;
    struct authz_user *u;
    struct gh_err e = {0};
    size_t len = 0;
    char ra[16];
    int v;

    if (!authz_local_path(next))
        next = "/profile";
    u = authz_session_pending(r, &e);
    if (u == NULL)
        return gh_err_isset(&e) ? web_reply_err(r, &e) : web_redirect(r, 303, "/login");
    code = web_form_n(r, "code", &len);
    if (authz_rate_check(r, "login", gh_cfg.rate_login_per_min, &e) < 0 ||
        authz_throttle_check(a, u->email, web_client_ip(r), authz_throttle_device(r), &e) < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        snprintf(ra, sizeof(ra), "%d", e.retry_after);
        web_add_header(r, "Retry-After", ra);
        return code_form(r, 429, e.msg, next);
    }
    if (code == NULL || !code[0] || len > 32 || !gh_text_ok(code, len))
        return code_form(r, 400, "Enter the code from your authenticator app or a recovery code.", next);
    v = second_factor_ok(a, u->id, code, &e);
    if (v < 0)
        return web_reply_err(r, &e);
    if (v > 0) {
        authz_throttle_fail(a, u->email, web_client_ip(r), authz_throttle_device(r));
        GH_LOG(INFO, "login_mfa_failed", "user %s: wrong or used second-factor code", u->id);
        return code_form(r, 401, "That code is not right, or it has been used already.", next);
    }
    authz_throttle_reset(a, u->email, authz_throttle_device(r));
    if (authz_session_create(r, u->id, &e) < 0)     /* a new id: the pending one is gone */
        return web_reply_err(r, &e);
    authz_throttle_device_issue(r, u->id, authz_throttle_device(r));
    GH_LOG(INFO, "login", "user %s signed in with a second factor", u->id);
    return web_redirect(r, 303, next);
}

int
authz_mfa_reset(const char *email, const char *by_user_id, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    PGresult *res;
    int rc = -1;

    res = db_query(a, e, "UPDATE users SET totp_secret = NULL, totp_enrolling = NULL, totp_last_step = NULL,"
                         " updated_at = now() WHERE lower(email) = lower($1) RETURNING id::text", 1, email);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 404, "not_found", "There is no account with that email.", NULL);
        goto out;
    }
    /* its sessions end too (not the resetting admin's own): whoever held
     * the account keeps nothing */
    if (!db_query(a, e, "DELETE FROM recovery_codes WHERE user_id = $1", 1, db_val(res, 0, 0)) ||
        !db_query(a, e, "DELETE FROM web_sessions WHERE user_id = $1 AND user_id IS DISTINCT FROM $2::uuid", 2,
                  db_val(res, 0, 0), by_user_id))
        goto out;
    GH_LOG(INFO, "mfa_reset", "the second factor of user %s was reset%s%s", db_val(res, 0, 0),
           by_user_id ? " by admin " : " from the command line", by_user_id ? by_user_id : "");
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

int
authz_mfa_routes(void)
{
    web_route("GET", "/login/mfa", WEB_PAGE, get_login_mfa);
    web_route("POST", "/login/mfa", WEB_PAGE, post_login_mfa);
    return authz_security_routes();
}
