/*
 * gateway/check.c — request checks that need nothing but their input:
 * protocol revisions, Host/Origin against the configured hosts, Accept,
 * JSON-RPC message shape, header values of the 2026-07-28 transport.
 */
#include "gateway/endpoint_int.h"
#include <string.h>
#include <strings.h>


static const char *const legacy_versions[] = { GW_PROTO_2025_11_25, GW_PROTO_2025_06_18, GW_PROTO_2025_03_26 };

bool
gw_proto_supported(const char *v)
{
    if (v == NULL)
        return false;
    for (size_t i = 0; i < GH_ARRAY_LEN(legacy_versions); i++)
        if (!strcmp(v, legacy_versions[i]))
            return true;
    return !strcmp(v, GW_PROTO_2026_07_28);
}

bool
gw_proto_is_stateless(const char *v)
{
    return v && !strcmp(v, GW_PROTO_2026_07_28);
}

unsigned
gw_proto_rev(const char *v)
{
    static const struct { const char *v; unsigned bit; } revs[] = {
        { GW_PROTO_2025_03_26, GW_REV_2025_03_26 }, { GW_PROTO_2025_06_18, GW_REV_2025_06_18 },
        { GW_PROTO_2025_11_25, GW_REV_2025_11_25 }, { GW_PROTO_2026_07_28, GW_REV_2026_07_28 },
    };

    for (size_t i = 0; v && i < GH_ARRAY_LEN(revs); i++)
        if (!strcmp(v, revs[i].v))
            return revs[i].bit;
    return 0;
}

/* ---------------------------------------------------------------- Host / Origin */

/* host[:port] or [v6][:port] -> lower-case host and port (may be ""). */
static void
split_host(const char *in, size_t n, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon;
    size_t k;

    port[0] = '\0';
    if (n && in[0] == '[') {
        const char *rb = memchr(in, ']', n);
        k = rb ? (size_t)(rb - in) + 1 : n;
        if (rb && k < n && in[k] == ':')
            snprintf(port, pl, "%.*s", (int)(n - k - 1), in + k + 1);
    } else {
        colon = memchr(in, ':', n);
        k = colon ? (size_t)(colon - in) : n;
        if (colon)
            snprintf(port, pl, "%.*s", (int)(n - k - 1), colon + 1);
    }
    snprintf(host, hl, "%.*s", (int)k, in);
    for (char *p = host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

static bool
entry_matches(const char *entry, size_t n, const char *host, const char *port)
{
    char eh[256], ep[16];

    while (n && (*entry == ' ' || *entry == '\t'))
        entry++, n--;
    while (n && (entry[n - 1] == ' ' || entry[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(eh))
        return false;
    split_host(entry, n, eh, sizeof(eh), ep, sizeof(ep));
    return !strcmp(eh, host) && (!ep[0] || !strcmp(ep, port));
}

bool
gw_host_allowed(const char *hostport)
{
    char host[256], port[16];
    size_t n = strlen(hostport);

    if (n == 0 || n >= sizeof(host))
        return false;
    split_host(hostport, n, host, sizeof(host), port, sizeof(port));
    if (gh_cfg.allowed_hosts && gh_cfg.allowed_hosts[0]) {
        for (const char *p = gh_cfg.allowed_hosts; *p;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            if (entry_matches(p, len, host, port))
                return true;
            p += len + (c ? 1 : 0);
        }
        return false;
    }
    if (!strcmp(host, "localhost") || !strcmp(host, "127.0.0.1") || !strcmp(host, "[::1]"))
        return true;
    {
        const char *u = strstr(gh_cfg.public_url, "://");
        const char *end;
        char ph[256], pp[16];
        if (u == NULL)
            return false;
        u += 3;
        end = u + strcspn(u, "/?#");
        split_host(u, (size_t)(end - u), ph, sizeof(ph), pp, sizeof(pp));
        return !strcmp(ph, host);
    }
}

/* An Origin header: http or https, a host gw_host_allowed takes, no path. */
bool
gw_origin_allowed(const char *origin)
{
    const char *u = strstr(origin, "://");

    return u && !strchr(u + 3, '/') && gw_host_allowed(u + 3) &&
           (!strncmp(origin, "http://", 7) || !strncmp(origin, "https://", 8));
}

bool
gw_accepts(const char *accept, const char *type)
{
    if (accept == NULL)
        return false;
    return strcasestr(accept, type) != NULL || strstr(accept, "*/*") != NULL;
}

bool
gw_valid_id(json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

/* A header value as RFC 9110 allows it and the 2026-07-28 transport's
 * Value Encoding asks of a plain value: visible ASCII, space and tab only
 * (anything else must come Base64-encoded). */
bool
gw_header_chars_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (!(*p == '\t' || (*p >= 0x20 && *p <= 0x7e)))
            return false;
    return true;
}

/* Decodes an Mcp-Name header value (plain, or =?base64?...?=) into the
 * arena, its length in *len (a decoded value may hold a NUL byte, which
 * must not end the comparison early).  NULL when the value holds a
 * character no header value may, or its Base64 is not canonical
 * (gh_b64_decode): an intermediary reading the header must not see a name
 * other than the one checked here. */
char *
gw_header_value(struct gh_arena *a, const char *v, size_t *len)
{
    size_t n = strlen(v);
    unsigned char *out;

    if (!gw_header_chars_ok(v))
        return NULL;
    if (!(n >= 11 && gh_str_has_prefix(v, "=?base64?") && !strcmp(v + n - 2, "?="))) {
        *len = n;
        return gh_arena_strdup(a, v);
    }
    return gh_b64_decode(a, v + 9, n - 11, &out, len) == 0 ? (char *)out : NULL;
}


const char *
gw_msg_method(json_t *msg)
{
    return gh_json_str(msg, "method");
}

/* Not a JSON-RPC message we take, alone or in a batch: not an object,
 * jsonrpc not "2.0", a method that is not a string, an id neither a
 * string, an integer nor null, neither method nor id, a response
 * without result or error, or one with both (JSON-RPC 2.0 §5: "Either
 * the result member or error member MUST be included, but both members
 * MUST NOT be included"). */
bool
gw_msg_invalid(json_t *msg)
{
    const char *method = gw_msg_method(msg), *v = gh_json_str(msg, "jsonrpc");
    json_t *id = json_object_get(msg, "id");

    return !json_is_object(msg) || v == NULL || strcmp(v, "2.0") ||
           (json_object_get(msg, "method") && method == NULL) || (id && !gw_valid_id(id) && !json_is_null(id)) ||
           (method == NULL && id == NULL) ||
           (method == NULL && !json_object_get(msg, "result") && !json_object_get(msg, "error")) ||
           (json_object_get(msg, "result") && json_object_get(msg, "error"));
}

/* The 2026-07-28 transport's mirrored headers against the body, in the
 * order a reader meets them: each header on one field line (a repeated one
 * is a value an intermediary may read differently: the first, the last,
 * or all joined), visible ASCII only, MCP-Protocol-Version equal to the
 * _meta version, then Mcp-Method equal to the method and, for a method
 * whose Mcp-Name mirrors a param (name_param), Mcp-Name (plain or strict
 * Base64) equal to it byte for byte.  NULL when all agree; else why.  A
 * _meta version we do not speak sets *unsupported instead. */
static const char *
ows_trim(struct gh_arena *a, const char *v)
{
    size_t n;

    if (v == NULL)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return v[n] ? gh_arena_strndup(a, v, n) : v;
}

const char *
gw_stateless_check(struct gh_arena *a, const struct gw_stateless_hdrs *h, const char *method,
                   json_t *params, const char *name_param, bool *unsupported)
{
    const char *mv = gh_json_str(json_object_get(params, "_meta"), "io.modelcontextprotocol/protocolVersion");
    const char *bn;
    size_t dl = 0;
    char *dv;
    struct gw_stateless_hdrs t = *h;

    /* optional whitespace around a field value is not part of it (RFC 9110
     * §5.5): " tools/call " is the method tools/call */
    t.version = ows_trim(a, h->version);
    t.method = ows_trim(a, h->method);
    t.name = ows_trim(a, h->name);
    h = &t;
    *unsupported = false;
    if (h->nversion > 1)
        return "MCP-Protocol-Version header repeated";
    if (h->nmethod > 1)
        return "Mcp-Method header repeated";
    if (h->nname > 1)
        return "Mcp-Name header repeated";
    if ((h->version && !gw_header_chars_ok(h->version)) || (h->method && !gw_header_chars_ok(h->method)))
        return "a header value holds a character header values may not";
    if (mv == NULL)
        return "the request's _meta carries no io.modelcontextprotocol/protocolVersion";
    if (h->version == NULL)
        return "MCP-Protocol-Version header missing";
    if (strcmp(h->version, mv))
        return "MCP-Protocol-Version header does not match _meta";
    if (!gw_proto_supported(mv)) {
        *unsupported = true;
        return NULL;
    }
    if (h->method == NULL)
        return "Mcp-Method header missing";
    if (strcmp(h->method, method))
        return "Mcp-Method header does not match the body";
    if (name_param == NULL)
        return NULL;
    if (h->name == NULL)
        return "Mcp-Name header missing";
    if ((dv = gw_header_value(a, h->name, &dl)) == NULL)
        return "Mcp-Name header is not a valid header value";
    bn = gh_json_str(params, name_param);
    if (bn == NULL || dl != strlen(bn) || memcmp(dv, bn, dl))
        return "Mcp-Name header does not match the body";
    return NULL;
}
