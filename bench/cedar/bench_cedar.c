/* bench_cedar POLICIES CASES ITERATIONS [json|api|prebuilt]
 * Authorizes ITERATIONS requests, cycling through CASES (pairs of lines:
 * an entities JSON array, then a request JSON object), against the policy set in
 * POLICIES (compiled once). Each timed request does what a caller holding
 * JSON must do: read the entities and the request (context included) from
 * their JSON text into the scratch arena, then authorize ("json", the
 * default). "api" is the gateway's path: the inputs are already parsed
 * (jansson, as MCP tool arguments are) and each request builds its entity
 * store and context with the C API (cedar_entities_add,
 * cedar_value_from_plain_json). With "prebuilt", entity stores and
 * requests are built before timing and only cedar_authorize is timed.
 * Prints one JSON line of figures. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct tcase {
	char *ents, *req;
	size_t elen, rlen;
	cedar_entities *es;
	struct cedar_request rq;
	json_t *jents, *jreq;
};

/* The gateway's path: entities and context from parsed JSON via the API. */
static int build_api(cedar_arena *a, const struct tcase *c, cedar_entities *es,
		     struct cedar_request *rq, struct cedar_err *err)
{
	size_t i;
	json_t *e;
	json_array_foreach(c->jents, i, e) {
		json_t *uid = json_object_get(e, "uid"), *ps = json_object_get(e, "parents");
		const cedar_value *parents[8];
		size_t np = json_array_size(ps) < 8 ? json_array_size(ps) : 8;
		for (size_t k = 0; k < np; k++) {
			json_t *p = json_array_get(ps, k);
			parents[k] = cedar_value_entity(a, json_string_value(json_object_get(p, "type")),
							json_string_value(json_object_get(p, "id")));
		}
		const cedar_value *attrs = cedar_value_from_plain_json(a, json_object_get(e, "attrs"), err);
		if (!attrs || cedar_entities_add(es, json_string_value(json_object_get(uid, "type")),
						 json_string_value(json_object_get(uid, "id")), attrs,
						 parents, np, NULL, err))
			return -1;
	}
	static const char *const names[] = {"principal", "action", "resource"};
	const cedar_value **slots[] = {&rq->principal, &rq->action, &rq->resource};
	for (int k = 0; k < 3; k++) {
		json_t *u = json_object_get(c->jreq, names[k]);
		if (!(*slots[k] = cedar_value_entity(a, json_string_value(json_object_get(u, "type")),
						     json_string_value(json_object_get(u, "id")))))
			return -1;
	}
	rq->context = cedar_value_from_plain_json(a, json_object_get(c->jreq, "context"), err);
	return rq->context ? 0 : -1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: bench_cedar POLICIES CASES ITERATIONS [prebuilt]\n");
		return 2;
	}
	long iters = atol(argv[3]);
	int prebuilt = argc > 4 && !strcmp(argv[4], "prebuilt");
	int api = argc > 4 && !strcmp(argv[4], "api");
	struct cedar_err err = {0};
	cedar_policy_set *ps = cedar_policy_set_new();
	uint64_t t0 = now_ns();
	if (cedar_policy_set_parse_file(ps, argv[1], NULL, &err)) {
		fprintf(stderr, "%s:%s\n", argv[1], err.msg);
		return 1;
	}
	uint64_t parse_ns = now_ns() - t0;
	FILE *f = fopen(argv[2], "r");
	if (!f)
		return 1;
	struct tcase *cs = NULL;
	size_t nc = 0;
	char *line = NULL;
	size_t cap = 0;
	cedar_arena *keep = cedar_arena_new(0);
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		cs = realloc(cs, (nc + 1) * sizeof(*cs));
		struct tcase *c = &cs[nc++];
		memset(c, 0, sizeof(*c));
		c->ents = strndup(line, (size_t)len);
		c->elen = (size_t)len;
		if ((len = getline(&line, &cap, f)) <= 0)
			return 1;
		c->req = strndup(line, (size_t)len);
		c->rlen = (size_t)len;
		c->jents = json_loads(c->ents, 0, NULL);
		c->jreq = json_loads(c->req, 0, NULL);
		if (!c->jents || !c->jreq)
			return 1;
		if (prebuilt) {
			c->es = cedar_entities_new();
			if (cedar_entities_load_json_text(c->es, c->ents, c->elen, &err) ||
			    cedar_json_request(keep, c->req, c->rlen, &c->rq, &err) ||
			    cedar_entities_prepare(c->es)) {
				fprintf(stderr, "case %zu: %s\n", nc, err.msg);
				return 1;
			}
		}
	}
	free(line);
	fclose(f);
	uint64_t *lat = malloc((size_t)iters * sizeof(*lat));
	cedar_arena *a = cedar_arena_new(1 << 20);
	long allows = 0;
	/* One store, emptied per request, as a gateway worker would keep. */
	cedar_entities *es = cedar_entities_new();
	for (long w = 0; w < iters / 10 + 1; w++) {   /* warm-up */
		struct tcase *c = &cs[w % nc];
		struct cedar_response resp;
		if (prebuilt)
			cedar_authorize(ps, c->es, &c->rq, a, &resp, &err);
		cedar_arena_reset(a);
	}
	uint64_t start = now_ns();
	for (long i = 0; i < iters; i++) {
		struct tcase *c = &cs[i % nc];
		struct cedar_response resp;
		uint64_t s = now_ns();
		if (prebuilt) {
			if (cedar_authorize(ps, c->es, &c->rq, a, &resp, &err))
				return 1;
		} else if (api) {
			struct cedar_request rq;
			cedar_entities_reset(es);
			if (build_api(a, c, es, &rq, &err) || cedar_authorize(ps, es, &rq, a, &resp, &err)) {
				fprintf(stderr, "request %ld: %s\n", i, err.msg);
				return 1;
			}
		} else {
			struct cedar_request rq;
			cedar_entities_reset(es);
			if (cedar_entities_load_json_text(es, c->ents, c->elen, &err) ||
			    cedar_json_request(a, c->req, c->rlen, &rq, &err) ||
			    cedar_authorize(ps, es, &rq, a, &resp, &err)) {
				fprintf(stderr, "request %ld: %s\n", i, err.msg);
				return 1;
			}
		}
		allows += resp.decision == CEDAR_ALLOW;
		cedar_arena_reset(a);
		lat[i] = now_ns() - s;
	}
	uint64_t total = now_ns() - start;
	qsort(lat, (size_t)iters, sizeof(*lat), cmp_u64);
	printf("{\"policies\":%zu,\"requests\":%ld,\"allows\":%ld,\"rps\":%.0f,\"median_us\":%.3f,"
	       "\"p99_us\":%.3f,\"parse_ms\":%.3f}\n",
	       cedar_policy_set_count(ps), iters, allows, iters / (total / 1e9),
	       lat[iters / 2] / 1e3, lat[(size_t)(iters * 0.99)] / 1e3, parse_ns / 1e6);
	for (size_t i = 0; i < nc; i++) {
		free(cs[i].ents);
		free(cs[i].req);
		cedar_entities_free(cs[i].es);
		json_decref(cs[i].jents);
		json_decref(cs[i].jreq);
	}
	free(cs);
	free(lat);
	cedar_arena_free(a);
	cedar_arena_free(keep);
	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	return 0;
}
