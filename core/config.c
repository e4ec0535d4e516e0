/*
 * core/config.c — every setting in one table.
 *
 * A row gives the key (also the --config FILE key), the environment
 * variable, the type, the default, bounds and the help text.  Defaults are
 * applied first, then the file, then the environment; validation names the
 * offending key.  --help and docs/CONFIGURATION.md are printed from here.
 */
#include "core/core.h"
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gh_config gh_cfg;

enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL, CFG_LEVEL, CFG_LISTEN, CFG_URL, CFG_MFA };

struct cfg_row {
    const char   *key;
    const char   *env;
    enum cfg_type type;
    size_t        off;
    const char   *dflt;
    long          min, max;
    const char   *help;
};

#define F(field) offsetof(struct gh_config, field)

static const struct cfg_row rows[] = {
    { "listen", "GATEHOUSE_LISTEN", CFG_LISTEN, F(listen), "127.0.0.1:8080", 0, 0,
      "Address and port the HTTP server binds (host:port)." },
    { "public_url", "GATEHOUSE_PUBLIC_URL", CFG_URL, F(public_url), "http://127.0.0.1:8080", 0, 0,
      "External base URL; the OAuth issuer and every absolute URL derive from it." },
    { "data_dir", "GATEHOUSE_DATA_DIR", CFG_STR, F(data_dir), "./var", 0, 0,
      "Folder for the embedded PostgreSQL cluster, the generated server key and the spool of audit rows held while the database refused them (audit-held-*.rows)." },
    { "database_url", "GATEHOUSE_DATABASE_URL", CFG_STR, F(database_url), "", 0, 0,
      "libpq connection string; empty runs the embedded cluster under data_dir. A connection attempt gives up after 10 s (503 to the request that needed it) unless the string sets its own connect_timeout." },
    { "log_level", "GATEHOUSE_LOG_LEVEL", CFG_LEVEL, F(log_level), "info", 0, 0,
      "Lowest level logged: debug, info, warn or error." },
    { "http_threads", "GATEHOUSE_HTTP_THREADS", CFG_INT, F(http_threads), "4", 1, 256,
      "HTTP worker threads (libmicrohttpd thread pool with epoll)." },
    { "http_max_connections", "GATEHOUSE_HTTP_MAX_CONNECTIONS", CFG_INT, F(http_max_connections), "0", 0, 1048576,
      "Client connections served at once, open GET streams included; past it new connections wait in the listen queue. 0: half the open-files limit, which serve raises to its hard limit at start (the other half is for upstream transfers, the database and files). At least 4 per HTTP thread." },
    { "http_max_body", "GATEHOUSE_HTTP_MAX_BODY", CFG_INT, F(http_max_body), "1048576", 1024, 67108864,
      "Largest request body in bytes; larger is refused with 413." },
    { "http_max_header", "GATEHOUSE_HTTP_MAX_HEADER", CFG_INT, F(http_max_header), "16384", 4096, 1048576,
      "Bytes of one request's header fields, and of its target; larger is refused (431, 414)." },
    { "http_max_form", "GATEHOUSE_HTTP_MAX_FORM", CFG_INT, F(http_max_form), "65536", 1024, 1048576,
      "Largest urlencoded form body in bytes; larger is refused with 413." },
    { "db_pool_size", "GATEHOUSE_DB_POOL_SIZE", CFG_INT, F(db_pool_size), "8", 1, 512,
      "PostgreSQL connections in the pool." },
    { "argon2_t_cost", "GATEHOUSE_ARGON2_T_COST", CFG_INT, F(argon2_t_cost), "3", 1, 64,
      "argon2id iterations for new password hashes." },
    { "argon2_m_cost_kib", "GATEHOUSE_ARGON2_M_COST_KIB", CFG_INT, F(argon2_m_cost_kib), "65536", 1024, 4194304,
      "argon2id memory in KiB for new password hashes." },
    { "argon2_parallelism", "GATEHOUSE_ARGON2_PARALLELISM", CFG_INT, F(argon2_parallelism), "1", 1, 64,
      "argon2id lanes for new password hashes." },
    { "session_idle_seconds", "GATEHOUSE_SESSION_IDLE_SECONDS", CFG_INT, F(session_idle_seconds), "3600", 60, 2592000,
      "A browser session unused this long expires." },
    { "session_absolute_seconds", "GATEHOUSE_SESSION_ABSOLUTE_SECONDS", CFG_INT, F(session_absolute_seconds), "43200", 300, 7776000,
      "A browser session expires this long after sign-in whatever its use." },
    { "login_max_failures", "GATEHOUSE_LOGIN_MAX_FAILURES", CFG_INT, F(login_max_failures), "5", 1, 1000,
      "Failed sign-ins per account (and 4x that per IP) within the window before 429." },
    { "login_window_seconds", "GATEHOUSE_LOGIN_WINDOW_SECONDS", CFG_INT, F(login_window_seconds), "900", 10, 86400,
      "Window for counting failed sign-ins." },
    { "pg_bin_dir", "GATEHOUSE_PG_BIN_DIR", CFG_STR, F(pg_bin_dir), "/usr/lib/postgresql/15/bin", 0, 0,
      "Folder holding initdb, pg_ctl and postgres for the embedded cluster." },
    { "pg_run_as", "GATEHOUSE_PG_RUN_AS", CFG_STR, F(pg_run_as), "postgres", 0, 0,
      "Unprivileged user that runs the embedded cluster when Gatehouse runs as root." },
    { "server_key", "GATEHOUSE_SERVER_KEY", CFG_STR, F(server_key), "", 0, 0,
      "64 hex digits: AES-256 key for secrets at rest; empty = the key file data_dir/server.key, generated on first use (mode 0600; a key file open to other users, or not 64 hex digits, is refused)." },
    { "dev_allow_private_cimd", "GATEHOUSE_DEV_ALLOW_PRIVATE_CIMD", CFG_BOOL, F(dev_allow_private_cimd), "false", 0, 0,
      "Development only: let client metadata documents live on loopback/private addresses." },
    { "dev_allow_private_discovery", "GATEHOUSE_DEV_ALLOW_PRIVATE_DISCOVERY", CFG_BOOL, F(dev_allow_private_discovery), "false", 0, 0,
      "Development only: let an oauth-discovery connector's authorization server live on a loopback/private address (and over http)." },
    { "oauth_cimd_cache_max", "GATEHOUSE_OAUTH_CIMD_CACHE_MAX", CFG_INT, F(oauth_cimd_cache_max), "1000", 1, 1000000,
      "Client metadata documents kept cached for clients nobody holds a grant for; the oldest beyond this are dropped." },
    { "access_token_ttl", "GATEHOUSE_ACCESS_TOKEN_TTL", CFG_INT, F(access_token_ttl), "3600", 1, 86400,
      "OAuth access token lifetime in seconds." },
    { "refresh_token_ttl", "GATEHOUSE_REFRESH_TOKEN_TTL", CFG_INT, F(refresh_token_ttl), "2592000", 60, 31536000,
      "OAuth refresh token lifetime in seconds." },
    { "refresh_grace_seconds", "GATEHOUSE_REFRESH_GRACE_SECONDS", CFG_INT, F(refresh_grace_seconds), "5", 0, 60,
      "Window in which concurrent refreshes with one token get the same successor pair." },
    { "code_ttl", "GATEHOUSE_CODE_TTL", CFG_INT, F(code_ttl), "300", 10, 600,
      "Authorization code lifetime in seconds." },
    { "upstream_connect_timeout_ms", "GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT_MS", CFG_INT, F(upstream_connect_timeout_ms), "10000", 100, 600000,
      "Timeout to connect to an upstream MCP server." },
    { "upstream_call_timeout_ms", "GATEHOUSE_UPSTREAM_CALL_TIMEOUT_MS", CFG_INT, F(upstream_call_timeout_ms), "60000", 100, 3600000,
      "Timeout for one upstream MCP request." },
    { "mcp_session_idle_seconds", "GATEHOUSE_MCP_SESSION_IDLE_SECONDS", CFG_INT, F(mcp_session_idle_seconds), "86400", 60, 2592000,
      "An MCP session unused this long expires." },
    { "mcp_page_size", "GATEHOUSE_MCP_PAGE_SIZE", CFG_INT, F(mcp_page_size), "100", 1, 10000,
      "Items per page of the gateway's aggregated tools, prompts and resources lists." },
    { "mcp_batch_max", "GATEHOUSE_MCP_BATCH_MAX", CFG_INT, F(mcp_batch_max), "64", 1, 512,
      "Most messages in one JSON-RPC batch (2025-03-26 sessions); a longer batch is refused with 400." },
    { "mcp_sessions_per_member", "GATEHOUSE_MCP_SESSIONS_PER_MEMBER", CFG_INT, F(mcp_sessions_per_member), "256", 1, 100000,
      "MCP sessions one member may hold per agent; an initialize beyond it ends that member's least recently seen session." },
    { "allowed_hosts", "GATEHOUSE_ALLOWED_HOSTS", CFG_STR, F(allowed_hosts), "", 0, 0,
      "Comma-separated Host values accepted at the MCP endpoint; empty = the public URL's host and loopback." },
    { "trusted_proxies", "GATEHOUSE_TRUSTED_PROXIES", CFG_STR, F(trusted_proxies), "", 0, 0,
      "Comma-separated IPs or CIDRs of reverse proxies: a request from one is from the right-most X-Forwarded-For address that is not itself listed (the peer if the header is invalid). Rate limits, sign-in throttling and logs use it. Empty = the socket peer, always." },
    { "test_unauthenticated_mcp", "GATEHOUSE_TEST_UNAUTHENTICATED_MCP", CFG_BOOL, F(test_unauthenticated_mcp), "false", 0, 0,
      "TEST ONLY: admit MCP requests without a credential as a fixed test identity." },
    { "oauth_client_unused_ttl", "GATEHOUSE_OAUTH_CLIENT_UNUSED_TTL", CFG_INT, F(oauth_client_unused_ttl), "604800", 60, 31536000,
      "A registered OAuth client with no live token is deleted this many seconds after registration." },
    { "smtp_url", "GATEHOUSE_SMTP_URL", CFG_STR, F(smtp_url), "", 0, 0,
      "Mail server for invites and sign-in codes, as libcurl reads it: smtp://host:port or smtps://user:password@host:port (smtp:// upgrades with STARTTLS when the server offers it). Empty: no mail is sent; invite links are shown to be sent by hand." },
    { "mail_from", "GATEHOUSE_MAIL_FROM", CFG_STR, F(mail_from), "", 0, 0,
      "Sender address of the mail Gatehouse sends; empty: gatehouse@<host of public_url>." },
    { "require_mfa", "GATEHOUSE_REQUIRE_MFA", CFG_MFA, F(require_mfa), "none", 0, 0,
      "Who must have a second factor (an authenticator app): none, admins, owners (admins and agent owners) or everyone. A signed-in user who must and has none is sent to /profile/security to set one up before anything else." },
    { "signin_code_ttl", "GATEHOUSE_SIGNIN_CODE_TTL", CFG_INT, F(signin_code_ttl), "600", 1, 3600,
      "Seconds a sign-in code sent by mail stays good (codes are offered at /login when smtp_url is set)." },
    { "auth_cache_entries", "GATEHOUSE_AUTH_CACHE_ENTRIES", CFG_INT, F(auth_cache_entries), "10000", 0, 10000000,
      "Entries of each in-process cache on the MCP path (bearer credentials; agents and their connectors, at most 4096); 0 turns them off." },
    { "rate_register_per_min", "GATEHOUSE_RATE_REGISTER_PER_MIN", CFG_INT, F(rate_register_per_min), "60", 1, 100000,
      "Client registrations per IP per minute before 429." },
    { "rate_token_per_min", "GATEHOUSE_RATE_TOKEN_PER_MIN", CFG_INT, F(rate_token_per_min), "600", 1, 1000000,
      "Token endpoint requests per IP per minute before 429." },
    { "rate_login_per_min", "GATEHOUSE_RATE_LOGIN_PER_MIN", CFG_INT, F(rate_login_per_min), "60", 1, 100000,
      "Sign-in attempts per IP per minute before 429." },
    { "rate_cimd_per_min", "GATEHOUSE_RATE_CIMD_PER_MIN", CFG_INT, F(rate_cimd_per_min), "30", 1, 100000,
      "Requests per IP per minute that name a client metadata document not yet fetched (each may start a fetch) before 429." },
    { "rate_mcp_refused_per_min", "GATEHOUSE_RATE_MCP_REFUSED_PER_MIN", CFG_INT, F(rate_mcp_refused_per_min), "120", 1, 1000000,
      "MCP requests per IP per minute refused before authentication (no or bad token, Host, Origin) that each write an audit row; past it 429 without a row (the access log still has each)." },
};

static const char *const type_names[] = { "string", "integer", "boolean", "level", "host:port", "url",
                                           "none, admins, owners or everyone" };

static int
set_value(const struct cfg_row *row, const char *val, const char *label, struct gh_err *e)
{
    char *base = (char *)&gh_cfg + row->off;
    char *end;
    long n;

    switch (row->type) {
    case CFG_INT:
        errno = 0;
        n = strtol(val, &end, 10);
        if (errno || end == val || *end != '\0' || n < row->min || n > row->max) {
            gh_err_set(e, 400, "config", "", "%s: out of range", label);
            snprintf(e->msg, sizeof(e->msg), "%s: '%.64s' is not an integer in [%ld, %ld]",
                     label, val, row->min, row->max);
            return -1;
        }
        *(long *)base = n;
        return 0;
    case CFG_BOOL:
        if (!strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes") || !strcasecmp(val, "on"))
            *(bool *)base = true;
        else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no") || !strcasecmp(val, "off") || !val[0])
            *(bool *)base = false;
        else
            goto bad;
        return 0;
    case CFG_LEVEL:
        if (strcmp(val, "debug") && strcmp(val, "info") && strcmp(val, "warn") && strcmp(val, "error"))
            goto bad;
        break;
    case CFG_MFA:
        if (strcmp(val, "none") && strcmp(val, "admins") && strcmp(val, "owners") && strcmp(val, "everyone"))
            goto bad;
        break;
    case CFG_LISTEN: {
        const char *colon = strrchr(val, ':');
        if (colon == NULL || colon == val)
            goto bad;
        errno = 0;
        n = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || n < 0 || n > 65535)
            goto bad;
        break;
    }
    case CFG_URL: {
        size_t len = strlen(val);
        if (strncmp(val, "http://", 7) && strncmp(val, "https://", 8))
            goto bad;
        if (strchr(val, '?') || strchr(val, '#') || strchr(val, ' '))
            goto bad;
        /* the issuer must be byte-identical everywhere: no trailing slash */
        while (len > 8 && val[len - 1] == '/')
            len--;
        free(*(char **)base);
        *(char **)base = strndup(val, len);
        return 0;
    }
    case CFG_STR:
        break;
    }
    free(*(char **)base);
    *(char **)base = strdup(val);
    return 0;
bad:
    gh_err_set(e, 400, "config", "", "%s: invalid %s", label, type_names[row->type]);
    snprintf(e->msg, sizeof(e->msg), "%s: '%.64s' is not a valid %s", label, val, type_names[row->type]);
    return -1;
}

static const struct cfg_row *
find_key(const char *key)
{
    for (size_t i = 0; i < GH_ARRAY_LEN(rows); i++)
        if (!strcmp(rows[i].key, key))
            return &rows[i];
    return NULL;
}

static char *
trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int
load_file(const char *path, struct gh_err *e)
{
    FILE *f = fopen(path, "r");
    char line[4096], label[200];
    int lineno = 0, rc = 0;

    if (f == NULL) {
        gh_err_set(e, 400, "config", "", "cannot open %s", path);
        snprintf(e->msg, sizeof(e->msg), "--config: cannot open %.200s", path);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s = trim(line), *eq, *key, *val;
        const struct cfg_row *row;
        size_t vl;

        lineno++;
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(e->msg, sizeof(e->msg), "%.120s:%d: expected key = value", path, lineno);
            e->status = 400;
            rc = -1;
            goto out;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        row = find_key(key);
        if (row == NULL) {
            snprintf(e->msg, sizeof(e->msg), "%.120s:%d: unknown key '%.64s'", path, lineno, key);
            e->status = 400;
            rc = -1;
            goto out;
        }
        /* name the key as the file spells it, and where */
        snprintf(label, sizeof(label), "%.120s:%d: %s", path, lineno, key);
        if (set_value(row, val, label, e) < 0) {
            rc = -1;
            goto out;
        }
    }
out:
    fclose(f);
    return rc;
}

int
gh_config_load(const char *config_file, struct gh_err *e)
{
    for (size_t i = 0; i < GH_ARRAY_LEN(rows); i++)
        if (set_value(&rows[i], rows[i].dflt, rows[i].env, e) < 0)
            return -1;
    if (config_file && load_file(config_file, e) < 0)
        return -1;
    for (size_t i = 0; i < GH_ARRAY_LEN(rows); i++) {
        const char *v = getenv(rows[i].env);
        if (v != NULL && set_value(&rows[i], v, rows[i].env, e) < 0)
            return -1;
    }
    return 0;
}

void
gh_config_print_help(FILE *out)
{
    fprintf(out, "Settings (environment variable, or `key = value` in --config FILE):\n");
    for (size_t i = 0; i < GH_ARRAY_LEN(rows); i++)
        fprintf(out, "  %-40s %s (default: %s)\n", rows[i].env, rows[i].help,
                rows[i].dflt[0] ? rows[i].dflt : "empty");
}

void
gh_config_print_markdown(FILE *out)
{
    fprintf(out, "# Configuration\n\n"
                 "Generated by `gatehouse config-doc` from the table in core/config.c; do not edit by hand.\n\n"
                 "Each setting is read from its environment variable, or from `key = value` lines in the file\n"
                 "given with `--config FILE` (the environment wins). A bad value stops the start with a message\n"
                 "that names the variable.\n\n"
                 "| key | environment | type | default | bounds | meaning |\n"
                 "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < GH_ARRAY_LEN(rows); i++) {
        char bounds[64] = "";
        if (rows[i].type == CFG_INT)
            snprintf(bounds, sizeof(bounds), "%ld – %ld", rows[i].min, rows[i].max);
        fprintf(out, "| `%s` | `%s` | %s | `%s` | %s | %s |\n", rows[i].key, rows[i].env,
                type_names[rows[i].type], rows[i].dflt, bounds, rows[i].help);
    }
}

bool
gh_config_public_https(void)
{
    return gh_cfg.public_url && !strncmp(gh_cfg.public_url, "https://", 8);
}

char *
gh_config_url(struct gh_arena *a, const char *path)
{
    return gh_arena_printf(a, "%s%s", gh_cfg.public_url, path);
}
