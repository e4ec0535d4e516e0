/*
 * gateway/methods.c — the MCP methods the endpoint serves: initialize,
 * the lists, the routed calls (tools/call, prompts/get, resources/read,
 * completion/complete), logging/setLevel, server/discover,
 * subscriptions/listen; dispatch, offloading of requests that may wait
 * for an upstream, and 2025-03-26 batches.
 */
#include "gateway/endpoint_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- methods */

static json_t *
capabilities(void)
{
    return json_pack("{s:{s:b}, s:{s:b, s:b}, s:{s:b}, s:{}, s:{}}", "tools", "listChanged", 1, "resources",
                     "listChanged", 1, "subscribe", 1, "prompts", "listChanged", 1, "logging",
                     "completions");
}

/* What a client is told (initialize, server/discover): completions and
 * resources.subscribe only while some enabled connector may serve them to
 * it (one that said so, or that this process has not heard from yet),
 * never when every one is known not to; the rest the gateway serves itself
 * (lists, list_changed, log levels passed on). */
static json_t *
announced(struct gw_mreq *m, bool stateless)
{
    json_t *caps = capabilities();
    struct gw_connector *conns = NULL;
    struct gh_err e = {0};
    bool sub = false, comp = false;
    int n = 0;

    if (gw_agg_connectors(m->a, m->who->agent.id, &conns, &n, &e) < 0)
        return caps;
    for (int i = 0; i < n; i++) {
        if (!conns[i].enabled || conns[i].unavailable)
            continue;
        sub = sub || gw_up_serves(conns[i].url, stateless, "resources", "subscribe") != 0;
        comp = comp || gw_up_serves(conns[i].url, stateless, "completions", NULL) != 0;
    }
    if (!sub)
        json_object_del(json_object_get(caps, "resources"), "subscribe");
    if (!comp)
        json_object_del(caps, "completions");
    return caps;
}

static json_t *
server_info(void)
{
    return json_pack("{s:s, s:s, s:s}", "name", "gatehouse", "title", "Gatehouse MCP gateway",
                     "version", "0.1.0");
}

int
gw_method_initialize(struct gw_mreq *m, json_t *id, json_t *params)
{
    const char *want = gh_json_str(params, "protocolVersion");
    const char *v = GW_PROTO_LATEST_SESSION;
    struct gh_err e = {0};
    char *wire = NULL;
    struct gw_evicted_up *evicted = NULL;
    int nevicted = 0;
    json_t *res;

    if (!json_is_object(params) || want == NULL) {
        return gw_deny(m, "initialize", "initialize without protocolVersion", 400, id, GW_RPC_INVALID_PARAMS,
                       "initialize needs params.protocolVersion.", NULL);
    }
    if (gw_proto_supported(want) && !gw_proto_is_stateless(want))
        v = want;
    m->s = gw_session_create(m->a, m->who, v, json_object_get(params, "clientInfo"),
                             json_object_get(params, "capabilities"), &wire, &evicted, &nevicted, &e);
    gw_up_end_evicted(m->a, m->who, evicted, nevicted);
    if (m->s == NULL) {
        gw_mreq_audit(m, "initialize");
        return gw_reply_failure(m->r, e.status ? e.status : 500, id, &e);
    }
    gh_arena_defer(m->a, gw_session_put_cb, m->s);
    m->proto = v;
    res = json_pack("{s:s, s:o, s:o, s:s}", "protocolVersion", v, "capabilities", announced(m, false),
                    "serverInfo", server_info(), "instructions",
                    "Tools, prompts and resources of this agent's connectors, named <prefix>__<name> (the prefix is the connector's name unless set; some have none).");
    m->new_session = wire;      /* sent with the reply once its row is committed */
    return gw_reply_audited(m, "initialize", id, res);
}

/* ---------------------------------------------------------------- resolving
 * What a request acts on is found before it is decided (dispatch); a
 * request that names nothing we have is refused here, before any decision
 * (its row carries no policy). */

static struct gw_connector *
conn_by_id(struct gw_list *l, const char *id)
{
    for (int i = 0; i < l->nconns; i++)
        if (!strcmp(l->conns[i].id, id))
            return &l->conns[i];
    return NULL;
}

static struct gw_connector *
conn_by_name(struct gw_list *l, const char *name)
{
    for (int i = 0; i < l->nconns; i++)
        if (!strcmp(l->conns[i].name, name) && l->conns[i].enabled)
            return &l->conns[i];
    return NULL;
}

/* The lists: the merged list; the resource is the agent, each item then
 * decided as its own call (policy_list.c). */
static bool
resolve_list(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params, struct gw_target *t,
             int *rc)
{
    const char *cursor = gh_json_str(params, "cursor");
    struct gh_err e = {0};
    int off;

    if (json_object_get(params, "cursor") && (cursor == NULL || gw_agg_cursor_parse(cursor, &off) < 0)) {
        *rc = gw_deny(m, mt->name, "invalid cursor", 200, id, GW_RPC_INVALID_PARAMS, "Invalid cursor.", NULL);
        return false;
    }
    if (gw_agg_list(m->a, m->s, m->who, mt->kind, &t->list, &e) < 0) {
        m->message = e.msg;
        gw_mreq_audit(m, mt->name);
        *rc = gw_reply_failure(m->r, 200, id, &e);
        return false;
    }
    t->kind = "Agent";
    t->name = m->who->agent.slug;
    t->filter = true;
    return true;
}

/* tools/call and prompts/get: by aggregated name. */
static bool
resolve_named(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params, struct gw_target *t,
              int *rc)
{
    enum gw_kind kind = mt->kind;
    const char *method = mt->name;
    const char *name = gh_json_str(params, "name");
    struct gh_err e = {0};
    const struct gw_entry *en;
    struct gw_connector *c;
    const char *down, *msg_needed;

    if (!json_is_object(params) || name == NULL) {
        *rc = gw_deny(m, method, "missing name", 200, id, GW_RPC_INVALID_PARAMS, "params.name is required.", NULL);
        return false;
    }
    if (kind == GW_TOOLS)
        m->tool = name;
    if (json_object_get(params, "arguments") && !json_is_object(json_object_get(params, "arguments"))) {
        *rc = gw_deny(m, method, "arguments not an object", 200, id, GW_RPC_INVALID_PARAMS,
                      "params.arguments must be an object.", NULL);
        return false;
    }
    if (gw_agg_list(m->a, m->s, m->who, kind, &t->list, &e) < 0) {
        m->message = e.msg;
        gw_mreq_audit(m, method);
        *rc = gw_reply_failure(m->r, 200, id, &e);
        return false;
    }
    en = gw_agg_find(&t->list, name);
    c = en ? conn_by_id(&t->list, en->connector_id) : NULL;
    down = c == NULL ? gw_agg_failed_owner(&t->list, name) : NULL;
    if (down && kind == GW_TOOLS && (msg_needed = gw_connection_needed(m->a, m->who, down)) != NULL) {
        /* a member without their own account there: a tool error naming the page */
        m->connector = down;
        *rc = gw_deny_tool(m, method, msg_needed, id, msg_needed);
        return false;
    }
    if (down) {
        /* its connector did not answer or cannot be called: say which */
        char *msg = gh_arena_printf(m->a, "Connector '%s' is unavailable.", down);
        m->connector = down;
        *rc = gw_deny(m, method, "connector unavailable", 200, id, GW_RPC_UPSTREAM,
                      msg ? msg : "Connector unavailable.", json_pack("{s:s}", "connector", down));
        return false;
    }
    if (c == NULL) {
        char *msg = gh_arena_printf(m->a, "Unknown %s: %s", kind == GW_TOOLS ? "tool" : "prompt", name);
        /* an unknown tool is a tool error (what the SDK servers answer, so a
         * client sees the same through the gateway); an unknown prompt is -32602 */
        *rc = kind == GW_TOOLS ? gw_deny_tool(m, method, msg, id, msg ? msg : "Unknown tool.")
                               : gw_deny(m, method, msg, 200, id, GW_RPC_INVALID_PARAMS, msg ? msg : "Unknown name.",
                                         NULL);
        return false;
    }
    if (kind == GW_TOOLS) {
        /* the row names the upstream's tool by its full name, not by the
         * shortened or rehashed one a client may see, which only says
         * which tool it is while the lists stay as they are */
        m->tool = gh_arena_printf(m->a, "%s__%s", c->name, en->orig);
        if (m->tool == NULL)
            m->tool = name;
        t->annotations = json_object_get(en->item, "annotations");
    }
    t->kind = kind == GW_TOOLS ? "Tool" : "Prompt";
    t->c = c;
    t->name = en->orig;
    t->arguments = json_object_get(params, "arguments");
    return true;
}

/* resources/read, resources/subscribe, resources/unsubscribe: by URI
 * (completion/complete's ref/resource too).
 * A listed URI names its connector; "gh://<connector>/<uri>" does too; a
 * URI made from a template goes to the connector whose template's fixed
 * prefix fits best; with one connector there is nothing to choose. */
static bool
resolve_uri_of(struct gw_mreq *m, const char *method, const char *uri, json_t *id, struct gw_target *t, int *rc)
{
    struct gw_list *l = &t->list, tl;
    struct gh_err e = {0};
    const struct gw_entry *en;
    struct gw_connector *c = NULL;
    char *cn, *orig = NULL;

    if (uri == NULL) {
        *rc = gw_deny(m, method, "missing uri", 200, id, GW_RPC_INVALID_PARAMS, "params.uri is required.", NULL);
        return false;
    }
    if (gw_agg_list(m->a, m->s, m->who, GW_RESOURCES, l, &e) < 0) {
        gw_mreq_audit(m, method);
        *rc = gw_reply_failure(m->r, 200, id, &e);
        return false;
    }
    en = gw_agg_find(l, uri);
    if (en) {
        c = conn_by_id(l, en->connector_id);
        orig = (char *)en->orig;
    } else if (gw_agg_uri_unwrap(m->a, uri, &cn, &orig) == 0) {
        c = conn_by_name(l, cn);
    } else {
        /* a templated URI: the connector whose template's fixed prefix fits best */
        size_t best = 0;
        if (gw_agg_list(m->a, m->s, m->who, GW_TEMPLATES, &tl, &e) == 0)
            for (int i = 0; i < tl.n; i++) {
                const char *tp = gh_json_str(tl.e[i].item, "uriTemplate");
                size_t fixed = tp ? strcspn(tp, "{") : 0;
                if (fixed > best && !strncmp(tp, uri, fixed)) {
                    best = fixed;
                    c = conn_by_id(&tl, tl.e[i].connector_id);
                }
            }
        orig = (char *)uri;
        if (c == NULL) {
            int n = 0;
            for (int i = 0; i < l->nconns; i++)
                if (l->conns[i].enabled)
                    c = n++ ? NULL : &l->conns[i];
            if (n != 1)
                c = NULL;
        }
    }
    if (c == NULL) {
        /* 2026-07-28 Resources, Error Handling: "servers MUST return a
         * JSON-RPC error with code -32602"; the session revisions: -32002 */
        *rc = gw_deny(m, method, "unknown resource", 200, id,
                      m->stateless ? GW_RPC_INVALID_PARAMS : GW_RPC_RESOURCE_NOT_FOUND_LEGACY, "Resource not found.",
                      json_pack("{s:s}", "uri", uri));
        return false;
    }
    t->kind = "Resource";
    t->c = c;
    t->name = orig;
    return true;
}

static bool
resolve_uri(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params, struct gw_target *t,
            int *rc)
{
    return resolve_uri_of(m, mt->name, gh_json_str(params, "uri"), id, t, rc);
}

/* completion/complete: the reference names a prompt or a resource (template),
 * which names the connector. */
static bool
resolve_complete(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params, struct gw_target *t,
                 int *rc)
{
    json_t *ref = json_object_get(params, "ref");
    const char *type = gh_json_str(ref, "type");
    struct gh_err e = {0};

    if (type && !strcmp(type, "ref/prompt") && gh_json_str(ref, "name")) {
        const struct gw_entry *en;
        if (gw_agg_list(m->a, m->s, m->who, GW_PROMPTS, &t->list, &e) < 0) {
            gw_mreq_audit(m, mt->name);
            *rc = gw_reply_failure(m->r, 200, id, &e);
            return false;
        }
        en = gw_agg_find(&t->list, gh_json_str(ref, "name"));
        if (en == NULL || (t->c = conn_by_id(&t->list, en->connector_id)) == NULL) {
            *rc = gw_deny(m, mt->name, "unknown prompt", 200, id, GW_RPC_INVALID_PARAMS, "Unknown prompt.", NULL);
            return false;
        }
        t->kind = "Prompt";
        t->name = en->orig;
        return true;
    }
    if (type && !strcmp(type, "ref/resource") && gh_json_str(ref, "uri"))
        return resolve_uri_of(m, mt->name, gh_json_str(ref, "uri"), id, t, rc);
    *rc = gw_deny(m, mt->name, "invalid ref", 200, id, GW_RPC_INVALID_PARAMS,
                  "params.ref must name a prompt or a resource.", NULL);
    return false;
}

/* ---------------------------------------------------------------- the decision */

/* The enforcement seam: every request whose method has an action in the
 * table passes here once (dispatch; a batch's tools/list), with its target
 * resolved, before it is forwarded or answered.  Fills the row's decision,
 * policies, message and shadow outcome; a list's items are decided with it
 * (policy_list.c).  False: denied. */
static bool
decide(struct gw_mreq *m, const struct gw_method *mt, struct gw_target *t)
{
    struct gw_decision d = {0};
    struct gh_err e = {0};
    struct gw_policy_call pc = {
        .who = m->who, .connector = t->c ? t->c->name : NULL, .tool = t->name,
        .annotations = t->annotations, .arguments = t->arguments,
        /* counters per session; per member on the stateless revision */
        .session = m->s && !m->stateless ? m->s->id_hash : gh_arena_printf(m->a, "member:%s", m->who->user_id),
        .client_ip = web_client_ip(m->r), .action = mt->action, .kind = t->kind,
    };

    if (t->filter)
        t->items = gw_policy_list_items(m->a, &t->list, &pc);
    if (t->c)
        m->connector = t->c->name;
    if (gw_policy_decide(m->a, &pc, &d, &e) < 0) {
        GH_LOG(WARN, "gw_policy", "no decision: %s", e.detail[0] ? e.detail : e.msg);
        d.allow = false;
        d.decision = "deny";
        d.message = "The policy could not be evaluated.";
    }
    m->decision = d.decision ? d.decision : (d.allow ? "allow" : "deny");
    m->policy_ids = d.policy_ids;
    m->policy_versions = d.policy_versions;
    m->policy_shadow = d.shadow;
    m->message = d.message;
    if (d.allow)
        gw_policy_list_drop(&t->list, t->items);
    return d.allow;
}

/* A denied request: tools/call is a tool result with isError (MCP: a
 * tool's failure is the model's to read), the other methods a JSON-RPC
 * error, both with the determining forbid's @message. */
static int
refuse(struct gw_mreq *m, const struct gw_method *mt, json_t *id)
{
    const char *text = m->message ? m->message : "Denied by policy.";

    if (!strcmp(mt->name, "tools/call"))
        return gw_deny_tool(m, mt->name, m->message, id, text);
    return gw_deny(m, mt->name, m->message, 200, id, GW_RPC_DENIED, text, NULL);
}

/* ---------------------------------------------------------------- the methods */

static const char *
list_field(enum gw_kind k)
{
    static const char *const f[] = { "tools", "prompts", "resources", "resourceTemplates" };
    return f[k];
}

static int
do_list(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    struct gw_list *l = &m->target->list;
    const char *cursor = gh_json_str(params, "cursor");
    int off = 0, page = (int)gh_cfg.mcp_page_size;
    json_t *items, *res;

    if (cursor)
        gw_agg_cursor_parse(cursor, &off);      /* checked when it was resolved */
    items = json_array();
    for (int i = off; i < l->n && i < off + page; i++)
        json_array_append(items, l->e[i].item);
    res = json_pack("{s:o}", list_field(mt->kind), items);
    if (off + page < l->n)
        json_object_set_new(res, "nextCursor", json_string(gw_agg_cursor_make(m->a, off + page)));
    if (l->nfailed) {
        json_t *f = json_array();
        for (int i = 0; i < l->nfailed; i++)
            json_array_append_new(f, json_string(l->failed[i]));
        json_object_set_new(res, "_meta", json_pack("{s:o}", "io.gatehouse/unavailableConnectors", f));
    }
    return gw_reply_audited(m, mt->name, id, res);
}

/* tools/call and prompts/get: forwarded under the upstream's name. */
static int
do_named(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    json_t *up = gh_arena_json(m->a, json_deep_copy(params));

    json_object_set_new(up, "name", json_string(m->target->name));
    return gw_forward(m, m->target->c, id, mt->name, up);
}

static int
do_uri(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    json_t *up = gh_arena_json(m->a, json_deep_copy(params));

    json_object_set_new(up, "uri", json_string(m->target->name));
    return gw_forward(m, m->target->c, id, mt->name, up);
}

static int
do_complete(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    json_t *up = gh_arena_json(m->a, json_deep_copy(params));
    json_t *ref = json_object_get(up, "ref");

    json_object_set_new(ref, strcmp(m->target->kind, "Prompt") ? "uri" : "name", json_string(m->target->name));
    return gw_forward(m, m->target->c, id, mt->name, up);
}

/* fn(m, target, ctx) for every enabled connector of the request's agent
 * whose credential for this member is at hand; blocking work is fn's. */
static void
each_upstream(struct gw_mreq *m, void (*fn)(struct gw_mreq *, struct gw_call_target *, void *), void *ctx)
{
    struct gw_connector *conns = NULL;
    int n = 0;
    struct gh_err e = {0};

    if (gw_agg_connectors(m->a, m->who->agent.id, &conns, &n, &e) < 0)
        return;
    for (int i = 0; i < n; i++) {
        struct gw_call_target t = { m->s, &conns[i], NULL, 0 };
        struct gh_err ue = {0};
        if (conns[i].enabled &&
            gw_connector_auth_headers(m->a, &conns[i], m->who, &t.headers, &t.nheaders, &ue) == 0)
            fn(m, &t, ctx);
    }
}

static void
set_level_one(struct gw_mreq *m, struct gw_call_target *t, void *params)
{
    struct gh_err e = {0};

    gw_up_rpc_sync(m->a, t, "logging/setLevel", params, NULL, &e);
}

/* logging/setLevel: every connector of the session gets it. */
static int
do_set_level(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    if (!json_is_string(json_object_get(params, "level"))) {
        return gw_deny(m, "logging/setLevel", "invalid params", 200, id, GW_RPC_INVALID_PARAMS,
                       "params.level is required.", NULL);
    }
    if (m->s) {
        pthread_mutex_lock(&m->s->lock);
        snprintf(m->s->log_level, sizeof(m->s->log_level), "%s", gh_json_str(params, "level"));
        pthread_mutex_unlock(&m->s->lock);
    }
    each_upstream(m, set_level_one, params);
    return gw_reply_audited(m, "logging/setLevel", id, json_object());
}

static void
listen_one(struct gw_mreq *m, struct gw_call_target *t, void *ctx)
{
    struct gh_err e = {0};

    (void)ctx;
    if (gw_up_ensure(m->a, t, false, &e) < 0)
        GH_LOG(INFO, "gw_listen", "connector %s not listened to: %s", t->c->name,
               e.detail[0] ? e.detail : e.msg);
}

static int
do_listen(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    json_t *filter = json_object_get(params, "notifications");
    struct gw_listener *l;
    json_t *ack, *agreed;

    if (filter && !json_is_object(filter)) {
        return gw_deny(m, "subscriptions/listen", "invalid params", 200, id, GW_RPC_INVALID_PARAMS,
                       "params.notifications must be an object.", NULL);
    }
    if (gw_mreq_audit(m, "subscriptions/listen") < 0)
        return gw_reply_audit_down(m->r, id);
    /* the upstreams' own list changes come through the member's implicit
     * state: its upstream sessions and their streams must exist, even if
     * nothing else was asked yet (may_block sent us off the server thread) */
    if (m->stateless && m->s)
        each_upstream(m, listen_one, NULL);
    l = gw_listener_open(m, id, filter ? filter : json_object_get(params, "notifications"));
    if (l == NULL)
        return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
    if (filter == NULL)
        l->tools = l->prompts = l->resources = false;
    agreed = json_object();
    if (l->tools)
        json_object_set_new(agreed, "toolsListChanged", json_true());
    if (l->prompts)
        json_object_set_new(agreed, "promptsListChanged", json_true());
    if (l->resources)
        json_object_set_new(agreed, "resourcesListChanged", json_true());
    ack = json_pack("{s:s, s:s, s:{s:o}}", "jsonrpc", "2.0", "method",
                    "notifications/subscriptions/acknowledged", "params", "notifications", agreed);
    json_object_set_new(json_object_get(ack, "params"), "_meta",
                        json_pack("{s:O}", "io.modelcontextprotocol/subscriptionId", id));
    gw_listener_start(m, l, ack);
    json_decref(ack);
    return 0;
}

static int
do_discover(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    json_t *caps = announced(m, true);
    json_t *res;

    /* "subscribe: whether the server supports resource-specific update
     * notifications for resources requested through subscriptions/listen
     * using the resourceSubscriptions filter": this listen does not */
    json_object_del(json_object_get(caps, "resources"), "subscribe");
    res = json_pack("{s:[s,s,s,s], s:o, s:{s:o}, s:s}", "supportedVersions",
                    GW_PROTO_2026_07_28, GW_PROTO_2025_11_25, GW_PROTO_2025_06_18, GW_PROTO_2025_03_26,
                    "capabilities", caps, "_meta", "io.modelcontextprotocol/serverInfo",
                    server_info(), "instructions",
                    "Tools, prompts and resources of this agent's connectors, named <prefix>__<name> (the prefix is the connector's name unless set; some have none).");
    return gw_reply_audited(m, "server/discover", id, res);
}

static int
do_ping(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    (void)params;
    return gw_reply_audited(m, mt->name, id, json_object());
}

static int
do_reinit(struct gw_mreq *m, const struct gw_method *mt, json_t *id, json_t *params)
{
    (void)params;
    return gw_deny(m, mt->name, "already initialized", 400, id, GW_RPC_INVALID_REQUEST,
                   "The session is already initialized.", NULL);
}

static json_t *batch_ping(struct gw_mreq *m, json_t *id, const char **why);
static json_t *batch_tools(struct gw_mreq *m, json_t *id, const char **why);

/* ---------------------------------------------------------------- the method table
 * One row per MCP method: its handler, the revisions that have it (a
 * method outside its revisions is "Method not found": 404 in 2026-07-28,
 * which removed ping, logging/setLevel and resources/(un)subscribe, Key
 * Changes 4 and 5 — served, they would leave state on the member's shared
 * upstream sessions that later stateless requests inherit), what it may
 * wait for (may_block), its answer inside a 2025-03-26 batch, the param
 * the 2026-07-28 Mcp-Name header mirrors, and the policy action of the
 * methods that pass the enforcement seam.  initialize is answered by the
 * endpoint before dispatch (gw_method_initialize); its row refuses a
 * second one. */

#define SESS GW_REV_SESSION
#define ALL  GW_REV_ALL
#define NEW  GW_REV_2026_07_28
#define NONE GW_WAIT_NONE
#define LISTS GW_WAIT_LISTS
static const struct gw_method methods[] = {
    /* name                     handler       revs  waits for           lists it reads           batch        Mcp-Name action                     resolve */
    { "initialize",             do_reinit,    SESS, NONE,               GW_TOOLS, GW_TOOLS,         NULL,        NULL,  NULL,                      NULL },
    { "ping",                   do_ping,      SESS, NONE,               GW_TOOLS, GW_TOOLS,         batch_ping,  NULL,  NULL,                      NULL },
    { "tools/list",             do_list,      ALL,  LISTS,              GW_TOOLS, GW_TOOLS,         batch_tools, NULL,  "tools/list",              resolve_list },
    { "tools/call",             do_named,     ALL,  LISTS,              GW_TOOLS, GW_TOOLS,         NULL,        "name", "tools/call",             resolve_named },
    { "prompts/list",           do_list,      ALL,  LISTS,              GW_PROMPTS, GW_PROMPTS,     NULL,        NULL,  "prompts/list",            resolve_list },
    { "prompts/get",            do_named,     ALL,  LISTS,              GW_PROMPTS, GW_PROMPTS,     NULL,        "name", "prompts/get",            resolve_named },
    { "resources/list",         do_list,      ALL,  LISTS,              GW_RESOURCES, GW_RESOURCES, NULL,        NULL,  "resources/list",          resolve_list },
    { "resources/templates/list", do_list,    ALL,  LISTS,              GW_TEMPLATES, GW_TEMPLATES, NULL,        NULL,  "resources/templates/list", resolve_list },
    { "resources/read",         do_uri,       ALL,  LISTS,              GW_RESOURCES, GW_TEMPLATES, NULL,        "uri", "resources/read",          resolve_uri },
    { "resources/subscribe",    do_uri,       SESS, LISTS,              GW_RESOURCES, GW_TEMPLATES, NULL,        NULL,  "resources/subscribe",     resolve_uri },
    { "resources/unsubscribe",  do_uri,       SESS, LISTS,              GW_RESOURCES, GW_TEMPLATES, NULL,        NULL,  "resources/unsubscribe",   resolve_uri },
    { "completion/complete",    do_complete,  ALL,  LISTS,              GW_PROMPTS, GW_TEMPLATES,   NULL,        NULL,  "completion/complete",     resolve_complete },
    { "logging/setLevel",       do_set_level, SESS, GW_WAIT_UPSTREAMS,  GW_TOOLS, GW_TOOLS,         NULL,        NULL,  "logging/setLevel",        NULL },
    { "server/discover",        do_discover,  NEW,  NONE,               GW_TOOLS, GW_TOOLS,         NULL,        NULL,  NULL,                      NULL },
    { "subscriptions/listen",   do_listen,    NEW,  GW_WAIT_HANDSHAKES, GW_TOOLS, GW_TOOLS,         NULL,        NULL,  "subscriptions/listen",    NULL },
};
#undef SESS
#undef ALL
#undef NEW
#undef NONE
#undef LISTS

const struct gw_method *
gw_method_find(const char *name, const char *proto)
{
    unsigned rev = gw_proto_rev(proto);

    for (size_t i = 0; name && i < GH_ARRAY_LEN(methods); i++)
        if (!strcmp(methods[i].name, name))
            return methods[i].revs & rev ? &methods[i] : NULL;
    return NULL;
}

/* One request (session or stateless; the session is in m->s). */
static int
dispatch(struct gw_mreq *m, const char *method, json_t *id, json_t *params)
{
    const struct gw_method *mt = gw_method_find(method, m->proto);

    m->method = method;
    if (params && !json_is_object(params))
        return gw_deny(m, method, "params not an object", 200, id, GW_RPC_INVALID_PARAMS,
                       "params must be an object.", NULL);
    if (mt == NULL)
        return gw_deny(m, method, "method not found", m->stateless ? 404 : 200, id, GW_RPC_METHOD_NOT_FOUND,
                       "Method not found.", NULL);
    if (mt->action) {
        /* resolve, decide, then run: the one place a method's policy applies */
        struct gw_target *t = gh_arena_alloc(m->a, sizeof(*t));
        int rc = 0;
        if (t == NULL)
            return gw_reply_rpc_error(m->r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
        *t = (struct gw_target){ .kind = "Agent", .name = m->who->agent.slug };
        if (mt->resolve && !mt->resolve(m, mt, id, params, t, &rc))
            return rc;
        if (!decide(m, mt, t))
            return refuse(m, mt, id);
        m->target = t;
    }
    return mt->run(m, mt, id, params);
}

/* ---------------------------------------------------------------- offloading
 * A request that needs something from an upstream first (a handshake, a
 * list not cached yet, logging/setLevel's round of calls) may wait for
 * seconds; on a server thread that would stall every other connection the
 * thread serves.  Such requests run on the offload pool instead, the
 * connection waiting without a thread (web_offload_begin).  The common case
 * — a session whose upstreams are known and lists cached — stays here. */

struct offload {
    struct gw_mreq m;
    const char *method;
    json_t     *id, *params;
    json_t     *batch;              /* instead of method: a 2025-03-26 batch */
};

static int batch_run(struct gw_mreq *m, json_t *batch);

static bool
may_block(struct gw_mreq *m, const struct gw_method *mt)
{
    switch (mt->wait) {
    case GW_WAIT_UPSTREAMS:
        return true;
    case GW_WAIT_HANDSHAKES:
        return m->stateless && m->s && !gw_agg_warm(m->a, m->s, GW_NKINDS);
    case GW_WAIT_LISTS:
        return !gw_agg_warm(m->a, m->s, mt->kind) || !gw_agg_warm(m->a, m->s, mt->also);
    default:
        return false;
    }
}

static void
offload_run(void *ctx)
{
    struct offload *o = ctx;
    struct web_req *r = o->m.r;

    gh_log_context(web_request_id(r), web_route_pattern(r));
    if (o->batch)
        batch_run(&o->m, o->batch);
    else
        dispatch(&o->m, o->method, o->id, o->params);
    gh_log_context(NULL, NULL);
    web_offload_end(r);         /* the last use of r (and of o, in its arena) */
}

/* Hands o to the offload pool: the connection waits without a server thread. */
static int
offload(struct offload *o)
{
    web_offload_begin(o->m.r);
    if (gw_offload_post(offload_run, o) < 0)
        offload_run(o);         /* stopping: here, then */
    return 0;
}

int
gw_dispatch_or_offload(struct gw_mreq *m, const char *method, json_t *id, json_t *params)
{
    const struct gw_method *mt = gw_method_find(method, m->proto);
    struct offload *o;

    if (mt == NULL || !may_block(m, mt) || (o = gh_arena_alloc(m->a, sizeof(*o))) == NULL)
        return dispatch(m, method, id, params);
    *o = (struct offload){ *m, method, id, params, NULL };
    return offload(o);
}

/* A 2025-03-26 batch: requests answered together in one JSON array (the
 * forwarded ones are not streamed in a batch).  At most
 * GATEHOUSE_MCP_BATCH_MAX messages; the audit rows of the answered ones go
 * to the writer together, one group commit and one wait for the batch. */

static json_t *
batch_ping(struct gw_mreq *m, json_t *id, const char **why)
{
    (void)m;
    (void)why;
    return gw_rpc_result(id, json_object());
}

/* tools/list inside a batch: the whole list (no paging in a batch),
 * decided and filtered as alone. */
static json_t *
batch_tools(struct gw_mreq *m, json_t *id, const char **why)
{
    const struct gw_method *mt = gw_method_find("tools/list", m->proto);
    struct gw_target t = { .kind = "Agent", .name = m->who->agent.slug, .filter = true };
    struct gw_list *l = &t.list;
    struct gh_err e = {0};
    json_t *items, *res;

    if (gw_agg_list(m->a, m->s, m->who, GW_TOOLS, l, &e) < 0) {
        *why = e.msg[0] ? gh_arena_strdup(m->a, e.msg) : "Internal error.";
        return gw_rpc_error(id, GW_RPC_INTERNAL, *why, NULL);
    }
    if (mt == NULL || !decide(m, mt, &t)) {
        *why = m->message ? m->message : "Denied by policy.";
        return gw_rpc_error(id, GW_RPC_DENIED, *why, NULL);
    }
    items = json_array();
    for (int k = 0; k < l->n; k++)
        json_array_append(items, l->e[k].item);
    res = json_pack("{s:o}", "tools", items);
    if (l->nfailed) {
        json_t *f = json_array();
        for (int i = 0; i < l->nfailed; i++)
            json_array_append_new(f, json_string(l->failed[i]));
        json_object_set_new(res, "_meta", json_pack("{s:o}", "io.gatehouse/unavailableConnectors", f));
    }
    return gw_rpc_result(id, res);
}

static int
batch_run(struct gw_mreq *m, json_t *batch)
{
    size_t i, size = json_array_size(batch);
    json_t *msg, *out;
    struct gw_audit *rows;
    struct gh_err e = {0};
    int nrows = 0;

    rows = gh_arena_alloc(m->a, sizeof(*rows) * size);
    out = gh_arena_json(m->a, json_array());
    if (rows == NULL || out == NULL)
        return gw_reply_rpc_error(m->r, 500, NULL, GW_RPC_INTERNAL, "Internal error.", NULL);
    json_array_foreach(batch, i, msg) {
        const char *method = gw_msg_method(msg), *why = NULL;
        json_t *id = json_object_get(msg, "id");
        const struct gw_method *mt;

        m->start_us = gh_now_us();
        /* each message's row its own decision */
        m->decision = m->message = m->policy_ids = m->policy_versions = m->policy_shadow = NULL;
        m->connector = NULL;
        if (gw_msg_invalid(msg)) {
            gw_mreq_row(m, method, "deny", "invalid request", &rows[nrows++]);
            json_array_append_new(out, gw_rpc_error(NULL, GW_RPC_INVALID_REQUEST, "Invalid request.", NULL));
            continue;
        }
        if (method == NULL || id == NULL) {
            /* notifications and responses: nothing to answer; acted on
             * (below) once their rows are committed, as when sent alone */
            gw_mreq_row(m, method ? method : "(response)", NULL, NULL, &rows[nrows++]);
            continue;
        }
        if (!gw_valid_id(id)) {
            gw_mreq_row(m, method, "deny", "invalid id", &rows[nrows++]);
            json_array_append_new(out, gw_rpc_error(NULL, GW_RPC_INVALID_REQUEST, "Invalid id.", NULL));
        } else if ((mt = gw_method_find(method, m->proto)) && mt->in_batch) {
            json_array_append_new(out, mt->in_batch(m, id, &why));
            gw_mreq_row(m, method, m->decision, why ? why : m->message, &rows[nrows++]);
        } else {
            gw_mreq_row(m, method, "deny", "not available in a batch", &rows[nrows++]);
            json_array_append_new(out, gw_rpc_error(id, GW_RPC_INVALID_REQUEST,
                                                 "Only ping and tools/list are served inside a batch.", NULL));
        }
    }
    /* no answer leaves before its row is committed */
    if (gw_audit_write_many(rows, nrows, &e) < 0) {
        GH_LOG(ERROR, "gw_audit", "audit rows of a batch not written: %s", e.detail[0] ? e.detail : e.msg);
        if (e.retry_after)
            web_add_header(m->r, "Retry-After", gh_arena_printf(m->a, "%d", e.retry_after));
        return gw_reply_rpc_error(m->r, 503, NULL, GW_RPC_INTERNAL, "The audit log is unavailable.", NULL);
    }
    json_array_foreach(batch, i, msg) {
        const char *method = gw_msg_method(msg);
        json_t *id = json_object_get(msg, "id");

        if (!gw_msg_invalid(msg) && (method == NULL) != (id == NULL))
            gw_client_note(m->s, method, msg);     /* not a request (answered above), not invalid */
    }
    if (json_array_size(out) == 0)
        return web_reply(m->r, 202, NULL, "", 0);
    return web_reply_json(m->r, 200, json_incref(out));
}

/* A batch that passed the endpoint's checks: answered here, or on the
 * offload pool when a method in it may wait for the upstreams. */
int
gw_batch_serve(struct gw_mreq *m, json_t *batch)
{
    size_t i;
    json_t *msg;

    json_array_foreach(batch, i, msg) {
        const struct gw_method *mt = gw_method_find(json_is_object(msg) ? gw_msg_method(msg) : NULL, m->proto);
        if (mt && mt->in_batch && may_block(m, mt)) {
            struct offload *o = gh_arena_alloc(m->a, sizeof(*o));
            if (o == NULL)
                break;
            *o = (struct offload){ *m, NULL, NULL, NULL, batch };
            return offload(o);
        }
    }
    return batch_run(m, batch);
}
