/*
 * web/stream.c — long responses without a parked thread.
 *
 * The producer (say, an upstream MCP call) fills its own buffer and calls
 * web_stream_wake(); MHD calls our reader, which asks the producer's fn
 * for bytes.  With nothing ready the connection is suspended, which takes
 * it out of the event loop until the next wake.  The reader and wake
 * share a mutex so a wake can never fall between "nothing ready" and the
 * suspend.  While suspended MHD cannot see a client disconnect, so a
 * producer with nothing to say should still wake the stream now and then
 * (an SSE comment serves) to notice a vanished client.
 */
#include "web/web_int.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct web_stream {
    pthread_mutex_t        lock;
    struct MHD_Connection *conn;
    web_stream_fn          fn;
    void                  *ctx;
    gh_cleanup_fn          done;
    web_start_fn           start;      /* deferred: decides the reply */
    bool                   suspended;
    bool                   held;        /* made while offloaded: wakes wait for web_offload_end */
    bool                   wake_pending;
    bool                   finished;
    bool                   shutdown;
    int                    refs;
    struct web_stream     *next, *prev;   /* all live streams, for shutdown */
};

static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct web_stream *all;

static void
unref(struct web_stream *s)
{
    bool last;

    pthread_mutex_lock(&s->lock);
    last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
}

static ssize_t
reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct web_stream *s = cls;
    ssize_t n;

    pthread_mutex_lock(&s->lock);
    if (s->shutdown) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    n = s->fn(s->ctx, buf, max);
    if (n == WEB_STREAM_WAIT) {
        s->suspended = true;
        MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&s->lock);
    if (n == WEB_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void
finished(void *cls)
{
    struct web_stream *s = cls;

    pthread_mutex_lock(&all_lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&all_lock);

    pthread_mutex_lock(&s->lock);
    s->finished = true;
    pthread_mutex_unlock(&s->lock);
    if (s->done)
        s->done(s->ctx);
    unref(s);
}

static struct web_stream *
stream_new(struct web_req *r, web_stream_fn fn, void *ctx, gh_cleanup_fn done)
{
    struct web_stream *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->conn = r->conn;
    s->fn = fn;
    s->ctx = ctx;
    s->done = done;
    s->refs = 2;            /* MHD's response (or the deferral) and the producer */
    return s;
}

static void
stream_link(struct web_stream *s)
{
    pthread_mutex_lock(&all_lock);
    s->next = all;
    if (all)
        all->prev = s;
    all = s;
    pthread_mutex_unlock(&all_lock);
}

static struct MHD_Response *
stream_response(struct web_stream *s, const char *ctype)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, finished);

    if (resp) {
        MHD_add_response_header(resp, "Content-Type", ctype);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    }
    return resp;
}

int
web_reply_stream(struct web_req *r, int status, const char *ctype, web_stream_fn fn, void *ctx,
                 gh_cleanup_fn done, struct web_stream **out)
{
    struct web_stream *s = stream_new(r, fn, ctx, done);
    struct MHD_Response *resp = s ? stream_response(s, ctype) : NULL;

    if (resp == NULL) {
        if (s) {
            pthread_mutex_destroy(&s->lock);
            free(s);
        }
        return -1;
    }
    stream_link(s);         /* from here MHD's response owns one reference */
    if (out)
        *out = s;
    else
        unref(s);
    return web_queue(r, status, resp);
}

int
web_reply_deferred(struct web_req *r, web_stream_fn fn, void *ctx, gh_cleanup_fn done,
                   web_start_fn start, struct web_stream **out)
{
    struct web_stream *s;

    if (r->replied)
        return -1;
    s = stream_new(r, fn, ctx, done);
    if (s == NULL)
        return -1;
    s->start = start;
    s->suspended = true;
    r->deferred = s;
    r->replied = true;      /* for dispatch: the reply is on its way */
    if (__atomic_load_n(&r->offload, __ATOMIC_ACQUIRE) == WEB_OFFLOAD_RUNNING)
        s->held = true;     /* suspended already, by web_offload_begin */
    else
        MHD_suspend_connection(r->conn);
    stream_link(s);
    if (out)
        *out = s;
    else
        unref(s);
    return 0;
}

/* From start(): the reply is a stream after all. */
int
web_stream_begin(struct web_req *r, int status, const char *ctype)
{
    struct web_stream *s = r->deferred;
    struct MHD_Response *resp;

    if (s == NULL || s->start != NULL)
        return -1;          /* only inside start() */
    resp = stream_response(s, ctype);
    if (resp == NULL)
        return -1;          /* web_stream_resumed answers 500 and ends it */
    r->deferred = NULL;     /* the response's free callback ends it now */
    return web_queue(r, status, resp);
}

/* A deferred reply was woken: the connection is back on a server thread and
 * its handler called again.  start() replies whole or begins the stream. */
void
web_stream_resumed(struct web_req *r)
{
    struct web_stream *s = r->deferred;
    web_start_fn start = s->start;

    pthread_mutex_lock(&s->lock);
    s->start = NULL;        /* marks "inside start()" for web_stream_begin */
    pthread_mutex_unlock(&s->lock);
    r->replied = false;
    start(s->ctx, r);
    if (!r->replied)
        web_reply(r, 500, "application/json", "{\"error\":\"server_error\"}", 27);
    if (r->deferred == s) {
        /* answered whole (or failed): no stream will run, the response is over */
        r->deferred = NULL;
        finished(s);
    }
}

/* The request ended (the client went away, or the server stops) while its
 * deferred reply was still undecided: the reply is over before it began. */
void
web_stream_abandoned(struct web_req *r)
{
    struct web_stream *s = r->deferred;

    if (s == NULL)
        return;
    r->deferred = NULL;
    finished(s);
}

/* The resume itself comes after the unlock: MHD's thread wakes at once and
 * its first step (web_stream_resumed) takes s->lock, which it would find
 * still held.  Whoever clears `suspended` under the lock is the one caller
 * that resumes, and a suspended connection cannot end (nor be freed) until
 * it is resumed, so conn stays valid meanwhile. */
void
web_stream_wake(struct web_stream *s)
{
    struct MHD_Connection *resume = NULL;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->held) {
        s->wake_pending = true;     /* the offloaded handler still runs */
    } else if (s->suspended && !s->finished) {
        s->suspended = false;
        resume = s->conn;
    }
    pthread_mutex_unlock(&s->lock);
    if (resume)
        MHD_resume_connection(resume);
}

bool
web_stream_held(struct web_req *r)
{
    return r->deferred != NULL && r->deferred->held;
}

/* web_offload_end: the handler is done with r; a wake that came meanwhile
 * resumes the connection now. */
void
web_stream_release_hold(struct web_stream *s)
{
    struct MHD_Connection *resume = NULL;

    pthread_mutex_lock(&s->lock);
    s->held = false;
    if (s->wake_pending && s->suspended && !s->finished) {
        s->suspended = false;
        resume = s->conn;           /* after the unlock, as in web_stream_wake */
    }
    pthread_mutex_unlock(&s->lock);
    if (resume)
        MHD_resume_connection(resume);
}

void
web_stream_release(struct web_stream *s)
{
    if (s)
        unref(s);
}

/* At shutdown every stream ends so MHD can stop: a suspended connection
 * must be resumed before the daemon stops. */
void
web_streams_shutdown(void)
{
    pthread_mutex_lock(&all_lock);
    for (struct web_stream *s = all; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        s->shutdown = true;
        if (s->held) {
            s->wake_pending = true;     /* resumed when its handler is done */
        } else if (s->suspended && !s->finished) {
            s->suspended = false;
            MHD_resume_connection(s->conn);
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&all_lock);
}
