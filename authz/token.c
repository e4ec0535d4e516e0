/*
 * authz/token.c — the token endpoint (authorization_code and refresh_token
 * grants), revocation (RFC 7009), introspection (RFC 7662), and last-used
 * times coalesced in memory.
 *
 * Tokens are opaque random strings; only their SHA-256 is stored.  A code
 * exchange starts a chain (chain_id); each refresh rotates within it.  A
 * reused code or a refresh replayed after the grace window revokes the
 * whole chain.  Inside the grace window every caller of one refresh token
 * gets the same successor pair: the pair is sealed (AES-256-GCM under the
 * server key, bound to the parent token's hash) on the parent row, never in
 * plaintext, and the parent row lock serialises the callers.
 *
 * The common refresh (no scope change) is one statement: lock-and-rotate
 * the parent, insert the pair, commit — one round trip, one WAL flush.
 * Anything it does not rotate (unknown, expired, revoked, already rotated,
 * another resource) falls through to the general path, which tells them
 * apart: grace-window reply, chain revocation on replay, or the error.
 */
#include "authz/authz_int.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------ issuing */

int
authz_pair_issue(struct db_conn *c, struct gh_arena *a, const char *grant_id, const char *chain_id,
                 const char *parent_id, const char *scope, const char *resource, bool refresh,
                 struct authz_pair *out, struct gh_err *e)
{
    char ah[65], rh[65], ttl[24], rttl[24];
    PGresult *res;

    memset(out, 0, sizeof(*out));
    out->access = gh_token_hex(a, "gth_oat_", 16);
    out->refresh = refresh ? gh_token_hex(a, "gth_ort_", 32) : NULL;
    if (out->access == NULL || (refresh && out->refresh == NULL))
        return gh_err_set(e, 500, "server_error", "internal error", "no entropy");
    gh_sha256_hex(out->access, ah);
    snprintf(ttl, sizeof(ttl), "%ld", gh_cfg.access_token_ttl);
    snprintf(rttl, sizeof(rttl), "%ld", gh_cfg.refresh_token_ttl);
    res = db_exec(c, a, e,
        "INSERT INTO oauth_tokens (kind, token_hash, grant_id, chain_id, scope, resource, expires_at)"
        " VALUES ('access', $1, $2, coalesce($3::uuid, gen_random_uuid()), $4, $5,"
        "         now() + make_interval(secs => $6::int))"
        " RETURNING chain_id, extract(epoch from expires_at)::bigint", 6, ah, grant_id, chain_id,
        scope, resource, ttl);
    if (res == NULL)
        return -1;
    out->chain_id = gh_arena_strdup(a, db_val(res, 0, 0));
    out->expires_at = db_ll(res, 0, 1, 0);
    out->expires_in = gh_cfg.access_token_ttl;
    out->scope = gh_arena_strdup(a, scope);
    if (refresh) {
        gh_sha256_hex(out->refresh, rh);
        if (!db_exec(c, a, e,
                "INSERT INTO oauth_tokens (kind, token_hash, grant_id, chain_id, parent_id, scope, resource,"
                " expires_at) VALUES ('refresh', $1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::int))",
                7, rh, grant_id, out->chain_id, parent_id, scope, resource, rttl))
            return -1;
    }
    return 0;
}

static int
reply_pair(struct web_req *r, struct authz_pair *p)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "access_token", p->access, "token_type", "Bearer",
                          "expires_in", (json_int_t)p->expires_in, "scope", p->scope);

    if (p->refresh)
        json_object_set_new(j, "refresh_token", json_string(p->refresh));
    return web_reply_json(r, 200, j);
}

static bool
client_may_refresh(struct authz_client *c)
{
    json_t *g = json_object_get(c->metadata, "grant_types"), *v;
    size_t i;

    json_array_foreach(g, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), "refresh_token"))
            return true;
    return false;
}

static int
revoke_chain(struct db_conn *c, struct gh_arena *a, const char *chain_id)
{
    struct gh_err e = {0};

    return db_exec(c, a, &e, "UPDATE oauth_tokens SET revoked_at = now()"
                             " WHERE chain_id = $1 AND revoked_at IS NULL", 1, chain_id) ? 0 : -1;
}

/* ------------------------------------------------------------ grants */

static bool
verifier_ok(const char *v)
{
    size_t n = v ? strlen(v) : 0;

    return n >= 43 && n <= 128 &&
           strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == n;
}

/* redirect_uri at the token endpoint (RFC 6749 4.1.3): the one of the
 * authorization request, or — when that request had none and so used the
 * client's only registered URI — none or that URI. */
static bool
redirect_same(const struct authz_client *cl, const char *stored, const char *given)
{
    json_t *uris = json_object_get(cl->metadata, "redirect_uris");

    if (stored[0] != '\0' || given == NULL)
        return !strcmp(stored, given ? given : "");
    return json_array_size(uris) == 1 && json_is_string(json_array_get(uris, 0)) &&
           !strcmp(json_string_value(json_array_get(uris, 0)), given);
}
static int
grant_code(struct web_req *r, struct authz_client *cl, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *code = web_form(r, "code"), *redirect = web_form(r, "redirect_uri");
    const char *verifier = web_form(r, "code_verifier"), *resource = web_form(r, "resource");
    char hash[65], *canon = NULL;
    unsigned char digest[32];
    struct db_conn *c = NULL;
    struct authz_pair p;
    PGresult *res;
    int rc = -1;

    if (code == NULL || !*code)
        return gh_err_set(e, 400, "invalid_request", "code is required.", NULL);
    if (verifier == NULL)
        return gh_err_set(e, 400, "invalid_request", "code_verifier is required (PKCE).", NULL);
    if (resource && authz_resource_agent(a, resource, &canon, e) == NULL)
        return -1;
    gh_sha256_hex(code, hash);
    c = db_get(e);
    if (c == NULL || db_begin(c, e) < 0)
        goto out;
    res = db_exec(c, a, e,
        "SELECT k.grant_id, k.client_id, k.redirect_uri, k.code_challenge, k.resource, k.scope,"
        "       k.used_at IS NOT NULL, k.expires_at < now(), k.chain_id, g.revoked_at IS NOT NULL"
        "  FROM oauth_codes k JOIN oauth_grants g ON g.id = k.grant_id"
        " WHERE k.code_hash = $1 FOR UPDATE OF k", 1, hash);
    if (res == NULL)
        goto rollback;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 400, "invalid_grant", "The authorization code is invalid.", NULL);
        goto rollback;
    }
    if (db_bool(res, 0, 6)) {
        /* RFC 6749 4.1.2: a second use revokes what the first one got */
        if (db_val(res, 0, 8))
            revoke_chain(c, a, db_val(res, 0, 8));
        db_commit(c, e);
        authz_credentials_changed("code replay");
        GH_LOG(WARN, "code_replay", "authorization code reused; its tokens are revoked");
        gh_err_set(e, 400, "invalid_grant", "The authorization code has already been used.", NULL);
        goto out;
    }
    if (db_bool(res, 0, 7) || db_bool(res, 0, 9)) {
        gh_err_set(e, 400, "invalid_grant", "The authorization code has expired.", NULL);
        goto rollback;
    }
    if (strcmp(db_val(res, 0, 1), cl->client_id)) {
        gh_err_set(e, 400, "invalid_grant", "The authorization code was issued to another client.", NULL);
        goto rollback;
    }
    if (!redirect_same(cl, db_val(res, 0, 2), redirect)) {
        gh_err_set(e, 400, "invalid_grant", "redirect_uri does not match the authorization request.", NULL);
        goto rollback;
    }
    gh_sha256(verifier, strlen(verifier), digest);
    if (!verifier_ok(verifier) || !gh_ct_streq(gh_b64url_encode(a, digest, 32), db_val(res, 0, 3))) {
        gh_err_set(e, 400, "invalid_grant", "The code_verifier does not match the code_challenge.", NULL);
        goto rollback;
    }
    if (canon && strcmp(canon, db_val(res, 0, 4))) {
        gh_err_set(e, 400, "invalid_target", "The resource differs from the authorization request.", NULL);
        goto rollback;
    }
    if (authz_pair_issue(c, a, db_val(res, 0, 0), NULL, NULL, db_val(res, 0, 5), db_val(res, 0, 4),
                         client_may_refresh(cl), &p, e) < 0)
        goto rollback;
    if (!db_exec(c, a, e, "UPDATE oauth_codes SET used_at = now(), chain_id = $2 WHERE code_hash = $1",
                 2, hash, p.chain_id))
        goto rollback;
    if (db_commit(c, e) < 0)
        goto out;
    authz_touch('g', db_val(res, 0, 0));
    authz_vault_rotate(a, "code", code, true, p.access, p.refresh);
    GH_LOG(INFO, "token_issued", "code exchanged by client %s", cl->client_id);
    rc = reply_pair(r, &p);
    goto out;
rollback:
    db_rollback(c);
out:
    if (c)
        db_put(c);
    return rc;
}

static bool
scope_subset(const char *want, const char *have)
{
    char buf[512], *save = NULL, *tok;

    snprintf(buf, sizeof(buf), "%s", want);
    for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        const char *p = have;
        size_t n = strlen(tok);
        bool found = false;
        while ((p = strstr(p, tok)) != NULL) {
            if ((p == have || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
                found = true;
                break;
            }
            p += n;
        }
        if (!found)
            return false;
    }
    return true;
}

/* The sealed successor holds the two tokens ("a", "r") and, when the scope
 * was narrowed, "s" and "x"; otherwise those are the parent's scope and
 * the rotation time + the access TTL. */
static int
successor_reply(struct web_req *r, const char *sealed, const char *aad, const char *parent_scope,
                int64_t rotated_at, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    unsigned char *pt = NULL;
    size_t n = 0;
    json_t *j;
    json_error_t je;
    struct authz_pair p = {0};
    int rc;

    if (gh_unseal(a, sealed, aad, &pt, &n) < 0)
        return gh_err_set(e, 500, "server_error", "internal error", "successor unseal failed");
    j = gh_arena_json(a, json_loadb((const char *)pt, n, 0, &je));
    gh_wipe(pt, n);
    if (j == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "successor corrupt");
    p.access = (char *)gh_json_str(j, "a");
    p.refresh = (char *)gh_json_str(j, "r");
    p.scope = (char *)(gh_json_str(j, "s") ? gh_json_str(j, "s") : parent_scope);
    p.expires_in = (long)((json_object_get(j, "x") ? json_integer_value(json_object_get(j, "x"))
                                                   : rotated_at + gh_cfg.access_token_ttl) - gh_time_s());
    if (p.access == NULL || p.scope == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "successor incomplete");
    if (p.expires_in < 1)
        p.expires_in = 1;
    rc = reply_pair(r, &p);
    json_object_clear(j);
    return rc;
}

static const char SQL_ROTATE[] =
    "WITH p AS ("
    "  UPDATE oauth_tokens t SET rotated_at = now(), successor = $3"
    "    FROM oauth_grants g, users u"
    "   WHERE t.token_hash = $1 AND t.kind = 'refresh' AND t.rotated_at IS NULL AND t.revoked_at IS NULL"
    "     AND t.expires_at > now() AND g.id = t.grant_id AND g.client_id = $2 AND g.revoked_at IS NULL"
    "     AND u.id = g.user_id AND NOT u.disabled AND ($6::text IS NULL OR t.resource = $6)"
    "     AND (NOT $9::bool OR EXISTS (SELECT 1 FROM oauth_clients c WHERE c.client_id = g.client_id"
    "          AND c.auth_method = 'none' AND c.metadata->'grant_types' ? 'refresh_token'"
    "          AND (c.kind = 'dcr' OR c.cache_expires_at > now())))"
    "  RETURNING t.id, t.grant_id, t.chain_id, t.scope, t.resource),"
    " acc AS (INSERT INTO oauth_tokens (kind, token_hash, grant_id, chain_id, scope, resource, expires_at)"
    "  SELECT 'access', $4, grant_id, chain_id, scope, resource, now() + make_interval(secs => $7::int) FROM p"
    "  RETURNING extract(epoch from expires_at)::bigint AS exp),"
    " ref AS (INSERT INTO oauth_tokens (kind, token_hash, grant_id, chain_id, parent_id, scope, resource,"
    "  expires_at) SELECT 'refresh', $5, grant_id, chain_id, id, scope, resource,"
    "  now() + make_interval(secs => $8::int) FROM p)"
    " SELECT p.grant_id, p.scope, acc.exp FROM p, acc";

/* The hot path: one statement rotates a live refresh token.  Returns 0
 * when it replied, 1 when the token was not rotated here (the general
 * path decides), -1 on error.  public_client: the client is not yet
 * authenticated, so the statement itself requires a registered public
 * client allowed to refresh (the only kind that presents no secret). */
static int
refresh_fast(struct web_req *r, const char *client_id, bool public_client, const char *hash,
             const char *canon, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    char ah[65], rh[65], ttl[24], rttl[24], *pt, *sealed;
    struct authz_pair p = {0};
    PGresult *res;

    p.access = gh_token_hex(a, "gth_oat_", 16);
    p.refresh = gh_token_hex(a, "gth_ort_", 32);
    if (p.access == NULL || p.refresh == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "no entropy");
    pt = gh_arena_printf(a, "{\"a\":\"%s\",\"r\":\"%s\"}", p.access, p.refresh);
    sealed = pt ? gh_seal(a, pt, strlen(pt), hash) : NULL;
    if (pt)
        gh_wipe(pt, strlen(pt));
    if (sealed == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "seal failed");
    gh_sha256_hex(p.access, ah);
    gh_sha256_hex(p.refresh, rh);
    snprintf(ttl, sizeof(ttl), "%ld", gh_cfg.access_token_ttl);
    snprintf(rttl, sizeof(rttl), "%ld", gh_cfg.refresh_token_ttl);
    {
        const char *params[] = { hash, client_id, sealed, ah, rh, canon, ttl, rttl,
                                 public_client ? "true" : "false" };
        res = db_query_prepared(a, e, "authz_rotate", SQL_ROTATE, 9, params);
    }
    if (res == NULL)
        return -1;
    if (PQntuples(res) != 1)
        return 1;
    p.scope = gh_arena_strdup(a, db_val(res, 0, 1));
    p.expires_in = gh_cfg.access_token_ttl;
    authz_touch('g', db_val(res, 0, 0));
    authz_vault_rotate(a, "refresh", web_form(r, "refresh_token"), true, p.access, p.refresh);
    return reply_pair(r, &p);
}

static int
grant_refresh(struct web_req *r, struct authz_client *cl, bool tried_fast, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *token = web_form(r, "refresh_token"), *resource = web_form(r, "resource"), *scope;
    char hash[65], grace[24], *canon = NULL, *sealed, *pt;
    struct db_conn *c = NULL;
    struct authz_pair p;
    size_t scope_len;
    PGresult *res;
    int rc = -1;

    if (token == NULL || !*token)
        return gh_err_set(e, 400, "invalid_request", "refresh_token is required.", NULL);
    /* the narrowed scope is stored as sent: text, and short enough for
     * scope_subset() to see all of it */
    scope = web_form_n(r, "scope", &scope_len);
    if (scope && (scope_len >= 512 || !gh_text_ok(scope, scope_len)))
        return gh_err_set(e, 400, "invalid_scope", "The scope is malformed.", NULL);
    if (!client_may_refresh(cl))
        return gh_err_set(e, 400, "unauthorized_client", "This client is not registered for refresh_token.", NULL);
    if (resource && authz_resource_agent(a, resource, &canon, e) == NULL)
        return -1;
    gh_sha256_hex(token, hash);
    if (scope == NULL && !tried_fast) {
        rc = refresh_fast(r, cl->client_id, false, hash, canon, e);
        if (rc <= 0)
            return rc;
        rc = -1;
    }
    snprintf(grace, sizeof(grace), "%ld", gh_cfg.refresh_grace_seconds);
    c = db_get(e);
    if (c == NULL || db_begin(c, e) < 0)
        goto out;
    res = db_exec(c, a, e,
        "SELECT t.id, t.grant_id, t.chain_id, t.scope, t.resource, t.expires_at < now(),"
        "       t.revoked_at IS NOT NULL, t.rotated_at IS NOT NULL,"
        "       t.rotated_at > now() - make_interval(secs => $2::int), t.successor, g.client_id,"
        "       g.revoked_at IS NOT NULL OR u.disabled, coalesce(extract(epoch from t.rotated_at)::bigint, 0)"
        "  FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id JOIN users u ON u.id = g.user_id"
        " WHERE t.token_hash = $1 AND t.kind = 'refresh' FOR UPDATE OF t", 2, hash, grace);
    if (res == NULL)
        goto rollback;
    if (PQntuples(res) == 0 || strcmp(db_val(res, 0, 10), cl->client_id)) {
        gh_err_set(e, 400, "invalid_grant", "The refresh token is invalid.", NULL);
        goto rollback;
    }
    if (db_bool(res, 0, 6) || db_bool(res, 0, 11) || db_bool(res, 0, 5)) {
        gh_err_set(e, 400, "invalid_grant", "The refresh token has expired or was revoked.", NULL);
        goto rollback;
    }
    if (db_bool(res, 0, 7)) {
        if (db_bool(res, 0, 8) && db_val(res, 0, 9)) {
            /* a concurrent refresh with the same token: the same pair */
            db_rollback(c);
            rc = successor_reply(r, db_val(res, 0, 9), hash, db_val(res, 0, 3), db_ll(res, 0, 12, 0), e);
            goto out;
        }
        revoke_chain(c, a, db_val(res, 0, 2));
        db_commit(c, e);
        authz_credentials_changed("refresh replay");
        GH_LOG(WARN, "refresh_replay", "rotated refresh token replayed; chain revoked");
        gh_err_set(e, 400, "invalid_grant", "The refresh token has already been used.", NULL);
        goto out;
    }
    if (scope && !scope_subset(scope, db_val(res, 0, 3))) {
        gh_err_set(e, 400, "invalid_scope", "The scope exceeds the original grant.", NULL);
        goto rollback;
    }
    if (canon && strcmp(canon, db_val(res, 0, 4))) {
        gh_err_set(e, 400, "invalid_target", "The resource differs from the grant's.", NULL);
        goto rollback;
    }
    if (authz_pair_issue(c, a, db_val(res, 0, 1), db_val(res, 0, 2), db_val(res, 0, 0),
                         scope && *scope ? scope : db_val(res, 0, 3), db_val(res, 0, 4), true, &p, e) < 0)
        goto rollback;
    pt = gh_arena_printf(a, "{\"a\":\"%s\",\"r\":\"%s\",\"s\":\"%s\",\"x\":%lld}", p.access, p.refresh,
                         p.scope, (long long)p.expires_at);
    sealed = pt ? gh_seal(a, pt, strlen(pt), hash) : NULL;
    if (pt)
        gh_wipe(pt, strlen(pt));
    if (sealed == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "seal failed");
        goto rollback;
    }
    if (!db_exec(c, a, e, "UPDATE oauth_tokens SET rotated_at = now(), successor = $2 WHERE id = $1",
                 2, db_val(res, 0, 0), sealed))
        goto rollback;
    if (db_commit(c, e) < 0)
        goto out;
    authz_touch('g', db_val(res, 0, 1));
    authz_vault_rotate(a, "refresh", token, true, p.access, p.refresh);
    rc = reply_pair(r, &p);
    goto out;
rollback:
    db_rollback(c);
out:
    if (c)
        db_put(c);
    return rc;
}

/* Every parameter at most once (RFC 6749 3.1, 3.2). */
static bool
no_duplicates(struct web_req *r)
{
    static const char *const names[] = { "grant_type", "code", "redirect_uri", "code_verifier",
                                         "refresh_token", "scope", "resource", "client_id",
                                         "client_secret", "token", "token_type_hint" };

    for (size_t i = 0; i < GH_ARRAY_LEN(names); i++)
        if (web_form_count(r, names[i]) > 1)
            return false;
    return true;
}

static void
no_store(struct web_req *r)
{
    web_add_header(r, "Cache-Control", "no-store");
    web_add_header(r, "Pragma", "no-cache");
}

/* A public client refreshing (no secret, no scope change): no client
 * lookup first, the rotation statement checks the client itself.  0 when
 * it replied, 1 when the general path must decide (*tried then says the
 * fast statement already ran), -1 on error. */
static int
public_refresh(struct web_req *r, bool *tried, struct gh_err *e)
{
    const char *token = web_form(r, "refresh_token"), *resource = web_form(r, "resource"), *id;
    char hash[65], slug[64], *canon = NULL;
    size_t idlen;
    int rc;

    id = web_form_n(r, "client_id", &idlen);
    if (token == NULL || id == NULL || web_form(r, "scope") || web_form(r, "client_secret") ||
        web_header(r, "Authorization"))
        return 1;
    if (!authz_client_id_ok(id, idlen))
        return 1;                      /* the general path says invalid_client */
    if (resource && (canon = authz_resource_canon(web_arena(r), resource, slug)) == NULL)
        return 1;                      /* the general path says invalid_target */
    gh_sha256_hex(token, hash);
    rc = refresh_fast(r, id, true, hash, canon, e);
    *tried = rc == 1;
    return rc;
}

static int
post_token(struct web_req *r)
{
    const char *gt = web_form(r, "grant_type");
    struct authz_client *cl;
    struct gh_err e = {0};
    bool fast = false;
    int rc;

    if (authz_cimd_offload(r, authz_client_named(r), post_token))
        return 0;           /* the client's metadata document is fetched first */
    no_store(r);
    if (authz_rate_check(r, "token", gh_cfg.rate_token_per_min, &e) < 0)
        return web_reply_err(r, &e);
    if (!no_duplicates(r)) {
        gh_err_set(&e, 400, "invalid_request", "A parameter was repeated.", NULL);
        return web_reply_err(r, &e);
    }
    if (gt && !strcmp(gt, "refresh_token")) {
        rc = public_refresh(r, &fast, &e);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return web_reply_err(r, &e);
    }
    cl = authz_client_auth(r, &e);
    if (cl == NULL)
        return web_reply_err(r, &e);
    if (gt == NULL) {
        gh_err_set(&e, 400, "invalid_request", "grant_type is required.", NULL);
    } else if (!strcmp(gt, "authorization_code")) {
        if (grant_code(r, cl, &e) == 0)
            return 0;
    } else if (!strcmp(gt, "refresh_token")) {
        if (grant_refresh(r, cl, fast, &e) == 0)
            return 0;
    } else {
        gh_err_set(&e, 400, "unsupported_grant_type", "Only authorization_code and refresh_token are supported.", NULL);
    }
    if (!gh_err_isset(&e))
        gh_err_set(&e, 500, "server_error", "internal error", "token: no reply");
    return web_reply_err(r, &e);
}

/* ------------------------------------------------------------ revoke, introspect */

static int
post_revoke(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *token = web_form(r, "token");
    struct authz_client *cl;
    struct gh_err e = {0};
    char hash[65];
    PGresult *res;

    if (authz_cimd_offload(r, authz_client_named(r), post_revoke))
        return 0;           /* the client's metadata document is fetched first */
    no_store(r);
    if (!no_duplicates(r)) {
        gh_err_set(&e, 400, "invalid_request", "A parameter was repeated.", NULL);
        return web_reply_err(r, &e);
    }
    cl = authz_client_auth(r, &e);
    if (cl == NULL)
        return web_reply_err(r, &e);
    if (token == NULL) {
        gh_err_set(&e, 400, "invalid_request", "token is required.", NULL);
        return web_reply_err(r, &e);
    }
    gh_sha256_hex(token, hash);
    /* a refresh token takes its chain with it; an access token only itself.
     * Unknown tokens and other clients' tokens: 200 and nothing changes. */
    res = db_query(a, &e,
        "WITH t AS (SELECT t.id, t.kind, t.chain_id FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id"
        "            WHERE t.token_hash = $1 AND g.client_id = $2)"
        " UPDATE oauth_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND"
        "   (id IN (SELECT id FROM t) OR chain_id IN (SELECT chain_id FROM t WHERE kind = 'refresh'))"
        " RETURNING id", 2, hash, cl->client_id);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(res) > 0) {
        GH_LOG(INFO, "token_revoked", "client %s revoked %d token(s)", cl->client_id, PQntuples(res));
        authz_credentials_changed("token revoked");
    }
    return web_reply(r, 200, "application/json", "{}", 2);
}

/* RFC 7662 about a PAT, for a resource server: active, or NULL when the
 * PAT is unknown, expired or revoked (or its user disabled). */
static json_t *
introspect_pat(struct gh_arena *a, const char *hash, struct gh_err *e)
{
    PGresult *res = db_query(a, e,
        "SELECT p.user_id, u.email, extract(epoch from p.expires_at)::bigint,"
        "       extract(epoch from p.created_at)::bigint, ag.slug"
        "  FROM pats p JOIN users u ON u.id = p.user_id JOIN agents ag ON ag.id = p.agent_id"
        " WHERE p.token_hash = $1 AND p.revoked_at IS NULL"
        "   AND (p.expires_at IS NULL OR p.expires_at > now()) AND NOT u.disabled", 1, hash);
    const char *slug;
    json_t *j;

    if (res == NULL || PQntuples(res) == 0)
        return NULL;
    slug = db_val(res, 0, 4);
    /* a PAT names no client and has the mcp scope; the default agent's
     * canonical resource is {public}/mcp, as for OAuth tokens */
    j = json_pack("{s:b, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "active", 1, "scope", "mcp",
                  "username", db_val(res, 0, 1), "sub", db_val(res, 0, 0),
                  "aud", !strcmp(slug, "default") ? gh_config_url(a, "/mcp") : authz_agent_resource(a, slug),
                  "iat", (json_int_t)db_ll(res, 0, 3, 0), "iss", gh_cfg.public_url, "token_type", "Bearer");
    if (j == NULL) {
        /* a live PAT must never read as inactive */
        gh_err_set(e, 500, "server_error", "internal error", "introspection: cannot build the PAT's answer");
        return NULL;
    }
    if (db_val(res, 0, 2))
        json_object_set_new(j, "exp", json_integer(db_ll(res, 0, 2, 0)));
    return j;
}

/* A client sees its own access and refresh tokens; a resource server
 * (designated by an administrator, `gatehouse client introspection`) also
 * every other client's access tokens and every PAT.  Anything else, and
 * anything not live, is {"active": false}: nothing tells an unknown token
 * from one the caller may not see. */
static int
post_introspect(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *token = web_form(r, "token");
    struct authz_client *cl;
    struct gh_err e = {0};
    char hash[65];
    PGresult *res;
    json_t *j = NULL;

    if (authz_cimd_offload(r, authz_client_named(r), post_introspect))
        return 0;           /* the client's metadata document is fetched first */
    no_store(r);
    cl = authz_client_auth(r, &e);
    if (cl == NULL)
        return web_reply_err(r, &e);
    if (!strcmp(cl->auth_method, "none")) {
        gh_err_set(&e, 401, "invalid_client", "Introspection is for confidential clients.", NULL);
        return web_reply_err(r, &e);
    }
    if (token == NULL) {
        gh_err_set(&e, 400, "invalid_request", "token is required.", NULL);
        return web_reply_err(r, &e);
    }
    gh_sha256_hex(token, hash);
    if (gh_str_has_prefix(token, "gth_pat_")) {
        if (cl->resource_server && authz_pat_checksum_ok(token))
            j = introspect_pat(a, hash, &e);
        goto reply;
    }
    res = db_query(a, &e,
        "SELECT t.kind, t.scope, t.resource, g.user_id, u.email, extract(epoch from t.expires_at)::bigint,"
        "       extract(epoch from t.created_at)::bigint, g.client_id"
        "  FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id JOIN users u ON u.id = g.user_id"
        " WHERE t.token_hash = $1 AND (g.client_id = $2 OR ($3::bool AND t.kind = 'access'))"
        "   AND t.revoked_at IS NULL AND g.revoked_at IS NULL"
        "   AND t.expires_at > now() AND NOT u.disabled AND t.rotated_at IS NULL",
        3, hash, cl->client_id, cl->resource_server ? "true" : "false");
    if (res == NULL || PQntuples(res) == 0)
        goto reply;
    j = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "active", 1,
                  "scope", db_val(res, 0, 1), "client_id", db_val(res, 0, 7), "username", db_val(res, 0, 4),
                  "sub", db_val(res, 0, 3), "aud", db_val(res, 0, 2),
                  "exp", (json_int_t)db_ll(res, 0, 5, 0), "iat", (json_int_t)db_ll(res, 0, 6, 0),
                  "iss", gh_cfg.public_url,
                  "token_type", !strcmp(db_val(res, 0, 0), "access") ? "Bearer" : "refresh_token");
reply:
    if (gh_err_isset(&e))
        return web_reply_err(r, &e);
    return web_reply_json(r, 200, j ? j : json_pack("{s:b}", "active", 0));
}

static int
cors_preflight(struct web_req *r)
{
    return web_reply(r, 204, NULL, "", 0);
}

int
authz_grant_revoke(struct gh_arena *a, const char *grant_id, const char *user_id, struct gh_err *e)
{
    PGresult *res = db_query(a, e,
        "WITH g AS (UPDATE oauth_grants SET revoked_at = now() WHERE id = $1::uuid"
        "             AND ($2::uuid IS NULL OR user_id = $2::uuid) AND revoked_at IS NULL RETURNING id)"
        " UPDATE oauth_tokens SET revoked_at = now() WHERE grant_id IN (SELECT id FROM g)"
        "   AND revoked_at IS NULL RETURNING 1", 2, grant_id, user_id);

    if (res == NULL)
        return -1;
    authz_credentials_changed("grant revoked");
    return 0;
}

/* ------------------------------------------------------------ last used */

/* One entry per credential per flush window: an open-addressing index
 * (twice the slots, so probes stay short) finds the entry to update, so a
 * busy credential takes one slot however often it is used.  Past
 * TOUCH_SLOTS distinct credentials in one window the newest are dropped
 * and counted; the flush says so in the log. */
#define TOUCH_SLOTS 4096
#define TOUCH_INDEX (2 * TOUCH_SLOTS)
#define TOUCH_ID_MAX 37              /* a uuid and its NUL */

struct touch {
    char    kind;
    char    id[TOUCH_ID_MAX];
    int64_t at;
};

static struct touch touched[TOUCH_SLOTS];
static int16_t touch_index[TOUCH_INDEX];    /* slot + 1; 0 = empty */
static int ntouched;
static long touch_dropped;
static pthread_mutex_t touch_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t
touch_hash(char kind, const char *id)
{
    uint32_t h = 2166136261u ^ (unsigned char)kind;

    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h;
}

/* Called on every authenticated request: no database write here, the
 * flusher writes the newest time per id every few seconds. */
void
authz_touch(char kind, const char *id)
{
    int64_t now = gh_time_s();
    uint32_t i;

    if (!gh_uuid_ok(id))                /* ids go into an array literal: uuids only */
        return;
    pthread_mutex_lock(&touch_lock);
    for (i = touch_hash(kind, id) % TOUCH_INDEX; touch_index[i]; i = (i + 1) % TOUCH_INDEX) {
        struct touch *t = &touched[touch_index[i] - 1];
        if (t->kind == kind && !strcmp(t->id, id)) {
            if (now > t->at)
                t->at = now;
            goto out;
        }
    }
    if (ntouched == TOUCH_SLOTS) {
        touch_dropped++;
        goto out;
    }
    touched[ntouched].kind = kind;
    strcpy(touched[ntouched].id, id);
    touched[ntouched].at = now;
    touch_index[i] = (int16_t)(++ntouched);
out:
    pthread_mutex_unlock(&touch_lock);
}

/* The two array literals of one kind ("{id,...}", "{at,...}"), written in
 * one pass into buffers sized up front: the number of entries of that
 * kind, or -1 when the arena is full. */
static int
touch_arrays(struct gh_arena *a, const struct touch *batch, int n, char kind, char **ids, char **ats)
{
    char *pi, *pa;
    int count = 0;

    *ids = pi = gh_arena_alloc(a, (size_t)n * TOUCH_ID_MAX + 3);
    *ats = pa = gh_arena_alloc(a, (size_t)n * 22 + 3);
    if (pi == NULL || pa == NULL)
        return -1;
    *pi++ = '{';
    *pa++ = '{';
    for (int i = 0; i < n; i++) {
        size_t len;
        if (batch[i].kind != kind)
            continue;
        if (count++) {
            *pi++ = ',';
            *pa++ = ',';
        }
        len = strlen(batch[i].id);
        memcpy(pi, batch[i].id, len);
        pi += len;
        pa += snprintf(pa, 22, "%lld", (long long)batch[i].at);
    }
    strcpy(pi, "}");
    strcpy(pa, "}");
    return count;
}

static void
touch_flush(void)
{
    static struct touch batch[TOUCH_SLOTS];
    static const char *const sql[2] = {
        "UPDATE oauth_grants g SET last_used_at = greatest(g.last_used_at, to_timestamp(v.at))"
        " FROM unnest($1::uuid[], $2::bigint[]) AS v(id, at) WHERE g.id = v.id",
        "UPDATE pats p SET last_used_at = greatest(p.last_used_at, to_timestamp(v.at))"
        " FROM unnest($1::uuid[], $2::bigint[]) AS v(id, at) WHERE p.id = v.id",
    };
    static const char kinds[2] = { 'g', 'p' };
    struct gh_arena *a = NULL;
    long dropped;
    int n;

    pthread_mutex_lock(&touch_lock);
    n = ntouched;
    memcpy(batch, touched, sizeof(batch[0]) * (size_t)n);
    ntouched = 0;
    memset(touch_index, 0, sizeof(touch_index));
    dropped = touch_dropped;
    touch_dropped = 0;
    pthread_mutex_unlock(&touch_lock);
    if (dropped > 0)
        GH_LOG(WARN, "last_used_flush", "%ld last-used updates dropped: more than %d credentials in one window",
               dropped, TOUCH_SLOTS);
    if (n == 0)
        return;
    a = gh_arena_new(0);
    if (a == NULL) {
        GH_LOG(ERROR, "last_used_flush", "out of memory; %d last-used times dropped", n);
        return;
    }
    /* each id occurs once in the batch (authz_touch coalesces), so the
     * UPDATE meets every row at most once */
    for (int k = 0; k < 2; k++) {
        struct gh_err e = {0};
        char *ids, *ats;
        int count = touch_arrays(a, batch, n, kinds[k], &ids, &ats);

        if (count < 0) {
            GH_LOG(ERROR, "last_used_flush", "arena full; %d last-used times dropped", n);
            break;
        }
        if (count > 0 && !db_query(a, &e, sql[k], 2, ids, ats))
            GH_LOG(WARN, "last_used_flush", "%d last-used times dropped: %s", count, e.detail);
    }
    gh_arena_free(a);
}

static volatile bool touch_stop;
static bool touch_running;
static pthread_t touch_thread;

static void *
touch_main(void *arg)
{
    int ticks = 0;

    while (!touch_stop) {
        usleep(250 * 1000);
        if (++ticks % 8 == 0)            /* every 2 s */
            touch_flush();
        if (ticks % 2400 == 1)           /* every 10 min: reap unused clients */
            authz_client_reap();
    }
    return NULL;
}

void
authz_touch_start(void)
{
    if (!touch_running && pthread_create(&touch_thread, NULL, touch_main, NULL) == 0)
        touch_running = true;
}

void
authz_shutdown(void)
{
    if (touch_running) {
        touch_stop = true;
        pthread_join(touch_thread, NULL);
        touch_running = false;
    }
    authz_cimd_stop();
    touch_flush();
}

int
authz_token_routes(void)
{
    web_route("POST", "/oauth/token", WEB_API | WEB_CORS, post_token);
    web_route("OPTIONS", "/oauth/token", WEB_API | WEB_CORS, cors_preflight);
    web_route("POST", "/oauth/revoke", WEB_API | WEB_CORS, post_revoke);
    web_route("OPTIONS", "/oauth/revoke", WEB_API | WEB_CORS, cors_preflight);
    web_route("POST", "/oauth/introspect", WEB_API, post_introspect);
    return 0;
}
