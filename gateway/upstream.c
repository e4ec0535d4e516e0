/*
 * gateway/upstream.c — the upstream HTTP client: one I/O thread runs every
 * upstream transfer on a curl multi handle (no thread per call), an
 * incremental SSE parser hands each event on as it arrives, and a small
 * worker pool runs the blocking steps that I/O callbacks must not.
 *
 * Commands reach the I/O thread through a locked queue and an eventfd; a
 * transfer's callbacks run on the I/O thread only.  The thread drives curl
 * with curl_multi_socket_action() on its own epoll set, so an event costs
 * the work of the one transfer it concerns (curl_multi_perform() would
 * visit, and poll, every transfer in progress each time).
 * A transfer has two references: the caller's (gw_up_release) and the I/O
 * thread's (dropped after on_done), so a cancel racing the end is safe.
 */
#include "gateway/mcp_int.h"
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BODY_MAX ((size_t)16 << 20)     /* one upstream JSON answer */
#define EASY_SPARE 128                  /* reusable easy handles kept */

/* ---------------------------------------------------------------- SSE parser */

static int
grow(char **buf, size_t *cap, size_t need, size_t max)
{
    size_t nc;
    char *nb;

    if (need <= *cap)
        return 0;
    if (need > max)
        return -1;
    nc = *cap ? *cap : 256;
    while (nc < need)
        nc *= 2;
    if (nc > max)
        nc = max;
    nb = realloc(*buf, nc);
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

/* One complete line (without its terminator). */
static int
sse_line(struct gw_sse *p, gw_sse_event_fn fn, void *ctx)
{
    const char *l = p->line ? p->line : "", *v;
    size_t n = p->line_len, fl, vl;
    size_t max = p->max ? p->max : BODY_MAX;

    if (n == 0) {                       /* blank line: dispatch */
        if (p->data_len > 0) {
            p->data_len--;              /* the last data line's \n */
            p->data[p->data_len] = '\0';
            fn(ctx, p->event[0] ? p->event : "message", p->data, p->data_len);
        }
        p->data_len = 0;
        p->event[0] = '\0';
        return 0;
    }
    if (l[0] == ':')
        return 0;                       /* comment */
    v = memchr(l, ':', n);
    fl = v ? (size_t)(v - l) : n;
    if (v) {
        v++;
        if (v < l + n && *v == ' ')
            v++;
        vl = (size_t)(l + n - v);
    } else {
        v = "";
        vl = 0;
    }
    if (fl == 4 && !memcmp(l, "data", 4)) {
        if (grow(&p->data, &p->data_cap, p->data_len + vl + 2, max + 2) < 0)
            return -1;
        memcpy(p->data + p->data_len, v, vl);
        p->data_len += vl;
        p->data[p->data_len++] = '\n';
        p->data[p->data_len] = '\0';
    } else if (fl == 5 && !memcmp(l, "event", 5)) {
        size_t k = vl < sizeof(p->event) - 1 ? vl : sizeof(p->event) - 1;
        memcpy(p->event, v, k);
        p->event[k] = '\0';
    }
    /* id and retry: we neither resume nor reconnect by the upstream's clock */
    return 0;
}

int
gw_sse_feed(struct gw_sse *p, const char *buf, size_t n, gw_sse_event_fn fn, void *ctx)
{
    size_t max = p->max ? p->max : BODY_MAX;

    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];

        if (p->cr) {
            p->cr = false;
            if (ch == '\n')
                continue;               /* \r\n: the \r ended the line */
        }
        if (ch == '\r' || ch == '\n') {
            p->cr = ch == '\r';
            if (sse_line(p, fn, ctx) < 0)
                return -1;
            p->line_len = 0;
            continue;
        }
        if (grow(&p->line, &p->line_cap, p->line_len + 2, max + 64) < 0)
            return -1;
        p->line[p->line_len++] = ch;
    }
    return 0;
}

void
gw_sse_free(struct gw_sse *p)
{
    free(p->line);
    free(p->data);
    memset(p, 0, sizeof(*p));
}

/* ---------------------------------------------------------------- worker pools */

#define NWORKERS  8       /* short blocking steps: handshakes, list fetches */
#define NOFFLOAD 16       /* requests whose handling may block (methods.c) */

/* Two pools, so that a request running on the offload pool can wait for
 * steps it posts to the worker pool without ever waiting on itself. */
static struct gh_workq *wk, *ofl;

int
gw_work_post(gw_work_fn fn, void *ctx)
{
    return gh_workq_post(__atomic_load_n(&wk, __ATOMIC_ACQUIRE), fn, ctx);
}

int
gw_offload_post(gw_work_fn fn, void *ctx)
{
    return gh_workq_post(__atomic_load_n(&ofl, __ATOMIC_ACQUIRE), fn, ctx);
}

/* ---------------------------------------------------------------- transfers */

struct gw_up_xfer {
    CURL               *easy;
    struct curl_slist  *hdrs;
    char               *body;
    gw_up_msg_fn        on_message;
    gw_up_done_fn       on_done;
    void               *ctx;
    /* response */
    long                status;
    char               *session_id;
    bool                sse, typed;
    char               *json;  size_t json_len, json_cap;
    struct gw_sse       sse_p;
    bool                too_big, timed_out, failed, connect_failed, cancelled;
    bool                sent;       /* the request went out (whole or in part) */
    char                error[160];
    int                 refs;
    struct gw_up_xfer  *qnext;      /* start queue */
    struct gw_up_xfer  *cnext;      /* cancel queue */
    struct gw_up_xfer  *anext, *aprev;  /* active list (I/O thread) */
    bool                queued_cancel;
    bool                active;     /* in the multi handle (I/O thread only) */
};

static struct {
    pthread_mutex_t    lock;
    CURLM             *multi;
    int                epfd;        /* curl's sockets and the wake-up eventfd */
    int                wakefd;
    long long          timer_at_us; /* curl's timeout, -1: none (I/O thread) */
    pthread_t          th;
    bool               running, stop;
    struct gw_up_xfer *start_q;     /* to add */
    struct gw_up_xfer *cancel_q;    /* to remove */
    struct gw_up_xfer *active;      /* in the multi handle */
    long               inflight;
    long long          next_id;
    CURL              *spare[EASY_SPARE];   /* finished handles, reset, for reuse */
    int                nspare;
} io = { .lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .wakefd = -1 };

/* An easy handle keeps its buffers between transfers: a finished one is
 * reset (every option back to its default, nothing of the last request
 * kept but the allocations) and handed to the next transfer. */
static CURL *
easy_get(void)
{
    CURL *h = NULL;

    pthread_mutex_lock(&io.lock);
    if (io.nspare > 0)
        h = io.spare[--io.nspare];
    pthread_mutex_unlock(&io.lock);
    return h ? h : curl_easy_init();
}

static void
easy_put(CURL *h)
{
    curl_easy_reset(h);
    pthread_mutex_lock(&io.lock);
    if (io.nspare < EASY_SPARE && !io.stop) {
        io.spare[io.nspare++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&io.lock);
    if (h)
        curl_easy_cleanup(h);
}

static void
xfer_unref(struct gw_up_xfer *x)
{
    if (__atomic_sub_fetch(&x->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->body);
    free(x->session_id);
    free(x->json);
    gw_sse_free(&x->sse_p);
    free(x);
}

static void
deliver(struct gw_up_xfer *x, const char *data, size_t len)
{
    json_error_t je;
    json_t *m;

    if (x->on_message == NULL)
        return;                         /* the caller wants no messages */
    m = json_loadb(data, len, 0, &je);
    if (m == NULL) {
        GH_LOG(WARN, "gw_upstream", "upstream sent a message that is not JSON (%zu bytes)", len);
        return;
    }
    if (json_is_array(m)) {             /* a batch from a 2025-03-26 upstream */
        size_t i;
        json_t *v;
        json_array_foreach(m, i, v)
            if (json_is_object(v))
                x->on_message(x, v, x->ctx);
    } else if (json_is_object(m)) {
        x->on_message(x, m, x->ctx);
    }
    json_decref(m);
}

static void
on_sse_event(void *ctx, const char *event, const char *data, size_t len)
{
    struct gw_up_xfer *x = ctx;

    if (strcmp(event, "message") || len == 0)
        return;
    deliver(x, data, len);
}

static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct gw_up_xfer *x = ud;
    size_t n = size * nmemb;

    if (!x->typed) {
        char *ct = NULL;
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        x->sse = ct && !strncasecmp(ct, "text/event-stream", 17);
        x->typed = true;
    }
    if (x->sse) {
        if (gw_sse_feed(&x->sse_p, ptr, n, on_sse_event, x) < 0) {
            x->too_big = true;
            return 0;
        }
        return n;
    }
    if (grow(&x->json, &x->json_cap, x->json_len + n + 1, BODY_MAX + 1) < 0) {
        x->too_big = true;
        return 0;
    }
    memcpy(x->json + x->json_len, ptr, n);
    x->json_len += n;
    x->json[x->json_len] = '\0';
    return n;
}

static size_t
on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct gw_up_xfer *x = ud;
    size_t n = size * nitems, k = 14;   /* strlen("mcp-session-id") */

    if (n > k + 1 && !strncasecmp(buf, "mcp-session-id", k) && buf[k] == ':') {
        const char *v = buf + k + 1;
        size_t vl = n - k - 1;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        free(x->session_id);
        x->session_id = strndup(v, vl);
    }
    return n;
}

static void
io_wake(void)
{
    uint64_t one = 1;

    if (write(io.wakefd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is full, the thread has a wake-up pending */
    }
}

struct gw_up_xfer *
gw_up_start(const struct gw_up_req *rq)
{
    struct gw_up_xfer *x = calloc(1, sizeof(*x));
    const char *m = rq->method ? rq->method : "POST";

    if (x == NULL)
        return NULL;
    x->refs = 2;
    x->on_message = rq->on_message;
    x->on_done = rq->on_done;
    x->ctx = rq->ctx;
    x->easy = easy_get();
    if (x->easy == NULL)
        goto fail;
    for (int i = 0; i < rq->nheaders; i++) {
        char *h;
        struct curl_slist *nl;
        /* a header value is one line: refuse what would split it */
        if (strpbrk(rq->headers[i].name, "\r\n:") || strpbrk(rq->headers[i].value, "\r\n"))
            continue;
        if (asprintf(&h, "%s: %s", rq->headers[i].name, rq->headers[i].value) < 0)
            goto fail;
        nl = curl_slist_append(x->hdrs, h);
        gh_wipe(h, strlen(h));
        free(h);
        if (nl == NULL)
            goto fail;
        x->hdrs = nl;
    }
    curl_easy_setopt(x->easy, CURLOPT_URL, rq->url);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, gh_cfg.upstream_connect_timeout_ms);
    if (rq->timeout_ms > 0)
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "gatehouse-gateway");
    curl_easy_setopt(x->easy, CURLOPT_ACCEPT_ENCODING, "");
    if (!strcmp(m, "POST")) {
        x->body = strdup(rq->body ? rq->body : "");
        if (x->body == NULL)
            goto fail;
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
    } else if (strcmp(m, "GET")) {
        curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, m);
    }
    pthread_mutex_lock(&io.lock);
    if (!io.running || io.stop) {
        pthread_mutex_unlock(&io.lock);
        goto fail;
    }
    x->qnext = io.start_q;
    io.start_q = x;
    io.inflight++;
    pthread_mutex_unlock(&io.lock);
    io_wake();
    return x;
fail:
    x->refs = 1;
    xfer_unref(x);
    return NULL;
}

void
gw_up_cancel(struct gw_up_xfer *x)
{
    if (x == NULL)
        return;
    pthread_mutex_lock(&io.lock);
    if (!io.running || io.stop) {
        /* stopped: every transfer has ended already */
        pthread_mutex_unlock(&io.lock);
        return;
    }
    if (!x->queued_cancel) {
        struct gw_up_xfer **p;
        x->queued_cancel = true;
        __atomic_add_fetch(&x->refs, 1, __ATOMIC_ACQ_REL);   /* the queue's */
        for (p = &io.cancel_q; *p; p = &(*p)->cnext)
            ;
        *p = x;
    }
    pthread_mutex_unlock(&io.lock);
    io_wake();
}

void gw_up_release(struct gw_up_xfer *x) { if (x) xfer_unref(x); }
long gw_up_status(const struct gw_up_xfer *x) { return x->status; }
const char *gw_up_session_id(const struct gw_up_xfer *x) { return x->session_id; }
bool gw_up_timed_out(const struct gw_up_xfer *x) { return x->timed_out; }
bool gw_up_failed(const struct gw_up_xfer *x) { return x->failed; }
bool gw_up_connect_failed(const struct gw_up_xfer *x) { return x->connect_failed; }
bool gw_up_sent(const struct gw_up_xfer *x) { return x->sent; }
const char *gw_up_error(const struct gw_up_xfer *x) { return x->error; }
long gw_up_inflight(void) { return __atomic_load_n(&io.inflight, __ATOMIC_RELAXED); }

json_t *
gw_up_next_id(void)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "gh-%lld", __atomic_add_fetch(&io.next_id, 1, __ATOMIC_RELAXED));
    return json_string(buf);
}

/* On the I/O thread: the transfer ended (or was cancelled). */
static void
finish(struct gw_up_xfer *x, CURLcode rc)
{
    if (x->active) {
        if (x->aprev)
            x->aprev->anext = x->anext;
        else
            io.active = x->anext;
        if (x->anext)
            x->anext->aprev = x->aprev;
        curl_multi_remove_handle(io.multi, x->easy);
    }
    x->active = false;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    {
        long req_bytes = 0;
        curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &req_bytes);
        x->sent = req_bytes > 0;
    }
    if (x->cancelled) {
        snprintf(x->error, sizeof(x->error), "cancelled");
        x->failed = x->status == 0;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        x->timed_out = true;
        x->connect_failed = x->status == 0;
        snprintf(x->error, sizeof(x->error), "%s",
                 x->status ? "timed out" : "timed out connecting");
    } else if (x->too_big) {
        snprintf(x->error, sizeof(x->error), "answer too large");
    } else if (rc != CURLE_OK) {
        x->failed = true;
        x->connect_failed = x->status == 0;
        snprintf(x->error, sizeof(x->error), "%s",
                 x->status ? "connection broke" : "unreachable");
    } else if (!x->sse && x->json_len > 0 && x->status >= 200 && x->status < 300) {
        deliver(x, x->json, x->json_len);
    }
    if (!x->sse && x->json_len > 0 && x->status >= 400)
        deliver(x, x->json, x->json_len);   /* a JSON-RPC error body */
    if (x->on_done)
        x->on_done(x, x->ctx);
    /* the handle is done with (its results are copied out): free it now,
     * not whenever the last owner lets go */
    easy_put(x->easy);
    x->easy = NULL;
    __atomic_sub_fetch(&io.inflight, 1, __ATOMIC_RELAXED);
    xfer_unref(x);
}

/* curl's socket callback: keep the epoll set to what curl waits for (a
 * socket curl has assigned a non-NULL pointer to is in the set).  It never
 * returns an error: curl would then fail the whole multi handle, every
 * transfer of every connector; a socket that cannot be watched costs only
 * its own transfer, which ends at its timeout. */
static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp)
{
    struct epoll_event ev = { .data.fd = fd };
    int op = sockp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

    (void)easy;
    (void)ud;
    if (what == CURL_POLL_REMOVE) {
        if (sockp) {
            (void)epoll_ctl(io.epfd, EPOLL_CTL_DEL, fd, NULL);
            curl_multi_assign(io.multi, fd, NULL);
        }
        return 0;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (epoll_ctl(io.epfd, op, fd, &ev) < 0) {
        /* the set and our mark disagree: do what the set needs */
        int again = errno == EEXIST ? EPOLL_CTL_MOD : errno == ENOENT ? EPOLL_CTL_ADD : -1;
        if (again < 0 || epoll_ctl(io.epfd, again, fd, &ev) < 0) {
            GH_LOG(ERROR, "gw_upstream", "cannot watch an upstream socket (epoll_ctl: %s)", strerror(errno));
            return 0;
        }
    }
    curl_multi_assign(io.multi, fd, &io);   /* any non-NULL mark */
    return 0;
}

/* curl's timer callback: when curl next wants CURL_SOCKET_TIMEOUT. */
static int
on_timer(CURLM *multi, long timeout_ms, void *ud)
{
    (void)multi;
    (void)ud;
    io.timer_at_us = timeout_ms < 0 ? -1 : gh_now_us() + timeout_ms * 1000LL;
    return 0;
}

static void
reap(void)
{
    CURLMsg *msg;
    int nq;

    while ((msg = curl_multi_info_read(io.multi, &nq)) != NULL) {
        struct gw_up_xfer *x;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(x, msg->data.result);
    }
}

static void *
io_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct gw_up_xfer *start, *cancel;
        struct epoll_event ev[64];
        int running, n, wait_ms = 1000;
        bool stop;

        pthread_mutex_lock(&io.lock);
        start = io.start_q;
        io.start_q = NULL;
        cancel = io.cancel_q;
        io.cancel_q = NULL;
        stop = io.stop;
        pthread_mutex_unlock(&io.lock);

        while (start) {
            struct gw_up_xfer *nx = start->qnext;
            start->qnext = NULL;
            if (curl_multi_add_handle(io.multi, start->easy) != CURLM_OK) {
                start->failed = true;
                finish(start, CURLE_FAILED_INIT);
            } else {
                start->active = true;
                start->aprev = NULL;
                start->anext = io.active;
                if (io.active)
                    io.active->aprev = start;
                io.active = start;
            }
            start = nx;
        }
        while (cancel) {
            struct gw_up_xfer *nx = cancel->cnext;
            cancel->cnext = NULL;
            if (cancel->active) {
                cancel->cancelled = true;
                finish(cancel, CURLE_ABORTED_BY_CALLBACK);
            }
            xfer_unref(cancel);          /* the queue's reference */
            cancel = nx;
        }
        if (stop)
            break;
        if (io.timer_at_us >= 0) {
            long long left = io.timer_at_us - gh_now_us();
            wait_ms = left <= 0 ? 0 : (int)((left + 999) / 1000);
            if (wait_ms > 1000)
                wait_ms = 1000;
        }
        n = epoll_wait(io.epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), wait_ms);
        for (int i = 0; i < n; i++) {
            int mask = 0;
            if (ev[i].data.fd == io.wakefd) {
                uint64_t v;
                if (read(io.wakefd, &v, sizeof(v)) < 0) {
                    /* EAGAIN: another read took it */
                }
                continue;
            }
            if (ev[i].events & EPOLLIN)
                mask |= CURL_CSELECT_IN;
            if (ev[i].events & EPOLLOUT)
                mask |= CURL_CSELECT_OUT;
            if (ev[i].events & (EPOLLERR | EPOLLHUP))
                mask |= CURL_CSELECT_ERR;
            curl_multi_socket_action(io.multi, ev[i].data.fd, mask, &running);
        }
        if (io.timer_at_us >= 0 && gh_now_us() >= io.timer_at_us) {
            io.timer_at_us = -1;
            curl_multi_socket_action(io.multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        reap();
    }
    return NULL;
}

int
gw_up_init(struct gh_err *e)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return gh_err_set(e, 500, "server_error", "", "curl_global_init failed");
    io.multi = curl_multi_init();
    if (io.multi == NULL)
        return gh_err_set(e, 500, "server_error", "", "curl_multi_init failed");
    curl_multi_setopt(io.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    /* keep idle connections for reuse: by default the cache holds only
     * 4x the transfers in progress, so a dip in load closes connections a
     * moment later opened again (a new upstream connection per ~20 calls) */
    curl_multi_setopt(io.multi, CURLMOPT_MAXCONNECTS, 256L);
    curl_multi_setopt(io.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(io.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    io.timer_at_us = -1;
    io.epfd = epoll_create1(EPOLL_CLOEXEC);
    io.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io.epfd < 0 || io.wakefd < 0 ||
        epoll_ctl(io.epfd, EPOLL_CTL_ADD, io.wakefd, &(struct epoll_event){ .events = EPOLLIN, .data.fd = io.wakefd }) < 0)
        return gh_err_set(e, 500, "server_error", "", "cannot set up the upstream I/O thread's epoll");
    io.stop = false;
    if (pthread_create(&io.th, NULL, io_main, NULL) != 0)
        return gh_err_set(e, 500, "server_error", "", "cannot start the upstream I/O thread");
    io.running = true;
    __atomic_store_n(&wk, gh_workq_start(NWORKERS), __ATOMIC_RELEASE);
    __atomic_store_n(&ofl, gh_workq_start(NOFFLOAD), __ATOMIC_RELEASE);
    if (wk == NULL || ofl == NULL)
        return gh_err_set(e, 500, "server_error", "", "cannot start the gateway workers");
    return 0;
}

static void
workers_stop(void)
{
    gh_workq_stop(ofl);     /* its requests may still post to wk */
    gh_workq_stop(wk);      /* kept: a late post is refused, the caller does its work */
}

/* After the web server drained: every transfer left is cancelled so each
 * on_done runs (and may post work), then the workers finish what was
 * queued; work posted after that runs in its poster. */
void
gw_up_stop(void)
{
    if (!io.running) {
        workers_stop();
        return;
    }
    pthread_mutex_lock(&io.lock);
    io.stop = true;
    pthread_mutex_unlock(&io.lock);
    io_wake();
    pthread_join(io.th, NULL);
    pthread_mutex_lock(&io.lock);
    io.running = false;
    pthread_mutex_unlock(&io.lock);
    /* what is still queued or in the multi handle ends as cancelled */
    while (io.start_q) {
        struct gw_up_xfer *x = io.start_q;
        io.start_q = x->qnext;
        x->cancelled = true;
        finish(x, CURLE_ABORTED_BY_CALLBACK);
    }
    while (io.active) {
        io.active->cancelled = true;
        finish(io.active, CURLE_ABORTED_BY_CALLBACK);
    }
    while (io.cancel_q) {
        struct gw_up_xfer *x = io.cancel_q;
        io.cancel_q = x->cnext;
        xfer_unref(x);
    }
    workers_stop();
    while (io.nspare > 0)
        curl_easy_cleanup(io.spare[--io.nspare]);
    curl_multi_cleanup(io.multi);
    io.multi = NULL;
    close(io.epfd);
    close(io.wakefd);
    io.epfd = io.wakefd = -1;
    curl_global_cleanup();
}
