/*
 * authz/members.c — who may use an agent (DESIGN.md 2).
 *
 * One agent_members row per (agent, person), migration 040: invited ->
 * pending -> approved | rejected, and removed; role owner or member.
 * Admins act as owners of every agent without a row.  Each transition is
 * one statement, so a member's state and the revocation of what they hold
 * commit together; the row trigger then makes every process flush its
 * credential cache, and the gateway ends the streams that fell.
 */
#include "authz/authz_int.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INVITE_DAYS "7"

bool
authz_email_ok(const char *email)
{
    size_t n = email ? strlen(email) : 0;
    const char *at = n ? strchr(email, '@') : NULL;

    if (n < 3 || n > 254 || at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@'))
        return false;
    for (const unsigned char *p = (const unsigned char *)email; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == '"')
            return false;
    return gh_text_ok(email, n);
}

int
authz_member_ok(struct gh_arena *a, const char *user_id, const char *agent_id, struct gh_err *e)
{
    PGresult *res = db_query(a, e, "SELECT " AUTHZ_SQL_MEMBER("u", "ag")
                                   "  FROM users u, agents ag WHERE u.id = $1 AND ag.id = $2", 2, user_id, agent_id);

    if (res == NULL)
        return -1;
    return PQntuples(res) == 1 && db_bool(res, 0, 0) ? 1 : 0;
}

int
authz_owner_check(struct gh_arena *a, const struct authz_user *actor, const struct authz_agent *ag,
                  struct gh_err *e)
{
    PGresult *res;

    if (actor == NULL || !strcmp(actor->role, "admin"))
        return 0;
    res = db_query(a, e, "SELECT 1 FROM agent_members WHERE agent_id = $1 AND user_id = $2"
                         " AND state = 'approved' AND role = 'owner'", 2, ag->id, actor->id);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 403, "forbidden", "Only an owner of this agent may do that.", NULL);
    return 0;
}

bool
authz_user_owns_any_agent(const char *user_id)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    PGresult *res;
    bool owns = false;

    if (a == NULL || !gh_uuid_ok(user_id))
        goto out;
    res = db_query(a, &e, "SELECT u.role = 'admin' OR EXISTS (SELECT 1 FROM agent_members m"
                          "  WHERE m.user_id = u.id AND m.state = 'approved' AND m.role = 'owner')"
                          "  FROM users u WHERE u.id = $1", 1, user_id);
    owns = res && PQntuples(res) == 1 && db_bool(res, 0, 0);
out:
    gh_arena_free(a);
    return owns;
}

/* The agent of slug, when actor may administer it; NULL with e set. */
static struct authz_agent *
owned_agent(struct gh_arena *a, const struct authz_user *actor, const char *slug, struct gh_err *e)
{
    struct authz_agent *ag = authz_agent_by_slug(a, slug, e);

    if (ag == NULL || authz_owner_check(a, actor, ag, e) < 0)
        return NULL;
    return ag;
}

/* ---------------------------------------------------------------- invites */

static const char SQL_INVITE[] =
    "INSERT INTO agent_members (agent_id, email, state, approve_on_accept, invite_hash, invite_expires_at,"
    "                           invited_by, invited_at)"
    " VALUES ($1, $2, 'invited', $3, $4, now() + interval '" INVITE_DAYS " days', $5, now())"
    " ON CONFLICT (agent_id, (lower(email))) DO UPDATE SET state = 'invited', role = 'member',"
    "   approve_on_accept = EXCLUDED.approve_on_accept, invite_hash = EXCLUDED.invite_hash,"
    "   invite_expires_at = EXCLUDED.invite_expires_at, invited_by = EXCLUDED.invited_by,"
    "   invited_at = now(), accepted_at = NULL, updated_at = now()"
    " WHERE agent_members.state IN ('invited', 'rejected', 'removed') RETURNING 1";

static void
invite_mail(struct gh_arena *a, const struct authz_agent *ag, const char *email, const char *link, bool *mailed)
{
    struct gh_err e = {0};
    char *body = gh_arena_printf(a,
        "You are invited to use the agent \"%s\" on Gatehouse.\n\n"
        "Open this link within 7 days to accept (it works once, for %s only):\n\n  %s\n",
        ag->name, email, link);

    *mailed = false;
    if (!authz_mail_enabled() || body == NULL)
        return;
    if (authz_mail_send(email, gh_arena_printf(a, "Invitation to the agent %s", ag->name), body, &e) < 0)
        GH_LOG(WARN, "invite_mail", "invite mail to a member of %s not sent: %s", ag->slug,
               e.detail[0] ? e.detail : e.msg);
    else
        *mailed = true;
    gh_wipe(body, strlen(body));
}

int
authz_member_invite(const struct authz_user *actor, const char *slug, const char *email,
                    bool approve_on_accept, char **link, bool *mailed, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct authz_agent *ag;
    PGresult *res;
    char *token = NULL, *url = NULL, hash[65];
    int rc = -1;

    *link = NULL;
    *mailed = false;
    if (!authz_email_ok(email)) {
        gh_err_set(e, 400, "invalid_request", "Enter a valid email address.", NULL);
        goto out;
    }
    if ((ag = owned_agent(a, actor, slug, e)) == NULL)
        goto out;
    if ((token = gh_token_hex(a, "", 32)) == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "no entropy");
        goto out;
    }
    gh_sha256_hex(token, hash);
    res = db_query(a, e, SQL_INVITE, 5, ag->id, email, approve_on_accept ? "true" : "false", hash,
                   actor ? actor->id : NULL);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 409, "conflict", "This person is already a member of the agent, or waiting for approval.",
                   NULL);
        goto out;
    }
    url = gh_arena_printf(a, "%s/invite?token=%s", gh_cfg.public_url, token);
    invite_mail(a, ag, email, url, mailed);
    *link = strdup(url);
    GH_LOG(INFO, "member_invited", "agent %s: invite by %s", ag->slug, actor ? actor->id : "the operator");
    rc = *link ? 0 : -1;
out:
    if (token)
        gh_wipe(token, strlen(token));
    if (url)
        gh_wipe(url, strlen(url));
    gh_arena_free(a);
    return rc;
}

/* ---------------------------------------------------------------- transitions */

/* One transition: the states it leaves, the state it enters, whether the
 * member's credentials for the agent are revoked, and whether it may not
 * take the last approved owner. */
struct transition {
    const char *action, *from, *to;
    bool revoke, last_owner_guard;
};

static const struct transition TRANSITIONS[] = {
    { "approve", "{pending,rejected,removed}", "approved", false, false },
    { "reject",  "{pending}",                  "rejected", true,  false },
    { "remove",  "{approved,pending}",         "removed",  true,  true  },
    { "leave",   "{approved,pending}",         "removed",  true,  true  },
    { "revoke",  "{invited}",                  "removed",  false, false },
};

/* $1 agent, $2 email, $3 new state, $4 actor, $5 states left, $6 guard,
 * $7 revoke.  The count in the guard is of the statement's snapshot.  An
 * approved row always names its account: an invite withdrawn before use
 * is approved only when an account has its email. */
static const char SQL_TRANSITION[] =
    "WITH m AS ("
    "  UPDATE agent_members SET state = $3, updated_at = now(),"
    "         user_id = coalesce(user_id, (SELECT u.id FROM users u WHERE lower(u.email) = lower($2))),"
    "         role = CASE WHEN $3 = 'approved' THEN role ELSE 'member' END,"
    "         decided_by = CASE WHEN $3 IN ('approved', 'rejected') THEN $4::uuid ELSE decided_by END,"
    "         decided_at = CASE WHEN $3 IN ('approved', 'rejected') THEN now() ELSE decided_at END,"
    "         removed_by = CASE WHEN $3 = 'removed' THEN $4::uuid ELSE removed_by END,"
    "         removed_at = CASE WHEN $3 = 'removed' THEN now() ELSE removed_at END"
    "   WHERE agent_id = $1 AND lower(email) = lower($2) AND state = ANY ($5::text[])"
    "     AND ($3 <> 'approved' OR user_id IS NOT NULL"
    "          OR EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower($2)))"
    "     AND NOT ($6 AND role = 'owner' AND state = 'approved' AND (SELECT count(*) FROM agent_members o"
    "              WHERE o.agent_id = $1 AND o.role = 'owner' AND o.state = 'approved') < 2)"
    "  RETURNING user_id),"
    " p AS (UPDATE pats SET revoked_at = now() FROM m WHERE $7 AND pats.user_id = m.user_id"
    "         AND pats.agent_id = $1 AND pats.revoked_at IS NULL RETURNING 1),"
    " g AS (UPDATE oauth_grants SET revoked_at = now() FROM m WHERE $7 AND oauth_grants.user_id = m.user_id"
    "         AND oauth_grants.agent_id = $1 AND oauth_grants.revoked_at IS NULL RETURNING oauth_grants.id),"
    " t AS (UPDATE oauth_tokens SET revoked_at = now() WHERE grant_id IN (SELECT id FROM g)"
    "         AND revoked_at IS NULL RETURNING 1)"
    " SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM p), (SELECT count(*) FROM g),"
    "        (SELECT count(*) FROM t)";

/* An owner admitting an account that has no row yet (approve). */
static const char SQL_ADMIT[] =
    "INSERT INTO agent_members (agent_id, email, user_id, state, decided_by, decided_at)"
    " SELECT $1, u.email, u.id, 'approved', $3::uuid, now() FROM users u WHERE lower(u.email) = lower($2)"
    " ON CONFLICT DO NOTHING RETURNING 1";

static const char SQL_ROLE[] =
    "UPDATE agent_members SET role = $3, role_by = $4::uuid, role_at = now(), updated_at = now()"
    " WHERE agent_id = $1 AND lower(email) = lower($2) AND state = 'approved'"
    "   AND NOT ($3 = 'member' AND role = 'owner' AND (SELECT count(*) FROM agent_members o"
    "            WHERE o.agent_id = $1 AND o.role = 'owner' AND o.state = 'approved') < 2)"
    " RETURNING 1";

/* Runs sql after locking the agent's row, in one transaction: the
 * last-owner guard counts the owners in the statement's snapshot, and
 * without the lock two owners removed at once would each still see the
 * other.  The result, or NULL with e set. */
static PGresult *
owner_locked(struct gh_arena *a, const char *agent_id, const char *sql, int n, const char *const *params,
             struct gh_err *e)
{
    struct db_conn *c = db_get(e);
    PGresult *res = NULL;

    if (c == NULL || db_begin(c, e) < 0)
        goto out;
    if (!db_exec(c, a, e, "SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", 1, agent_id) ||
        (res = db_execv(c, a, e, sql, n, params)) == NULL || db_commit(c, e) < 0) {
        db_rollback(c);
        res = NULL;
    }
out:
    if (c)
        db_put(c);
    return res;
}

/* Why nothing changed: the row's state names the refusal. */
static int
explain(struct gh_arena *a, const struct authz_agent *ag, const char *email, const char *action, struct gh_err *e)
{
    PGresult *res = db_query(a, e, "SELECT state, role FROM agent_members WHERE agent_id = $1"
                                   " AND lower(email) = lower($2)", 2, ag->id, email);

    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 404, "not_found",
                          gh_arena_printf(a, "%s is not a member of the agent %s.", email, ag->slug), NULL);
    if (!strcmp(db_val(res, 0, 1), "owner") && !strcmp(db_val(res, 0, 0), "approved") &&
        strcmp(action, "approve") && strcmp(action, "owner"))
        return gh_err_set(e, 409, "conflict",
                          "This is the agent's last owner: make someone else an owner first.", NULL);
    return gh_err_set(e, 409, "conflict",
                      gh_arena_printf(a, "%s is %s: it cannot be done (%s).", email, db_val(res, 0, 0), action), NULL);
}

static int
transition(struct gh_arena *a, const struct authz_user *actor, const struct authz_agent *ag, const char *email,
           const struct transition *t, struct gh_err *e)
{
    const char *who = actor ? actor->id : NULL;
    const char *params[] = { ag->id, email, t->to, who, t->from, t->last_owner_guard ? "true" : "false",
                             t->revoke ? "true" : "false" };
    PGresult *res = owner_locked(a, ag->id, SQL_TRANSITION, 7, params, e);

    if (res == NULL)
        return -1;
    if (db_ll(res, 0, 0, 0) == 0) {
        if (!strcmp(t->action, "approve")) {
            if ((res = db_query(a, e, SQL_ADMIT, 3, ag->id, email, who)) == NULL)
                return -1;
            if (PQntuples(res) == 1)
                return 0;
        }
        return explain(a, ag, email, t->action, e);
    }
    if (t->revoke) {
        authz_credentials_changed("member left the agent");
        GH_LOG(INFO, "member_credentials_revoked", "agent %s: %lld PAT(s), %lld grant(s), %lld token(s) revoked",
               ag->slug, db_ll(res, 0, 1, 0), db_ll(res, 0, 2, 0), db_ll(res, 0, 3, 0));
    }
    return 0;
}

int
authz_member_act(const struct authz_user *actor, const char *slug, const char *email, const char *action,
                 struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct authz_agent *ag;
    PGresult *res;
    int rc = -1;

    if (!strcmp(action, "leave")) {
        if (actor == NULL) {
            gh_err_set(e, 400, "invalid_request", "Only a signed-in member can leave an agent.", NULL);
            goto out;
        }
        if ((ag = authz_agent_by_slug(a, slug, e)) == NULL)
            goto out;
        email = actor->email;
    } else if (!authz_email_ok(email)) {
        gh_err_set(e, 400, "invalid_request", "Enter a valid email address.", NULL);
        goto out;
    } else if ((ag = owned_agent(a, actor, slug, e)) == NULL) {
        goto out;
    }
    if (!strcmp(action, "owner") || !strcmp(action, "unowner")) {
        const char *params[] = { ag->id, email, !strcmp(action, "owner") ? "owner" : "member",
                                 actor ? actor->id : NULL };
        res = owner_locked(a, ag->id, SQL_ROLE, 4, params, e);
        if (res == NULL || (PQntuples(res) == 0 && explain(a, ag, email, action, e) < 0))
            goto out;
        rc = 0;
        goto logged;
    }
    for (size_t i = 0; i < GH_ARRAY_LEN(TRANSITIONS); i++)
        if (!strcmp(action, TRANSITIONS[i].action)) {
            if (transition(a, actor, ag, email, &TRANSITIONS[i], e) < 0)
                goto out;
            rc = 0;
            goto logged;
        }
    gh_err_set(e, 400, "invalid_request", "Unknown member action.", NULL);
    goto out;
logged:
    GH_LOG(INFO, "member_changed", "agent %s: %s by %s", ag->slug, action, actor ? actor->id : "the operator");
out:
    gh_arena_free(a);
    return rc;
}

int
authz_member_list(FILE *out, const char *slug, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct authz_agent *ag = authz_agent_by_slug(a, slug, e);
    PGresult *res = NULL;
    int rc = -1;

    if (ag == NULL)
        goto out;
    res = db_query(a, e, "SELECT email, state, role, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
                         "  FROM agent_members WHERE agent_id = $1 ORDER BY state, lower(email)", 1, ag->id);
    if (res == NULL)
        goto out;
    for (int i = 0; i < PQntuples(res); i++)
        fprintf(out, "%s\t%s\t%s\t%s\n", db_val(res, i, 0), db_val(res, i, 1), db_val(res, i, 2), db_val(res, i, 3));
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}
