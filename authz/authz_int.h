/* authz/authz_int.h — private to authz/. */
#ifndef GH_AUTHZ_INT_H
#define GH_AUTHZ_INT_H

#include "authz/authz.h"

#define AUTHZ_SESSION_COOKIE "gh_session"

/* throttle.c */
/* device: authz_throttle_device()'s hash of the browser's device cookie,
 * or NULL; whether it belongs to the account is checked here */
int  authz_throttle_check(struct gh_arena *a, const char *email, const char *ip, const char *device,
                          struct gh_err *e);
void authz_throttle_fail(struct gh_arena *a, const char *email, const char *ip, const char *device);
void authz_throttle_reset(struct gh_arena *a, const char *email, const char *device);
const char *authz_throttle_device(struct web_req *r);
/* after a sign-in: a device cookie for this browser unless it has one of the account's */
void authz_throttle_device_issue(struct web_req *r, const char *user_id, const char *device);
/* session.c */
int  authz_session_destroy(struct web_req *r);
bool authz_local_path(const char *next);
/* authz_require_login that lets through a user who must enrol a second
 * factor first: for the enrolment page only. */
struct authz_user *authz_require_enrolling(struct web_req *r);
/* The user of this request's session that waits for its second factor
 * (ten minutes), or NULL (e set when the database failed). */
struct authz_user *authz_session_pending(struct web_req *r, struct gh_err *e);

/* totp.c — codes, the otpauth URI, its QR code, recovery codes */
char *authz_totp_base32(struct gh_arena *a, const unsigned char *key, size_t n);
bool  authz_totp_code_shape(const char *code);
int   authz_totp_check(const unsigned char *key, size_t n, const char *code, int64_t *step);
/* the same at a given time (unix seconds), for tests */
int   authz_totp_check_at(const unsigned char *key, size_t n, const char *code, int64_t now, int64_t *step);
char *authz_totp_uri(struct gh_arena *a, const char *account, const char *b32);
char *authz_totp_qr_svg(struct gh_arena *a, const char *text);
char *authz_recovery_code_new(struct gh_arena *a);
void  authz_recovery_code_hash(const char *typed, char out[65]);

/* mfa.c — the second factor at sign-in, enrolment, the admin reset */
/* true when GATEHOUSE_REQUIRE_MFA asks a user of this role (and, for
 * "owners", approved owner of an agent or not) for one */
bool authz_mfa_required(const char *role, bool agent_owner);
/* true when the user has a confirmed second factor (e set on a database error) */
bool authz_mfa_enrolled(struct gh_arena *a, const char *user_id, struct gh_err *e);
int  authz_mfa_routes(void);
char *authz_mfa_aad(struct gh_arena *a, const char *user_id);
/* A fresh TOTP key sealed under the server key; *b32 its text for the app. */
char *authz_mfa_new_key(struct gh_arena *a, const char *user_id, char **b32);
/* 0 when code is right for the sealed key at a step after last_step (NULL:
 * none), *step set; 1 when not; -1 with e set. */
int  authz_mfa_totp_ok(struct gh_arena *a, const char *user_id, const char *sealed, const char *last_step,
                       const char *code, int64_t *step, struct gh_err *e);
/* After the password passed: 1 when the user has a second factor and the
 * reply (to /login/mfa) is sent, 0 to sign in now, -1 with e set. */
int  authz_mfa_after_password(struct web_req *r, struct authz_user *u, const char *next, struct gh_err *e);


/* sso.c, sso_admin.c — single sign-on with one OpenID Connect provider */
struct authz_sso {
    char *name;              /* on the button */
    char *issuer;
    char *client_id;
    char *secret_sealed;
    char *domains;           /* comma-separated, lower case; empty: any */
    bool  create_accounts;
    bool  password_off;
};
/* The provider, or NULL: none set (or e set on a database error). */
struct authz_sso *authz_sso_load(struct gh_arena *a, struct gh_err *e);
char *authz_sso_secret(struct gh_arena *a, const struct authz_sso *p);
bool  authz_sso_domain_ok(const struct authz_sso *p, const char *email);
/* "Sign in with …" for the login page, or "" */
char *authz_sso_button(struct web_req *r, const char *next);
/* true when this account signs in with SSO only (the setting is on) */
bool  authz_sso_password_refused(struct gh_arena *a, const char *user_id);
/* drops the cached discovery document and keys (the settings changed) */
void  authz_sso_forget(void);
int   authz_sso_routes(void);
/* signin_code.c — codes by mail; the login page's other ways in (SSO
 * button, "email me a code") */
char *authz_login_options(struct web_req *r, const char *next);
int   authz_signin_code_routes(void);
int   authz_sso_admin_routes(void);
/* idtoken.c */
struct authz_idtoken_expect {
    const char *issuer;
    const char *client_id;
    const char *nonce;
    json_t     *jwks;
};
/* 0 and *claims (arena) when the ID token is signed (RS256/ES256) by a key
 * of jwks and its claims hold; else -1 with e (code "unknown_kid" when no
 * key of the JWKS has its kid). */
int authz_idtoken_verify(struct gh_arena *a, const char *jwt, const struct authz_idtoken_expect *x,
                         json_t **claims, struct gh_err *e);

/* security.c — /profile/security: second factor and the sessions list */
int  authz_security_routes(void);

/* agent.c */
/* The agent a resource indicator names (RFC 8707): the default agent's
 * {public}/mcp or any {public}/agents/{slug}/mcp, tolerating case and a
 * trailing slash.  *canon gets the canonical spelling.  NULL resource means
 * the default agent at {public}/mcp.  400 invalid_target otherwise. */
struct authz_agent *authz_resource_agent(struct gh_arena *a, const char *resource, char **canon,
                                         struct gh_err *e);
char *authz_agent_resource(struct gh_arena *a, const char *slug);
/* The same without asking the database whether the agent exists: the
 * canonical spelling and the slug, or NULL. */
char *authz_resource_canon(struct gh_arena *a, const char *resource, char slug[64]);

/* members.c — who may use an agent.  The SQL condition that user row
 * alias u may use agent row alias ag: an admin, or an approved member. */
#define AUTHZ_SQL_MEMBER(u, ag) \
    "(" u ".role = 'admin' OR EXISTS (SELECT 1 FROM agent_members m WHERE m.agent_id = " ag ".id" \
    " AND m.user_id = " u ".id AND m.state = 'approved'))"
/* An email address as a member is known by: 3-254 characters, one @, no
 * spaces or control characters. */
bool authz_email_ok(const char *email);
/* Invite landing and acceptance (invite.c). */
int  authz_invite_routes(void);
/* The agents console: /agents, /agents/{slug}/members|settings, /admin/agents. */
int  authz_agent_pages_routes(void);

/* credcache.c — token hash -> credential and slug -> agent, flushed on
 * every credential change; read the generation before asking the database
 * and hand it to the put, which drops a lookup that raced a flush. */
void authz_cache_start(void);
uint64_t authz_credcache_gen(void);
struct authz_credential *authz_credcache_get(struct gh_arena *a, const char *token_hash);
void authz_credcache_put(const char *token_hash, const struct authz_credential *cr, uint64_t gen);
uint64_t authz_agentcache_gen(void);
struct authz_agent *authz_agentcache_get(struct gh_arena *a, const char *slug);
void authz_agentcache_put(const struct authz_agent *ag, uint64_t gen);

/* client.c — registered (RFC 7591) and metadata-document clients */
struct authz_client {
    char   *client_id;
    char   *kind;            /* "dcr" | "cimd" */
    char   *name;            /* client_name, or NULL */
    char   *auth_method;     /* none | client_secret_basic | client_secret_post */
    char   *secret_hash;
    char   *cimd_host;       /* host of a CIMD client_id */
    bool    resource_server; /* an administrator let it introspect every token */
    json_t *metadata;        /* arena-owned */
};
struct authz_client *authz_client_get(struct gh_arena *a, const char *client_id, struct gh_err *e);
/* A client_id as received (len: its decoded length, see web_form_n) that
 * may be looked up: 1-2000 bytes of UTF-8 text without control characters. */
bool authz_client_id_ok(const char *id, size_t len);
/* Registration rule for one redirect URI (DESIGN.md 3). */
bool authz_redirect_uri_valid(const char *uri, const char **why);
/* A URI's parts, as the redirect and client_id rules read them. */
struct authz_uri {
    char scheme[32];
    char host[256];
    int  port;           /* -1 when absent */
    const char *rest;    /* path?query, points into the original */
    bool authority;      /* had "//" */
};
bool authz_uri_parse(const char *s, struct authz_uri *u);
/* Registration metadata (RFC 7591) checked and normalized; cimd: a fetched document. */
json_t *authz_client_metadata_check(json_t *in, bool cimd, struct gh_err *e);
/* Exact match, or loopback http with any port (RFC 8252). */
bool authz_redirect_uri_match(const char *registered, const char *given);
bool authz_client_redirect_ok(struct authz_client *c, const char *uri);
/* Client authentication at token/revoke/introspect: 401 invalid_client. */
struct authz_client *authz_client_auth(struct web_req *r, struct gh_err *e);
/* The client_id a token/revoke/introspect request names (form or Basic), or NULL. */
const char *authz_client_named(struct web_req *r);
/* admin_users.c: /admin/users */
int authz_admin_users_routes(void);
int authz_client_routes(void);
void authz_client_reap(void);
/* Client ID Metadata Documents: the URL rule (https with a path; http too
 * under the development setting), the cache in oauth_clients, and the
 * fetch + checks + store that runs on a fetch thread (all in cimd.c). */
bool authz_cimd_url_ok(const char *client_id);
bool authz_cimd_cached(struct gh_arena *a, const char *client_id);
int  authz_cimd_store(struct gh_arena *a, const char *client_id, struct gh_err *e);

/* cimd.c — fetching the documents off the server threads */
#define AUTHZ_CIMD_MAX_BYTES 5120
struct authz_cimd_doc {
    char   buf[AUTHZ_CIMD_MAX_BYTES + 1];
    size_t len;
    long   max_age;          /* from Cache-Control; the caller sets the default */
};
/* GET with the address rule, no proxy, no redirects, 5 KB, 5 s (DNS included). */
int  authz_cimd_fetch(const char *url, struct authz_cimd_doc *d, struct gh_err *e);
/* First thing in a handler that looks up client_id: true when the request
 * needs a fetch and was handed to a fetch thread, which calls fn(r) again
 * once the fetch is over (then this returns false), or when it was answered
 * 429 (too many fresh documents named from its address); the handler
 * returns at once.  False: go on here (no document, cached, or failed
 * lately). */
bool authz_cimd_offload(struct web_req *r, const char *client_id, web_handler_fn fn);
/* On a cache miss: 0 when the fetch this request waited for stored the
 * document, else -1 with its error (a remembered failure, or 503). */
int  authz_cimd_outcome(struct gh_arena *a, const char *url, struct gh_err *e);
void authz_cimd_stop(void);

/* ratelimit.c (authz_rate_check in authz.h): 0 when the request keyed by
 * `key` is taken at `now_us` (monotonic), else the whole seconds until it
 * would be. */
int authz_rate_take(const unsigned char key[16], long per_min, int64_t now_us);

/* token.c */
struct authz_pair {
    char   *access;
    char   *refresh;         /* NULL when the client may not refresh */
    long    expires_in;
    int64_t expires_at;
    char   *scope;
    char   *chain_id;
};
/* Issues a fresh pair for a grant inside the caller's transaction;
 * chain_id NULL starts a new chain. */
int authz_pair_issue(struct db_conn *c, struct gh_arena *a, const char *grant_id, const char *chain_id,
                     const char *parent_id, const char *scope, const char *resource, bool refresh,
                     struct authz_pair *out, struct gh_err *e);
int authz_token_routes(void);
/* last-used times, coalesced in memory: kind 'g' grant, 'p' PAT */
void authz_touch(char kind, const char *id);
void authz_touch_start(void);
/* revocation of whole chains / grants / users */
int authz_grant_revoke(struct gh_arena *a, const char *grant_id, const char *user_id, struct gh_err *e);

/* oauth.c */
int authz_oauth_routes(void);
/* pat.c */
int authz_pat_routes(void);
char *authz_pat_new(struct gh_arena *a);
/* connections.c */
int authz_connections_routes(void);

/* vault.c — the primitives (OpenSSL 3 X25519, HKDF-SHA256, AES-256-GCM;
 * argon2id) and the hooks where a member's secrets are made or rotated */
int   authz_vault_keypair(unsigned char pub[32], unsigned char priv[32]);
char *authz_vault_seal_to(struct gh_arena *a, const unsigned char pub[32], const char *aad,
                          const void *pt, size_t n);
/* priv wrapped under HKDF(secret, salt, label), label also the associated data */
char *authz_vault_wrap(struct gh_arena *a, const void *secret, size_t sn, const unsigned char salt[16],
                       const char *label, const unsigned char priv[32]);
/* 0 with priv set when the secret opens the wrap and priv matches pub, else -1 */
int   authz_vault_unwrap(struct gh_arena *a, const void *secret, size_t sn, const unsigned char salt[16],
                         const char *label, const char *wrapped, const unsigned char pub[32],
                         unsigned char priv[32]);
int   authz_vault_password_kek(const char *password, const unsigned char salt[16], const char *params,
                               unsigned char kek[32]);
/* After a password sign-in: the browser (cookie gh_vault) carries the
 * password-derived key so the console can wrap what it mints. */
int   authz_vault_signin(struct web_req *r, const char *user_id, const char *password);
void  authz_vault_signout(struct web_req *r);
/* A new PAT or authorization code (kind "pat" | "code"): wrap the
 * membership's key under it, unwrapped with what the browser r carries
 * (NULL at the CLI); a membership without a key gets one.  ttl: seconds
 * the wrap is good for, 0 = no end.  Best effort: a failure is logged and
 * leaves the credential unable to open connections, nothing else.  0 when
 * wrapped, 1 when the member's key exists but nothing here unlocked it (a
 * browser signed in without a password), -1 on an error. */
int   authz_vault_credential_new(struct web_req *r, const char *agent_id, const char *user_id, const char *kind,
                                 const char *secret, long ttl);
/* A code exchanged or a refresh token rotated: the key unwrapped with the
 * old secret is wrapped under the new tokens (refresh may be NULL);
 * drop_from deletes the old secret's wrap. */
int   authz_vault_rotate(struct gh_arena *a, const char *from_kind, const char *from_secret, bool drop_from,
                         const char *access, const char *refresh);

#endif
