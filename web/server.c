/*
 * web/server.c — libmicrohttpd glue: request lifecycle, body limits,
 * responses with the security headers, access log, graceful shutdown.
 *
 * The daemon runs an internal thread pool with epoll.  A request's arena
 * lives from the first callback to MHD's completion notice, so handlers
 * and streaming readers can use it freely.
 */
#include "web/web_int.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <strings.h>
#include <unistd.h>

static struct MHD_Daemon *daemon_;
static long inflight;
static long offloads;           /* handlers running off the server threads */

/* script-src 'self': the console's one script file (the copy buttons of
 * /agents), never inline script.  form-action: a page's forms post only
 * here (an injected form cannot send a password elsewhere); a page whose
 * form's answer redirects on (the consent page, to the client) names that
 * target too: web_csp_form_target(). */
static const char CSP[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/* ------------------------------------------------------------ responses */

struct MHD_Response *
web_response_new(struct web_req *r, int status, const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

    if (resp && ctype)
        MHD_add_response_header(resp, "Content-Type", ctype);
    return resp;
}

int
web_queue(struct web_req *r, int status, struct MHD_Response *resp)
{
    enum MHD_Result ok;

    if (resp == NULL || r->replied) {
        if (resp)
            MHD_destroy_response(resp);
        return -1;
    }
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* same-origin, not no-referrer: under no-referrer Chromium sends
     * "Origin: null" on our own form posts, which the Origin check refuses */
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    if (r->form_target)
        MHD_add_response_header(resp, "Content-Security-Policy",
                                gh_arena_printf(r->arena, "%s %s", CSP, r->form_target));
    else
        MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    if (gh_config_public_https())
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
    for (int i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
    if (__atomic_load_n(&r->offload, __ATOMIC_ACQUIRE) == WEB_OFFLOAD_RUNNING) {
        /* off the server thread: queued when the connection is back */
        r->captured = resp;
        r->captured_status = status;
        r->replied = true;
        r->status = status;
        return 0;
    }
    ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->replied = true;
    r->status = status;
    return ok == MHD_YES ? 0 : -1;
}

int
web_add_header(struct web_req *r, const char *name, const char *value)
{
    if (r->nhdrs >= WEB_MAX_HEADERS)
        return -1;
    r->hdrs[r->nhdrs].name = gh_arena_strdup(r->arena, name);
    r->hdrs[r->nhdrs].value = gh_arena_strdup(r->arena, value);
    r->nhdrs++;
    return 0;
}

int
web_set_cookie(struct web_req *r, const char *name, const char *value, long max_age,
               bool http_only, const char *same_site)
{
    char *c = gh_arena_printf(r->arena, "%s=%s; Path=/; Max-Age=%ld%s%s; SameSite=%s", name,
                              value, max_age, http_only ? "; HttpOnly" : "",
                              gh_config_public_https() ? "; Secure" : "", same_site);
    return c ? web_add_header(r, "Set-Cookie", c) : -1;
}

int
web_reply(struct web_req *r, int status, const char *ctype, const char *body, size_t len)
{
    return web_queue(r, status, web_response_new(r, status, ctype, body, len));
}

int
web_reply_json(struct web_req *r, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    int rc;

    json_decref(j);
    if (s == NULL)
        return web_reply(r, 500, "application/json", "{\"error\":\"server_error\"}", 24);
    rc = web_reply(r, status, "application/json", s, strlen(s));
    free(s);
    return rc;
}

int
web_reply_html(struct web_req *r, int status, const char *html)
{
    web_add_header(r, "Cache-Control", "no-store");
    return web_reply(r, status, "text/html; charset=utf-8", html, strlen(html));
}

int
web_redirect(struct web_req *r, int status, const char *location)
{
    web_add_header(r, "Location", location);
    web_add_header(r, "Cache-Control", "no-store");
    return web_reply(r, status, "text/plain", "", 0);
}

static bool
wants_html(struct web_req *r)
{
    const char *accept;

    if (r->route)
        return (r->route->flags & WEB_PAGE) != 0;
    accept = web_header(r, "Accept");
    return accept && strstr(accept, "text/html");
}

/* The error codes a client may see: OAuth's (RFC 6749, 6750, 7591, 8707)
 * and the few HTTP-level ones of this server.  Anything else in e->code
 * (a SQLSTATE from db/, say) is an internal detail: the client reads
 * server_error, the log keeps the code. */
static const char *const CLIENT_CODES[] = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "access_denied", "unsupported_response_type",
    "server_error", "temporarily_unavailable", "invalid_token", "insufficient_scope",
    "invalid_redirect_uri", "invalid_client_metadata", "invalid_target", "slow_down",
    "unauthorized", "forbidden", "not_found", "method_not_allowed", "conflict", "gone",
    "session_not_found", "upstream",
};

static bool
client_code(const char *code)
{
    for (size_t i = 0; i < GH_ARRAY_LEN(CLIENT_CODES); i++)
        if (!strcmp(code, CLIENT_CODES[i]))
            return true;
    return false;
}

int
web_reply_err(struct web_req *r, const struct gh_err *e)
{
    int status = e->status ? e->status : 500;
    const char *msg = e->msg[0] ? e->msg : "internal error";
    const char *code = e->code[0] ? e->code : "server_error";
    bool internal = !client_code(code);
    char ra[16];

    if (internal)
        code = "server_error";
    if (status >= 500 || e->detail[0] || internal)
        gh_logf(status >= 500 ? GH_LOG_ERROR : GH_LOG_INFO, "http_error", "%d %s: %s", status,
                e->code, e->detail[0] ? e->detail : msg);
    if (e->retry_after > 0) {
        snprintf(ra, sizeof(ra), "%d", e->retry_after);
        web_add_header(r, "Retry-After", ra);
    }
    if (wants_html(r)) {
        char *body = gh_arena_printf(r->arena, "<h1>%d</h1><p class=\"error\">%s</p>", status,
                                     gh_html_escape(r->arena, msg));
        return web_reply_html(r, status, web_page(r->arena, "Error", body ? body : ""));
    }
    return web_reply_json(r, status, json_pack("{s:s, s:s}", "error", code, "error_description", msg));
}

/* ------------------------------------------------------------ request accessors */

struct gh_arena *web_arena(struct web_req *r) { return r->arena; }
const char *web_method(struct web_req *r) { return r->method; }
const char *web_path(struct web_req *r) { return r->path; }
const char *web_request_id(struct web_req *r) { return r->rid; }
const char *web_client_ip(struct web_req *r) { return r->client_ip; }
void web_set_user_data(struct web_req *r, void *p) { r->user_data = p; }
void *web_user_data(struct web_req *r) { return r->user_data; }

const char *
web_route_pattern(struct web_req *r)
{
    return r->route ? r->route->pattern : "unmatched";
}

const char *
web_path_param(struct web_req *r, int i)
{
    return i >= 0 && i < r->nparams ? r->params[i] : NULL;
}

struct qbuild {
    struct gh_arena *a;
    char            *s;
};

static enum MHD_Result
add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct qbuild *q = cls;

    q->s = gh_arena_printf(q->a, "%s%s%s%s%s", q->s, strchr(q->s, '?') ? "&" : "?",
                           gh_url_encode(q->a, key), value ? "=" : "",
                           value ? gh_url_encode(q->a, value) : "");
    return q->s ? MHD_YES : MHD_NO;
}

const char *
web_full_path(struct web_req *r)
{
    struct qbuild q = { r->arena, (char *)r->path };

    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
    return q.s ? q.s : r->path;
}

const char *
web_query(struct web_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
web_query_n(struct web_req *r, const char *name, size_t *len)
{
    const char *v = NULL;

    *len = 0;
    if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, len) != MHD_YES)
        return NULL;
    return v;
}

const char *
web_header(struct web_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

struct hdr_count {
    const char *name;
    int         n;
};

static enum MHD_Result
hdr_count_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct hdr_count *c = cls;

    (void)kind;
    (void)value;
    if (key && !strcasecmp(key, c->name))
        c->n++;
    return MHD_YES;
}

int
web_header_count(struct web_req *r, const char *name)
{
    struct hdr_count c = { name, 0 };

    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, hdr_count_cb, &c);
    return c.n;
}

const char *
web_cookie(struct web_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

const char *
web_body(struct web_req *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

bool
web_body_too_large(struct web_req *r)
{
    return r->too_large;
}

static char *
form_decode(struct gh_arena *a, const char *s, size_t n, size_t *outlen)
{
    char *out = gh_arena_alloc(a, n + 1), *p = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *p++ = ' ';
        } else if (s[i] == '%' && i + 2 < n && gh_hex_digit(s[i + 1]) >= 0 && gh_hex_digit(s[i + 2]) >= 0) {
            *p++ = (char)(gh_hex_digit(s[i + 1]) << 4 | gh_hex_digit(s[i + 2]));
            i += 2;
        } else {
            *p++ = s[i];
        }
    }
    *p = '\0';
    if (outlen)
        *outlen = (size_t)(p - out);
    return out;
}

static void
form_parse(struct web_req *r)
{
    const char *ct = web_header(r, "Content-Type");
    const char *s = r->body, *end;
    int cap = 0;

    r->form_parsed = true;
    if (s == NULL || ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", 33))
        return;
    end = s + r->body_len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s)), *eq;
        const char *stop = amp ? amp : end;

        eq = memchr(s, '=', (size_t)(stop - s));
        if (stop > s) {
            if (r->nform == cap) {
                struct web_formkv *n;
                cap = cap ? cap * 2 : 16;
                n = gh_arena_alloc(r->arena, sizeof(*n) * (size_t)cap);
                if (n == NULL)
                    return;
                if (r->nform)
                    memcpy(n, r->form, sizeof(*n) * (size_t)r->nform);
                r->form = n;
            }
            r->form[r->nform].name = form_decode(r->arena, s, (size_t)((eq ? eq : stop) - s), NULL);
            r->form[r->nform].value = eq ? form_decode(r->arena, eq + 1, (size_t)(stop - eq - 1),
                                                       &r->form[r->nform].vlen)
                                         : gh_arena_strdup(r->arena, "");
            if (eq == NULL)
                r->form[r->nform].vlen = 0;
            r->nform++;
        }
        s = stop + 1;
    }
}

const char *
web_form(struct web_req *r, const char *name)
{
    if (!r->form_parsed)
        form_parse(r);
    for (int i = 0; i < r->nform; i++)
        if (r->form[i].name && !strcmp(r->form[i].name, name))
            return r->form[i].value;
    return NULL;
}

const char *
web_form_n(struct web_req *r, const char *name, size_t *len)
{
    if (!r->form_parsed)
        form_parse(r);
    *len = 0;
    for (int i = 0; i < r->nform; i++)
        if (r->form[i].name && !strcmp(r->form[i].name, name)) {
            *len = r->form[i].vlen;
            return r->form[i].value;
        }
    return NULL;
}

int
web_form_count(struct web_req *r, const char *name)
{
    int n = 0;

    if (!r->form_parsed)
        form_parse(r);
    for (int i = 0; i < r->nform; i++)
        if (r->form[i].name && !strcmp(r->form[i].name, name))
            n++;
    return n;
}

json_t *
web_json_body(struct web_req *r, struct gh_err *e)
{
    json_error_t je;

    if (!r->json_parsed) {
        r->json_parsed = true;
        r->json = gh_arena_json(r->arena, json_loadb(r->body ? r->body : "", r->body_len,
                                                    JSON_REJECT_DUPLICATES, &je));
    }
    if (r->json == NULL)
        gh_err_set(e, 400, "invalid_request", "the request body is not valid JSON", NULL);
    return r->json;
}

/* ------------------------------------------------------------ CSRF */

/* Over https the CSRF cookie is __Host-: only this origin, over TLS, with
 * Path=/ and no Domain can set it, so a sibling subdomain or a plain-http
 * man in the middle cannot plant a token of its choosing. */
static const char *
csrf_cookie_name(void)
{
    return gh_config_public_https() ? "__Host-gh_csrf" : "gh_csrf";
}

int
web_csp_form_target(struct web_req *r, const char *url)
{
    const char *colon = url ? strchr(url, ':') : NULL;
    size_t n;

    if (colon == NULL)
        return -1;
    if (!strncasecmp(url, "https://", 8) || !strncasecmp(url, "http://", 7)) {
        /* the origin: scheme://host[:port] */
        n = (size_t)(colon - url) + 3 + strcspn(colon + 3, "/?#");
    } else {
        n = (size_t)(colon - url) + 1;      /* a private-use scheme: "cursor:" */
    }
    /* a source expression holds no blank, ';', ',' or quote (the redirect
     * URI rules allow none; checked here all the same) */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == ';' || url[i] == ',' || url[i] == '\'' ||
            (unsigned char)url[i] >= 0x7f)
            return -1;
    /* each call adds one (a page with forms going to several providers) */
    r->form_target = r->form_target ? gh_arena_printf(r->arena, "%s %.*s", r->form_target, (int)n, url)
                                    : gh_arena_strndup(r->arena, url, n);
    return r->form_target ? 0 : -1;
}

const char *
web_csrf_token(struct web_req *r)
{
    const char *c;
    char *t;

    if (r->csrf)
        return r->csrf;
    c = web_cookie(r, csrf_cookie_name());
    if (c && strlen(c) == 64 && strspn(c, "0123456789abcdef") == 64) {
        r->csrf = c;
        return c;
    }
    t = gh_token_hex(r->arena, "", 32);
    if (t == NULL)
        return "";
    web_set_cookie(r, csrf_cookie_name(), t, 86400 * 7, true, "Strict");
    r->csrf = t;
    return t;
}

bool
web_csrf_ok(struct web_req *r)
{
    const char *cookie = web_cookie(r, csrf_cookie_name());
    const char *field = web_form(r, "csrf");

    return cookie && field && strlen(cookie) == 64 && gh_ct_streq(cookie, field);
}

/* A browser POST from another origin is refused outright, on top of the
 * token: defence in depth against token leaks. */
static bool
origin_ok(struct web_req *r)
{
    const char *origin = web_header(r, "Origin");

    const char *host, *slash;
    size_t n;

    if (origin == NULL)
        return true;        /* not every browser sends it on same-origin POSTs */
    if (!strcmp(origin, "null")) {
        /* privacy modes hide the origin; Fetch Metadata still tells */
        const char *site = web_header(r, "Sec-Fetch-Site");
        return site && !strcmp(site, "same-origin");
    }
    /* the public URL may carry a path; an Origin never does */
    host = strstr(gh_cfg.public_url, "://");
    slash = host ? strchr(host + 3, '/') : NULL;
    n = slash ? (size_t)(slash - gh_cfg.public_url) : strlen(gh_cfg.public_url);
    return strlen(origin) == n && strncmp(origin, gh_cfg.public_url, n) == 0;
}

/* ------------------------------------------------------------ lifecycle */

/* Request ids: distinct for the life of the process and not guessable from
 * one another, without a trip to the CSPRNG per request: a counter under a
 * random key, through splitmix64's finaliser (a bijection). */
static uint64_t rid_key, rid_counter;
static pthread_once_t rid_once = PTHREAD_ONCE_INIT;

static void
request_id_key(void)
{
    gh_random_bytes((unsigned char *)&rid_key, sizeof(rid_key));
}

static void
request_id(char out[17])
{
    uint64_t z;
    unsigned char b[8];

    pthread_once(&rid_once, request_id_key);
    z = rid_key + __atomic_add_fetch(&rid_counter, 1, __ATOMIC_RELAXED) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(z >> (8 * i));
    gh_hex_encode(b, sizeof(b), out);
}

static struct web_req *
req_new(struct MHD_Connection *conn, const char *method, const char *url)
{
    struct gh_arena *a = gh_arena_new((size_t)gh_cfg.http_max_body * 4 + (1 << 20));
    struct web_req *r;

    if (a == NULL)
        return NULL;
    r = gh_arena_alloc(a, sizeof(*r));
    if (r == NULL) {
        gh_arena_free(a);
        return NULL;
    }
    r->arena = a;
    r->conn = conn;
    r->method = gh_arena_strdup(a, method);
    r->path = gh_arena_strdup(a, url);
    r->start_us = gh_now_us();
    r->body_max = (size_t)gh_cfg.http_max_body;
    request_id(r->rid);
    web_addr_client(r);
    __atomic_add_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
    return r;
}

static void
dispatch(struct web_req *r)
{
    bool mismatch;
    char allow[128];
    struct gh_err e = {0};

    r->route = web_router_match(r, &mismatch, allow, sizeof(allow));
    gh_log_context(r->rid, web_route_pattern(r));
    if (r->route == NULL) {
        if (mismatch) {
            web_add_header(r, "Allow", allow);
            gh_err_set(&e, 405, "method_not_allowed", "method not allowed", NULL);
        } else {
            gh_err_set(&e, 404, "not_found", "not found", NULL);
        }
        web_reply_err(r, &e);
        return;
    }
    if (r->too_large && !(r->route->flags & WEB_OWN_413)) {
        gh_err_set(&e, 413, "invalid_request", "request body too large", NULL);
        web_reply_err(r, &e);
        return;
    }
    if ((r->route->flags & WEB_CORS)) {
        web_add_header(r, "Access-Control-Allow-Origin", "*");
        if (!strcmp(r->method, "OPTIONS")) {
            web_add_header(r, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
            web_add_header(r, "Access-Control-Allow-Headers",
                           "Authorization, Content-Type, MCP-Protocol-Version");
            web_add_header(r, "Access-Control-Max-Age", "86400");
            web_reply(r, 204, NULL, "", 0);
            return;
        }
    }
    if ((r->route->flags & WEB_PAGE) && !strcmp(r->method, "POST") &&
        (!origin_ok(r) || !web_csrf_ok(r))) {
        gh_err_set(&e, 403, "forbidden",
                   "This form has expired or did not come from this site. Go back, reload and try again.",
                   "csrf check failed");
        web_reply_err(r, &e);
        return;
    }
    r->route->fn(r);
    /* an offloaded handler replies later, from its own thread */
    if (__atomic_load_n(&r->offload, __ATOMIC_ACQUIRE) == 0 && !r->replied) {
        gh_err_set(&e, 500, "server_error", "internal error", "handler sent no reply");
        web_reply_err(r, &e);
    }
}

/* Whether the route of r refuses a body over the limit itself. */
static bool
owns_413(struct web_req *r)
{
    bool mismatch;
    char allow[128];
    const struct web_route_def *rt = web_router_match(r, &mismatch, allow, sizeof(allow));

    return rt && (rt->flags & WEB_OWN_413);
}

/* ------------------------------------------------------------ framing
 * libmicrohttpd 0.9.75 at MHD_OPTION_STRICT_FOR_CLIENT 1 refuses an
 * HTTP/1.1 request without Host, blanks in the URL and a malformed
 * Content-Length value (its own 400), nothing more: it keeps a blank before
 * a field name's colon, reads Content-Length plus Transfer-Encoding as chunked,
 * takes the first of two Content-Lengths, waits for the end of a body in a
 * coding it does not know and takes any Host.  A proxy in front that reads
 * such a request otherwise would have its next request smuggled in the
 * body, so RFC 9112 §6.1, §6.3 and §3.2 are applied here, on the header
 * block, before any body is read; the answer closes the connection. */

struct framing {
    bool        bad_name;       /* a field name that is not a token ("Transfer-Encoding :") */
    int         cl, te, host;
    const char *clv, *tev, *hostv;
    size_t      bytes;          /* the header block, as sent (name: value CRLF) */
};

static const char TCHAR[] = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

static enum MHD_Result
framing_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct framing *f = cls;

    (void)kind;
    if (value == NULL)
        value = "";
    f->bytes += strlen(key) + strlen(value) + 4;
    /* RFC 9112 §5.1: whitespace before the colon is a 400, as any name
     * that is not a token: a proxy may trim it and see another field */
    if (!key[0] || strspn(key, TCHAR) != strlen(key))
        f->bad_name = true;
    if (!strcasecmp(key, "Content-Length"))
        f->cl++, f->clv = value;
    else if (!strcasecmp(key, "Transfer-Encoding"))
        f->te++, f->tev = value;
    else if (!strcasecmp(key, "Host"))
        f->host++, f->hostv = value;
    return MHD_YES;
}

static enum MHD_Result
query_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) + 1 : 0) + 1;
    return MHD_YES;
}

/* RFC 9110 §7.2 / RFC 3986 §3.2: uri-host [ ":" port ], the host an
 * IP-literal or a reg-name (unreserved, pct-encoded, sub-delims): no '@',
 * no userinfo, no path. */
static bool
host_ok(const char *h)
{
    static const char REG[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=";
    size_t n;

    if (h[0] == '[') {
        n = 1 + strspn(h + 1, "0123456789abcdefABCDEF:.");
        if (h[n] != ']')
            return false;
        n++;
    } else {
        n = strspn(h, REG);
    }
    if (h[n] == ':')
        n += 1 + strspn(h + n + 1, "0123456789");
    return n > 0 && h[n] == '\0';
}

/* 0, or the refusal is queued (400, 501, 414 or 431 in the usual error
 * format, Connection: close). */
static int
framing_refused(struct web_req *r, struct MHD_Connection *conn, const char *url, const char *version)
{
    struct framing f = {0};
    struct gh_err e = {0};
    size_t target = strlen(url);
    bool http10 = !strcmp(version, MHD_HTTP_VERSION_1_0);

    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_field, &f);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_bytes, &target);
    if (f.bad_name)
        gh_err_set(&e, 400, "invalid_request", "A header field name is malformed.", "framing: field name");
    else if (f.te && (f.cl || http10))
        gh_err_set(&e, 400, "invalid_request", "Transfer-Encoding with Content-Length or in HTTP/1.0.",
                   "framing: Transfer-Encoding with %s", f.cl ? "Content-Length" : "HTTP/1.0");
    else if (f.te > 1 || (f.te && strcasecmp(f.tev, "chunked")))
        gh_err_set(&e, 501, "invalid_request", "Only the chunked transfer coding is supported.",
                   "framing: unsupported Transfer-Encoding");
    else if (f.cl > 1 || (f.cl && (!f.clv[0] || strspn(f.clv, "0123456789") != strlen(f.clv))))
        gh_err_set(&e, 400, "invalid_request", "Content-Length must be one decimal number.",
                   "framing: %d Content-Length field(s)", f.cl);
    else if (f.host > 1 || (f.host == 0 && !http10) || (f.host && !host_ok(f.hostv)))
        gh_err_set(&e, 400, "invalid_request", "The request needs one valid Host header.",
                   "framing: %d Host field(s)", f.host);
    else if (target > (size_t)gh_cfg.http_max_header)
        gh_err_set(&e, 414, "invalid_request", "The request target is too long.", NULL);
    else if (f.bytes > (size_t)gh_cfg.http_max_header)
        gh_err_set(&e, 431, "invalid_request", "The request header fields are too large.", NULL);
    if (!e.status)
        return 0;
    gh_log_context(r->rid, "framing");
    web_add_header(r, "Connection", "close");
    web_reply_err(r, &e);
    gh_log_context(NULL, NULL);
    return -1;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct web_req *r = *con_cls;

    if (r == NULL) {
        const char *cl, *ct;
        r = req_new(conn, method, url);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        if (framing_refused(r, conn, url, version) < 0)
            return MHD_YES;
        ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33))
            r->body_max = (size_t)gh_cfg.http_max_form;
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > r->body_max &&
            strtoull(cl, NULL, 10) <= (unsigned long long)r->body_max * 16) {
            /* somewhat too large: read and drop the body, then answer 413
             * (dispatch), so a client still sending can read the answer
             * instead of meeting a closed connection */
            r->too_large = true;
        } else if (cl && strtoull(cl, NULL, 10) > r->body_max) {
            struct gh_err e = {0};
            r->too_large = true;
            if (owns_413(r)) {
                /* its handler refuses it, now, without the body */
                dispatch(r);
                gh_log_context(NULL, NULL);
                return MHD_YES;
            }
            gh_log_context(r->rid, "body_limit");
            gh_err_set(&e, 413, "invalid_request", "request body too large", NULL);
            web_reply_err(r, &e);
            return MHD_YES;
        }
        return MHD_YES;
    }
    if (r->captured && *upload_size == 0 &&
        __atomic_load_n(&r->offload, __ATOMIC_ACQUIRE) == WEB_OFFLOAD_DONE) {
        /* an offloaded handler's reply, back on a server thread */
        struct MHD_Response *resp = r->captured;
        r->captured = NULL;
        MHD_queue_response(conn, (unsigned)r->captured_status, resp);
        MHD_destroy_response(resp);
        return MHD_YES;
    }
    if (r->deferred && *upload_size == 0) {
        /* a deferred reply was woken (web_reply_deferred) */
        gh_log_context(r->rid, web_route_pattern(r));
        web_stream_resumed(r);
        gh_log_context(NULL, NULL);
        return MHD_YES;
    }
    if (r->replied) {           /* early 413: discard the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->body_len + *upload_size > r->body_max) {
            r->too_large = true;
        } else if (!r->too_large) {
            if (r->body_len + *upload_size + 1 > r->body_cap) {
                size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
                char *nb;
                while (cap < r->body_len + *upload_size + 1)
                    cap *= 2;
                nb = gh_arena_alloc(r->arena, cap);
                if (nb == NULL)
                    return MHD_NO;
                if (r->body_len)
                    memcpy(nb, r->body, r->body_len);
                r->body = nb;
                r->body_cap = cap;
            }
            memcpy(r->body + r->body_len, upload, *upload_size);
            r->body_len += *upload_size;
            r->body[r->body_len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    dispatch(r);
    gh_log_context(NULL, NULL);
    return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct web_req *r = *con_cls;
    int64_t dur;
    json_t *f;

    if (r == NULL)
        return;
    web_stream_abandoned(r);
    if (r->captured)
        MHD_destroy_response(r->captured);
    dur = gh_now_us() - r->start_us;
    web_metrics_observe(r->route ? r->route->index : -1, r->status, dur);
    gh_log_context(r->rid, web_route_pattern(r));
    f = json_pack("{s:s, s:i, s:f, s:s}", "method", r->method, "status", r->status,
                  "duration_ms", (double)dur / 1000.0, "ip", r->client_ip);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        json_object_set_new(f, "aborted", json_true());
    gh_log_json(GH_LOG_INFO, "http", f);
    gh_log_context(NULL, NULL);
    gh_arena_free(r->arena);
    *con_cls = NULL;
    __atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    gh_logf(GH_LOG_DEBUG, "mhd", "%s", msg);
}

static int
parse_listen(struct sockaddr_storage *ss, struct gh_err *e)
{
    char host[256];
    const char *colon = strrchr(gh_cfg.listen, ':');
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res;
    size_t hl = (size_t)(colon - gh_cfg.listen);

    if (hl >= sizeof(host))
        return gh_err_set(e, 400, "config", "GATEHOUSE_LISTEN: host too long", NULL);
    memcpy(host, gh_cfg.listen, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res) != 0 || res == NULL) {
        gh_err_set(e, 400, "config", "", "listen");
        snprintf(e->msg, sizeof(e->msg), "GATEHOUSE_LISTEN: cannot resolve '%.64s'", host);
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* GATEHOUSE_HTTP_MAX_CONNECTIONS, or half the open-files limit: without
 * it libmicrohttpd serves FD_SETSIZE - 4 (1,020) connections whatever the
 * limit, and leaves the rest unanswered in the listen queue. */
static unsigned
max_connections(void)
{
    struct rlimit rl;
    rlim_t n = 1020;

    if (gh_cfg.http_max_connections > 0)
        n = (rlim_t)gh_cfg.http_max_connections;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        n = rl.rlim_cur / 2;
    if (n < (rlim_t)gh_cfg.http_threads * 4)
        n = (rlim_t)gh_cfg.http_threads * 4;
    return n > 1048576 ? 1048576 : (unsigned)n;
}

int
web_server_start(struct gh_err *e)
{
    struct sockaddr_storage ss = {0};
    unsigned conns = max_connections();
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;

    if (parse_listen(&ss, e) < 0 || web_addr_trusted_parse(gh_cfg.trusted_proxies, e) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    web_static_register();
    daemon_ = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                               MHD_OPTION_THREAD_POOL_SIZE, (unsigned)gh_cfg.http_threads,
                               MHD_OPTION_CONNECTION_LIMIT, conns,
                               /* room for a header block of up to 4 times the limit, so
                                * that framing_refused() answers it (431, 414) in our format;
                                * past that libmicrohttpd answers with its own fixed body */
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)gh_cfg.http_max_header * 4 + 32768,
                               MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                               MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                               MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                               MHD_OPTION_END);
    if (daemon_ == NULL) {
        gh_err_set(e, 500, "server_error", "", "MHD_start_daemon failed");
        snprintf(e->msg, sizeof(e->msg), "cannot listen on %.64s (GATEHOUSE_LISTEN)", gh_cfg.listen);
        return -1;
    }
    GH_LOG(INFO, "listening", "listening on %s, public URL %s, at most %u connections", gh_cfg.listen,
           gh_cfg.public_url, conns);
    return 0;
}

void
web_offload_begin(struct web_req *r)
{
    __atomic_add_fetch(&offloads, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&r->offload, WEB_OFFLOAD_RUNNING, __ATOMIC_RELEASE);
    MHD_suspend_connection(r->conn);
}

void
web_offload_end(struct web_req *r)
{
    struct MHD_Connection *conn = r->conn;
    struct web_stream *held = web_stream_held(r) ? r->deferred : NULL;

    if (held == NULL && r->captured == NULL) {
        struct gh_err e = {0};
        gh_err_set(&e, 500, "server_error", "internal error", "offloaded handler sent no reply");
        web_reply_err(r, &e);
    }
    __atomic_store_n(&r->offload, WEB_OFFLOAD_DONE, __ATOMIC_RELEASE);
    /* from here r belongs to the server thread again */
    if (held)
        web_stream_release_hold(held);  /* resumes once its producer has woken it */
    else
        MHD_resume_connection(conn);
    __atomic_sub_fetch(&offloads, 1, __ATOMIC_SEQ_CST);
}

void
web_server_stop(void)
{
    int waited = 0;

    if (daemon_ == NULL)
        return;
    /* stop accepting, let in-flight requests finish (bounded), then close */
    MHD_quiesce_daemon(daemon_);
    web_streams_shutdown();
    while (__atomic_load_n(&inflight, __ATOMIC_SEQ_CST) > 0 && waited < 300) {
        usleep(100 * 1000);
        waited++;
        if (waited % 10 == 0)
            web_streams_shutdown();
    }
    /* An offloaded handler still running holds a suspended connection and
     * will resume it: MHD must not be stopped (its connections freed) under
     * it.  Each such handler is bounded by its own timeouts (the upstream
     * connect and call timeouts, the 5 s client metadata budget), so this
     * waits for them however long they take rather than free memory they
     * are about to touch. */
    for (long n; (n = __atomic_load_n(&offloads, __ATOMIC_SEQ_CST)) > 0;) {
        usleep(100 * 1000);
        waited++;
        if (waited % 10 == 0)
            web_streams_shutdown();
        if (waited % 100 == 0)
            GH_LOG(WARN, "shutdown", "waiting for %ld offloaded request(s) to end", n);
    }
    MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
