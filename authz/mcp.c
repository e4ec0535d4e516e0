/*
 * authz/mcp.c — authentication of MCP requests (RFC 6750 / RFC 9728).
 *
 * On the gateway's per-call hot path: the credential cache (credcache.c)
 * first, else one indexed query (token_hash is unique) that also checks
 * expiry, revocation, the grant, the user, the agent and that the user is
 * still an approved member of it (or an admin); a PAT's checksum
 * is verified before either is asked.
 * Last-used times are coalesced in memory (token.c), not written here.
 */
#include "authz/authz_int.h"
#include <string.h>
#include <strings.h>

static void
challenge(struct web_req *r, const char *slug, const char *error)
{
    struct gh_arena *a = web_arena(r);
    const char *pub = gh_cfg.public_url;
    char *md, *hdr;

    /* /mcp is the default agent's resource; its metadata lives at the
     * RFC 9728 path-suffixed form of /mcp, which names that resource */
    if (!strcmp(web_path(r), "/mcp"))
        md = gh_arena_printf(a, "%s/.well-known/oauth-protected-resource/mcp", pub);
    else
        md = gh_arena_printf(a, "%s/.well-known/oauth-protected-resource/agents/%s/mcp", pub, slug);
    if (error)
        hdr = gh_arena_printf(a, "Bearer error=\"%s\", resource_metadata=\"%s\", scope=\"mcp\"", error, md);
    else
        hdr = gh_arena_printf(a, "Bearer resource_metadata=\"%s\", scope=\"mcp\"", md);
    web_add_header(r, "WWW-Authenticate", hdr);
}

/* expires_at rounded down: the credential cache may end an entry early
 * (the next call asks the database), never late */
static const char SQL_ACCESS[] =
    "SELECT t.id, t.grant_id, g.user_id, u.email, g.client_id, coalesce(c.client_name, g.client_id),"
    "       t.scope, a.id, a.slug, a.name, a.untrusted, floor(extract(epoch from t.expires_at))::bigint,"
    "       a.disabled, a.timezone"
    "  FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id JOIN users u ON u.id = g.user_id"
    "  JOIN agents a ON a.id = g.agent_id JOIN oauth_clients c ON c.client_id = g.client_id"
    " WHERE t.token_hash = $1 AND t.kind = 'access' AND t.revoked_at IS NULL AND t.expires_at > now()"
    "   AND g.revoked_at IS NULL AND NOT u.disabled AND " AUTHZ_SQL_MEMBER("u", "a");

static const char SQL_PAT[] =
    "SELECT p.id, NULL, p.user_id, u.email, NULL, p.name, 'mcp', a.id, a.slug, a.name, a.untrusted,"
    "       coalesce(floor(extract(epoch from p.expires_at))::bigint, 0), a.disabled, a.timezone"
    "  FROM pats p JOIN users u ON u.id = p.user_id JOIN agents a ON a.id = p.agent_id"
    " WHERE p.token_hash = $1 AND p.revoked_at IS NULL AND (p.expires_at IS NULL OR p.expires_at > now())"
    "   AND NOT u.disabled AND " AUTHZ_SQL_MEMBER("u", "a");

/* The ordinals (1-based) of the credentials of $1 (kinds) and $2 (token
 * ids) that SQL_ACCESS or SQL_PAT would refuse for anything but expiry:
 * a member removed or rejected ends their streams too; and those of a
 * disabled agent (the kill switch), whose requests the gateway refuses. */
static const char SQL_FALLEN[] =
    "SELECT x.i FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS x(kind, id, i)"
    " WHERE NOT CASE x.kind WHEN 'pat' THEN EXISTS ("
    "   SELECT 1 FROM pats p JOIN users u ON u.id = p.user_id JOIN agents a ON a.id = p.agent_id"
    "    WHERE p.id = x.id AND p.revoked_at IS NULL AND NOT u.disabled AND NOT a.disabled"
    "      AND " AUTHZ_SQL_MEMBER("u", "a") ")"
    " ELSE EXISTS ("
    "   SELECT 1 FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id JOIN users u ON u.id = g.user_id"
    "     JOIN agents a ON a.id = g.agent_id JOIN oauth_clients c ON c.client_id = g.client_id"
    "    WHERE t.id = x.id AND t.kind = 'access' AND t.revoked_at IS NULL AND g.revoked_at IS NULL"
    "      AND NOT u.disabled AND NOT a.disabled AND " AUTHZ_SQL_MEMBER("u", "a") ") END";

static char *
dup(struct gh_arena *a, PGresult *res, int col)
{
    const char *v = db_val(res, 0, col);
    return v ? gh_arena_strdup(a, v) : NULL;
}

static bool
has_scope(const char *scope, const char *want)
{
    size_t n = strlen(want);

    for (const char *p = scope; p && (p = strstr(p, want)) != NULL; p += n)
        if ((p == scope || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

/* The live credential a token hash names, from the database; NULL with
 * e->status 0 when there is none (unknown, expired, revoked). */
static struct authz_credential *
credential_lookup(struct gh_arena *a, bool pat, const char *hash, struct gh_err *e)
{
    struct authz_credential *cr;
    PGresult *res = db_query(a, e, pat ? SQL_PAT : SQL_ACCESS, 1, hash);

    if (res == NULL || PQntuples(res) != 1)
        return NULL;
    cr = gh_arena_alloc(a, sizeof(*cr));
    if (cr == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "arena full");
        return NULL;
    }
    cr->kind = pat ? "pat" : "oauth";
    cr->token_id = dup(a, res, 0);
    cr->grant_id = dup(a, res, 1);
    cr->user_id = dup(a, res, 2);
    cr->user_email = dup(a, res, 3);
    cr->client_id = dup(a, res, 4);
    cr->client_name = dup(a, res, 5);
    cr->scope = dup(a, res, 6);
    cr->agent.id = dup(a, res, 7);
    cr->agent.slug = dup(a, res, 8);
    cr->agent.name = dup(a, res, 9);
    cr->agent.untrusted = db_bool(res, 0, 10);
    cr->expires_at = db_ll(res, 0, 11, 0);
    cr->agent.disabled = db_bool(res, 0, 12);
    cr->agent.timezone = dup(a, res, 13);
    return cr;
}

struct authz_credential *
authz_mcp_authenticate(struct web_req *r, const char *slug, struct authz_mcp_refusal *no)
{
    struct gh_arena *a = web_arena(r);
    const char *hdr = web_header(r, "Authorization"), *token;
    struct authz_credential *cr;
    bool pat;
    char hash[65];

    *no = (struct authz_mcp_refusal){0};
    if (slug == NULL)
        slug = "default";
    no->agent = authz_agent_by_slug(a, slug, &no->e);
    if (no->agent == NULL)
        return NULL;
    if (web_header_count(r, "Authorization") > 1) {
        /* RFC 6750 §3.1: a proxy that reads the last and we, the first,
         * would act for two different callers */
        challenge(r, slug, "invalid_request");
        gh_err_set(&no->e, 400, "invalid_request", "The Authorization header may be sent once.", NULL);
        return NULL;
    }
    if (hdr == NULL || strncasecmp(hdr, "Bearer ", 7)) {
        challenge(r, slug, NULL);
        gh_err_set(&no->e, 401, "unauthorized", "Authentication required.", NULL);
        return NULL;
    }
    token = hdr + 7;
    while (*token == ' ')
        token++;
    pat = gh_str_has_prefix(token, "gth_pat_");
    if (pat || gh_str_has_prefix(token, "gth_oat_"))
        no->claimed_kind = pat ? "pat" : "oauth";
    if (!(gh_str_has_prefix(token, "gth_oat_") || (pat && authz_pat_checksum_ok(token))))
        goto invalid;
    gh_sha256_hex(token, hash);
    cr = authz_credcache_get(a, hash);
    if (cr == NULL) {
        /* the generation before the query: a revocation committed while
         * we ask flushes it, and then this answer is not stored */
        uint64_t gen = authz_credcache_gen();
        cr = credential_lookup(a, pat, hash, &no->e);
        if (cr == NULL && no->e.status)
            return NULL;
        if (cr == NULL)
            goto invalid;
        authz_credcache_put(hash, cr, gen);
    }
    if (cr->agent.slug == NULL || strcmp(cr->agent.slug, no->agent->slug)) {
        no->who = cr;          /* another agent's */
        goto invalid;
    }
    if (!has_scope(cr->scope, "mcp")) {
        no->who = cr;
        web_add_header(r, "WWW-Authenticate", "Bearer error=\"insufficient_scope\", scope=\"mcp\"");
        gh_err_set(&no->e, 403, "insufficient_scope", "The token lacks the mcp scope.", NULL);
        return NULL;
    }
    authz_touch(pat ? 'p' : 'g', pat ? cr->token_id : cr->grant_id);
    cr->bearer = gh_arena_strdup(a, token);
    return cr;
invalid:
    challenge(r, slug, "invalid_token");
    gh_err_clear(&no->e);
    gh_err_set(&no->e, 401, "invalid_token", "The access token is invalid, expired or revoked.", NULL);
    return NULL;
}

int
authz_credentials_fallen(struct gh_arena *a, const char *const *kind, const char *const *id, int n,
                         bool *fallen, struct gh_err *e)
{
    /* two array literals, "{pat,oauth,…}" and "{<uuid>,…}": both made of
     * our own constants and row ids, each id checked all the same */
    char *kinds = gh_arena_alloc(a, (size_t)n * 6 + 2), *ids = gh_arena_alloc(a, (size_t)n * 37 + 2);
    size_t kl = 0, il = 0;
    PGresult *res;

    if (kinds == NULL || ids == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "arena full");
    kinds[kl++] = ids[il++] = '{';
    for (int i = 0; i < n; i++) {
        const char *k = !strcmp(kind[i], "pat") ? "pat" : "oauth";
        const char *v = gh_uuid_ok(id[i]) ? id[i] : "00000000-0000-0000-0000-000000000000";
        if (i)
            kinds[kl++] = ids[il++] = ',';
        memcpy(kinds + kl, k, strlen(k));
        kl += strlen(k);
        memcpy(ids + il, v, 36);
        il += 36;
        fallen[i] = false;
    }
    kinds[kl++] = ids[il++] = '}';
    kinds[kl] = ids[il] = '\0';
    res = db_query(a, e, SQL_FALLEN, 2, kinds, ids);
    if (res == NULL)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        long long i = db_ll(res, r, 0, 0);
        if (i >= 1 && i <= n)
            fallen[i - 1] = true;
    }
    return 0;
}
