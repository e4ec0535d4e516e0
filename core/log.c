/*
 * core/log.c — JSON lines on stderr.
 *
 * The request id and route of the request being served on this thread are
 * attached to every line.  Lines are written with one write(2) so
 * concurrent threads never interleave.
 */
#include "core/core.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum gh_log_level log_min = GH_LOG_INFO;
static _Thread_local char log_rid[40];
static _Thread_local char log_route[96];

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
gh_log_init(enum gh_log_level min)
{
    log_min = min;
}

void
gh_log_context(const char *request_id, const char *route)
{
    snprintf(log_rid, sizeof(log_rid), "%s", request_id ? request_id : "");
    snprintf(log_route, sizeof(log_route), "%s", route ? route : "");
}

const char *
gh_log_request_id(void)
{
    return log_rid;
}

static void
emit(enum gh_log_level lvl, const char *event, const char *msg, json_t *fields)
{
    json_t *o = fields && json_is_object(fields) ? fields : json_object();
    struct timespec ts;
    struct tm tm;
    char tbuf[96];
    char *line;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tbuf, sizeof(tbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    json_object_set_new(o, "time", json_string(tbuf));
    json_object_set_new(o, "level", json_string(level_names[lvl]));
    json_object_set_new(o, "event", json_string(event));
    if (log_rid[0])
        json_object_set_new(o, "rid", json_string(log_rid));
    if (log_route[0] && !json_object_get(o, "route"))
        json_object_set_new(o, "route", json_string(log_route));
    if (msg && msg[0])
        json_object_set_new(o, "msg", json_string(msg));
    line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (line) {
        size_t n = strlen(line);
        char *buf = malloc(n + 2);
        if (buf) {
            memcpy(buf, line, n);
            buf[n] = '\n';
            if (write(STDERR_FILENO, buf, n + 1) < 0) {
                /* nowhere left to report it */
            }
            free(buf);
        }
        free(line);
    }
    json_decref(o);
    if (fields && o != fields)
        json_decref(fields);
}

void
gh_logf(enum gh_log_level lvl, const char *event, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (lvl < log_min)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(lvl, event, msg, NULL);
}

void
gh_log_json(enum gh_log_level lvl, const char *event, json_t *fields)
{
    if (lvl < log_min) {
        json_decref(fields);
        return;
    }
    emit(lvl, event, NULL, fields);
}
