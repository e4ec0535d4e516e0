/*
 * gateway/gateway.h — the MCP gateway: one Streamable HTTP endpoint per
 * agent (/agents/{slug}/mcp, and /mcp for the default agent) in front of
 * the upstream MCP servers registered as connectors.
 *
 * gateway/ may call core/, db/, web/ and authz/ (authentication, agents).
 */
#ifndef GH_GATEWAY_H
#define GH_GATEWAY_H

#include "core/core.h"

/* Registers the MCP endpoints and the gateway's pages, and starts its
 * threads (upstream I/O, audit writer).  Called once at start-up. */
int  gw_register_routes(void);
/* After the web server drained: stops the threads, flushes the audit log. */
void gw_shutdown(void);

/* `gatehouse connector ...` */
int  gw_cli_connector(int argc, char **argv);
/* `gatehouse policy add|set|list|enable|disable|mode|history|test` */
int  gw_cli_policy(int argc, char **argv);

#endif
