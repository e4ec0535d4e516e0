/*
 * gateway/gateway.c — start-up and shut-down of the gateway's parts.
 */
#include "gateway/gw_int.h"

int
gw_register_routes(void)
{
    struct gh_err e = {0};

    if (gw_audit_start(&e) < 0) {
        GH_LOG(ERROR, "gw_start", "audit writer: %s", e.detail[0] ? e.detail : e.msg);
        return -1;
    }
    gw_connector_cache_start();
    gw_pages_register_routes();
#ifdef GW_HAVE_MCP
    return gw_mcp_register_routes();
#else
    return authz_register_mcp_placeholder();
#endif
}

void
gw_shutdown(void)
{
#ifdef GW_HAVE_MCP
    gw_mcp_stop();
#endif
    gw_audit_stop();
}
