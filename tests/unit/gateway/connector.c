/*
 * tests/unit/gateway/connector.c — connector validation, and the data the
 * endpoint reads (enabled connectors in byte order, headers unsealed, the
 * sealed blob bound to its row) against a real PostgreSQL (the embedded
 * cluster in a temporary data folder).
 */
#include "tests/unit/unit_db.h"
#include "gateway/gw_int.h"
#include <stdlib.h>
#include <unistd.h>


static int
check_name(const char *s)
{
    struct gh_err e = {0};
    return gw_connector_name_check(s, &e);
}

static int
check_url(const char *s)
{
    struct gh_err e = {0};
    return gw_connector_url_check(s, &e);
}

static void
test_names(void)
{
    UNIT_EQ_INT(check_name("github"), 0);
    UNIT_EQ_INT(check_name("a"), 0);
    UNIT_EQ_INT(check_name("0-x_y"), 0);
    UNIT_EQ_INT(check_name("abcdefghijklmnopqrstuvwxyz012345"), 0);     /* 32 */
    UNIT_EQ_INT(check_name("abcdefghijklmnopqrstuvwxyz0123456"), -1);   /* 33 */
    UNIT_EQ_INT(check_name(""), -1);
    UNIT_EQ_INT(check_name(NULL), -1);
    UNIT_EQ_INT(check_name("GitHub"), -1);
    UNIT_EQ_INT(check_name("_x"), -1);
    UNIT_EQ_INT(check_name("-x"), -1);
    UNIT_EQ_INT(check_name("a__b"), -1);
    UNIT_EQ_INT(check_name("a_b_"), 0);
    UNIT_EQ_INT(check_name("a.b"), -1);
    UNIT_EQ_INT(check_name("caf\xc3\xa9"), -1);
}

static void
test_urls(void)
{
    UNIT_EQ_INT(check_url("https://mcp.example.test/mcp"), 0);
    UNIT_EQ_INT(check_url("http://127.0.0.1:8080/mcp?x=1"), 0);
    UNIT_EQ_INT(check_url("http://[::1]:9/"), 0);
    UNIT_EQ_INT(check_url("HTTPS://Example.test"), 0);
    UNIT_EQ_INT(check_url("ftp://example.test/"), -1);
    UNIT_EQ_INT(check_url("javascript:alert(1)"), -1);
    UNIT_EQ_INT(check_url("example.test/mcp"), -1);     /* curl would guess a scheme */
    UNIT_EQ_INT(check_url("http://"), -1);
    UNIT_EQ_INT(check_url("https://u:p@example.test/"), -1);
    UNIT_EQ_INT(check_url("https://token@example.test/"), -1);
    UNIT_EQ_INT(check_url("https://example.test/#frag"), -1);
    UNIT_EQ_INT(check_url("https://example.test/a b"), -1);
    UNIT_EQ_INT(check_url("https://example.test/\r\nX: y"), -1);
    UNIT_EQ_INT(check_url(""), -1);
}

static void
test_url_shown(void)
{
    struct gh_arena *a = gh_arena_new(0);

    UNIT_EQ_STR(gw_connector_url_shown(a, "https://mcp.example.test/mcp"), "https://mcp.example.test/mcp");
    UNIT_EQ_STR(gw_connector_url_shown(a, "https://x.test/mcp?api_key=s3cr3t"), "https://x.test/mcp?api_key=***");
    UNIT_EQ_STR(gw_connector_url_shown(a, "https://x.test/?a=1&b=&flag&c=x%3Dy=z"),
                "https://x.test/?a=***&b=***&flag&c=***");
    UNIT_EQ_STR(gw_connector_url_shown(a, "https://x.test/?"), "https://x.test/?");
    UNIT_EQ_STR(gw_connector_url_shown(a, "https://x.test/?&&=v&"), "https://x.test/?&&=***&");
    UNIT_EQ_STR(gw_connector_url_shown(a, "https://x.test/?=&=&=&="), "https://x.test/?=***&=***&=***&=***");
    gh_arena_free(a);
}

static void
test_header_parse(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gw_header h;
    struct gh_err e = {0};

    UNIT_EQ_INT(gw_header_parse(a, "Authorization:  Bearer abc def \t", &h, &e), 0);
    UNIT_EQ_STR(h.name, "Authorization");
    UNIT_EQ_STR(h.value, "Bearer abc def");
    UNIT_EQ_INT(gw_header_parse(a, "X-Key:v:w", &h, &e), 0);
    UNIT_EQ_STR(h.value, "v:w");
    UNIT_EQ_INT(gw_header_parse(a, "X-Empty:", &h, &e), 0);
    UNIT_EQ_STR(h.value, "");
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "X-Key: a\r\nX-Other: b", &h, &e), -1);
    UNIT_EQ_INT(e.status, 400);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "X-Key: a\n", &h, &e), -1);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "X-Key: a\x01", &h, &e), -1);
    gh_err_clear(&e);
    /* sealed as JSON: bytes that are not UTF-8 would leave the header out */
    UNIT_EQ_INT(gw_header_parse(a, "X-Key: caf\xe9", &h, &e), -1);
    UNIT_EQ_STR(e.msg, "header value must be UTF-8 text");
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "X-Key: caf\xc3\xa9\tx", &h, &e), 0);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "no colon", &h, &e), -1);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, ": value", &h, &e), -1);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "Bad Name: v", &h, &e), -1);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "content-length: 5", &h, &e), -1);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_header_parse(a, "Mcp-Session-Id: x", &h, &e), -1);
    UNIT_EQ_STR(e.msg, "the gateway sets this header itself");
    gh_arena_free(a);
}

static int
add(struct gh_arena *a, const char *name, const char *value)
{
    struct gh_err e = {0};
    struct gw_header h[2] = { { "Authorization", (char *)value }, { "X-Name", (char *)name } };

    return gw_connector_add(a, "default", name, "https://upstream.example.test/mcp", h, value ? 2 : 0, NULL, &e);
}

static void
test_for_agent(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gw_connector *cs;
    struct gw_header *hs;
    struct gh_err e = {0};
    const char *agent;
    int n = 0, nh = 0;
    PGresult *res;

    UNIT_EQ_INT(add(a, "zeta", "Bearer zeta-secret"), 0);
    UNIT_EQ_INT(add(a, "a_b", "Bearer ab-secret"), 0);
    UNIT_EQ_INT(add(a, "a-b", NULL), 0);
    UNIT_EQ_INT(add(a, "a1", "Bearer a1-secret"), 0);
    UNIT_EQ_INT(add(a, "off", "Bearer off-secret"), 0);
    UNIT_EQ_INT(add(a, "zeta", "again"), -1);
    UNIT_EQ_INT(gw_connector_set_enabled(a, "default", "off", false, &e), 0);
    res = db_query(a, &e, "SELECT id FROM agents WHERE slug = 'default'", 0);
    UNIT_TRUE(res != NULL);
    agent = res ? db_val(res, 0, 0) : "";

    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 4);
    if (n == 4) {
        /* byte order, whatever the database's collation */
        UNIT_EQ_STR(cs[0].name, "a-b");
        UNIT_EQ_STR(cs[1].name, "a1");
        UNIT_EQ_STR(cs[2].name, "a_b");
        UNIT_EQ_STR(cs[3].name, "zeta");
        UNIT_EQ_INT(cs[0].nheaders, 0);
        UNIT_EQ_INT(cs[3].nheaders, 2);
        UNIT_EQ_STR(cs[3].headers[0].name, "Authorization");
        UNIT_EQ_STR(cs[3].headers[0].value, "Bearer zeta-secret");
        UNIT_EQ_STR(cs[3].headers[1].value, "zeta");
        UNIT_EQ_STR(cs[3].url, "https://upstream.example.test/mcp");
        UNIT_TRUE(cs[3].enabled);
        UNIT_EQ_STR(cs[3].agent_id, agent);
        UNIT_EQ_INT(gw_connector_auth_headers(a, &cs[2], NULL, &hs, &nh, &e), 0);
        UNIT_EQ_INT(nh, 2);
        UNIT_EQ_STR(hs[0].value, "Bearer ab-secret");
    }

    /* a blob moved to another row does not open there: that connector
     * alone is unavailable, the others keep their headers */
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET headers_sealed = (SELECT headers_sealed FROM connectors"
                              " WHERE name = 'a1') WHERE name = 'zeta'", 0) != NULL);
    gh_err_clear(&e);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 4);
    if (n == 4) {
        UNIT_EQ_STR(cs[3].name, "zeta");
        UNIT_TRUE(cs[3].unavailable);
        UNIT_EQ_INT(cs[3].nheaders, 0);
        UNIT_TRUE(!cs[1].unavailable && !cs[2].unavailable && !cs[0].unavailable);
        UNIT_EQ_STR(cs[1].headers[0].value, "Bearer a1-secret");
        /* its call gets a 503 naming it, and nothing of the credentials */
        UNIT_EQ_INT(gw_connector_auth_headers(a, &cs[3], NULL, &hs, &nh, &e), -1);
        UNIT_EQ_INT(e.status, 503);
        UNIT_TRUE(strstr(e.msg, "'zeta'") != NULL);
        UNIT_TRUE(hs == NULL && nh == 0);
        UNIT_TRUE(strstr(e.msg, "secret") == NULL && strstr(e.detail, "secret") == NULL);
    }
    gh_arena_free(a);
}

static struct gw_connector *
find(struct gw_connector *cs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cs[i].name, name))
            return &cs[i];
    return NULL;
}

/* A blob opens only for its own row, agent and URL: no change made in the
 * database alone sends a credential to another URL or agent's members.
 * A blob sealed by an earlier build (bound to the id only) is sealed again,
 * bound, by gw_connector_reseal_legacy. */
static void
test_bound_to_url_and_agent(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gw_header h1 = { "X-Key", "key-of-bound1" }, h2 = { "X-Key", "key-of-bound2" };
    struct gw_connector *cs, *c;
    struct gh_err e = {0};
    const char *agent = "", *other = "", *id = "", *legacy, *before;
    char *resealed = NULL;
    PGresult *res;
    int n = 0;

    UNIT_EQ_INT(authz_agent_add("bind-a", "Bind A", false, &e), 0);
    UNIT_EQ_INT(authz_agent_add("bind-b", "Bind B", false, &e), 0);
    res = db_query(a, &e, "SELECT (SELECT id FROM agents WHERE slug = 'bind-a'), (SELECT id FROM agents WHERE slug = 'bind-b')", 0);
    UNIT_TRUE(res != NULL);
    if (res) {
        agent = db_val(res, 0, 0);
        other = db_val(res, 0, 1);
    }
    UNIT_EQ_INT(gw_connector_add(a, "bind-a", "bound1", "https://one.example.test/mcp", &h1, 1, NULL, &e), 0);
    UNIT_EQ_INT(gw_connector_add(a, "bind-a", "bound2", "https://two.example.test/mcp", &h2, 1, NULL, &e), 0);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 2);
    c = find(cs, n, "bound1");
    UNIT_TRUE(c && !c->unavailable && c->nheaders == 1 && !strcmp(c->headers[0].value, "key-of-bound1"));

    /* the URLs swapped in the database: neither credential goes anywhere */
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET url = CASE name WHEN 'bound1' THEN 'https://two.example.test/mcp'"
                              " ELSE 'https://one.example.test/mcp' END WHERE agent_id = $1::uuid", 1, agent) != NULL);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 2);
    for (int i = 0; i < n; i++)
        UNIT_TRUE(cs[i].unavailable && cs[i].nheaders == 0);
    /* one URL edited: the same */
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET url = CASE name WHEN 'bound1' THEN 'https://one.example.test/mcp'"
                              " ELSE 'https://evil.example.test/mcp' END WHERE agent_id = $1::uuid", 1, agent) != NULL);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    c = find(cs, n, "bound1");
    UNIT_TRUE(c && !c->unavailable && !strcmp(c->headers[0].value, "key-of-bound1"));
    c = find(cs, n, "bound2");
    UNIT_TRUE(c && c->unavailable && c->nheaders == 0);

    /* moved to another agent: its members do not get the credential */
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET agent_id = $2::uuid WHERE agent_id = $1::uuid AND name = 'bound1'",
                       2, agent, other) != NULL);
    UNIT_EQ_INT(gw_connectors_for_agent(a, other, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 1);
    UNIT_TRUE(n == 1 && cs[0].unavailable && cs[0].nheaders == 0);
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET agent_id = $1::uuid WHERE name = 'bound1'", 1, agent) != NULL);

    /* an earlier build's blob (bound to the id only): unavailable until the
     * start-up pass seals it again, bound; then it opens, and a second
     * pass leaves it alone */
    res = db_query(a, &e, "SELECT id FROM connectors WHERE agent_id = $1::uuid AND name = 'bound1'", 1, agent);
    UNIT_TRUE(res && PQntuples(res) == 1);
    if (res && PQntuples(res) == 1)
        id = db_val(res, 0, 0);
    legacy = gh_seal(a, "[{\"name\":\"X-Key\",\"value\":\"legacy-key\"}]", 39,
                     gh_arena_printf(a, "gw_connector:%s", id));
    UNIT_TRUE(legacy != NULL);
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET headers_sealed = $2 WHERE id = $1::uuid", 2, id, legacy) != NULL);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    c = find(cs, n, "bound1");
    UNIT_TRUE(c && c->unavailable);
    res = db_query(a, &e, "SELECT headers_sealed FROM connectors WHERE name = 'bound2' AND agent_id = $1::uuid", 1, agent);
    before = res ? db_val(res, 0, 0) : NULL;
    UNIT_EQ_INT(gw_connector_reseal_legacy(&e), 0);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    c = find(cs, n, "bound1");
    UNIT_TRUE(c && !c->unavailable && c->nheaders == 1 && !strcmp(c->headers[0].value, "legacy-key"));
    c = find(cs, n, "bound2");
    UNIT_TRUE(c && c->unavailable);     /* opens neither way: left as it is */
    res = db_query(a, &e, "SELECT headers_sealed FROM connectors WHERE name = 'bound2' AND agent_id = $1::uuid", 1, agent);
    UNIT_EQ_STR(res ? db_val(res, 0, 0) : NULL, before);
    res = db_query(a, &e, "SELECT headers_sealed FROM connectors WHERE id = $1::uuid", 1, id);
    if (res) {
        resealed = gh_arena_strdup(a, db_val(res, 0, 0));
        UNIT_TRUE(strcmp(resealed, legacy) != 0);
    }
    UNIT_EQ_INT(gw_connector_reseal_legacy(&e), 0);
    res = db_query(a, &e, "SELECT headers_sealed FROM connectors WHERE id = $1::uuid", 1, id);
    UNIT_EQ_STR(res ? db_val(res, 0, 0) : NULL, resealed);
    gh_arena_free(a);
}

/* The cache behind gw_connectors_for_agent: a change made behind its back
 * (no NOTIFY) is not seen, which shows the answer came from memory; a
 * NOTIFY gw_connectors from anywhere, and a local enable/disable at once,
 * make the next call see the change. */
static void
test_cache(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gw_connector *cs;
    struct gw_header h = { "Authorization", "Bearer cached-secret" };
    struct gh_err e = {0};
    const char *agent = "";
    PGresult *res;
    int n = 0, tries;

    UNIT_EQ_INT(authz_agent_add("cache-test", "Cache test", false, &e), 0);
    UNIT_EQ_INT(gw_connector_add(a, "cache-test", "one", "https://one.example.test/mcp", &h, 1, NULL, &e), 0);
    UNIT_EQ_INT(gw_connector_add(a, "cache-test", "two", "https://two.example.test/mcp", NULL, 0, NULL, &e), 0);
    res = db_query(a, &e, "SELECT id FROM agents WHERE slug = 'cache-test'", 0);
    UNIT_TRUE(res != NULL && PQntuples(res) == 1);
    if (res && PQntuples(res) == 1)
        agent = db_val(res, 0, 0);
    gw_connector_cache_start();
    for (tries = 0; tries < 500 && !db_listener_live(); tries++)
        usleep(10 * 1000);
    UNIT_TRUE(db_listener_live());

    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);     /* fills the cache */
    UNIT_EQ_INT(n, 2);
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET url = 'https://moved.example.test/mcp'"
                              " WHERE name = 'one' AND agent_id = $1::uuid", 1, agent) != NULL);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 2);
    if (n == 2) {
        UNIT_EQ_STR(cs[0].url, "https://one.example.test/mcp");         /* from memory */
        UNIT_EQ_INT(cs[0].nheaders, 1);
        UNIT_EQ_STR(cs[0].headers[0].value, "Bearer cached-secret");
        UNIT_EQ_STR(cs[0].agent_id, agent);
        UNIT_TRUE(cs[0].enabled);
        UNIT_EQ_INT(cs[1].nheaders, 0);
    }
    /* another process's change arrives as a NOTIFY on the listener thread */
    UNIT_EQ_INT(db_notify(GW_CHANNEL_CONNECTORS, agent, &e), 0);
    for (tries = 0; tries < 500; tries++) {
        UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
        if (n == 2 && !strcmp(cs[0].url, "https://moved.example.test/mcp"))
            break;
        usleep(10 * 1000);
    }
    UNIT_TRUE(n == 2 && !strcmp(cs[0].url, "https://moved.example.test/mcp"));
    /* a local change: the very next call sees it, no waiting */
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(gw_connector_set_enabled(a, "cache-test", "one", false, &e), 0);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 1);
    UNIT_EQ_STR(n == 1 ? cs[0].name : NULL, "two");
    UNIT_EQ_INT(gw_connector_add(a, "cache-test", "three", "https://three.example.test/mcp", NULL, 0, NULL, &e), 0);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 2);
    /* an unavailable connector is cached as such (no unseal per call) */
    UNIT_EQ_INT(gw_connector_add(a, "cache-test", "four", "https://four.example.test/mcp", &h, 1, NULL, &e), 0);
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET headers_sealed = 'AAAA' || headers_sealed"
                              " WHERE name = 'four' AND agent_id = $1::uuid", 1, agent) != NULL);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_TRUE(db_query(a, &e, "UPDATE connectors SET url = 'https://moved.example.test/mcp'"
                              " WHERE name = 'four' AND agent_id = $1::uuid", 1, agent) != NULL);
    UNIT_EQ_INT(gw_connectors_for_agent(a, agent, &cs, &n, &e), 0);
    UNIT_EQ_INT(n, 3);
    if (n == 3) {
        UNIT_EQ_STR(cs[0].name, "four");
        UNIT_EQ_STR(cs[0].url, "https://four.example.test/mcp");        /* from memory */
        UNIT_TRUE(cs[0].unavailable);
        UNIT_EQ_INT(cs[0].nheaders, 0);
        UNIT_TRUE(!cs[1].unavailable && !cs[2].unavailable);
    }
    gh_arena_free(a);
}

int
main(void)
{
    UNIT_RUN(test_names);
    UNIT_RUN(test_urls);
    UNIT_RUN(test_url_shown);
    UNIT_RUN(test_header_parse);
    setenv("GATEHOUSE_SERVER_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
    if (unit_db_start("connector") < 0)
        return 1;
    UNIT_RUN(test_for_agent);
    UNIT_RUN(test_bound_to_url_and_agent);
    UNIT_RUN(test_cache);
    return unit_db_stop();
}
