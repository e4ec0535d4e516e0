/*
 * authz/invite.c — the invite landing page, /invite?token=… (DESIGN.md 2).
 *
 * The link is single-use, bound to one email, valid 7 days, revocable, and
 * only its SHA-256 is stored (authz_member_invite, members.c).  Whoever
 * follows it signs in with that email, or creates the account with it when
 * none has it; signed in as someone else, they read whom it is for.
 * Accepting makes them pending, or approved when the owner chose so.
 */
#include "authz/authz_int.h"
#include <string.h>
#include <strings.h>

struct invite {
    char *email, *agent_name, *agent_slug;
    bool  has_account;
};

static int
page(struct web_req *r, struct authz_user *u, int status, const char *title, const char *html)
{
    struct gh_arena *a = web_arena(r);
    char *body = gh_arena_printf(a, "<div class=\"card narrow\"><h1>%s</h1>%s</div>", gh_html_escape(a, title), html);

    return web_reply_html(r, status, authz_page(r, u, title, body));
}

/* 0 with *iv when token names an invite that may be accepted now; else
 * the refusal page has been sent (1) or e is a server error (-1). */
static int
invite_lookup(struct web_req *r, const char *token, struct invite *iv, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u = authz_session_user(r);
    PGresult *res;
    char hash[65];

    if (token == NULL || strlen(token) != 64 || strspn(token, "0123456789abcdef") != 64)
        goto forged;
    gh_sha256_hex(token, hash);
    res = db_query(a, e,
        "SELECT m.email, m.state, m.accepted_at IS NOT NULL, m.invite_expires_at < now(), ag.name, ag.slug,"
        "       EXISTS (SELECT 1 FROM users x WHERE lower(x.email) = lower(m.email))"
        "  FROM agent_members m JOIN agents ag ON ag.id = m.agent_id WHERE m.invite_hash = $1", 1, hash);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        goto forged;
    if (strcmp(db_val(res, 0, 1), "invited"))
        return page(r, u, 410, "Invite no longer valid", db_bool(res, 0, 2)
            ? "<p>This invite has already been used. Each invite link works once.</p>"
            : "<p>This invite was withdrawn by the agent's owner. Ask them for a new one.</p>"), 1;
    if (db_bool(res, 0, 3))
        return page(r, u, 410, "Invite expired",
                    "<p>This invite has expired (invites are valid 7 days). Ask the agent's owner for a new one.</p>"), 1;
    iv->email = gh_arena_strdup(a, db_val(res, 0, 0));
    iv->agent_name = gh_arena_strdup(a, db_val(res, 0, 4));
    iv->agent_slug = gh_arena_strdup(a, db_val(res, 0, 5));
    iv->has_account = db_bool(res, 0, 6);
    return 0;
forged:
    return page(r, u, 404, "Invite not found",
                "<p>This invite link is not valid. Check that you copied all of it.</p>"), 1;
}

static bool
same_email(const char *x, const char *y)
{
    return !strcasecmp(x, y);
}

static int
wrong_account(struct web_req *r, struct authz_user *u, const struct invite *iv)
{
    struct gh_arena *a = web_arena(r);

    return page(r, u, 403, "This invite is for someone else", gh_arena_printf(a,
        "<p>This invite to the agent <strong>%s</strong> is for <strong id=\"invite-email\">%s</strong>, "
        "but you are signed in as <strong>%s</strong>.</p>"
        "<p>Sign out, then follow the link again and sign in as %s.</p>"
        "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<div class=\"actions\"><button type=\"submit\">Sign out</button></div></form>",
        gh_html_escape(a, iv->agent_name), gh_html_escape(a, iv->email), gh_html_escape(a, u->email),
        gh_html_escape(a, iv->email), web_csrf_token(r)));
}

static int
invite_form(struct web_req *r, struct authz_user *u, const char *token, const struct invite *iv, int status,
            const char *error)
{
    struct gh_arena *a = web_arena(r);
    const char *err = error ? gh_arena_printf(a, "<p class=\"error\" role=\"alert\">%s</p>", gh_html_escape(a, error)) : "";
    const char *login = gh_arena_printf(a, "/login?next=%s",
                                        gh_url_encode(a, gh_arena_printf(a, "/invite?token=%s", token)));

    if (u == NULL && iv->has_account)
        return page(r, NULL, 200, "Sign in to accept", gh_arena_printf(a,
            "<p>You are invited to the agent <strong>%s</strong> as <strong id=\"invite-email\">%s</strong>.</p>"
            "<p>Sign in with that email to accept.</p>"
            "<div class=\"actions\"><a class=\"button\" id=\"signin\" href=\"%s\">Sign in</a></div>",
            gh_html_escape(a, iv->agent_name), gh_html_escape(a, iv->email), gh_html_escape(a, login)));
    return page(r, u, status, "Accept the invite", gh_arena_printf(a,
        "<p>You are invited to the agent <strong>%s</strong> as <strong id=\"invite-email\">%s</strong>.</p>%s"
        "<form method=\"post\" action=\"/invite\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"token\" value=\"%s\">%s"
        "<div class=\"actions\"><button type=\"submit\">%s</button></div></form>",
        gh_html_escape(a, iv->agent_name), gh_html_escape(a, iv->email), err, web_csrf_token(r), token,
        u ? "" : "<p>No account has this email yet: choose a password to create it.</p>"
                 "<label for=\"password\">Password (at least 8 characters)</label>"
                 "<input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"new-password\" required>",
        u ? "Accept the invite" : "Create account and accept"));
}

static int
get_invite(struct web_req *r)
{
    const char *token = web_query(r, "token");
    struct authz_user *u = authz_session_user(r);
    struct invite iv = {0};
    struct gh_err e = {0};
    int rc = invite_lookup(r, token, &iv, &e);

    if (rc)
        return rc < 0 ? web_reply_err(r, &e) : 0;
    if (u && !same_email(u->email, iv.email))
        return wrong_account(r, u, &iv);
    return invite_form(r, u, token, &iv, 200, NULL);
}

/* Claims the invite for user_id: one statement, so a reused link loses. */
static int
accept(struct web_req *r, struct authz_user *u, const char *token, const struct invite *iv)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    char hash[65];
    PGresult *res;
    bool approved;

    gh_sha256_hex(token, hash);
    res = db_query(a, &e,
        "UPDATE agent_members SET user_id = $2, accepted_at = now(), updated_at = now(),"
        "       state = CASE WHEN approve_on_accept THEN 'approved' ELSE 'pending' END,"
        "       decided_at = CASE WHEN approve_on_accept THEN now() END,"
        "       decided_by = CASE WHEN approve_on_accept THEN invited_by END"
        " WHERE invite_hash = $1 AND state = 'invited' AND invite_expires_at > now()"
        "   AND lower(email) = lower($3) RETURNING state", 3, hash, u->id, u->email);
    if (res == NULL)
        return web_reply_err(r, &e);
    if (PQntuples(res) == 0)
        return page(r, u, 410, "Invite no longer valid", "<p>This invite has already been used.</p>");
    approved = !strcmp(db_val(res, 0, 0), "approved");
    GH_LOG(INFO, "invite_accepted", "user %s accepted an invite to agent %s (%s)", u->id, iv->agent_slug,
           approved ? "approved" : "pending");
    return page(r, u, 200, approved ? "Welcome" : "Waiting for approval", gh_arena_printf(a,
        "<p id=\"invite-result\">%s <strong>%s</strong>%s</p><p><a href=\"/agents\">Your agents</a></p>",
        approved ? "You are now a member of the agent" : "Your request to use the agent",
        gh_html_escape(a, iv->agent_name), approved ? "." : " waits for an owner's approval."));
}

static int
post_invite(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *token = web_form(r, "token"), *password;
    struct authz_user *u = authz_session_user(r);
    struct invite iv = {0};
    struct gh_err e = {0};
    size_t plen = 0;
    int rc = invite_lookup(r, token, &iv, &e);

    if (rc)
        return rc < 0 ? web_reply_err(r, &e) : 0;
    if (u)
        return same_email(u->email, iv.email) ? accept(r, u, token, &iv) : wrong_account(r, u, &iv);
    if (iv.has_account)
        return invite_form(r, NULL, token, &iv, 200, NULL);
    password = web_form_n(r, "password", &plen);
    if (password == NULL || strlen(password) != plen)
        return invite_form(r, NULL, token, &iv, 400, "Choose a password.");
    if (authz_user_add(iv.email, password, false, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : invite_form(r, NULL, token, &iv, e.status, e.msg);
    if (authz_user_login(a, iv.email, password, web_client_ip(r), NULL, &u, &e) < 0 ||
        authz_session_create(r, u->id, &e) < 0)
        return web_reply_err(r, &e);
    authz_vault_signin(r, u->id, password);
    GH_LOG(INFO, "invite_account", "account %s created through an invite", u->id);
    return accept(r, u, token, &iv);
}

int
authz_invite_routes(void)
{
    web_route("GET", "/invite", WEB_PAGE, get_invite);
    web_route("POST", "/invite", WEB_PAGE, post_invite);
    return 0;
}
