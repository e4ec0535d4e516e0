/*
 * cmd/oauth.c — `gatehouse pat create` and
 * `gatehouse client introspection`.
 */
#include "cmd/main_int.h"
#include "authz/authz.h"
#include "db/db.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PAT_USAGE[] =
    "Usage: gatehouse pat create --email EMAIL --agent SLUG --name NAME [--expires-days D]\n"
    "Prints only the new personal access token on standard output.\n";

static const char CLIENT_USAGE[] =
    "Usage: gatehouse client introspection --client-id ID on|off\n"
    "on: the registered confidential client is a resource server and may introspect (RFC 7662)\n"
    "every access token and personal access token of this server; off: only the tokens issued to it.\n";

/* Parses --config/--help and the command's options after the subcommand;
 * with pos, one positional argument is allowed and stored there. */
static int
opts_parse(int argc, char **argv, const char *usage, const struct option *extra, int nextra,
           const char **config, const char **vals, bool *flag, const char **pos)
{
    struct option o[12];
    int n = 0, c;

    for (int i = 0; i < nextra; i++)
        o[n++] = extra[i];
    o[n++] = (struct option){ "config", required_argument, NULL, 'C' };
    o[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    o[n] = (struct option){ 0 };
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", o, NULL)) != -1) {
        if (c == 'h') {
            printf("%s", usage);
            return 1;
        }
        if (c == 'C') {
            *config = optarg;
        } else if (c == 'u') {
            *flag = true;
        } else if (c >= '0' && c <= '9') {
            vals[c - '0'] = optarg;
        } else {
            main_bad_option(argv[optind - 1], usage);
            return 2;
        }
    }
    if (pos && optind < argc)
        *pos = argv[optind++];
    if (optind < argc) {
        main_extra_argument(usage);
        return 2;
    }
    return 0;
}

static int
open_db(const char *config, struct gh_err *e)
{
    if (main_config(config) < 0)
        return gh_err_set(e, 400, "config", "configuration error", NULL);
    if (db_init(e) < 0 || db_migrate(e) < 0)
        return -1;
    return 0;
}

int
main_pat(int argc, char **argv, const char *config)
{
    static const struct option o[] = {
        { "email", required_argument, NULL, '0' },
        { "agent", required_argument, NULL, '1' },
        { "name", required_argument, NULL, '2' },
        { "expires-days", required_argument, NULL, '3' },
    };
    const char *vals[10] = {0};
    struct gh_err e = {0};
    bool unused = false;
    char *token = NULL, *end;
    long days = 0;
    int rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "%s", PAT_USAGE);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "create")) {
        fprintf(stderr, "gatehouse: unknown pat command '%s'\n%s", argv[1], PAT_USAGE);
        return 2;
    }
    rc = opts_parse(argc - 1, argv + 1, PAT_USAGE, o, 4, &config, vals, &unused, NULL);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (vals[0] == NULL || vals[2] == NULL) {
        fprintf(stderr, "gatehouse: --email and --name are required\n%s", PAT_USAGE);
        return 2;
    }
    if (vals[3]) {
        days = strtol(vals[3], &end, 10);
        if (*end || days < 1 || days > 3650) {
            fprintf(stderr, "gatehouse: --expires-days must be 1 to 3650\n%s", PAT_USAGE);
            return 2;
        }
    }
    if (open_db(config, &e) < 0 ||
        authz_pat_create(vals[0], vals[1] ? vals[1] : "default", vals[2], days, &token, &e) < 0) {
        rc = main_fail(&e);
        db_shutdown();
        return rc;
    }
    printf("%s\n", token);
    gh_wipe(token, strlen(token));
    free(token);
    db_shutdown();
    return 0;
}

int
main_client(int argc, char **argv, const char *config)
{
    static const struct option o[] = {
        { "client-id", required_argument, NULL, '0' },
    };
    const char *vals[10] = {0}, *state = NULL;
    struct gh_err e = {0};
    bool unused = false;
    int rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "%s", CLIENT_USAGE);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "introspection")) {
        fprintf(stderr, "gatehouse: unknown client command '%s'\n%s", argv[1], CLIENT_USAGE);
        return 2;
    }
    rc = opts_parse(argc - 1, argv + 1, CLIENT_USAGE, o, 1, &config, vals, &unused, &state);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (vals[0] == NULL || state == NULL || (strcmp(state, "on") && strcmp(state, "off"))) {
        fprintf(stderr, "gatehouse: --client-id and on or off are required\n%s", CLIENT_USAGE);
        return 2;
    }
    if (open_db(config, &e) < 0 || authz_client_set_resource_server(vals[0], !strcmp(state, "on"), &e) < 0) {
        rc = main_fail(&e);
        db_shutdown();
        return rc;
    }
    if (!strcmp(state, "on"))
        printf("client %s may now introspect every access token and PAT (resource server)\n", vals[0]);
    else
        printf("client %s may now introspect only its own tokens\n", vals[0]);
    db_shutdown();
    return 0;
}
