/*
 * authz/client.c — OAuth clients: RFC 7591 dynamic registration with
 * RFC 7592 management, the lookup of Client ID Metadata Documents (their
 * fetch and cache: cimd.c), redirect URI rules, client authentication.
 *
 * Redirect URIs (DESIGN.md 3): exact match, except http on a loopback host
 * where any port matches (RFC 8252); https anywhere; private-use schemes
 * (cursor://...) allowed; javascript:, data:, file: and friends refused,
 * as are fragments and user-info.
 */
#include "authz/authz_int.h"
#include <curl/curl.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ URIs */

bool
authz_uri_parse(const char *s, struct authz_uri *u)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    const char *p, *hend;

    memset(u, 0, sizeof(*u));
    u->port = -1;
    if (n == 0 || n >= sizeof(u->scheme) || s[n] != ':' || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        u->scheme[i] = (char)tolower((unsigned char)s[i]);
    p = s + n + 1;
    if (p[0] != '/' || p[1] != '/') {
        u->rest = p;
        return true;
    }
    u->authority = true;
    p += 2;
    hend = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(hend - p)))
        return false;                       /* user-info: a classic open-redirect disguise */
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        if (rb == NULL || (size_t)(rb - p + 1) >= sizeof(u->host))
            return false;
        memcpy(u->host, p, (size_t)(rb - p + 1));
        p = rb + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(hend - p));
        const char *e = colon ? colon : hend;
        if ((size_t)(e - p) >= sizeof(u->host))
            return false;
        memcpy(u->host, p, (size_t)(e - p));
        p = e;
    }
    for (char *h = u->host; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    if (*p == ':') {
        char *end;
        long port;
        /* digits only: strtol alone would take a sign and leading white space */
        if (p + 1 == hend || strspn(p + 1, "0123456789") != (size_t)(hend - p - 1))
            return false;
        port = strtol(p + 1, &end, 10);
        if (end != hend || port <= 0 || port > 65535)
            return false;
        u->port = (int)port;
    } else if (p != hend) {
        return false;
    }
    u->rest = hend;
    return true;
}

static bool
loopback_host(const char *h)
{
    return !strcmp(h, "127.0.0.1") || !strcmp(h, "[::1]") || !strcmp(h, "localhost");
}

bool
authz_redirect_uri_valid(const char *s, const char **why)
{
    static const char *const banned[] = { "javascript", "data", "file", "vbscript", "about", "blob",
                                          "filesystem", "view-source", "ws", "wss", "ftp" };
    struct authz_uri u;

    *why = "The redirect URI is not valid.";
    if (s == NULL || !*s || strlen(s) > 2000)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\' || *p == '<' || *p == '>' || *p == '"')
            return false;
    if (strchr(s, '#')) {
        *why = "A redirect URI must not contain a fragment.";
        return false;
    }
    if (!authz_uri_parse(s, &u))
        return false;
    for (size_t i = 0; i < GH_ARRAY_LEN(banned); i++)
        if (!strcmp(u.scheme, banned[i])) {
            *why = "This redirect URI scheme is not allowed.";
            return false;
        }
    if (!strcmp(u.scheme, "https"))
        return u.authority && u.host[0];
    if (!strcmp(u.scheme, "http")) {
        *why = "http redirect URIs are allowed only on a loopback address.";
        return u.authority && loopback_host(u.host);
    }
    /* a private-use scheme (RFC 8252 7.1): the app owns it */
    return u.rest[0] != '\0' || u.authority;
}

bool
authz_redirect_uri_match(const char *reg, const char *given)
{
    struct authz_uri a, b;

    if (reg == NULL || given == NULL)
        return false;
    if (!strcmp(reg, given))
        return true;
    if (!authz_uri_parse(reg, &a) || !authz_uri_parse(given, &b) || strchr(given, '#'))
        return false;
    /* RFC 8252 7.3: native apps listen on an ephemeral loopback port */
    return !strcmp(a.scheme, "http") && !strcmp(b.scheme, "http") && a.authority && b.authority &&
           loopback_host(a.host) && !strcmp(a.host, b.host) && !strcmp(a.rest, b.rest);
}

bool
authz_client_redirect_ok(struct authz_client *c, const char *uri)
{
    json_t *uris = json_object_get(c->metadata, "redirect_uris"), *v;
    size_t i;

    json_array_foreach(uris, i, v)
        if (json_is_string(v) && authz_redirect_uri_match(json_string_value(v), uri))
            return true;
    return false;
}

/* ------------------------------------------------------------ metadata */

static const char *const STRING_FIELDS[] = { "client_name", "client_uri", "logo_uri", "tos_uri",
                                             "policy_uri", "software_id", "software_version",
                                             "scope", "jwks_uri" };

/* A URL the consent page or a client list may link to (client_uri,
 * logo_uri, policy_uri, tos_uri, jwks_uri): https, or http on a loopback
 * host; never javascript:, data: or any other scheme a browser would run. */
static bool
link_uri_ok(const char *s)
{
    struct authz_uri u;

    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\' || *p == '<' || *p == '>' || *p == '"')
            return false;
    if (!authz_uri_parse(s, &u) || !u.authority || !u.host[0])
        return false;
    return !strcmp(u.scheme, "https") || (!strcmp(u.scheme, "http") && loopback_host(u.host));
}

/* RFC 7591 contacts: a few addresses, not a place to store megabytes */
#define CONTACTS_MAX    10
#define CONTACT_LEN_MAX 320

/* Validates client metadata (a registration body or a metadata document)
 * and returns the registered subset, or NULL with e set. */
json_t *
authz_client_metadata_check(json_t *in, bool cimd, struct gh_err *e)
{
    json_t *out = json_object(), *uris = json_object_get(in, "redirect_uris"), *v, *arr;
    const char *method = gh_json_str(in, "token_endpoint_auth_method"), *why;
    size_t i;

    if (!json_is_object(in)) {
        gh_err_set(e, 400, "invalid_client_metadata", "The client metadata must be a JSON object.", NULL);
        goto bad;
    }
    if (!json_is_array(uris) || json_array_size(uris) == 0 || json_array_size(uris) > 20) {
        gh_err_set(e, 400, "invalid_redirect_uri", "redirect_uris must list one to 20 URIs.", NULL);
        goto bad;
    }
    json_array_foreach(uris, i, v) {
        if (!json_is_string(v) || !authz_redirect_uri_valid(json_string_value(v), &why)) {
            gh_err_set(e, 400, "invalid_redirect_uri", why = json_is_string(v) ? why : "redirect_uris must be strings.", NULL);
            goto bad;
        }
    }
    json_object_set(out, "redirect_uris", uris);
    if (json_object_get(in, "token_endpoint_auth_method") && method == NULL) {
        gh_err_set(e, 400, "invalid_client_metadata", "token_endpoint_auth_method must be a string.", NULL);
        goto bad;
    }
    if (method == NULL)
        method = cimd ? "none" : "client_secret_basic";   /* RFC 7591 2 default */
    if (strcmp(method, "none") && (cimd || (strcmp(method, "client_secret_basic") &&
                                            strcmp(method, "client_secret_post")))) {
        gh_err_set(e, 400, "invalid_client_metadata",
                   cimd ? "A client metadata document client must use token_endpoint_auth_method none."
                        : "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post.", NULL);
        goto bad;
    }
    json_object_set_new(out, "token_endpoint_auth_method", json_string(method));
    arr = json_object_get(in, "grant_types");
    if (arr) {
        bool code = false;
        if (!json_is_array(arr))
            goto bad_meta;
        json_array_foreach(arr, i, v) {
            const char *g = json_string_value(v);
            if (g == NULL || (strcmp(g, "authorization_code") && strcmp(g, "refresh_token")))
                goto bad_grant;
            code |= !strcmp(g, "authorization_code");
        }
        if (!code)
            goto bad_grant;
        json_object_set(out, "grant_types", arr);
    } else {
        json_object_set_new(out, "grant_types", json_pack("[s]", "authorization_code"));
    }
    arr = json_object_get(in, "response_types");
    if (arr) {
        if (!json_is_array(arr))
            goto bad_meta;
        json_array_foreach(arr, i, v)
            if (!json_is_string(v) || strcmp(json_string_value(v), "code")) {
                gh_err_set(e, 400, "invalid_client_metadata", "response_types may only contain code.", NULL);
                goto bad;
            }
        json_object_set(out, "response_types", arr);
    } else {
        json_object_set_new(out, "response_types", json_pack("[s]", "code"));
    }
    for (i = 0; i < GH_ARRAY_LEN(STRING_FIELDS); i++) {
        v = json_object_get(in, STRING_FIELDS[i]);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_string(v) || strlen(json_string_value(v)) > 2000)
            goto bad_meta;
        if (strstr(STRING_FIELDS[i], "_uri") && !link_uri_ok(json_string_value(v))) {
            gh_err_set(e, 400, "invalid_client_metadata", "", NULL);
            snprintf(e->msg, sizeof(e->msg), "%s must be an https URL (http only on a loopback address).",
                     STRING_FIELDS[i]);
            goto bad;
        }
        json_object_set(out, STRING_FIELDS[i], v);
    }
    v = json_object_get(in, "contacts");
    if (v) {
        json_t *c;
        size_t k;
        if (!json_is_array(v))
            goto bad_meta;
        if (json_array_size(v) > CONTACTS_MAX) {
            gh_err_set(e, 400, "invalid_client_metadata", "contacts may list at most 10 addresses.", NULL);
            goto bad;
        }
        json_array_foreach(v, k, c)
            if (!json_is_string(c) || strlen(json_string_value(c)) > CONTACT_LEN_MAX)
                goto bad_meta;
        json_object_set(out, "contacts", v);
    }
    return out;
bad_grant:
    gh_err_set(e, 400, "invalid_client_metadata",
               "grant_types must include authorization_code and may add refresh_token.", NULL);
    goto bad;
bad_meta:
    gh_err_set(e, 400, "invalid_client_metadata", "The client metadata has a field of the wrong type.", NULL);
bad:
    json_decref(out);
    return NULL;
}

static struct authz_client *
client_from_row(struct gh_arena *a, PGresult *res, int row)
{
    struct authz_client *c = gh_arena_alloc(a, sizeof(*c));
    json_error_t je;
    struct authz_uri u;

    if (c == NULL)
        return NULL;
    c->client_id = gh_arena_strdup(a, db_val(res, row, 0));
    c->kind = gh_arena_strdup(a, db_val(res, row, 1));
    c->name = db_val(res, row, 2) ? gh_arena_strdup(a, db_val(res, row, 2)) : NULL;
    c->metadata = gh_arena_json(a, json_loads(db_val(res, row, 3), 0, &je));
    c->auth_method = gh_arena_strdup(a, db_val(res, row, 4));
    c->secret_hash = db_val(res, row, 5) ? gh_arena_strdup(a, db_val(res, row, 5)) : NULL;
    c->resource_server = db_bool(res, row, 6);
    if (!strcmp(c->kind, "cimd") && authz_uri_parse(c->client_id, &u))
        c->cimd_host = gh_arena_strdup(a, u.host);
    return c->metadata ? c : NULL;
}

#define CLIENT_COLS "client_id, kind, client_name, metadata::text, auth_method, secret_hash, resource_server"

/* From the cache; on a miss, the outcome of the fetch this request waited
 * for (authz_cimd_offload), or of one that failed less than a minute ago. */
static struct authz_client *
cimd_load(struct gh_arena *a, const char *client_id, struct gh_err *e)
{
    static const char q[] = "SELECT " CLIENT_COLS " FROM oauth_clients WHERE client_id = $1 AND kind = 'cimd'"
                            " AND cache_expires_at > now()";
    PGresult *res = db_query(a, e, q, 1, client_id);

    if (res == NULL)
        return NULL;
    if (PQntuples(res) == 1)
        return client_from_row(a, res, 0);
    if (!authz_cimd_url_ok(client_id)) {
        gh_err_set(e, 400, "invalid_client", "This client_id is not a valid https URL.", NULL);
        return NULL;
    }
    if (authz_cimd_outcome(a, client_id, e) < 0)
        return NULL;
    res = db_query(a, e, q, 1, client_id);          /* stored by the fetch just now */
    if (res == NULL)
        return NULL;
    if (PQntuples(res) != 1) {
        gh_err_set(e, 503, "temporarily_unavailable", "The client metadata document could not be kept. Try again.",
                   "cimd: fetched but gone from the cache");
        return NULL;
    }
    return client_from_row(a, res, 0);
}

bool
authz_client_id_ok(const char *id, size_t len)
{
    return id && len > 0 && len <= 2000 && gh_text_ok(id, len);
}

struct authz_client *
authz_client_get(struct gh_arena *a, const char *client_id, struct gh_err *e)
{
    PGresult *res;

    if (client_id == NULL || !*client_id || strlen(client_id) > 2000) {
        gh_err_set(e, 400, "invalid_client", "Unknown client.", NULL);
        return NULL;
    }
    if (!authz_client_id_ok(client_id, strlen(client_id))) {
        gh_err_set(e, 400, "invalid_client", "The client_id is malformed.", NULL);
        return NULL;
    }
    if (gh_str_has_prefix(client_id, "https://") || gh_str_has_prefix(client_id, "http://"))
        return cimd_load(a, client_id, e);
    res = db_query(a, e, "SELECT " CLIENT_COLS " FROM oauth_clients WHERE client_id = $1 AND kind = 'dcr'",
                   1, client_id);
    if (res == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 400, "invalid_client", "Unknown client.", NULL);
        return NULL;
    }
    return client_from_row(a, res, 0);
}

/* ------------------------------------------------------------ client authentication */

/* *len: the decoded length, which a %00 makes differ from strlen() */
static char *
form_unescape(struct gh_arena *a, const char *s, size_t *len)
{
    CURL *cu = curl_easy_init();
    int n = 0;
    char *d = cu ? curl_easy_unescape(cu, s, 0, &n) : NULL, *r;

    r = d ? gh_arena_strndup(a, d, (size_t)n) : NULL;
    if (len)
        *len = r ? (size_t)n : 0;
    if (d) {
        gh_wipe(d, (size_t)n);
        curl_free(d);
    }
    if (cu)
        curl_easy_cleanup(cu);
    return r;
}

/* The id and secret of an HTTP Basic Authorization header (RFC 6749
 * 2.3.1: both form-urlencoded), into the arena; -1 if it is malformed. */
static int
basic_credentials(struct gh_arena *a, const char *hdr, const char **id, const char **secret)
{
    unsigned char *raw;
    size_t len = 0, idlen = 0;
    int rc = -1;
    char *colon;

    if (gh_b64_decode(a, hdr + 6, strlen(hdr + 6), &raw, &len) < 0 || strlen((char *)raw) != len)
        return -1;          /* not Base64, or a NUL inside */
    colon = strchr((char *)raw, ':');
    if (colon == NULL)
        goto out;
    *colon = '\0';
    *id = form_unescape(a, (char *)raw, &idlen);
    if (secret)
        *secret = form_unescape(a, colon + 1, NULL);
    rc = *id && authz_client_id_ok(*id, idlen) ? 0 : -1;
out:
    gh_wipe(raw, (size_t)len);
    return rc;
}

const char *
authz_client_named(struct web_req *r)
{
    const char *hdr = web_header(r, "Authorization"), *id;
    size_t len;

    id = web_form_n(r, "client_id", &len);
    if (id && !authz_client_id_ok(id, len))
        return NULL;        /* the handler refuses it */
    if (id == NULL && hdr && !strncasecmp(hdr, "Basic ", 6) &&
        basic_credentials(web_arena(r), hdr, &id, NULL) < 0)
        return NULL;
    return id;
}

struct authz_client *
authz_client_auth(struct web_req *r, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *hdr = web_header(r, "Authorization"), *secret = web_form(r, "client_secret");
    const char *method = "none", *id, *basic_id, *why = "unknown client";
    struct authz_client *c;
    size_t idlen;
    char hash[65];

    if (web_header_count(r, "Authorization") > 1) {
        /* a proxy that reads the last and we, the first, would disagree on the client */
        gh_err_set(e, 400, "invalid_request", "The Authorization header may be sent once.", NULL);
        return NULL;
    }

    /* before any lookup: the database refuses text that is not UTF-8, and
     * a %00 would cut the id short */
    id = web_form_n(r, "client_id", &idlen);
    if (id && !authz_client_id_ok(id, idlen)) {
        gh_err_set(e, 400, "invalid_client", "The client_id is malformed.", NULL);
        return NULL;
    }
    if (hdr && !strncasecmp(hdr, "Basic ", 6)) {
        if (secret) {
            gh_err_set(e, 400, "invalid_request", "Use one client authentication method.", NULL);
            return NULL;
        }
        if (basic_credentials(a, hdr, &basic_id, &secret) < 0) {
            why = "malformed Basic credentials";
            goto bad;
        }
        if (id && strcmp(id, basic_id)) {
            gh_err_set(e, 400, "invalid_request", "client_id does not match the Authorization header.", NULL);
            return NULL;
        }
        id = basic_id;
        method = "client_secret_basic";
    } else if (secret) {
        method = "client_secret_post";
    }
    if (id == NULL) {
        why = "no client_id";
        goto bad;
    }
    c = authz_client_get(a, id, e);
    if (c == NULL) {
        if (e->status >= 500)
            return NULL;
        gh_err_clear(e);
        goto bad;
    }
    if (strcmp(c->auth_method, method)) {
        /* the operator's first question: which method the client registered */
        why = gh_arena_printf(a, "client %s registered %s, presented %s", id, c->auth_method, method);
        goto bad;
    }
    if (strcmp(method, "none")) {
        gh_sha256_hex(secret ? secret : "", hash);
        if (c->secret_hash == NULL || !gh_ct_streq(hash, c->secret_hash)) {
            why = gh_arena_printf(a, "client %s: wrong secret (%s)", id, method);
            goto bad;
        }
    }
    return c;
bad:
    if (hdr && !strncasecmp(hdr, "Basic ", 6))
        web_add_header(r, "WWW-Authenticate", "Basic realm=\"gatehouse\"");
    gh_err_set(e, 401, "invalid_client", "Client authentication failed.", "%s", why ? why : "client authentication failed");
    return NULL;
}

/* ------------------------------------------------------------ RFC 7591 / 7592 */

static int
reply_client(struct web_req *r, int status, json_t *meta, const char *client_id, long long issued,
             const char *secret, const char *reg_token)
{
    json_t *j = json_deep_copy(meta);

    json_object_set_new(j, "client_id", json_string(client_id));
    json_object_set_new(j, "client_id_issued_at", json_integer(issued));
    if (secret) {
        json_object_set_new(j, "client_secret", json_string(secret));
        json_object_set_new(j, "client_secret_expires_at", json_integer(0));
    }
    if (reg_token)
        json_object_set_new(j, "registration_access_token", json_string(reg_token));
    json_object_set_new(j, "registration_client_uri",
                        json_string(gh_arena_printf(web_arena(r), "%s/oauth/register/%s",
                                                    gh_cfg.public_url, client_id)));
    web_add_header(r, "Cache-Control", "no-store");
    web_add_header(r, "Pragma", "no-cache");
    return web_reply_json(r, status, j);
}

static int
post_register(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    json_t *body, *meta;
    char *meta_s, fp[65], sh[65], th[65];
    const char *method;
    char *id, *secret = NULL, *regtok;
    PGresult *res;
    int rc;

    if (authz_rate_check(r, "register", gh_cfg.rate_register_per_min, &e) < 0)
        return web_reply_err(r, &e);
    body = web_json_body(r, &e);
    if (body == NULL) {
        gh_err_clear(&e);
        gh_err_set(&e, 400, "invalid_client_metadata", "The request body is not valid JSON.", NULL);
        return web_reply_err(r, &e);
    }
    meta = gh_arena_json(a, authz_client_metadata_check(body, false, &e));
    if (meta == NULL)
        return web_reply_err(r, &e);
    method = gh_json_str(meta, "token_endpoint_auth_method");
    meta_s = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    gh_arena_defer(a, free, meta_s);
    gh_sha256_hex(meta_s, fp);
    /* identical registrations (a client that re-registers on every start)
     * do not pile up: keep the newest few that never got a grant.  A
     * designated resource server holds no grant of its own and must not be
     * pushed out by strangers registering its metadata. */
    db_query(a, &(struct gh_err){0},
        "DELETE FROM oauth_clients WHERE client_id IN ("
        " SELECT client_id FROM oauth_clients c WHERE fingerprint = $1 AND kind = 'dcr' AND NOT resource_server"
        "   AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = c.client_id)"
        " ORDER BY created_at DESC OFFSET 4)", 1, fp);
    id = gh_token_hex(a, "gh_client_", 16);
    regtok = gh_token_hex(a, "gth_rat_", 32);
    if (strcmp(method, "none"))
        secret = gh_token_hex(a, "gth_cs_", 32);
    if (id == NULL || regtok == NULL || (strcmp(method, "none") && secret == NULL)) {
        gh_err_set(&e, 500, "server_error", "internal error", "no entropy");
        return web_reply_err(r, &e);
    }
    gh_sha256_hex(regtok, th);
    if (secret)
        gh_sha256_hex(secret, sh);
    res = db_query(a, &e,
        "INSERT INTO oauth_clients (client_id, kind, client_name, metadata, auth_method, secret_hash,"
        " reg_token_hash, fingerprint, created_ip) VALUES ($1, 'dcr', $2, $3::jsonb, $4, $5, $6, $7, $8)"
        " RETURNING extract(epoch from created_at)::bigint", 8, id, gh_json_str(meta, "client_name"),
        meta_s, method, secret ? sh : NULL, th, fp, web_client_ip(r));
    if (res == NULL)
        return web_reply_err(r, &e);
    GH_LOG(INFO, "client_registered", "client %s registered (%s)", id, method);
    rc = reply_client(r, 201, meta, id, db_ll(res, 0, 0, 0), secret, regtok);
    gh_wipe(regtok, strlen(regtok));
    if (secret)
        gh_wipe(secret, strlen(secret));
    return rc;
}

static void
token_invalid(struct web_req *r, struct gh_err *e)
{
    web_add_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    gh_err_set(e, 401, "invalid_token", "The registration access token is not valid.", NULL);
}

/* RFC 7592: the registration access token guards one client.  The row
 * holds CLIENT_COLS, then the token's hash (7) and the registration time (8). */
static PGresult *
managed_client(struct web_req *r, struct gh_err *e)
{
    const char *hdr = web_header(r, "Authorization"), *id = web_path_param(r, 0);
    char th[65];
    PGresult *res;

    if (web_header_count(r, "Authorization") > 1) {
        web_add_header(r, "WWW-Authenticate", "Bearer error=\"invalid_request\"");
        gh_err_set(e, 400, "invalid_request", "The Authorization header may be sent once.", NULL);
        return NULL;
    }
    if (hdr == NULL || strncasecmp(hdr, "Bearer ", 7) || id == NULL) {
        web_add_header(r, "WWW-Authenticate", "Bearer");
        gh_err_set(e, 401, "invalid_token", "A registration access token is required.", NULL);
        return NULL;
    }
    if (!authz_client_id_ok(id, strlen(id))) {          /* no such client: RFC 7592 says 401 */
        token_invalid(r, e);
        return NULL;
    }
    gh_sha256_hex(hdr + 7, th);
    res = db_query(web_arena(r), e, "SELECT " CLIENT_COLS ", reg_token_hash,"
                   " extract(epoch from created_at)::bigint FROM oauth_clients"
                   " WHERE client_id = $1 AND kind = 'dcr'", 1, id);
    if (res == NULL)
        return NULL;
    if (PQntuples(res) == 0 || !db_val(res, 0, 7) || !gh_ct_streq(th, db_val(res, 0, 7))) {
        token_invalid(r, e);
        return NULL;
    }
    return res;
}

/* RFC 7592 3 wants the registration access token in every client
 * information response, and only its hash is stored: each GET and PUT
 * issues a new one, and the one presented stops working.  The swap is
 * conditional on the old hash, so of two concurrent requests with one
 * token only the first gets a successor; the other is refused. */
static int
client_read(struct web_req *r, struct authz_client *c, const char *old_hash, long long issued)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    char *regtok = gh_token_hex(a, "gth_rat_", 32), th[65];
    PGresult *res;
    int rc;

    if (regtok == NULL) {
        gh_err_set(&e, 500, "server_error", "internal error", "no entropy");
        return web_reply_err(r, &e);
    }
    gh_sha256_hex(regtok, th);
    res = db_query(a, &e, "UPDATE oauth_clients SET reg_token_hash = $3 WHERE client_id = $1"
                          " AND reg_token_hash = $2 RETURNING 1", 3, c->client_id, old_hash, th);
    if (res != NULL && PQntuples(res) == 0)
        token_invalid(r, &e);
    rc = gh_err_isset(&e) ? web_reply_err(r, &e)
                          : reply_client(r, 200, c->metadata, c->client_id, issued, NULL, regtok);
    gh_wipe(regtok, strlen(regtok));
    return rc;
}

static int
manage_register(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *m = web_method(r);
    struct gh_err e = {0};
    PGresult *res = managed_client(r, &e), *upd;
    struct authz_client *c;
    json_t *body, *meta;
    char *meta_s, sh[65], th[65], *secret = NULL, *regtok;
    const char *method;
    int rc;

    if (strcmp(m, "GET") && strcmp(m, "PUT") && strcmp(m, "DELETE")) {
        web_add_header(r, "Allow", "GET, PUT, DELETE");
        gh_err_set(&e, 405, "method_not_allowed", "method not allowed", NULL);
        return web_reply_err(r, &e);
    }
    if (res == NULL)
        return web_reply_err(r, &e);
    c = client_from_row(a, res, 0);
    if (c == NULL) {
        gh_err_set(&e, 500, "server_error", "internal error", "bad client row");
        return web_reply_err(r, &e);
    }
    if (!strcmp(m, "GET"))
        return client_read(r, c, db_val(res, 0, 7), db_ll(res, 0, 8, 0));
    if (!strcmp(m, "DELETE")) {
        if (!db_query(a, &e, "DELETE FROM oauth_clients WHERE client_id = $1", 1, c->client_id))
            return web_reply_err(r, &e);
        authz_credentials_changed("client deleted");
        GH_LOG(INFO, "client_deleted", "client %s deleted by its registrant", c->client_id);
        return web_reply(r, 204, NULL, "", 0);
    }
    body = web_json_body(r, &e);
    if (body == NULL)
        return web_reply_err(r, &e);
    if (!gh_json_str(body, "client_id") || strcmp(gh_json_str(body, "client_id"), c->client_id)) {
        gh_err_set(&e, 400, "invalid_client_metadata", "client_id must equal the registered one.", NULL);
        return web_reply_err(r, &e);
    }
    meta = gh_arena_json(a, authz_client_metadata_check(body, false, &e));
    if (meta == NULL)
        return web_reply_err(r, &e);
    method = gh_json_str(meta, "token_endpoint_auth_method");
    if (strcmp(method, "none") && c->secret_hash == NULL) {
        secret = gh_token_hex(a, "gth_cs_", 32);
        if (secret)
            gh_sha256_hex(secret, sh);
    }
    regtok = gh_token_hex(a, "gth_rat_", 32);
    if (regtok == NULL || (strcmp(method, "none") && c->secret_hash == NULL && secret == NULL)) {
        gh_err_set(&e, 500, "server_error", "internal error", "no entropy");
        goto out;
    }
    gh_sha256_hex(regtok, th);
    meta_s = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    gh_arena_defer(a, free, meta_s);
    /* the new registration access token replaces the one presented (see client_read) */
    upd = db_query(a, &e, "UPDATE oauth_clients SET metadata = $2::jsonb, client_name = $3, auth_method = $4,"
                          " secret_hash = CASE WHEN $4 = 'none' THEN NULL ELSE coalesce($5, secret_hash) END,"
                          " reg_token_hash = $7, fingerprint = NULL, updated_at = now()"
                          " WHERE client_id = $1 AND reg_token_hash = $6 RETURNING 1",
                   7, c->client_id, meta_s, gh_json_str(meta, "client_name"), method, secret ? sh : NULL,
                   db_val(res, 0, 7), th);
    if (upd != NULL && PQntuples(upd) == 0)
        token_invalid(r, &e);
out:
    rc = gh_err_isset(&e) ? web_reply_err(r, &e)
                          : reply_client(r, 200, meta, c->client_id, db_ll(res, 0, 8, 0), secret, regtok);
    if (regtok)
        gh_wipe(regtok, strlen(regtok));
    if (secret)
        gh_wipe(secret, strlen(secret));
    return rc;
}

static int
cors_preflight(struct web_req *r)
{
    return web_reply(r, 204, NULL, "", 0);
}

/* ------------------------------------------------------------ resource servers */

int
authz_client_set_resource_server(const char *client_id, bool on, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    PGresult *res;
    int rc = -1;

    if (a == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "no memory");
    /* only a confidential registered client: introspection authenticates
     * the caller, and a public client has nothing to authenticate with */
    res = db_query(a, e, "UPDATE oauth_clients SET resource_server = $2::bool, updated_at = now()"
                         " WHERE client_id = $1 AND kind = 'dcr' AND (NOT $2::bool OR auth_method <> 'none')"
                         " RETURNING 1", 2, client_id, on ? "true" : "false");
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        res = db_query(a, e, "SELECT 1 FROM oauth_clients WHERE client_id = $1 AND kind = 'dcr'", 1, client_id);
        if (res == NULL)
            goto out;
        if (PQntuples(res) == 0)
            gh_err_set(e, 404, "not_found", "No registered client with this client_id.", NULL);
        else
            gh_err_set(e, 400, "invalid_request",
                       "Only a confidential client (one with a client secret) can introspect other clients' tokens.",
                       NULL);
        goto out;
    }
    GH_LOG(INFO, "client_resource_server", "client %s %s", client_id,
           on ? "may introspect every token" : "introspects its own tokens only");
    rc = 0;
out:
    gh_arena_free(a);
    return rc;
}

void
authz_client_reap(void)
{
    struct gh_arena *a = gh_arena_new(0);
    struct gh_err e = {0};
    char ttl[24];

    snprintf(ttl, sizeof(ttl), "%ld", gh_cfg.oauth_client_unused_ttl);
    /* registered clients with no live token after the TTL; cached metadata
     * documents nobody holds a grant for.  Resource servers stay: they
     * introspect other clients' tokens and usually hold none themselves. */
    db_query(a, &e,
        "DELETE FROM oauth_clients c WHERE created_at < now() - make_interval(secs => $1::int)"
        " AND NOT c.resource_server"
        " AND NOT EXISTS (SELECT 1 FROM oauth_grants g JOIN oauth_tokens t ON t.grant_id = g.id"
        "   WHERE g.client_id = c.client_id AND g.revoked_at IS NULL AND t.revoked_at IS NULL"
        "     AND t.expires_at > now())"
        " AND NOT EXISTS (SELECT 1 FROM oauth_codes k JOIN oauth_grants g ON g.id = k.grant_id"
        "   WHERE g.client_id = c.client_id AND k.expires_at > now() AND k.used_at IS NULL)", 1, ttl);
    db_query(a, &e, "DELETE FROM oauth_denials WHERE until < now()", 0);
    /* sealed successor pairs are only needed inside the grace window */
    db_query(a, &e, "UPDATE oauth_tokens SET successor = NULL WHERE successor IS NOT NULL"
                    " AND rotated_at < now() - interval '5 minutes'", 0);
    db_query(a, &e, "DELETE FROM oauth_codes WHERE expires_at < now() - interval '1 day'", 0);
    /* one line a run: an operator (and a test) can tell the reaper is not
     * still holding a pooled connection */
    if (gh_err_isset(&e))
        GH_LOG(WARN, "client_reap", "reap incomplete: %s", e.detail);
    else
        GH_LOG(DEBUG, "client_reap", "reaped unused clients, denials and codes");
    gh_arena_free(a);
}

int
authz_client_routes(void)
{
    web_route("POST", "/oauth/register", WEB_API | WEB_CORS, post_register);
    web_route("OPTIONS", "/oauth/register", WEB_API | WEB_CORS, cors_preflight);
    web_route(NULL, "/oauth/register/*", WEB_API | WEB_CORS, manage_register);
    return 0;
}
