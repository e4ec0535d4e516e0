/*
 * db/cluster.c — the embedded PostgreSQL cluster.
 *
 * With no database URL, Gatehouse runs initdb and pg_ctl of the installed
 * PostgreSQL on <data_dir>/pg, listening only on a unix socket inside
 * <data_dir>/run, and stops it at shutdown.  PostgreSQL refuses to run as
 * root, so when Gatehouse is root the cluster runs as gh_cfg.pg_run_as.
 */
#include "db/db_int.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char cluster_pgdata[PATH_MAX];
static char cluster_sock[PATH_MAX];
static bool cluster_started;     /* we started it, so we stop it */

/* Runs argv as the cluster's user with stdout/stderr to logfile; returns
 * the exit status or -1. */
static int
run_as_owner(char *const argv[], const char *logfile)
{
    struct passwd *pw = NULL;
    pid_t pid;
    int status;

    if (geteuid() == 0) {
        pw = getpwnam(gh_cfg.pg_run_as);
        if (pw == NULL)
            return -1;
    }
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            if (pw)
                (void)!fchown(fd, pw->pw_uid, pw->pw_gid);
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, STDIN_FILENO);
            close(fd);
        }
        /* the server must not die with our process group on Ctrl-C: it is
         * stopped explicitly at shutdown */
        setsid();
        if (pw && (setgid(pw->pw_gid) < 0 || initgroups(pw->pw_name, pw->pw_gid) < 0 ||
                   setuid(pw->pw_uid) < 0))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
make_owned_dir(const char *path, mode_t mode, struct gh_err *e)
{
    struct passwd *pw;

    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return gh_err_set(e, 500, "server_error", "cannot create the database folder",
                          "mkdir %s: %s", path, strerror(errno));
    chmod(path, mode);
    if (geteuid() == 0) {
        pw = getpwnam(gh_cfg.pg_run_as);
        if (pw == NULL)
            return gh_err_set(e, 500, "server_error", "the PostgreSQL user does not exist",
                              "getpwnam(%s) failed", gh_cfg.pg_run_as);
        if (chown(path, pw->pw_uid, pw->pw_gid) < 0)
            return gh_err_set(e, 500, "server_error", "cannot hand the database folder to PostgreSQL",
                              "chown %s: %s", path, strerror(errno));
    }
    return 0;
}

int
db_cluster_start(const char *data_dir, struct gh_err *e)
{
    char base[PATH_MAX], bin[PATH_MAX], bin2[PATH_MAX], logf[PATH_MAX], opts[PATH_MAX + 128];
    char ver[PATH_MAX];
    struct stat st;

    if (mkdir(data_dir, 0755) < 0 && errno != EEXIST)
        return gh_err_set(e, 500, "server_error", "cannot create the data folder",
                          "mkdir %s: %s", data_dir, strerror(errno));
    if (realpath(data_dir, base) == NULL)
        return gh_err_set(e, 500, "server_error", "cannot resolve the data folder",
                          "realpath %s: %s", data_dir, strerror(errno));
    /* the cluster's user must be able to reach its folders */
    chmod(base, 0755);
    snprintf(cluster_pgdata, sizeof(cluster_pgdata), "%s/pg", base);
    snprintf(cluster_sock, sizeof(cluster_sock), "%s/run", base);
    snprintf(logf, sizeof(logf), "%s/postgresql.log", base);
    if (strlen(cluster_sock) > 90)
        return gh_err_set(e, 500, "server_error", "the data folder path is too long for a unix socket",
                          "%s", cluster_sock);
    if (make_owned_dir(cluster_pgdata, 0700, e) < 0 || make_owned_dir(cluster_sock, 0700, e) < 0)
        return -1;

    snprintf(ver, sizeof(ver), "%s/PG_VERSION", cluster_pgdata);
    if (stat(ver, &st) < 0) {
        snprintf(bin, sizeof(bin), "%s/initdb", gh_cfg.pg_bin_dir);
        char *argv[] = { bin, "-D", cluster_pgdata, "-U", "gatehouse", "--auth=trust",
                         "-E", "UTF8", "--locale=C", NULL };
        GH_LOG(INFO, "db_cluster", "initializing the embedded PostgreSQL cluster in %s", cluster_pgdata);
        if (run_as_owner(argv, logf) != 0)
            return gh_err_set(e, 500, "server_error", "initdb failed",
                              "initdb -D %s failed; see %s", cluster_pgdata, logf);
    }

    snprintf(bin2, sizeof(bin2), "%s/pg_ctl", gh_cfg.pg_bin_dir);
    {
        char *argv[] = { bin2, "status", "-D", cluster_pgdata, NULL };
        if (run_as_owner(argv, "/dev/null") == 0) {
            GH_LOG(INFO, "db_cluster", "the embedded cluster is already running; using it");
            return 0;
        }
    }
    snprintf(opts, sizeof(opts), "-c listen_addresses='' -c unix_socket_directories='%s' "
             "-c max_connections=200 -c fsync=on", cluster_sock);
    {
        char *argv[] = { bin2, "start", "-w", "-t", "60", "-D", cluster_pgdata, "-l", logf,
                         "-o", opts, NULL };
        if (run_as_owner(argv, logf) != 0)
            return gh_err_set(e, 500, "server_error", "the embedded PostgreSQL did not start",
                              "pg_ctl start failed; see %s", logf);
    }
    cluster_started = true;
    GH_LOG(INFO, "db_cluster", "embedded PostgreSQL started (socket in %s)", cluster_sock);
    return 0;
}

const char *
db_cluster_socket_dir(void)
{
    return cluster_sock;
}

void
db_cluster_stop(void)
{
    char bin[PATH_MAX], logf[PATH_MAX];

    if (!cluster_started)
        return;
    snprintf(bin, sizeof(bin), "%s/pg_ctl", gh_cfg.pg_bin_dir);
    snprintf(logf, sizeof(logf), "%s/../postgresql.log", cluster_pgdata);
    char *argv[] = { bin, "stop", "-w", "-m", "fast", "-D", cluster_pgdata, NULL };
    if (run_as_owner(argv, logf) != 0)
        GH_LOG(WARN, "db_cluster", "pg_ctl stop failed");
    else
        GH_LOG(INFO, "db_cluster", "embedded PostgreSQL stopped");
    cluster_started = false;
}
