/*
 * gateway/policy_facts.c — what a policy decision needs besides the call,
 * with no per-call write and, under load, no per-call round trip
 * (bench/RESULTS.md: the per-call upsert and SELECT this replaces cost
 * PostgreSQL 785 µs of CPU a call):
 *  - the agent's policy generation and denial mark (migrations 070, 034):
 *    one read begun after the call arrived, shared by the calls that wait
 *    for it, so a change or a denial committed before a call began applies
 *    to it on every process (the NOTIFY alone could arrive late);
 *  - the member's role and admin flag: cached per (agent, user), flushed
 *    by NOTIFY authz_credentials, which migrations 022 and 040 raise when a
 *    user's role or a membership changes (the credential cache's own rule);
 *  - the time in the agent's zone: each zone's UTC offset asked of
 *    PostgreSQL's tz database once per UTC minute (offsets change only on
 *    minute boundaries); an explicit instant (`policy test --at`) asks;
 *  - the session's counters: calls counted in memory (per process, kept
 *    with the denials when a call is denied); denials read once per session
 *    and process, and again after the agent's denial mark moved; written
 *    only when a call is denied.
 */
#include "gateway/gw_int.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHANNEL_CREDENTIALS "authz_credentials"   /* migrations 022, 040 */
#define ROLES_MAX   4096
#define ZONES_MAX   64
#define COUNTS_MAX  65536     /* sessions counted; past it the table restarts */
#define BUCKETS     4096

static struct gh_cache *roles;

/* ---------------------------------------------------------------- role */

static int
role_get(struct gh_arena *a, const struct authz_credential *w, struct gw_facts *f, struct gh_err *e)
{
    static const char sql[] =
        "SELECT (SELECT role FROM agent_members WHERE agent_id = $1 AND user_id = $2::uuid),"
        "       coalesce((SELECT role = 'admin' FROM users WHERE id = $2::uuid), false)";
    char *key = gh_arena_printf(a, "%s/%s", w->agent.id, w->user_id), **v;
    uint64_t g = roles ? gh_cache_gen(roles) : 0;
    const char *vals[2];
    PGresult *res;
    int n = 0;

    if (key && roles && (v = gh_cache_get(roles, a, key, &n)) != NULL && n == 2) {
        f->role = v[0] ? v[0] : "member";
        f->admin = v[1] && v[1][0] == '1';
        return 0;
    }
    if ((res = db_query(a, e, sql, 2, w->agent.id, w->user_id)) == NULL)
        return -1;
    f->role = db_val(res, 0, 0) ? db_val(res, 0, 0) : "member";
    f->admin = db_bool(res, 0, 1);
    vals[0] = f->role;
    vals[1] = f->admin ? "1" : "0";
    if (key && roles)
        gh_cache_put(roles, key, vals, 2, 0, g);
    return 0;
}

/* ---------------------------------------------------------------- time */

static pthread_mutex_t zone_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zone { char name[64]; int64_t minute; long offset; } zones[ZONES_MAX];
static int nzones, zone_next;

/* The UTC offset (seconds) of zone during UTC minute `minute`. */
static int
zone_offset(struct gh_arena *a, const char *zone, int64_t minute, long *off, struct gh_err *e)
{
    static const char sql[] =
        "SELECT extract(epoch FROM (to_timestamp($2::bigint) AT TIME ZONE $1)"
        "                        - (to_timestamp($2::bigint) AT TIME ZONE 'UTC'))::bigint";
    char at[24];
    PGresult *res;
    bool cacheable = strlen(zone) < sizeof zones[0].name;
    int i;

    pthread_mutex_lock(&zone_lock);
    for (i = 0; cacheable && i < nzones; i++)
        if (zones[i].minute == minute && !strcmp(zones[i].name, zone)) {
            *off = zones[i].offset;
            pthread_mutex_unlock(&zone_lock);
            return 0;
        }
    pthread_mutex_unlock(&zone_lock);
    snprintf(at, sizeof at, "%lld", (long long)minute * 60);
    if ((res = db_query(a, e, sql, 2, zone, at)) == NULL)
        return -1;
    *off = (long)db_ll(res, 0, 0, 0);
    if (!cacheable)
        return 0;
    pthread_mutex_lock(&zone_lock);
    for (i = 0; i < nzones && strcmp(zones[i].name, zone); i++)
        ;
    if (i == nzones) {
        /* a new zone: a free slot, else round robin */
        i = nzones < ZONES_MAX ? nzones++ : zone_next++ % ZONES_MAX;
        snprintf(zones[i].name, sizeof zones[i].name, "%s", zone);
    }
    zones[i].minute = minute;
    zones[i].offset = *off;
    pthread_mutex_unlock(&zone_lock);
    return 0;
}

/* now (or `at`, asked of the database) in UTC and in the agent's zone. */
static int
time_get(struct gh_arena *a, const char *zone, const char *at, struct gw_facts *f, struct gh_err *e)
{
    static const char sql[] =
        "SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        "       to_char($1::timestamptz AT TIME ZONE $2, 'YYYY-MM-DD'),"
        "       extract(hour FROM $1::timestamptz AT TIME ZONE $2)::int,"
        "       extract(minute FROM $1::timestamptz AT TIME ZONE $2)::int,"
        "       extract(isodow FROM $1::timestamptz AT TIME ZONE $2)::int";
    struct tm utc, loc;
    time_t now, local;
    long off;
    PGresult *res;

    if (at) {
        if ((res = db_query(a, e, sql, 2, at, zone)) == NULL)
            return -1;
        f->datetime = db_val(res, 0, 0);
        f->date = db_val(res, 0, 1);
        f->hour = db_ll(res, 0, 2, 0);
        f->minute = db_ll(res, 0, 3, 0);
        f->weekday = db_ll(res, 0, 4, 0);
        return 0;
    }
    now = (time_t)gh_time_s();
    if (zone_offset(a, zone, (int64_t)now / 60, &off, e) < 0)
        return -1;
    local = now + off;
    gmtime_r(&now, &utc);
    gmtime_r(&local, &loc);
    f->datetime = gh_arena_printf(a, "%04d-%02d-%02dT%02d:%02d:%02dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    f->date = gh_arena_printf(a, "%04d-%02d-%02d", loc.tm_year + 1900, loc.tm_mon + 1, loc.tm_mday);
    f->hour = loc.tm_hour;
    f->minute = loc.tm_min;
    f->weekday = loc.tm_wday ? loc.tm_wday : 7;   /* ISO: Monday 1 .. Sunday 7 */
    if (f->datetime == NULL || f->date == NULL)
        return gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", "policy time");
    return 0;
}

/* ---------------------------------------------------------------- counters */

struct count {
    struct count *next;
    long long     calls, denials;
    long long     mark;       /* the agent's denial mark when denials was read */
    char          key[];      /* "<agent id>/<session>" */
};

static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static struct count   *buckets[BUCKETS];
static long            ncounts;

static struct count **
count_slot(const char *key)
{
    uint32_t h = 2166136261u;   /* FNV-1a */

    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &buckets[h % BUCKETS];
}

/* Under count_lock. */
static struct count *
count_find(const char *key)
{
    struct count *c;

    for (c = *count_slot(key); c && strcmp(c->key, key); c = c->next)
        ;
    return c;
}

static void
counts_clear(void)
{
    for (int i = 0; i < BUCKETS; i++)
        while (buckets[i]) {
            struct count *c = buckets[i];
            buckets[i] = c->next;
            free(c);
        }
    ncounts = 0;
}

/* Under count_lock: the entry for key with the stored counts (read at
 * the agent's denial mark `mark`). */
static struct count *
count_put(const char *key, long long calls, long long denials, long long mark)
{
    struct count *c = count_find(key), **slot;

    if (c == NULL) {
        if (ncounts >= COUNTS_MAX)
            counts_clear();   /* rare: the counts are read again as sessions call */
        if ((c = calloc(1, sizeof *c + strlen(key) + 1)) == NULL)
            return NULL;
        strcpy(c->key, key);
        slot = count_slot(key);
        c->next = *slot;
        *slot = c;
        ncounts++;
    }
    c->calls = calls > c->calls ? calls : c->calls;
    c->denials = denials > c->denials ? denials : c->denials;
    c->mark = mark > c->mark ? mark : c->mark;
    return c;
}

/* calls (this one counted) and denials (before it) of session: from
 * memory, read again when the agent's denial mark moved since. */
static int
counts_get(struct gh_arena *a, const char *agent_id, const char *session, long long mark, struct gw_facts *f,
           struct gh_err *e)
{
    char *key = gh_arena_printf(a, "%s/%s", agent_id, session);
    struct count *c;
    PGresult *res;

    if (key == NULL)
        return gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", "policy counts");
    pthread_mutex_lock(&count_lock);
    c = count_find(key);
    if (c && c->mark >= mark) {
        f->calls = ++c->calls;
        f->denials = c->denials;
        pthread_mutex_unlock(&count_lock);
        return 0;
    }
    pthread_mutex_unlock(&count_lock);
    /* the session's first call in this process, or a denial somewhere since */
    res = db_query(a, e, "SELECT calls, denials FROM policy_session_counts WHERE agent_id = $1 AND session = $2", 2,
                   agent_id, session);
    if (res == NULL)
        return -1;
    pthread_mutex_lock(&count_lock);
    c = count_put(key, PQntuples(res) ? db_ll(res, 0, 0, 0) : 0, PQntuples(res) ? db_ll(res, 0, 1, 0) : 0, mark);
    if (c) {
        f->calls = ++c->calls;
        f->denials = c->denials;
    }
    pthread_mutex_unlock(&count_lock);
    if (c == NULL)
        return gh_err_set(e, 503, "temporarily_unavailable", "Out of memory.", "policy counts");
    return 0;
}

void
gw_policy_count_denial(struct gh_arena *a, const char *agent_id, const char *session, long long calls)
{
    static const char sql[] =
        "WITH c AS (INSERT INTO policy_session_counts AS s (agent_id, session, calls, denials)"
        "           VALUES ($1, $2, $3::bigint, 1)"
        "           ON CONFLICT (agent_id, session) DO UPDATE"
        "           SET denials = s.denials + 1, calls = greatest(s.calls, $3::bigint), updated_at = now()"
        "           RETURNING denials),"
        "     m AS (INSERT INTO policy_denial_marks AS m (agent_id, mark) VALUES ($1, 1)"
        "           ON CONFLICT (agent_id) DO UPDATE SET mark = m.mark + 1 RETURNING mark)"
        " SELECT (SELECT denials FROM c), (SELECT mark FROM m)";
    char *key = gh_arena_printf(a, "%s/%s", agent_id, session), n[24];
    struct gh_err e = {0};
    PGresult *res;
    long long stored = -1;
    struct count *c;

    snprintf(n, sizeof n, "%lld", calls);
    /* a lost count only weakens a circuit breaker by one */
    if ((res = db_query(a, &e, sql, 3, agent_id, session, n)) == NULL)
        GH_LOG(WARN, "gw_policy", "denial of a session not counted: %s", e.detail[0] ? e.detail : e.msg);
    else
        stored = db_ll(res, 0, 0, -1);
    if (key == NULL)
        return;
    /* the store's count includes other processes' denials; without it
     * this process still counts its own */
    pthread_mutex_lock(&count_lock);
    if ((c = count_find(key)) != NULL)
        c->denials = stored > c->denials ? stored : c->denials + (stored < 0);
    pthread_mutex_unlock(&count_lock);
}

/* ---------------------------------------------------------------- generation */

/* The agent's policy generation (migration 070's trigger bumps it in the
 * change's transaction) as read by a query that began after the caller
 * arrived: an edit committed before a call began is seen by that call, on
 * every process, without waiting for the NOTIFY.  Concurrent callers share
 * one read (the one in flight when they arrive may predate their edit, so
 * they take the next), so under load it is one cheap read per batch. */
struct genread {
    struct genread *next;
    long long       generation, mark;
    uint64_t        started, done;  /* reads begun, the last one finished */
    bool            busy;
    char            agent[40];
};

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  gen_cond = PTHREAD_COND_INITIALIZER;
static struct genread *genreads;

static struct genread *
genread_find(const char *agent_id)
{
    struct genread *g;

    for (g = genreads; g && strcmp(g->agent, agent_id); g = g->next)
        ;
    if (g == NULL && strlen(agent_id) < sizeof g->agent && (g = calloc(1, sizeof *g)) != NULL) {
        strcpy(g->agent, agent_id);
        g->next = genreads;
        genreads = g;
    }
    return g;
}

static int
agent_read(struct gh_arena *a, const char *agent_id, struct gw_facts *f, struct gh_err *e)
{
    static const char sql[] =
        "SELECT coalesce((SELECT generation FROM policy_generations WHERE agent_id = $1), 0),"
        "       coalesce((SELECT mark FROM policy_denial_marks WHERE agent_id = $1), 0)";
    struct genread *g;
    PGresult *res;
    uint64_t need, seq;
    int rc = 0;

    pthread_mutex_lock(&gen_lock);
    if ((g = genread_find(agent_id)) == NULL) {
        pthread_mutex_unlock(&gen_lock);
        if ((res = db_query_prepared(a, e, "gw_policy_agent", sql, 1, &agent_id)) == NULL)
            return -1;
        f->generation = db_ll(res, 0, 0, 0);
        f->mark = db_ll(res, 0, 1, 0);
        return 0;
    }
    need = g->started + 1;
    while (rc == 0 && g->done < need) {
        if (g->busy) {
            pthread_cond_wait(&gen_cond, &gen_lock);
            continue;
        }
        g->busy = true;
        seq = ++g->started;
        pthread_mutex_unlock(&gen_lock);
        res = db_query_prepared(a, e, "gw_policy_agent", sql, 1, &agent_id);
        pthread_mutex_lock(&gen_lock);
        if (res) {
            g->generation = db_ll(res, 0, 0, 0);
            g->mark = db_ll(res, 0, 1, 0);
            g->done = seq;
        } else {
            rc = -1;   /* the others waiting try once more themselves */
        }
        g->busy = false;
        pthread_cond_broadcast(&gen_cond);
    }
    f->generation = g->generation;
    f->mark = g->mark;
    pthread_mutex_unlock(&gen_lock);
    return rc;
}

/* ---------------------------------------------------------------- */

void
gw_policy_facts_start(void)
{
    roles = db_cache_new(ROLES_MAX, CHANNEL_CREDENTIALS);
}

int
gw_policy_facts(struct gh_arena *a, const struct gw_policy_call *call, struct gw_facts *f, struct gh_err *e)
{
    const struct authz_agent *ag = &call->who->agent;

    if (agent_read(a, ag->id, f, e) < 0 || role_get(a, call->who, f, e) < 0 ||
        time_get(a, ag->timezone ? ag->timezone : "UTC", call->at, f, e) < 0)
        return -1;
    if (call->session == NULL) {
        f->calls = f->denials = 0;
        return 0;
    }
    return counts_get(a, ag->id, call->session, f->mark, f, e);
}
