/*
 * web/metrics.c — Prometheus text exposition: request counts and latency
 * histograms by route and status, plus gauges other layers register.
 */
#include "web/web_int.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 512
#define NBUCKETS 12

static const double buckets[NBUCKETS] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05, 0.1, 0.25, 0.5, 1, 5 };

struct series {
    int      route;     /* -1 unmatched */
    int      status;
    uint64_t count;
    uint64_t bucket[NBUCKETS];
    double   sum;
};

struct gauge {
    const char *name, *help;
    long (*fn)(void);
};

static pthread_mutex_t mlock = PTHREAD_MUTEX_INITIALIZER;
static struct series series[MAX_SERIES];
static int nseries;
static struct gauge gauges[16];
static int ngauges;

void
web_metrics_register_gauge(const char *name, const char *help, long (*fn)(void))
{
    if (ngauges < (int)GH_ARRAY_LEN(gauges))
        gauges[ngauges++] = (struct gauge){ name, help, fn };
}

void
web_metrics_observe(int route, int status, int64_t dur_us)
{
    double secs = (double)dur_us / 1e6;
    struct series *s = NULL;

    pthread_mutex_lock(&mlock);
    for (int i = 0; i < nseries; i++)
        if (series[i].route == route && series[i].status == status) {
            s = &series[i];
            break;
        }
    if (s == NULL && nseries < MAX_SERIES) {
        s = &series[nseries++];
        s->route = route;
        s->status = status;
    }
    if (s) {
        s->count++;
        s->sum += secs;
        for (int b = 0; b < NBUCKETS; b++)
            if (secs <= buckets[b])
                s->bucket[b]++;
    }
    pthread_mutex_unlock(&mlock);
}

int
web_metrics_render(struct web_req *r)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    int rc;

    if (f == NULL)
        return web_reply(r, 500, "text/plain", "error\n", 6);
    pthread_mutex_lock(&mlock);
    fprintf(f, "# HELP gatehouse_http_requests_total HTTP requests by route pattern and status.\n"
               "# TYPE gatehouse_http_requests_total counter\n");
    for (int i = 0; i < nseries; i++)
        fprintf(f, "gatehouse_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n",
                web_router_pattern(series[i].route), series[i].status,
                (unsigned long)series[i].count);
    fprintf(f, "# HELP gatehouse_http_request_duration_seconds Request latency by route pattern and status.\n"
               "# TYPE gatehouse_http_request_duration_seconds histogram\n");
    for (int i = 0; i < nseries; i++) {
        const char *rt = web_router_pattern(series[i].route);
        for (int b = 0; b < NBUCKETS; b++)
            fprintf(f, "gatehouse_http_request_duration_seconds_bucket{route=\"%s\",status=\"%d\",le=\"%g\"} %lu\n",
                    rt, series[i].status, buckets[b], (unsigned long)series[i].bucket[b]);
        fprintf(f, "gatehouse_http_request_duration_seconds_bucket{route=\"%s\",status=\"%d\",le=\"+Inf\"} %lu\n",
                rt, series[i].status, (unsigned long)series[i].count);
        fprintf(f, "gatehouse_http_request_duration_seconds_sum{route=\"%s\",status=\"%d\"} %.6f\n",
                rt, series[i].status, series[i].sum);
        fprintf(f, "gatehouse_http_request_duration_seconds_count{route=\"%s\",status=\"%d\"} %lu\n",
                rt, series[i].status, (unsigned long)series[i].count);
    }
    pthread_mutex_unlock(&mlock);
    for (int g = 0; g < ngauges; g++)
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %ld\n", gauges[g].name, gauges[g].help,
                gauges[g].name, gauges[g].name, gauges[g].fn());
    fclose(f);
    rc = web_reply(r, 200, "text/plain; version=0.0.4", out, len);
    free(out);
    return rc;
}
