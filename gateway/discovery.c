/*
 * gateway/discovery.c — an oauth-discovery connector: the upstream MCP
 * server does MCP authorization itself, and this file finds out how and
 * registers Gatehouse there, when the connector is saved in that mode.
 *
 *   1. the upstream's 401 to an unauthenticated initialize names its
 *      protected resource metadata (WWW-Authenticate resource_metadata=…),
 *      else the RFC 9728 well-known URL of the upstream URL is tried;
 *   2. that metadata's `resource` must be the upstream URL (a document
 *      naming another resource would have members' tokens minted for it);
 *   3. its first authorization server's RFC 8414 metadata (or OpenID
 *      discovery), whose `issuer` must be the one named, with S256;
 *   4. registration: a Client ID Metadata Document this server serves at
 *      {public URL}/connect/client-metadata.json when the server supports
 *      them and the public URL is https, else dynamic client registration
 *      (RFC 7591) with redirect_uri {public URL}/connect/callback.
 *
 * The authorization server and its endpoints are a remote party's choice,
 * so every fetch to them is checked at connect time (the address curl is
 * about to connect to) and the endpoints' hosts when saved: loopback and
 * private addresses, and plain http, are refused unless
 * GATEHOUSE_DEV_ALLOW_PRIVATE_DISCOVERY is on.  The upstream itself may be
 * anywhere (the owner chose it).  10 s and 64 KB per fetch, no redirects.
 */
#include "gateway/gw_int.h"
#include <curl/curl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define DISC_MAX      (64 * 1024)
#define DISC_TIMEOUT  10000L
#define CIMD_PATH     "/connect/client-metadata.json"

struct fetch {
    char  *body;
    size_t n;
    char  *www_auth;            /* the WWW-Authenticate header, malloc'd */
    bool   guard;               /* refuse private addresses */
    bool   refused;
    bool   too_big;
};

static size_t
fetch_write(char *p, size_t size, size_t n, void *ctx)
{
    struct fetch *f = ctx;
    size_t len = size * n;
    char *np;

    if (f->n + len > DISC_MAX || (np = realloc(f->body, f->n + len + 1)) == NULL) {
        f->too_big = true;
        return 0;
    }
    f->body = np;
    memcpy(f->body + f->n, p, len);
    f->n += len;
    f->body[f->n] = '\0';
    return len;
}

static size_t
fetch_header(char *p, size_t size, size_t n, void *ctx)
{
    struct fetch *f = ctx;
    size_t len = size * n;

    if (len > 17 && len < 4096 && !strncasecmp(p, "www-authenticate:", 17) && f->www_auth == NULL) {
        f->www_auth = strndup(p + 17, len - 17);
    }
    return len;
}

static curl_socket_t
open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct fetch *f = ctx;

    if (purpose != CURLSOCKTYPE_IPCXN || (f->guard && authz_addr_private(&addr->addr))) {
        f->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static bool
dev(void)
{
    return gh_cfg.dev_allow_private_discovery;
}

/* GET url (POST json when body): 0 with f filled (status in *status), -1
 * with e naming `what` when it could not be fetched. guard: the URL is the
 * authorization server's (private addresses and http refused). */
static int
fetch(struct gh_arena *a, const char *what, const char *url, const char *json, bool guard, struct fetch *f,
      long *status, struct gh_err *e)
{
    struct curl_slist *h = NULL;
    CURLcode cc;
    CURL *c;

    memset(f, 0, sizeof(*f));
    f->guard = guard && !dev();
    *status = 0;
    pthread_once(&curl_once, curl_init_once);
    if ((c = curl_easy_init()) == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "curl_easy_init failed");
    h = curl_slist_append(h, json ? "Accept: application/json, text/event-stream" : "Accept: application/json");
    if (json)
        h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, f->guard ? "https" : "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, DISC_TIMEOUT);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "Gatehouse");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)DISC_MAX);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, f);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, fetch_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (cc == CURLE_OK)
        return 0;
    /* a URL as shown: an upstream may take an API key in its query */
    gh_err_set(e, 400, "invalid_request", "", "discovery: %s %s: curl %d", what, gw_connector_url_shown(a, url),
               (int)cc);
    if (f->refused)
        snprintf(e->msg, sizeof(e->msg), "The %s is on a private or loopback address; this server does not "
                 "fetch it (GATEHOUSE_DEV_ALLOW_PRIVATE_DISCOVERY allows it in development).", what);
    else if (guard && !dev() && cc == CURLE_UNSUPPORTED_PROTOCOL)
        snprintf(e->msg, sizeof(e->msg), "The %s must use https.", what);
    else
        snprintf(e->msg, sizeof(e->msg), "The %s could not be fetched%s.", what, f->too_big ? " (over 64 KB)" : "");
    return -1;
}

static void
fetch_done(struct fetch *f)
{
    free(f->body);
    free(f->www_auth);
}

/* The fetched body as a JSON object in the arena, or NULL with e. */
static json_t *
fetch_json(struct gh_arena *a, const char *what, const char *url, const char *json, bool guard, long want,
           struct gh_err *e)
{
    struct fetch f;
    long status;
    json_t *j = NULL;

    if (fetch(a, what, url, json, guard, &f, &status, e) < 0)
        goto out;
    if (status != want && !(want == 201 && status == 200)) {
        gh_err_set(e, 400, "invalid_request", "", "discovery: %s %s: HTTP %ld", what, gw_connector_url_shown(a, url),
                   status);
        snprintf(e->msg, sizeof(e->msg), "The %s answered HTTP %ld.", what, status);
        goto out;
    }
    j = f.body ? json_loads(f.body, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        j = NULL;
        gh_err_set(e, 400, "invalid_request", "", "discovery: %s %s: not a JSON object", what,
                   gw_connector_url_shown(a, url));
        snprintf(e->msg, sizeof(e->msg), "The %s is not a JSON object.", what);
        goto out;
    }
    gh_arena_json(a, j);
out:
    fetch_done(&f);
    return j;
}

/* ------------------------------------------------------------ URLs */

/* scheme://authority and the path ("" for "/") of an http(s) URL. */
static bool
url_split(struct gh_arena *a, const char *url, char **origin, char **path)
{
    const char *s = url ? strstr(url, "://") : NULL, *p;

    if (s == NULL || (!gh_str_has_prefix(url, "https://") && !gh_str_has_prefix(url, "http://")))
        return false;
    p = s + 3 + strcspn(s + 3, "/?#");
    if (p == s + 3)
        return false;
    *origin = gh_arena_printf(a, "%.*s", (int)(p - url), url);
    *path = gh_arena_printf(a, "%.*s", (int)strcspn(p, "?#"), p);
    if (!strcmp(*path, "/"))
        **path = '\0';
    return true;
}

/* The same resource: equal but for one trailing slash. */
static bool
same_resource(const char *x, const char *y)
{
    size_t nx = strlen(x), ny = strlen(y);

    if (nx && x[nx - 1] == '/')
        nx--;
    if (ny && y[ny - 1] == '/')
        ny--;
    return nx == ny && !strncmp(x, y, nx);
}

/* A quoted or bare parameter of a WWW-Authenticate Bearer challenge. */
static char *
challenge_param(struct gh_arena *a, const char *h, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = h; p && (p = strcasestr(p, name)) != NULL; p += n) {
        const char *v;
        if (p > h && p[-1] != ' ' && p[-1] != ',' && p[-1] != '\t')
            continue;
        v = p + n;
        while (*v == ' ')
            v++;
        if (*v++ != '=')
            continue;
        while (*v == ' ')
            v++;
        if (*v == '"') {
            const char *end = strchr(v + 1, '"');
            return end ? gh_arena_printf(a, "%.*s", (int)(end - v - 1), v + 1) : NULL;
        }
        return gh_arena_printf(a, "%.*s", (int)strcspn(v, " ,\r\n"), v);
    }
    return NULL;
}

/* An endpoint the authorization server named: http(s), and (unless the
 * development setting) https on a public address. */
static int
endpoint_ok(struct gh_arena *a, const char *what, const char *url, struct gh_err *e)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    char *origin, *path, *host;
    const char *h;
    bool priv = false;
    int rc;

    if (url == NULL || !url_split(a, url, &origin, &path) || gw_connector_url_check(url, e) < 0) {
        gh_err_clear(e);
        gh_err_set(e, 400, "invalid_request", "", "discovery: bad %s", what);
        snprintf(e->msg, sizeof(e->msg), "The authorization server's %s is not an http(s) URL.", what);
        return -1;
    }
    if (dev())
        return 0;
    h = strstr(origin, "://") + 3;
    h += strcspn(h, "@") < strlen(h) ? strcspn(h, "@") + 1 : 0;
    host = h[0] == '[' ? gh_arena_printf(a, "%.*s", (int)strcspn(h + 1, "]"), h + 1)
                       : gh_arena_printf(a, "%.*s", (int)strcspn(h, ":"), h);
    rc = getaddrinfo(host, NULL, &hints, &res);
    for (struct addrinfo *i = res; rc == 0 && i; i = i->ai_next)
        priv |= authz_addr_private(i->ai_addr);
    if (res)
        freeaddrinfo(res);
    if (rc != 0 || priv) {
        gh_err_set(e, 400, "invalid_request", "", "discovery: %s host %s %s", what, host,
                   rc ? "does not resolve" : "is private");
        snprintf(e->msg, sizeof(e->msg), rc ? "The authorization server's %s does not resolve."
                 : "The authorization server's %s is on a private or loopback address; this server does not use "
                   "it (GATEHOUSE_DEV_ALLOW_PRIVATE_DISCOVERY allows it in development).", what);
        return -1;
    }
    if (!gh_str_has_prefix(url, "https://")) {
        gh_err_set(e, 400, "invalid_request", "", "discovery: %s not https", what);
        snprintf(e->msg, sizeof(e->msg), "The authorization server's %s must use https.", what);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ the steps */

/* Step 1 and 2: the protected resource metadata of the upstream. */
static json_t *
resource_metadata(struct gh_arena *a, const char *upstream, char **scope, struct gh_err *e)
{
    static const char INIT[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\","
        "\"capabilities\":{},\"clientInfo\":{\"name\":\"Gatehouse\",\"version\":\"1\"}}}";
    char *origin, *path, *md = NULL;
    const char *res;
    struct fetch f;
    long status;
    json_t *j;

    *scope = NULL;
    if (!url_split(a, upstream, &origin, &path))
        return gh_err_set(e, 400, "invalid_request", "The connector's URL is not an http(s) URL.", NULL), NULL;
    if (fetch(a, "upstream MCP server", upstream, INIT, false, &f, &status, e) < 0)
        return NULL;
    if (status == 401 && f.www_auth && strcasestr(f.www_auth, "bearer")) {
        md = challenge_param(a, f.www_auth, "resource_metadata");
        *scope = challenge_param(a, f.www_auth, "scope");
    }
    fetch_done(&f);
    if (status != 401) {
        gh_err_set(e, 400, "invalid_request", "", "discovery: upstream answered HTTP %ld without a token", status);
        snprintf(e->msg, sizeof(e->msg), "The upstream answered HTTP %ld without a token, not 401: it does not "
                 "ask for MCP authorization (choose none or static).", status);
        return NULL;
    }
    if (md == NULL || !*md)
        md = gh_arena_printf(a, "%s/.well-known/oauth-protected-resource%s", origin, path);
    j = fetch_json(a, "upstream's protected resource metadata", md, NULL, false, 200, e);
    if (j == NULL)
        return NULL;
    res = gh_json_str(j, "resource");
    if (res == NULL || !same_resource(res, upstream)) {
        gh_err_set(e, 400, "invalid_request", "", "discovery: resource mismatch");
        snprintf(e->msg, sizeof(e->msg), "The upstream's protected resource metadata is for %.200s, not for the "
                 "connector's URL: refused.", res && gh_text_ok(res, strlen(res)) ? res : "no resource");
        return NULL;
    }
    return j;
}

/* Step 3: the authorization server's metadata (RFC 8414, then OpenID). */
static json_t *
as_metadata(struct gh_arena *a, const char *issuer, struct gh_err *e)
{
    char *origin, *path;
    const char *urls[3];
    json_t *j = NULL;

    if (endpoint_ok(a, "issuer", issuer, e) < 0)
        return NULL;
    url_split(a, issuer, &origin, &path);
    urls[0] = gh_arena_printf(a, "%s/.well-known/oauth-authorization-server%s", origin, path);
    urls[1] = gh_arena_printf(a, "%s/.well-known/openid-configuration%s", origin, path);
    urls[2] = gh_arena_printf(a, "%s%s/.well-known/openid-configuration", origin, path);
    for (size_t i = 0; i < GH_ARRAY_LEN(urls) && j == NULL; i++) {
        struct gh_err ie = {0};
        j = fetch_json(a, "authorization server's metadata", urls[i], NULL, true, 200, &ie);
        /* the last try's error, or a refused address at once */
        if (j == NULL && (i + 1 == GH_ARRAY_LEN(urls) || strstr(ie.msg, "private"))) {
            *e = ie;
            return NULL;
        }
    }
    if (!gh_json_str(j, "issuer") || strcmp(gh_json_str(j, "issuer"), issuer)) {
        gh_err_set(e, 400, "invalid_request", "The authorization server's metadata names another issuer: refused.",
                   "discovery: issuer mismatch");
        return NULL;
    }
    {
        json_t *m = json_object_get(j, "code_challenge_methods_supported"), *v;
        size_t i;
        bool s256 = false;
        json_array_foreach(m, i, v)
            s256 |= json_is_string(v) && !strcmp(json_string_value(v), "S256");
        if (!s256)
            return gh_err_set(e, 400, "invalid_request", "The authorization server does not offer PKCE S256.",
                              "discovery: no S256"), NULL;
    }
    if (endpoint_ok(a, "authorization endpoint", gh_json_str(j, "authorization_endpoint"), e) < 0 ||
        endpoint_ok(a, "token endpoint", gh_json_str(j, "token_endpoint"), e) < 0)
        return NULL;
    return j;
}

static bool
has_string(json_t *arr, const char *s)
{
    json_t *v;
    size_t i;

    json_array_foreach(arr, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return true;
    return false;
}

char *
gw_discovery_cimd_url(struct gh_arena *a)
{
    return gh_config_url(a, CIMD_PATH);
}

/* Step 4: dynamic client registration (RFC 7591). */
static int
dcr(struct gh_arena *a, json_t *as, struct gw_connector_auth *out, struct gh_err *e)
{
    const char *reg = gh_json_str(as, "registration_endpoint");
    bool post = has_string(json_object_get(as, "token_endpoint_auth_methods_supported"), "client_secret_post");
    json_t *req, *j;
    char *body, *dump;
    const char *id, *sec;

    if (reg == NULL)
        return gh_err_set(e, 400, "invalid_request", "The authorization server offers neither dynamic client "
                          "registration nor client metadata documents: Gatehouse cannot register there.",
                          "discovery: no registration");
    if (endpoint_ok(a, "registration endpoint", reg, e) < 0)
        return -1;
    req = json_pack("{s:s, s:[s], s:[s,s], s:[s], s:s}", "client_name", "Gatehouse",
                    "redirect_uris", gh_config_url(a, "/connect/callback"), "grant_types",
                    "authorization_code", "refresh_token", "response_types", "code", "token_endpoint_auth_method",
                    post ? "client_secret_post" : "none");
    dump = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    body = dump ? gh_arena_strdup(a, dump) : NULL;
    free(dump);
    if (body == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "json");
    j = fetch_json(a, "authorization server's registration endpoint", reg, body, true, 201, e);
    if (j == NULL)
        return -1;
    id = gh_json_str(j, "client_id");
    sec = gh_json_str(j, "client_secret");
    if (id == NULL || !*id || strlen(id) > 512 || !gh_text_ok(id, strlen(id)))
        return gh_err_set(e, 400, "invalid_request", "The authorization server's registration answer has no "
                          "client_id.", "discovery: registration without client_id");
    out->disc.client_id = gh_arena_strdup(a, id);
    out->client_secret = sec && *sec ? gh_arena_strdup(a, sec) : NULL;
    out->disc.kind = "dcr";
    json_object_clear(j);       /* the secret's copy */
    return 0;
}

int
gw_discovery_run(struct gh_arena *a, const char *upstream, struct gw_connector_auth *out, struct gh_err *e)
{
    json_t *prm, *as, *servers;
    char *scope;
    const char *issuer;

    if ((prm = resource_metadata(a, upstream, &scope, e)) == NULL)
        return -1;
    servers = json_object_get(prm, "authorization_servers");
    issuer = json_string_value(json_array_get(servers, 0));
    if (issuer == NULL)
        return gh_err_set(e, 400, "invalid_request", "The upstream's protected resource metadata names no "
                          "authorization server.", "discovery: no authorization_servers");
    if ((as = as_metadata(a, issuer, e)) == NULL)
        return -1;
    /* the scope the upstream asked for, else all it supports; a refresh
     * token where the server ties it to offline_access */
    if (scope == NULL || !*scope) {
        json_t *v;
        size_t i;
        scope = NULL;
        json_array_foreach(json_object_get(prm, "scopes_supported"), i, v)
            if (json_is_string(v))
                scope = gh_arena_printf(a, "%s%s%s", scope ? scope : "", scope ? " " : "", json_string_value(v));
    }
    if (has_string(json_object_get(as, "scopes_supported"), "offline_access") &&
        (scope == NULL || !strstr(scope, "offline_access")))
        scope = gh_arena_printf(a, "%s%soffline_access", scope ? scope : "", scope ? " " : "");
    if (scope && strlen(scope) > 512)
        return gh_err_set(e, 400, "invalid_request", "The upstream asks for more than 512 bytes of scopes.", NULL);
    memset(&out->disc, 0, sizeof(out->disc));
    out->resource = gh_arena_strdup(a, upstream);
    out->scopes = scope;
    out->disc.issuer = gh_arena_strdup(a, issuer);
    out->disc.authorize_url = gh_arena_strdup(a, gh_json_str(as, "authorization_endpoint"));
    out->disc.token_url = gh_arena_strdup(a, gh_json_str(as, "token_endpoint"));
    out->disc.scopes = scope;
    out->client_secret = NULL;
    /* a metadata document's client_id must be an https URL */
    if (json_is_true(json_object_get(as, "client_id_metadata_document_supported")) &&
        gh_str_has_prefix(gh_cfg.public_url, "https://")) {
        out->disc.kind = "cimd";
        out->disc.client_id = gw_discovery_cimd_url(a);
        return 0;
    }
    return dcr(a, as, out, e);
}

/* ------------------------------------------------------------ the document */

static int
get_client_metadata(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);

    web_add_header(r, "Cache-Control", "public, max-age=3600");
    return web_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:[s], s:[s,s], s:[s], s:s}",
        "client_id", gw_discovery_cimd_url(a), "client_name", "Gatehouse", "client_uri", gh_cfg.public_url,
        "redirect_uris", gh_config_url(a, "/connect/callback"), "grant_types", "authorization_code",
        "refresh_token", "response_types", "code", "token_endpoint_auth_method", "none"));
}

int
gw_discovery_routes(void)
{
    return web_route("GET", CIMD_PATH, WEB_API, get_client_metadata);
}
