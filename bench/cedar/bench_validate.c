/* bench_validate SCHEMA POLICIES ITERATIONS
 * Validates the policy set in POLICIES against SCHEMA ITERATIONS times.
 * "full" times what one cedar-wasm validate() call does: parse the schema,
 * parse the policies, validate; "validate" times cedar_validate alone on
 * the parsed inputs. Prints one JSON line of medians. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
	if (argc != 4) {
		fprintf(stderr, "usage: bench_validate SCHEMA POLICIES ITERATIONS\n");
		return 2;
	}
	long iters = atol(argv[3]);
	size_t sn, pn, npol = 0, nerr = 0, nwarn = 0;
	struct cedar_err err = {0};
	char *stext = cedar_read_file(argv[1], &sn, &err), *ptext = cedar_read_file(argv[2], &pn, &err);
	uint64_t *full = calloc((size_t)iters + 1, sizeof(*full));
	uint64_t *val = calloc((size_t)iters + 1, sizeof(*val));
	cedar_arena *a = cedar_arena_new(0);
	if (!stext || !ptext || !full || !val || !a || iters < 1) {
		fprintf(stderr, "cannot read inputs: %s\n", err.msg);
		return 1;
	}
	for (long i = 0; i < iters; i++) {
		struct cedar_validation res;
		uint64_t t0 = now_ns();
		cedar_schema *s = cedar_schema_parse(stext, sn, CEDAR_SCHEMA_AUTO, &err);
		cedar_policy_set *ps = cedar_policy_set_new();
		if (!s || !ps || cedar_policy_set_parse(ps, ptext, pn, NULL, &err)) {
			fprintf(stderr, "error: %s\n", err.msg);
			return 1;
		}
		uint64_t t1 = now_ns();
		if (cedar_validate(s, ps, 0, a, &res, &err)) {
			fprintf(stderr, "error: %s\n", err.msg);
			return 1;
		}
		uint64_t t2 = now_ns();
		full[i] = t2 - t0;
		val[i] = t2 - t1;
		npol = cedar_policy_set_count(ps);
		nerr = res.n_errors;
		nwarn = res.n_warnings;
		for (size_t k = 0; i == 0 && k < res.n_errors && k < 5; k++)
			fprintf(stderr, "%s:%d:%d: %s\n", res.errors[k].policy, res.errors[k].line,
				res.errors[k].col, res.errors[k].msg);
		cedar_policy_set_free(ps);
		cedar_schema_free(s);
		cedar_arena_reset(a);
	}
	qsort(full, (size_t)iters, sizeof(*full), cmp_u64);
	qsort(val, (size_t)iters, sizeof(*val), cmp_u64);
	printf("{\"policies\":%zu,\"errors\":%zu,\"warnings\":%zu,\"iterations\":%ld,"
	       "\"full_median_ms\":%.3f,\"validate_median_ms\":%.3f}\n",
	       npol, nerr, nwarn, iters, full[iters / 2] / 1e6, val[iters / 2] / 1e6);
	free(full);
	free(val);
	free(stext);
	free(ptext);
	cedar_arena_free(a);
	return 0;
}
