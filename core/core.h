/*
 * core/core.h — the public face of core/: errors, per-request arenas,
 * logging, the configuration table, crypto and JSON helpers.
 *
 * core/ depends on nothing else in the tree; every other folder may use it.
 */
#ifndef GH_CORE_H
#define GH_CORE_H

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <jansson.h>

#define GH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define GH_ARRAY_LEN(x) (sizeof(x) / sizeof((x)[0]))

/* ---------------------------------------------------------------- errors
 * Functions return 0 or a negative value and fill a struct gh_err.  The
 * client sees status, code and msg; detail goes to the log only.  The first
 * error recorded wins, so a low-level cause is not overwritten by a caller's
 * generic one.
 */
struct gh_err {
    int  status;          /* HTTP status to answer with (0 = none set) */
    char code[48];        /* protocol error code, e.g. "invalid_request" */
    char msg[256];        /* safe for the client */
    char detail[512];     /* log only; never contains secrets */
    int  retry_after;     /* seconds, for 429/503; 0 = none */
};

int  gh_err_set(struct gh_err *e, int status, const char *code, const char *msg,
                const char *detail_fmt, ...) GH_PRINTF(5, 6);
bool gh_err_isset(const struct gh_err *e);
void gh_err_clear(struct gh_err *e);

/* ---------------------------------------------------------------- arena
 * A per-request arena: bump allocation with a size cap and cleanup callbacks
 * run in reverse order at gh_arena_free().  Built with GH_ARENA_MALLOC_EACH
 * (the sanitizer build), each allocation is its own malloc so ASan sees it.
 */
struct gh_arena;
typedef void (*gh_cleanup_fn)(void *);

struct gh_arena *gh_arena_new(size_t cap);
void  gh_arena_free(struct gh_arena *a);
void *gh_arena_alloc(struct gh_arena *a, size_t n);          /* zeroed; NULL past the cap */
char *gh_arena_strdup(struct gh_arena *a, const char *s);
char *gh_arena_strndup(struct gh_arena *a, const char *s, size_t n);
char *gh_arena_printf(struct gh_arena *a, const char *fmt, ...) GH_PRINTF(2, 3);
int   gh_arena_defer(struct gh_arena *a, gh_cleanup_fn fn, void *p);
json_t *gh_arena_json(struct gh_arena *a, json_t *j);        /* decref at free */
size_t gh_arena_used(const struct gh_arena *a);

/* ---------------------------------------------------------------- logging
 * One JSON line per event on stderr.  The request id and route of the
 * current request are attached automatically (thread-local context).
 * Never pass a secret as an argument.
 */
enum gh_log_level { GH_LOG_DEBUG = 0, GH_LOG_INFO, GH_LOG_WARN, GH_LOG_ERROR };

void gh_log_init(enum gh_log_level min);
void gh_log_context(const char *request_id, const char *route);
const char *gh_log_request_id(void);
void gh_logf(enum gh_log_level lvl, const char *event, const char *fmt, ...) GH_PRINTF(3, 4);
/* an event with extra JSON fields (stolen reference) */
void gh_log_json(enum gh_log_level lvl, const char *event, json_t *fields);

#define GH_LOG(lvl, event, ...) gh_logf(GH_LOG_##lvl, event, __VA_ARGS__)

/* ---------------------------------------------------------------- config
 * Every setting is one row of the table in core/config.c: name, environment
 * variable, type, default, bounds, help.  --help, docs/CONFIGURATION.md and
 * validation are generated from it.
 */
struct gh_config {
    char *listen;               /* host:port */
    char *public_url;           /* no trailing slash */
    char *data_dir;
    char *database_url;         /* empty = embedded cluster */
    char *log_level;
    long  http_threads;
    long  http_max_connections;   /* 0: half the open-files limit */
    long  http_max_body;
    long  http_max_header;
    long  http_max_form;
    long  db_pool_size;
    long  argon2_t_cost;
    long  argon2_m_cost_kib;
    long  argon2_parallelism;
    long  session_idle_seconds;
    long  session_absolute_seconds;
    long  login_max_failures;
    long  login_window_seconds;
    char *pg_bin_dir;           /* where initdb/pg_ctl live */
    char *pg_run_as;            /* unprivileged user when started as root */
    char *server_key;           /* hex AES-256 key; empty = generated in data dir */
    bool  dev_allow_private_cimd;
    bool  dev_allow_private_discovery;
    long  oauth_cimd_cache_max;
    long  access_token_ttl;
    long  refresh_token_ttl;
    long  refresh_grace_seconds;
    long  code_ttl;
    long  upstream_connect_timeout_ms;
    long  upstream_call_timeout_ms;
    long  mcp_session_idle_seconds;
    long  mcp_page_size;
    long  mcp_batch_max;        /* messages per JSON-RPC batch */
    long  mcp_sessions_per_member;  /* per agent and user; the least recently seen goes */
    char *allowed_hosts;        /* comma list; empty = host of public_url + loopback */
    char *trusted_proxies;      /* comma list of IPs/CIDRs; empty = trust no X-Forwarded-For */
    bool  test_unauthenticated_mcp;
    long  oauth_client_unused_ttl;
    long  rate_register_per_min;
    long  rate_token_per_min;
    long  rate_login_per_min;
    long  rate_cimd_per_min;
    long  rate_mcp_refused_per_min;
    long  auth_cache_entries;   /* 0 = hot-path caches off */
    char *smtp_url;             /* empty = no mail */
    char *mail_from;            /* empty = gatehouse@<public host> */
    char *require_mfa;          /* none | admins | owners | everyone */
    long  signin_code_ttl;      /* seconds an emailed sign-in code is good */
};

extern struct gh_config gh_cfg;

/* Loads defaults, then --config FILE, then GATEHOUSE_* variables; validates.
 * Returns 0, or -1 with e->msg naming the offending key. */
int  gh_config_load(const char *config_file, struct gh_err *e);
void gh_config_print_help(FILE *out);
void gh_config_print_markdown(FILE *out);
bool gh_config_public_https(void);
/* Absolute URL under the public URL: gh_config_url(a, "/oauth/token") */
char *gh_config_url(struct gh_arena *a, const char *path);

/* ---------------------------------------------------------------- crypto */
int  gh_random_bytes(void *buf, size_t n);                    /* 0 or -1 */
void gh_hex_encode(const unsigned char *in, size_t n, char *out); /* out: 2n+1 */
int  gh_hex_decode(const char *in, unsigned char *out, size_t outlen); /* 0 or -1 */
/* The value of one hex digit (either case), or -1: the one hex decoder,
 * inline for the byte loops of the form decoder and the Cedar lexer. */
static inline int
gh_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
void gh_sha256(const void *in, size_t n, unsigned char out[32]);
void gh_sha256_hex(const char *s, char out[65]);              /* of a C string */
bool gh_ct_streq(const char *a, const char *b);               /* constant time */
char *gh_b64url_encode(struct gh_arena *a, const unsigned char *in, size_t n);
/* Base64 (RFC 4648 section 4) or base64url (section 5), one alphabet per
 * value, padded or not, canonical only (padding only at the end and only
 * to a whole group; unused bits zero): no two decoders read one value two
 * ways.  *out is NUL-terminated in the arena (the data may hold NULs). */
int  gh_b64_decode(struct gh_arena *a, const char *in, size_t n, unsigned char **out, size_t *outlen);
/* Random token of nbytes rendered as lower-case hex, with a prefix. */
char *gh_token_hex(struct gh_arena *a, const char *prefix, size_t nbytes);
void gh_wipe(void *p, size_t n);
/* AES-256-GCM under the server key: out = base64url(iv|tag|ct). */
char *gh_seal(struct gh_arena *a, const void *pt, size_t n, const char *aad);
int   gh_unseal(struct gh_arena *a, const char *sealed, const char *aad,
                unsigned char **pt, size_t *n);
int   gh_server_key_init(struct gh_err *e);
/* HMAC-SHA256 of a fixed label under the server key, hex: what the database
 * keeps to tell a process with another key (db_server_key_check). */
int   gh_server_key_check_value(char out[65]);
/* Where the key came from, for an error message: "GATEHOUSE_SERVER_KEY" or
 * the key file's path.  Never the key. */
const char *gh_server_key_origin(void);
/* Drops the key from memory, and the key file if this process generated it. */
void  gh_server_key_forget(void);

/* ---------------------------------------------------------------- cache */
/* A bounded, thread-safe cache: string key -> vector of strings (NULLs
 * allowed), for the per-call lookups of the MCP hot path (core/cache.c).
 * max_entries 0 disables it.  `usable` (may be NULL) gates serving and
 * storing, e.g. "the invalidation channel is up".  Entries are wiped when
 * freed.  To store a lookup without racing a flush, read gh_cache_gen()
 * before asking the source and pass it to gh_cache_put(), which drops the
 * entry if a flush happened since. */
struct gh_cache;
struct gh_cache *gh_cache_new(long max_entries, bool (*usable)(void));
void     gh_cache_free(struct gh_cache *c);
uint64_t gh_cache_gen(struct gh_cache *c);
/* The values copied into the arena (*n set), or NULL on a miss or expiry. */
char   **gh_cache_get(struct gh_cache *c, struct gh_arena *a, const char *key, int *n);
/* expires_at: wall-clock seconds (gh_time_s), 0 = no expiry. */
void     gh_cache_put(struct gh_cache *c, const char *key, const char *const *vals, int n,
                      int64_t expires_at, uint64_t gen);
/* Drops every entry now and refuses stores of lookups begun before. */
void     gh_cache_flush(struct gh_cache *c);
long     gh_cache_hits(struct gh_cache *c);
long     gh_cache_misses(struct gh_cache *c);
long     gh_cache_count(struct gh_cache *c);

/* ---------------------------------------------------------------- work queue
 * nthreads threads running posted functions in order of posting (core/workq.c).
 * gh_workq_post: -1 when the queue is NULL or stopped (the caller then does
 * the work itself).  gh_workq_stop runs what was posted, joins the threads,
 * and refuses work from then on; gh_workq_free once nobody can post. */
typedef void (*gh_work_fn)(void *ctx);
struct gh_workq;
struct gh_workq *gh_workq_start(int nthreads);      /* NULL when no thread started */
int  gh_workq_post(struct gh_workq *q, gh_work_fn fn, void *ctx);
void gh_workq_stop(struct gh_workq *q);
void gh_workq_free(struct gh_workq *q);

/* ---------------------------------------------------------------- misc */
int64_t gh_now_us(void);        /* monotonic */
int64_t gh_time_s(void);        /* wall clock, seconds */
const char *gh_json_str(json_t *obj, const char *key);  /* NULL if absent/not string */
bool gh_str_has_prefix(const char *s, const char *prefix);
/* true when s is a UUID in its canonical text form (8-4-4-4-12 hex) */
bool gh_uuid_ok(const char *s);
/* true when the n bytes at s are valid UTF-8 without control characters
 * (C0 including NUL, DEL, C1): text the database accepts and a log or a page
 * can show */
bool gh_text_ok(const char *s, size_t n);
/* percent-encodes for a URL query component */
char *gh_url_encode(struct gh_arena *a, const char *s);
char *gh_html_escape(struct gh_arena *a, const char *s);

#endif
