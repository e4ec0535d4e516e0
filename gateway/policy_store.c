/*
 * gateway/policy_store.c — policies in the database (migration 070): add,
 * edit (a new immutable version), enable/disable, mode, list, history.
 * Text is parsed before it is saved; the table's trigger announces every
 * change on gw_policies, which every serving process listens to.
 */
#include "gateway/gw_int.h"
#include "authz/cedar/cedar.h"
#include <string.h>

int
gw_policy_check_text(const char *text, struct gh_err *e)
{
    struct cedar_err ce = {0};
    cedar_policy_set *ps;
    int rc;

    if (text == NULL || text[0] == '\0')
        return gh_err_set(e, 400, "invalid_request", "The policy text is empty.", NULL);
    if (strlen(text) > GW_POLICY_TEXT_MAX)
        return gh_err_set(e, 400, "invalid_request", "The policy text is over 65536 bytes.", NULL);
    if ((ps = cedar_policy_set_new()) == NULL)
        return gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", NULL);
    rc = cedar_policy_set_parse(ps, text, strlen(text), NULL, &ce);
    if (rc == 0 && cedar_policy_set_count(ps) == 0)
        rc = gh_err_set(e, 400, "invalid_request", "The text holds no policy.", NULL);
    else if (rc < 0) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%d:%d: %s", ce.line, ce.col, ce.msg);
        rc = gh_err_set(e, 400, "invalid_request", msg, NULL);
    }
    cedar_policy_set_free(ps);
    return rc;
}

/* The agent's id and the member's row id (NULL on a trusted agent).  A
 * member is required on an untrusted agent and refused on a trusted one,
 * and must be a member of this agent. */
static int
owner_of(struct gh_arena *a, const char *agent, const char *member, const char **agent_id, const char **member_id,
         struct gh_err *e)
{
    struct authz_agent *ag = authz_agent_by_slug(a, agent, e);
    PGresult *res;

    if (ag == NULL)
        return -1;
    *agent_id = ag->id;
    *member_id = NULL;
    if (!ag->untrusted && member)
        return gh_err_set(e, 400, "invalid_request",
                          "This agent is trusted: its policies are agent-wide (leave out --member).", NULL);
    if (ag->untrusted && member == NULL)
        return gh_err_set(e, 400, "invalid_request",
                          "This agent is untrusted: a policy belongs to one member (--member EMAIL).", NULL);
    if (member == NULL)
        return 0;
    res = db_query(a, e, "SELECT id FROM agent_members WHERE agent_id = $1 AND lower(email) = lower($2)"
                         " AND state <> 'removed'", 2, ag->id, member);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 404, "not_found", "No such member of this agent.", NULL);
    *member_id = db_val(res, 0, 0);
    return 0;
}

static const char SELECT_POLICY[] =
    "SELECT p.id, p.name, p.mode, p.enabled, v.version, v.text, v.created_by, v.created_at::text,"
    "       (SELECT email FROM agent_members WHERE id = p.member_id)"
    "  FROM policies p JOIN policy_versions v ON v.policy_id = p.id ";

static void
row_policy(struct gh_arena *a, PGresult *res, int i, struct gw_policy *p)
{
    p->id = gh_arena_strdup(a, db_val(res, i, 0));
    p->name = gh_arena_strdup(a, db_val(res, i, 1));
    p->mode = gh_arena_strdup(a, db_val(res, i, 2));
    p->enabled = db_bool(res, i, 3);
    p->version = (int)db_ll(res, i, 4, 0);
    p->text = gh_arena_strdup(a, db_val(res, i, 5));
    p->created_by = gh_arena_strdup(a, db_val(res, i, 6));
    p->created_at = gh_arena_strdup(a, db_val(res, i, 7));
    p->member = db_val(res, i, 8) ? gh_arena_strdup(a, db_val(res, i, 8)) : NULL;
}

int
gw_policy_add(struct gh_arena *a, const char *agent, const char *member, const char *name, const char *text,
              const char *actor, struct gw_policy *out, struct gh_err *e)
{
    static const char sql[] =
        "WITH p AS (INSERT INTO policies (agent_id, member_id, name) VALUES ($1, $2, $3) RETURNING id)"
        " INSERT INTO policy_versions (policy_id, version, text, created_by)"
        " SELECT id, 1, $4, $5 FROM p RETURNING policy_id";
    const char *agent_id, *member_id;
    PGresult *res;

    if (gw_policy_check_text(text, e) < 0 || owner_of(a, agent, member, &agent_id, &member_id, e) < 0)
        return -1;
    res = db_query(a, e, sql, 5, agent_id, member_id, name, text, actor);
    if (res == NULL) {
        /* the check constraint's name starts like the unique index's;
         * either replaces the generic error (the first one set wins) */
        bool bad_name = strstr(e->detail, "policies_name_check") != NULL;
        bool taken = !bad_name && strstr(e->detail, "policies_name") != NULL;
        if (bad_name || taken)
            gh_err_clear(e);
        if (bad_name)
            return gh_err_set(e, 400, "invalid_request",
                              "A policy name is 1 to 64 letters, digits, '.', '_' or '-'.", NULL);
        if (taken)
            return gh_err_set(e, 409, "conflict", "A policy of that name exists: edit it (policy set).", NULL);
        return -1;
    }
    out->id = gh_arena_strdup(a, db_val(res, 0, 0));
    out->version = 1;
    return 0;
}

/* The policy row's id, locked for an edit inside the caller's transaction. */
static const char *
find(struct gh_arena *a, struct db_conn *c, const char *agent, const char *member, const char *name,
     struct gh_err *e)
{
    const char *agent_id, *member_id;
    PGresult *res;

    if (owner_of(a, agent, member, &agent_id, &member_id, e) < 0)
        return NULL;
    res = db_exec(c, a, e, "SELECT id FROM policies WHERE agent_id = $1 AND member_id IS NOT DISTINCT FROM $2::uuid"
                           " AND name = $3 FOR UPDATE", 3, agent_id, member_id, name);
    if (res == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 404, "not_found", "No policy of that name.", NULL);
        return NULL;
    }
    return gh_arena_strdup(a, db_val(res, 0, 0));
}

int
gw_policy_set_text(struct gh_arena *a, const char *agent, const char *member, const char *name, const char *text,
                   const char *actor, struct gw_policy *out, struct gh_err *e)
{
    struct db_conn *c = NULL;
    const char *id;
    PGresult *res;
    int rc = -1;

    if (gw_policy_check_text(text, e) < 0 || (c = db_get(e)) == NULL)
        return -1;
    if (db_begin(c, e) < 0)
        goto out;
    if ((id = find(a, c, agent, member, name, e)) == NULL)
        goto rollback;
    res = db_exec(c, a, e, "UPDATE policies SET version = version + 1, updated_at = now() WHERE id = $1"
                           " RETURNING version", 1, id);
    if (res == NULL || !db_exec(c, a, e, "INSERT INTO policy_versions (policy_id, version, text, created_by)"
                                         " VALUES ($1, $2, $3, $4)", 4, id, db_val(res, 0, 0), text, actor))
        goto rollback;
    out->id = (char *)id;
    out->version = (int)db_ll(res, 0, 0, 0);
    rc = db_commit(c, e);
    goto out;
rollback:
    db_rollback(c);
out:
    db_put(c);
    return rc;
}

static int
update(struct gh_arena *a, const char *agent, const char *member, const char *name, const char *sql,
       const char *value, struct gh_err *e)
{
    struct db_conn *c = db_get(e);
    const char *id;
    int rc = -1;

    if (c == NULL)
        return -1;
    if (db_begin(c, e) < 0)
        goto out;
    if ((id = find(a, c, agent, member, name, e)) == NULL || !db_exec(c, a, e, sql, 2, id, value)) {
        db_rollback(c);
        goto out;
    }
    rc = db_commit(c, e);
out:
    db_put(c);
    return rc;
}

int
gw_policy_set_enabled(struct gh_arena *a, const char *agent, const char *member, const char *name, bool enabled,
                      struct gh_err *e)
{
    return update(a, agent, member, name, "UPDATE policies SET enabled = $2::boolean, updated_at = now() WHERE id = $1",
                  enabled ? "true" : "false", e);
}

int
gw_policy_set_mode(struct gh_arena *a, const char *agent, const char *member, const char *name, const char *mode,
                   struct gh_err *e)
{
    if (mode == NULL || (strcmp(mode, "enforce") && strcmp(mode, "shadow")))
        return gh_err_set(e, 400, "invalid_request", "The mode is enforce or shadow.", NULL);
    return update(a, agent, member, name, "UPDATE policies SET mode = $2, updated_at = now() WHERE id = $1", mode, e);
}

static int
rows(struct gh_arena *a, PGresult *res, struct gw_policy **out, int *n, struct gh_err *e)
{
    *n = PQntuples(res);
    *out = gh_arena_alloc(a, (size_t)(*n ? *n : 1) * sizeof **out);
    if (*out == NULL)
        return gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", NULL);
    for (int i = 0; i < *n; i++)
        row_policy(a, res, i, &(*out)[i]);
    return 0;
}

int
gw_policy_list(struct gh_arena *a, const char *agent, const char *member, struct gw_policy **out, int *n,
               struct gh_err *e)
{
    struct authz_agent *ag = authz_agent_by_slug(a, agent, e);
    char *sql = gh_arena_printf(a, "%s AND v.version = p.version WHERE p.agent_id = $1 AND ($2::text IS NULL OR"
                                " p.member_id = (SELECT id FROM agent_members WHERE agent_id = $1 AND"
                                " lower(email) = lower($2))) ORDER BY p.created_at, p.id", SELECT_POLICY);
    PGresult *res;

    if (ag == NULL || sql == NULL)
        return -1;
    res = db_query(a, e, sql, 2, ag->id, member);
    return res ? rows(a, res, out, n, e) : -1;
}

int
gw_policy_history(struct gh_arena *a, const char *agent, const char *member, const char *name, struct gw_policy **out,
                  int *n, struct gh_err *e)
{
    const char *agent_id, *member_id;
    char *sql = gh_arena_printf(a, "%s WHERE p.agent_id = $1 AND p.member_id IS NOT DISTINCT FROM $2::uuid"
                                " AND p.name = $3 ORDER BY v.version", SELECT_POLICY);
    PGresult *res;

    if (sql == NULL || owner_of(a, agent, member, &agent_id, &member_id, e) < 0)
        return -1;
    res = db_query(a, e, sql, 3, agent_id, member_id, name);
    if (res == NULL || rows(a, res, out, n, e) < 0)
        return -1;
    return *n ? 0 : gh_err_set(e, 404, "not_found", "No policy of that name.", NULL);
}
