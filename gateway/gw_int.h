/*
 * gateway/gw_int.h — what the parts of gateway/ share.
 *
 *   mcp.c, session.c, upstream.c, aggregate.c, policy.c — the endpoint, sessions,
 *       the upstream client, tool aggregation, the enforcement seam
 *   connector.c, audit.c, pages.c, cli.c — connectors, the audit log, the
 *       admin and member pages, the `connector` subcommand
 */
#ifndef GH_GW_INT_H
#define GH_GW_INT_H

#include "gateway/gateway.h"
#include "authz/authz.h"
#include "db/db.h"
#include "web/web.h"

/* ---------------------------------------------------------------- endpoint */
/* /mcp and /agents/STAR/mcp; the upstream I/O thread.  (mcp.c) */
int  gw_mcp_register_routes(void);
void gw_mcp_stop(void);

/* ---------------------------------------------------------------- connectors */
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
};

/* The enabled connectors of an agent, ordered by name (arena-allocated). */
int gw_connectors_for_agent(struct gh_arena *a, const char *agent_id,
                            struct gw_connector **out, int *n, struct gh_err *e);

/* The one seam for upstream credentials: the headers to send upstream for
 * this member.  Today the connector's static headers; per-member upstream
 * OAuth (a later issue) plugs in here. */
int gw_connector_auth_headers(struct gh_arena *a, const struct gw_connector *c,
                              const struct authz_credential *who,
                              struct gw_header **out, int *n, struct gh_err *e);

/* NOTIFY channel raised when an agent's connectors change; payload: agent id. */
#define GW_CHANNEL_CONNECTORS "gw_connectors"

/* ---------------------------------------------------------------- audit */
struct gw_audit {
    const struct authz_credential *who;  /* the caller (kind, user, client, token id) */
    const char *agent_id;
    const char *session_id;     /* downstream MCP session, NULL when stateless */
    const char *method;         /* JSON-RPC method */
    const char *tool;           /* aggregated tool name, NULL unless tools/call */
    const char *connector;      /* connector name, when one was involved */
    const char *decision;       /* "allow" | "deny" */
    const char *policy_ids;     /* comma list, NULL when none */
    const char *message;        /* reason shown to the client, or NULL */
    int         upstream_status;/* HTTP status from the upstream, 0 when none */
    int64_t     duration_us;
};

/* Queues the row for the next group commit and returns once it is
 * committed: no response may leave before its audit row is durable. */
int  gw_audit_write(const struct gw_audit *row, struct gh_err *e);
int  gw_audit_start(struct gh_err *e);
void gw_audit_stop(void);

/* Pages: /admin/connectors, /admin/audit (+ CSV), /profile/activity. */
int  gw_pages_register_routes(void);

/* ---------------------------------------------------------------- policy */
struct gw_decision {
    bool        allow;
    const char *decision;       /* for the audit row: "allow" | "deny" */
    const char *policy_ids;
    const char *message;        /* "allow (no policy engine)" until policies land */
};

/* The enforcement seam: every tools/call passes here once, before it is
 * forwarded. */
int gw_policy_decide(struct gh_arena *a, const struct authz_credential *who,
                     const struct gw_connector *c, const char *tool, json_t *arguments,
                     struct gw_decision *out, struct gh_err *e);

#endif
