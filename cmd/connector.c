/*
 * cmd/connector.c — `gatehouse connector add|set|list|enable|disable`.
 *
 * Header values arrive on the command line (or from a wrapper script) and
 * go straight into the sealed column; they are never echoed, listed or
 * logged.  Input that is wrong on its face (name, URL, header syntax) is a
 * usage error (exit 2); what needs the database (unknown agent, a name
 * already taken) is a failure (exit 1).
 */
#include "cmd/main_int.h"
#include "db/db.h"
#include "gateway/gateway.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char USAGE[] =
    "Usage: gatehouse connector add --agent SLUG --name NAME --url URL [--header 'Name: value']...\n"
    "                               [--headers-stdin] [--prefix PREFIX | --no-prefix] [AUTH]\n"
    "       gatehouse connector list [--agent SLUG]\n"
    "       gatehouse connector enable|disable --agent SLUG --name NAME\n"
    "       gatehouse connector set --agent SLUG --name NAME [--prefix PREFIX | --no-prefix | --default-prefix]\n"
    "                               [AUTH]\n"
    "AUTH: --auth none|static|oauth-app|oauth-discovery [--preset github|slack|linear|google] [--client-id ID]\n"
    "      [--client-secret-stdin] [--authorize-url URL] [--token-url URL] [--userinfo-url URL]\n"
    "      [--scopes 'a b']\n"
    "oauth-app: each member connects their own account at the provider's OAuth app; register\n"
    "{public URL}/connect/callback there.  The client secret is read from standard input (one\n"
    "line), stored sealed, never shown; a set without it keeps the stored one.\n"
    "oauth-discovery: the upstream does MCP authorization itself; saving discovers its\n"
    "authorization server and registers Gatehouse there (nothing to register by hand).\n"
    "A connector is an upstream MCP server (Streamable HTTP) behind an agent's endpoint; its tools\n"
    "and prompts appear as NAME__tool, or PREFIX__tool with --prefix, or under the upstream's own\n"
    "names with --no-prefix (or --prefix ''); --default-prefix goes back to NAME.  A prefix is at\n"
    "most 32 of A-Z a-z 0-9 _ - .; policies name tools Connector/tool whatever it is.  Header values (static credentials) are stored sealed under the server\n"
    "key and are never shown again.  --headers-stdin reads them from standard input, one 'Name: value'\n"
    "a line, so that a credential is not in the command line other users can read (/proc/PID/cmdline).\n";

struct cli_opts {
    const char *agent, *name, *url;
    const char *headers[GW_MAX_HEADERS + 1];
    int         nheaders;
    bool        too_many;
    bool        headers_stdin;
    bool        secret_stdin;
    struct gw_connector_auth auth;
    const char *prefix;         /* "" = none */
    bool        prefix_given, default_prefix;
};

static int
on_opt(int val, const char *arg, void *ctx)
{
    struct cli_opts *o = ctx;

    switch (val) {
    case 'a': o->agent = arg; return 0;
    case 'n': o->name = arg; return 0;
    case 'u': o->url = arg; return 0;
    case 'H':
        if (o->nheaders >= GW_MAX_HEADERS) {
            o->too_many = true;
            return 0;
        }
        o->headers[o->nheaders++] = arg;
        return 0;
    case 'S': o->headers_stdin = true; return 0;
    case 'm': o->auth.mode = arg; return 0;
    case 'p': o->auth.preset = arg; return 0;
    case 'c': o->auth.client_id = arg; return 0;
    case 's': o->secret_stdin = true; return 0;
    case 'A': o->auth.authorize_url = arg; return 0;
    case 'T': o->auth.token_url = arg; return 0;
    case 'I': o->auth.userinfo_url = arg; return 0;
    case 'O': o->auth.scopes = arg; return 0;
    case 'P': o->prefix = arg; o->prefix_given = true; return 0;
    case 'N': o->prefix = ""; o->prefix_given = true; return 0;
    case 'D': o->default_prefix = true; return 0;
    }
    return -1;
}

static int
usage_error(const char *msg)
{
    fprintf(stderr, "gatehouse: %s\n", msg);
    return 2;
}

/* Adds the 'Name: value' lines of standard input to hdr[*n..]; blank lines
 * are skipped.  The line buffer is wiped: the values are credentials. */
static int
headers_from_stdin(struct gh_arena *a, struct gw_header *hdr, int *n, struct gh_err *e)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    while ((len = getline(&line, &cap, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue;
        if (*n >= GW_MAX_HEADERS) {
            rc = gh_err_set(e, 400, "invalid_request", "at most 16 headers per connector", NULL);
            break;
        }
        if (gw_header_parse(a, line, &hdr[*n], e) < 0) {
            rc = -1;
            break;
        }
        (*n)++;
    }
    if (line) {
        gh_wipe(line, cap);
        free(line);
    }
    return rc;
}

/* The client secret: the first line of standard input (the line buffer is
 * wiped; only the arena copy, wiped at exit, remains). */
static int
secret_from_stdin(struct gh_arena *a, struct gw_connector_auth *auth, struct gh_err *e)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, stdin);
    int rc = 0;

    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len <= 0)
        rc = gh_err_set(e, 400, "invalid_request", "--client-secret-stdin: no secret on standard input", NULL);
    else if ((auth->client_secret = gh_arena_strdup(a, line)) == NULL)
        rc = gh_err_set(e, 500, "server_error", "out of memory", NULL);
    if (line) {
        gh_wipe(line, cap);
        free(line);
    }
    return rc;
}

static int
set_auth(struct gh_arena *a, struct cli_opts *o, struct gh_err *e)
{
    if (gw_connector_auth_set(a, o->agent, o->name, &o->auth, e) < 0)
        return -1;
    printf("connector %s of agent %s: authentication %s%s\n", o->name, o->agent, o->auth.mode,
           !gw_auth_per_member(o->auth.mode) ? "" : gh_arena_printf(a, " (callback URL %s)",
                                                                     gh_config_url(a, "/connect/callback")));
    return 0;
}

static int
list(struct gh_arena *a, const char *agent, struct gh_err *e)
{
    struct gw_connector *cs;
    int n;

    if (gw_connector_list(a, agent, &cs, &n, e) < 0)
        return -1;
    printf("%-16s %-32s %-8s %-40s %-24s %s\n", "AGENT", "NAME", "STATUS", "URL", "HEADERS", "PREFIX");
    for (int i = 0; i < n; i++) {
        printf("%-16s %-32s %-8s %-40s ", cs[i].agent_slug, cs[i].name, cs[i].enabled ? "enabled" : "disabled",
               gw_connector_url_shown(a, cs[i].url));
        for (int k = 0; k < cs[i].nheader_names; k++)
            printf("%s%s", k ? "," : "", cs[i].header_names[k]);
        printf("%s", cs[i].nheader_names ? "" : "-");
        printf(" %s\n", *cs[i].prefix ? cs[i].prefix : "(none)");
    }
    return 0;
}

static int
connector(int argc, char **argv)
{
    static const struct opt_spec spec[] = {
        { "agent", required_argument, 'a' },
        { "name", required_argument, 'n' },
        { "url", required_argument, 'u' },
        { "header", required_argument, 'H' },
        { "headers-stdin", no_argument, 'S' },
        { "auth", required_argument, 'm' },
        { "preset", required_argument, 'p' },
        { "client-id", required_argument, 'c' },
        { "client-secret-stdin", no_argument, 's' },
        { "authorize-url", required_argument, 'A' },
        { "token-url", required_argument, 'T' },
        { "userinfo-url", required_argument, 'I' },
        { "scopes", required_argument, 'O' },
        { "prefix", required_argument, 'P' },
        { "no-prefix", no_argument, 'N' },
        { "default-prefix", no_argument, 'D' },
    };
    struct cli_opts o = {0};
    struct gw_header hdr[GW_MAX_HEADERS] = {0};
    struct gh_arena *a = NULL;
    struct gh_err e = {0};
    const char *config = NULL, *sub;
    bool db_open = false, seals;
    int rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "%s", USAGE);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "enable") && strcmp(sub, "disable") &&
        strcmp(sub, "set")) {
        fprintf(stderr, "gatehouse: unknown connector command '%s'\n%s", sub, USAGE);
        return 2;
    }
    rc = main_parse_opts(argc - 1, argv + 1, USAGE, spec, (int)GH_ARRAY_LEN(spec), &config, on_opt, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (o.prefix_given && o.default_prefix)
        return usage_error("give one of --prefix, --no-prefix and --default-prefix");
    if (!strcmp(sub, "list")) {
        if (o.name || o.url || o.nheaders || o.headers_stdin || o.prefix_given || o.default_prefix)
            return usage_error("list takes only --agent");
    } else if (o.agent == NULL || o.name == NULL) {
        fprintf(stderr, "gatehouse: --agent and --name are required\n%s", USAGE);
        return 2;
    } else if (!strcmp(sub, "add") && o.url == NULL) {
        fprintf(stderr, "gatehouse: --url is required\n%s", USAGE);
        return 2;
    } else if (strcmp(sub, "add") && (o.url || o.nheaders || o.headers_stdin)) {
        return usage_error(!strcmp(sub, "set") ? "set takes --agent, --name, a prefix option and AUTH"
                                               : "enable and disable take only --agent and --name");
    } else if (!strcmp(sub, "set") && !o.prefix_given && !o.default_prefix && o.auth.mode == NULL) {
        return usage_error("set needs --prefix PREFIX, --no-prefix or --default-prefix (or --auth none|static|oauth-app|oauth-discovery)");
    } else if ((!strcmp(sub, "enable") || !strcmp(sub, "disable")) && (o.prefix_given || o.default_prefix)) {
        return usage_error("enable and disable take only --agent and --name");
    }
    if (strcmp(sub, "add") && strcmp(sub, "set") && (o.auth.mode || o.auth.preset || o.auth.client_id ||
        o.secret_stdin || o.auth.authorize_url || o.auth.token_url || o.auth.userinfo_url || o.auth.scopes))
        return usage_error("only add and set take the authentication options");
    if (o.auth.mode == NULL && (o.auth.preset || o.auth.client_id || o.secret_stdin || o.auth.authorize_url ||
        o.auth.token_url || o.auth.userinfo_url || o.auth.scopes))
        return usage_error("the OAuth app options need --auth oauth-app");
    if (o.secret_stdin && o.headers_stdin)
        return usage_error("--client-secret-stdin and --headers-stdin both read standard input: use one");
    if (o.too_many)
        return usage_error("at most 16 headers per connector");

    a = gh_arena_new(0);
    if (a == NULL)
        return usage_error("out of memory");
    /* what is wrong on its face is refused before anything is opened */
    if (o.name && gw_connector_name_check(o.name, &e) < 0)
        goto usage;
    if (o.url && gw_connector_url_check(o.url, &e) < 0)
        goto usage;
    if (o.prefix_given && gw_connector_prefix_check(o.prefix, &e) < 0)
        goto usage;
    for (int i = 0; i < o.nheaders; i++) {
        if (gw_header_parse(a, o.headers[i], &hdr[i], &e) < 0)
            goto usage;
        for (int j = 0; j < i; j++)
            if (!strcasecmp(hdr[i].name, hdr[j].name)) {
                gh_err_set(&e, 400, "invalid_request", "the same header is given twice", NULL);
                goto usage;
            }
    }
    if (o.headers_stdin) {
        int first = o.nheaders;
        if (headers_from_stdin(a, hdr, &o.nheaders, &e) < 0)
            goto usage;
        for (int i = first; i < o.nheaders; i++)
            for (int j = 0; j < i; j++)
                if (!strcasecmp(hdr[i].name, hdr[j].name)) {
                    gh_err_set(&e, 400, "invalid_request", "the same header is given twice", NULL);
                    goto usage;
                }
    }

    if (o.secret_stdin && secret_from_stdin(a, &o.auth, &e) < 0)
        goto usage;

    if (main_config(config) < 0) {
        rc = 1;
        goto out;
    }
    /* only sealing needs the server key (list must not create one) */
    seals = !strcmp(sub, "add") || (!strcmp(sub, "set") && o.auth.mode);
    if ((seals && gh_server_key_init(&e) < 0) || db_init(&e) < 0)
        goto fail;
    db_open = true;
    if (db_migrate(&e) < 0 || (seals && db_server_key_check(&e) < 0))
        goto fail;
    if (!strcmp(sub, "list")) {
        if (list(a, o.agent, &e) < 0)
            goto fail;
    } else if (!strcmp(sub, "add")) {
        char *id = NULL;
        if (gw_connector_add(a, o.agent, o.name, o.url, hdr, o.nheaders, &id, &e) < 0 ||
            (o.prefix_given && gw_connector_set_prefix(a, o.agent, o.name, o.prefix, &e) < 0))
            goto fail;
        if (o.auth.mode && set_auth(a, &o, &e) < 0) {
            /* a refused authentication (discovery failed) leaves no connector behind */
            gw_connector_add_undo(a, o.agent, id, &(struct gh_err){0});
            goto fail;
        }
        printf("added connector %s to agent %s (%d header(s), values stored sealed)\n", o.name, o.agent,
               o.nheaders);
    } else if (!strcmp(sub, "set")) {
        if ((o.prefix_given || o.default_prefix) &&
            gw_connector_set_prefix(a, o.agent, o.name, o.default_prefix ? NULL : o.prefix, &e) < 0)
            goto fail;
        if (o.default_prefix)
            printf("connector %s of agent %s: tools shown as %s__tool\n", o.name, o.agent, o.name);
        else if (o.prefix_given && *o.prefix)
            printf("connector %s of agent %s: tools shown as %s__tool\n", o.name, o.agent, o.prefix);
        else if (o.prefix_given)
            printf("connector %s of agent %s: tools shown under their own names\n", o.name, o.agent);
        if (o.auth.mode && set_auth(a, &o, &e) < 0)
            goto fail;
    } else {
        bool on = !strcmp(sub, "enable");
        if (gw_connector_set_enabled(a, o.agent, o.name, on, &e) < 0)
            goto fail;
        printf("%s connector %s of agent %s\n", on ? "enabled" : "disabled", o.name, o.agent);
    }
    rc = 0;
    goto out;
usage:
    rc = usage_error(e.msg);
    goto out;
fail:
    rc = main_fail(&e);
out:
    if (o.auth.client_secret)
        gh_wipe((char *)o.auth.client_secret, strlen(o.auth.client_secret));
    for (int i = 0; i < GW_MAX_HEADERS; i++)   /* also one that failed its check */
        if (hdr[i].value)
            gh_wipe(hdr[i].value, strlen(hdr[i].value));
    if (db_open)
        db_shutdown();
    gh_arena_free(a);
    return rc;
}

int
main_connector(int argc, char **argv, const char *config)
{
    char *args[argc + 3];

    /* a --config given before the command travels with the subcommand's
     * own options */
    for (int i = 0; i < argc; i++)
        args[i] = argv[i];
    if (config) {
        args[argc++] = "--config";
        args[argc++] = (char *)config;
    }
    args[argc] = NULL;
    return connector(argc, args);
}
