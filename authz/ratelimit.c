/*
 * authz/ratelimit.c — per-IP request budgets for /oauth/register,
 * /oauth/token, sign-in and fresh client metadata documents.
 *
 * Each budget is a token bucket of `per_min` requests refilled evenly over
 * a minute, kept as one number (the generic cell rate algorithm): the time
 * at which the bucket would be full again.  A request is taken while that
 * time is less than a minute ahead; each taken request moves it on by
 * 60 s / per_min.  Unlike fixed one-minute windows there is no boundary at
 * which the count resets, so a caller never gets twice its budget across
 * one, and Retry-After is exactly when the next request will be taken.
 *
 * A small fixed table keyed by hash(bucket, ip): a collision at worst
 * restarts the other caller's bucket, never grows memory.  Limits are per
 * process; the defaults are generous so many users behind one NAT are not
 * refused.
 */
#include "authz/authz_int.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SLOTS 4096
#define MINUTE_US INT64_C(60000000)

static struct slot {
    unsigned char key[16];
    int64_t       full_at;     /* monotonic µs at which the bucket is full */
} slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int
authz_rate_take(const unsigned char key[16], long per_min, int64_t now_us)
{
    int64_t step = MINUTE_US / (per_min > 0 ? per_min : 1), full_at;
    struct slot *s = &slots[(key[0] << 4 | key[1] >> 4) % SLOTS];
    int wait_s = 0;

    pthread_mutex_lock(&lock);
    if (memcmp(s->key, key, 16)) {
        memcpy(s->key, key, 16);
        s->full_at = now_us;
    }
    full_at = s->full_at > now_us ? s->full_at : now_us;
    if (full_at + step - now_us > MINUTE_US)
        /* whole seconds until one step has drained, at least 1 */
        wait_s = (int)((full_at + step - now_us - MINUTE_US + 999999) / 1000000);
    else
        s->full_at = full_at + step;
    pthread_mutex_unlock(&lock);
    return wait_s;
}

int
authz_rate_check(struct web_req *r, const char *bucket, long per_min, struct gh_err *e)
{
    unsigned char h[32];
    char buf[160];
    int n = snprintf(buf, sizeof(buf), "%s|%s", bucket, web_client_ip(r));
    int wait_s;

    gh_sha256(buf, (size_t)n, h);
    wait_s = authz_rate_take(h, per_min, gh_now_us());
    if (wait_s > 0) {
        gh_err_set(e, 429, "slow_down", "Too many requests. Try again shortly.",
                   "rate limit %s exceeded", bucket);
        e->retry_after = wait_s;
        return -1;
    }
    return 0;
}
