/*
 * tests/unit/gateway/upstream.c — the upstream client's incremental SSE
 * parser (gateway/upstream.c): every line ending, any split of the byte
 * stream, events held until their blank line, the cap on one event.
 */
#include "tests/unit/unit.h"
#include "gateway/mcp_int.h"
#include <stdlib.h>

struct got {
    int  n;
    char ev[8][32];
    char data[8][256];
};

static void
on_ev(void *ctx, const char *event, const char *data, size_t len)
{
    struct got *g = ctx;

    if (g->n < 8) {
        snprintf(g->ev[g->n], sizeof(g->ev[0]), "%s", event);
        snprintf(g->data[g->n], sizeof(g->data[0]), "%.*s", (int)len, data);
    }
    g->n++;
}

static const char STREAM[] =
    ": a comment\r\n"
    "event: message\r\n"
    "id: 7\r\n"
    "data: {\"a\":1}\r\n"
    "\r\n"
    "data: line one\n"
    "data:line two\n"
    "\n"
    "retry: 100\r"
    "event: other\r"
    "data: x\r"
    "\r"
    "data: {\"last\":true}\n\n";

static void
check_stream(struct got *g)
{
    UNIT_EQ_INT(g->n, 4);
    UNIT_EQ_STR(g->ev[0], "message");
    UNIT_EQ_STR(g->data[0], "{\"a\":1}");
    UNIT_EQ_STR(g->ev[1], "message");
    UNIT_EQ_STR(g->data[1], "line one\nline two");
    UNIT_EQ_STR(g->ev[2], "other");
    UNIT_EQ_STR(g->data[2], "x");
    UNIT_EQ_STR(g->data[3], "{\"last\":true}");
}

static void
test_sse_whole(void)
{
    struct gw_sse p = {0};
    struct got g = {0};

    UNIT_EQ_INT(gw_sse_feed(&p, STREAM, sizeof(STREAM) - 1, on_ev, &g), 0);
    check_stream(&g);
    gw_sse_free(&p);
}

static void
test_sse_every_split(void)
{
    size_t n = sizeof(STREAM) - 1;

    /* every two-way split, then byte by byte: the same events */
    for (size_t cut = 0; cut <= n; cut++) {
        struct gw_sse p = {0};
        struct got g = {0};
        gw_sse_feed(&p, STREAM, cut, on_ev, &g);
        gw_sse_feed(&p, STREAM + cut, n - cut, on_ev, &g);
        check_stream(&g);
        gw_sse_free(&p);
    }
    {
        struct gw_sse p = {0};
        struct got g = {0};
        for (size_t i = 0; i < n; i++)
            gw_sse_feed(&p, STREAM + i, 1, on_ev, &g);
        check_stream(&g);
        gw_sse_free(&p);
    }
}

static void
test_sse_incomplete_and_limit(void)
{
    struct gw_sse p = { .max = 16 };
    struct got g = {0};

    /* an event without its blank line is not delivered yet */
    UNIT_EQ_INT(gw_sse_feed(&p, "data: 12345\n", 12, on_ev, &g), 0);
    UNIT_EQ_INT(g.n, 0);
    UNIT_EQ_INT(gw_sse_feed(&p, "\n", 1, on_ev, &g), 0);
    UNIT_EQ_INT(g.n, 1);
    /* past the cap: refused, never an overflow */
    UNIT_EQ_INT(gw_sse_feed(&p, "data: 0123456789abcdefghij\n", 27, on_ev, &g), -1);
    gw_sse_free(&p);
}

/* A field without a space after its colon, a field with no colon at all,
 * and "data" with nothing after it: the last is an empty line of data. */
static void
test_sse_field_forms(void)
{
    static const char s[] = "data\n\nevent:x\ndata:a\ndata\ndata: b\n\n";
    struct gw_sse p = {0};
    struct got g = {0};

    UNIT_EQ_INT(gw_sse_feed(&p, s, sizeof(s) - 1, on_ev, &g), 0);
    UNIT_EQ_INT(g.n, 2);
    UNIT_EQ_STR(g.data[0], "");
    UNIT_EQ_STR(g.ev[1], "x");
    UNIT_EQ_STR(g.data[1], "a\n\nb");
    gw_sse_free(&p);
}

int
main(void)
{
    UNIT_RUN(test_sse_whole);
    UNIT_RUN(test_sse_every_split);
    UNIT_RUN(test_sse_incomplete_and_limit);
    UNIT_RUN(test_sse_field_forms);
    return UNIT_DONE();
}
