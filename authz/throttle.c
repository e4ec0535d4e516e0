/*
 * authz/throttle.c — sign-in throttling per IP and per account.
 *
 * Failures are rows in the database so every process sees the same counts.
 * An IP gets four times the account allowance so one office behind a NAT
 * does not lock itself out because one person mistypes.
 *
 * The per-account lock must not be a way to lock the owner out: anyone who
 * knows an email could otherwise keep it locked from anywhere.  So it
 * follows OWASP's device cookies: a browser that signed in to an account
 * holds a device cookie (SHA-256 at rest, login_devices).  Failures are
 * counted per device: those without a valid device cookie of the account
 * lock only attempts without one, and a known browser is locked only by
 * its own failures.  The owner's usual browser keeps working while an
 * attacker hammers the account; a new browser waits like the attacker.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <string.h>

#define DEVICE_MAX_AGE  (86400L * 365)

/* The counting device: the hash if it is a device of the account ($1),
 * else NULL (every browser without one shares the count). */
#define SQL_DEVICE                                                               \
    "(SELECT d.token_hash FROM login_devices d JOIN users u ON u.id = d.user_id" \
    "  WHERE d.token_hash = $2 AND lower(u.email) = lower($1))"

/* Whether the attempt is locked, per account (its device's count) and
 * per IP, and when each lock lifts: the failure whose leaving the window
 * brings the count under the limit. */
static const char SQL_CHECK[] =
    "WITH f AS (SELECT at FROM login_failures WHERE lower(email) = lower($1)"
    "             AND at > now() - make_interval(secs => $4::int)"
    "             AND device_hash IS NOT DISTINCT FROM " SQL_DEVICE "),"
    "     i AS (SELECT at FROM login_failures WHERE ip = $3"
    "             AND at > now() - make_interval(secs => $4::int))"
    " SELECT CASE WHEN (SELECT count(*) FROM f) >= $5::int THEN"
    "          (SELECT ceil(extract(epoch FROM at + make_interval(secs => $4::int) - now()))::int FROM f"
    "            ORDER BY at OFFSET (SELECT count(*) FROM f) - $5::int LIMIT 1) END,"
    "        CASE WHEN (SELECT count(*) FROM i) >= $6::int THEN"
    "          (SELECT ceil(extract(epoch FROM at + make_interval(secs => $4::int) - now()))::int FROM i"
    "            ORDER BY at OFFSET (SELECT count(*) FROM i) - $6::int LIMIT 1) END";

static const char *
device_cookie_name(void)
{
    return gh_config_public_https() ? "__Host-gh_device" : "gh_device";
}

const char *
authz_throttle_device(struct web_req *r)
{
    const char *c = web_cookie(r, device_cookie_name());
    char *hash;

    if (c == NULL || strlen(c) != 64 || strspn(c, "0123456789abcdef") != 64)
        return NULL;
    hash = gh_arena_alloc(web_arena(r), 65);
    if (hash)
        gh_sha256_hex(c, hash);
    return hash;
}

void
authz_throttle_device_issue(struct web_req *r, const char *user_id, const char *device)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    char hash[65], age[24];
    char *t;
    PGresult *res;

    if (device) {
        /* already this account's device: nothing to issue */
        res = db_query(a, &e, "SELECT 1 FROM login_devices WHERE token_hash = $1 AND user_id = $2", 2, device, user_id);
        if (res == NULL || PQntuples(res) > 0)
            return;
    }
    t = gh_token_hex(a, "", 32);
    if (t == NULL)
        return;
    gh_sha256_hex(t, hash);
    if (db_query(a, &e, "INSERT INTO login_devices (token_hash, user_id) VALUES ($1, $2)", 2, hash, user_id)) {
        web_set_cookie(r, device_cookie_name(), t, DEVICE_MAX_AGE, true, "Lax");
        snprintf(age, sizeof(age), "%ld", DEVICE_MAX_AGE);
        db_query(a, &e, "DELETE FROM login_devices WHERE user_id = $1 AND created_at < now() - make_interval(secs => $2::int)",
                 2, user_id, age);
    }
}

int
authz_throttle_check(struct gh_arena *a, const char *email, const char *ip, const char *device, struct gh_err *e)
{
    char win[24], max[24], ipmax[24];
    PGresult *res;
    int wait;
    bool account;

    snprintf(win, sizeof(win), "%ld", gh_cfg.login_window_seconds);
    snprintf(max, sizeof(max), "%ld", gh_cfg.login_max_failures);
    snprintf(ipmax, sizeof(ipmax), "%ld", gh_cfg.login_max_failures * 4);
    res = db_query(a, e, SQL_CHECK, 6, email, device, ip, win, max, ipmax);
    if (res == NULL)
        return -1;
    account = !PQgetisnull(res, 0, 0);
    if (!account && PQgetisnull(res, 0, 1))
        return 0;
    wait = (int)db_ll(res, 0, account ? 0 : 1, 1);
    if (!account || (!PQgetisnull(res, 0, 1) && db_ll(res, 0, 1, 1) > wait))
        wait = (int)db_ll(res, 0, 1, 1);
    if (wait < 1)
        wait = 1;
    gh_err_set(e, 429, "slow_down", "", "sign-in throttled (%s%s)", account ? "account" : "ip",
               account && device == NULL ? ", unknown browser" : "");
    if (wait < 90)
        snprintf(e->msg, sizeof(e->msg), "Too many failed sign-in attempts. Try again in %d seconds.", wait);
    else
        snprintf(e->msg, sizeof(e->msg), "Too many failed sign-in attempts. Try again in %d minutes.",
                 (wait + 59) / 60);
    e->retry_after = wait;
    return -1;
}

void
authz_throttle_fail(struct gh_arena *a, const char *email, const char *ip, const char *device)
{
    struct gh_err e = {0};

    db_query(a, &e, "INSERT INTO login_failures (email, ip, device_hash) VALUES ($1, $3, " SQL_DEVICE ")",
             3, email, device, ip);
    /* keep the table small: old rows no longer count */
    db_query(a, &e, "DELETE FROM login_failures WHERE at < now() - interval '1 day'", 0);
}

void
authz_throttle_reset(struct gh_arena *a, const char *email, const char *device)
{
    struct gh_err e = {0};

    /* the count this attempt was under, no other: a sign-in from the
     * owner's browser does not hand a guesser a fresh allowance */
    db_query(a, &e, "DELETE FROM login_failures WHERE lower(email) = lower($1)"
                    "   AND device_hash IS NOT DISTINCT FROM " SQL_DEVICE, 2, email, device);
}
