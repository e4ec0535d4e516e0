/*
 * cmd/main.c — the `gatehouse` binary: one table of subcommands.
 *
 * Exit codes: 0 success, 2 usage error, 1 failure with a one-line reason
 * on stderr.
 */
#include "cmd/main_int.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct gh_command commands[] = {
    { "serve",      main_serve,      "Run the server (starts the embedded PostgreSQL when no database URL is set)" },
    { "migrate",    main_migrate,    "Apply pending database migrations and exit" },
    { "user",       main_user,       "Manage accounts: user add|list|disable" },
    { "agent",      main_agent,      "Manage agents: agent add|list|set|disable|enable|delete" },
    { "member",     main_member,     "Members of an agent: member invite|list|approve|reject|remove|revoke|owner" },
    { "pat",        main_pat,        "Personal access tokens: pat create" },
    { "client",     main_client,     "OAuth clients: client introspection --client-id ID on|off (resource servers)" },
    { "config-doc", main_config_doc, "Print docs/CONFIGURATION.md, generated from the settings table" },
    { "connector",  main_connector,  "Upstream MCP servers of an agent: connector add|list|enable|disable" },
    { "policy",     main_policy,     "Cedar policies of an agent: policy add|set|list|enable|disable|mode|history|test" },
    { "cedar",      main_cedar,      "Cedar policies: cedar check FILE | cedar authorize ... | cedar validate ..." },
};

static void
usage(FILE *out)
{
    fprintf(out, "Usage: gatehouse [--config FILE] COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < GH_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nRun `gatehouse COMMAND --help` for a command's options.\n\n");
    gh_config_print_help(out);
}

/* Loads the configuration; prints the reason and returns -1 on failure. */
int
main_config(const char *file)
{
    struct gh_err e = {0};

    if (gh_config_load(file, &e) < 0) {
        fprintf(stderr, "gatehouse: configuration error: %s\n", e.msg);
        return -1;
    }
    gh_log_init(!strcmp(gh_cfg.log_level, "debug") ? GH_LOG_DEBUG
                : !strcmp(gh_cfg.log_level, "warn") ? GH_LOG_WARN
                : !strcmp(gh_cfg.log_level, "error") ? GH_LOG_ERROR : GH_LOG_INFO);
    return 0;
}

int
main_fail(const struct gh_err *e)
{
    fprintf(stderr, "gatehouse: %s\n", e->msg[0] ? e->msg : "failed");
    if (e->detail[0])
        GH_LOG(DEBUG, "cli_error", "%s", e->detail);
    return 1;
}

int
main(int argc, char **argv)
{
    const char *config = NULL;
    int i = 1;

    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[i + 1];
            i += 2;
            continue;
        }
        main_bad_option(argv[i], "");
        usage(stderr);
        return 2;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < GH_ARRAY_LEN(commands); c++)
        if (!strcmp(commands[c].name, argv[i]))
            return commands[c].fn(argc - i, argv + i, config);
    fprintf(stderr, "gatehouse: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
