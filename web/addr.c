/*
 * web/addr.c — the client's address of a request: the peer, or behind
 * GATEHOUSE_TRUSTED_PROXIES the right-most X-Forwarded-For hop that is
 * not itself trusted.
 */
#include "web/web_int.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The client's address.  Behind a reverse proxy every peer is the proxy,
 * so per-IP limits would be server-wide: when the peer is one of
 * GATEHOUSE_TRUSTED_PROXIES, the client is the right-most X-Forwarded-For
 * hop that is not itself trusted (hops further left were written by the
 * client and prove nothing).  A hop that is not an address before that
 * one makes the header worthless: the peer it is. */

struct ipaddr {
    int           family;       /* AF_INET (v4-mapped v6 included) or AF_INET6 */
    unsigned char b[16];
};

struct cidr {
    struct ipaddr net;
    int           bits;
};

static struct cidr *trusted;
static int ntrusted;

static void
ip_unmap(struct ipaddr *ip)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (ip->family == AF_INET6 && !memcmp(ip->b, mapped, sizeof(mapped))) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
        ip->family = AF_INET;
    }
}

/* An address as text (IPv6 optionally in brackets), n bytes of s. */
static bool
ip_parse(const char *s, size_t n, struct ipaddr *ip)
{
    char buf[INET6_ADDRSTRLEN + 2];

    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
        if (memchr(s, ':', n) == NULL)
            return false;
    }
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, buf, ip->b) == 1)
        ip->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, ip->b) == 1)
        ip->family = AF_INET6;
    else
        return false;
    ip_unmap(ip);
    return true;
}

static bool
ip_trusted(const struct ipaddr *ip)
{
    for (int i = 0; i < ntrusted; i++) {
        const struct cidr *c = &trusted[i];
        int full = c->bits / 8, rest = c->bits % 8;

        if (c->net.family != ip->family || memcmp(c->net.b, ip->b, (size_t)full))
            continue;
        if (rest == 0 || ((c->net.b[full] ^ ip->b[full]) & (0xff << (8 - rest)) & 0xff) == 0)
            return true;
    }
    return false;
}

/* "ip" or "ip/bits", n bytes of s; an IPv4-mapped IPv6 network counts as IPv4. */
static bool
cidr_parse(const char *s, size_t n, struct cidr *c)
{
    const char *slash = memchr(s, '/', n);
    size_t len = slash ? (size_t)(slash - s) : n;
    bool mapped;
    char *end;
    long bits;

    if (!ip_parse(s, len, &c->net))
        return false;
    c->bits = c->net.family == AF_INET ? 32 : 128;
    if (slash == NULL)
        return true;
    mapped = memchr(s, ':', len) != NULL && c->net.family == AF_INET;
    bits = strtol(slash + 1, &end, 10);
    if (end == slash + 1 || end != s + n || bits < (mapped ? 96 : 0) || bits > (mapped ? 128 : c->bits))
        return false;
    c->bits = (int)(mapped ? bits - 96 : bits);
    return true;
}

/* GATEHOUSE_TRUSTED_PROXIES → the table; a bad entry stops the start. */
int
web_addr_trusted_parse(const char *list, struct gh_err *e)
{
    const char *p = list;
    int cap = 1;

    for (const char *q = list; *q; q++)
        cap += *q == ',';
    free(trusted);
    ntrusted = 0;
    trusted = calloc((size_t)cap, sizeof(*trusted));
    if (trusted == NULL)
        return gh_err_set(e, 500, "server_error", "out of memory", "trusted proxies");
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *item = p;

        p += n + (p[n] == ',');
        while (n > 0 && (*item == ' ' || *item == '\t'))
            item++, n--;
        while (n > 0 && (item[n - 1] == ' ' || item[n - 1] == '\t'))
            n--;
        if (n > 0 && !cidr_parse(item, n, &trusted[ntrusted++])) {
            gh_err_set(e, 400, "config", "", "GATEHOUSE_TRUSTED_PROXIES");
            snprintf(e->msg, sizeof(e->msg), "GATEHOUSE_TRUSTED_PROXIES: '%.*s' is not an IP address or CIDR",
                     (int)(n > 64 ? 64 : n), item);
            return -1;
        }
    }
    return 0;
}

struct xff {
    struct gh_arena *a;
    char            *all;       /* every X-Forwarded-For line, in order, comma-joined */
};

static enum MHD_Result
xff_collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct xff *x = cls;

    (void)kind;
    if (key && value && !strcasecmp(key, "X-Forwarded-For"))
        x->all = x->all ? gh_arena_printf(x->a, "%s,%s", x->all, value) : gh_arena_strdup(x->a, value);
    return MHD_YES;
}

/* The right-most untrusted hop of X-Forwarded-For, or false. */
static bool
xff_client(struct web_req *r, struct ipaddr *out)
{
    struct xff x = { r->arena, NULL };
    const char *end;
    bool any = false;

    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, xff_collect, &x);
    if (x.all == NULL)
        return false;
    end = x.all + strlen(x.all);
    while (end > x.all) {
        const char *start = end;
        struct ipaddr hop;
        size_t n;

        while (start > x.all && start[-1] != ',')
            start--;
        n = (size_t)(end - start);
        end = start > x.all ? start - 1 : x.all;
        while (n > 0 && (*start == ' ' || *start == '\t'))
            start++, n--;
        while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t'))
            n--;
        if (n == 0)
            continue;           /* an empty list element */
        if (!ip_parse(start, n, &hop))
            return false;
        *out = hop;
        any = true;
        if (!ip_trusted(&hop))
            return true;
    }
    return any;                 /* every hop trusted: the farthest one */
}

void
web_addr_client(struct web_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    struct ipaddr peer = {0}, fwd;

    strcpy(r->client_ip, "unknown");
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client_ip,
                  sizeof(r->client_ip));
        peer.family = AF_INET;
        memcpy(peer.b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client_ip,
                  sizeof(r->client_ip));
        peer.family = AF_INET6;
        memcpy(peer.b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        ip_unmap(&peer);
    }
    if (ntrusted == 0 || peer.family == 0 || !ip_trusted(&peer) || !xff_client(r, &fwd))
        return;
    inet_ntop(fwd.family, fwd.b, r->client_ip, sizeof(r->client_ip));
}
