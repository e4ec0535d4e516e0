/*
 * tests/unit/gateway/call.c — a forwarded call's state machine
 * (gateway/call.c, gw_call_may): at most one retry, a cancel or a
 * departure only while the call runs, one outcome per call, nothing after
 * the final message.
 */
#include "tests/unit/unit.h"
#include "gateway/endpoint_int.h"

#define N (GW_CALL_DONE + 1)

static const char *const names[N] = { "AHEAD", "SENT", "RETRY", "RESENT", "CANCELLED", "LEFT", "ANSWERED", "DONE" };

static bool
live(enum gw_call_state s)
{
    return s == GW_CALL_AHEAD || s == GW_CALL_SENT || s == GW_CALL_RETRY || s == GW_CALL_RESENT;
}

static void
test_the_table(void)
{
    /* every pair, against the rules the call relies on */
    for (int f = 0; f < N; f++)
        for (int t = 0; t < N; t++) {
            bool want;
            if (t == GW_CALL_SENT)
                want = f == GW_CALL_AHEAD;                  /* only once its row is committed */
            else if (t == GW_CALL_RETRY)
                want = f == GW_CALL_SENT;                   /* one retry, from the first send only */
            else if (t == GW_CALL_RESENT)
                want = f == GW_CALL_RETRY;
            else if (t == GW_CALL_CANCELLED || t == GW_CALL_LEFT)
                want = live(f);                             /* a cancel stops a running call only */
            else if (t == GW_CALL_ANSWERED)
                want = f < GW_CALL_ANSWERED;                /* once, from anywhere before */
            else if (t == GW_CALL_DONE)
                /* the final message after its outcome; or its row ahead was
                 * not written and nothing went upstream */
                want = f == GW_CALL_ANSWERED || f == GW_CALL_AHEAD;
            else
                want = false;                               /* nothing goes back to AHEAD */
            if (gw_call_may(f, t) != want)
                fprintf(stderr, "  %s -> %s should be %s\n", names[f], names[t], want ? "allowed" : "refused");
            UNIT_EQ_INT(gw_call_may(f, t), want);
        }
}

/* The walks a call takes: each step allowed, and the retry not twice. */
static void
test_walks(void)
{
    static const enum gw_call_state walks[][6] = {
        { GW_CALL_AHEAD, GW_CALL_SENT, GW_CALL_ANSWERED, GW_CALL_DONE },
        { GW_CALL_AHEAD, GW_CALL_SENT, GW_CALL_RETRY, GW_CALL_RESENT, GW_CALL_ANSWERED, GW_CALL_DONE },
        { GW_CALL_AHEAD, GW_CALL_SENT, GW_CALL_CANCELLED, GW_CALL_ANSWERED, GW_CALL_DONE },
        { GW_CALL_AHEAD, GW_CALL_SENT, GW_CALL_RETRY, GW_CALL_LEFT, GW_CALL_ANSWERED, GW_CALL_DONE },
        { GW_CALL_AHEAD, GW_CALL_SENT, GW_CALL_RETRY, GW_CALL_RESENT, GW_CALL_CANCELLED, GW_CALL_ANSWERED },
        { GW_CALL_AHEAD, GW_CALL_DONE },                            /* its row ahead not written */
        { GW_CALL_AHEAD, GW_CALL_LEFT, GW_CALL_ANSWERED, GW_CALL_DONE },  /* gone before it was sent */
    };

    for (size_t w = 0; w < GH_ARRAY_LEN(walks); w++)
        for (int i = 1; i < 6 && walks[w][i] != GW_CALL_AHEAD; i++)
            UNIT_TRUE(gw_call_may(walks[w][i - 1], walks[w][i]));
    UNIT_TRUE(!gw_call_may(GW_CALL_CANCELLED, GW_CALL_SENT));      /* cancelled before its row: never sent */
    UNIT_TRUE(!gw_call_may(GW_CALL_RESENT, GW_CALL_RETRY));        /* a second session loss is an error */
    UNIT_TRUE(!gw_call_may(GW_CALL_CANCELLED, GW_CALL_RETRY));     /* a cancelled call is not sent again */
    UNIT_TRUE(!gw_call_may(GW_CALL_CANCELLED, GW_CALL_RESENT));
    UNIT_TRUE(!gw_call_may(GW_CALL_LEFT, GW_CALL_CANCELLED));      /* the upstream is told once */
    UNIT_TRUE(!gw_call_may(GW_CALL_CANCELLED, GW_CALL_LEFT));
    UNIT_TRUE(!gw_call_may(GW_CALL_ANSWERED, GW_CALL_ANSWERED));   /* one outcome, one row */
    UNIT_TRUE(!gw_call_may(GW_CALL_DONE, GW_CALL_ANSWERED));
}

int
main(void)
{
    UNIT_RUN(test_the_table);
    UNIT_RUN(test_walks);
    return UNIT_DONE();
}
