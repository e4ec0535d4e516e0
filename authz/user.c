/* authz/user.c — accounts: create, disable, list, sign in. */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>

static const char SQL_USER_INSERT[] =
    "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3) RETURNING id";
static const char SQL_USER_BY_EMAIL[] =
    "SELECT id, email, role, disabled, password_hash FROM users WHERE lower(email) = lower($1)";
static const char SQL_USER_REHASH[] =
    "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1";

static bool
email_ok(const char *email)
{
    const char *at = email ? strchr(email, '@') : NULL;

    return at && at != email && at[1] && strlen(email) <= 254 && !strpbrk(email, " \t\r\n<>\"'");
}

int
authz_user_add(const char *email, const char *password, bool admin, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    char *hash = NULL;
    int rc = -1;

    if (!email_ok(email)) {
        gh_err_set(e, 400, "invalid_request", "a valid email address is required", NULL);
        goto out;
    }
    if (password && strlen(password) < 8) {
        gh_err_set(e, 400, "invalid_request", "the password must have at least 8 characters", NULL);
        goto out;
    }
    if (password && (hash = authz_password_hash(a, password, e)) == NULL)
        goto out;
    if (!db_query(a, e, SQL_USER_INSERT, 3, email, hash, admin ? "admin" : "user")) {
        if (!strcmp(e->code, "23505")) {
            gh_err_clear(e);
            gh_err_set(e, 409, "conflict", "a user with this email already exists", NULL);
        }
        goto out;
    }
    GH_LOG(INFO, "user_add", "user created (%s)", admin ? "admin" : "user");
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

int
authz_user_disable(const char *email, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    PGresult *res;
    int rc = -1;

    res = db_query(a, e, "UPDATE users SET disabled = true, updated_at = now() "
                         "WHERE lower(email) = lower($1) RETURNING id", 1, email);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 404, "not_found", "no such user", NULL);
        goto out;
    }
    authz_credentials_changed("user disabled");
    /* a disabled account loses its browser sessions at once */
    if (!db_query(a, e, "DELETE FROM web_sessions WHERE user_id = $1", 1, db_val(res, 0, 0)))
        goto out;
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

int
authz_user_list(FILE *out, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    PGresult *res = db_query(a, e, "SELECT email, role, disabled, created_at::timestamp(0) "
                                   "FROM users ORDER BY created_at, email", 0);
    int rc = -1;

    if (res == NULL)
        goto out;
    fprintf(out, "%-40s %-6s %-9s %s\n", "EMAIL", "ROLE", "STATUS", "CREATED");
    for (int i = 0; i < PQntuples(res); i++)
        fprintf(out, "%-40s %-6s %-9s %s\n", db_val(res, i, 0), db_val(res, i, 1),
                db_bool(res, i, 2) ? "disabled" : "active", db_val(res, i, 3));
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

int
authz_user_login(struct gh_arena *a, const char *email, const char *password, const char *ip,
                 const char *device, struct authz_user **out, struct gh_err *e)
{
    PGresult *res;
    struct authz_user *u;
    bool upgrade = false;
    int v;

    if (authz_throttle_check(a, email, ip, device, e) < 0)
        return -1;
    res = db_query(a, e, SQL_USER_BY_EMAIL, 1, email);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        /* same cost as a real check, so timing does not reveal accounts */
        authz_password_verify("$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                              "yuGkBmqxAGOWZbSkqU2pcaX4Gp+e5TGHbSH+sO8DUIo", password, &upgrade);
        v = 1;
    } else {
        v = authz_password_verify(db_val(res, 0, 4), password, &upgrade);
    }
    if (v != 0 || db_bool(res, 0, 3)) {
        authz_throttle_fail(a, email, ip, device);
        return gh_err_set(e, 401, "invalid_grant", "Invalid email or password.",
                          v < 0 ? "password verification error" : "sign-in refused");
    }
    u = gh_arena_alloc(a, sizeof(*u));
    u->id = gh_arena_strdup(a, db_val(res, 0, 0));
    u->email = gh_arena_strdup(a, db_val(res, 0, 1));
    u->role = gh_arena_strdup(a, db_val(res, 0, 2));
    if (upgrade) {
        struct gh_err e2 = {0};
        char *h = authz_password_hash(a, password, &e2);
        if (h && db_query(a, &e2, SQL_USER_REHASH, 2, u->id, h))
            GH_LOG(INFO, "password_upgrade", "password hash upgraded to argon2id");
    }
    authz_throttle_reset(a, email, device);
    *out = u;
    return 0;
}
