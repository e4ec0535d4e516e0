/*
 * gateway/policy.c — the enforcement seam: a Cedar decision on every
 * decided request (docs/POLICIES.md).  The compiled policy set of an agent
 * (of one member on an untrusted agent) is cached in memory and never
 * re-parsed per call.  Every call learns the agent's policy generation
 * (migration 070: bumped by every change) from a read begun after it
 * arrived (policy_facts.c, shared by concurrent calls), and a set of an
 * older generation is compiled again, so an edit applies on the very next
 * call on every process; NOTIFY gw_policies and a listener reconnect free
 * the sets a change left behind.  The call's other facts come from memory.
 */#include "gateway/gw_int.h"
#include "authz/cedar/cedar.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PSET_MAX   1024         /* cached sets; past it the oldest goes */
#define CALL_ARENA (1 << 20)    /* a request's Cedar values */

struct pol {
    char id[40];
    int  version;
    bool shadow;
};

/* One agent's (or member's) enabled policies, compiled: enforce holds the
 * enforced ones, all (NULL without shadow policies) enforced and shadow
 * together, which is what the shadow outcome reports. */
struct pset {
    char              key[80];
    long long         generation;   /* the agent's policy_generations row */
    cedar_policy_set *enforce, *all;
    struct pol       *pol;
    int               n, nenforce, refs;
    struct pset      *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pset    *sets;
static int             nsets;
static uint64_t        gen;     /* bumped by every flush */

static void
pset_free(struct pset *p)
{
    if (p == NULL)
        return;
    cedar_policy_set_free(p->enforce);
    cedar_policy_set_free(p->all);
    free(p->pol);
    free(p);
}

static void
pset_put(struct pset *p)
{
    bool last;

    pthread_mutex_lock(&lock);
    last = --p->refs == 0;
    pthread_mutex_unlock(&lock);
    if (last)
        pset_free(p);
}

/* Drops the cached sets of agent_id (all when NULL); sets in use go when
 * their last caller is done. */
static void
flush(const char *agent_id)
{
    struct pset **pp, *dead = NULL;

    pthread_mutex_lock(&lock);
    gen++;
    for (pp = &sets; *pp;) {
        struct pset *p = *pp;
        if (agent_id == NULL || !strncmp(p->key, agent_id, strlen(agent_id))) {
            *pp = p->next;
            nsets--;
            if (--p->refs == 0) {
                p->next = dead;
                dead = p;
            }
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&lock);
    while (dead) {
        struct pset *n = dead->next;
        pset_free(dead);
        dead = n;
    }
}

static void
on_notify(const char *channel, const char *payload, void *ctx)
{
    (void)channel, (void)ctx;
    flush(payload && payload[0] ? payload : NULL);
}

static void
on_reconnect(void *ctx)
{
    (void)ctx;
    flush(NULL);   /* a change may have been announced while nobody listened */
}

void
gw_policy_cache_start(void)
{
    if (db_listen_reconnect_hook(on_reconnect, NULL) < 0 || db_listen(GW_CHANNEL_POLICIES, on_notify, NULL) < 0)
        GH_LOG(WARN, "gw_policy", "cannot listen on %s: policy sets are compiled per call", GW_CHANNEL_POLICIES);
    gw_policy_facts_start();
}

static int
compile_one(struct pset *p, int i, const char *text, struct gh_err *e)
{
    struct cedar_err ce = {0};
    char prefix[24];

    /* cedar ids "p<i>.<k>": the k-th statement of policy i */
    snprintf(prefix, sizeof prefix, "p%d.", i);
    if (!p->pol[i].shadow && cedar_policy_set_parse(p->enforce, text, strlen(text), prefix, &ce) < 0)
        goto bad;
    if (p->all && cedar_policy_set_parse(p->all, text, strlen(text), prefix, &ce) < 0)
        goto bad;
    return 0;
bad:
    /* saved texts were parsed before they were saved: this is a bug or an
     * engine change, and the whole set fails closed */
    return gh_err_set(e, 500, "server_error", "A policy could not be compiled.", "policy %s@%d: %d:%d: %s",
                      p->pol[i].id, p->pol[i].version, ce.line, ce.col, ce.msg);
}

/* Reads and compiles the enabled policies of agent_id (of member user_id
 * when it is not NULL). */
static struct pset *
load(struct gh_arena *a, const char *key, const char *agent_id, const char *user_id, long long generation,
     struct gh_err *e)
{
    static const char sql[] =
        "SELECT p.id, p.version, p.mode, v.text FROM policies p"
        "  JOIN policy_versions v ON v.policy_id = p.id AND v.version = p.version"
        " WHERE p.agent_id = $1 AND p.enabled"
        "   AND (CASE WHEN $2::uuid IS NULL THEN p.member_id IS NULL"
        "        ELSE p.member_id = (SELECT id FROM agent_members WHERE agent_id = $1 AND user_id = $2::uuid) END)"
        " ORDER BY p.created_at, p.id";
    PGresult *res = db_query(a, e, sql, 2, agent_id, user_id);
    struct pset *p;
    bool shadow = false;
    int n;

    if (res == NULL)
        return NULL;
    n = PQntuples(res);
    p = calloc(1, sizeof *p);
    if (p == NULL || (p->pol = calloc(n ? n : 1, sizeof *p->pol)) == NULL)
        goto nomem;
    snprintf(p->key, sizeof p->key, "%s", key);
    /* read after the generation: a change in between makes the set newer
     * than its number, and the next call compiles it once more */
    p->generation = generation;
    p->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(p->pol[i].id, sizeof p->pol[i].id, "%s", db_val(res, i, 0));
        p->pol[i].version = (int)db_ll(res, i, 1, 0);
        p->pol[i].shadow = !strcmp(db_val(res, i, 2), "shadow");
        shadow |= p->pol[i].shadow;
        p->nenforce += !p->pol[i].shadow;
    }
    if ((p->enforce = cedar_policy_set_new()) == NULL || (shadow && (p->all = cedar_policy_set_new()) == NULL))
        goto nomem;
    for (int i = 0; i < n; i++)
        if (compile_one(p, i, db_val(res, i, 3), e) < 0) {
            pset_free(p);
            return NULL;
        }
    return p;
nomem:
    pset_free(p);
    gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", "policy set of %s", key);
    return NULL;
}

/* The compiled set for key, from the cache or compiled now (and cached
 * while the listener is live: a change then cannot go unnoticed). */
static struct pset *
pset_get(struct gh_arena *a, const char *agent_id, const char *user_id, long long generation, struct gh_err *e)
{
    struct pset **pp, *p, *old = NULL;
    char key[80];
    uint64_t g;

    snprintf(key, sizeof key, "%s/%s", agent_id, user_id ? user_id : "");
    pthread_mutex_lock(&lock);
    for (pp = &sets; *pp && strcmp((*pp)->key, key); pp = &(*pp)->next)
        ;
    p = *pp;
    if (p && p->generation == generation)
        p->refs++;
    else if (p) {
        /* an older generation: the NOTIFY that frees it may not be here yet */
        *pp = p->next;
        nsets--;
        old = --p->refs == 0 ? p : NULL;
        p = NULL;
    }
    g = gen;
    pthread_mutex_unlock(&lock);
    pset_free(old);
    if (p)
        return p;
    if ((p = load(a, key, agent_id, user_id, generation, e)) == NULL)
        return NULL;
    p->refs = 1;
    pthread_mutex_lock(&lock);
    for (pp = &sets; *pp && strcmp((*pp)->key, key); pp = &(*pp)->next)
        ;
    /* another thread may have cached it meanwhile: keep theirs */
    if (*pp == NULL && g == gen && db_listener_live() && nsets < PSET_MAX) {
        p->refs++;
        p->next = sets;
        sets = p;
        nsets++;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

/* ---------------------------------------------------------------- request */

/* An MCP annotation hint, or its default when absent (MCP: readOnly false,
 * destructive true, idempotent false, openWorld true). */
static int
hint(json_t *ann, const char *key, int dflt)
{
    json_t *v = ann ? json_object_get(ann, key) : NULL;

    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int
rec_set(cedar_arena *ca, cedar_value *rec, const char *key, const cedar_value *v, struct cedar_err *ce)
{
    if (v == NULL)
        return -1;
    return cedar_value_record_set(ca, rec, key, v, ce) < 0 ? -1 : 0;
}

#define STR(s) cedar_value_string(ca, (s) ? (s) : "", (size_t)-1)

static cedar_value *
build_context(cedar_arena *ca, const struct gw_policy_call *call, const struct gw_facts *f, struct cedar_err *ce)
{
    const struct authz_credential *w = call->who;
    cedar_value *ctx = cedar_value_record_new(ca), *now = cedar_value_record_new(ca);
    cedar_value *ses = cedar_value_record_new(ca), *cli = cedar_value_record_new(ca), *args;

    if (ctx == NULL || now == NULL || ses == NULL || cli == NULL)
        return NULL;
    if (call->arguments && !json_is_object(call->arguments)) {
        snprintf(ce->msg, sizeof ce->msg, "the arguments are not a JSON object");
        return NULL;
    }
    /* arguments are data, never entity JSON: no __entity or __extn */
    args = call->arguments ? cedar_value_from_plain_json(ca, call->arguments, ce) : cedar_value_record_new(ca);
    if (args == NULL)
        return NULL;
    if (rec_set(ca, now, "datetime", cedar_value_extension(ca, "datetime", f->datetime, ce), ce) < 0 ||
        rec_set(ca, now, "date", STR(f->date), ce) < 0 || rec_set(ca, now, "hour", cedar_value_long(ca, f->hour), ce) < 0 ||
        rec_set(ca, now, "minute", cedar_value_long(ca, f->minute), ce) < 0 ||
        rec_set(ca, now, "weekday", cedar_value_long(ca, f->weekday), ce) < 0 ||
        rec_set(ca, ses, "id", STR(call->session), ce) < 0 || rec_set(ca, ses, "calls", cedar_value_long(ca, f->calls), ce) < 0 ||
        rec_set(ca, ses, "denials", cedar_value_long(ca, f->denials), ce) < 0 ||
        rec_set(ca, cli, "id", STR(w->client_id), ce) < 0 || rec_set(ca, cli, "name", STR(w->client_name), ce) < 0 ||
        rec_set(ca, cli, "kind", STR(w->kind), ce) < 0 || rec_set(ca, cli, "ip", STR(call->client_ip), ce) < 0 ||
        rec_set(ca, ctx, "args", args, ce) < 0 || rec_set(ca, ctx, "now", now, ce) < 0 ||
        rec_set(ca, ctx, "session", ses, ce) < 0 || rec_set(ca, ctx, "client", cli, ce) < 0)
        return NULL;
    return ctx;
}

/* The hints the tool's annotations state, as they are: only the boolean
 * ones present (a baseline that refuses what "says destructive" must not
 * read MCP's defaults as a statement). */
static cedar_value *
stated_hints(cedar_arena *ca, json_t *ann, struct cedar_err *ce)
{
    static const char *const keys[] = { "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint" };
    cedar_value *rec = cedar_value_record_new(ca);

    for (size_t i = 0; rec && i < GH_ARRAY_LEN(keys); i++) {
        json_t *v = ann ? json_object_get(ann, keys[i]) : NULL;
        if (json_is_boolean(v) && rec_set(ca, rec, keys[i], cedar_value_bool(ca, json_is_true(v)), ce) < 0)
            return NULL;
    }
    return rec;
}

/* The resource's attributes: every kind's name and connector (a policy
 * that reads them for every method must not error on the lists: an
 * erroring forbid denies), then a Tool's hints, a Resource's uri, the
 * Agent's slug (list methods, logging/setLevel, subscriptions/listen). */
static cedar_value *
resource_attrs(cedar_arena *ca, const char *kind, const char *connector, const char *name, json_t *ann,
               struct cedar_err *ce)
{
    cedar_value *t = cedar_value_record_new(ca);
    bool agent = !strcmp(kind, "Agent");

    if (t == NULL || rec_set(ca, t, "name", STR(name), ce) < 0 ||
        rec_set(ca, t, "connector", STR(agent ? "" : connector), ce) < 0)
        return NULL;
    if (agent)
        return rec_set(ca, t, "slug", STR(name), ce) < 0 ? NULL : t;
    if (!strcmp(kind, "Resource"))
        return rec_set(ca, t, "uri", STR(name), ce) < 0 ? NULL : t;
    if (strcmp(kind, "Tool"))
        return t;
    if (rec_set(ca, t, "readOnly", cedar_value_bool(ca, hint(ann, "readOnlyHint", 0)), ce) < 0 ||
        rec_set(ca, t, "destructive", cedar_value_bool(ca, hint(ann, "destructiveHint", 1)), ce) < 0 ||
        rec_set(ca, t, "idempotent", cedar_value_bool(ca, hint(ann, "idempotentHint", 0)), ce) < 0 ||
        rec_set(ca, t, "openWorld", cedar_value_bool(ca, hint(ann, "openWorldHint", 1)), ce) < 0 ||
        rec_set(ca, t, "annotations", stated_hints(ca, ann, ce), ce) < 0)
        return NULL;
    return t;
}

/* The resource entity of kind ("Tool" when NULL) and its parent
 * Connector::"<connector>" (none for the Agent) into es and *res. */
static int
add_resource(struct gh_arena *a, cedar_arena *ca, cedar_entities *es, const char *kind, const char *connector,
             const char *name, json_t *ann, const cedar_value **res, struct cedar_err *ce)
{
    const cedar_value *parent = NULL, *attrs;
    char buf[256];
    const char *id = buf;
    int n;

    kind = kind ? kind : "Tool";
    if ((attrs = resource_attrs(ca, kind, connector, name, ann, ce)) == NULL)
        return -1;
    if (!strcmp(kind, "Agent")) {
        *res = cedar_value_entity(ca, "Agent", name ? name : "");
        return *res && cedar_entities_add(es, "Agent", name ? name : "", attrs, NULL, 0, NULL, ce) == 0 ? 0 : -1;
    }
    connector = connector ? connector : "";
    /* the id on the stack (a list's items come here one by one), the
     * arena only for a long one */
    n = snprintf(buf, sizeof buf, "%s/%s", connector, name ? name : "");
    if (n < 0 || (size_t)n >= sizeof buf)
        id = gh_arena_printf(a, "%s/%s", connector, name ? name : "");
    if (id == NULL || (parent = cedar_value_entity(ca, "Connector", connector)) == NULL ||
        (*res = cedar_value_entity(ca, kind, id)) == NULL ||
        cedar_entities_add(es, "Connector", connector, NULL, NULL, 0, NULL, ce) < 0 ||
        cedar_entities_add(es, kind, id, attrs, &parent, 1, NULL, ce) < 0)
        return -1;
    return 0;
}

/* The principal and its entity (values in ca, so a list's items reuse them). */
static cedar_value *
principal_attrs(cedar_arena *ca, const struct gw_policy_call *call, const struct gw_facts *f, struct cedar_err *ce)
{
    const struct authz_credential *w = call->who;
    cedar_value *u = cedar_value_record_new(ca);

    if (u == NULL || rec_set(ca, u, "email", STR(w->user_email), ce) < 0 ||
        rec_set(ca, u, "role", STR(f->role), ce) < 0 || rec_set(ca, u, "admin", cedar_value_bool(ca, f->admin), ce) < 0)
        return NULL;
    return u;
}

/* principal, action, resource and their entities. */
static int
build_request(struct gh_arena *a, cedar_arena *ca, cedar_entities *es, const struct gw_policy_call *call,
              const struct gw_facts *f, struct cedar_request *req, struct cedar_err *ce)
{
    const struct authz_credential *w = call->who;
    cedar_value *u = principal_attrs(ca, call, f, ce);
    /* the test-only unauthenticated identity has no user: a principal of
     * its own, which no policy naming a user matches */
    const char *uid = w->user_id ? w->user_id : "unauthenticated-test";

    if (u == NULL)
        return -1;
    req->principal = cedar_value_entity(ca, "User", uid);
    req->action = cedar_value_entity(ca, "Action", call->action ? call->action : "tools/call");
    req->context = build_context(ca, call, f, ce);
    if (req->principal == NULL || req->action == NULL || req->context == NULL)
        return -1;
    if (cedar_entities_add(es, "User", uid, u, NULL, 0, NULL, ce) < 0 ||
        add_resource(a, ca, es, call->kind, call->connector, call->tool, call->annotations, &req->resource, ce) < 0)
        return -1;
    return 0;
}
#undef STR

/* ---------------------------------------------------------------- decision */

static int
pol_index(const struct pset *p, const char *cedar_id)
{
    long i = cedar_id && cedar_id[0] == 'p' ? strtol(cedar_id + 1, NULL, 10) : -1;

    return i >= 0 && i < p->n ? (int)i : -1;
}

/* Appends the Gatehouse ids (and versions) of cedar policies ids[0..n) to
 * the comma lists, each policy once. */
static void
add_ids(struct gh_arena *a, const struct pset *p, const char *const *ids, size_t n, char **idl, char **verl)
{
    for (size_t k = 0; k < n; k++) {
        int i = pol_index(p, ids[k]);
        if (i < 0 || (*idl && strstr(*idl, p->pol[i].id)))
            continue;
        *idl = *idl ? gh_arena_printf(a, "%s,%s", *idl, p->pol[i].id) : gh_arena_strdup(a, p->pol[i].id);
        *verl = *verl ? gh_arena_printf(a, "%s,%d", *verl, p->pol[i].version)
                      : gh_arena_printf(a, "%d", p->pol[i].version);
    }
}

/* The deny message: the first determining (or erroring) forbid's @message. */
static const char *
deny_message(struct gh_arena *a, const cedar_policy_set *ps, const char *const *ids, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const char *m = cedar_policy_annotation(ps, ids[k], "message");
        if (m && cedar_policy_is_forbid(ps, ids[k]) == 1)
            return gh_arena_strdup(a, m);
    }
    return NULL;
}

/* Decides with ps: Cedar's answer, except that a forbid which errors
 * denies (fail closed).  ids: the determining policies. */
static int
run(cedar_policy_set *ps, cedar_entities *es, const struct cedar_request *req, cedar_arena *scratch,
    bool *allow, const char ***ids, size_t *nids, struct cedar_response *r, struct cedar_err *ce)
{
    if (cedar_authorize(ps, es, req, scratch, r, ce) < 0)
        return -1;
    *allow = r->decision == CEDAR_ALLOW;
    *ids = r->reasons;
    *nids = r->n_reasons;
    for (size_t k = 0; k < r->n_errors; k++)
        if (cedar_policy_is_forbid(ps, r->errors[k]) == 1) {
            *allow = false;
            *ids = r->errors + k;   /* the erroring forbid determines it */
            *nids = 1;
            break;
        }
    return 0;
}

static void
describe_errors(struct gh_arena *a, const struct pset *p, const struct cedar_response *r, struct gw_decision *out)
{
    for (size_t k = 0; k < r->n_errors; k++) {
        int i = pol_index(p, r->errors[k]);
        const char *s = gh_arena_printf(a, "%s@%d: %s", i >= 0 ? p->pol[i].id : r->errors[k],
                                        i >= 0 ? p->pol[i].version : 0, r->error_msgs[k]);
        out->errors = out->errors ? gh_arena_printf(a, "%s; %s", out->errors, s) : s;
    }
}

static int
decide_with(struct gh_arena *a, const struct pset *p, cedar_arena *ca, cedar_entities *es,
            const struct cedar_request *req, struct gw_decision *out, struct gh_err *e)
{
    struct cedar_response r = {0};
    struct cedar_err ce = {0};
    const char **ids;
    size_t nids;
    bool allow;

    if (run(p->enforce, es, req, ca, &allow, &ids, &nids, &r, &ce) < 0)
        return gh_err_set(e, 500, "server_error", "The policy could not be evaluated.", "authorize: %s", ce.msg);
    out->allow = allow;
    out->decision = allow ? "allow" : "deny";
    add_ids(a, p, ids, nids, (char **)&out->policy_ids, (char **)&out->policy_versions);
    describe_errors(a, p, &r, out);
    if (!allow)
        out->message = deny_message(a, p->enforce, ids, nids);
    if (p->all) {
        char *sid = NULL, *sver = NULL;
        if (run(p->all, es, req, ca, &allow, &ids, &nids, &r, &ce) < 0)
            return gh_err_set(e, 500, "server_error", "The policy could not be evaluated.", "shadow: %s", ce.msg);
        add_ids(a, p, ids, nids, &sid, &sver);
        out->shadow = gh_arena_printf(a, "%s%s%s%s%s", allow ? "allow" : "deny", sid ? " " : "", sid ? sid : "",
                                      sver ? "@" : "", sver ? sver : "");
    }
    return 0;
}

/* A list's items (policy_list.c): each one's own method with empty
 * arguments, for the same principal, time and session counters; hidden
 * when denied with no policy erroring (an item whose policies read an
 * argument stays listed: its call decides).  One scratch arena and entity
 * store, reset per item: no database round trip, nothing counted. */
static int
eval_items(struct gh_arena *a, const struct pset *p, const struct gw_policy_call *call, const struct gw_facts *f,
           cedar_arena *ca, struct gh_err *e)
{
    struct gw_policy_call c = *call;
    struct cedar_request req = {0};
    struct cedar_err ce = {0};
    cedar_entities *es = cedar_entities_new();
    cedar_arena *ia = cedar_arena_new(CALL_ARENA);
    const cedar_value *u;
    int rc = -1;

    c.arguments = NULL;
    if (es == NULL || ia == NULL) {
        gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", "policy list filter");
        goto out;
    }
    u = principal_attrs(ca, &c, f, &ce);
    req.principal = cedar_value_entity(ca, "User", c.who->user_id);
    req.action = cedar_value_entity(ca, "Action", call->item_action ? call->item_action : "tools/call");
    req.context = build_context(ca, &c, f, &ce);
    if (u == NULL || req.principal == NULL || req.action == NULL || req.context == NULL) {
        gh_err_set(e, 500, "server_error", "The policy could not be evaluated.", "list filter: %s", ce.msg);
        goto out;
    }
    for (int i = 0; i < call->nitems; i++) {
        struct gw_policy_item *it = &call->items[i];
        struct cedar_response r = {0};
        const char **ids;
        size_t nids;
        bool allow;

        cedar_arena_reset(ia);
        cedar_entities_reset(es);
        it->hidden = false;     /* what cannot be evaluated stays listed: its call decides */
        if (cedar_entities_add(es, "User", c.who->user_id, u, NULL, 0, NULL, &ce) < 0 ||
            add_resource(a, ia, es, call->item_kind, it->connector, it->name, it->annotations, &req.resource,
                         &ce) < 0 ||
            run(p->enforce, es, &req, ia, &allow, &ids, &nids, &r, &ce) < 0)
            continue;
        it->hidden = !allow && r.n_errors == 0;
    }
    rc = 0;
out:
    cedar_entities_free(es);
    cedar_arena_free(ia);
    return rc;
}

int
gw_policy_decide(struct gh_arena *a, const struct gw_policy_call *call, struct gw_decision *out, struct gh_err *e)
{
    const struct authz_credential *w = call->who;
    const char *member = w->agent.untrusted ? w->user_id : NULL;
    struct cedar_request req = {0};
    struct cedar_err ce = {0};
    cedar_entities *es = NULL;
    cedar_arena *ca = NULL;
    struct pset *p = NULL;
    struct gw_facts f = {0};
    int rc = -1;

    *out = (struct gw_decision){ .allow = false, .decision = "deny" };
    if (gw_policy_facts(a, call, &f, e) < 0 ||
        (p = pset_get(a, w->agent.id, member, f.generation, e)) == NULL)
        goto out;
    if ((ca = cedar_arena_new(CALL_ARENA)) == NULL || (es = cedar_entities_new()) == NULL) {
        gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", "policy request");
        goto out;
    }
    if (build_request(a, ca, es, call, &f, &req, &ce) < 0) {
        /* what the caller sent cannot be a Cedar value: a clear deny */
        out->message = gh_arena_printf(a, "denied: the arguments cannot be evaluated (%s)",
                                       ce.msg[0] ? ce.msg : "invalid request");
        rc = 0;
        goto out;
    }
    if (call->render)
        out->request = gh_arena_printf(a, "principal: %s, action: %s, resource: %s, context: %s",
                                       cedar_value_to_string(ca, req.principal), cedar_value_to_string(ca, req.action),
                                       cedar_value_to_string(ca, req.resource), cedar_value_to_string(ca, req.context));
    if (member && p->nenforce == 0) {
        out->message = "denied: this agent is untrusted and no policy of yours allows anything yet; "
                       "ask an owner of the agent to add one";
        rc = 0;
        goto out;
    }
    rc = decide_with(a, p, ca, es, &req, out, e);
    /* a list not filtered still has every call of it decided */
    if (rc == 0 && out->allow && call->nitems > 0 && eval_items(a, p, call, &f, ca, e) < 0) {
        GH_LOG(WARN, "gw_policy", "list not filtered: %s", e->detail[0] ? e->detail : e->msg);
        gh_err_clear(e);
    }
out:
    if (rc == 0 && out->message == NULL)
        out->message = out->allow ? GW_POLICY_ALLOWED : "denied by policy";
    if (rc == 0 && !out->allow && call->session)
        gw_policy_count_denial(a, w->agent.id, call->session, f.calls);
    cedar_entities_free(es);
    cedar_arena_free(ca);
    if (p)
        pset_put(p);
    return rc;
}
