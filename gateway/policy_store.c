/*
 * gateway/policy_store.c — policies in the database (migration 070): add,
 * edit (a new immutable version), enable/disable, mode, list, history.
 * Text is parsed and validated against the documented schema before it is
 * saved; the table's trigger announces every change on gw_policies, which
 * every serving process listens to.  The test bench (gw_policy_test) is
 * here too: the CLI and the page share it.
 */
#include "gateway/gw_int.h"
#include "authz/cedar/cedar.h"
#include <pthread.h>
#include <string.h>

/* docs/gatehouse.cedarschema, embedded at build (gateway/embed_schema.cmake). */
extern const char gw_policy_schema_text[];

static pthread_once_t schema_once = PTHREAD_ONCE_INIT;
static cedar_schema  *schema;

static void
schema_load(void)
{
    struct cedar_err ce = {0};

    schema = cedar_schema_parse(gw_policy_schema_text, strlen(gw_policy_schema_text), CEDAR_SCHEMA_TEXT, &ce);
    if (schema == NULL)
        GH_LOG(ERROR, "gw_policy", "the embedded policy schema does not parse: %d:%d: %s", ce.line, ce.col, ce.msg);
}

static int
problem(struct gh_arena *a, struct gw_policy_problem **v, int *n, int line, int col, const char *msg)
{
    struct gw_policy_problem *nv = gh_arena_alloc(a, (size_t)(*n + 1) * sizeof *nv);

    if (nv == NULL)
        return -1;
    if (*n)
        memcpy(nv, *v, (size_t)*n * sizeof *nv);
    nv[*n] = (struct gw_policy_problem){ line, col, gh_arena_strdup(a, msg) };
    *v = nv;
    (*n)++;
    return 0;
}

/* The schema errors of ps (context.args is an open record, see
 * CEDAR_VALIDATE_OPEN_EMPTY_RECORDS); warnings are not refused. */
static int
validate(struct gh_arena *a, cedar_policy_set *ps, struct gw_policy_problem **v, int *n, struct gh_err *e)
{
    struct cedar_validation res;
    struct cedar_err ce = {0};
    cedar_arena *ca;
    int rc = 0;

    pthread_once(&schema_once, schema_load);
    if (schema == NULL)
        return gh_err_set(e, 500, "server_error", "Policies cannot be validated.", "embedded schema");
    if ((ca = cedar_arena_new(0)) == NULL)
        return gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", NULL);
    if (cedar_validate(schema, ps, CEDAR_VALIDATE_OPEN_EMPTY_RECORDS, ca, &res, &ce) < 0)
        rc = gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", "validate: %s", ce.msg);
    for (size_t i = 0; rc == 0 && i < res.n_errors; i++)
        if (problem(a, v, n, res.errors[i].line, res.errors[i].col, res.errors[i].msg) < 0)
            rc = gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", NULL);
    cedar_arena_free(ca);
    return rc;
}

/* e's message: the problems as "line:col: what", as many as fit. */
static int
problems_err(const struct gw_policy_problem *v, int n, struct gh_err *e)
{
    char msg[sizeof e->msg];
    size_t len = 0;

    msg[0] = '\0';
    for (int i = 0; i < n && len < sizeof msg; i++) {
        int k = snprintf(msg + len, sizeof msg - len, "%s%d:%d: %s", i ? "; " : "", v[i].line, v[i].col, v[i].msg);
        len += k > 0 ? (size_t)k : 0;
    }
    return gh_err_set(e, 400, "invalid_request", msg, NULL);
}

/* The parser's message without the "line:col: " it starts with: the
 * position is the problem's own. */
static const char *
parse_msg(const struct cedar_err *ce)
{
    char at[32];
    int n = snprintf(at, sizeof at, "%d:%d: ", ce->line, ce->col);

    return n > 0 && !strncmp(ce->msg, at, (size_t)n) ? ce->msg + n : ce->msg;
}

int
gw_policy_check_text(struct gh_arena *a, const char *text, struct gw_policy_problem **out, int *nout,
                     struct gh_err *e)
{
    struct gw_policy_problem *v = NULL;
    struct cedar_err ce = {0};
    cedar_policy_set *ps;
    int n = 0, rc;

    if (out)
        *out = NULL, *nout = 0;
    if (text == NULL || text[0] == '\0')
        return gh_err_set(e, 400, "invalid_request", "The policy text is empty.", NULL);
    if (strlen(text) > GW_POLICY_TEXT_MAX)
        return gh_err_set(e, 400, "invalid_request", "The policy text is over 65536 bytes.", NULL);
    if ((ps = cedar_policy_set_new()) == NULL)
        return gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", NULL);
    rc = cedar_policy_set_parse(ps, text, strlen(text), NULL, &ce);
    if (rc == 0 && cedar_policy_set_count(ps) == 0)
        rc = gh_err_set(e, 400, "invalid_request", "The text holds no policy.", NULL);
    else if (rc < 0)
        rc = problem(a, &v, &n, ce.line, ce.col, parse_msg(&ce)) < 0
                 ? gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", NULL) : 0;
    else
        rc = validate(a, ps, &v, &n, e);
    cedar_policy_set_free(ps);
    if (rc == 0 && n > 0)
        rc = problems_err(v, n, e);
    if (out)
        *out = v, *nout = n;
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
    "SELECT p.id, p.name, p.mode, p.enabled, v.version, v.text, v.created_by,"
    "       to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
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

    if (gw_policy_check_text(a, text, NULL, NULL, e) < 0 || owner_of(a, agent, member, &agent_id, &member_id, e) < 0)
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

    if (gw_policy_check_text(a, text, NULL, NULL, e) < 0 || (c = db_get(e)) == NULL)
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

int
gw_policy_get(struct gh_arena *a, const char *agent, const char *id, struct gw_policy *out, struct gh_err *e)
{
    struct authz_agent *ag;
    char *sql;
    PGresult *res;

    if (id == NULL || !gh_uuid_ok(id))
        return gh_err_set(e, 404, "not_found", "No such policy.", NULL);
    if ((ag = authz_agent_by_slug(a, agent, e)) == NULL)
        return -1;
    sql = gh_arena_printf(a, "%s AND v.version = p.version WHERE p.agent_id = $1 AND p.id = $2::uuid", SELECT_POLICY);
    if (sql == NULL || (res = db_query(a, e, sql, 2, ag->id, id)) == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 404, "not_found", "No such policy of this agent.", NULL);
    row_policy(a, res, 0, out);
    return 0;
}

/* ---------------------------------------------------------------- test bench */

/* The credential the member would call with. */
static struct authz_credential *
bench_caller(struct gh_arena *a, const char *agent, const char *email, struct gh_err *e)
{
    struct authz_credential *w = gh_arena_alloc(a, sizeof *w);
    struct authz_agent *ag = authz_agent_by_slug(a, agent, e);
    PGresult *res;

    if (w == NULL || ag == NULL)
        return NULL;
    res = db_query(a, e, "SELECT m.user_id, u.email FROM agent_members m JOIN users u ON u.id = m.user_id"
                         " WHERE m.agent_id = $1 AND lower(u.email) = lower($2) AND m.state = 'approved'",
                   2, ag->id, email ? email : "");
    if (res == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 404, "not_found", "No approved member of this agent with that email.", NULL);
        return NULL;
    }
    w->agent = *ag;
    w->kind = "pat";
    w->user_id = gh_arena_strdup(a, db_val(res, 0, 0));
    w->user_email = gh_arena_strdup(a, db_val(res, 0, 1));
    w->client_name = "policy test";
    return w;
}

/* A JSON object from text (NULL or blank: none), else a 400 saying what. */
static int
json_object_arg(struct gh_arena *a, const char *text, const char *what, json_t **out, struct gh_err *e)
{
    json_error_t je;

    *out = NULL;
    if (text == NULL || text[strspn(text, " \t\r\n")] == '\0')
        return 0;
    *out = gh_arena_json(a, json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je));
    if (json_is_object(*out))
        return 0;
    return gh_err_set(e, 400, "invalid_request", gh_arena_printf(a, "%s must be a JSON object%s%s.", what,
                      *out ? "" : ": ", *out ? "" : je.text), NULL);
}

int
gw_policy_test(struct gh_arena *a, const struct gw_policy_test_in *in, struct gw_decision *out, struct gh_err *e)
{
    struct gw_policy_call call = { .render = true };
    const char *slash = in->tool ? strchr(in->tool, '/') : NULL;
    struct gh_err te = {0};

    if (slash == NULL || slash == in->tool || slash[1] == '\0' || strchr(slash + 1, '/'))
        return gh_err_set(e, 400, "invalid_request", "The tool is CONNECTOR/TOOL.", NULL);
    call.connector = gh_arena_strndup(a, in->tool, (size_t)(slash - in->tool));
    call.tool = slash + 1;
    if (json_object_arg(a, in->args, "The arguments", &call.arguments, e) < 0 ||
        json_object_arg(a, in->annotations, "The annotations", &call.annotations, e) < 0)
        return -1;
    if (in->at && in->at[strspn(in->at, " ")]) {
        /* PostgreSQL reads it below: a bad one is the author's mistake, not a 500 */
        if (!db_query(a, &te, "SELECT $1::timestamptz", 1, in->at))
            return gh_err_set(e, 400, "invalid_request",
                              "The time is not a timestamp (YYYY-MM-DD HH:MM[:SS], optionally with a zone).", NULL);
        call.at = in->at;
    }
    if ((call.who = bench_caller(a, in->agent, in->email, e)) == NULL)
        return -1;
    return gw_policy_decide(a, &call, out, e);
}
