/* web/web_int.h — private to web/. */
#ifndef GH_WEB_INT_H
#define GH_WEB_INT_H

#include "web/web.h"
#include <microhttpd.h>

#define WEB_MAX_PARAMS 8
#define WEB_MAX_HEADERS 24

struct web_route_def {
    const char    *method;
    const char    *pattern;
    int            flags;
    web_handler_fn fn;
    int            index;
};

struct web_hdr {
    const char *name;
    const char *value;
};

struct web_formkv {
    char  *name;
    char  *value;
    size_t vlen;            /* decoded length: a %00 makes it differ from strlen */
};

struct web_req {
    struct MHD_Connection *conn;
    struct gh_arena       *arena;
    const char            *method;
    const char            *path;
    char                   rid[20];
    int64_t                start_us;
    /* body */
    char                  *body;
    size_t                 body_len, body_cap, body_max;
    bool                   too_large;
    /* routing */
    const struct web_route_def *route;
    const char            *params[WEB_MAX_PARAMS];
    int                    nparams;
    /* forms */
    struct web_formkv     *form;
    int                    nform;
    bool                   form_parsed;
    json_t                *json;
    bool                   json_parsed;
    /* response */
    struct web_hdr         hdrs[WEB_MAX_HEADERS];
    int                    nhdrs;
    int                    status;
    bool                   replied;
    struct web_stream     *deferred;   /* web_reply_deferred: start() still due */
    int                    offload;    /* 0, WEB_OFFLOAD_RUNNING or _DONE (atomic) */
    struct MHD_Response   *captured;   /* the reply made while offloaded */
    int                    captured_status;
    const char            *csrf;
    const char            *form_target;    /* a CSP form-action source beside 'self' */
    void                  *user_data;
    char                   client_ip[64];
};

const struct web_route_def *web_router_match(struct web_req *r, bool *method_mismatch,
                                             char *allow, size_t allow_len);
int  web_router_count(void);
const char *web_router_pattern(int index);

void web_metrics_observe(int route_index, int status, int64_t dur_us);
int  web_metrics_render(struct web_req *r);
int  web_static_register(void);

struct MHD_Response *web_response_new(struct web_req *r, int status, const char *ctype,
                                      const char *body, size_t len);
int  web_queue(struct web_req *r, int status, struct MHD_Response *resp);
/* addr.c: GATEHOUSE_TRUSTED_PROXIES parsed (at start); r->client_ip set
 * from the peer and, behind a trusted proxy, X-Forwarded-For. */
int  web_addr_trusted_parse(const char *list, struct gh_err *e);
void web_addr_client(struct web_req *r);

void web_streams_shutdown(void);
#define WEB_OFFLOAD_RUNNING 1
#define WEB_OFFLOAD_DONE    2
bool web_stream_held(struct web_req *r);       /* web_reply_deferred while offloaded */
void web_stream_release_hold(struct web_stream *s);
void web_stream_resumed(struct web_req *r);     /* on_request, once a deferred reply is woken */
void web_stream_abandoned(struct web_req *r);   /* on_completed, if it never was */

#endif
