/*
 * authz/cimd.c — fetching Client ID Metadata Documents without stalling
 * the server threads.
 *
 * A client_id that is an https URL names a document that must be fetched
 * before a request naming it can be answered, and a fetch may take its
 * whole 5 s budget (a host that accepts and never answers).  So a handler
 * that looks a client up first calls authz_cimd_offload(): when the
 * document is neither cached (client.c, kind 'cimd') nor known to have
 * failed, the request is handed to a small set of fetch threads
 * (web_offload_begin: the connection waits without a server thread).
 * Requests naming the same URL share one fetch; when it is over, the fetch
 * thread runs each of them to the end, and they find the client in the
 * database, or the failure, which is remembered for a minute so a bad
 * client_id is not fetched again on every request.  At most CIMD_FETCHERS
 * documents are fetched at once and CIMD_QUEUE_MAX more wait; past that a
 * request is refused with 503 at once.
 *
 * The fetch: libcurl resolves the name (so the 5 s budget covers DNS), and
 * every address it is about to connect to is checked first
 * (CURLOPT_OPENSOCKETFUNCTION): private, loopback, link-local, CGNAT,
 * unspecified and multicast addresses are refused unless the development
 * setting allows them.  The address checked is the address connected to,
 * so DNS rebinding cannot slip an internal one in, and no proxy from the
 * environment can stand in between.  https only, no redirects, 5 KB.
 */
#include "authz/authz_int.h"
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define CIMD_TIMEOUT_MS   5000
#define CIMD_FETCHERS     4       /* documents fetched at once, at most */
#define CIMD_QUEUE_MAX    64      /* documents waiting for a fetch thread */
#define CIMD_FAIL_SECONDS 60      /* a failed fetch is not retried for this long */
#define CIMD_FAIL_ENTRIES 4096
#define CIMD_TTL_MIN      60
#define CIMD_TTL_MAX      86400
#define CIMD_TTL_DEFAULT  3600

/* ------------------------------------------------------------ the fetch */

struct xfer {
    struct authz_cimd_doc *d;
    bool too_big;
    bool refused;              /* an address was refused before connect */
    bool dev;
};

static size_t
fetch_write(char *p, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;

    if (x->d->len + len > AUTHZ_CIMD_MAX_BYTES) {
        x->too_big = true;
        return 0;                      /* aborts the transfer */
    }
    memcpy(x->d->buf + x->d->len, p, len);
    x->d->len += len;
    x->d->buf[x->d->len] = '\0';
    return len;
}

static size_t
fetch_header(char *p, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    char line[256];

    if (len >= 14 && len < sizeof(line) && !strncasecmp(p, "cache-control:", 14)) {
        char *m;
        memcpy(line, p, len);
        line[len] = '\0';
        m = strcasestr(line, "max-age=");
        if (m)
            x->d->max_age = strtol(m + 8, NULL, 10);
        if (strcasestr(line, "no-store") || strcasestr(line, "no-cache"))
            x->d->max_age = 0;         /* clamped up to the minimum */
    }
    return len;
}


/* The IPv4 address embedded at b (4 bytes) is private. */
static bool
v4_private(const unsigned char *b)
{
    struct sockaddr_in v4 = { .sin_family = AF_INET };

    memcpy(&v4.sin_addr, b, 4);
    return authz_addr_private((struct sockaddr *)&v4);
}

/* Private, loopback, link-local, unspecified, multicast, CGNAT, benchmarking;
 * in IPv6 also site-local, and an IPv4 address carried inside one
 * (v4-mapped, v4-compatible, NAT64, 6to4) is judged as that address. */
bool
authz_addr_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xa9fe ||
               (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 22) == (100 << 2 | 1) ||
               (a >> 17) == (198 << 7 | 18 >> 1) || (a >> 28) >= 0xe;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char zero[16];
        static const unsigned char nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
        if (!memcmp(b, zero, 15))
            return true;                                  /* :: and ::1 */
        if (b[0] == 0xfe && (b[1] & 0x80) == 0x80)
            return true;                                  /* link-local, site-local */
        if ((b[0] & 0xfe) == 0xfc || b[0] == 0xff)
            return true;                                  /* ULA, multicast */
        if (!memcmp(b, zero, 10) && ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0)))
            return v4_private(b + 12);                    /* v4-mapped, v4-compatible */
        if (!memcmp(b, nat64, 12))
            return v4_private(b + 12);                    /* NAT64 64:ff9b::/96 */
        if (!memcmp(b, nat64, 4) && b[4] == 0 && b[5] == 1)
            return true;                                  /* local-use NAT64 64:ff9b:1::/48 */
        if (b[0] == 0x20 && b[1] == 0x02)
            return v4_private(b + 2);                     /* 6to4 */
        return false;
    }
    return true;
}

/* Called with each address curl is about to connect to, before anything
 * is sent: the one place the address rule is enforced. */
static curl_socket_t
open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct xfer *x = ctx;

    if (purpose != CURLSOCKTYPE_IPCXN || (!x->dev && authz_addr_private(&addr->addr))) {
        x->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int
authz_cimd_fetch(const char *url, struct authz_cimd_doc *d, struct gh_err *e)
{
    struct xfer x = { .d = d, .dev = gh_cfg.dev_allow_private_cimd };
    struct curl_slist *hdrs = NULL;
    CURL *cu = NULL;
    CURLcode cc;
    long status = 0;
    int rc = -1;

    d->len = 0;
    d->buf[0] = '\0';
    pthread_once(&curl_once, curl_init_once);
    hdrs = curl_slist_append(NULL, "Accept: application/json");
    cu = curl_easy_init();
    if (cu == NULL || hdrs == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "cimd: curl init");
        goto out;
    }
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, x.dev ? "http,https" : "https");
    curl_easy_setopt(cu, CURLOPT_PROXY, "");             /* no proxy from the environment */
    curl_easy_setopt(cu, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(cu, CURLOPT_OPENSOCKETDATA, &x);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(cu, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)CIMD_TIMEOUT_MS);   /* DNS included */
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_MAXFILESIZE, (long)AUTHZ_CIMD_MAX_BYTES);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, fetch_header);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(cu, CURLOPT_USERAGENT, "Gatehouse");
    cc = curl_easy_perform(cu);
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK && x.refused) {
        gh_err_set(e, 400, "invalid_client", "The client metadata document must be on a public address.",
                   "cimd: private address refused before connect (curl %d)", (int)cc);
        goto out;
    }
    if (x.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        gh_err_set(e, 400, "invalid_client", "The client metadata document is larger than 5 KB.", "cimd: too big");
        goto out;
    }
    if (cc != CURLE_OK || status != 200) {
        gh_err_set(e, 400, "invalid_client", "The client metadata document could not be fetched.",
                   "cimd: curl %d status %ld", (int)cc, status);
        goto out;
    }
    rc = 0;
out:
    if (cu)
        curl_easy_cleanup(cu);
    curl_slist_free_all(hdrs);
    return rc;
}

/* ------------------------------------------------------------ the cache
 * Fetched documents are checked and cached in oauth_clients (kind 'cimd'). */

bool
authz_cimd_url_ok(const char *id)
{
    struct authz_uri u;

    /* the client_id must carry a path (the document), no fragment */
    return id && authz_client_id_ok(id, strlen(id)) && !strchr(id, '#') && authz_uri_parse(id, &u) && u.authority &&
           (!strcmp(u.scheme, "https") || (gh_cfg.dev_allow_private_cimd && !strcmp(u.scheme, "http"))) &&
           u.rest[0] == '/' && u.rest[1] != '\0';
}

/* The cache is bounded: past oauth_cimd_cache_max documents that nobody
 * holds a grant for, the least recently fetched go (a caller can name any
 * number of URLs at /oauth/token).  Runs only after a fetch, so rarely. */
static void
cimd_cache_trim(struct gh_arena *a, const char *keep)
{
    struct gh_err e = {0};
    char max[24];

    snprintf(max, sizeof(max), "%ld", gh_cfg.oauth_cimd_cache_max - 1);
    db_query(a, &e,
        "DELETE FROM oauth_clients WHERE client_id IN ("
        " SELECT client_id FROM oauth_clients c WHERE kind = 'cimd' AND client_id <> $1"
        "   AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = c.client_id)"
        " ORDER BY updated_at DESC OFFSET $2::int)", 2, keep, max);
    if (gh_err_isset(&e))
        GH_LOG(WARN, "cimd_cache_trim", "%s", e.detail);
}

/* Fresh in the cache for at least a few more seconds, so that a request
 * told "no fetch needed" still finds it when it gets there.  A database
 * error says true: the handler meets it again and reports it. */
bool
authz_cimd_cached(struct gh_arena *a, const char *client_id)
{
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e, "SELECT 1 FROM oauth_clients WHERE client_id = $1 AND kind = 'cimd'"
                                    " AND cache_expires_at > now() + interval '10 seconds'", 1, client_id);

    return res == NULL || PQntuples(res) == 1;
}

int
authz_cimd_store(struct gh_arena *a, const char *client_id, struct gh_err *e)
{
    struct authz_cimd_doc *d = gh_arena_alloc(a, sizeof(*d));
    json_t *doc, *meta;
    json_error_t je;
    PGresult *res;
    char ttl[24], *meta_s;
    const char *name;

    if (d == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "cimd: no memory");
    d->max_age = CIMD_TTL_DEFAULT;
    if (authz_cimd_fetch(client_id, d, e) < 0)
        return -1;
    doc = gh_arena_json(a, json_loadb(d->buf, d->len, 0, &je));
    if (!json_is_object(doc))
        return gh_err_set(e, 400, "invalid_client", "The client metadata document is not a JSON object.", NULL);
    if (!gh_json_str(doc, "client_id") || strcmp(gh_json_str(doc, "client_id"), client_id))
        return gh_err_set(e, 400, "invalid_client",
                          "The client metadata document's client_id does not equal its URL.", NULL);
    meta = gh_arena_json(a, authz_client_metadata_check(doc, true, e));
    if (meta == NULL)
        return -1;
    json_object_set_new(meta, "client_id", json_string(client_id));
    meta_s = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    gh_arena_defer(a, free, meta_s);
    name = gh_json_str(meta, "client_name");
    snprintf(ttl, sizeof(ttl), "%ld", d->max_age < CIMD_TTL_MIN ? CIMD_TTL_MIN
                                    : d->max_age > CIMD_TTL_MAX ? CIMD_TTL_MAX : d->max_age);
    res = db_query(a, e,
        "INSERT INTO oauth_clients (client_id, kind, client_name, metadata, auth_method, cache_expires_at)"
        " VALUES ($1, 'cimd', $2, $3::jsonb, 'none', now() + make_interval(secs => $4::int))"
        " ON CONFLICT (client_id) DO UPDATE SET client_name = $2, metadata = $3::jsonb, updated_at = now(),"
        "   cache_expires_at = now() + make_interval(secs => $4::int)"
        " WHERE oauth_clients.kind = 'cimd'"
        " RETURNING 1", 4, client_id, name, meta_s, ttl);
    if (res == NULL)
        return -1;
    if (PQntuples(res) != 1)
        return gh_err_set(e, 400, "invalid_client", "Unknown client.", "cimd url collides with a dcr id");
    GH_LOG(INFO, "cimd_fetched", "client metadata document fetched and cached");
    cimd_cache_trim(a, client_id);
    return 0;
}

/* ------------------------------------------------------------ remembered failures */

static struct gh_cache *failures;
static pthread_once_t failures_once = PTHREAD_ONCE_INIT;
static void failures_init(void) { failures = gh_cache_new(CIMD_FAIL_ENTRIES, NULL); }

static void
failure_remember(const char *url, const struct gh_err *err)
{
    char status[8];
    const char *vals[3] = { status, err->code, err->msg };

    pthread_once(&failures_once, failures_init);
    snprintf(status, sizeof(status), "%d", err->status);
    gh_cache_put(failures, url, vals, 3, gh_time_s() + CIMD_FAIL_SECONDS, gh_cache_gen(failures));
}

/* true (and e set, when given) if fetching url failed less than a minute ago */
static bool
failure_known(struct gh_arena *a, const char *url, struct gh_err *e)
{
    char **v;
    int n = 0;

    pthread_once(&failures_once, failures_init);
    v = gh_cache_get(failures, a, url, &n);
    if (v == NULL || n != 3 || !v[0] || !v[1] || !v[2])
        return false;
    if (e)
        gh_err_set(e, atoi(v[0]), v[1], v[2], "cimd: failed less than %d s ago, not fetched again",
                   CIMD_FAIL_SECONDS);
    return true;
}

/* ------------------------------------------------------------ fetch threads
 * (a gh_workq of CIMD_FETCHERS; the jobs list joins requests for one URL) */

struct waiter {
    struct web_req *r;
    web_handler_fn  fn;
    struct waiter  *next;
};

/* One URL to fetch, and the requests waiting for it. */
struct job {
    char          *url;
    struct waiter *waiters, **wtail;
    struct job    *next;
};

/* The requests of a finished fetch run on its thread with this set. */
struct outcome {
    const char   *url;
    struct gh_err err;          /* status 0: stored in the database */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs, **jobs_tail = &jobs;   /* queued and running, oldest first */
static int nqueued;
static struct gh_workq *fetchers;               /* started with the first fetch */
static bool stopping;
static __thread const struct outcome *resumed;

static void
job_run(void *ctx)
{
    struct job *j = ctx;
    struct gh_arena *a;

    pthread_mutex_lock(&lock);
    nqueued--;
    pthread_mutex_unlock(&lock);
    a = gh_arena_new(0);
    struct outcome o = { .url = j->url };
    struct waiter *w, *next;
    struct job **p;

    /* the first waiter was added with the job and stays: its id names the fetch in the log */
    gh_log_context(web_request_id(j->waiters->r), "cimd_fetch");
    if (a == NULL)
        gh_err_set(&o.err, 500, "server_error", "internal error", "cimd: no memory");
    else if (authz_cimd_store(a, j->url, &o.err) < 0 && o.err.status < 500)
        failure_remember(j->url, &o.err);
    if (o.err.status)
        GH_LOG(INFO, "cimd_failed", "%s", o.err.detail[0] ? o.err.detail : o.err.msg);
    pthread_mutex_lock(&lock);
    for (p = &jobs; *p != j; p = &(*p)->next)
        ;
    *p = j->next;
    if (jobs_tail == &j->next)
        jobs_tail = p;
    w = j->waiters;             /* nobody can join any more */
    pthread_mutex_unlock(&lock);

    resumed = &o;
    for (; w; w = next) {
        struct web_req *r = w->r;
        next = w->next;         /* w lives in r's arena */
        gh_log_context(web_request_id(r), web_route_pattern(r));
        w->fn(r);
        web_offload_end(r);     /* the last use of r */
    }
    resumed = NULL;
    gh_log_context(NULL, NULL);
    gh_arena_free(a);
    free(j->url);
    free(j);
}

bool
authz_cimd_offload(struct web_req *r, const char *client_id, web_handler_fn fn)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    struct waiter *w;
    struct job *j;
    bool posted = false;

    if (resumed != NULL || !authz_cimd_url_ok(client_id))
        return false;           /* after its fetch, on the fetch thread; or not a document */
    if (authz_cimd_cached(a, client_id) || failure_known(a, client_id, NULL))
        return false;           /* answered without a fetch */
    if (authz_rate_check(r, "cimd", gh_cfg.rate_cimd_per_min, &e) < 0) {
        /* fresh URLs from one address would fill the fetch queue for
         * everyone: each such request counts before it may start one */
        web_reply_err(r, &e);
        return true;
    }
    w = gh_arena_alloc(a, sizeof(*w));
    if (w == NULL)
        return false;
    w->r = r;
    w->fn = fn;
    pthread_mutex_lock(&lock);
    for (j = jobs; j && strcmp(j->url, client_id); j = j->next)
        ;
    if (j == NULL && nqueued < CIMD_QUEUE_MAX && !stopping) {
        if (fetchers == NULL)
            fetchers = gh_workq_start(CIMD_FETCHERS);
        if (fetchers && (j = calloc(1, sizeof(*j))) != NULL && (j->url = strdup(client_id)) == NULL) {
            free(j);
            j = NULL;
        }
        /* posted under the lock: job_run takes it first thing, so its
         * waiters are all added before it looks at them */
        if (j && gh_workq_post(fetchers, job_run, j) < 0) {
            free(j->url);
            free(j);
            j = NULL;
        }
        if (j) {
            j->wtail = &j->waiters;
            *jobs_tail = j;
            jobs_tail = &j->next;
            nqueued++;
        }
    }
    if (j) {
        web_offload_begin(r);   /* before the fetch thread can see w */
        *j->wtail = w;
        j->wtail = &w->next;
        posted = true;
    }
    pthread_mutex_unlock(&lock);
    return posted;
}

int
authz_cimd_outcome(struct gh_arena *a, const char *url, struct gh_err *e)
{
    if (resumed != NULL && !strcmp(resumed->url, url)) {
        if (resumed->err.status == 0)
            return 0;
        gh_err_set(e, resumed->err.status, resumed->err.code, resumed->err.msg, "%s", resumed->err.detail);
        return -1;
    }
    if (failure_known(a, url, e))
        return -1;
    /* the queue was full (or the request did not pass authz_cimd_offload) */
    gh_err_set(e, 503, "temporarily_unavailable",
               "Too many client metadata documents are being fetched. Try again shortly.",
               "cimd: no fetch started for this request");
    e->retry_after = 5;
    return -1;
}

void
authz_cimd_stop(void)
{
    struct gh_workq *q;

    pthread_mutex_lock(&lock);
    stopping = true;            /* nothing is posted from here on */
    q = fetchers;
    pthread_mutex_unlock(&lock);
    gh_workq_stop(q);           /* runs what was queued, then joins */
    gh_workq_free(q);
    pthread_mutex_lock(&lock);
    fetchers = NULL;
    pthread_mutex_unlock(&lock);
}
