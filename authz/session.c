/*
 * authz/session.c — server-side browser sessions.
 *
 * The cookie holds 32 random bytes; the database holds only their SHA-256.
 * A session expires when idle too long or too old, whichever comes first.
 * last_seen is written at most once a minute per session.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>

static const char SQL_SESSION_LOOKUP[] =
    "SELECT u.id, u.email, u.role, u.disabled,"
    "       s.last_seen < now() - interval '60 seconds', u.totp_secret IS NULL,"
    "       u.totp_secret IS NULL AND EXISTS (SELECT 1 FROM agent_members m WHERE m.user_id = u.id"
    "                                          AND m.state = 'approved' AND m.role = 'owner')"
    "  FROM web_sessions s JOIN users u ON u.id = s.user_id"
    " WHERE s.id_hash = $1 AND s.expires_at > now() AND NOT s.mfa_pending"
    "   AND s.last_seen > now() - make_interval(secs => $2::int)";

/* A session waiting for the second factor is good for ten minutes. */
static const char SQL_SESSION_PENDING[] =
    "SELECT u.id, u.email, u.role FROM web_sessions s JOIN users u ON u.id = s.user_id"
    " WHERE s.id_hash = $1 AND s.mfa_pending AND NOT u.disabled"
    "   AND s.created_at > now() - interval '10 minutes'";

/* A path on this site to send a browser back to.  Browsers drop tabs and
 * newlines inside a URL and read a backslash as a slash, so "/\t/evil" or
 * "/\\evil" would become "//evil", another site: only printable ASCII
 * other than the backslash, one leading slash, never two. */
bool
authz_local_path(const char *next)
{
    if (next == NULL || next[0] != '/' || next[1] == '/')
        return false;
    for (const unsigned char *p = (const unsigned char *)next; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '\\')
            return false;
    return true;
}

/* The signed-in user, or NULL: signed out, or the lookup failed (then e is
 * set, so a page can answer 503 rather than send a signed-in user to login). */
static struct authz_user *
session_lookup(struct web_req *r, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u = web_user_data(r);
    const char *cookie = web_cookie(r, AUTHZ_SESSION_COOKIE);
    char hash[65], idle[24];
    PGresult *res;

    if (u)
        return u;
    if (cookie == NULL || strlen(cookie) != 64)
        return NULL;
    gh_sha256_hex(cookie, hash);
    snprintf(idle, sizeof(idle), "%ld", gh_cfg.session_idle_seconds);
    res = db_query(a, e, SQL_SESSION_LOOKUP, 2, hash, idle);
    if (res == NULL || PQntuples(res) == 0 || db_bool(res, 0, 3))
        return NULL;
    u = gh_arena_alloc(a, sizeof(*u));
    u->id = gh_arena_strdup(a, db_val(res, 0, 0));
    u->email = gh_arena_strdup(a, db_val(res, 0, 1));
    u->role = gh_arena_strdup(a, db_val(res, 0, 2));
    u->must_enrol = db_bool(res, 0, 5) && authz_mfa_required(u->role, db_bool(res, 0, 6));
    if (db_bool(res, 0, 4))
        db_query(a, e, "UPDATE web_sessions SET last_seen = now() WHERE id_hash = $1", 1, hash);
    web_set_user_data(r, u);
    return u;
}

/* A user who must enrol a second factor first (GATEHOUSE_REQUIRE_MFA) is
 * signed in only for the enrolment page: to every other caller, signed out. */
struct authz_user *
authz_session_user(struct web_req *r)
{
    struct gh_err e = {0};
    struct authz_user *u = session_lookup(r, &e);

    return u && !u->must_enrol ? u : NULL;
}

static struct authz_user *
require_login(struct web_req *r, bool enrolling)
{
    struct gh_err e = {0};
    struct authz_user *u = session_lookup(r, &e);
    struct gh_arena *a = web_arena(r);
    const char *path;
    char *full;

    if (u && u->must_enrol && !enrolling) {
        web_redirect(r, 303, "/profile/security");
        return NULL;
    }
    if (u)
        return u;
    if (gh_err_isset(&e)) {
        web_reply_err(r, &e);
        return NULL;
    }
    /* come back to the same request, query included, after signing in */
    path = web_full_path(r);
    full = gh_arena_printf(a, "/login?next=%s", gh_url_encode(a, path));
    web_redirect(r, 303, full);
    return NULL;
}

struct authz_user *
authz_require_login(struct web_req *r)
{
    return require_login(r, false);
}

struct authz_user *
authz_require_enrolling(struct web_req *r)
{
    return require_login(r, true);
}

struct authz_user *
authz_session_pending(struct web_req *r, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *cookie = web_cookie(r, AUTHZ_SESSION_COOKIE);
    struct authz_user *u;
    char hash[65];
    PGresult *res;

    if (cookie == NULL || strlen(cookie) != 64)
        return NULL;
    gh_sha256_hex(cookie, hash);
    res = db_query(a, e, SQL_SESSION_PENDING, 1, hash);
    if (res == NULL || PQntuples(res) == 0)
        return NULL;
    u = gh_arena_alloc(a, sizeof(*u));
    u->id = gh_arena_strdup(a, db_val(res, 0, 0));
    u->email = gh_arena_strdup(a, db_val(res, 0, 1));
    u->role = gh_arena_strdup(a, db_val(res, 0, 2));
    return u;
}

struct authz_user *
authz_require_admin(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);

    if (u && strcmp(u->role, "admin")) {
        /* in the console, so the signed-in person can go on from here */
        web_reply_html(r, 403, authz_page(r, u, "Not allowed",
                       "<div class=\"card\"><h1>Not allowed</h1><p class=\"error\" role=\"alert\">"
                       "This page is for administrators.</p></div>"));
        return NULL;
    }
    return u;
}

/* The browser as the sessions list names it: its User-Agent, shortened,
 * or nothing when it is not text. */
static const char *
session_agent(struct web_req *r)
{
    const char *ua = web_header(r, "User-Agent");
    size_t n;

    if (ua == NULL)
        return NULL;
    n = strnlen(ua, 200);
    while (n > 0 && ua[n] && ((unsigned char)ua[n] & 0xc0) == 0x80)
        n--;                    /* not inside a UTF-8 character */
    return gh_text_ok(ua, n) ? gh_arena_strndup(web_arena(r), ua, n) : NULL;
}

bool
authz_session_hash(struct web_req *r, char out[65])
{
    const char *cookie = web_cookie(r, AUTHZ_SESSION_COOKIE);

    if (cookie == NULL || strlen(cookie) != 64)
        return false;
    gh_sha256_hex(cookie, out);
    return true;
}

int
authz_session_create(struct web_req *r, const char *user_id, struct gh_err *e)
{
    return authz_session_begin(r, user_id, false, e);
}

int
authz_session_begin(struct web_req *r, const char *user_id, bool mfa_pending, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    char *sid = gh_token_hex(a, "", 32);
    const char *old = web_cookie(r, AUTHZ_SESSION_COOKIE);
    char hash[65], abs_s[24];

    if (sid == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "no entropy");
    /* a new id at every sign-in: a planted session id is worthless */
    if (old && strlen(old) == 64) {
        gh_sha256_hex(old, hash);
        db_query(a, e, "DELETE FROM web_sessions WHERE id_hash = $1", 1, hash);
    }
    gh_sha256_hex(sid, hash);
    snprintf(abs_s, sizeof(abs_s), "%ld", gh_cfg.session_absolute_seconds);
    if (!db_query(a, e, "INSERT INTO web_sessions (id_hash, user_id, expires_at, mfa_pending, ip, user_agent) "
                        "VALUES ($1, $2, now() + make_interval(secs => $3::int), $4, $5, $6)",
                  6, hash, user_id, abs_s, mfa_pending ? "true" : "false", web_client_ip(r), session_agent(r)))
        return -1;
    web_set_cookie(r, AUTHZ_SESSION_COOKIE, sid, gh_cfg.session_absolute_seconds, true, "Lax");
    return 0;
}

int
authz_session_destroy(struct web_req *r)
{
    const char *cookie = web_cookie(r, AUTHZ_SESSION_COOKIE);
    struct gh_err e = {0};
    char hash[65];

    if (cookie && strlen(cookie) == 64) {
        gh_sha256_hex(cookie, hash);
        db_query(web_arena(r), &e, "DELETE FROM web_sessions WHERE id_hash = $1", 1, hash);
    }
    web_set_cookie(r, AUTHZ_SESSION_COOKIE, "", 0, true, "Lax");
    return 0;
}
