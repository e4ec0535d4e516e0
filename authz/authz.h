/*
 * authz/authz.h — who is calling: accounts, password hashing, browser
 * sessions, login throttling, first-run setup; later the OAuth 2.1
 * authorization server, tokens, PATs and the credential vault.
 * authz/cedar/ (the policy engine) has its own header, cedar.h.
 *
 * authz/ may call core/, db/ and web/.
 */
#ifndef GH_AUTHZ_H
#define GH_AUTHZ_H

#include "core/core.h"
#include "db/db.h"
#include "web/web.h"

/* ---- users */
struct authz_user {
    char *id;          /* uuid text */
    char *email;
    char *role;        /* "admin" | "user" */
    bool  disabled;
    bool  must_enrol;  /* GATEHOUSE_REQUIRE_MFA applies and no second factor yet */
};

int authz_user_add(const char *email, const char *password, bool admin, struct gh_err *e);
int authz_user_disable(const char *email, struct gh_err *e);
int authz_user_list(FILE *out, struct gh_err *e);
/* Verifies a password (argon2id, or scrypt upgraded to argon2id on success),
 * under the sign-in throttle; device: the hash of the browser's device
 * cookie (authz/throttle.c) or NULL. */
int authz_user_login(struct gh_arena *a, const char *email, const char *password,
                     const char *ip, const char *device, struct authz_user **out, struct gh_err *e);

/* ---- password hashing (PHC strings) */
char *authz_password_hash(struct gh_arena *a, const char *password, struct gh_err *e);
/* 0 match, 1 no match, <0 error; *upgrade set when the hash should be redone */
int authz_password_verify(const char *phc, const char *password, bool *upgrade);

/* ---- browser sessions */
/* The signed-in user of this request, or NULL. */
struct authz_user *authz_session_user(struct web_req *r);
/* For pages: the signed-in user, or a redirect to /login?next=… (returns NULL
 * and the reply is already sent). */
struct authz_user *authz_require_login(struct web_req *r);
struct authz_user *authz_require_admin(struct web_req *r);
int authz_session_create(struct web_req *r, const char *user_id, struct gh_err *e);
/* A new session id for the user; mfa_pending: signed in to nothing until
 * the second factor passes (authz/mfa.c). */
int authz_session_begin(struct web_req *r, const char *user_id, bool mfa_pending, struct gh_err *e);

/* Clears the second factor (TOTP key, recovery codes) of the account with
 * this email and ends its sessions, except those of by_user_id (the
 * admin doing it; NULL from the command line).  404 for no such account. */
int authz_mfa_reset(const char *email, const char *by_user_id, struct gh_err *e);

/* 1 when the user may use the agent (approved member or admin), 0 when
 * not, -1 when the database could not say (e). */
int  authz_member_ok(struct gh_arena *a, const char *user_id, const char *agent_id, struct gh_err *e);
/* First thing in a handler that waits on another server (authz/worker.c):
 * true when the request was handed to a worker thread, which calls fn(r)
 * again (then this returns false), or answered 503; the handler returns. */
bool authz_offload(struct web_req *r, web_handler_fn fn);
/* The SHA-256 hex of this request's session cookie (what binds a flow
 * started in the browser to its session): false when it has none. */
bool authz_session_hash(struct web_req *r, char out[65]);
/* The address is private, loopback, link-local, CGNAT, unspecified or
 * multicast (authz/cimd.c): what a fetch a remote party chose must not reach. */
struct sockaddr;
bool authz_addr_private(const struct sockaddr *sa);

/* The page frame every signed-in page calls (authz/frame.c): the common
 * layout with u's navigation (web_console_page); body is trusted HTML. */
char *authz_page(struct web_req *r, struct authz_user *u, const char *title, const char *body);
/* The frame around one sentence (status 4xx), and a form's error box. */
int         authz_page_sentence(struct web_req *r, struct authz_user *u, int status, const char *title,
                                const char *text);
const char *authz_page_error_box(struct gh_arena *a, const char *error);

/* ---- first-run setup: prints the one-time admin link when no admin exists */
int authz_setup_announce(struct gh_err *e);

/* ---- agents (OAuth issue): one MCP endpoint each, /agents/{slug}/mcp;
 * the default agent (slug "default") is also served at /mcp. */
struct authz_agent {
    char *id;          /* uuid text */
    char *slug;
    char *name;
    bool  untrusted;
    bool  disabled;    /* the kill switch: every MCP request is refused */
    char *timezone;    /* IANA name, "UTC" by default */
};
/* NULL with e->status 404 when there is no such agent. */
struct authz_agent *authz_agent_by_slug(struct gh_arena *a, const char *slug, struct gh_err *e);
/* 0 when actor (NULL: the operator at the CLI) may administer the agent:
 * an admin or one of its approved owners; else -1 with 403 in e (the
 * gateway's owner pages ask it too). */
int  authz_owner_check(struct gh_arena *a, const struct authz_user *actor, const struct authz_agent *ag,
                       struct gh_err *e);

/* ---- the caller of an MCP request (used by gateway/) */
struct authz_credential {
    const char *kind;        /* "oauth" | "pat" */
    char *token_id;          /* access-token row id or PAT id (for audit) */
    char *grant_id;          /* OAuth grant id; NULL for a PAT */
    char *user_id;
    char *user_email;
    char *client_id;         /* OAuth client_id; NULL for a PAT */
    char *client_name;       /* client name, or the PAT's name */
    char *scope;
    struct authz_agent agent;
    int64_t expires_at;      /* unix seconds; 0 = never (PAT without expiry) */
    char *bearer;            /* the token this request presented (opens the member's
                              * vault, docs/VAULT.md); never cached, copied or logged */
};
/* Per-IP budgets (authz/ratelimit.c): a token bucket of per_min requests a
 * minute for each (bucket, client IP).  0 when this request is within it,
 * else -1 with a 429 slow_down and Retry-After in e. */
int authz_rate_check(struct web_req *r, const char *bucket, long per_min, struct gh_err *e);

/* Why a request to an MCP endpoint was not authenticated, for the caller's
 * audit row and reply: e (401 with WWW-Authenticate already added to the
 * request's headers, 403 insufficient_scope, 404 for an unknown agent, 5xx),
 * the agent when it exists, the credential when the token is live but for
 * another agent or without the mcp scope, and the kind ("pat" | "oauth") an
 * unknown token claims by its prefix. */
struct authz_mcp_refusal {
    struct gh_err            e;
    struct authz_agent      *agent;
    struct authz_credential *who;
    const char              *claimed_kind;
};
/* Authenticates the Bearer token of a request to agent `slug`'s MCP
 * endpoint.  On failure NULL, *no says why and nothing has been sent: the
 * caller replies (web_reply_err(r, &no->e)).  Allocates from the request
 * arena. */
struct authz_credential *authz_mcp_authenticate(struct web_req *r, const char *slug,
                                                struct authz_mcp_refusal *no);

/* Flushes this process's credential and agent caches (authz/credcache.c).
 * Call right after a statement that revokes or disables anything a
 * credential depends on has committed; other processes learn of it from
 * the database trigger's NOTIFY. */
void authz_credentials_changed(const char *why);

/* fn(ctx) runs after every change that may have revoked a credential: one
 * made here (authz_credentials_changed), one another process announced,
 * and after the database listener reconnected (changes may have been
 * missed).  It runs on the changing thread or the listener thread: it must
 * be quick and take none of the caller's locks.  Call at start-up. */
int authz_credentials_watch(void (*fn)(void *ctx), void *ctx);

/* For what outlives the request that authenticated it (a listen stream):
 * of n credentials (kind[i] "oauth" | "pat", token id id[i]), which no
 * longer stand — revoked, their grant revoked, their user disabled or
 * deleted or no longer an approved member, their agent gone or disabled.  Expiry is not looked at.  fallen[i] is set
 * for each; -1 when the database could not say (e). */
int authz_credentials_fallen(struct gh_arena *a, const char *const *kind, const char *const *id, int n,
                             bool *fallen, struct gh_err *e);

/* Registers /login, /logout, /setup, /profile pages, the OAuth 2.1
 * authorization server and the token/connection pages. */
int authz_register_routes(void);

/* ---- agents and personal access tokens (CLI and pages).  actor: who
 * acts, NULL for the operator at the CLI (who acts as an admin). */
int authz_agent_add(const char *slug, const char *name, bool untrusted, struct gh_err *e);
/* timezone NULL keeps it, else an IANA name PostgreSQL knows. */
int authz_agent_create(const struct authz_user *actor, const char *slug, const char *name, bool untrusted,
                       const char *timezone, struct gh_err *e);
int authz_agent_list(FILE *out, struct gh_err *e);
/* name / timezone NULL: unchanged. */
int authz_agent_set(const struct authz_user *actor, const char *slug, const char *name, const char *timezone,
                    struct gh_err *e);
/* The kill switch: a disabled agent's MCP endpoint refuses every request
 * (the gateway says so and audits it) and keeps every credential. */
int authz_agent_set_disabled(const struct authz_user *actor, const char *slug, bool disabled, struct gh_err *e);
/* Deletes the agent and with it every credential, member and connector. */
int authz_agent_delete(const struct authz_user *actor, const char *slug, struct gh_err *e);
/* For the navigation: whether the user owns any agent (admins own all). */
bool authz_user_owns_any_agent(const char *user_id);

/* ---- members (authz/members.c): invited -> pending -> approved | rejected,
 * and removed; role owner or member.  Owner actions need an admin or an
 * approved owner of the agent as actor (403). */
/* Invites email; *link (malloc'd, caller frees) is the single-use link,
 * the only copy of its secret; it is also mailed when mail is set up
 * (*mailed says whether that worked). */
int authz_member_invite(const struct authz_user *actor, const char *slug, const char *email,
                        bool approve_on_accept, char **link, bool *mailed, struct gh_err *e);
/* action: "approve" | "reject" | "remove" | "revoke" (an invite) | "owner"
 * | "unowner" | "leave" (the actor's own membership; email ignored).
 * Rejecting and removing revoke every PAT and OAuth grant the member holds
 * for the agent, on every process at their next call. */
int authz_member_act(const struct authz_user *actor, const char *slug, const char *email, const char *action,
                     struct gh_err *e);
int authz_member_list(FILE *out, const char *slug, struct gh_err *e);
/* Creates a PAT for the user with this email; *token (malloc'd, caller
 * wipes and frees) is the only copy of the secret. expires_days 0 = never. */
int authz_pat_create(const char *email, const char *agent_slug, const char *name,
                     long expires_days, char **token, struct gh_err *e);
/* true when a string has the PAT shape and its checksum is right (offline). */
bool authz_pat_checksum_ok(const char *token);
/* Designates a confidential registered client as a resource server (on) or
 * not: a resource server may introspect every access token and PAT of the
 * server, any other client only its own tokens.  404 for an unknown
 * client, 400 for a public one. */
int authz_client_set_resource_server(const char *client_id, bool on, struct gh_err *e);

/* Writes coalesced last-used times to the database (also done every few
 * seconds by a background thread); call once at shutdown before db_shutdown. */
/* Mail through GATEHOUSE_SMTP_URL (authz/mail.c): plain UTF-8 text to one
 * address.  Blocks up to 10 s: call it where a short wait is acceptable.
 * The body may hold a secret; it is never logged. */
bool authz_mail_enabled(void);
int  authz_mail_send(const char *to, const char *subject, const char *body, struct gh_err *e);

/* ---- a JSON fetch from an OAuth/OpenID provider (authz/fetch.c): GET url,
 * or POST the urlencoded form; Bearer or HTTP Basic when set.  The JSON
 * object answered, whatever the status (*status says it), or NULL and e
 * when the provider is unreachable, too slow, too large or not JSON; e's
 * client message names the provider as `who` ("identity provider"). */
struct authz_fetch {
    const char *url, *form, *bearer, *user, *pass, *who;
    long        timeout_ms;
    size_t      max_bytes;
};
json_t *authz_fetch_json(struct gh_arena *a, const struct authz_fetch *f, long *status, struct gh_err *e);

/* ---- the sealed vault (authz/vault.c, docs/VAULT.md): members' upstream
 * tokens sealed to a per-membership X25519 key whose private half only the
 * member's own credentials unwrap.  The server key opens none of it. */
/* Seals pt to the membership's public key (no member secret needed);
 * NULL with e 409 vault_locked when the membership has no key yet. */
char *authz_vault_seal(struct gh_arena *a, const char *agent_id, const char *user_id, const char *aad,
                       const void *pt, size_t n, struct gh_err *e);
/* The same on dc (inside the caller's transaction): for a caller that holds
 * a lock other requests wait on while holding pool connections. */
char *authz_vault_seal_on(struct db_conn *dc, struct gh_arena *a, const char *agent_id, const char *user_id,
                          const char *aad, const void *pt, size_t n, struct gh_err *e);
/* The private key the calling credential (bearer: the token it presented)
 * unwraps: 1 with priv set (wipe it after use), 0 when it unwraps none, -1 (e). */
int   authz_vault_unlock(struct gh_arena *a, const struct authz_credential *who, const char *bearer,
                         unsigned char priv[32], struct gh_err *e);
/* Opens what authz_vault_seal sealed with the same aad: 0, or -1. */
int   authz_vault_open_with(struct gh_arena *a, const unsigned char priv[32], const char *aad,
                            const char *sealed, unsigned char **pt, size_t *n);
/* "Reset lost key": deletes the membership's key pair, every wrap of it and
 * every sealed connection; the next credential made gets a new pair. */
int   authz_vault_reset(const char *agent_id, const char *user_id, struct gh_err *e);

void authz_shutdown(void);

#endif
