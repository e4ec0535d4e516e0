/*
 * authz/agent.c — agents: one MCP endpoint each, /agents/{slug}/mcp, the
 * default agent also at /mcp; resolution of RFC 8707 resource indicators;
 * settings (name, time zone), the kill switch and deletion.
 */
#include "authz/authz_int.h"
#include <ctype.h>
#include <string.h>
#include <strings.h>

struct authz_agent *
authz_agent_by_slug(struct gh_arena *a, const char *slug, struct gh_err *e)
{
    struct authz_agent *ag;
    PGresult *res;
    uint64_t gen;

    /* the slug alphabet (migration 010): nothing else reaches the database */
    if (slug == NULL || !*slug || strlen(slug) > 63 ||
        strspn(slug, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(slug)) {
        gh_err_set(e, 404, "not_found", "No such agent.", NULL);
        return NULL;
    }
    ag = authz_agentcache_get(a, slug);
    if (ag != NULL)
        return ag;
    gen = authz_agentcache_gen();
    res = db_query(a, e, "SELECT id, slug, name, untrusted, disabled, timezone FROM agents WHERE slug = $1", 1, slug);
    if (res == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 404, "not_found", "No such agent.", NULL);
        return NULL;
    }
    ag = gh_arena_alloc(a, sizeof(*ag));
    if (ag == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "arena full");
        return NULL;
    }
    ag->id = gh_arena_strdup(a, db_val(res, 0, 0));
    ag->slug = gh_arena_strdup(a, db_val(res, 0, 1));
    ag->name = gh_arena_strdup(a, db_val(res, 0, 2));
    ag->untrusted = db_bool(res, 0, 3);
    ag->disabled = db_bool(res, 0, 4);
    ag->timezone = gh_arena_strdup(a, db_val(res, 0, 5));
    authz_agentcache_put(ag, gen);
    return ag;
}

char *
authz_agent_resource(struct gh_arena *a, const char *slug)
{
    return gh_arena_printf(a, "%s/agents/%s/mcp", gh_cfg.public_url, slug);
}

/* The canonical spelling of a resource indicator naming one of this
 * server's MCP endpoints, *slug its agent; NULL when it names none.  No
 * database access: whether the agent exists is the caller's question. */
char *
authz_resource_canon(struct gh_arena *a, const char *resource, char slug[64])
{
    const char *pub = gh_cfg.public_url, *rest;
    size_t pl = strlen(pub), n;
    char *r;

    if (resource == NULL || !*resource) {
        strcpy(slug, "default");
        return gh_config_url(a, "/mcp");
    }
    r = gh_arena_strdup(a, resource);
    n = r ? strlen(r) : 0;
    while (n > 0 && r[n - 1] == '/')
        r[--n] = '\0';
    /* scheme and host are case-insensitive; paths we compare
     * case-insensitively too, as the slug alphabet is lower case */
    if (n < pl || strncasecmp(r, pub, pl) != 0 || strchr(r, '#') || strchr(r, '?'))
        return NULL;
    rest = r + pl;
    if (!strcasecmp(rest, "/mcp")) {
        strcpy(slug, "default");
        return gh_config_url(a, "/mcp");
    }
    if (strncasecmp(rest, "/agents/", 8) != 0)
        return NULL;
    rest += 8;
    n = strcspn(rest, "/");
    if (n == 0 || n >= 64 || strcasecmp(rest + n, "/mcp"))
        return NULL;
    for (size_t i = 0; i < n; i++)
        slug[i] = (char)tolower((unsigned char)rest[i]);
    slug[n] = '\0';
    /* the slug alphabet: anything else names no agent, and must not reach
     * a statement (the refresh statement compares the canonical spelling) */
    if (strspn(slug, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
        return NULL;
    return authz_agent_resource(a, slug);
}

struct authz_agent *
authz_resource_agent(struct gh_arena *a, const char *resource, char **canon, struct gh_err *e)
{
    char slug[64];
    struct authz_agent *ag;
    struct gh_err ignore = {0};

    *canon = authz_resource_canon(a, resource, slug);
    if (*canon == NULL)
        goto bad;
    ag = authz_agent_by_slug(a, slug, &ignore);
    if (ag == NULL) {
        if (ignore.status >= 500) {
            *e = ignore;
            return NULL;
        }
        goto bad;
    }
    return ag;
bad:
    gh_err_set(e, 400, "invalid_target", "The resource is not an MCP endpoint of this server.", NULL);
    return NULL;
}

/* 0 when tz is an IANA time zone name PostgreSQL knows, else 400. */
static int
timezone_check(struct gh_arena *a, const char *tz, struct gh_err *e)
{
    PGresult *res;

    if (tz == NULL || !*tz || strlen(tz) > 64 || strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                          "0123456789/_+-") != strlen(tz))
        goto bad;
    res = db_query(a, e, "SELECT 1 FROM pg_timezone_names WHERE name = $1", 1, tz);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1)
        return 0;
bad:
    return gh_err_set(e, 400, "invalid_request", "Choose an IANA time zone, such as UTC or Europe/Paris.", NULL);
}

static int
admin_only(const struct authz_user *actor, struct gh_err *e)
{
    if (actor && strcmp(actor->role, "admin"))
        return gh_err_set(e, 403, "forbidden", "Only an administrator may do that.", NULL);
    return 0;
}

static int
name_check(const char *name, struct gh_err *e)
{
    if (name && (strlen(name) > 100 || !gh_text_ok(name, strlen(name))))
        return gh_err_set(e, 400, "invalid_request", "The name must be at most 100 characters of text.", NULL);
    return 0;
}

int
authz_agent_add(const char *slug, const char *name, bool untrusted, struct gh_err *e)
{
    return authz_agent_create(NULL, slug, name, untrusted, NULL, e);
}

int
authz_agent_create(const struct authz_user *actor, const char *slug, const char *name, bool untrusted,
                   const char *timezone, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    int rc = -1;
    size_t n = slug ? strlen(slug) : 0;

    if (admin_only(actor, e) < 0)
        goto out;
    if (n == 0 || n > 63 || strspn(slug, "abcdefghijklmnopqrstuvwxyz0123456789-") != n || slug[0] == '-') {
        gh_err_set(e, 400, "invalid_request",
                   "The slug must be 1-63 lower-case letters, digits or hyphens.", NULL);
        goto out;
    }
    if (name == NULL || !*name)
        name = slug;
    if (timezone == NULL || !*timezone)
        timezone = "UTC";
    if (name_check(name, e) < 0 || timezone_check(a, timezone, e) < 0)
        goto out;
    if (!db_query(a, e, "INSERT INTO agents (slug, name, untrusted, timezone) VALUES ($1, $2, $3, $4)", 4, slug,
                  name, untrusted ? "true" : "false", timezone)) {
        if (!strcmp(e->code, "23505")) {
            gh_err_clear(e);
            gh_err_set(e, 409, "conflict", "An agent with this slug exists already.", NULL);
        }
        goto out;
    }
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

/* The agent of slug when actor may administer it (authz_owner_check). */
static struct authz_agent *
owned(struct gh_arena *a, const struct authz_user *actor, const char *slug, struct gh_err *e)
{
    struct authz_agent *ag = authz_agent_by_slug(a, slug, e);

    return ag && authz_owner_check(a, actor, ag, e) == 0 ? ag : NULL;
}

int
authz_agent_set(const struct authz_user *actor, const char *slug, const char *name, const char *timezone,
                struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct authz_agent *ag = owned(a, actor, slug, e);
    int rc = -1;

    if (ag == NULL || name_check(name, e) < 0 || (timezone && timezone_check(a, timezone, e) < 0))
        goto out;
    if (name && !*name) {
        gh_err_set(e, 400, "invalid_request", "The name must not be empty.", NULL);
        goto out;
    }
    if (!db_query(a, e, "UPDATE agents SET name = coalesce($2, name), timezone = coalesce($3, timezone)"
                        " WHERE id = $1", 3, ag->id, name, timezone))
        goto out;
    authz_credentials_changed("agent settings");
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

int
authz_agent_set_disabled(const struct authz_user *actor, const char *slug, bool disabled, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct authz_agent *ag = owned(a, actor, slug, e);
    int rc = -1;

    if (ag == NULL)
        goto out;
    if (!db_query(a, e, "UPDATE agents SET disabled = $2, disabled_by = CASE WHEN $2 THEN $3::uuid END,"
                        " disabled_at = CASE WHEN $2 THEN now() END WHERE id = $1", 3, ag->id,
                  disabled ? "true" : "false", actor ? actor->id : NULL))
        goto out;
    authz_credentials_changed(disabled ? "agent disabled" : "agent enabled");
    GH_LOG(INFO, disabled ? "agent_disabled" : "agent_enabled", "agent %s by %s", ag->slug,
           actor ? actor->id : "the operator");
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

int
authz_agent_delete(const struct authz_user *actor, const char *slug, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct authz_agent *ag = owned(a, actor, slug, e);
    int rc = -1;

    if (ag == NULL)
        goto out;
    /* /mcp is the default agent's: it stays */
    if (!strcmp(ag->slug, "default")) {
        gh_err_set(e, 409, "conflict", "The default agent cannot be deleted; disable it instead.", NULL);
        goto out;
    }
    /* cascades to its PATs, grants (and their tokens), members, connectors */
    if (!db_query(a, e, "DELETE FROM agents WHERE id = $1", 1, ag->id))
        goto out;
    authz_credentials_changed("agent deleted");
    GH_LOG(INFO, "agent_deleted", "agent %s by %s", ag->slug, actor ? actor->id : "the operator");
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

int
authz_agent_list(FILE *out, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    PGresult *res = db_query(a, e, "SELECT slug, name, untrusted, timezone, disabled FROM agents ORDER BY slug", 0);
    int rc = -1;

    if (res == NULL)
        goto out;
    for (int i = 0; i < PQntuples(res); i++)
        fprintf(out, "%s\t%s\t%s\t%s/agents/%s/mcp\t%s\t%s\n", db_val(res, i, 0), db_val(res, i, 1),
                db_bool(res, i, 2) ? "untrusted" : "trusted", gh_cfg.public_url, db_val(res, i, 0),
                db_val(res, i, 3), db_bool(res, i, 4) ? "disabled" : "enabled");
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}
