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
#include <stdbool.h>

/* Registers the MCP endpoints and the gateway's pages, and starts its
 * threads (upstream I/O, audit writer).  Called once at start-up. */
int  gw_register_routes(void);
/* After the web server drained: stops the threads, flushes the audit log. */
void gw_shutdown(void);

/* Connectors: the upstream MCP servers of an agent. */
struct gw_header {
    char *name;
    char *value;                /* a credential: never logged */
};

struct gw_connector {
    char *id;                   /* uuid text */
    char *agent_id;
    char *name;                 /* [a-z0-9_-]{1,32}; the tool-name prefix */
    char *url;                  /* Streamable HTTP endpoint of the upstream */
    bool  enabled;
    struct gw_header *headers;  /* static credentials, unsealed into the arena */
    int   nheaders;
    bool  unavailable;          /* its sealed headers cannot be opened (another server
                                 * key, a damaged value): never called, named unavailable */
    /* filled by gw_connector_list (headers stay NULL there) */
    char *agent_slug;
    char **header_names;
    int   nheader_names;
    char *created_at;           /* "YYYY-MM-DD HH:MM" UTC */
};

/* Management (CLI and pages).  Each validates its input (name, URL, header
 * names and values) and answers 400/404/409 with a client-safe message;
 * each change raises GW_CHANNEL_CONNECTORS after it committed.  Header
 * values are sealed and never returned, logged or shown again. */
#define GW_MAX_HEADERS 16
int gw_connector_add(struct gh_arena *a, const char *agent_slug, const char *name,
                     const char *url, const struct gw_header *headers, int nheaders,
                     char **id_out, struct gh_err *e);
/* Every connector (agent_slug NULL) or one agent's, ordered by agent slug
 * and name; headers are not unsealed, header_names are filled. */
int gw_connector_list(struct gh_arena *a, const char *agent_slug,
                      struct gw_connector **out, int *n, struct gh_err *e);
int gw_connector_set_enabled(struct gh_arena *a, const char *agent_slug, const char *name,
                             bool enabled, struct gh_err *e);
/* Parses one "Name: value" line (CLI --header, a line of the page's form). */
int gw_header_parse(struct gh_arena *a, const char *line, struct gw_header *out,
                    struct gh_err *e);
/* Validation alone (0, or -1 with a 400 in e). */
int gw_connector_name_check(const char *name, struct gh_err *e);
int gw_connector_url_check(const char *url, struct gh_err *e);
/* The URL as `connector list` and the pages show it: every query value
 * (where an upstream may take an API key) replaced by "***", names kept. */
const char *gw_connector_url_shown(struct gh_arena *a, const char *url);

#endif
