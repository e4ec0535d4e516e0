/*
 * gateway/gw_int.h — what the parts of gateway/ share.
 *
 *   mcp.c (and the endpoint's files), session.c, upsession.c, upstream.c,
 *       aggregate.c, policy.c — the endpoint, sessions, the upstream
 *       client, tool aggregation, the enforcement seam
 *   connector.c, audit.c, pages.c — connectors, the audit log, the admin
 *       and member pages
 *   policy_store.c, policy_pages.c — policies, their versions, the owners'
 *       pages and the test bench
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

/* ---------------------------------------------------------------- connectors
 * (the types and management calls are public: gateway.h) */
/* Turns on the cache behind gw_connectors_for_agent (at server start;
 * GATEHOUSE_AUTH_CACHE_ENTRIES 0 keeps it off). */
void gw_connector_cache_start(void);
/* The enabled connectors of an agent, ordered by name (arena-allocated),
 * from the in-process cache when it holds them.  One whose headers cannot
 * be unsealed is returned with `unavailable` set (and a WARN naming it):
 * it fails alone, the agent's other connectors still serve. */
int gw_connectors_for_agent(struct gh_arena *a, const char *agent_id,
                            struct gw_connector **out, int *n, struct gh_err *e);

/* The one seam for upstream credentials: the headers to send upstream for
 * this member.  Today the connector's static headers; per-member upstream
 * OAuth (a later issue) plugs in here.  An unavailable connector: -1 with
 * a 503 whose message names it. */
int gw_connector_auth_headers(struct gh_arena *a, const struct gw_connector *c,
                              const struct authz_credential *who,
                              struct gw_header **out, int *n, struct gh_err *e);

/* After a committed change of an agent's connectors: flushes this
 * process's cache and raises GW_CHANNEL_CONNECTORS for the others. */
void gw_connector_changed(const char *agent_id);
/* connector_auth.c: the OAuth app of an oauth-app connector with its
 * client secret unsealed into the arena (*secret; wipe after use). */
int gw_connector_oauth_app(struct gh_arena *a, const char *connector_id, struct gw_connector_auth *out,
                           char **secret, struct gh_err *e);
int gw_connector_auth_routes(void);
/* discovery.c — an oauth-discovery connector's upstream: its protected
 * resource metadata (resource = upstream), its authorization server's
 * metadata, and Gatehouse registered there; fills out->resource, scopes,
 * disc and client_secret (arena; wipe after use).  -1 with a 400 saying
 * what is wrong. */
int   gw_discovery_run(struct gh_arena *a, const char *upstream, struct gw_connector_auth *out, struct gh_err *e);
char *gw_discovery_cimd_url(struct gh_arena *a);
int   gw_discovery_routes(void);
/* connect.c — members' own accounts at oauth-app connectors: the pages,
 * the provider's token endpoint and user info (JSON; *status the HTTP
 * status; NULL with e when unreachable or not JSON), the sealed store. */
int     gw_connect_routes(void);
json_t *gw_oauth_fetch(struct gh_arena *a, const char *url, const char *form, const char *bearer, long *status,
                       struct gh_err *e);
/* associated data of a connection's sealed tokens */
char   *gw_connection_aad(struct gh_arena *a, const char *agent_id, const char *user_id, const char *connector_id);
/* seals a token response ({access_token, refresh_token?, expires_in?}) to
 * the member's vault key and stores it; account NULL keeps the known one */
int     gw_connection_store(struct gh_arena *a, const char *agent_id, const char *user_id, const char *connector_id,
                            json_t *tok, const char *account, struct gh_err *e);
/* A member's connections changed: their sessions learn it on every
 * process (NOTIFY gw_connections, payload "<agent id>:<user id>"). */
void    gw_connections_changed(const char *agent_id, const char *user_id);
#define GW_CHANNEL_CONNECTIONS "gw_connections"
int     gw_connection_store_on(struct db_conn *dc, struct gh_arena *a, const char *agent_id, const char *user_id,
                               const char *connector_id, json_t *tok, const char *account, struct gh_err *e);
/* connection.c — the upstream credential of an oauth-app connector: the
 * calling member's access token, opened with the credential the request
 * presented, refreshed in flight (once per connection, under a lock) when
 * due or when force_refresh.  -1 with e, e.code "connection_needed" and a
 * message naming the connector and its page when the member must connect. */
int     gw_connection_headers(struct gh_arena *a, const struct gw_connector *c, const struct authz_credential *who,
                              bool force_refresh, struct gw_header **out, int *n, struct gh_err *e);
/* Why connector `name` of who's agent cannot be called for who when the
 * reason is theirs to mend (not connected, needs reconnect, a token that
 * cannot open their key): the message naming the page; else NULL. */
const char *gw_connection_needed(struct gh_arena *a, const struct authz_credential *who, const char *name);
/* listens for GW_CHANNEL_CONNECTIONS: the member's sessions get list_changed */
int     gw_connection_watch(void);
/* NOTIFY channel raised when an agent's connectors change; payload: agent id. */
#define GW_CHANNEL_CONNECTORS "gw_connectors"

/* At server start: seals again, bound to the row's agent and URL, the
 * header blobs that earlier builds sealed bound to the connector id only. */
int gw_connector_reseal_legacy(struct gh_err *e);

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
    const char *policy_versions;/* comma list matching policy_ids, NULL when none */
    const char *request_id;     /* NULL: the calling thread's request id */
    bool        acted;          /* the upstream already has the request: a row
                                 * that cannot be committed is held and retried
                                 * (the client still gets the 503) */
    /* write-ahead (a forwarded call): the row is written with call_id and
     * no outcome before the call goes upstream; once it is over, the same
     * row with outcome set completes it (upstream_status, duration_us,
     * upstream_error), and is held like an acted row if that fails */
    const char *call_id;        /* gw_audit_call_id(); NULL for a row written whole */
    bool        outcome;
    const char *upstream_error; /* with outcome: what went wrong, NULL when none */
    const char *policy_shadow;  /* what shadow policies would decide, NULL when none */
};

#define GW_AUDIT_CALL_ID_LEN 32
/* A fresh call id (hex, NUL-terminated) for a write-ahead row; -1 when
 * no random bytes could be had. */
int  gw_audit_call_id(char out[GW_AUDIT_CALL_ID_LEN + 1]);

/* Queues the row for the next group commit and returns once it is
 * committed: no response may leave before its audit row is durable (nor
 * a call go upstream before its write-ahead row is). */
int  gw_audit_write(const struct gw_audit *row, struct gh_err *e);
/* n rows queued together (usually one group commit; rows queued before them
 * may push the last ones into the next) and one wait for all of them: -1
 * with a 503 if any is not committed. */
int  gw_audit_write_many(const struct gw_audit *rows, int n, struct gh_err *e);
/* The same without waiting (for a response that is itself asynchronous):
 * done(ctx, 0) runs on the writer thread once the row is committed, or
 * done(ctx, -1) if it could not be; row and what it points to stay valid
 * until then.  -1 (done not called) when the writer is not running. */
typedef void (*gw_audit_done_fn)(void *ctx, int ok);
int  gw_audit_submit(const struct gw_audit *row, const char *request_id,
                     gw_audit_done_fn done, void *ctx);
int  gw_audit_start(struct gh_err *e);
void gw_audit_stop(void);
/* Counters since start (also /metrics gatehouse_audit_batches_total and
 * gatehouse_audit_rows_total): rows committed, and the transactions (group
 * commits) that carried them. */
long gw_audit_batches_total(void);
long gw_audit_rows_total(void);

/* Pages: /admin/connectors, /admin/audit (+ CSV), /profile/activity. */
int  gw_pages_register_routes(void);
/* An agent's policies for its owners: /agents/STAR/policies... (policy_pages.c) */
int  gw_policy_pages_register_routes(void);

/* ---------------------------------------------------------------- policy */
#define GW_CHANNEL_POLICIES "gw_policies"
/* Listens on GW_CHANNEL_POLICIES: compiled sets are cached per agent
 * (per member on an untrusted agent) until a change is announced. */
void gw_policy_cache_start(void);
/* What a decision needs besides the call (policy_facts.c): the caller's
 * role and admin flag, the time in the agent's zone, the session's
 * counters, from memory; the agent's policy generation and denial mark
 * from one read begun after the call arrived, shared by concurrent calls,
 * so an edit or a denial committed before the call began applies to it. */
struct gw_facts {
    const char *role, *datetime, *date;
    bool        admin;
    long long   hour, minute, weekday, calls, denials;
    long long   generation, mark;   /* the agent's policy generation and denial mark */
};
void gw_policy_facts_start(void);
int  gw_policy_facts(struct gh_arena *a, const struct gw_policy_call *call, struct gw_facts *f, struct gh_err *e);
/* A denied call: the session's denials + 1 and the agent's denial mark + 1,
 * stored (calls: the session's count here, kept with it). */
void gw_policy_count_denial(struct gh_arena *a, const char *agent_id, const char *session, long long calls);

#endif
