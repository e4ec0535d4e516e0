/*
 * authz/ratelimit.c — per-IP request budgets for /oauth/register,
 * /oauth/token and sign-in: fixed one-minute windows in memory.
 *
 * A small fixed table keyed by hash(bucket, ip): a collision at worst
 * merges two callers' counts, never grows memory.  Limits are per process;
 * the defaults are generous so many users behind one NAT are not refused.
 */
#include "authz/authz_int.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SLOTS 4096

static struct slot {
    unsigned char key[16];
    int64_t       window;
    long          count;
} slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int
authz_rate_check(struct web_req *r, const char *bucket, long per_min, struct gh_err *e)
{
    unsigned char h[32];
    char buf[160];
    int64_t now = gh_time_s(), win = now / 60;
    struct slot *s;
    long count;
    int n = snprintf(buf, sizeof(buf), "%s|%s", bucket, web_client_ip(r));

    gh_sha256(buf, (size_t)n, h);
    pthread_mutex_lock(&lock);
    s = &slots[(h[0] << 4 | h[1] >> 4) % SLOTS];
    if (memcmp(s->key, h, 16) || s->window != win) {
        memcpy(s->key, h, 16);
        s->window = win;
        s->count = 0;
    }
    count = ++s->count;
    pthread_mutex_unlock(&lock);
    if (count > per_min) {
        gh_err_set(e, 429, "slow_down", "Too many requests. Try again shortly.",
                   "rate limit %s exceeded", bucket);
        e->retry_after = (int)(60 - now % 60);
        return -1;
    }
    return 0;
}
