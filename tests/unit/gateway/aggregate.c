/*
 * tests/unit/gateway/aggregate.c — the pure parts of the gateway endpoint:
 * aggregated names (length, determinism, freedom from collisions, linear
 * cost of repeats), what is taken from an upstream's list (repeats, the
 * cap), routing by each kind's own key, URI wrapping, page cursors.
 * The SSE parser's tests are beside upstream.c's: tests/unit/gateway/upstream.c.
 */
#include "tests/unit/unit.h"
#include "gateway/mcp_int.h"
#include <stdlib.h>

static void
test_short_names_plain(void)
{
    const char *c[] = { "alpha", "beta" }, *o[] = { "echo", "echo" };
    char names[2][GW_NAME_MAX + 1];

    gw_agg_names(NULL, c, o, 2, names);
    UNIT_EQ_STR(names[0], "alpha__echo");
    UNIT_EQ_STR(names[1], "beta__echo");
}

static void
test_long_names_shortened_deterministically(void)
{
    const char *c[] = { "alpha", "alpha" };
    const char *o[] = { "summarize_the_quarterly_financial_report_of_the_company_and_more_words",
                        "summarize_the_quarterly_financial_report_of_the_company_and_other_words" };
    char a[2][GW_NAME_MAX + 1], b[2][GW_NAME_MAX + 1];

    gw_agg_names(NULL, c, o, 2, a);
    gw_agg_names(NULL, c, o, 2, b);
    for (int i = 0; i < 2; i++) {
        UNIT_EQ_INT(strlen(a[i]), GW_NAME_MAX);
        UNIT_EQ_STR(a[i], b[i]);                    /* same input, same names */
        UNIT_TRUE(!strncmp(a[i], "alpha__summarize_the_quarterly_financial_report", 47));
    }
    UNIT_TRUE(strcmp(a[0], a[1]) != 0);             /* same prefix, told apart */
    /* exactly 64 stays as it is */
    {
        char t[GW_NAME_MAX - 7 + 1];
        const char *cc[] = { "abcde" }, *oo[] = { t };
        char n[1][GW_NAME_MAX + 1];
        memset(t, 'x', sizeof(t) - 1);
        t[sizeof(t) - 1] = '\0';
        gw_agg_names(NULL, cc, oo, 1, n);
        UNIT_EQ_INT(strlen(n[0]), GW_NAME_MAX);
        UNIT_TRUE(!strncmp(n[0], "abcde__xxx", 10) && n[0][GW_NAME_MAX - 1] == 'x');
    }
}

static void
test_collisions_resolved(void)
{
    /* "a_" + "_b" and "a" + "__b" meet in the plain form; a shortened name
     * may equal another entry's plain name: every name still differs */
    enum { N = 6 };
    const char *c[N] = { "a_", "a", "a", "zz", "zz", "zz" };
    const char *o[N] = { "_b", "__b", "__b", "t", "t", "t" };
    char n[N][GW_NAME_MAX + 1], m[N][GW_NAME_MAX + 1];

    gw_agg_names(NULL, c, o, N, n);
    gw_agg_names(NULL, c, o, N, m);
    UNIT_EQ_STR(n[0], "a____b");                    /* the first keeps the plain name */
    UNIT_EQ_INT(strlen(n[1]), strlen("a____b") + 9); /* the second: plain + "_" + 8 hex */
    for (int i = 0; i < N; i++) {
        UNIT_TRUE(strlen(n[i]) <= GW_NAME_MAX);
        UNIT_EQ_STR(n[i], m[i]);
        for (int j = 0; j < i; j++)
            UNIT_TRUE(strcmp(n[i], n[j]) != 0);
    }
}

/* How many of names[0..n) repeat an earlier one; each is checked to fit. */
static int
names_repeated(char (*names)[GW_NAME_MAX + 1], int n)
{
    json_t *seen = json_object();
    int dup = 0;

    for (int i = 0; i < n; i++) {
        UNIT_TRUE(strlen(names[i]) <= GW_NAME_MAX);
        if (json_object_get(seen, names[i]))
            dup++;
        json_object_set_new(seen, names[i], json_true());
    }
    json_decref(seen);
    return dup;
}

static void
test_many_long_names_unique(void)
{
    enum { N = 2000 };
    const char **c = calloc(N, sizeof(*c)), **o = calloc(N, sizeof(*o));
    char (*n)[GW_NAME_MAX + 1] = calloc(N, sizeof(*n));
    char (*buf)[128] = calloc(N, sizeof(*buf));

    for (int i = 0; i < N; i++) {
        /* long names that differ only past the kept prefix, and repeats */
        snprintf(buf[i], sizeof(buf[i]), "a_very_long_tool_name_that_goes_on_and_on_past_the_limit_%d", i % 1500);
        c[i] = i % 2 ? "conn" : "conn2";
        o[i] = buf[i];
    }
    gw_agg_names(NULL, c, o, N, n);
    UNIT_EQ_INT(names_repeated(n, N), 0);
    free(c);
    free(o);
    free(n);
    free(buf);
}

static void
test_identical_names_many(void)
{
    /* one name 20,000 times (and one colliding with its rehashed forms):
     * every name differs, fits, is the same on a second run; the old rule
     * (each repeat counting from 1) took minutes here */
    enum { N = 20000 };
    const char **c = calloc(N, sizeof(*c)), **o = calloc(N, sizeof(*o));
    char (*n)[GW_NAME_MAX + 1] = calloc(N, sizeof(*n)), (*m)[GW_NAME_MAX + 1] = calloc(N, sizeof(*m));

    for (int i = 0; i < N; i++) {
        c[i] = i % 1000 == 999 ? "conn_" : "conn";
        o[i] = i % 1000 == 999 ? "x" : "_x";        /* "conn___x" either way */
    }
    gw_agg_names(NULL, c, o, N, n);
    gw_agg_names(NULL, c, o, N, m);
    UNIT_EQ_STR(n[0], "conn___x");
    UNIT_EQ_INT(strlen(n[1]), strlen("conn___x") + 9);
    UNIT_TRUE(!strncmp(n[1], "conn___x_", 9));
    for (int i = 0; i < N; i++)
        UNIT_EQ_STR(n[i], m[i]);
    UNIT_EQ_INT(names_repeated(n, N), 0);
    free(c);
    free(o);
    free(n);
    free(m);
}

static void
test_take_repeats_and_cap(void)
{
    /* an upstream listing every name twice, 25,000 entries over two pages,
     * some malformed: the first of each name kept, GW_AGG_LIST_MAX in all */
    json_t *list = json_array(), *seen = json_object(), *p1 = json_array(), *p2 = json_array();
    int repeats = 0, over = 0, bad = 0;

    for (int i = 0; i < 25000; i++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "t%d", i / 2);
        json_array_append_new(i < 3000 ? p1 : p2, json_pack("{s:s, s:i}", "name", nm, "i", i));
        if (i % 5000 == 7) {
            json_array_append_new(p1, json_string("not an object"));
            json_array_append_new(p2, json_pack("{s:i}", "name", 3));
        }
    }
    gw_agg_take(list, seen, p1, GW_TOOLS, &repeats, &over);
    UNIT_EQ_INT(json_array_size(list), 1500);
    UNIT_EQ_INT(repeats, 1500);
    gw_agg_take(list, seen, p2, GW_TOOLS, &repeats, &over);
    UNIT_EQ_INT(json_array_size(list), GW_AGG_LIST_MAX);
    UNIT_EQ_INT(repeats + over, 25000 - GW_AGG_LIST_MAX);
    UNIT_TRUE(over > 0);
    for (int i = 0; i < GW_AGG_LIST_MAX; i++) {
        json_t *it = json_array_get(list, (size_t)i);
        char nm[32];
        snprintf(nm, sizeof(nm), "t%d", i);
        if (strcmp(gh_json_str(it, "name"), nm) || json_integer_value(json_object_get(it, "i")) != 2 * i)
            bad++;
    }
    UNIT_EQ_INT(bad, 0);
    json_decref(list);
    json_decref(seen);
    json_decref(p1);
    json_decref(p2);

    /* resources are keyed by uri: a repeated name is no repeat */
    list = json_array();
    seen = json_object();
    p1 = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s}, {s:s}]", "uri", "f://a", "name", "n", "uri", "f://b",
                   "name", "n", "uri", "f://a", "name", "f://c");
    repeats = over = 0;
    gw_agg_take(list, seen, p1, GW_RESOURCES, &repeats, &over);
    UNIT_EQ_INT(json_array_size(list), 2);
    UNIT_EQ_INT(repeats, 1);
    UNIT_EQ_INT(over, 0);
    json_decref(list);
    json_decref(seen);
    json_decref(p1);
}

static void
test_find_by_own_key(void)
{
    /* a hostile upstream (aaa) adds "uri": "bbb__secret" to a tool and a
     * prompt of its own: bbb__secret still finds bbb's */
    struct gw_entry e[] = {
        { json_pack("{s:s, s:s}", "name", "aaa__x", "uri", "bbb__secret"), "1", "aaa", "x", "aaa" },
        { json_pack("{s:s}", "name", "bbb__secret"), "2", "bbb", "secret", "bbb" },
    };
    struct gw_entry r[] = {
        { json_pack("{s:s, s:s}", "uri", "f://a", "name", "f://b"), "1", "aaa", "f://a", "aaa" },
        { json_pack("{s:s}", "uri", "f://b"), "2", "bbb", "f://b", "bbb" },
    };
    struct gw_entry t[] = {
        { json_pack("{s:s, s:s}", "uriTemplate", "f://{id}", "uri", "f://b"), "1", "aaa", "f://{id}", "aaa" },
    };
    struct gw_list l = { .e = e, .n = 2, .kind = GW_TOOLS };

    UNIT_TRUE(gw_agg_find(&l, "bbb__secret") == &e[1]);
    UNIT_TRUE(gw_agg_find(&l, "aaa__x") == &e[0]);
    l.kind = GW_PROMPTS;
    UNIT_TRUE(gw_agg_find(&l, "bbb__secret") == &e[1]);
    /* only bbb's: aaa's uri is no key, so with bbb gone nothing is found */
    l.n = 1;
    UNIT_TRUE(gw_agg_find(&l, "bbb__secret") == NULL);
    l = (struct gw_list){ .e = r, .n = 2, .kind = GW_RESOURCES };
    UNIT_TRUE(gw_agg_find(&l, "f://b") == &r[1]);
    UNIT_TRUE(gw_agg_find(&l, "f://a") == &r[0]);
    l = (struct gw_list){ .e = t, .n = 1, .kind = GW_TEMPLATES };
    UNIT_TRUE(gw_agg_find(&l, "f://b") == NULL);
    UNIT_TRUE(gw_agg_find(&l, "f://{id}") == &t[0]);
    for (int i = 0; i < 2; i++) {
        json_decref(e[i].item);
        json_decref(r[i].item);
    }
    json_decref(t[0].item);
}

static void
test_utf8_not_split(void)
{
    /* 53 ASCII bytes then multi-byte characters across the cut at 55 */
    char tool[200];
    const char *c[] = { "x" }, *o[] = { tool };
    char n[1][GW_NAME_MAX + 1];

    memset(tool, 'a', 50);
    strcpy(tool + 50, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    gw_agg_names(NULL, c, o, 1, n);
    UNIT_TRUE(strlen(n[0]) <= GW_NAME_MAX);
    {
        const char *us = strrchr(n[0], '_');        /* the hash suffix */
        size_t keep = (size_t)(us - n[0]);
        /* the kept part ends on a character boundary */
        UNIT_TRUE(((unsigned char)n[0][keep - 1] & 0xC0) != 0xC0);
        UNIT_TRUE(((unsigned char)n[0][keep - 1] & 0x80) == 0 || ((unsigned char)n[0][keep - 2] & 0xE0) == 0xC0);
    }
}

static void
test_uri_wrap_roundtrip(void)
{
    struct gh_arena *a = gh_arena_new(0);
    char *w = gw_agg_uri_wrap(a, "beta", "file:///etc/x?y=1"), *c, *u;

    UNIT_EQ_STR(w, "gh://beta/file:///etc/x?y=1");
    UNIT_EQ_INT(gw_agg_uri_unwrap(a, w, &c, &u), 0);
    UNIT_EQ_STR(c, "beta");
    UNIT_EQ_STR(u, "file:///etc/x?y=1");
    UNIT_EQ_INT(gw_agg_uri_unwrap(a, "file:///x", &c, &u), -1);
    UNIT_EQ_INT(gw_agg_uri_unwrap(a, "gh:///x", &c, &u), -1);
    UNIT_EQ_INT(gw_agg_uri_unwrap(a, "gh://beta/", &c, &u), -1);
    gh_arena_free(a);
}

static void
test_cursor(void)
{
    struct gh_arena *a = gh_arena_new(0);
    int off = -1;

    UNIT_EQ_INT(gw_agg_cursor_parse(gw_agg_cursor_make(a, 300), &off), 0);
    UNIT_EQ_INT(off, 300);
    UNIT_EQ_INT(gw_agg_cursor_parse("not-a-cursor", &off), -1);
    UNIT_EQ_INT(gw_agg_cursor_parse("", &off), -1);
    UNIT_EQ_INT(gw_agg_cursor_parse("67683a2d31", &off), -1);          /* "gh:-1" */
    UNIT_EQ_INT(gw_agg_cursor_parse("6768313a2d31", &off), -1);        /* "gh1:-1" */
    UNIT_EQ_INT(gw_agg_cursor_parse("6768313a", &off), -1);            /* "gh1:" */
    UNIT_EQ_INT(gw_agg_cursor_parse("6768313a31783", &off), -1);       /* odd length */
    gh_arena_free(a);
}

static void
test_prefixes(void)
{
    /* gh: its own prefix; ln: none; beta: the default (its name); two
     * connectors without prefix list "echo": the first keeps it, the
     * other gets "echo_" + a hash of its own full name */
    const char *p[] = { "gh", "", NULL, "" }, *c[] = { "github", "linear", "beta", "zeta" };
    const char *o[] = { "create_issue", "echo", "echo", "echo" };
    char n[4][GW_NAME_MAX + 1], m[4][GW_NAME_MAX + 1];

    gw_agg_names(p, c, o, 4, n);
    UNIT_EQ_STR(n[0], "gh__create_issue");
    UNIT_EQ_STR(n[1], "echo");
    UNIT_EQ_STR(n[2], "beta__echo");
    UNIT_EQ_INT(strlen(n[3]), strlen("echo") + 9);
    UNIT_TRUE(!strncmp(n[3], "echo_", 5));
    /* zeta's name does not depend on where linear stands: moved first,
     * linear's "echo" keeps zeta's hashed one the same */
    {
        const char *p2[] = { "", "" }, *c2[] = { "zeta", "linear" }, *o2[] = { "echo", "echo" };
        char q[2][GW_NAME_MAX + 1];
        const char *p3[] = { "", "" }, *c3[] = { "linear", "zeta" };
        char r[2][GW_NAME_MAX + 1];
        gw_agg_names(p2, c2, o2, 2, q);
        gw_agg_names(p3, c3, o2, 2, r);
        UNIT_EQ_STR(q[0], "echo");
        UNIT_EQ_STR(r[1], n[3]);
        UNIT_TRUE(strcmp(q[1], r[1]) != 0);         /* linear's hashed name is its own */
    }
    gw_agg_names(p, c, o, 4, m);
    for (int i = 0; i < 4; i++) {
        UNIT_EQ_STR(n[i], m[i]);
        for (int j = 0; j < i; j++)
            UNIT_TRUE(strcmp(n[i], n[j]) != 0);
    }
}

static void
test_prefix_long_and_failed_owner(void)
{
    /* a long name without prefix is cut and hashed like any other */
    char tool[100];
    const char *p[] = { "" }, *c[] = { "x" }, *o[] = { tool };
    char n[1][GW_NAME_MAX + 1];
    char *failed[] = { "down", "bare" };
    const char *fp[] = { "dn", "" };
    struct gw_list l = { .failed = failed, .failed_prefix = fp, .nfailed = 1 };

    memset(tool, 't', 80);
    tool[80] = '\0';
    gw_agg_names(p, c, o, 1, n);
    UNIT_EQ_INT(strlen(n[0]), GW_NAME_MAX);
    UNIT_TRUE(!strncmp(n[0], "ttttt", 5));
    /* a call to a connector that did not answer names it by its prefix */
    UNIT_EQ_STR(gw_agg_failed_owner(&l, "dn__t"), "down");
    UNIT_TRUE(gw_agg_failed_owner(&l, "down__t") == NULL);
    UNIT_TRUE(gw_agg_failed_owner(&l, "t") == NULL);
    l.nfailed = 2;                                  /* one without prefix: any name may be its */
    UNIT_EQ_STR(gw_agg_failed_owner(&l, "t"), "bare");
    UNIT_EQ_STR(gw_agg_failed_owner(&l, "dn__t"), "down");
}

int
main(void)
{
    UNIT_RUN(test_short_names_plain);
    UNIT_RUN(test_long_names_shortened_deterministically);
    UNIT_RUN(test_collisions_resolved);
    UNIT_RUN(test_many_long_names_unique);
    UNIT_RUN(test_identical_names_many);
    UNIT_RUN(test_take_repeats_and_cap);
    UNIT_RUN(test_find_by_own_key);
    UNIT_RUN(test_utf8_not_split);
    UNIT_RUN(test_uri_wrap_roundtrip);
    UNIT_RUN(test_cursor);
    UNIT_RUN(test_prefixes);
    UNIT_RUN(test_prefix_long_and_failed_owner);
    return UNIT_DONE();
}
