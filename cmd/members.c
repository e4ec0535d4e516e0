/*
 * cmd/members.c — `gatehouse agent add|list|set|disable|enable|delete`
 * and `gatehouse member invite|list|approve|reject|remove|revoke|owner`.
 * The operator at the CLI acts as an admin (owner of every agent).
 */
#include "cmd/main_int.h"
#include "authz/authz.h"
#include "db/db.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char AGENT_USAGE[] =
    "Usage: gatehouse agent add --slug SLUG --name NAME [--untrusted] [--timezone TZ]\n"
    "       gatehouse agent list\n"
    "       gatehouse agent set --slug SLUG [--name NAME] [--timezone TZ]\n"
    "       gatehouse agent disable|enable|delete --slug SLUG\n"
    "An agent's MCP endpoint is {public URL}/agents/{slug}/mcp (the default agent also /mcp).\n"
    "disable is the kill switch: every MCP request is refused, every credential kept.\n"
    "delete revokes every credential of the agent and removes its members and connectors.\n"
    "TZ is an IANA time zone name (default UTC).\n";

static const char MEMBER_USAGE[] =
    "Usage: gatehouse member invite --agent SLUG --email EMAIL [--approve-on-accept]\n"
    "       gatehouse member list --agent SLUG\n"
    "       gatehouse member approve|reject|remove|revoke --agent SLUG --email EMAIL\n"
    "       gatehouse member owner --agent SLUG --email EMAIL on|off\n"
    "invite prints only the single-use invite link (valid 7 days) on standard output; it is also\n"
    "mailed when GATEHOUSE_SMTP_URL is set.  revoke withdraws an invite not used yet.\n"
    "approve also admits an existing account directly.\n";

struct opts {
    const char *slug, *name, *tz, *email;
    bool untrusted, approve_on_accept;
};

static int
on_opt(int val, const char *arg, void *ctx)
{
    struct opts *o = ctx;

    switch (val) {
    case 's': o->slug = arg; return 0;
    case 'n': o->name = arg; return 0;
    case 't': o->tz = arg; return 0;
    case 'e': o->email = arg; return 0;
    case 'u': o->untrusted = true; return 0;
    case 'A': o->approve_on_accept = true; return 0;
    }
    return -1;
}

static int
usage_error(const char *why, const char *usage)
{
    fprintf(stderr, "gatehouse: %s\n%s", why, usage);
    return 2;
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

static int
finish(int rc, const struct gh_err *e)
{
    if (rc < 0)
        rc = main_fail(e);
    db_shutdown();
    return rc;
}

static int
agent_run(const char *sub, const struct opts *o, struct gh_err *e)
{
    if (!strcmp(sub, "list"))
        return authz_agent_list(stdout, e);
    if (!strcmp(sub, "add")) {
        if (authz_agent_create(NULL, o->slug, o->name, o->untrusted, o->tz, e) < 0)
            return -1;
        printf("created agent %s: %s/agents/%s/mcp\n", o->slug, gh_cfg.public_url, o->slug);
    } else if (!strcmp(sub, "set")) {
        if (authz_agent_set(NULL, o->slug, o->name, o->tz, e) < 0)
            return -1;
        printf("updated agent %s\n", o->slug);
    } else if (!strcmp(sub, "delete")) {
        if (authz_agent_delete(NULL, o->slug, e) < 0)
            return -1;
        printf("deleted agent %s and revoked its credentials\n", o->slug);
    } else {
        bool off = !strcmp(sub, "disable");
        if (authz_agent_set_disabled(NULL, o->slug, off, e) < 0)
            return -1;
        printf("%s agent %s\n", off ? "disabled" : "enabled", o->slug);
    }
    return 0;
}

int
main_agent(int argc, char **argv, const char *config)
{
    static const struct opt_spec spec[] = {
        { "slug", required_argument, 's' }, { "name", required_argument, 'n' },
        { "timezone", required_argument, 't' }, { "untrusted", no_argument, 'u' },
    };
    static const char *const subs[] = { "add", "list", "set", "disable", "enable", "delete" };
    struct opts o = {0};
    struct gh_err e = {0};
    const char *sub;
    bool known = false;
    int rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "%s", AGENT_USAGE);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    for (size_t i = 0; i < GH_ARRAY_LEN(subs); i++)
        known |= !strcmp(sub, subs[i]);
    if (!known) {
        fprintf(stderr, "gatehouse: unknown agent command '%s'\n%s", sub, AGENT_USAGE);
        return 2;
    }
    rc = main_parse_opts(argc - 1, argv + 1, AGENT_USAGE, spec, (int)GH_ARRAY_LEN(spec), &config, on_opt, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (!strcmp(sub, "add") && (o.slug == NULL || o.name == NULL))
        return usage_error("--slug and --name are required", AGENT_USAGE);
    if (strcmp(sub, "add") && strcmp(sub, "list") && o.slug == NULL)
        return usage_error("--slug is required", AGENT_USAGE);
    if (strcmp(sub, "add") && strcmp(sub, "set") && (o.name || o.tz || o.untrusted))
        return usage_error("only add and set take --name and --timezone", AGENT_USAGE);
    if (open_db(config, &e) < 0)
        return finish(-1, &e);
    return finish(agent_run(sub, &o, &e), &e);
}

static int
member_run(const char *sub, const struct opts *o, const char *state, struct gh_err *e)
{
    if (!strcmp(sub, "list"))
        return authz_member_list(stdout, o->slug, e);
    if (!strcmp(sub, "invite")) {
        char *link = NULL;
        bool mailed = false;
        if (authz_member_invite(NULL, o->slug, o->email, o->approve_on_accept, &link, &mailed, e) < 0)
            return -1;
        printf("%s\n", link);     /* alone on stdout: scripts take it as it is */
        if (mailed)
            fprintf(stderr, "the invite was also mailed to %s\n", o->email);
        gh_wipe(link, strlen(link));
        free(link);
        return 0;
    }
    if (!strcmp(sub, "owner"))
        sub = !strcmp(state, "on") ? "owner" : "unowner";
    if (authz_member_act(NULL, o->slug, o->email, sub, e) < 0)
        return -1;
    printf("%s: done (%s, agent %s)\n", sub, o->email, o->slug);
    return 0;
}

int
main_member(int argc, char **argv, const char *config)
{
    static const struct opt_spec spec[] = {
        { "agent", required_argument, 's' }, { "email", required_argument, 'e' },
        { "approve-on-accept", no_argument, 'A' },
    };
    static const char *const subs[] = { "invite", "list", "approve", "reject", "remove", "revoke", "owner" };
    struct opts o = {0};
    struct gh_err e = {0};
    const char *sub, *state = NULL;
    bool known = false;
    int rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "%s", MEMBER_USAGE);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    for (size_t i = 0; i < GH_ARRAY_LEN(subs); i++)
        known |= !strcmp(sub, subs[i]);
    if (!known) {
        fprintf(stderr, "gatehouse: unknown member command '%s'\n%s", sub, MEMBER_USAGE);
        return 2;
    }
    /* owner's on|off comes last */
    if (!strcmp(sub, "owner") && argc > 2 && (!strcmp(argv[argc - 1], "on") || !strcmp(argv[argc - 1], "off")))
        state = argv[--argc];
    rc = main_parse_opts(argc - 1, argv + 1, MEMBER_USAGE, spec, (int)GH_ARRAY_LEN(spec), &config, on_opt, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (o.slug == NULL)
        return usage_error("--agent is required", MEMBER_USAGE);
    if (strcmp(sub, "list") && o.email == NULL)
        return usage_error("--email is required", MEMBER_USAGE);
    if (!strcmp(sub, "owner") && state == NULL)
        return usage_error("owner needs on or off", MEMBER_USAGE);
    if (o.approve_on_accept && strcmp(sub, "invite"))
        return usage_error("only invite takes --approve-on-accept", MEMBER_USAGE);
    if (open_db(config, &e) < 0)
        return finish(-1, &e);
    return finish(member_run(sub, &o, state, &e), &e);
}
