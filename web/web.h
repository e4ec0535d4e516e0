/*
 * web/web.h — HTTP server on libmicrohttpd: router, request/response,
 * cookies, CSRF, forms, HTML pages.
 *
 * web/ may call core/ only.  Handlers live in the folder that owns the
 * feature (authz/, gateway/) and register themselves with web_route().
 */
#ifndef GH_WEB_H
#define GH_WEB_H

#include "core/core.h"
#include <sys/types.h>

struct web_req;

/* Route flags. */
enum {
    WEB_PAGE     = 1 << 0,  /* HTML errors; form POSTs must carry the CSRF token */
    WEB_API      = 1 << 1,  /* JSON errors; no CSRF (not cookie-authenticated) */
    WEB_CORS     = 1 << 2,  /* Access-Control-Allow-Origin: * without credentials */
    WEB_FRAMEOK  = 1 << 3,  /* reserved: no page may be framed today */
    WEB_NO_DB    = 1 << 4,  /* served even while the database is down */
    WEB_OWN_413  = 1 << 5,  /* a body over the limit is the handler's to refuse
                             * (web_body_too_large), not the web layer's: the
                             * handler must answer it at once, without the body */
};

typedef int (*web_handler_fn)(struct web_req *r);

/* Pattern: exact path, or a path with a star matching one segment
 * ("/agents/STAR/mcp"), or ending in "/" and two stars for any suffix.
 * method NULL = any method. */
int web_route(const char *method, const char *pattern, int flags, web_handler_fn fn);

/* Server lifecycle. */
int  web_server_start(struct gh_err *e);
void web_server_stop(void);          /* drains in-flight requests */

/* ---- request */
struct gh_arena *web_arena(struct web_req *r);
const char *web_method(struct web_req *r);
const char *web_path(struct web_req *r);
const char *web_full_path(struct web_req *r);            /* path?query, re-encoded */
const char *web_route_pattern(struct web_req *r);
const char *web_path_param(struct web_req *r, int i);   /* i-th '*' segment */
const char *web_query(struct web_req *r, const char *name);
/* The same with the decoded length, which differs from strlen() when the
 * value holds a %00: the value as sent, for checking with gh_text_ok(). */
const char *web_query_n(struct web_req *r, const char *name, size_t *len);
const char *web_header(struct web_req *r, const char *name);   /* the first of its name */
int web_header_count(struct web_req *r, const char *name);      /* field lines of that name */
const char *web_cookie(struct web_req *r, const char *name);
const char *web_body(struct web_req *r, size_t *len);   /* NUL-terminated */
/* The body was over GATEHOUSE_HTTP_MAX_BODY (or _FORM): dropped, or never
 * read when it declared 16 times that.  Only a WEB_OWN_413 route sees it. */
bool web_body_too_large(struct web_req *r);
const char *web_form(struct web_req *r, const char *name); /* urlencoded body field */
const char *web_form_n(struct web_req *r, const char *name, size_t *len); /* as web_query_n */
int web_form_count(struct web_req *r, const char *name);    /* duplicates => >1 */
json_t *web_json_body(struct web_req *r, struct gh_err *e); /* borrowed (arena owns) */
const char *web_client_ip(struct web_req *r);
const char *web_request_id(struct web_req *r);
/* per-request slot for the layer above (e.g. the signed-in user) */
void  web_set_user_data(struct web_req *r, void *p);
void *web_user_data(struct web_req *r);

/* ---- response (exactly one reply per request) */
int  web_add_header(struct web_req *r, const char *name, const char *value);
int  web_set_cookie(struct web_req *r, const char *name, const char *value,
                    long max_age, bool http_only, const char *same_site);
int  web_reply(struct web_req *r, int status, const char *ctype, const char *body, size_t len);
int  web_reply_json(struct web_req *r, int status, json_t *j);    /* steals j */
int  web_reply_html(struct web_req *r, int status, const char *html);
int  web_redirect(struct web_req *r, int status, const char *location);
/* Error in the route's format: JSON {"error","error_description"} or an HTML page. */
int  web_reply_err(struct web_req *r, const struct gh_err *e);

/* Streaming (SSE and other long responses) without tying up a server
 * thread: the reader is called on a server thread and must not block.  It
 * returns the number of bytes written into buf, WEB_STREAM_WAIT when nothing
 * is ready (the connection is parked until web_stream_wake()), WEB_STREAM_END
 * when done, or WEB_STREAM_ERROR.  done() runs exactly once when the response
 * is finished or the client went away (the place to cancel upstream work). */
#define WEB_STREAM_WAIT  0
#define WEB_STREAM_END   (-1)
#define WEB_STREAM_ERROR (-2)
struct web_stream;
typedef ssize_t (*web_stream_fn)(void *ctx, char *buf, size_t max);
int  web_reply_stream(struct web_req *r, int status, const char *ctype,
                      web_stream_fn fn, void *ctx, gh_cleanup_fn done,
                      struct web_stream **out);
void web_stream_wake(struct web_stream *s);   /* any thread; no-op once finished */
/* A reply not decided yet: nothing is sent and the connection waits
 * (without a server thread) until the first web_stream_wake().  Then, on a
 * server thread, start(ctx, r) either replies whole (web_reply_json and the
 * like; done() runs at once) or calls web_stream_begin() to send the status
 * line and go on exactly as web_reply_stream(), reading from fn.  So an
 * answer that turns out to be one message is one plain response, and one
 * that streams is a stream. */
typedef void (*web_start_fn)(void *ctx, struct web_req *r);
int  web_reply_deferred(struct web_req *r, web_stream_fn fn, void *ctx, gh_cleanup_fn done,
                        web_start_fn start, struct web_stream **out);
int  web_stream_begin(struct web_req *r, int status, const char *ctype);

/* The rest of a handler on another thread, for work that may block (an
 * upstream that is slow to answer must not stall the other connections a
 * server thread serves).  In the handler: web_offload_begin(r), hand r to
 * the other thread, return.  There: reply as usual (any web_reply_*, also
 * web_reply_deferred), then web_offload_end(r) as the last use of r.  The
 * connection waits without a server thread meanwhile. */
void web_offload_begin(struct web_req *r);
void web_offload_end(struct web_req *r);
/* The producer's reference: the stream is freed after done() has run and
 * the producer released it, so a late wake is always safe. */
void web_stream_release(struct web_stream *s);

/* ---- CSRF (double-submit cookie, bound to the form field "csrf") */
const char *web_csrf_token(struct web_req *r);
bool web_csrf_ok(struct web_req *r);
/* CSP form-action of this response: 'self' and the origin (or private-use
 * scheme) of url, where the answer to the page's form redirects on to */
int  web_csp_form_target(struct web_req *r, const char *url);

/* ---- HTML: a page in the common layout; body is trusted HTML */
char *web_page(struct gh_arena *a, const char *title, const char *body_html);
/* the same with trusted navigation HTML in the header bar */
char *web_page_nav(struct gh_arena *a, const char *title, const char *nav_html,
                   const char *body_html);

/* ---- the console: one layout and one navigation for every signed-in page
 * (the table of items, and who sees each, is in page.c) */
struct web_viewer {
    const char *user_id;
    const char *email;
    bool        admin;
};
/* The predicate behind the owner items: true when the user owns some
 * agent.  Registered at start-up by the layer that knows agents (web/ calls
 * no layer above it); until one is, only admins see owner items. */
void web_nav_owner_hook(bool (*owns_any_agent)(const char *user_id));
/* A page in the common layout whose header carries the viewer's navigation
 * (the current path's item marked) and the sign-out form. */
char *web_console_page(struct web_req *r, const struct web_viewer *v, const char *title,
                       const char *body_html);

/* ---- metrics */
void web_metrics_register_gauge(const char *name, const char *help, long (*fn)(void));

#endif
