/*
 * authz/pat.c — personal access tokens: gth_pat_<32 base62>_<6 base62>.
 *
 * The tail is the CRC32 of everything before it, in base62, so a scanner
 * (or the MCP endpoint, before asking the database) can reject a mistyped
 * or made-up token offline.  Only the SHA-256 is stored, plus a short
 * prefix to recognise the token in the list.
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAT_PREFIX "gth_pat_"
#define PAT_RAND   32
#define PAT_SUM    6
#define PAT_LEN    (8 + PAT_RAND + 1 + PAT_SUM)

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static uint32_t
crc32_of(const char *s, size_t n)
{
    uint32_t c = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        c ^= (unsigned char)s[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (uint32_t)-(int32_t)(c & 1));
    }
    return ~c;
}

static void
checksum(const char *s, size_t n, char out[PAT_SUM + 1])
{
    uint32_t c = crc32_of(s, n);

    for (int i = PAT_SUM - 1; i >= 0; i--) {
        out[i] = B62[c % 62];
        c /= 62;
    }
    out[PAT_SUM] = '\0';
}

bool
authz_pat_checksum_ok(const char *t)
{
    char sum[PAT_SUM + 1];

    if (t == NULL || strlen(t) != PAT_LEN || strncmp(t, PAT_PREFIX, 8) || t[8 + PAT_RAND] != '_')
        return false;
    for (int i = 8; i < PAT_LEN; i++)
        if (i != 8 + PAT_RAND && !strchr(B62, t[i]))
            return false;
    checksum(t, 8 + PAT_RAND, sum);
    return gh_ct_streq(sum, t + 8 + PAT_RAND + 1);
}

char *
authz_pat_new(struct gh_arena *a)
{
    unsigned char raw[PAT_RAND];
    char *t = gh_arena_alloc(a, PAT_LEN + 1);

    if (t == NULL || gh_random_bytes(raw, sizeof(raw)) < 0)
        return NULL;
    memcpy(t, PAT_PREFIX, 8);
    for (int i = 0; i < PAT_RAND; i++)
        t[8 + i] = B62[raw[i] % 62];     /* 248 of 256 values map evenly; the bias is negligible at 190 bits */
    t[8 + PAT_RAND] = '_';
    checksum(t, 8 + PAT_RAND, t + 8 + PAT_RAND + 1);
    gh_wipe(raw, sizeof(raw));
    return t;
}

/* Inserts a PAT; returns the token (arena) or NULL with e set. */
static char *
pat_insert(struct gh_arena *a, const char *user_id, const char *agent_id, const char *name,
           long days, struct gh_err *e)
{
    char *t = authz_pat_new(a), hash[65], d[24], prefix[13];

    if (t == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "no entropy");
        return NULL;
    }
    if (name == NULL || !*name || strlen(name) > 100) {
        gh_err_set(e, 400, "invalid_request", "Give the token a name of at most 100 characters.", NULL);
        return NULL;
    }
    if (days < 0 || days > 3650) {
        gh_err_set(e, 400, "invalid_request", "The expiry must be 1 to 3650 days, or none.", NULL);
        return NULL;
    }
    gh_sha256_hex(t, hash);
    memcpy(prefix, t, 12);
    prefix[12] = '\0';
    snprintf(d, sizeof(d), "%ld", days);
    if (!db_query(a, e, "INSERT INTO pats (user_id, agent_id, name, prefix, token_hash, expires_at)"
                        " VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::int > 0"
                        "   THEN now() + make_interval(days => $6::int) END)",
                  6, user_id, agent_id, name, prefix, hash, d))
        return NULL;
    return t;
}

/* The operator at the CLI acts as an admin: a PAT for someone who has no
 * membership of the agent admits them (as `member approve` would), so
 * scripts that create PATs keep working; someone an owner rejected or
 * removed stays out until approved again. */
static int
cli_admit(struct gh_arena *a, const char *user_id, const struct authz_agent *ag, struct gh_err *e)
{
    PGresult *res = db_query(a, e,
        "WITH ins AS (INSERT INTO agent_members (agent_id, email, user_id, state, decided_at)"
        "   SELECT $1, u.email, u.id, 'approved', now() FROM users u WHERE u.id = $2"
        "   ON CONFLICT DO NOTHING RETURNING state)"
        " SELECT state FROM ins UNION ALL"
        " SELECT state FROM agent_members WHERE agent_id = $1 AND user_id = $2", 2, ag->id, user_id);

    if (res == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        if (!strcmp(db_val(res, i, 0), "approved"))
            return 0;
    if (authz_member_ok(a, user_id, ag->id, e) == 1)      /* an admin */
        return 0;
    return gh_err_set(e, 403, "forbidden", "This user is not an approved member of the agent "
                      "(approve them first: gatehouse member approve).", NULL);
}

int
authz_pat_create(const char *email, const char *agent_slug, const char *name, long days,
                 char **token, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct authz_agent *ag;
    PGresult *res;
    char *t;
    int rc = -1;

    *token = NULL;
    ag = authz_agent_by_slug(a, agent_slug ? agent_slug : "default", e);
    if (ag == NULL)
        goto out;
    res = db_query(a, e, "SELECT id FROM users WHERE lower(email) = lower($1) AND NOT disabled", 1, email);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 404, "not_found", "No active user with this email.", NULL);
        goto out;
    }
    if (cli_admit(a, db_val(res, 0, 0), ag, e) < 0)
        goto out;
    t = pat_insert(a, db_val(res, 0, 0), ag->id, name, days, e);
    if (t == NULL)
        goto out;
    authz_vault_credential_new(NULL, ag->id, db_val(res, 0, 0), "pat", t, days * 86400);
    *token = strdup(t);
    gh_wipe(t, strlen(t));
    rc = *token ? 0 : -1;
out:
    gh_arena_free(a);
    return rc;
}

/* ------------------------------------------------------------ /profile/tokens */

static int
tokens_page(struct web_req *r, struct authz_user *u, const char *fresh, const char *note, const char *error)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    PGresult *res, *agents;
    char *rows = gh_arena_strdup(a, ""), *opts = gh_arena_strdup(a, ""), *body;

    res = db_query(a, &e,
        "SELECT p.id, p.name, p.prefix, ag.slug, to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
        "       coalesce(to_char(p.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 'never'),"
        "       coalesce(to_char(p.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'never'),"
        "       p.expires_at IS NOT NULL AND p.expires_at < now()"
        "  FROM pats p JOIN agents ag ON ag.id = p.agent_id"
        " WHERE p.user_id = $1 AND p.revoked_at IS NULL ORDER BY p.created_at DESC", 1, u->id);
    /* only the agents the user may use: an approved member's, or every one for an admin */
    agents = db_query(a, &e, "SELECT ag.slug, ag.name FROM agents ag, users u WHERE u.id = $1 AND "
                             AUTHZ_SQL_MEMBER("u", "ag") " ORDER BY ag.slug = 'default' DESC, ag.slug", 1, u->id);
    if (res == NULL || agents == NULL)
        return web_reply_err(r, &e);
    for (int i = 0; i < PQntuples(res); i++)
        rows = gh_arena_printf(a,
            "%s<tr><td>%s</td><td><code>%s…</code></td><td>%s</td><td>%s</td><td>%s</td><td>%s%s</td>"
            "<td><form method=\"post\" action=\"/profile/tokens/revoke\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"id\" value=\"%s\">"
            "<button class=\"danger\" type=\"submit\">Revoke</button></form></td></tr>",
            rows, gh_html_escape(a, db_val(res, i, 1)), gh_html_escape(a, db_val(res, i, 2)),
            gh_html_escape(a, db_val(res, i, 3)), db_val(res, i, 4), db_val(res, i, 5), db_val(res, i, 6),
            db_bool(res, i, 7) ? " (expired)" : "", web_csrf_token(r), db_val(res, i, 0));
    for (int i = 0; i < PQntuples(agents); i++)
        opts = gh_arena_printf(a, "%s<option value=\"%s\">%s</option>", opts,
                               gh_html_escape(a, db_val(agents, i, 0)), gh_html_escape(a, db_val(agents, i, 1)));
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>Personal access tokens</h1>%s%s%s%s%s%s"
        "<p class=\"muted\">For clients without OAuth: send <code>Authorization: Bearer &lt;token&gt;</code> to the agent's MCP URL.</p>"
        "<table><thead><tr><th>Name</th><th>Prefix</th><th>Agent</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead>"
        "<tbody>%s</tbody></table>%s</div>"
        "<div class=\"card\"><h2>New token</h2><form method=\"post\" action=\"/profile/tokens\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"name\">Name</label><input id=\"name\" type=\"text\" name=\"name\" maxlength=\"100\" required>"
        "<label for=\"agent\">Agent</label><select id=\"agent\" name=\"agent\">%s</select>"
        "<label for=\"expires_days\">Expires after (days, empty for never)</label>"
        "<input id=\"expires_days\" type=\"number\" name=\"expires_days\" min=\"1\" max=\"3650\" value=\"90\">"
        "<div class=\"actions\"><button type=\"submit\">Create token</button></div></form></div>",
        error ? "<p class=\"error\" role=\"alert\">" : "", error ? gh_html_escape(a, error) : "", error ? "</p>" : "",
        fresh ? "<div class=\"notice\"><p>Copy your new token now; it is not shown again.</p><p><code id=\"new-token\">" : "",
        fresh ? fresh : "", fresh ? gh_arena_printf(a, "</code></p>%s</div>", note ? note : "") : "",
        rows, PQntuples(res) ? "" : "<p class=\"muted\">No tokens yet.</p>", web_csrf_token(r), opts);
    return web_reply_html(r, fresh ? 201 : error ? 400 : 200, authz_page(r, u, "Tokens", body));
}

static int
get_tokens(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);

    return u ? tokens_page(r, u, NULL, NULL, NULL) : 0;
}

static int
post_tokens(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u = authz_require_login(r);
    const char *days = web_form(r, "expires_days");
    struct authz_agent *ag;
    struct gh_err e = {0};
    char *t, *end, *note = NULL;
    long d = 0;
    int rc;

    if (u == NULL)
        return 0;
    if (days && *days) {
        d = strtol(days, &end, 10);
        if (*end || d < 1)
            return tokens_page(r, u, NULL, NULL, "The expiry must be a number of days.");
    }
    ag = authz_agent_by_slug(a, web_form(r, "agent") ? web_form(r, "agent") : "default", &e);
    if (ag == NULL)
        return e.status >= 500 ? web_reply_err(r, &e) : tokens_page(r, u, NULL, NULL, "Choose an agent.");
    switch (authz_member_ok(a, u->id, ag->id, &e)) {
    case -1: return web_reply_err(r, &e);
    case 0:  return tokens_page(r, u, NULL, NULL, "You are not a member of this agent: ask its owner to invite you.");
    }
    t = pat_insert(a, u->id, ag->id, web_form(r, "name"), d, &e);
    if (t == NULL)
        return e.status >= 500 ? web_reply_err(r, &e) : tokens_page(r, u, NULL, NULL, e.msg);
    /* a browser signed in without a password (SSO, a sign-in code) holds
     * no key to wrap it with: say so now rather than at its first call */
    if (authz_vault_credential_new(r, ag->id, u->id, "pat", t, d * 86400) == 1)
        note = gh_arena_printf(a, "<p id=\"vault-locked\">This token cannot open your own upstream accounts: "
                               "you signed in without a password, so your vault key was not at hand. Use a token "
                               "made earlier, or <a href=\"/agents/%s/connections\">Reset lost key</a> and "
                               "connect again.</p>", gh_html_escape(a, ag->slug));
    GH_LOG(INFO, "pat_created", "user %s created a personal access token", u->id);
    rc = tokens_page(r, u, t, note, NULL);
    gh_wipe(t, strlen(t));
    return rc;
}

static int
post_tokens_revoke(struct web_req *r)
{
    struct authz_user *u = authz_require_login(r);
    const char *id = web_form(r, "id");
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    if (!gh_uuid_ok(id))
        return tokens_page(r, u, NULL, NULL, "Unknown token.");
    /* its vault wrap goes with it: a copy of the database and the old
     * token together must not open the member's key (docs/VAULT.md) */
    if (!db_query(web_arena(r), &e, "WITH p AS (UPDATE pats SET revoked_at = now() WHERE id = $1::uuid"
                                    " AND user_id = $2 AND revoked_at IS NULL RETURNING agent_id, token_hash)"
                                    " DELETE FROM vault_wraps w USING p WHERE w.kind = 'pat'"
                                    " AND w.agent_id = p.agent_id AND w.user_id = $2 AND w.cred_hash = p.token_hash",
                  2, id, u->id))
        return web_reply_err(r, &e);
    authz_credentials_changed("pat revoked");
    return web_redirect(r, 303, "/profile/tokens");
}

int
authz_pat_routes(void)
{
    web_route("GET", "/profile/tokens", WEB_PAGE, get_tokens);
    web_route("POST", "/profile/tokens", WEB_PAGE, post_tokens);
    web_route("POST", "/profile/tokens/revoke", WEB_PAGE, post_tokens_revoke);
    return 0;
}
