/*
 * gateway/connector.c — connectors: the upstream MCP servers of an agent.
 *
 * A connector's static credentials (header values) are sealed together as
 * one AES-256-GCM blob under the server key, a JSON array [{name, value}]
 * with "gw_connector:v2:<id>:<agent id>:<url>" as associated data: the
 * blob opens only in its own row, for its own agent and URL, so no change
 * made in the database alone (a blob copied to another row, a URL edited
 * or swapped, a row moved to another agent) sends a credential anywhere
 * but where the admin sent it.  They are unsealed only into
 * a request arena, for the upstream call, and never returned to the CLI or
 * the pages, nor logged.  gw_connector_auth_headers is the one place that
 * decides what credential goes upstream (per-member OAuth plugs in there).
 */
#include "gateway/gw_int.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define URL_MAX 2048
#define HEADER_VALUE_MAX 4096

static const char SQL_SELECT[] =
    "SELECT c.id, c.agent_id, c.name, c.url, c.enabled, c.headers_sealed,"
    "       array_to_json(c.header_names)::text, ag.slug,"
    "       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), c.tool_prefix, c.auth_mode"
    "  FROM connectors c JOIN agents ag ON ag.id = c.agent_id";

/* ---- validation */

int
gw_connector_name_check(const char *name, struct gh_err *e)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > 32)
        return gh_err_set(e, 400, "invalid_request",
                          "connector name must be 1 to 32 characters of a-z, 0-9, '_' and '-'", NULL);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
        if (!ok)
            return gh_err_set(e, 400, "invalid_request",
                              "connector name must start with a-z or 0-9 and use only a-z, 0-9, '_' and '-'",
                              NULL);
    }
    if (strstr(name, "__"))
        return gh_err_set(e, 400, "invalid_request",
                          "connector name must not contain \"__\" (it separates connector and tool names)", NULL);
    return 0;
}

int
gw_connector_prefix_check(const char *prefix, struct gh_err *e)
{
    size_t n = prefix ? strlen(prefix) : 0;

    /* what MCP allows in a tool name (2025-11-25: A-Z a-z 0-9 _ - .), so
     * "<prefix>__<tool>" is a valid name whenever the tool's own is */
    if (n > 32 || (prefix && strspn(prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                            "0123456789_-.") != n))
        return gh_err_set(e, 400, "invalid_request",
                          "tool prefix must be at most 32 characters of A-Z, a-z, 0-9, '_', '-' and '.'"
                          " (empty: the upstream's own names)", NULL);
    return 0;
}

const char *
gw_connector_url_shown(struct gh_arena *a, const char *url)
{
    const char *q = strchr(url, '?'), *p;
    char *out, *o;

    if (q == NULL)
        return url;
    /* each value of n bytes becomes 3: at most 3 more bytes a parameter */
    out = gh_arena_alloc(a, strlen(url) + 3 * (strlen(q) + 1) + 1);
    if (out == NULL)
        return "(not shown)";
    o = out;
    memcpy(o, url, (size_t)(q - url) + 1);
    o += q - url + 1;
    for (p = q + 1; *p;) {
        size_t name = strcspn(p, "=&");
        memcpy(o, p, name);
        o += name;
        p += name;
        if (*p == '=') {
            memcpy(o, "=***", 4);
            o += 4;
            p += strcspn(p, "&");
        }
        if (*p == '&')
            *o++ = *p++;
    }
    *o = '\0';
    return out;
}

int
gw_connector_url_check(const char *url, struct gh_err *e)
{
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL, *frag = NULL;
    int rc = -1;

    if (url == NULL || !*url || strlen(url) > URL_MAX) {
        gh_err_set(e, 400, "invalid_request", "URL must be an http or https URL of at most 2048 characters",
                   NULL);
        goto out;
    }
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p >= 0x7f) {
            gh_err_set(e, 400, "invalid_request", "URL must not contain spaces or control characters", NULL);
            goto out;
        }
    u = curl_url();
    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) ||
        strncasecmp(url, scheme, strlen(scheme)) != 0) {
        gh_err_set(e, 400, "invalid_request", "URL must be an http or https URL with a host", NULL);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host == NULL || !*host) {
        gh_err_set(e, 400, "invalid_request", "URL must be an http or https URL with a host", NULL);
        goto out;
    }
    /* credentials in the URL would be shown by `connector list` and the pages */
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
        gh_err_set(e, 400, "invalid_request",
                   "URL must not carry credentials; pass them as a header instead", NULL);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        gh_err_set(e, 400, "invalid_request", "URL must not have a fragment", NULL);
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    if (user)
        curl_free(user);
    if (pass) {
        gh_wipe(pass, strlen(pass));
        curl_free(pass);
    }
    curl_free(frag);
    curl_url_cleanup(u);
    return rc;
}

static bool
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Headers the gateway sets itself on the upstream request. */
static const char *const RESERVED_HEADERS[] = {
    "host", "content-length", "content-type", "transfer-encoding", "connection", "accept",
    "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "last-event-id",
    "upgrade", "te", "trailer", "keep-alive", "expect",
};

static int
header_check(const char *name, const char *value, struct gh_err *e)
{
    size_t n = name ? strlen(name) : 0;
    json_t *utf8;

    if (n == 0 || n > 128)
        return gh_err_set(e, 400, "invalid_request", "header needs a name: 'Name: value'", NULL);
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)name[i]))
            return gh_err_set(e, 400, "invalid_request",
                              "header name must be an HTTP token (letters, digits, '-' and the like)", NULL);
    for (size_t i = 0; i < GH_ARRAY_LEN(RESERVED_HEADERS); i++)
        if (!strcasecmp(name, RESERVED_HEADERS[i]))
            return gh_err_set(e, 400, "invalid_request", "the gateway sets this header itself",
                              "reserved header name %s", RESERVED_HEADERS[i]);
    if (value == NULL || strlen(value) > HEADER_VALUE_MAX)
        return gh_err_set(e, 400, "invalid_request", "header value must be at most 4096 characters", NULL);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7f)
            return gh_err_set(e, 400, "invalid_request",
                              "header value must not contain line breaks or control characters", NULL);
    /* the values are sealed as a JSON array, whose strings are UTF-8:
     * jansson refuses any other bytes, and the header would be left out */
    utf8 = json_string(value);
    if (utf8 == NULL)
        return gh_err_set(e, 400, "invalid_request", "header value must be UTF-8 text", NULL);
    gh_wipe((char *)json_string_value(utf8), json_string_length(utf8));     /* jansson's copy */
    json_decref(utf8);
    return 0;
}

int
gw_header_parse(struct gh_arena *a, const char *line, struct gw_header *out, struct gh_err *e)
{
    const char *colon = line ? strchr(line, ':') : NULL;
    const char *v, *end;

    if (colon == NULL)
        return gh_err_set(e, 400, "invalid_request", "header must be written 'Name: value'", NULL);
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    out->name = gh_arena_strndup(a, line, (size_t)(colon - line));
    out->value = gh_arena_strndup(a, v, (size_t)(end - v));
    if (out->name == NULL || out->value == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "arena full");
    /* a CR/LF anywhere in the line is refused, also before the trimmed end */
    if (strpbrk(line, "\r\n"))
        return gh_err_set(e, 400, "invalid_request",
                          "header value must not contain line breaks or control characters", NULL);
    return header_check(out->name, out->value, e);
}

/* ---- the rows */

static char *
uuid_v4(struct gh_arena *a)
{
    unsigned char b[16];
    char *s;

    if (gh_random_bytes(b, sizeof(b)) < 0)
        return NULL;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    s = gh_arena_printf(a, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                        b[12], b[13], b[14], b[15]);
    return s;
}

static char *
aad_of(struct gh_arena *a, const char *id, const char *agent_id, const char *url)
{
    /* the id and the agent id are uuids: the URL, last, cannot shift them */
    return gh_arena_printf(a, "gw_connector:v2:%s:%s:%s", id, agent_id, url);
}

/* What builds before the URL and agent were bound sealed with: opened only
 * by gw_connector_reseal_legacy, once, to seal the blob again bound. */
static char *
aad_legacy(struct gh_arena *a, const char *id)
{
    return gh_arena_printf(a, "gw_connector:%s", id);
}

static int
row_fill(struct gh_arena *a, PGresult *res, int i, struct gw_connector *c, struct gh_err *e)
{
    json_t *names;
    size_t k;
    json_t *v;

    c->id = gh_arena_strdup(a, db_val(res, i, 0));
    c->agent_id = gh_arena_strdup(a, db_val(res, i, 1));
    c->name = gh_arena_strdup(a, db_val(res, i, 2));
    c->url = gh_arena_strdup(a, db_val(res, i, 3));
    c->enabled = db_bool(res, i, 4);
    c->agent_slug = gh_arena_strdup(a, db_val(res, i, 7));
    c->created_at = gh_arena_strdup(a, db_val(res, i, 8));
    c->prefix_set = db_val(res, i, 9) != NULL;
    c->prefix = c->prefix_set ? gh_arena_strdup(a, db_val(res, i, 9)) : c->name;
    c->auth_mode = gh_arena_strdup(a, db_val(res, i, 10));
    names = gh_arena_json(a, json_loads(db_val(res, i, 6) ? db_val(res, i, 6) : "[]", 0, NULL));
    if (!json_is_array(names))
        return gh_err_set(e, 500, "server_error", "internal error", "connector %s: header_names", c->id);
    c->header_names = gh_arena_alloc(a, (json_array_size(names) + 1) * sizeof(char *));
    if (c->header_names == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "arena full");
    json_array_foreach(names, k, v)
        if (json_is_string(v))
            c->header_names[c->nheader_names++] = gh_arena_strdup(a, json_string_value(v));
    return 0;
}

/* 0 with the headers, or with c->unavailable set when the blob does not
 * open (another server key, a damaged value); -1 only when the arena is
 * full.  Nothing of the blob or the key reaches e or the log. */
static int
unseal_headers(struct gh_arena *a, struct gw_connector *c, const char *sealed, struct gh_err *e)
{
    unsigned char *pt = NULL;
    size_t n = 0, k;
    json_t *arr, *h;
    int rc = 0;

    c->headers = NULL;
    c->nheaders = 0;
    c->unavailable = false;
    if (sealed == NULL || !*sealed)
        return 0;
    if (gh_unseal(a, sealed, aad_of(a, c->id, c->agent_id, c->url), &pt, &n) < 0) {
        c->unavailable = true;
        goto out;
    }
    arr = gh_arena_json(a, json_loadb((const char *)pt, n, 0, NULL));
    if (!json_is_array(arr) || json_array_size(arr) > GW_MAX_HEADERS) {
        c->unavailable = true;
        goto out;
    }
    c->headers = gh_arena_alloc(a, (json_array_size(arr) + 1) * sizeof(*c->headers));
    if (c->headers == NULL) {
        rc = gh_err_set(e, 500, "server_error", "internal error", "arena full");
        goto out;
    }
    json_array_foreach(arr, k, h) {
        const char *hn = gh_json_str(h, "name"), *hv = gh_json_str(h, "value");
        if (hn == NULL || hv == NULL)
            continue;
        c->headers[c->nheaders].name = gh_arena_strdup(a, hn);
        c->headers[c->nheaders].value = gh_arena_strdup(a, hv);
        c->nheaders++;
    }
out:
    /* the plaintext JSON stays nowhere but in the copies above */
    if (pt)
        gh_wipe(pt, n);
    if (c->unavailable) {
        c->headers = NULL;
        c->nheaders = 0;
    }
    return rc;
}

/* ---- the enabled connectors of an agent, cached
 *
 * agent id -> its enabled connectors with their unsealed headers, so a
 * tools/call neither queries nor decrypts.  Flushed whole by every NOTIFY
 * gw_connectors (raised after each change, from any process), by the
 * local change functions synchronously, and by a listener reconnect.
 * Encoded as strings: per connector id, agent id, name, url, agent slug,
 * created, tool prefix, "1" when unavailable, auth mode, header count,
 * then name/value pairs.
 * An unavailable connector is cached as such until the next flush (any
 * connector change, a listener reconnect): only the right server key, or
 * a new row, mends it.  The cache wipes its
 * copies of the header values when it drops them. */

#define AGENT_CONNECTORS_MAX 4096
#define FIELDS 10

static struct gh_cache *by_agent;

void
gw_connector_cache_start(void)
{
    long n = gh_cfg.auth_cache_entries;

    if (by_agent == NULL)
        by_agent = db_cache_new(n < AGENT_CONNECTORS_MAX ? n : AGENT_CONNECTORS_MAX, GW_CHANNEL_CONNECTORS);
}

static void
cache_put(const char *agent_id, const struct gw_connector *cs, int n, uint64_t gen)
{
    size_t total = 0, k = 0;
    const char **v;
    char *counts;

    for (int i = 0; i < n; i++)
        total += FIELDS + 2 * (size_t)cs[i].nheaders;
    v = calloc(total + 1, sizeof(*v));
    counts = calloc((size_t)n + 1, 12);
    if (v == NULL || counts == NULL)
        goto out;
    for (int i = 0; i < n; i++) {
        const struct gw_connector *c = &cs[i];
        snprintf(counts + 12 * i, 12, "%d", c->nheaders);
        v[k++] = c->id;
        v[k++] = c->agent_id;
        v[k++] = c->name;
        v[k++] = c->url;
        v[k++] = c->agent_slug;
        v[k++] = c->created_at;
        v[k++] = c->prefix;
        v[k++] = c->unavailable ? "1" : "0";
        v[k++] = c->auth_mode;
        v[k++] = counts + 12 * i;
        for (int h = 0; h < c->nheaders; h++) {
            v[k++] = c->headers[h].name;
            v[k++] = c->headers[h].value;
        }
    }
    gh_cache_put(by_agent, agent_id, v, (int)total, 0, gen);
out:
    free(v);
    free(counts);
}

/* 1 on a hit, 0 on a miss, -1 when the arena is full. */
static int
cache_get(struct gh_arena *a, const char *agent_id, struct gw_connector **out, int *count)
{
    int nv = 0, k = 0, n = 0;
    char **v = gh_cache_get(by_agent, a, agent_id, &nv);
    struct gw_connector *cs;

    if (v == NULL)
        return 0;
    for (int i = 0; i + FIELDS <= nv; n++)
        i += FIELDS + 2 * atoi(v[i + FIELDS - 1]);
    cs = gh_arena_alloc(a, ((size_t)n + 1) * sizeof(*cs));
    if (cs == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        struct gw_connector *c = &cs[i];
        c->id = v[k++];
        c->agent_id = v[k++];
        c->name = v[k++];
        c->url = v[k++];
        c->agent_slug = v[k++];
        c->created_at = v[k++];
        c->prefix = v[k++];
        c->prefix_set = strcmp(c->prefix, c->name) != 0;
        c->unavailable = v[k++][0] == '1';
        c->auth_mode = v[k++];
        c->nheaders = atoi(v[k++]);
        c->enabled = true;
        c->headers = gh_arena_alloc(a, ((size_t)c->nheaders + 1) * sizeof(*c->headers));
        if (c->headers == NULL)
            return -1;
        for (int h = 0; h < c->nheaders; h++) {
            c->headers[h].name = v[k++];
            c->headers[h].value = v[k++];
        }
    }
    *out = cs;
    *count = n;
    return 1;
}

int
gw_connectors_for_agent(struct gh_arena *a, const char *agent_id, struct gw_connector **out, int *n,
                        struct gh_err *e)
{
    struct gw_connector *cs;
    PGresult *res;
    uint64_t gen;
    int rows;

    *out = NULL;
    *n = 0;
    switch (cache_get(a, agent_id, out, n)) {
    case 1:
        return 0;
    case -1:
        return gh_err_set(e, 500, "server_error", "internal error", "arena full");
    }
    gen = gh_cache_gen(by_agent);
    res = db_query(a, e, gh_arena_printf(a, "%s WHERE c.agent_id = $1::uuid AND c.enabled"
                                            " ORDER BY c.name COLLATE \"C\"", SQL_SELECT),
                   1, agent_id);
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    cs = gh_arena_alloc(a, ((size_t)rows + 1) * sizeof(*cs));
    if (cs == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "arena full");
    for (int i = 0; i < rows; i++) {
        if (row_fill(a, res, i, &cs[i], e) < 0 || unseal_headers(a, &cs[i], db_val(res, i, 5), e) < 0)
            return -1;
        if (cs[i].unavailable)
            GH_LOG(WARN, "gw_connector",
                   "connector %s (%s) of agent %s: its sealed headers cannot be opened (another server key,"
                   " its URL or agent changed in the database, or the stored value is damaged); left out of"
                   " every list and call",
                   cs[i].name, cs[i].id, cs[i].agent_slug);
    }
    cache_put(agent_id, cs, rows, gen);
    *out = cs;
    *n = rows;
    return 0;
}

int
gw_connector_auth_headers(struct gh_arena *a, const struct gw_connector *c,
                          const struct authz_credential *who, struct gw_header **out, int *n,
                          struct gh_err *e)
{
    /* Static credentials only, the same for every member.  Per-member
     * upstream OAuth (the member's own connection, refreshed in flight)
     * replaces this body; callers do not change. */
    *out = NULL;
    *n = 0;
    if (c->unavailable) {
        if (!gh_err_isset(e)) {
            gh_err_set(e, 503, "temporarily_unavailable", "", "its sealed headers cannot be opened");
            snprintf(e->msg, sizeof(e->msg),
                     "Connector '%s' is unavailable: its stored credentials cannot be read.", c->name);
        }
        return -1;
    }
    if (c->auth_mode && !strcmp(c->auth_mode, "none"))
        return 0;
    if (gw_auth_per_member(c->auth_mode))
        return gw_connection_headers(a, c, who, false, out, n, e);
    *out = c->headers;
    *n = c->nheaders;
    return 0;
}

int
gw_connector_list(struct gh_arena *a, const char *agent_slug, struct gw_connector **out, int *n,
                  struct gh_err *e)
{
    struct gw_connector *cs;
    PGresult *res;
    char *sql;
    int rows;

    *out = NULL;
    *n = 0;
    sql = gh_arena_printf(a, "%s WHERE ($1 = '' OR ag.slug = $1) ORDER BY ag.slug, c.name COLLATE \"C\"",
                          SQL_SELECT);
    if (agent_slug && *agent_slug) {
        struct authz_agent *ag = authz_agent_by_slug(a, agent_slug, e);
        if (ag == NULL)
            return -1;
    }
    res = db_query(a, e, sql, 1, agent_slug ? agent_slug : "");
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    cs = gh_arena_alloc(a, ((size_t)rows + 1) * sizeof(*cs));
    if (cs == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "arena full");
    for (int i = 0; i < rows; i++)
        if (row_fill(a, res, i, &cs[i], e) < 0)
            return -1;
    *out = cs;
    *n = rows;
    return 0;
}

void
gw_connector_changed(const char *agent_id)
{
    struct gh_err e = {0};

    /* this process at once; the others (and this one again) on the NOTIFY */
    gh_cache_flush(by_agent);
    /* the change is committed; a lost NOTIFY only delays list_changed */
    if (db_notify(GW_CHANNEL_CONNECTORS, agent_id, &e) < 0)
        GH_LOG(WARN, "gw_notify", "connectors of agent %s changed, NOTIFY failed: %s", agent_id, e.detail);
}

int
gw_connector_add(struct gh_arena *a, const char *agent_slug, const char *name, const char *url,
                 const struct gw_header *headers, int nheaders, char **id_out, struct gh_err *e)
{
    struct authz_agent *ag;
    json_t *sealed_json = NULL, *names = NULL;
    char *plain = NULL, *sealed = NULL, *id, *names_txt;
    PGresult *res;
    int rc = -1;

    if (gw_connector_name_check(name, e) < 0 || gw_connector_url_check(url, e) < 0)
        goto out;
    if (nheaders < 0 || nheaders > GW_MAX_HEADERS) {
        gh_err_set(e, 400, "invalid_request", "at most 16 headers per connector", NULL);
        goto out;
    }
    sealed_json = json_array();
    names = json_array();
    for (int i = 0; i < nheaders; i++) {
        if (header_check(headers[i].name, headers[i].value, e) < 0)
            goto out;
        for (int j = 0; j < i; j++)
            if (!strcasecmp(headers[i].name, headers[j].name)) {
                gh_err_set(e, 400, "invalid_request", "the same header is given twice", NULL);
                goto out;
            }
        /* a header left out here would be listed but never sent */
        if (json_array_append_new(sealed_json, json_pack("{s:s,s:s}", "name", headers[i].name,
                                                         "value", headers[i].value)) < 0 ||
            json_array_append_new(names, json_string(headers[i].name)) < 0) {
            gh_err_set(e, 500, "server_error", "internal error", "connector headers: json");
            goto out;
        }
    }
    ag = authz_agent_by_slug(a, agent_slug, e);
    if (ag == NULL)
        goto out;
    id = uuid_v4(a);
    if (id == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "random");
        goto out;
    }
    if (nheaders > 0) {
        plain = json_dumps(sealed_json, JSON_COMPACT);
        sealed = plain ? gh_seal(a, plain, strlen(plain), aad_of(a, id, ag->id, url)) : NULL;
        if (sealed == NULL) {
            gh_err_set(e, 500, "server_error", "internal error", "sealing connector headers failed");
            goto out;
        }
    }
    names_txt = json_dumps(names, JSON_COMPACT);
    if (names_txt == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "json");
        goto out;
    }
    gh_arena_defer(a, free, names_txt);
    res = db_query(a, e,
        "INSERT INTO connectors (id, agent_id, name, url, headers_sealed, header_names, auth_mode)"
        " VALUES ($1::uuid, $2::uuid, $3, $4, $5, ARRAY(SELECT json_array_elements_text($6::json)),"
        "         CASE WHEN $5::text IS NULL THEN 'none' ELSE 'static' END)"
        " ON CONFLICT (agent_id, name) DO NOTHING RETURNING id",
        6, id, ag->id, name, url, sealed, names_txt);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        gh_err_set(e, 409, "conflict", "a connector with this name already exists on this agent",
                   "duplicate connector %s on agent %s", name, ag->slug);
        goto out;
    }
    GH_LOG(INFO, "connector_added", "connector %s (%s) added to agent %s with %d header(s)",
           name, id, ag->slug, nheaders);
    gw_connector_changed(ag->id);
    if (id_out)
        *id_out = id;
    rc = 0;
out:
    if (plain) {
        gh_wipe(plain, strlen(plain));
        free(plain);
    }
    /* jansson keeps its own copies of the values: wipe them before release */
    if (sealed_json) {
        size_t k;
        json_t *h;
        json_array_foreach(sealed_json, k, h) {
            json_t *v = json_object_get(h, "value");
            if (json_is_string(v) && json_string_length(v) > 0) {
                char *p = (char *)json_string_value(v);
                gh_wipe(p, json_string_length(v));
            }
        }
        json_decref(sealed_json);
    }
    json_decref(names);
    return rc;
}

int
gw_connector_set_enabled(struct gh_arena *a, const char *agent_slug, const char *name, bool enabled,
                         struct gh_err *e)
{
    struct authz_agent *ag;
    PGresult *res;

    if (gw_connector_name_check(name, e) < 0)
        return -1;
    ag = authz_agent_by_slug(a, agent_slug, e);
    if (ag == NULL)
        return -1;
    res = db_query(a, e, "UPDATE connectors SET enabled = $3::boolean, updated_at = now()"
                         " WHERE agent_id = $1::uuid AND name = $2 RETURNING id",
                   3, ag->id, name, enabled ? "true" : "false");
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 404, "not_found", "no connector with this name on this agent", NULL);
    GH_LOG(INFO, "connector_changed", "connector %s of agent %s %s", name, ag->slug,
           enabled ? "enabled" : "disabled");
    gw_connector_changed(ag->id);
    return 0;
}

int
gw_connector_add_undo(struct gh_arena *a, const char *agent_slug, const char *id, struct gh_err *e)
{
    PGresult *res = db_query(a, e, "DELETE FROM connectors WHERE id = $1::uuid RETURNING agent_id", 1, id);

    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1) {
        GH_LOG(INFO, "connector_changed", "connector %s of agent %s not added after all", id, agent_slug);
        gw_connector_changed(db_val(res, 0, 0));
    }
    return 0;
}

int
gw_connector_set_prefix(struct gh_arena *a, const char *agent_slug, const char *name, const char *prefix,
                        struct gh_err *e)
{
    struct authz_agent *ag;
    PGresult *res;

    if (gw_connector_name_check(name, e) < 0 || gw_connector_prefix_check(prefix, e) < 0)
        return -1;
    if (prefix && !strcmp(prefix, name))
        prefix = NULL;          /* the default, which it is */
    ag = authz_agent_by_slug(a, agent_slug, e);
    if (ag == NULL)
        return -1;
    res = db_query(a, e, "UPDATE connectors SET tool_prefix = $3, updated_at = now()"
                         " WHERE agent_id = $1::uuid AND name = $2 RETURNING id",
                   3, ag->id, name, prefix);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return gh_err_set(e, 404, "not_found", "no connector with this name on this agent", NULL);
    GH_LOG(INFO, "connector_changed", "connector %s of agent %s: tool prefix %s%s%s", name, ag->slug,
           prefix ? "\"" : "", prefix ? prefix : "back to its name", prefix ? "\"" : "");
    /* every session of the agent hears list_changed: the names changed */
    gw_connector_changed(ag->id);
    return 0;
}

/* Blobs sealed before the URL and agent were bound (associated data
 * "gw_connector:<id>") are sealed again, bound to the row's agent and URL
 * as they stand; at server start, before any call.  A blob that opens
 * neither way is left as it is (its connector stays unavailable).  The
 * UPDATE matches the old blob, so processes starting together change each
 * row once. */
int
gw_connector_reseal_legacy(struct gh_err *e)
{
    static const char SQL_SEALED[] =
        "SELECT c.id, c.agent_id, c.url, c.headers_sealed, c.name, ag.slug"
        "  FROM connectors c JOIN agents ag ON ag.id = c.agent_id WHERE c.headers_sealed IS NOT NULL";
    struct gh_arena *a = gh_arena_new(0), *ra = NULL;
    PGresult *res;
    int rc = -1;

    if (a == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
    res = db_query(a, e, SQL_SEALED, 0);
    if (res == NULL)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = db_val(res, i, 0), *agent_id = db_val(res, i, 1), *url = db_val(res, i, 2);
        const char *old = db_val(res, i, 3), *sealed;
        unsigned char *pt = NULL;
        size_t n = 0;
        PGresult *up;

        gh_arena_free(ra);
        ra = gh_arena_new(0);
        if (ra == NULL) {
            gh_err_set(e, 500, "server_error", "internal error", "out of memory");
            goto out;
        }
        if (gh_unseal(ra, old, aad_of(ra, id, agent_id, url), &pt, &n) == 0) {
            gh_wipe(pt, n);
            continue;
        }
        if (gh_unseal(ra, old, aad_legacy(ra, id), &pt, &n) < 0)
            continue;
        sealed = gh_seal(ra, pt, n, aad_of(ra, id, agent_id, url));
        gh_wipe(pt, n);
        if (sealed == NULL) {
            gh_err_set(e, 500, "server_error", "internal error", "sealing connector headers failed");
            goto out;
        }
        up = db_query(ra, e, "UPDATE connectors SET headers_sealed = $3, updated_at = now()"
                             " WHERE id = $1::uuid AND headers_sealed = $2 RETURNING id", 3, id, old, sealed);
        if (up == NULL)
            goto out;
        if (PQntuples(up) == 1) {
            GH_LOG(INFO, "connector_resealed", "connector %s (%s) of agent %s: its sealed headers are now bound"
                   " to its agent and URL", db_val(res, i, 4), id, db_val(res, i, 5));
            /* processes that started before read the row as unavailable */
            gw_connector_changed(agent_id);
        }
    }
    rc = 0;
out:
    gh_arena_free(ra);
    gh_arena_free(a);
    return rc;
}
