/*
 * gateway/mcp.c — the MCP endpoint: /mcp (default agent) and
 * /agents/STAR/mcp, Streamable HTTP in both protocol generations.
 *
 * A POST is checked in this order: Host/Origin (DNS rebinding), the
 * credential, the body limit, Content-Type and Accept, the JSON-RPC shape,
 * then the protocol generation: a request whose _meta carries a protocol version
 * (or whose MCP-Protocol-Version header says 2026-07-28) is served
 * statelessly; anything else belongs to an initialize-made session.
 *
 * The methods are methods.c's (its table); a forwarded call is call.c's,
 * a listen stream listen.c's.  This file is the top of the gateway's
 * stack: it also takes what the layers below report through their hooks
 * (an upstream's own notifications, gw_up_watch) and runs the ticker.
 */
#include "gateway/endpoint_int.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- refusals before authentication */

static const char *
slug_of(struct web_req *r)
{
    const char *slug = web_path_param(r, 0);
    return slug && *slug ? slug : "default";
}

/* A request refused before it is authenticated (Host, Origin, no token, a
 * bad one, one of another agent or without the mcp scope) writes its audit
 * row like any other, under the agent its path names, before the refusal
 * leaves: the member when the token is live, else only the kind an unknown
 * token claims; the method is the HTTP one (the body of an unauthenticated
 * request is not read).  Those rows are budgeted per client IP
 * (rate_mcp_refused_per_min): past it the answer is a 429 and only the
 * access log has the request, so a flood of bad tokens cannot fill the
 * table.  No row for an unknown agent (a 404 like any unknown path).
 * true when the caller sends its refusal; false when the 429 went instead. */
static bool
audit_refusal(struct web_req *r, const struct authz_agent *ag, const struct authz_credential *who,
              const char *claimed_kind, const char *message)
{
    struct authz_credential as = {0};
    struct gw_audit row;
    struct gh_err e = {0};

    if (ag == NULL)
        return true;
    if (authz_rate_check(r, "mcp_refused", gh_cfg.rate_mcp_refused_per_min, &e) < 0) {
        web_reply_err(r, &e);
        return false;
    }
    if (who)
        as = *who;
    else
        as.kind = claimed_kind;
    as.agent = *ag;     /* the row names the agent asked, not the token's */
    row = (struct gw_audit){
        .who = &as,
        .agent_id = ag->id,
        .method = web_method(r),
        .decision = "deny",
        .message = message,
        .duration_us = -1,
    };
    if (gw_audit_write(&row, &e) < 0)
        GH_LOG(ERROR, "gw_audit", "audit row of a refusal not written: %s", e.detail[0] ? e.detail : e.msg);
    return true;
}

/* 0 when fine; otherwise the reply has been sent. */
static int
check_rebinding(struct web_req *r)
{
    const char *host = web_header(r, "Host"), *origin = web_header(r, "Origin");
    const char *why = NULL;
    struct gh_err e = {0};
    int status = 0;

    if (host == NULL || !gw_host_allowed(host)) {
        status = 421;
        why = "Host not allowed.";
    } else if (origin && !gw_origin_allowed(origin)) {
        status = 403;
        why = "Origin not allowed.";
    }
    if (why == NULL)
        return 0;
    if (audit_refusal(r, authz_agent_by_slug(web_arena(r), slug_of(r), &e), NULL, NULL, why))
        gw_reply_rpc_error(r, status, NULL, GW_RPC_INVALID_REQUEST, why, NULL);
    return -1;
}

/* ---------------------------------------------------------------- authentication */

/* The request's credential, or NULL when the reply was sent.  *serial is
 * gw_listen_serial() as it was before the credential was looked at. */
static const struct authz_credential *
authenticate(struct web_req *r, uint64_t *serial)
{
    struct gh_arena *a = web_arena(r);
    const struct authz_credential *who;
    struct authz_mcp_refusal no;

    *serial = gw_listen_serial();

    if (gh_cfg.test_unauthenticated_mcp && web_header(r, "Authorization") == NULL) {
        struct gh_err e = {0};
        struct authz_agent *ag = authz_agent_by_slug(a, slug_of(r), &e);
        struct authz_credential *cr;
        if (ag == NULL) {
            web_reply_err(r, &e);
            return NULL;
        }
        cr = gh_arena_alloc(a, sizeof(*cr));
        if (cr == NULL) {
            gh_err_set(&e, 500, "server_error", "internal error", "out of memory");
            web_reply_err(r, &e);
            return NULL;
        }
        cr->kind = "test";
        cr->client_name = "unauthenticated test mode";
        cr->scope = "mcp";
        cr->agent = *ag;
        return cr;
    }
    who = authz_mcp_authenticate(r, slug_of(r), &no);
    if (who == NULL && no.e.status >= 500) {
        /* the database is away: still a JSON-RPC answer, with when to come back */
        GH_LOG(ERROR, "gw_auth", "%d: %s", no.e.status, no.e.detail[0] ? no.e.detail : no.e.msg);
        gw_reply_failure(r, no.e.status, NULL, &no.e);
    } else if (who == NULL && audit_refusal(r, no.agent, no.who, no.claimed_kind, no.e.msg)) {
        web_reply_err(r, &no.e);
    }
    if (who && who->agent.disabled) {
        /* the kill switch (authz_agent_set_disabled): refused and audited
         * under the member; their credentials stay for when it is back on */
        static const char off[] = "This agent was disabled by its owner.";
        if (audit_refusal(r, &who->agent, who, NULL, off))
            gw_reply_rpc_error(r, 403, NULL, GW_RPC_INVALID_REQUEST, off, NULL);
        return NULL;
    }
    return who;
}

/* 2026-07-28: the mirrored headers must match the body (gw_stateless_check). */
static int
check_stateless_headers(struct gw_mreq *m, const char *method, json_t *params, json_t *id)
{
    const struct gw_method *mt = gw_method_find(method, GW_PROTO_2026_07_28);
    struct gw_stateless_hdrs h = {
        .version = web_header(m->r, "MCP-Protocol-Version"),
        .method = web_header(m->r, "Mcp-Method"),
        .name = web_header(m->r, "Mcp-Name"),
        .nversion = web_header_count(m->r, "MCP-Protocol-Version"),
        .nmethod = web_header_count(m->r, "Mcp-Method"),
        .nname = web_header_count(m->r, "Mcp-Name"),
    };
    const char *mv = gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/protocolVersion");
    json_t *meta = json_object_get(params, "_meta");
    bool unsupported = false;
    const char *why;
    char *text;

    /* the revision's required request metadata: without it a request for
     * a method of the revision is malformed (-32602), before any header is
     * compared with it (a removed or unknown method is a 404 further on) */
    if (mt && (!json_is_object(meta) || !json_is_string(json_object_get(meta, "io.modelcontextprotocol/protocolVersion")) ||
        !json_is_object(json_object_get(meta, "io.modelcontextprotocol/clientCapabilities")))) {
        gw_deny(m, method, "request _meta incomplete", 400, id, GW_RPC_INVALID_PARAMS,
                "Invalid params: _meta must carry io.modelcontextprotocol/protocolVersion and "
                "io.modelcontextprotocol/clientCapabilities.", NULL);
        return -1;
    }
    why = gw_stateless_check(m->a, &h, method, params, mt ? mt->mcp_name : NULL, &unsupported);

    if (unsupported) {
        gw_deny(m, method, "unsupported protocol version", 400, id, GW_RPC_UNSUPPORTED_VER,
                "Unsupported protocol version",
                json_pack("{s:[s,s,s,s], s:s}", "supported", GW_PROTO_2026_07_28, GW_PROTO_2025_11_25,
                          GW_PROTO_2025_06_18, GW_PROTO_2025_03_26, "requested", mv));
        return -1;
    }
    if (why == NULL)
        return 0;
    text = gh_arena_printf(m->a, "Header mismatch: %s", why);
    gw_deny(m, method, text, 400, id, GW_RPC_HEADER_MISMATCH, text ? text : "Header mismatch", NULL);
    return -1;
}


/* ---------------------------------------------------------------- handlers */

static void
mreq_init(struct gw_mreq *m, struct web_req *r, const struct authz_credential *who)
{
    memset(m, 0, sizeof(*m));
    m->r = r;
    m->a = web_arena(r);
    m->who = who;
    m->start_us = gh_now_us();
}

/* What every request to the endpoint passes first, in this order: Host and
 * Origin, the credential (refusals before authentication: audit_refusal),
 * then a body over GATEHOUSE_HTTP_MAX_BODY, which the web layer leaves to
 * us (WEB_OWN_413) because the request reached the gateway all the same:
 * 413 with the member's row (the method is the HTTP one: the body is not
 * read).  The credential with m ready, or NULL when the reply was sent. */
static const struct authz_credential *
mcp_begin(struct web_req *r, struct gw_mreq *m)
{
    const struct authz_credential *who;
    uint64_t serial;

    if (check_rebinding(r) < 0 || (who = authenticate(r, &serial)) == NULL)
        return NULL;
    mreq_init(m, r, who);
    m->cred_serial = serial;
    /* one field line each: a proxy that reads the last of two and we, who
     * read the first, would disagree on the session or the revision.  A
     * POST's MCP-Protocol-Version is checked with its body (stateless:
     * HeaderMismatch; else check_version_header). */
    if (web_header_count(r, "Mcp-Session-Id") > 1 ||
        (strcmp(web_method(r), "POST") && web_header_count(r, "MCP-Protocol-Version") > 1)) {
        gw_deny(m, web_method(r), "repeated header", 400, NULL, GW_RPC_INVALID_REQUEST,
                "Mcp-Session-Id and MCP-Protocol-Version may each be sent once.", NULL);
        return NULL;
    }
    if (web_body_too_large(r)) {
        gw_deny(m, web_method(r), "request body too large", 413, NULL, GW_RPC_INVALID_REQUEST,
                "Request body too large.", NULL);
        return NULL;
    }
    return who;
}

/* The session named by the Mcp-Session-Id header: 0, or the reply is sent. */
static int
require_session(struct gw_mreq *m, const char *method, json_t *id)
{
    const char *sid = web_header(m->r, "Mcp-Session-Id");
    struct gh_err e = {0};

    if (sid == NULL) {
        gw_deny(m, method, "missing session", 400, id, GW_RPC_INVALID_REQUEST,
                "Mcp-Session-Id header required.", NULL);
        return -1;
    }
    m->s = gw_session_get(m->a, sid, m->who, &e);
    if (m->s == NULL && e.status == 404) {
        gw_deny(m, method, "unknown session", 404, id, GW_RPC_INVALID_REQUEST,
                e.msg[0] ? e.msg : "Session not found.", NULL);
        return -1;
    }
    if (m->s == NULL) {
        m->decision = "deny";
        m->message = "session lookup failed";
        gw_mreq_audit(m, method);
        gw_reply_failure(m->r, e.status ? e.status : 500, id, &e);
        return -1;
    }
    gh_arena_defer(m->a, gw_session_put_cb, m->s);
    m->proto = m->s->proto;
    return 0;
}

static int
check_version_header(struct gw_mreq *m, const char *method, json_t *id)
{
    const char *hv = web_header(m->r, "MCP-Protocol-Version");

    if (web_header_count(m->r, "MCP-Protocol-Version") > 1) {
        gw_deny(m, method, "repeated header", 400, id, GW_RPC_INVALID_REQUEST,
                "MCP-Protocol-Version may be sent once.", NULL);
        return -1;
    }
    if (hv && (!gw_proto_supported(hv) || gw_proto_is_stateless(hv))) {
        gw_deny(m, method, "unsupported protocol version", 400, id, GW_RPC_INVALID_REQUEST,
                "Unsupported MCP-Protocol-Version.",
                json_pack("{s:[s,s,s], s:s}", "supported", GW_PROTO_2025_11_25, GW_PROTO_2025_06_18,
                          GW_PROTO_2025_03_26, "requested", hv));
        return -1;
    }
    return 0;
}

static int
do_batch(struct gw_mreq *m, json_t *batch)
{
    size_t size = json_array_size(batch);

    if (size == 0) {
        return gw_deny(m, "(batch)", "empty batch", 400, NULL, GW_RPC_INVALID_REQUEST, "Empty batch.", NULL);
    }
    if (require_session(m, "(batch)", NULL) < 0 || check_version_header(m, "(batch)", NULL) < 0)
        return 0;
    if (size > (size_t)gh_cfg.mcp_batch_max) {
        return gw_deny(m, "(batch)", "batch too long", 400, NULL, GW_RPC_INVALID_REQUEST,
                       gh_arena_printf(m->a, "A batch may hold at most %ld messages.", gh_cfg.mcp_batch_max),
                       json_pack("{s:I}", "maxBatchSize", (json_int_t)gh_cfg.mcp_batch_max));
    }
    if (strcmp(m->s->proto, GW_PROTO_2025_03_26)) {
        return gw_deny(m, "(batch)", "batch in a revision without batches", 400, NULL, GW_RPC_INVALID_REQUEST,
                       "JSON-RPC batches are not supported in this protocol revision.", NULL);
    }
    return gw_batch_serve(m, batch);
}

/* Answers the messages of a batch that passed do_batch's checks. */

static int
mcp_post(struct web_req *r)
{
    const struct authz_credential *who;
    struct gw_mreq m;
    const char *ct, *method;
    json_t *body, *id, *params;
    json_error_t je;
    size_t len;
    const char *raw;
    bool stateless;

    if ((who = mcp_begin(r, &m)) == NULL)
        return 0;
    ct = web_header(r, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) || (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        return gw_deny(&m, NULL, "unsupported content type", 415, NULL, GW_RPC_INVALID_REQUEST,
                       "Content-Type must be application/json.", NULL);
    }
    if (!gw_accepts(web_header(r, "Accept"), "application/json") ||
        !gw_accepts(web_header(r, "Accept"), "text/event-stream")) {
        return gw_deny(&m, NULL, "not acceptable", 406, NULL, GW_RPC_INVALID_REQUEST,
                       "Accept must list application/json and text/event-stream.", NULL);
    }
    raw = web_body(r, &len);
    body = gh_arena_json(m.a, json_loadb(raw, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je));
    if (body == NULL) {
        return gw_deny(&m, NULL, "parse error", 400, NULL, GW_RPC_PARSE_ERROR, "Parse error.", NULL);
    }
    if (json_is_array(body))
        return do_batch(&m, body);
    method = gw_msg_method(body);
    id = json_object_get(body, "id");
    params = json_object_get(body, "params");
    if (gw_msg_invalid(body)) {
        return gw_deny(&m, method, "invalid request", 400, gw_valid_id(id) ? id : NULL, GW_RPC_INVALID_REQUEST,
                       "Invalid request.", NULL);
    }
    if (method && json_is_null(id)) {
        return gw_deny(&m, method, "null id", 400, NULL, GW_RPC_INVALID_REQUEST,
                       "A request id must be a string or an integer.", NULL);
    }

    stateless = method && strcmp(method, "initialize") &&
                (gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/protocolVersion") ||
                 (web_header(r, "MCP-Protocol-Version") &&
                  gw_proto_is_stateless(web_header(r, "MCP-Protocol-Version"))));
    /* an initialize that says 2026-07-28 in its header and its _meta is a
     * stateless request for a method that revision removed: 404 */
    stateless = stateless || (method && !strcmp(method, "initialize") &&
                              gw_proto_is_stateless(web_header(r, "MCP-Protocol-Version")) &&
                              gw_proto_is_stateless(gh_json_str(json_object_get(params, "_meta"),
                                                                "io.modelcontextprotocol/protocolVersion")));
    if (stateless) {
        m.stateless = true;
        m.proto = GW_PROTO_2026_07_28;
        if (check_stateless_headers(&m, method, params, id) < 0)
            return 0;
        if (id == NULL) {
            gw_mreq_audit(&m, method);
            return web_reply(r, 202, NULL, "", 0);
        }
        m.s = gw_session_stateless(who);
        if (m.s == NULL)
            return gw_reply_rpc_error(r, 500, id, GW_RPC_INTERNAL, "Internal error.", NULL);
        gh_arena_defer(m.a, gw_session_put_cb, m.s);
        gw_session_touch(m.s);
        return gw_dispatch_or_offload(&m, method, id, params);
    }

    if (method && !strcmp(method, "initialize")) {
        if (id == NULL) {
            return gw_deny(&m, method, "initialize without an id", 400, NULL, GW_RPC_INVALID_REQUEST,
                           "initialize must be a request.", NULL);
        }
        return gw_method_initialize(&m, id, params);
    }
    if (require_session(&m, method ? method : "(response)", id) < 0 ||
        check_version_header(&m, method ? method : "(response)", id) < 0)
        return 0;
    if (id == NULL || method == NULL) {
        /* notifications and responses to us: accepted, nothing to say */
        if (gw_mreq_audit(&m, method ? method : "(response)") < 0)
            return gw_reply_audit_down(r, NULL);
        gw_client_note(m.s, method, body);
        return web_reply(r, 202, NULL, "", 0);
    }
    return gw_dispatch_or_offload(&m, method, id, params);
}

static int
mcp_get(struct web_req *r)
{
    struct gw_mreq m;
    struct gw_listener *l;

    if (mcp_begin(r, &m) == NULL)
        return 0;
    if (gw_proto_is_stateless(web_header(r, "MCP-Protocol-Version"))) {
        web_add_header(r, "Allow", "POST");
        return gw_deny(&m, "GET", "GET in the stateless revision", 405, NULL, GW_RPC_INVALID_REQUEST,
                       "Method not allowed.", NULL);
    }
    if (!gw_accepts(web_header(r, "Accept"), "text/event-stream")) {
        return gw_deny(&m, "GET", "not acceptable", 406, NULL, GW_RPC_INVALID_REQUEST,
                       "Accept must list text/event-stream.", NULL);
    }
    if (require_session(&m, "GET", NULL) < 0 || check_version_header(&m, "GET", NULL) < 0)
        return 0;
    if (gw_mreq_audit(&m, "GET") < 0)
        return gw_reply_audit_down(r, NULL);
    l = gw_listener_open(&m, NULL, NULL);
    if (l == NULL)
        return gw_reply_rpc_error(r, 500, NULL, GW_RPC_INTERNAL, "Internal error.", NULL);
    return gw_listener_start(&m, l, NULL);
}

/* The client ends its session: so do we with each upstream (fire and forget). */
static void
end_upstream_sessions(struct gw_mreq *m)
{
    struct gw_connector *conns = NULL;
    int n = 0;
    struct gh_err e = {0};

    if (gw_agg_connectors(m->a, m->s->agent_id, &conns, &n, &e) < 0)
        return;
    for (int i = 0; i < n; i++) {
        struct gw_call_target t = { m->s, &conns[i], NULL, 0 };
        struct gw_upstate *u;
        char *sid = NULL, proto[16] = "";

        pthread_mutex_lock(&m->s->lock);
        u = gw_session_upstate(m->s, &conns[i]);
        if (u && u->sid) {
            sid = gh_arena_strdup(m->a, u->sid);
            snprintf(proto, sizeof(proto), "%s", u->proto);
        }
        pthread_mutex_unlock(&m->s->lock);
        if (sid && gw_connector_auth_headers(m->a, &conns[i], m->who, &t.headers, &t.nheaders, &e) == 0)
            gw_up_end_session(m->a, &t, sid, proto);
    }
}

static int
mcp_delete(struct web_req *r)
{
    struct gw_mreq m;
    struct gh_err e = {0};

    if (mcp_begin(r, &m) == NULL)
        return 0;
    if (gw_proto_is_stateless(web_header(r, "MCP-Protocol-Version"))) {
        web_add_header(r, "Allow", "POST");
        return gw_deny(&m, "DELETE", "DELETE in the stateless revision", 405, NULL, GW_RPC_INVALID_REQUEST,
                       "Method not allowed.", NULL);
    }
    if (require_session(&m, "DELETE", NULL) < 0)
        return 0;
    if (gw_mreq_audit(&m, "DELETE") < 0)
        return gw_reply_audit_down(r, NULL);
    end_upstream_sessions(&m);
    if (gw_session_delete(m.s, &e) < 0)
        return gw_reply_failure(r, e.status ? e.status : 500, NULL, &e);
    return web_reply(r, 200, NULL, "", 0);
}

/* Every method comes here: one the endpoint does not serve (PUT, PATCH,
 * HEAD, OPTIONS — a CORS preflight too) reached the gateway as much as a
 * POST, so it passes the same checks and is refused with its row. */
static int
mcp_any(struct web_req *r)
{
    const char *method = web_method(r);
    struct gw_mreq m;

    if (!strcmp(method, "POST"))
        return mcp_post(r);
    if (!strcmp(method, "GET"))
        return mcp_get(r);
    if (!strcmp(method, "DELETE"))
        return mcp_delete(r);
    if (mcp_begin(r, &m) == NULL)
        return 0;
    web_add_header(r, "Allow", "GET, POST, DELETE");
    return gw_deny(&m, method, "method not allowed", 405, NULL, GW_RPC_INVALID_REQUEST, "Method not allowed.",
                   NULL);
}

/* ---------------------------------------------------------------- background */

static struct {
    pthread_t       th;
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    bool            running, stop;
} tick = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *
tick_main(void *arg)
{
    int64_t last_expire = gh_time_s();

    (void)arg;
    pthread_mutex_lock(&tick.lock);
    while (!tick.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&tick.cond, &tick.lock, &ts);
        if (tick.stop)
            break;
        pthread_mutex_unlock(&tick.lock);
        gw_chan_keepalives();
        gw_listen_tick();
        gw_relay_sweep();
        gw_call_held_sweep();
        if (gh_time_s() - last_expire >= 60) {
            last_expire = gh_time_s();
            gw_session_expire();
        }
        pthread_mutex_lock(&tick.lock);
    }
    pthread_mutex_unlock(&tick.lock);
    return NULL;
}

/* NOTIFY gw_connectors <agent id>: another list for that agent's clients. */
static void
invalidate_one(struct gw_session *s, void *ctx)
{
    (void)ctx;
    gw_agg_invalidate(s, NULL);
}

static void
on_connectors(const char *channel, const char *payload, void *ctx)
{
    (void)channel;
    (void)ctx;
    if (payload == NULL || strlen(payload) >= 40)
        return;
    gw_session_each(payload, invalidate_one, NULL);
    gw_notify_agent(payload, "notifications/tools/list_changed");
    gw_notify_agent(payload, "notifications/prompts/list_changed");
    gw_notify_agent(payload, "notifications/resources/list_changed");
}

/* NOTIFY gw_policies <agent id> (a trigger, on every change of a policy of
 * that agent): its lists may now show more or less, and every stream of
 * the agent hears it on every process.  The lists are not cached filtered
 * (each list is decided when asked), so nothing is invalidated. */
static void
on_policies(const char *channel, const char *payload, void *ctx)
{
    (void)channel;
    (void)ctx;
    if (payload == NULL || payload[0] == '\0' || strlen(payload) >= 40)
        return;
    gw_notify_agent(payload, "notifications/tools/list_changed");
    gw_notify_agent(payload, "notifications/prompts/list_changed");
    gw_notify_agent(payload, "notifications/resources/list_changed");
}

/* An upstream's own stream said something to session s: a changed list is
 * fetched again, and the session's client hears it. */
static void
on_upstream_note(struct gw_session *s, const char *connector_id, const char *method, json_t *params,
                 bool changed)
{
    if (changed)
        gw_agg_invalidate(s, connector_id);
    gw_notify_session(s, method, params);
}

static long g_sessions(void) { return gw_session_count(); }
static long g_inflight(void) { return gw_up_inflight(); }

int
gw_mcp_register_routes(void)
{
    struct gh_err e = {0};
    static const char *const pats[] = { "/mcp", "/agents/*/mcp" };

    if (gw_up_init(&e) < 0 || gw_session_init(&e) < 0) {
        GH_LOG(ERROR, "gw_start", "%s", e.detail[0] ? e.detail : e.msg);
        return -1;
    }
    db_listen(GW_CHANNEL_CONNECTORS, on_connectors, NULL);
    db_listen(GW_CHANNEL_POLICIES, on_policies, NULL);
    gw_up_watch(on_upstream_note);
    if (gw_listen_start() < 0) {
        GH_LOG(ERROR, "gw_start", "cannot watch for revoked credentials");
        return -1;
    }
    if (gh_cfg.test_unauthenticated_mcp)
        GH_LOG(WARN, "gw_start", "GATEHOUSE_TEST_UNAUTHENTICATED_MCP is ON: the MCP endpoint admits "
                                 "requests WITHOUT credentials as a test identity. Never use this in production.");
    for (size_t i = 0; i < GH_ARRAY_LEN(pats); i++)
        web_route(NULL, pats[i], WEB_API | WEB_OWN_413, mcp_any);
    web_metrics_register_gauge("gatehouse_mcp_sessions_open", "MCP sessions held in this process.", g_sessions);
    web_metrics_register_gauge("gatehouse_mcp_upstream_inflight", "Upstream requests in flight.", g_inflight);
    tick.stop = false;
    if (pthread_create(&tick.th, NULL, tick_main, NULL) == 0)
        tick.running = true;
    return 0;
}

void
gw_mcp_stop(void)
{
    if (tick.running) {
        pthread_mutex_lock(&tick.lock);
        tick.stop = true;
        pthread_cond_signal(&tick.cond);
        pthread_mutex_unlock(&tick.lock);
        pthread_join(tick.th, NULL);
        tick.running = false;
    }
    gw_up_upkeep_stop();       /* no stream reopened once the I/O thread stops */
    gw_up_stop();
    gw_call_held_stop();
    gw_session_stop();
}
