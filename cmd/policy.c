/*
 * cmd/policy.c — `gatehouse policy add|set|list|enable|disable|
 * mode|history|test`.  Text comes from --file (or standard input with
 * --file -); `test` decides through gw_policy_decide, the gateway's own
 * code path, without counting toward any session.
 */
#include "cmd/main_int.h"
#include "authz/authz.h"
#include "db/db.h"
#include "gateway/gateway.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "Usage: gatehouse policy add|set --agent SLUG [--member EMAIL] --name NAME --file FILE|-\n"
    "       gatehouse policy list --agent SLUG [--member EMAIL]\n"
    "       gatehouse policy enable|disable|history --agent SLUG [--member EMAIL] --name NAME\n"
    "       gatehouse policy mode --agent SLUG [--member EMAIL] --name NAME --mode enforce|shadow\n"
    "       gatehouse policy test --agent SLUG --email EMAIL --tool CONNECTOR/TOOL [--args JSON]\n"
    "                             [--annotations JSON] [--at DATETIME]\n"
    "Policies are Cedar text (docs/POLICIES.md).  On an untrusted agent each belongs to one member\n"
    "(--member).  Every edit is a new version; changes apply on the next call on every process.\n";

struct opts {
    const char *agent, *member, *name, *file, *mode, *email, *tool, *args, *ann, *at;
};

static int
on_opt(int val, const char *arg, void *ctx)
{
    struct opts *o = ctx;

    switch (val) {
    case 'a': o->agent = arg; return 0;
    case 'm': o->member = arg; return 0;
    case 'n': o->name = arg; return 0;
    case 'f': o->file = arg; return 0;
    case 'M': o->mode = arg; return 0;
    case 'e': o->email = arg; return 0;
    case 't': o->tool = arg; return 0;
    case 'j': o->args = arg; return 0;
    case 'A': o->ann = arg; return 0;
    case 'T': o->at = arg; return 0;
    }
    return -1;
}

static char *
read_text(struct gh_arena *a, const char *file, struct gh_err *e)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
    char *buf;
    size_t n;

    if (f == NULL) {
        gh_err_set(e, 400, "invalid_request", "The policy file cannot be read.", NULL);
        return NULL;
    }
    buf = gh_arena_alloc(a, GW_POLICY_TEXT_MAX + 2);
    n = buf ? fread(buf, 1, GW_POLICY_TEXT_MAX + 1, f) : 0;
    if (f != stdin)
        fclose(f);
    if (buf == NULL)
        return NULL;
    buf[n] = '\0';
    if (strlen(buf) != n) {
        gh_err_set(e, 400, "invalid_request", "The policy text holds a NUL byte.", NULL);
        return NULL;
    }
    return buf;
}

static int
list(struct gh_arena *a, const struct opts *o, bool history, struct gh_err *e)
{
    struct gw_policy *p;
    int n;

    if ((history ? gw_policy_history(a, o->agent, o->member, o->name, &p, &n, e)
                 : gw_policy_list(a, o->agent, o->member, &p, &n, e)) < 0)
        return -1;
    if (history) {
        for (int i = 0; i < n; i++)
            printf("--- version %d by %s at %s\n%s%s", p[i].version, p[i].created_by, p[i].created_at, p[i].text,
                   p[i].text[0] && p[i].text[strlen(p[i].text) - 1] == '\n' ? "" : "\n");
        return 0;
    }
    printf("%-36s %-24s %-8s %-8s %-7s %s\n", "ID", "NAME", "MODE", "STATE", "VERSION", "MEMBER");
    for (int i = 0; i < n; i++)
        printf("%-36s %-24s %-8s %-8s %-7d %s\n", p[i].id, p[i].name, p[i].mode,
               p[i].enabled ? "enabled" : "disabled", p[i].version, p[i].member ? p[i].member : "-");
    return 0;
}

static int
bench(struct gh_arena *a, const struct opts *o, struct gh_err *e)
{
    struct gw_policy_test_in in = { .agent = o->agent, .email = o->email, .tool = o->tool, .args = o->args,
                                    .annotations = o->ann, .at = o->at };
    struct gw_decision d = {0};

    if (gw_policy_test(a, &in, &d, e) < 0)
        return -1;
    printf("decision: %s\n", d.decision);
    printf("policies: %s\n", d.policy_ids ? d.policy_ids : "-");
    printf("versions: %s\n", d.policy_versions ? d.policy_versions : "-");
    if (!d.allow)
        printf("message: %s\n", d.message);
    printf("errors: %s\n", d.errors ? d.errors : "-");
    printf("shadow: %s\n", d.shadow ? d.shadow : "-");
    printf("request: %s\n", d.request ? d.request : "-");
    return 0;
}

static int
run(struct gh_arena *a, const char *sub, const struct opts *o, struct gh_err *e)
{
    struct gw_policy p = {0};
    char *text;

    if (!strcmp(sub, "list") || !strcmp(sub, "history"))
        return list(a, o, !strcmp(sub, "history"), e);
    if (!strcmp(sub, "test"))
        return bench(a, o, e);
    if (!strcmp(sub, "enable") || !strcmp(sub, "disable")) {
        bool on = !strcmp(sub, "enable");
        if (gw_policy_set_enabled(a, o->agent, o->member, o->name, on, e) < 0)
            return -1;
        printf("%s policy %s\n", on ? "enabled" : "disabled", o->name);
        return 0;
    }
    if (!strcmp(sub, "mode")) {
        if (gw_policy_set_mode(a, o->agent, o->member, o->name, o->mode, e) < 0)
            return -1;
        printf("policy %s: mode %s\n", o->name, o->mode);
        return 0;
    }
    if ((text = read_text(a, o->file, e)) == NULL)
        return -1;
    /* the CLI acts as the server's operator */
    if ((!strcmp(sub, "add") ? gw_policy_add(a, o->agent, o->member, o->name, text, "cli", &p, e)
                             : gw_policy_set_text(a, o->agent, o->member, o->name, text, "cli", &p, e)) < 0)
        return -1;
    printf("policy %s %s: version %d\n", o->name, p.id, p.version);
    return 0;
}

static bool
json_object_ok(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    bool ok = text == NULL || json_is_object(j);

    json_decref(j);
    return ok;
}

/* What each subcommand needs, checked before anything is opened. */
static const char *
missing(const char *sub, const struct opts *o)
{
    if (o->agent == NULL)
        return "--agent is required";
    if (!strcmp(sub, "test") && (o->email == NULL || o->tool == NULL))
        return "test needs --email and --tool";
    if (!strcmp(sub, "test"))
        return json_object_ok(o->args) ? json_object_ok(o->ann) ? NULL : "--annotations is not a JSON object"
                                       : "--args is not a JSON object";
    if (strcmp(sub, "list") && o->name == NULL)
        return "--name is required";
    if ((!strcmp(sub, "add") || !strcmp(sub, "set")) && o->file == NULL)
        return "--file is required";
    if (!strcmp(sub, "mode") && o->mode == NULL)
        return "--mode is required";
    return NULL;
}

static int
policy(int argc, char **argv)
{
    static const struct opt_spec spec[] = {
        { "agent", required_argument, 'a' }, { "member", required_argument, 'm' },
        { "name", required_argument, 'n' },  { "file", required_argument, 'f' },
        { "mode", required_argument, 'M' },  { "email", required_argument, 'e' },
        { "tool", required_argument, 't' },  { "args", required_argument, 'j' },
        { "annotations", required_argument, 'A' }, { "at", required_argument, 'T' },
    };
    static const char *const subs[] = { "add", "set", "list", "enable", "disable", "mode", "history", "test" };
    struct opts o = {0};
    struct gh_arena *a = NULL;
    struct gh_err e = {0};
    const char *config = NULL, *why;
    bool known = false;
    int rc;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "%s", USAGE);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < GH_ARRAY_LEN(subs); i++)
        known |= !strcmp(argv[1], subs[i]);
    if (!known) {
        fprintf(stderr, "gatehouse: unknown policy command '%s'\n%s", argv[1], USAGE);
        return 2;
    }
    rc = main_parse_opts(argc - 1, argv + 1, USAGE, spec, (int)GH_ARRAY_LEN(spec), &config, on_opt, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if ((why = missing(argv[1], &o)) != NULL) {
        fprintf(stderr, "gatehouse: %s\n%s", why, USAGE);
        return 2;
    }
    if (main_config(config) < 0 || (a = gh_arena_new(0)) == NULL)
        return 1;
    if (db_init(&e) < 0) {
        rc = main_fail(&e);
        goto out;
    }
    rc = db_migrate(&e) < 0 || run(a, argv[1], &o, &e) < 0 ? main_fail(&e) : 0;
    db_shutdown();
out:
    gh_arena_free(a);
    return rc;
}

int
main_policy(int argc, char **argv, const char *config)
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
    return policy(argc, args);
}
