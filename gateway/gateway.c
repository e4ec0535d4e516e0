/*
 * gateway/gateway.c — start-up and shut-down of the gateway's parts.
 */
#include "gateway/mcp_int.h"

int
gw_register_routes(void)
{
    struct gh_err e = {0};

    if (gw_audit_start(&e) < 0) {
        GH_LOG(ERROR, "gw_start", "audit writer: %s", e.detail[0] ? e.detail : e.msg);
        return -1;
    }
    gw_connector_cache_start();
    gw_policy_cache_start();
    if (gw_connector_reseal_legacy(&e) < 0) {
        /* those connectors stay unavailable; the others serve */
        GH_LOG(WARN, "gw_start", "connector headers not sealed again: %s", e.detail[0] ? e.detail : e.msg);
        gh_err_clear(&e);
    }
    web_metrics_register_gauge("gatehouse_mcp_relays_pending",
                               "Upstream requests relayed to a client and not answered yet.", gw_relay_pending);
    gw_pages_register_routes();
    gw_connector_auth_routes();
    gw_connect_routes();
    gw_policy_pages_register_routes();
    return gw_mcp_register_routes();
}

void
gw_shutdown(void)
{
    gw_relay_stop();
    gw_mcp_stop();
    gw_audit_stop();
}
