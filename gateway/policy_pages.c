/*
 * gateway/policy_pages.c — an agent's policies, for its owners and admins.
 *
 *   /agents/{slug}/policies               list; enable, disable, shadow, enforce
 *   /agents/{slug}/policies/new           the editor, a new policy
 *   /agents/{slug}/policies/{id}          the editor, a new version
 *   /agents/{slug}/policies/{id}/history  versions, a diff between any two
 *   /agents/{slug}/policies/test          the test bench
 *
 * Every change goes through policy_store.c (the checks the CLI gets too);
 * a text that does not parse or validate is shown again with its problems
 * at line:col, nothing saved.  Anyone else gets the console's 403 page.
 */
#include "gateway/gw_int.h"
#include <git2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *
esc(struct gh_arena *a, const char *s)
{
    return s ? gh_html_escape(a, s) : "";
}

/* The signed-in owner (or admin) of the agent the path names; NULL when a
 * page has been sent instead. */
static struct authz_agent *
owned_agent(struct web_req *r, struct authz_user **u)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    struct authz_agent *ag;

    if ((*u = authz_require_login(r)) == NULL)
        return NULL;
    if ((ag = authz_agent_by_slug(a, web_path_param(r, 0), &e)) == NULL) {
        if (e.status >= 500)
            web_reply_err(r, &e);
        else
            authz_page_sentence(r, *u, 404, "No such agent", "There is no agent at this address.");
        return NULL;
    }
    if (authz_owner_check(a, *u, ag, &e) < 0) {
        if (e.status >= 500)
            web_reply_err(r, &e);
        else
            authz_page_sentence(r, *u, 403, "Owners only",
                                "Only the owners of this agent and admins manage its policies.");
        return NULL;
    }
    return ag;
}

/* The policy the path names, of this agent; NULL when a page has been sent. */
static struct gw_policy *
path_policy(struct web_req *r, struct authz_user *u, const struct authz_agent *ag, const char *id)
{
    struct gh_arena *a = web_arena(r);
    struct gw_policy *p = gh_arena_alloc(a, sizeof *p);
    struct gh_err e = {0};

    if (p && gw_policy_get(a, ag->slug, id, p, &e) == 0)
        return p;
    if (p == NULL || e.status >= 500)
        web_reply_err(r, &e);
    else
        authz_page_sentence(r, u, 404, "No such policy", "This agent has no policy at this address.");
    return NULL;
}

static const char *
base(struct gh_arena *a, const struct authz_agent *ag)
{
    return gh_arena_printf(a, "/agents/%s/policies", ag->slug);
}

/* ---------------------------------------------------------------- the list */

static char *
act_button(struct web_req *r, const struct authz_agent *ag, const struct gw_policy *p, const char *action,
           const char *label, bool danger)
{
    struct gh_arena *a = web_arena(r);

    return gh_arena_printf(a,
        "<form method=\"post\" action=\"%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<input type=\"hidden\" name=\"id\" value=\"%s\"><button class=\"%s\" type=\"submit\" name=\"action\" "
        "value=\"%s\">%s</button></form> ",
        base(a, ag), web_csrf_token(r), p->id, danger ? "danger" : "secondary", action, label);
}

static char *
policy_row(struct web_req *r, const struct authz_agent *ag, const struct gw_policy *p)
{
    struct gh_arena *a = web_arena(r);
    const char *b = base(a, ag);

    return gh_arena_printf(a,
        "<tr data-policy=\"%s\"><td><a href=\"%s/%s\">%s</a></td>%s<td class=\"mode\">%s</td><td class=\"state\">%s</td>"
        "<td class=\"version\">%d</td><td>%s<br><span class=\"muted\">%s</span></td><td class=\"actions\">%s%s"
        "<a href=\"%s/%s/history\">History</a></td></tr>",
        esc(a, p->name), b, p->id, esc(a, p->name),
        ag->untrusted ? gh_arena_printf(a, "<td class=\"member\">%s</td>", esc(a, p->member)) : "",
        p->mode, p->enabled ? "enabled" : "disabled", p->version, esc(a, p->created_by), esc(a, p->created_at),
        p->enabled ? act_button(r, ag, p, "disable", "Disable", true) : act_button(r, ag, p, "enable", "Enable", false),
        strcmp(p->mode, "shadow") ? act_button(r, ag, p, "shadow", "Shadow", false)
                                  : act_button(r, ag, p, "enforce", "Enforce", false),
        b, p->id);
}

static int
list_page(struct web_req *r, struct authz_user *u, const struct authz_agent *ag, int status, const char *error)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    struct gw_policy *p;
    char *rows;
    int n;

    if (gw_policy_list(a, ag->slug, NULL, &p, &n, &e) < 0)
        return web_reply_err(r, &e);
    rows = gh_arena_strdup(a, "");
    for (int i = 0; i < n && rows; i++)
        rows = gh_arena_printf(a, "%s%s", rows, policy_row(r, ag, &p[i]));
    return web_reply_html(r, status, authz_page(r, u, "Policies", gh_arena_printf(a,
        "<div class=\"card\"><h1>Policies of %s</h1>%s<p class=\"muted\">%s Every call is decided by the enabled, "
        "enforced policies; shadow policies are evaluated and recorded, never deciding. A change applies on the "
        "next call.</p><p><a id=\"new-policy\" href=\"%s/new\">New policy</a> · <a id=\"test-bench\" href=\"%s/test\">"
        "Test bench</a> · <a href=\"/agents/%s/members\">Members</a></p>"
        "<table><thead><tr><th>Name</th>%s<th>Mode</th><th>State</th><th>Version</th><th>Last edit (UTC)</th><th></th>"
        "</tr></thead><tbody>%s</tbody></table>%s</div>",
        esc(a, ag->name), authz_page_error_box(a, error),
        ag->untrusted ? "This agent is untrusted: each policy belongs to one member, and a member without one is "
                        "denied everything."
                      : "This agent is trusted: its policies apply to every member.",
        base(a, ag), base(a, ag), ag->slug, ag->untrusted ? "<th>Member</th>" : "", rows,
        n ? "" : "<p id=\"no-policies\" class=\"muted\">No policies yet.</p>")));
}

static int
get_list(struct web_req *r)
{
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);

    return ag ? list_page(r, u, ag, 200, NULL) : 0;
}

static int
post_list(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *action = web_form(r, "action");
    struct gh_err e = {0};
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct gw_policy p;
    int rc;

    if (ag == NULL)
        return 0;
    if (gw_policy_get(a, ag->slug, web_form(r, "id"), &p, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : list_page(r, u, ag, e.status, e.msg);
    if (action && (!strcmp(action, "enable") || !strcmp(action, "disable")))
        rc = gw_policy_set_enabled(a, ag->slug, p.member, p.name, !strcmp(action, "enable"), &e);
    else if (action && (!strcmp(action, "shadow") || !strcmp(action, "enforce")))
        rc = gw_policy_set_mode(a, ag->slug, p.member, p.name, action, &e);
    else
        rc = gh_err_set(&e, 400, "invalid_request", "Choose an action.", NULL);
    if (rc < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : list_page(r, u, ag, e.status, e.msg);
    return web_redirect(r, 303, base(a, ag));
}

/* ---------------------------------------------------------------- the editor */

struct draft {
    const char *name, *member, *text;
    const char *error;                      /* one sentence, or NULL */
    const struct gw_policy_problem *probs;  /* the text's problems at line:col */
    int nprobs;
};

/* The <option>s of the members a policy may belong to. */
static char *
member_options(struct gh_arena *a, const struct authz_agent *ag, const char *selected, bool approved_only,
               struct gh_err *e)
{
    PGresult *res = db_query(a, e, "SELECT email FROM agent_members WHERE agent_id = $1 AND state <> 'removed'"
                                   " AND (NOT $2 OR state = 'approved') ORDER BY lower(email)",
                             2, ag->id, approved_only ? "true" : "false");
    char *out;

    if (res == NULL)
        return NULL;
    out = gh_arena_strdup(a, "");
    for (int i = 0; i < PQntuples(res) && out; i++) {
        const char *m = db_val(res, i, 0);
        out = gh_arena_printf(a, "%s<option value=\"%s\"%s>%s</option>", out, esc(a, m),
                              selected && !strcasecmp(selected, m) ? " selected" : "", esc(a, m));
    }
    return out;
}

static char *
problems_html(struct gh_arena *a, const struct draft *d)
{
    char *out;

    if (d->nprobs == 0)
        return gh_arena_strdup(a, "");
    out = gh_arena_strdup(a, "<ul id=\"problems\" class=\"error\" role=\"alert\">");
    for (int i = 0; i < d->nprobs && out; i++)
        out = gh_arena_printf(a, "%s<li data-line=\"%d\" data-col=\"%d\"><code>%d:%d</code> %s</li>", out,
                              d->probs[i].line, d->probs[i].col, d->probs[i].line, d->probs[i].col,
                              esc(a, d->probs[i].msg));
    return gh_arena_printf(a, "%s</ul>", out);
}

/* p NULL: a new policy (name and member chosen here); else its next version. */
static int
editor_page(struct web_req *r, struct authz_user *u, const struct authz_agent *ag, const struct gw_policy *p,
            int status, const struct draft *d)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    const char *who = "", *action = p ? gh_arena_printf(a, "%s/%s", base(a, ag), p->id)
                                      : gh_arena_printf(a, "%s/new", base(a, ag));
    char *opts;

    if (p == NULL && ag->untrusted) {
        if ((opts = member_options(a, ag, d->member, false, &e)) == NULL)
            return web_reply_err(r, &e);
        who = gh_arena_printf(a, "<label for=\"member\">Member (this agent is untrusted: a policy is one member's)"
                                 "</label><select id=\"member\" name=\"member\" required>%s</select>", opts);
    } else if (p && p->member) {
        who = gh_arena_printf(a, "<p>Member: <strong id=\"member\">%s</strong></p>", esc(a, p->member));
    }
    return web_reply_html(r, status, authz_page(r, u, p ? "Edit policy" : "New policy", gh_arena_printf(a,
        "<div class=\"card\"><h1>%s</h1>%s%s<form method=\"post\" action=\"%s\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">%s%s"
        "<label for=\"text\">Cedar</label>%s<textarea id=\"text\" class=\"code\" name=\"text\" rows=\"16\" "
        "spellcheck=\"false\" required>%s</textarea>"
        "<p class=\"muted\">Checked against the agent's schema (docs/POLICIES.md) before it is saved; "
        "<code>context.args</code> holds the tool's own arguments: test them with <code>has</code>. "
        "At most 65,536 bytes.</p>"
        "<div class=\"actions\"><button type=\"submit\">Save</button><a href=\"%s\">Back to the policies</a>%s</div>"
        "</form></div>",
        p ? gh_arena_printf(a, "Policy %s <span class=\"muted\">version %d · %s · %s</span>", esc(a, p->name),
                            p->version, p->mode, p->enabled ? "enabled" : "disabled")
          : "New policy",
        authz_page_error_box(a, d->error),
        p ? "<p class=\"muted\">Saving makes a new version; the earlier ones stay in the history.</p>" : "",
        action, web_csrf_token(r),
        p ? "" : gh_arena_printf(a, "<label for=\"name\">Name</label><input id=\"name\" type=\"text\" name=\"name\" "
                                    "maxlength=\"64\" pattern=\"[A-Za-z0-9._\\-]+\" value=\"%s\" required>",
                                 esc(a, d->name)),
        who, problems_html(a, d), esc(a, d->text), base(a, ag),
        p ? gh_arena_printf(a, " <a href=\"%s/%s/history\">History</a>", base(a, ag), p->id) : "")));
}

/* A textarea's text as the CLI would send it: browsers submit its line
 * breaks as CRLF (HTML's form encoding), stored and diffed as LF. */
static const char *
form_text(struct web_req *r)
{
    const char *in = web_form(r, "text");
    char *out, *o;

    if (in == NULL || strchr(in, '\r') == NULL || (out = gh_arena_strdup(web_arena(r), in)) == NULL)
        return in;
    for (o = out; *in; in++)
        if (!(in[0] == '\r' && in[1] == '\n'))
            *o++ = *in;
    *o = '\0';
    return out;
}

/* Checks the text; on a problem the editor is sent again, the text in it. */
static bool
text_refused(struct web_req *r, struct authz_user *u, const struct authz_agent *ag, const struct gw_policy *p,
             struct draft *d)
{
    struct gw_policy_problem *probs;
    struct gh_err e = {0};
    const char *sent;
    size_t len;
    int n;

    /* a %00 would cut the text short where it stands: refused, as the CLI does */
    if ((sent = web_form_n(r, "text", &len)) != NULL && len != strlen(sent)) {
        d->error = "The policy text holds a NUL byte: nothing was saved.";
        editor_page(r, u, ag, p, 400, d);
        return true;
    }
    if (gw_policy_check_text(web_arena(r), d->text, &probs, &n, &e) == 0)
        return false;
    if (e.status >= 500) {
        web_reply_err(r, &e);
        return true;
    }
    d->probs = probs;
    d->nprobs = n;
    d->error = n ? (n == 1 ? "The policy has a problem: nothing was saved." :
                             "The policy has problems: nothing was saved.")
                 : e.msg;
    editor_page(r, u, ag, p, 400, d);
    return true;
}

static int
get_new(struct web_req *r)
{
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct draft d = { .text = "permit (principal, action == Action::\"tools/call\", resource);\n" };

    return ag ? editor_page(r, u, ag, NULL, 200, &d) : 0;
}

static int
post_new(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct draft d = { .name = web_form(r, "name"), .member = web_form(r, "member"), .text = form_text(r) };
    struct gw_policy p = {0};
    struct gh_err e = {0};

    if (ag == NULL || text_refused(r, u, ag, NULL, &d))
        return 0;
    if (gw_policy_add(a, ag->slug, ag->untrusted ? (d.member ? d.member : "") : NULL,
                      d.name ? d.name : "", d.text, u->email, &p, &e) < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        d.error = e.msg;
        return editor_page(r, u, ag, NULL, e.status, &d);
    }
    return web_redirect(r, 303, base(a, ag));
}

static int
get_edit(struct web_req *r)
{
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct gw_policy *p = ag ? path_policy(r, u, ag, web_path_param(r, 1)) : NULL;
    struct draft d = {0};

    if (p == NULL)
        return 0;
    d.text = p->text;
    return editor_page(r, u, ag, p, 200, &d);
}

static int
post_edit(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct gw_policy *p = ag ? path_policy(r, u, ag, web_path_param(r, 1)) : NULL;
    struct draft d = { .text = form_text(r) };
    struct gw_policy out = {0};
    struct gh_err e = {0};

    if (p == NULL || text_refused(r, u, ag, p, &d))
        return 0;
    if (gw_policy_set_text(a, ag->slug, p->member, p->name, d.text, u->email, &out, &e) < 0) {
        if (e.status >= 500)
            return web_reply_err(r, &e);
        d.error = e.msg;
        return editor_page(r, u, ag, p, e.status, &d);
    }
    return web_redirect(r, 303, base(a, ag));
}

/* ---------------------------------------------------------------- history and diff */

static pthread_once_t git_once = PTHREAD_ONCE_INIT;

static void
git_start(void)
{
    git_libgit2_init();
}

struct diff_out {
    struct gh_arena *a;
    char            *html;
};

static int
on_hunk(const git_diff_delta *d, const git_diff_hunk *h, void *ctx)
{
    struct diff_out *o = ctx;

    (void)d;
    o->html = gh_arena_printf(o->a, "%s<span class=\"hunk\">@@ -%d,%d +%d,%d @@</span>", o->html ? o->html : "",
                              h->old_start, h->old_lines, h->new_start, h->new_lines);
    return o->html ? 0 : -1;
}

static int
on_line(const git_diff_delta *d, const git_diff_hunk *h, const git_diff_line *l, void *ctx)
{
    struct diff_out *o = ctx;
    const char *cls = l->origin == GIT_DIFF_LINE_ADDITION ? "add" : l->origin == GIT_DIFF_LINE_DELETION ? "del" : "ctx";
    char *text;
    size_t n = l->content_len;

    (void)d, (void)h;
    if (l->origin != GIT_DIFF_LINE_ADDITION && l->origin != GIT_DIFF_LINE_DELETION &&
        l->origin != GIT_DIFF_LINE_CONTEXT)
        return 0;   /* "no newline at end of file" markers */
    while (n && (l->content[n - 1] == '\n' || l->content[n - 1] == '\r'))
        n--;
    if ((text = gh_arena_strndup(o->a, l->content, n)) == NULL)
        return -1;
    o->html = gh_arena_printf(o->a, "%s<span class=\"%s\">%c %s</span>", o->html ? o->html : "", cls,
                              l->origin == GIT_DIFF_LINE_CONTEXT ? ' ' : l->origin, esc(o->a, text));
    return o->html ? 0 : -1;
}

/* A line diff of two versions' texts, escaped: NULL when they are the same. */
static int
diff_html(struct gh_arena *a, const char *from, const char *to, char **out, struct gh_err *e)
{
    git_diff_options opts;
    struct diff_out o = { a, NULL };

    pthread_once(&git_once, git_start);
    if (git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION) < 0)
        return gh_err_set(e, 500, "server_error", "The versions could not be compared.", "git_diff_options_init");
    opts.context_lines = 3;
    opts.flags = GIT_DIFF_FORCE_TEXT;
    if (git_diff_buffers(from, strlen(from), "a", to, strlen(to), "b", &opts, NULL, NULL, on_hunk, on_line, &o) < 0)
        return gh_err_set(e, 500, "server_error", "The versions could not be compared.", "git_diff_buffers");
    *out = o.html;
    return 0;
}

static const struct gw_policy *
version_of(const struct gw_policy *v, int n, const char *want)
{
    for (int i = 0; want && i < n; i++)
        if (atoi(want) == v[i].version && strspn(want, "0123456789") == strlen(want))
            return &v[i];
    return NULL;
}

static char *
compare_card(struct gh_arena *a, const struct gw_policy *from, const struct gw_policy *to, struct gh_err *e)
{
    char *d = NULL;

    if (diff_html(a, from->text, to->text, &d, e) < 0)
        return NULL;
    return gh_arena_printf(a, "<div class=\"card\"><h2 id=\"diff-title\">Version %d → version %d</h2>%s</div>",
                           from->version, to->version,
                           d ? gh_arena_printf(a, "<pre class=\"diff\" id=\"diff\">%s</pre>", d)
                             : "<p id=\"diff\" class=\"muted\">The two versions have the same text.</p>");
}

static int
get_history(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct gw_policy *p = ag ? path_policy(r, u, ag, web_path_param(r, 1)) : NULL;
    const struct gw_policy *from, *to;
    struct gw_policy *v;
    struct gh_err e = {0};
    char *rows, *cmp = "";
    int n, status = 200;

    if (p == NULL)
        return 0;
    if (gw_policy_history(a, ag->slug, p->member, p->name, &v, &n, &e) < 0)
        return web_reply_err(r, &e);
    /* by default the newest change: the version before the current one against it */
    from = web_query(r, "from") ? version_of(v, n, web_query(r, "from")) : n > 1 ? &v[n - 2] : NULL;
    to = web_query(r, "to") ? version_of(v, n, web_query(r, "to")) : n > 1 ? &v[n - 1] : NULL;
    if ((web_query(r, "from") || web_query(r, "to")) && (from == NULL || to == NULL)) {
        cmp = "<div class=\"card\"><p class=\"error\" role=\"alert\">Choose two versions of this policy to "
              "compare.</p></div>";
        status = 400;
    } else if (from && to && (cmp = compare_card(a, from, to, &e)) == NULL)
        return web_reply_err(r, &e);
    rows = gh_arena_strdup(a, "");
    for (int i = n - 1; i >= 0 && rows; i--)
        rows = gh_arena_printf(a,
            "%s<tr data-version=\"%d\"><td>%d</td><td>%s</td><td>%s</td>"
            "<td><input type=\"radio\" name=\"from\" value=\"%d\" aria-label=\"from version %d\"%s></td>"
            "<td><input type=\"radio\" name=\"to\" value=\"%d\" aria-label=\"to version %d\"%s></td></tr>",
            rows, v[i].version, v[i].version, esc(a, v[i].created_by), esc(a, v[i].created_at), v[i].version,
            v[i].version, from == &v[i] ? " checked" : "", v[i].version, v[i].version, to == &v[i] ? " checked" : "");
    return web_reply_html(r, status, authz_page(r, u, "Policy history", gh_arena_printf(a,
        "<div class=\"card\"><h1>History of %s</h1><p><a href=\"%s/%s\">Edit</a> · <a href=\"%s\">Back to the "
        "policies</a></p><form method=\"get\" action=\"%s/%s/history\"><table><thead><tr><th>Version</th><th>By</th>"
        "<th>When (UTC)</th><th>From</th><th>To</th></tr></thead><tbody>%s</tbody></table>"
        "<div class=\"actions\"><button type=\"submit\" class=\"secondary\" id=\"compare\">Compare</button></div>"
        "</form></div>%s",
        esc(a, p->name), base(a, ag), p->id, base(a, ag), base(a, ag), p->id, rows, cmp)));
}

/* ---------------------------------------------------------------- the test bench */

/* "id,id" and "v,v" as "name@v" links to each policy. */
static char *
named(struct gh_arena *a, const struct authz_agent *ag, const char *ids, const char *vers)
{
    struct gh_err e = {0};
    char *out = gh_arena_strdup(a, ""), *il = gh_arena_strdup(a, ids ? ids : ""), *vl = gh_arena_strdup(a, vers ? vers : "");
    char *si = NULL, *sv = NULL;

    if (ids == NULL || out == NULL || il == NULL || vl == NULL)
        return "none";
    for (char *id = strtok_r(il, ",", &si), *v = strtok_r(vl, ",", &sv); id && out;
         id = strtok_r(NULL, ",", &si), v = v ? strtok_r(NULL, ",", &sv) : NULL) {
        struct gw_policy p = {0};
        bool known = gw_policy_get(a, ag->slug, id, &p, &e) == 0;
        gh_err_clear(&e);
        out = gh_arena_printf(a, "%s%s<a class=\"determining\" href=\"/agents/%s/policies/%s\">%s@%s</a>", out,
                              *out ? ", " : "", ag->slug, esc(a, id), esc(a, known ? p.name : id), esc(a, v ? v : "?"));
    }
    return out;
}

static char *
bench_result(struct gh_arena *a, const struct authz_agent *ag, const struct gw_decision *d)
{
    return gh_arena_printf(a,
        "<div class=\"card\" id=\"bench-result\"><h2>Decision: <span id=\"decision\">%s</span></h2>"
        "<p>Message: <span id=\"message\">%s</span></p>"
        "<p>Determining policies: <span id=\"determining\">%s</span></p>"
        "<p>Errors: <span id=\"errors\">%s</span></p>"
        "<p>Shadow (enforced and shadow policies together): <span id=\"shadow\">%s</span></p>"
        "<h2>The Cedar request</h2><pre id=\"request\">%s</pre></div>",
        esc(a, d->decision), esc(a, d->message), named(a, ag, d->policy_ids, d->policy_versions),
        d->errors ? esc(a, d->errors) : "none", d->shadow ? esc(a, d->shadow) : "no shadow policy",
        d->request ? esc(a, d->request) : "-");
}

static int
bench_page(struct web_req *r, struct authz_user *u, const struct authz_agent *ag, int status,
           const struct gw_policy_test_in *in, const char *error, const char *result)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    char *opts = member_options(a, ag, in->email, true, &e);

    if (opts == NULL)
        return web_reply_err(r, &e);
    return web_reply_html(r, status, authz_page(r, u, "Test bench", gh_arena_printf(a,
        "<div class=\"card\"><h1>Would this call be allowed?</h1><p class=\"muted\">Decided by the gateway's own "
        "code with the policies of %s as they are now; nothing is called and no session counts it.</p>%s"
        "<form method=\"post\" action=\"%s/test\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"email\">Member</label><select id=\"email\" name=\"email\" required>%s</select>"
        "<label for=\"tool\">Tool (connector/tool)</label><input id=\"tool\" type=\"text\" name=\"tool\" "
        "placeholder=\"github/delete_repo\" value=\"%s\" required>"
        "<label for=\"args\">Arguments (a JSON object)</label><textarea id=\"args\" class=\"code\" name=\"args\" "
        "rows=\"4\" spellcheck=\"false\">%s</textarea>"
        "<label for=\"annotations\">Tool annotations (a JSON object, optional)</label><input id=\"annotations\" "
        "type=\"text\" name=\"annotations\" placeholder='{\"destructiveHint\": true}' value=\"%s\">"
        "<label for=\"at\">Time (empty: now; e.g. 2026-12-07 10:00 Europe/Berlin)</label><input id=\"at\" "
        "type=\"text\" name=\"at\" value=\"%s\">"
        "<div class=\"actions\"><button type=\"submit\" id=\"decide\">Decide</button><a href=\"%s\">Back to the "
        "policies</a></div></form></div>%s",
        esc(a, ag->name), authz_page_error_box(a, error), base(a, ag), web_csrf_token(r), opts, esc(a, in->tool),
        in->args ? esc(a, in->args) : "{}", esc(a, in->annotations), esc(a, in->at), base(a, ag),
        result ? result : "")));
}

static int
get_bench(struct web_req *r)
{
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct gw_policy_test_in in = {0};

    return ag ? bench_page(r, u, ag, 200, &in, NULL, NULL) : 0;
}

static int
post_bench(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct authz_user *u;
    struct authz_agent *ag = owned_agent(r, &u);
    struct gw_policy_test_in in = { .email = web_form(r, "email"), .tool = web_form(r, "tool"),
                                    .args = web_form(r, "args"), .annotations = web_form(r, "annotations"),
                                    .at = web_form(r, "at") };
    struct gw_decision d = {0};
    struct gh_err e = {0};

    if (ag == NULL)
        return 0;
    in.agent = ag->slug;
    if (gw_policy_test(a, &in, &d, &e) < 0)
        return e.status >= 500 ? web_reply_err(r, &e) : bench_page(r, u, ag, e.status, &in, e.msg, NULL);
    return bench_page(r, u, ag, 200, &in, NULL, bench_result(a, ag, &d));
}

int
gw_policy_pages_register_routes(void)
{
    /* the fixed segments before the policy id */
    web_route("GET", "/agents/*/policies", WEB_PAGE, get_list);
    web_route("POST", "/agents/*/policies", WEB_PAGE, post_list);
    web_route("GET", "/agents/*/policies/new", WEB_PAGE, get_new);
    web_route("POST", "/agents/*/policies/new", WEB_PAGE, post_new);
    web_route("GET", "/agents/*/policies/test", WEB_PAGE, get_bench);
    web_route("POST", "/agents/*/policies/test", WEB_PAGE, post_bench);
    web_route("GET", "/agents/*/policies/*/history", WEB_PAGE, get_history);
    web_route("GET", "/agents/*/policies/*", WEB_PAGE, get_edit);
    web_route("POST", "/agents/*/policies/*", WEB_PAGE, post_edit);
    return 0;
}
