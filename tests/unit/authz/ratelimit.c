/*
 * tests/unit/authz/ratelimit.c — the per-IP token buckets, driven with an
 * explicit clock: a burst of the budget, then one request per
 * 60 s / budget, no reset at minute boundaries, exact Retry-After.
 */
#include "tests/unit/unit.h"
#include "authz/authz_int.h"

#define S INT64_C(1000000)

static void
key(unsigned char k[16], int n)
{
    memset(k, 0, 16);
    k[0] = (unsigned char)n;
    k[15] = 0xa5;
}

static void
test_burst_then_steady(void)
{
    unsigned char k[16];
    int64_t t = 1000 * S;

    key(k, 1);
    for (int i = 0; i < 3; i++)
        UNIT_EQ_INT(authz_rate_take(k, 3, t), 0);
    UNIT_EQ_INT(authz_rate_take(k, 3, t), 20);          /* one step is 20 s */
    UNIT_EQ_INT(authz_rate_take(k, 3, t + 19 * S), 1);  /* refusals take nothing */
    UNIT_EQ_INT(authz_rate_take(k, 3, t + 20 * S), 0);
    UNIT_EQ_INT(authz_rate_take(k, 3, t + 20 * S), 20);
    UNIT_EQ_INT(authz_rate_take(k, 3, t + 120 * S), 0); /* full again after a minute idle */
    UNIT_EQ_INT(authz_rate_take(k, 3, t + 120 * S), 0);
    UNIT_EQ_INT(authz_rate_take(k, 3, t + 120 * S), 0);
    UNIT_EQ_INT(authz_rate_take(k, 3, t + 120 * S), 20);
}

/* The fixed windows this replaced gave a fresh budget at every minute
 * boundary: a budget spent at :59 was whole again at :00. */
static void
test_no_window_boundary(void)
{
    unsigned char k[16];
    int64_t t = 59 * S + S / 2;   /* half a second before a minute boundary */
    int taken = 0;

    key(k, 2);
    for (int i = 0; i < 10; i++)
        taken += authz_rate_take(k, 5, t) == 0;
    for (int i = 0; i < 10; i++)
        taken += authz_rate_take(k, 5, t + S) == 0;
    UNIT_EQ_INT(taken, 5);
}

static void
test_keys_apart(void)
{
    unsigned char a[16], b[16];
    int64_t t = 5000 * S;

    key(a, 3);
    key(b, 4);
    UNIT_EQ_INT(authz_rate_take(a, 1, t), 0);
    UNIT_EQ_INT(authz_rate_take(a, 1, t), 60);
    UNIT_EQ_INT(authz_rate_take(b, 1, t), 0);
    /* large budgets: steps of 60 µs, a burst of the whole budget */
    key(a, 5);
    for (int i = 0; i < 1000000; i++)
        if (authz_rate_take(a, 1000000, t) != 0) {
            UNIT_TRUE(!"budget of 1,000,000 refused early");
            break;
        }
    UNIT_EQ_INT(authz_rate_take(a, 1000000, t), 1);
    UNIT_EQ_INT(authz_rate_take(a, 1000000, t + 60), 0);
}

int
main(void)
{
    UNIT_RUN(test_burst_then_steady);
    UNIT_RUN(test_no_window_boundary);
    UNIT_RUN(test_keys_apart);
    return UNIT_DONE();
}
