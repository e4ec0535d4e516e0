/*
 * gateway/aggregate.c — the merged lists clients see.
 *
 * Names: "<prefix>__<name>" (the prefix is the connector's name unless an
 * owner set another, or none: then the upstream's own name); past 64
 * characters the first 55 bytes are kept and "_" plus 8 hex digits of
 * SHA-256 of the full name "<connector>__<name>" appended; a name already
 * taken (in list order) is rehashed with a counter until free.
 * Resource URIs pass through unchanged (tool results refer to them); a URI
 * two connectors share is given to the first and shown as
 * "gh://<connector>/<uri>" for the others, which routes without state.
 * An entry is found by its kind's key only (name, uri, uriTemplate).  Of
 * one upstream's list the gateway keeps the first entry of each key and at
 * most GW_AGG_LIST_MAX entries (gw_agg_take), once per fetch.
 */
#include "gateway/mcp_int.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- pure helpers */

static void
hash8(const char *s, long k, char out[9])
{
    unsigned char d[32];
    char hex[65];

    if (k == 0) {
        gh_sha256(s, strlen(s), d);
    } else {
        size_t n = strlen(s);
        char *buf = malloc(n + 24);
        if (buf == NULL) {
            memset(out, '0', 8);
            out[8] = '\0';
            return;
        }
        snprintf(buf, n + 24, "%s\n%ld", s, k);
        gh_sha256(buf, strlen(buf), d);
        free(buf);
    }
    gh_hex_encode(d, 4, hex);
    memcpy(out, hex, 8);
    out[8] = '\0';
}

/* plain cut to fit, then "_" and 8 hex digits of SHA-256 of key (with
 * counter k when k > 0); plain as it is when it fits and k is 0 */
static void
shorten(const char *plain, const char *key, long k, bool hash, char out[GW_NAME_MAX + 1])
{
    size_t n = strlen(plain), keep = GW_NAME_MAX - 9;
    char h[9];

    if (!hash && n <= GW_NAME_MAX) {
        memcpy(out, plain, n + 1);
        return;
    }
    if (n < keep)
        keep = n;
    while (keep > 0 && ((unsigned char)plain[keep] & 0xC0) == 0x80)
        keep--;                 /* never split a UTF-8 sequence */
    hash8(key, k, h);
    memcpy(out, plain, keep);
    out[keep] = '_';
    memcpy(out + keep + 1, h, 9);
}

void
gw_agg_names(const char *const *prefixes, const char *const *connectors, const char *const *origs, int n,
             char (*names)[GW_NAME_MAX + 1])
{
    /* taken: every name given so far; counter: the last counter each full
     * name was rehashed with.  Counting on from there gives the name that
     * counting from 1 would (every earlier counter of that full name is
     * taken, and taken names stay taken) without retrying them: n repeats
     * of one name cost n hashes, not n * n / 2.  What is hashed is the
     * full name "<connector>__<orig>" whatever the prefix: two connectors
     * shown without prefix still get names of their own, each the same
     * wherever the other stands in the list. */
    json_t *taken = json_object(), *counter = json_object();

    for (int i = 0; i < n; i++) {
        const char *prefix = prefixes && prefixes[i] ? prefixes[i] : connectors[i];
        size_t len = strlen(connectors[i]) + strlen(prefix) + 2 * strlen(origs[i]) + 6;
        char *full = malloc(len), *plain;
        long k;

        if (full == NULL) {
            snprintf(names[i], GW_NAME_MAX + 1, "%.64s", connectors[i]);
            continue;
        }
        plain = full + snprintf(full, len, "%s__%s", connectors[i], origs[i]) + 1;
        snprintf(plain, len - strlen(full) - 1, "%s%s%s", prefix, *prefix ? "__" : "", origs[i]);
        /* a long name is hashed by its full name, as before prefixes */
        shorten(plain, full, 0, false, names[i]);
        if (json_object_get(taken, names[i])) {
            k = (long)json_integer_value(json_object_get(counter, full));
            do
                shorten(plain, full, ++k, true, names[i]);
            while (json_object_get(taken, names[i]) && k < 1000000);
            json_object_set_new(counter, full, json_integer(k));
        }
        json_object_set_new(taken, names[i], json_true());
        free(full);
    }
    json_decref(counter);
    json_decref(taken);
}

char *
gw_agg_uri_wrap(struct gh_arena *a, const char *connector, const char *uri)
{
    return gh_arena_printf(a, "gh://%s/%s", connector, uri);
}

int
gw_agg_uri_unwrap(struct gh_arena *a, const char *wrapped, char **connector, char **uri)
{
    const char *p, *slash;

    if (!gh_str_has_prefix(wrapped, "gh://"))
        return -1;
    p = wrapped + 5;
    slash = strchr(p, '/');
    if (slash == NULL || slash == p || slash[1] == '\0')
        return -1;
    *connector = gh_arena_strndup(a, p, (size_t)(slash - p));
    *uri = gh_arena_strdup(a, slash + 1);
    return *connector && *uri ? 0 : -1;
}

char *
gw_agg_cursor_make(struct gh_arena *a, int offset)
{
    char raw[32], *hex;
    size_t n;

    n = (size_t)snprintf(raw, sizeof(raw), "gh1:%d", offset);
    hex = gh_arena_alloc(a, 2 * n + 1);
    if (hex)
        gh_hex_encode((unsigned char *)raw, n, hex);
    return hex;
}

int
gw_agg_cursor_parse(const char *cursor, int *offset)
{
    unsigned char raw[32];
    size_t n = cursor ? strlen(cursor) : 0;
    char *end;
    long v;

    if (n == 0 || n % 2 || n / 2 >= sizeof(raw) || gh_hex_decode(cursor, raw, n / 2) < 0)
        return -1;
    raw[n / 2] = '\0';
    if (memcmp(raw, "gh1:", 4))
        return -1;
    v = strtol((char *)raw + 4, &end, 10);
    if (*end || end == (char *)raw + 4 || v < 0 || v > 100000000)
        return -1;
    *offset = (int)v;
    return 0;
}

/* ---------------------------------------------------------------- connectors
 * One name for the gateway's reads of an agent's enabled connectors, so a
 * cache in front of gw_connectors_for_agent (the perf-cache branch puts
 * one in connector.c) changes nothing here. */
int
gw_agg_connectors(struct gh_arena *a, const char *agent_id, struct gw_connector **out, int *n,
                  struct gh_err *e)
{
    return gw_connectors_for_agent(a, agent_id, out, n, e);
}

/* ---------------------------------------------------------------- lists */

static const char *const kind_method[GW_NKINDS] = {
    "tools/list", "prompts/list", "resources/list", "resources/templates/list" };
static const char *const kind_field[GW_NKINDS] = { "tools", "prompts", "resources", "resourceTemplates" };
/* what names an entry of each kind, upstream and to clients */
static const char *const kind_key[GW_NKINDS] = { "name", "name", "uri", "uriTemplate" };

bool
gw_agg_warm(struct gh_arena *a, struct gw_session *s, enum gw_kind kind)
{
    struct gw_connector *conns = NULL;
    struct gh_err e = {0};
    int n = 0;
    bool warm = true;

    if (gw_agg_connectors(a, s->agent_id, &conns, &n, &e) < 0)
        return false;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < n && warm; i++) {
        struct gw_upstate *u = NULL;
        if (!conns[i].enabled || conns[i].unavailable)
            continue;           /* nothing to wait for: it fails at once */
        for (int k = 0; k < s->nups && u == NULL; k++)
            if (!strcmp(s->ups[k].connector_id, conns[i].id))
                u = &s->ups[k];
        warm = u && u->proto[0] && (kind >= GW_NKINDS || gw_upstate_has_list(u, kind));
    }
    pthread_mutex_unlock(&s->lock);
    return warm;
}

void
gw_agg_invalidate(struct gw_session *s, const char *connector_id)
{
    gw_upstate_lists_drop(s, connector_id);
}

void
gw_agg_take(json_t *list, json_t *seen, json_t *page, enum gw_kind kind, int *repeats, int *over)
{
    size_t i;
    json_t *it;

    json_array_foreach(page, i, it) {
        const char *key = gh_json_str(it, kind_key[kind]);
        if (!json_is_object(it) || key == NULL)
            continue;           /* malformed upstream entry: left out */
        if (json_object_get(seen, key)) {
            (*repeats)++;
            continue;
        }
        if (json_array_size(list) >= GW_AGG_LIST_MAX) {
            (*over)++;
            continue;
        }
        json_object_set_new(seen, key, json_true());
        json_array_append(list, it);
    }
}

/* Every page of one upstream's list, as gw_agg_take keeps it: no page is
 * asked for once GW_AGG_LIST_MAX entries are in; one WARN line says what
 * was left out.  A new reference, or NULL with e. */
static json_t *
fetch_all(struct gh_arena *a, struct gw_call_target *t, enum gw_kind k, struct gh_err *e)
{
    json_t *all = json_array(), *seen = json_object(), *cursor = NULL;
    int repeats = 0, over = 0;
    bool more = false;

    for (int page = 0; page < 1000; page++) {
        json_t *params = cursor ? json_pack("{s:O}", "cursor", cursor) : NULL;
        json_t *resp = gw_up_rpc_sync(a, t, kind_method[k], params, NULL, e);
        json_t *res, *items;

        json_decref(params);
        if (resp == NULL)
            goto fail;
        res = json_object_get(resp, "result");
        if (res == NULL) {
            /* an upstream without this capability answers -32601: an empty list */
            json_t *err = json_object_get(resp, "error");
            if (json_integer_value(json_object_get(err, "code")) == GW_RPC_METHOD_NOT_FOUND)
                break;
            gh_err_set(e, 502, "upstream", "", "%s: %s failed", t->c->name, kind_method[k]);
            snprintf(e->msg, sizeof(e->msg), "Upstream '%s' failed to list.", t->c->name);
            goto fail;
        }
        items = json_object_get(res, kind_field[k]);
        if (json_is_array(items))
            gw_agg_take(all, seen, items, k, &repeats, &over);
        cursor = json_object_get(res, "nextCursor");
        more = json_is_string(cursor) && json_string_length(cursor) > 0;
        if (!more || json_array_size(all) >= GW_AGG_LIST_MAX)
            break;
    }
    if (json_array_size(all) < GW_AGG_LIST_MAX)
        more = false;           /* a page limit, not ours: nothing to say */
    if (over || more)
        GH_LOG(WARN, "gw_aggregate", "connector %s: %s: only the first %d entries taken, the rest "
               "left out (%d repeated %s left out too, the first kept)", t->c->name, kind_method[k],
               GW_AGG_LIST_MAX, repeats, kind_key[k]);
    else if (repeats)
        GH_LOG(WARN, "gw_aggregate", "connector %s: %s: %d repeated %s left out, the first kept",
               t->c->name, kind_method[k], repeats, kind_key[k]);
    json_decref(seen);
    return all;
fail:
    json_decref(seen);
    json_decref(all);
    return NULL;
}

struct fetch_wait {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    int             pending, finished;
};

struct fetch_job {
    struct fetch_wait    *w;
    struct gw_call_target t;
    enum gw_kind          kind;
    int                   idx;          /* into the connector array */
    bool                  done;         /* failed before starting */
    json_t               *list;         /* the result (a reference), or NULL with e */
    struct gh_err         e;
};

/* One upstream's list, on a worker or the caller (its own arena: an arena
 * belongs to one thread). */
static void
fetch_job_run(void *ctx)
{
    struct fetch_job *j = ctx;
    struct gh_arena *a = gh_arena_new(0);

    if (a == NULL)
        gh_err_set(&j->e, 500, "server_error", "internal error", "out of memory");
    else
        j->list = fetch_all(a, &j->t, j->kind, &j->e);
    gh_arena_free(a);
    pthread_mutex_lock(&j->w->lock);
    j->w->finished++;
    pthread_cond_signal(&j->w->cond);
    pthread_mutex_unlock(&j->w->lock);
}

int
gw_agg_list(struct gh_arena *a, struct gw_session *s, const struct authz_credential *who,
            enum gw_kind kind, struct gw_list *out, struct gh_err *e)
{
    struct gw_connector *conns = NULL;
    int nconns = 0, total = 0;
    json_t **lists;

    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (gw_agg_connectors(a, s->agent_id, &conns, &nconns, e) < 0)
        return -1;
    out->conns = conns;
    out->nconns = nconns;
    lists = gh_arena_alloc(a, sizeof(*lists) * (size_t)(nconns + 1));
    out->failed = gh_arena_alloc(a, sizeof(char *) * (size_t)(nconns + 1));
    out->failed_prefix = gh_arena_alloc(a, sizeof(char *) * (size_t)(nconns + 1));
    if (lists == NULL || out->failed == NULL || out->failed_prefix == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "out of memory");

    /* cached lists first; what is missing is fetched from all those
     * upstreams at once (workers), so the slowest sets the pace, not the sum */
    {
        struct fetch_job *jobs = gh_arena_alloc(a, sizeof(*jobs) * (size_t)(nconns + 1));
        struct fetch_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
        int njobs = 0;

        if (jobs == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "out of memory");
        for (int i = 0; i < nconns; i++) {
            json_t *l;

            if (!conns[i].enabled)
                continue;
            if ((l = gw_upstate_list(s, &conns[i], kind)) != NULL) {
                lists[i] = gh_arena_json(a, l);
                continue;
            }
            jobs[njobs] = (struct fetch_job){ .w = &w, .t = { s, &conns[i], NULL, 0 }, .kind = kind, .idx = i };
            /* no credential for it: it fails alone, without running */
            jobs[njobs].done = gw_connector_auth_headers(a, &conns[i], who, &jobs[njobs].t.headers,
                                                         &jobs[njobs].t.nheaders, &jobs[njobs].e) < 0;
            if (!jobs[njobs].done)
                w.pending++;
            njobs++;
        }
        /* the last one runs here; a refused post runs here too */
        for (int k = 0, last = njobs - 1; k < njobs; k++)
            if (!jobs[k].done && (k == last || gw_work_post(fetch_job_run, &jobs[k]) < 0))
                fetch_job_run(&jobs[k]);
        pthread_mutex_lock(&w.lock);
        while (w.finished < w.pending)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.cond);

        for (int k = 0; k < njobs; k++) {
            struct fetch_job *j = &jobs[k];
            struct gw_connector *c = &conns[j->idx];
            if (j->list == NULL) {
                GH_LOG(WARN, "gw_aggregate", "connector %s: %s", c->name,
                       j->e.detail[0] ? j->e.detail : j->e.msg);
                out->failed_prefix[out->nfailed] = c->prefix ? c->prefix : c->name;
                out->failed[out->nfailed++] = c->name;
                continue;
            }
            gw_upstate_list_set(s, c, kind, j->list);
            lists[j->idx] = gh_arena_json(a, j->list);
        }
    }
    for (int i = 0; i < nconns; i++)
        total += lists[i] ? (int)json_array_size(lists[i]) : 0;

    out->e = gh_arena_alloc(a, sizeof(*out->e) * (size_t)(total + 1));
    if (out->e == NULL)
        return gh_err_set(e, 500, "server_error", "internal error", "list too large");
    for (int i = 0; i < nconns; i++) {
        size_t j;
        json_t *it;
        if (lists[i] == NULL)
            continue;
        json_array_foreach(lists[i], j, it) {
            const char *key = gh_json_str(it, kind_key[kind]);
            struct gw_entry *en;
            if (!json_is_object(it) || key == NULL)
                continue;       /* malformed upstream entry: left out */
            en = &out->e[out->n++];
            en->item = it;
            en->connector_id = conns[i].id;
            en->connector = conns[i].name;
            en->prefix = conns[i].prefix;
            en->orig = key;
        }
    }

    if (kind == GW_TOOLS || kind == GW_PROMPTS) {
        const char **cn = gh_arena_alloc(a, sizeof(char *) * (size_t)(out->n + 1));
        const char **pn = gh_arena_alloc(a, sizeof(char *) * (size_t)(out->n + 1));
        const char **on = gh_arena_alloc(a, sizeof(char *) * (size_t)(out->n + 1));
        char (*names)[GW_NAME_MAX + 1] = gh_arena_alloc(a, sizeof(*names) * (size_t)(out->n + 1));
        if (cn == NULL || pn == NULL || on == NULL || names == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "list too large");
        for (int i = 0; i < out->n; i++) {
            cn[i] = out->e[i].connector;
            pn[i] = out->e[i].prefix;
            on[i] = out->e[i].orig;
        }
        gw_agg_names(pn, cn, on, out->n, names);
        for (int i = 0; i < out->n; i++) {
            json_t *c = gh_arena_json(a, json_copy(out->e[i].item));
            json_object_set_new(c, "name", json_string(names[i]));
            out->e[i].item = c;
        }
    } else {
        json_t *seen = gh_arena_json(a, json_object());
        const char *field = kind == GW_RESOURCES ? "uri" : "uriTemplate";
        for (int i = 0; i < out->n; i++) {
            if (json_object_get(seen, out->e[i].orig)) {
                json_t *c = gh_arena_json(a, json_copy(out->e[i].item));
                json_object_set_new(c, field, json_string(gw_agg_uri_wrap(a, out->e[i].connector,
                                                                          out->e[i].orig)));
                out->e[i].item = c;
            } else {
                json_object_set_new(seen, out->e[i].orig, json_true());
            }
        }
    }
    return 0;
}

const struct gw_entry *
gw_agg_find(const struct gw_list *l, const char *name)
{
    /* only the list's own key: a tool or prompt is found by the name we
     * gave it, never by a "uri" (or anything else) its upstream added,
     * which could name another connector's tool */
    const char *field = kind_key[l->kind < GW_NKINDS ? l->kind : GW_TOOLS];

    for (int i = 0; name && i < l->n; i++) {
        const char *k = gh_json_str(l->e[i].item, field);
        if (k && !strcmp(k, name))
            return &l->e[i];
    }
    return NULL;
}

const char *
gw_agg_failed_owner(const struct gw_list *l, const char *name)
{
    const char *bare = NULL;

    for (int i = 0; name && i < l->nfailed; i++) {
        const char *p = l->failed_prefix ? l->failed_prefix[i] : l->failed[i];
        size_t n = strlen(p);
        if (n == 0 && bare == NULL)
            bare = l->failed[i];    /* shown without prefix: any name may be its */
        else if (n && !strncmp(name, p, n) && name[n] == '_' && name[n + 1] == '_')
            return l->failed[i];
    }
    return bare;
}
