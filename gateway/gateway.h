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
#include "authz/authz.h"
#include <jansson.h>
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
    char *name;                 /* [a-z0-9_-]{1,32} */
    char *prefix;               /* what its tools and prompts are shown under:
                                 * "<prefix>__<tool>"; "" = the upstream's own
                                 * names; the name unless set (migration 041) */
    bool  prefix_set;           /* set by an owner, not the default */
    char *url;                  /* Streamable HTTP endpoint of the upstream */
    bool  enabled;
    struct gw_header *headers;  /* static credentials, unsealed into the arena */
    int   nheaders;
    bool  unavailable;          /* its sealed headers cannot be opened (another server
                                 * key, a damaged value): never called, named unavailable */
    char *auth_mode;            /* "none" | "static" | "oauth-app" */
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
/* Deletes a connector gw_connector_add just made (by its id), when the
 * rest of its add failed: an add either completes or leaves nothing. */
int gw_connector_add_undo(struct gh_arena *a, const char *agent_slug, const char *id, struct gh_err *e);
int gw_connector_list(struct gh_arena *a, const char *agent_slug,
                      struct gw_connector **out, int *n, struct gh_err *e);
int gw_connector_set_enabled(struct gh_arena *a, const char *agent_slug, const char *name,
                             bool enabled, struct gh_err *e);
/* Parses one "Name: value" line (CLI --header, a line of the page's form). */
int gw_header_parse(struct gh_arena *a, const char *line, struct gw_header *out,
                    struct gh_err *e);
/* Validation alone (0, or -1 with a 400 in e). */
int gw_connector_name_check(const char *name, struct gh_err *e);
/* A tool prefix: at most 32 of the characters MCP allows in tool names
 * (A-Z a-z 0-9 _ - .), or "" for none. */
int gw_connector_prefix_check(const char *prefix, struct gh_err *e);
/* Sets a connector's tool prefix: "" = none, NULL = back to its name.
 * Open sessions of the agent hear list_changed (NOTIFY gw_connectors). */
int gw_connector_set_prefix(struct gh_arena *a, const char *agent_slug, const char *name,
                            const char *prefix, struct gh_err *e);
int gw_connector_url_check(const char *url, struct gh_err *e);
/* The URL as `connector list` and the pages show it: every query value
 * (where an upstream may take an API key) replaced by "***", names kept. */
const char *gw_connector_url_shown(struct gh_arena *a, const char *url);

/* How a connector authenticates upstream (gateway/connector_auth.c):
 * mode "none" | "static" (the sealed headers) | "oauth-app" (each member's
 * own account through the provider's OAuth app).  preset github | slack |
 * linear | google fills the endpoints and scopes left empty.  The client
 * secret is write-only: NULL or empty on a set keeps the stored one; a get
 * never returns it (has_secret says whether one is stored). */
struct gw_connector_auth {
    const char *mode, *preset, *client_id, *client_secret;
    const char *authorize_url, *token_url, *userinfo_url, *scopes;
    bool        has_secret;
    const char *connector_id;   /* filled by a get */
    const char *url;            /* the connector's upstream URL (by a get) */
    /* oauth-discovery: the `resource` sent (the upstream's URL), and what
     * discovery found and registered (filled by a get and by saving) */
    const char *resource;
    struct {
        const char *issuer, *kind, *client_id, *authorize_url, *token_url, *scopes;
    } disc;
};
/* oauth-app or oauth-discovery: each member's own account */
bool gw_auth_per_member(const char *mode);
int gw_connector_auth_get(struct gh_arena *a, const char *agent_slug, const char *name,
                          struct gw_connector_auth *out, struct gh_err *e);
/* Checks (400 with what is wrong), seals the secret, saves, announces. */
int gw_connector_auth_set(struct gh_arena *a, const char *agent_slug, const char *name,
                          struct gw_connector_auth *in, struct gh_err *e);

/* Policies (docs/POLICIES.md): the decision of every tools/call, and the
 * store the CLI and pages manage them through. */
#define GW_POLICY_TEXT_MAX  65536   /* bytes of Cedar text in one policy */
#define GW_POLICY_ALLOWED   "allowed by policy"   /* the audit message of an allowed call */

struct gw_decision {
    bool        allow;
    const char *decision;       /* for the audit row: "allow" | "deny" */
    const char *policy_ids;     /* determining policies (and erroring forbids), comma list */
    const char *message;        /* what the caller reads when denied; GW_POLICY_ALLOWED */
    const char *policy_versions;/* matching policy_ids */
    const char *shadow;         /* what enforce + shadow would decide, "deny <id>@<v>,...";
                                 * NULL when the set has no shadow policy */
    const char *errors;         /* "<id>@<v>: message; ..." of erroring policies, NULL if none */
    const char *request;        /* the Cedar request, rendered (test bench) */
};

/* An item of a list, as the list filter sees it (policy_list.c). */
struct gw_policy_item {
    const char *connector;      /* connector name */
    const char *name;           /* the upstream's tool or prompt name, or resource URI */
    json_t     *annotations;    /* a tool's, NULL otherwise */
    bool        hidden;         /* out: its call is denied whatever the arguments */
};

/* One request as the policy sees it (docs/POLICIES.md has the request). */
struct gw_policy_call {
    const struct authz_credential *who;
    const char *connector;      /* connector name */
    const char *tool;           /* the upstream's tool name */
    json_t     *annotations;    /* the tool's MCP annotations, NULL when none */
    json_t     *arguments;      /* NULL: {} */
    const char *session;        /* key of the session's counters; NULL keeps none */
    const char *client_ip;
    const char *at;             /* a timestamp instead of now (test bench), or NULL */
    bool        render;         /* fill out->request (test bench): not on the call path */
    /* every method (docs/POLICIES.md, "Which requests"): */
    const char *action;         /* Action::"<method>"; NULL: tools/call */
    const char *kind;           /* the resource's type: "Tool" (NULL), "Prompt", "Resource", "Agent"
                                 * (tool then holds the prompt name, URI or agent slug) */
    /* a list: once the list itself is allowed, each item is decided as
     * item_action on item_kind with empty arguments, nothing counted */
    struct gw_policy_item *items;
    int         nitems;
    const char *item_action, *item_kind;
};

/* The enforcement seam: every request the method table gives an action
 * passes here once, before it is forwarded or answered.  -1 only when the decision could not be made (the caller
 * denies); a deny is 0 with out->allow false. */
int gw_policy_decide(struct gh_arena *a, const struct gw_policy_call *call, struct gw_decision *out,
                     struct gh_err *e);
/* The store (policy_store.c).  member: an email on an untrusted agent,
 * NULL on a trusted one.  Text is parsed before it is saved (400 with
 * line:col); every edit is a new version. */
struct gw_policy {
    char *id, *name, *mode, *member, *text, *created_by;
    char *created_at;           /* of this version, "YYYY-MM-DD HH:MM:SS" UTC */
    bool  enabled;
    int   version;
};
int gw_policy_add(struct gh_arena *a, const char *agent, const char *member, const char *name,
                  const char *text, const char *actor, struct gw_policy *out, struct gh_err *e);
int gw_policy_set_text(struct gh_arena *a, const char *agent, const char *member, const char *name,
                       const char *text, const char *actor, struct gw_policy *out, struct gh_err *e);
int gw_policy_set_enabled(struct gh_arena *a, const char *agent, const char *member, const char *name,
                          bool enabled, struct gh_err *e);
int gw_policy_set_mode(struct gh_arena *a, const char *agent, const char *member, const char *name,
                       const char *mode, struct gh_err *e);
int gw_policy_list(struct gh_arena *a, const char *agent, const char *member, struct gw_policy **out,
                   int *n, struct gh_err *e);
int gw_policy_history(struct gh_arena *a, const char *agent, const char *member, const char *name,
                      struct gw_policy **out, int *n, struct gh_err *e);
/* The policy by id, if it is one of the agent's (its current version). */
int gw_policy_get(struct gh_arena *a, const char *agent, const char *id, struct gw_policy *out,
                  struct gh_err *e);

/* What is wrong with a policy text, at line:col of it. */
struct gw_policy_problem {
    int   line, col;
    char *msg;                  /* safe to show to the author */
};
/* The one check before a text is saved (add, set, the editor): at most
 * GW_POLICY_TEXT_MAX bytes, parses as Cedar, and validates against
 * docs/gatehouse.cedarschema (embedded at build), with context.args an open
 * record.  0, or -1 with a 400 whose message lists "line:col: what"; the
 * problems one by one in *out (arena) when out is not NULL. */
int gw_policy_check_text(struct gh_arena *a, const char *text, struct gw_policy_problem **out, int *nout,
                         struct gh_err *e);

/* The test bench ("would this call be allowed?"), CLI and page: decides
 * through gw_policy_decide without counting toward any session.  400 when
 * tool is not CONNECTOR/TOOL, args or annotations are not a JSON object,
 * or at is not a timestamp; 404 when email is no approved member. */
struct gw_policy_test_in {
    const char *agent, *email, *tool;
    const char *args, *annotations;     /* JSON text, NULL or blank: none */
    const char *at;                     /* a timestamp, NULL or blank: now */
};
int gw_policy_test(struct gh_arena *a, const struct gw_policy_test_in *in, struct gw_decision *out,
                   struct gh_err *e);

#endif
