/*
 * db/cluster.c — the embedded PostgreSQL cluster.
 *
 * With no database URL, Gatehouse runs initdb and pg_ctl of the installed
 * PostgreSQL on <data_dir>/pg, listening only on a unix socket inside
 * <data_dir>/run, and stops it at shutdown.  PostgreSQL refuses to run as
 * root, so when Gatehouse is root the cluster runs as gh_cfg.pg_run_as.
 *
 * <data_dir>/gatehouse.lock says who owns the cluster: the process holding
 * its flock started or adopted the cluster and stops it when it exits.  The
 * kernel drops the lock however that process ends (SIGKILL, OOM), so a
 * cluster found running by the next holder is an orphan: `serve` takes it
 * over once it has started (it stops it at exit), a CLI command leaves it
 * running.  `serve` must own the cluster and refuses a data folder another
 * process holds; a CLI command that cannot take the lock uses the running
 * cluster of whoever holds it and leaves it running.
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
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char cluster_pgdata[PATH_MAX];
static char cluster_sock[PATH_MAX];
static bool cluster_started;     /* we own it, so we stop it */
static bool cluster_exclusive;   /* serve: own the cluster or refuse */
static bool cluster_adopted;     /* found running with nobody owning it */
static int  cluster_lock_fd = -1;

#define CLUSTER_SERVE_WAIT_MS 10000   /* a CLI command that owns it for a moment */
#define CLUSTER_CLI_WAIT_MS   60000   /* the owner's cluster is starting */

void
db_cluster_set_exclusive(bool exclusive)
{
    cluster_exclusive = exclusive;
}

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

static bool
cluster_running(void)
{
    char bin[PATH_MAX];

    snprintf(bin, sizeof(bin), "%s/pg_ctl", gh_cfg.pg_bin_dir);
    char *argv[] = { bin, "status", "-D", cluster_pgdata, NULL };
    return run_as_owner(argv, "/dev/null") == 0;
}

/* Takes <base>/gatehouse.lock, or for a CLI command finds the cluster of
 * the process that holds it running.  Returns 1 when we own the cluster,
 * 0 when we only use it, -1 with e set. */
static int
cluster_lock(const char *base, struct gh_err *e)
{
    char path[PATH_MAX], pid[32] = "";
    int waited = 0, fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/gatehouse.lock", base);
    /* close-on-exec: pg_ctl and postgres must not inherit the lock */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return gh_err_set(e, 500, "server_error", "cannot open the data folder's lock file",
                          "open %s: %s", path, strerror(errno));
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            char me[32];
            int len = snprintf(me, sizeof(me), "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) == 0)
                (void)!pwrite(fd, me, (size_t)len, 0);
            cluster_lock_fd = fd;
            return 1;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            gh_err_set(e, 500, "server_error", "cannot lock the data folder",
                       "flock %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (!cluster_exclusive && cluster_running()) {
            close(fd);
            return 0;
        }
        if (waited >= (cluster_exclusive ? CLUSTER_SERVE_WAIT_MS : CLUSTER_CLI_WAIT_MS))
            break;
        usleep(200 * 1000);
        waited += 200;
    }
    n = pread(fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(fd);
    gh_err_set(e, 500, "config", "", "flock %s: held by pid %s", path, pid);
    snprintf(e->msg, sizeof(e->msg), cluster_exclusive ?
             "the data folder %s is in use by another gatehouse process (pid %s); stop it, or give"
             " this server its own GATEHOUSE_DATA_DIR" :
             "the data folder %s is held by another gatehouse process (pid %s) whose database is"
             " not running", base, pid[0] ? pid : "unknown");
    return -1;
}

/* Reads up to n-1 bytes of path from offset (negative: from the end). */
static void
read_part(const char *path, long offset, char *buf, size_t n)
{
    ssize_t got = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        if (offset < 0)
            offset = lseek(fd, 0, SEEK_END) + offset;
        got = pread(fd, buf, n - 1, offset < 0 ? 0 : offset);
        close(fd);
    }
    buf[got > 0 ? got : 0] = '\0';
}

/* pg_ctl start failed: the cause PostgreSQL wrote in its log, when it is
 * one the operator fixes in Gatehouse's settings, else where to look. */
static void
start_failed(const char *ver_file, const char *logf, struct gh_err *e)
{
    char tail[4096], ver[16];

    read_part(logf, -(long)sizeof(tail) + 1, tail, sizeof(tail));
    read_part(ver_file, 0, ver, sizeof(ver));
    ver[strcspn(ver, "\r\n")] = '\0';
    gh_err_set(e, 500, "config", "", "pg_ctl start failed; see %s", logf);
    if (strstr(tail, "incompatible with server"))
        snprintf(e->msg, sizeof(e->msg), "the embedded cluster in %s was created by PostgreSQL %s, which"
                 " the binaries in %s cannot run; set GATEHOUSE_PG_BIN_DIR to PostgreSQL %s's, or"
                 " pg_upgrade the cluster", cluster_pgdata, ver, gh_cfg.pg_bin_dir, ver);
    else
        snprintf(e->msg, sizeof(e->msg), "the embedded PostgreSQL did not start; see %s", logf);
}

static void
cluster_unlock(void)
{
    if (cluster_lock_fd >= 0)
        close(cluster_lock_fd);    /* drops the flock */
    cluster_lock_fd = -1;
}

int
db_cluster_start(const char *data_dir, struct gh_err *e)
{
    int own;
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
    if ((own = cluster_lock(base, e)) < 0)
        return -1;
    if (own == 0) {
        GH_LOG(INFO, "db_cluster", "using the embedded cluster of the running gatehouse process");
        return 0;
    }
    if (make_owned_dir(cluster_pgdata, 0700, e) < 0 || make_owned_dir(cluster_sock, 0700, e) < 0)
        goto fail;

    snprintf(ver, sizeof(ver), "%s/PG_VERSION", cluster_pgdata);
    if (stat(ver, &st) < 0) {
        snprintf(bin, sizeof(bin), "%s/initdb", gh_cfg.pg_bin_dir);
        char *argv[] = { bin, "-D", cluster_pgdata, "-U", "gatehouse", "--auth=trust",
                         "-E", "UTF8", "--locale=C", NULL };
        GH_LOG(INFO, "db_cluster", "initializing the embedded PostgreSQL cluster in %s", cluster_pgdata);
        if (run_as_owner(argv, logf) != 0) {
            gh_err_set(e, 500, "server_error", "initdb failed",
                       "initdb -D %s failed; see %s", cluster_pgdata, logf);
            goto fail;
        }
    }

    snprintf(bin2, sizeof(bin2), "%s/pg_ctl", gh_cfg.pg_bin_dir);
    if (cluster_running()) {
        /* nobody held the lock: left behind by a process that died, or run
         * by a gatehouse from before the lock.  serve takes it over once it
         * is up (db_cluster_take_over); until then, and for a CLI command,
         * it is left running as found. */
        GH_LOG(WARN, "db_cluster", "the embedded cluster is already running without an owner; using it");
        cluster_adopted = true;
        return 0;
    }
    snprintf(opts, sizeof(opts), "-c listen_addresses='' -c unix_socket_directories='%s' "
             "-c max_connections=200 -c fsync=on", cluster_sock);
    {
        char *argv[] = { bin2, "start", "-w", "-t", "60", "-D", cluster_pgdata, "-l", logf,
                         "-o", opts, NULL };
        if (run_as_owner(argv, logf) != 0) {
            start_failed(ver, logf, e);
            goto fail;
        }
    }
    cluster_started = true;
    GH_LOG(INFO, "db_cluster", "embedded PostgreSQL started (socket in %s)", cluster_sock);
    return 0;
fail:
    cluster_unlock();
    return -1;
}

const char *
db_cluster_socket_dir(void)
{
    return cluster_sock;
}

void
db_cluster_take_over(void)
{
    if (cluster_adopted && cluster_exclusive) {
        GH_LOG(INFO, "db_cluster", "took over the embedded cluster; it stops with this server");
        cluster_started = true;
    }
    cluster_adopted = false;
}

void
db_cluster_stop(void)
{
    char bin[PATH_MAX], logf[PATH_MAX];

    if (!cluster_started) {
        cluster_unlock();
        return;
    }
    snprintf(bin, sizeof(bin), "%s/pg_ctl", gh_cfg.pg_bin_dir);
    snprintf(logf, sizeof(logf), "%s/../postgresql.log", cluster_pgdata);
    char *argv[] = { bin, "stop", "-w", "-m", "fast", "-D", cluster_pgdata, NULL };
    if (run_as_owner(argv, logf) != 0)
        GH_LOG(WARN, "db_cluster", "pg_ctl stop failed");
    else
        GH_LOG(INFO, "db_cluster", "embedded PostgreSQL stopped");
    cluster_started = false;
    cluster_unlock();
}
