/*
 * authz/throttle.c — sign-in throttling per account and per IP.
 *
 * Failures are rows in the database so every process sees the same counts.
 * An IP gets four times the account allowance so one office behind a NAT
 * does not lock itself out because one person mistypes.
 */
#include "authz/authz_int.h"
#include <stdio.h>

int
authz_throttle_check(struct gh_arena *a, const char *email, const char *ip, struct gh_err *e)
{
    char win[24], max[24], ipmax[24];
    PGresult *res;

    snprintf(win, sizeof(win), "%ld", gh_cfg.login_window_seconds);
    snprintf(max, sizeof(max), "%ld", gh_cfg.login_max_failures);
    snprintf(ipmax, sizeof(ipmax), "%ld", gh_cfg.login_max_failures * 4);
    res = db_query(a, e,
                   "SELECT (SELECT count(*) FROM login_failures WHERE lower(email) = lower($1)"
                   "          AND at > now() - make_interval(secs => $3::int)) >= $4::int,"
                   "       (SELECT count(*) FROM login_failures WHERE ip = $2"
                   "          AND at > now() - make_interval(secs => $3::int)) >= $5::int",
                   5, email, ip, win, max, ipmax);
    if (res == NULL)
        return -1;
    if (db_bool(res, 0, 0) || db_bool(res, 0, 1)) {
        gh_err_set(e, 429, "slow_down",
                   "Too many failed sign-in attempts. Wait a few minutes and try again.",
                   "sign-in throttled (%s)", db_bool(res, 0, 0) ? "account" : "ip");
        e->retry_after = (int)gh_cfg.login_window_seconds;
        return -1;
    }
    return 0;
}

void
authz_throttle_fail(struct gh_arena *a, const char *email, const char *ip)
{
    struct gh_err e = {0};

    db_query(a, &e, "INSERT INTO login_failures (email, ip) VALUES ($1, $2)", 2, email, ip);
    /* keep the table small: old rows no longer count */
    db_query(a, &e, "DELETE FROM login_failures WHERE at < now() - interval '1 day'", 0);
}

void
authz_throttle_reset(struct gh_arena *a, const char *email)
{
    struct gh_err e = {0};

    db_query(a, &e, "DELETE FROM login_failures WHERE lower(email) = lower($1)", 1, email);
}
