/*
 * web/router.c — a small static route table.
 *
 * Patterns are literal paths with '*' standing for one segment, or a
 * trailing "/" followed by two stars for any suffix.  A path that matches a pattern under
 * another method yields 405 with Allow.
 */
#include "web/web_int.h"
#include <string.h>

#define MAX_ROUTES 256

static struct web_route_def routes[MAX_ROUTES];
static int nroutes;

int
web_route(const char *method, const char *pattern, int flags, web_handler_fn fn)
{
    if (nroutes >= MAX_ROUTES)
        return -1;
    routes[nroutes] = (struct web_route_def){ method, pattern, flags, fn, nroutes };
    nroutes++;
    return 0;
}

int
web_router_count(void)
{
    return nroutes;
}

const char *
web_router_pattern(int index)
{
    return index >= 0 && index < nroutes ? routes[index].pattern : "unmatched";
}

/* Matches path against pattern, capturing '*' segments into the arena. */
static bool
match(struct web_req *r, const char *pat, const char *path, const char **params, int *np)
{
    *np = 0;
    while (*pat && *path) {
        if (pat[0] == '/' && pat[1] == '*' && pat[2] == '*' && pat[3] == '\0')
            return *path == '/' || *path == '\0';
        if (*pat == '*') {
            const char *end = strchr(path, '/');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            if (len == 0 || *np >= WEB_MAX_PARAMS)
                return false;
            params[(*np)++] = gh_arena_strndup(r->arena, path, len);
            path += len;
            pat++;
            continue;
        }
        if (*pat != *path)
            return false;
        pat++;
        path++;
    }
    if (!strcmp(pat, "/**"))
        return true;
    return *pat == '\0' && *path == '\0';
}

const struct web_route_def *
web_router_match(struct web_req *r, bool *method_mismatch, char *allow, size_t allow_len)
{
    const char *params[WEB_MAX_PARAMS];
    int np;

    *method_mismatch = false;
    allow[0] = '\0';
    for (int i = 0; i < nroutes; i++) {
        if (!match(r, routes[i].pattern, r->path, params, &np))
            continue;
        if (routes[i].method && strcmp(routes[i].method, r->method)) {
            *method_mismatch = true;
            if (strlen(allow) + strlen(routes[i].method) + 3 < allow_len) {
                if (allow[0])
                    strcat(allow, ", ");
                strcat(allow, routes[i].method);
            }
            continue;
        }
        memcpy(r->params, params, sizeof(params[0]) * (size_t)np);
        r->nparams = np;
        return &routes[i];
    }
    return NULL;
}
