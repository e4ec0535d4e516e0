/*
 * cmd/commands.c — serve, migrate, user, config-doc.
 *
 * serve wires the layers together: configuration, server key, database
 * (embedded cluster when no URL), migrations, routes, the HTTP server, and
 * a signal wait that drains requests and stops the cluster on SIGTERM.
 */
#include "cmd/main_int.h"
#include <assert.h>
#include "authz/authz.h"
#include "db/db.h"
#include "web/web.h"
#include "gateway/gateway.h"
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

void
main_bad_option(const char *arg, const char *usage_text)
{
    int len = !strncmp(arg, "--", 2) ? (int)strcspn(arg, "=") : arg[0] == '-' && arg[1] ? 2 : 0;

    if (len > 64)
        len = 64;
    if (len)
        fprintf(stderr, "gatehouse: invalid option '%.*s'\n%s", len, arg, usage_text);
    else
        fprintf(stderr, "gatehouse: invalid option\n%s", usage_text);
}

void
main_extra_argument(const char *usage_text)
{
    fprintf(stderr, "gatehouse: unexpected argument (not shown: it may be a secret); quote a value "
            "that holds spaces\n%s", usage_text);
}

int
main_parse_opts(int argc, char **argv, const char *usage_text, const struct opt_spec *spec,
           int nspec, const char **config, int (*on)(int val, const char *arg, void *ctx), void *ctx)
{
    /* room for every subcommand's options (connector has the most) */
    struct option opts[32];
    int n = 0, c;

    assert(nspec <= 29);
    for (int i = 0; i < nspec && n < 29; i++)
        opts[n++] = (struct option){ spec[i].name, spec[i].has_arg, NULL, spec[i].val };
    opts[n++] = (struct option){ "config", required_argument, NULL, 'C' };
    opts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    opts[n] = (struct option){ 0 };
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("%s", usage_text);
            return 1;
        }
        if (c == 'C') {
            *config = optarg;
            continue;
        }
        if (c == '?' || c == ':' || on == NULL || on(c, optarg, ctx) < 0) {
            main_bad_option(argv[optind - 1], usage_text);
            return 2;
        }
    }
    if (optind < argc) {
        main_extra_argument(usage_text);
        return 2;
    }
    return 0;
}

/* ---- health and metrics routes (they need both web/ and db/) */

static int
get_healthz(struct web_req *r)
{
    return web_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static int
get_readyz(struct web_req *r)
{
    struct gh_err e = {0};

    if (db_ready())
        return web_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
    gh_err_set(&e, 503, "temporarily_unavailable", "the database is unavailable", NULL);
    e.retry_after = 2;
    return web_reply_err(r, &e);
}

int web_metrics_render(struct web_req *r);

static long
pool_size(void)
{
    long s, u, w;
    db_pool_stats(&s, &u, &w);
    return s;
}

static long
pool_in_use(void)
{
    long s, u, w;
    db_pool_stats(&s, &u, &w);
    return u;
}

static long
pool_waits(void)
{
    long s, u, w;
    db_pool_stats(&s, &u, &w);
    return w;
}

static int
register_routes(void)
{
    web_route("GET", "/healthz", WEB_API | WEB_NO_DB, get_healthz);
    web_route("GET", "/readyz", WEB_API | WEB_NO_DB, get_readyz);
    web_route("GET", "/metrics", WEB_API | WEB_NO_DB, web_metrics_render);
    web_metrics_register_gauge("gatehouse_db_pool_connections", "Connections in the database pool.", pool_size);
    web_metrics_register_gauge("gatehouse_db_pool_in_use", "Pool connections in use.", pool_in_use);
    web_metrics_register_gauge("gatehouse_db_pool_waits_total", "Times a request waited for a pool connection.", pool_waits);
    authz_register_routes();
    gw_register_routes();
    return 0;
}

/* ---- serve */

static const char SERVE_USAGE[] =
    "Usage: gatehouse serve [--config FILE]\n"
    "Runs the server. Settings come from GATEHOUSE_* variables or --config (see gatehouse --help).\n"
    "With no GATEHOUSE_DATABASE_URL, a private PostgreSQL cluster runs under GATEHOUSE_DATA_DIR.\n";

/* Every client connection, GET stream, upstream transfer and database
 * connection holds a descriptor, and service managers commonly start a
 * process with a soft limit of 1,024 under a far higher hard one (systemd:
 * 1024:524288): the server takes what the hard limit allows, as nginx's
 * worker_rlimit_nofile or Go's runtime do, and says so. */
#define OPEN_FILES_WARN 4096
static void
raise_open_files(void)
{
    struct rlimit rl;
    rlim_t target, was;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    was = rl.rlim_cur;
    /* an unlimited hard limit: the kernel's own default ceiling (nr_open) */
    target = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)1 << 20 ? (rlim_t)1 << 20 : rl.rlim_max;
    if (was != RLIM_INFINITY && was < target &&
        setrlimit(RLIMIT_NOFILE, &(struct rlimit){ .rlim_cur = target, .rlim_max = rl.rlim_max }) == 0) {
        GH_LOG(INFO, "open_files", "soft limit raised from %llu to %llu", (unsigned long long)was,
               (unsigned long long)target);
        was = target;
    }
    if (was < OPEN_FILES_WARN)
        GH_LOG(WARN, "open_files", "at most %llu open files (the hard limit): each client connection, GET stream, "
               "upstream transfer and database connection takes one", (unsigned long long)was);
}

int
main_serve(int argc, char **argv, const char *config)
{
    struct gh_err e = {0};
    sigset_t set;
    int sig = 0, rc;

    rc = main_parse_opts(argc, argv, SERVE_USAGE, NULL, 0, &config, NULL, NULL);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (main_config(config) < 0)
        return 1;
    /* every thread inherits the mask; only this one takes the signals */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_open_files();
    db_cluster_set_exclusive(true);

    if (gh_server_key_init(&e) < 0 || db_init(&e) < 0)
        goto fail;
    /* a process with another key would seal what the others cannot open */
    if (db_migrate(&e) < 0 || db_server_key_check(&e) < 0 || authz_setup_announce(&e) < 0)
        goto fail;
    register_routes();
    if (web_server_start(&e) < 0)
        goto fail;
    db_cluster_take_over();
    sigwait(&set, &sig);
    GH_LOG(INFO, "shutdown", "signal %d: draining requests", sig);
    web_server_stop();
    gw_shutdown();
    authz_shutdown();            /* pending last-used times, before the pool closes */
    db_shutdown();
    GH_LOG(INFO, "shutdown", "stopped");
    return 0;
fail:
    authz_shutdown();
    db_shutdown();
    return main_fail(&e);
}

/* ---- migrate */

static const char MIGRATE_USAGE[] =
    "Usage: gatehouse migrate [--config FILE]\n"
    "Applies pending database migrations (each in its own transaction) and exits.\n";

static int
with_db(const char *config, struct gh_err *e)
{
    if (main_config(config) < 0)
        return -1;
    return db_init(e);
}

int
main_migrate(int argc, char **argv, const char *config)
{
    struct gh_err e = {0};
    int rc = main_parse_opts(argc, argv, MIGRATE_USAGE, NULL, 0, &config, NULL, NULL), n;

    if (rc)
        return rc == 1 ? 0 : rc;
    if (main_config(config) < 0)
        return 1;
    if (db_init(&e) < 0 || (n = db_migrate(&e)) < 0) {
        db_shutdown();
        return main_fail(&e);
    }
    printf("%d migration(s) applied\n", n);
    db_shutdown();
    return 0;
}

/* ---- user */

static const char USER_USAGE[] =
    "Usage: gatehouse user add --email E [--password-stdin] [--admin]\n"
    "       gatehouse user list\n"
    "       gatehouse user disable --email E\n"
    "       gatehouse user reset-mfa --email E   (clears the second factor, ends the sessions)\n"
    "Without --password-stdin, `user add` generates a password and prints it once.\n";

struct user_opts {
    const char *email;
    bool        admin;
    bool        password_stdin;
};

static int
user_opt(int val, const char *arg, void *ctx)
{
    struct user_opts *o = ctx;

    switch (val) {
    case 'e': o->email = arg; return 0;
    case 'a': o->admin = true; return 0;
    case 'p': o->password_stdin = true; return 0;
    }
    return -1;
}

static char *
read_password_stdin(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);

    if (n <= 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

int
main_user(int argc, char **argv, const char *config)
{
    static const struct opt_spec spec[] = {
        { "email", required_argument, 'e' },
        { "admin", no_argument, 'a' },
        { "password-stdin", no_argument, 'p' },
    };
    struct user_opts o = {0};
    struct gh_err e = {0};
    const char *sub;
    char *password = NULL, generated[40];
    int rc;

    if (argc < 2 || (argv[1][0] == '-' && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))) {
        fprintf(stderr, "%s", USER_USAGE);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("%s", USER_USAGE);
        return 0;
    }
    sub = argv[1];
    rc = main_parse_opts(argc - 1, argv + 1, USER_USAGE, spec, 3, &config, user_opt, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "disable") && strcmp(sub, "reset-mfa")) {
        fprintf(stderr, "gatehouse: unknown user command '%s'\n%s", sub, USER_USAGE);
        return 2;
    }
    if (strcmp(sub, "list") && o.email == NULL) {
        fprintf(stderr, "gatehouse: --email is required\n%s", USER_USAGE);
        return 2;
    }
    if (with_db(config, &e) < 0)
        goto fail;
    if (db_migrate(&e) < 0)
        goto fail;
    if (!strcmp(sub, "list")) {
        if (authz_user_list(stdout, &e) < 0)
            goto fail;
    } else if (!strcmp(sub, "disable")) {
        if (authz_user_disable(o.email, &e) < 0)
            goto fail;
        printf("disabled %s\n", o.email);
    } else if (!strcmp(sub, "reset-mfa")) {
        if (authz_mfa_reset(o.email, NULL, &e) < 0)
            goto fail;
        printf("second factor reset for %s\n", o.email);
    } else {
        if (o.password_stdin) {
            password = read_password_stdin();
            if (password == NULL) {
                gh_err_set(&e, 400, "invalid_request", "no password on standard input", NULL);
                goto fail;
            }
        } else {
            unsigned char raw[15];
            gh_random_bytes(raw, sizeof(raw));
            gh_hex_encode(raw, sizeof(raw), generated);
            gh_wipe(raw, sizeof(raw));
        }
        if (authz_user_add(o.email, password ? password : generated, o.admin, &e) < 0)
            goto fail;
        if (password == NULL)
            printf("created %s; generated password: %s\n", o.email, generated);
        else
            printf("created %s\n", o.email);
    }
    rc = 0;
    goto out;
fail:
    rc = main_fail(&e);
out:
    if (password) {
        gh_wipe(password, strlen(password));
        free(password);
    }
    gh_wipe(generated, sizeof(generated));
    db_shutdown();
    return rc;
}

int
main_config_doc(int argc, char **argv, const char *config)
{
    gh_config_print_markdown(stdout);
    return 0;
}
