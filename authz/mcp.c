/*
 * authz/mcp.c — authentication of MCP requests (RFC 6750 / RFC 9728).
 *
 * The OAuth issue fills in token lookup; until then no token is valid and
 * every request gets the 401 challenge that starts discovery.
 */
#include "authz/authz_int.h"
#include <string.h>

static const char *
agent_slug_of(struct web_req *r)
{
    const char *slug = web_path_param(r, 0);
    return slug && *slug ? slug : "default";
}

static void
challenge(struct web_req *r, const char *slug, const char *error)
{
    struct gh_arena *a = web_arena(r);
    const char *pub = gh_cfg.public_url;
    char *hdr;

    if (error)
        hdr = gh_arena_printf(a, "Bearer error=\"%s\", resource_metadata=\"%s/.well-known/oauth-protected-resource/agents/%s/mcp\", scope=\"mcp\"",
                              error, pub, slug);
    else
        hdr = gh_arena_printf(a, "Bearer resource_metadata=\"%s/.well-known/oauth-protected-resource/agents/%s/mcp\", scope=\"mcp\"",
                              pub, slug);
    web_add_header(r, "WWW-Authenticate", hdr);
}

struct authz_credential *
authz_mcp_authenticate(struct web_req *r, const char *slug)
{
    const char *authz = web_header(r, "Authorization");
    struct gh_err e = {0};

    challenge(r, slug, authz ? "invalid_token" : NULL);
    gh_err_set(&e, 401, authz ? "invalid_token" : "unauthorized",
               authz ? "The access token is invalid." : "Authentication required.", "mcp: no token store yet");
    web_reply_err(r, &e);
    return NULL;
}

static int
mcp_placeholder(struct web_req *r)
{
    struct gh_err e = {0};

    if (!authz_mcp_authenticate(r, agent_slug_of(r)))
        return 0;
    gh_err_set(&e, 501, "not_implemented", "The MCP gateway is not built into this server.", "mcp placeholder");
    return web_reply_err(r, &e);
}

int
authz_register_mcp_placeholder(void)
{
    web_route(NULL, "/mcp", WEB_API | WEB_CORS, mcp_placeholder);
    web_route(NULL, "/agents/*/mcp", WEB_API | WEB_CORS, mcp_placeholder);
    return 0;
}
