/*
 * tests/unit/gateway/methods.c — the MCP method table (gateway/methods.c):
 * which methods each protocol revision has (2026-07-28 removed ping,
 * logging/setLevel and resources/(un)subscribe, and added server/discover
 * and subscriptions/listen), which may be batched, which param the
 * 2026-07-28 Mcp-Name header mirrors, what each may wait for, and which
 * pass the enforcement seam.
 */
#include "tests/unit/unit.h"
#include "gateway/endpoint_int.h"

static const char *const session_revs[] = { "2025-03-26", "2025-06-18", "2025-11-25" };

static void
test_revisions(void)
{
    static const char *const everywhere[] = {
        "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
        "resources/templates/list", "resources/read", "completion/complete" };
    static const char *const removed[] = { "ping", "logging/setLevel", "resources/subscribe",
                                           "resources/unsubscribe", "initialize" };
    static const char *const added[] = { "server/discover", "subscriptions/listen" };

    for (size_t r = 0; r < GH_ARRAY_LEN(session_revs); r++) {
        for (size_t i = 0; i < GH_ARRAY_LEN(everywhere); i++)
            UNIT_TRUE(gw_method_find(everywhere[i], session_revs[r]) != NULL);
        for (size_t i = 0; i < GH_ARRAY_LEN(removed); i++)
            UNIT_TRUE(gw_method_find(removed[i], session_revs[r]) != NULL);
        for (size_t i = 0; i < GH_ARRAY_LEN(added); i++)
            UNIT_TRUE(gw_method_find(added[i], session_revs[r]) == NULL);
    }
    for (size_t i = 0; i < GH_ARRAY_LEN(everywhere); i++)
        UNIT_TRUE(gw_method_find(everywhere[i], GW_PROTO_2026_07_28) != NULL);
    for (size_t i = 0; i < GH_ARRAY_LEN(removed); i++)
        UNIT_TRUE(gw_method_find(removed[i], GW_PROTO_2026_07_28) == NULL);
    for (size_t i = 0; i < GH_ARRAY_LEN(added); i++)
        UNIT_TRUE(gw_method_find(added[i], GW_PROTO_2026_07_28) != NULL);
    /* unknown methods and revisions */
    UNIT_TRUE(gw_method_find("tools/destroy", GW_PROTO_2025_11_25) == NULL);
    UNIT_TRUE(gw_method_find("tools/list", "2024-11-05") == NULL);
    UNIT_TRUE(gw_method_find("tools/list", NULL) == NULL);
    UNIT_TRUE(gw_method_find(NULL, GW_PROTO_2025_11_25) == NULL);
    UNIT_TRUE(gw_method_find("Tools/List", GW_PROTO_2025_11_25) == NULL);   /* names are exact */
}

static void
test_rows(void)
{
    const struct gw_method *mt = gw_method_find("tools/call", GW_PROTO_2025_11_25);

    UNIT_TRUE(mt && !strcmp(mt->name, "tools/call") && mt->run != NULL);
    /* every method but the handshake's is decided, its action its name,
     * its target resolved first (docs/POLICIES.md, "Which requests") */
    UNIT_EQ_STR(mt ? mt->action : NULL, "tools/call");
    UNIT_TRUE(mt && mt->kind == GW_TOOLS && mt->resolve != NULL);
    mt = gw_method_find("resources/read", GW_PROTO_2025_11_25);
    UNIT_TRUE(mt && mt->kind == GW_RESOURCES && mt->also == GW_TEMPLATES && mt->resolve != NULL);
    UNIT_EQ_STR(mt ? mt->action : NULL, "resources/read");
    {
        static const char *const decided[] = {
            "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
            "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
            "completion/complete", "logging/setLevel" };
        static const char *const undecided[] = { "initialize", "ping" };
        for (size_t i = 0; i < GH_ARRAY_LEN(decided); i++) {
            const struct gw_method *d = gw_method_find(decided[i], GW_PROTO_2025_11_25);
            UNIT_EQ_STR(d ? d->action : NULL, decided[i]);
        }
        for (size_t i = 0; i < GH_ARRAY_LEN(undecided); i++)
            UNIT_TRUE(gw_method_find(undecided[i], GW_PROTO_2025_11_25)->action == NULL);
        UNIT_TRUE(gw_method_find("server/discover", GW_PROTO_2026_07_28)->action == NULL);
        UNIT_EQ_STR(gw_method_find("subscriptions/listen", GW_PROTO_2026_07_28)->action, "subscriptions/listen");
    }
    mt = gw_method_find("completion/complete", GW_PROTO_2025_11_25);
    UNIT_TRUE(mt && mt->kind == GW_PROMPTS && mt->also == GW_TEMPLATES);
    /* what each may wait for: the offload pool takes those */
    UNIT_EQ_INT(gw_method_find("logging/setLevel", GW_PROTO_2025_11_25)->wait, GW_WAIT_UPSTREAMS);
    UNIT_EQ_INT(gw_method_find("subscriptions/listen", GW_PROTO_2026_07_28)->wait, GW_WAIT_HANDSHAKES);
    UNIT_EQ_INT(gw_method_find("ping", GW_PROTO_2025_11_25)->wait, GW_WAIT_NONE);
    UNIT_EQ_INT(gw_method_find("server/discover", GW_PROTO_2026_07_28)->wait, GW_WAIT_NONE);
    UNIT_EQ_INT(gw_method_find("prompts/get", GW_PROTO_2025_11_25)->wait, GW_WAIT_LISTS);
}

static void
test_batch_and_mcp_name(void)
{
    static const char *const all[] = {
        "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get",
        "resources/list", "resources/templates/list", "resources/read", "resources/subscribe",
        "resources/unsubscribe", "completion/complete", "logging/setLevel" };
    int batched = 0;

    /* inside a 2025-03-26 batch: ping and tools/list only */
    for (size_t i = 0; i < GH_ARRAY_LEN(all); i++) {
        const struct gw_method *mt = gw_method_find(all[i], GW_PROTO_2025_03_26);
        UNIT_TRUE(mt != NULL);
        if (mt && mt->in_batch) {
            batched++;
            UNIT_TRUE(!strcmp(all[i], "ping") || !strcmp(all[i], "tools/list"));
        }
    }
    UNIT_EQ_INT(batched, 2);
    /* the Mcp-Name header mirrors a tool's or prompt's name, a resource's uri */
    UNIT_EQ_STR(gw_method_find("tools/call", GW_PROTO_2026_07_28)->mcp_name, "name");
    UNIT_EQ_STR(gw_method_find("prompts/get", GW_PROTO_2026_07_28)->mcp_name, "name");
    UNIT_EQ_STR(gw_method_find("resources/read", GW_PROTO_2026_07_28)->mcp_name, "uri");
    UNIT_TRUE(gw_method_find("tools/list", GW_PROTO_2026_07_28)->mcp_name == NULL);
    UNIT_TRUE(gw_method_find("completion/complete", GW_PROTO_2026_07_28)->mcp_name == NULL);
}

int
main(void)
{
    UNIT_RUN(test_revisions);
    UNIT_RUN(test_rows);
    UNIT_RUN(test_batch_and_mcp_name);
    return UNIT_DONE();
}
