/*
 * authz/credcache.c — in-process caches of the MCP hot path's identity
 * lookups: bearer token (its SHA-256) → credential, agent slug → agent.
 *
 * Invalidation is all-or-nothing (revocations are rare): every change that
 * can affect a credential or an agent flushes both caches.
 *  - Every process: migration 022 makes PostgreSQL NOTIFY authz_credentials
 *    when a token, grant or PAT is revoked or deleted, a user is disabled
 *    or changes role or email, a client is renamed or removed, or an agent
 *    changes; the listener thread flushes.  This covers the CLI, other
 *    instances and any future code path.
 *  - This process, synchronously: authz_credentials_changed() right after
 *    a revoking statement committed, so "revoke → 200 → next call" cannot
 *    beat the listener thread.
 *  - A listener reconnect flushes (notifications were missed), and while
 *    the listener is down the caches neither serve nor store.
 * Only positive answers are cached: an unknown token is asked again.
 * Whoever holds something else a credential opened (the gateway's listen
 * streams) is told of each of those three kinds of change, after the
 * flush: authz_credentials_watch().
 */
#include "authz/authz_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL "authz_credentials"
#define AGENTS_MAX 4096
#define WATCHERS_MAX 4

static struct gh_cache *creds, *agents;
static struct { void (*fn)(void *); void *ctx; } watchers[WATCHERS_MAX];
static int nwatchers;

/* The caches first: a watcher that asks again must not be answered from them. */
static void
flush_all(void)
{
    int n = __atomic_load_n(&nwatchers, __ATOMIC_ACQUIRE);

    gh_cache_flush(creds);
    gh_cache_flush(agents);
    for (int i = 0; i < n; i++)
        watchers[i].fn(watchers[i].ctx);
}

static void
on_notify(const char *channel, const char *payload, void *ctx)
{
    (void)channel;
    (void)payload;
    (void)ctx;
    flush_all();
}

static void
on_reconnect(void *ctx)
{
    (void)ctx;
    flush_all();
}

int
authz_credentials_watch(void (*fn)(void *ctx), void *ctx)
{
    int n = __atomic_load_n(&nwatchers, __ATOMIC_ACQUIRE);

    if (n == WATCHERS_MAX)
        return -1;
    if (n == 0 && (db_listen_reconnect_hook(on_reconnect, NULL) < 0 || db_listen(CHANNEL, on_notify, NULL) < 0))
        return -1;
    watchers[n].fn = fn;
    watchers[n].ctx = ctx;
    __atomic_store_n(&nwatchers, n + 1, __ATOMIC_RELEASE);
    return 0;
}

static long hits(void) { return gh_cache_hits(creds); }
static long misses(void) { return gh_cache_misses(creds); }

void
authz_cache_start(void)
{
    long n = gh_cfg.auth_cache_entries;

    if (creds != NULL)
        return;
    creds = db_cache_new(n, CHANNEL);
    agents = db_cache_new(n < AGENTS_MAX ? n : AGENTS_MAX, CHANNEL);
    web_metrics_register_gauge("gatehouse_auth_cache_hits", "MCP credential lookups answered from memory.", hits);
    web_metrics_register_gauge("gatehouse_auth_cache_misses", "MCP credential lookups that asked the database.",
                               misses);
}

void
authz_credentials_changed(const char *why)
{
    flush_all();
    GH_LOG(DEBUG, "auth_cache_flush", "credentials changed (%s)", why ? why : "");
}

/* ---- credentials: kind, ids, names, scope and the agent, as strings */

enum { C_KIND, C_TOKEN, C_GRANT, C_USER, C_EMAIL, C_CLIENT, C_CLIENT_NAME, C_SCOPE,
       C_AGENT_ID, C_AGENT_SLUG, C_AGENT_NAME, C_AGENT_UNTRUSTED, C_AGENT_DISABLED, C_AGENT_TZ, C_EXPIRES, C_N };

uint64_t
authz_credcache_gen(void)
{
    return gh_cache_gen(creds);
}

struct authz_credential *
authz_credcache_get(struct gh_arena *a, const char *token_hash)
{
    struct authz_credential *cr;
    int n = 0;
    char **v = gh_cache_get(creds, a, token_hash, &n);

    if (v == NULL || n != C_N || v[C_KIND] == NULL || v[C_AGENT_UNTRUSTED] == NULL || v[C_AGENT_DISABLED] == NULL ||
        v[C_EXPIRES] == NULL ||
        (cr = gh_arena_alloc(a, sizeof(*cr))) == NULL)
        return NULL;
    cr->kind = !strcmp(v[C_KIND], "pat") ? "pat" : "oauth";
    cr->token_id = v[C_TOKEN];
    cr->grant_id = v[C_GRANT];
    cr->user_id = v[C_USER];
    cr->user_email = v[C_EMAIL];
    cr->client_id = v[C_CLIENT];
    cr->client_name = v[C_CLIENT_NAME];
    cr->scope = v[C_SCOPE];
    cr->agent.id = v[C_AGENT_ID];
    cr->agent.slug = v[C_AGENT_SLUG];
    cr->agent.name = v[C_AGENT_NAME];
    cr->agent.untrusted = !strcmp(v[C_AGENT_UNTRUSTED], "1");
    cr->agent.disabled = !strcmp(v[C_AGENT_DISABLED], "1");
    cr->agent.timezone = v[C_AGENT_TZ];
    cr->expires_at = strtoll(v[C_EXPIRES], NULL, 10);
    return cr;
}

void
authz_credcache_put(const char *token_hash, const struct authz_credential *cr, uint64_t gen)
{
    char exp[24];
    const char *v[C_N] = {
        [C_KIND] = cr->kind, [C_TOKEN] = cr->token_id, [C_GRANT] = cr->grant_id, [C_USER] = cr->user_id,
        [C_EMAIL] = cr->user_email, [C_CLIENT] = cr->client_id, [C_CLIENT_NAME] = cr->client_name,
        [C_SCOPE] = cr->scope, [C_AGENT_ID] = cr->agent.id, [C_AGENT_SLUG] = cr->agent.slug,
        [C_AGENT_NAME] = cr->agent.name, [C_AGENT_UNTRUSTED] = cr->agent.untrusted ? "1" : "0",
        [C_AGENT_DISABLED] = cr->agent.disabled ? "1" : "0", [C_AGENT_TZ] = cr->agent.timezone,
        [C_EXPIRES] = exp,
    };

    snprintf(exp, sizeof(exp), "%lld", (long long)cr->expires_at);
    if (cr->kind && cr->agent.slug && cr->agent.id)
        gh_cache_put(creds, token_hash, v, C_N, cr->expires_at, gen);
}

/* ---- agents by slug */

uint64_t
authz_agentcache_gen(void)
{
    return gh_cache_gen(agents);
}

struct authz_agent *
authz_agentcache_get(struct gh_arena *a, const char *slug)
{
    struct authz_agent *ag;
    int n = 0;
    char **v = gh_cache_get(agents, a, slug, &n);

    if (v == NULL || n != 6 || v[0] == NULL || v[1] == NULL || (ag = gh_arena_alloc(a, sizeof(*ag))) == NULL)
        return NULL;
    ag->id = v[0];
    ag->slug = v[1];
    ag->name = v[2];
    ag->untrusted = v[3] && !strcmp(v[3], "1");
    ag->disabled = v[4] && !strcmp(v[4], "1");
    ag->timezone = v[5];
    return ag;
}

void
authz_agentcache_put(const struct authz_agent *ag, uint64_t gen)
{
    const char *v[6] = { ag->id, ag->slug, ag->name, ag->untrusted ? "1" : "0", ag->disabled ? "1" : "0",
                         ag->timezone };

    gh_cache_put(agents, ag->slug, v, 6, 0, gen);
}
