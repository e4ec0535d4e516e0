/* cedar-corpus [--validate] ROOT SUBDIR [TESTS REQUESTS]: runs every integration test
 * (*.json other than *.entities.json) under ROOT/SUBDIR and compares decision, reasons and
 * errors for each request with the expected ones. Exit 1 on any mismatch,
 * skipped request, or (when given) other counts of tests and requests.
 *
 * With --validate it instead validates each test's policies against its
 * schema and compares the verdict with the test's `shouldValidate`,
 * printing agree / disagree / skipped (each skip with its reason). The
 * corpus was generated before Cedar made a scope that matches no action a
 * warning (cedar-policy/cedar#2545), so it is validated with that as an
 * error (CEDAR_VALIDATE_UNMATCHED_SCOPE_ERROR). Each test's entities, and
 * each request marked validateRequest, must also conform to the schema
 * (cedar_validate_entities, cedar_validate_request).
 *
 * The hand-written tests write entity references in attributes as bare
 * {"type", "id"} objects and extension values as plain strings, relying on
 * the schema to tell them apart. For those we read just what is needed of
 * the .cedarschema: which attribute names have an extension type; and bare
 * {"type","id"} objects are taken as entity references. The generated
 * corpus uses the explicit __entity/__extn forms and is read unchanged. */
#include "authz/cedar/cedar_int.h"

#include <strings.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	if (b)
		b[n] = 0;
	fclose(f);
	return b;
}

/* ---- schema hints for the hand-written tests -------------------------- */

struct hints {
	char names[64][64];
	char fns[64][16];
	int n;
};

static void schema_hints(const char *text, struct hints *h)
{
	h->n = 0;
	if (!text)
		return;
	static const char *const ext[] = {"ipaddr", "decimal", "datetime", "duration"};
	static const char *const fn[] = {"ip", "decimal", "datetime", "duration"};
	for (const char *p = text; *p; p++) {
		if (*p != ':' || p[1] == ':' || (p > text && p[-1] == ':'))
			continue;
		/* name before the colon */
		const char *e = p;
		while (e > text && (e[-1] == ' ' || e[-1] == '?'))
			e--;
		const char *s = e;
		while (s > text && (s[-1] == '_' || (s[-1] >= 'a' && s[-1] <= 'z') ||
				    (s[-1] >= 'A' && s[-1] <= 'Z') || (s[-1] >= '0' && s[-1] <= '9')))
			s--;
		const char *t = p + 1;
		while (*t == ' ')
			t++;
		if (!strncmp(t, "__cedar::", 9))
			t += 9;
		for (int i = 0; i < 4; i++) {
			size_t l = strlen(ext[i]);
			if (!strncmp(t, ext[i], l) && !(t[l] == '_' || (t[l] >= 'a' && t[l] <= 'z')) &&
			    h->n < 64 && e - s < 63 && e > s) {
				memcpy(h->names[h->n], s, (size_t)(e - s));
				h->names[h->n][e - s] = 0;
				strcpy(h->fns[h->n], fn[i]);
				h->n++;
			}
		}
	}
}

static json_t *apply_hints(json_t *v, const char *key, const struct hints *h)
{
	if (json_is_string(v) && key) {
		for (int i = 0; i < h->n; i++)
			if (!strcmp(h->names[i], key))
				return json_pack("{s:{s:s,s:O}}", "__extn", "fn", h->fns[i], "arg", v);
		return json_incref(v);
	}
	if (json_is_array(v)) {
		json_t *r = json_array();
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
			json_array_append_new(r, apply_hints(x, NULL, h));
		return r;
	}
	if (json_is_object(v)) {
		if (json_object_size(v) == 2 && json_is_string(json_object_get(v, "type")) &&
		    json_is_string(json_object_get(v, "id")))
			return json_pack("{s:O}", "__entity", v);
		json_t *r = json_object();
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
			json_object_set_new(r, k, apply_hints(x, k, h));
		return r;
	}
	return json_incref(v);
}

static json_t *hint_entities(json_t *arr, const struct hints *h)
{
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		json_t *a = json_object_get(e, "attrs");
		if (a)
			json_object_set_new(e, "attrs", apply_hints(a, NULL, h));
	}
	return arr;
}

/* ---- running ------------------------------------------------------------- */

struct stats {
	long tests, requests, matched, mismatched, skipped, test_errors;
	long v_agree, v_disagree, v_skipped;
	long data_ok, data_refused;     /* entity sets and requests against the schema */
};

static int validate_mode;

static void print_list(const char *label, const char **v, size_t n)
{
	fprintf(stderr, "    got %s: [", label);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", v[i]);
	fprintf(stderr, "]\n");
}

static int jv_set_equal(const struct cedar_jv *expected, const char **got, size_t n)
{
	if (!expected || expected->t != JV_ARR || expected->n != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int found = 0;
		for (uint32_t k = 0; k < expected->n; k++)
			if (expected->items[k].t == JV_STR && expected->items[k].n == strlen(got[i]) &&
			    !memcmp(expected->items[k].s, got[i], expected->items[k].n))
				found = 1;
		if (!found)
			return 0;
	}
	return 1;
}

static const char *jv_cstr(cedar_arena *a, const struct cedar_jv *j)
{
	char *s = j && j->t == JV_STR ? cedar_alloc(a, j->n + 1) : NULL;
	if (s)
		memcpy(s, j->s, j->n);
	return s ? s : "";
}

/* The test's entities and its requests marked validateRequest must
 * conform to the schema: the reference validated them before authorizing. */
static void check_data(const char *root, const char *path, const struct cedar_jv *t,
		       const cedar_schema *s, const struct hints *h, cedar_arena *a,
		       struct stats *st)
{
	char buf[4096];
	struct cedar_err err = {0};
	const struct cedar_jv *reqs = cedar_jv_get(t, "requests");
	cedar_entities *es = cedar_entities_new();
	json_t *ents = NULL;
	int rc = !es;
	snprintf(buf, sizeof(buf), "%s/%s", root, jv_cstr(a, cedar_jv_get(t, "entities")));
	if (!rc && h) {
		json_error_t je;
		rc = !(ents = json_load_file(buf, 0, &je)) ||
		     cedar_entities_load_json(es, hint_entities(ents, h), &err);
	} else if (!rc) {
		rc = cedar_entities_load_file(es, buf, &err);
	}
	json_decref(ents);
	if (rc || cedar_validate_entities(s, es, &err)) {
		st->data_refused++;
		if (st->data_refused <= 20)
			fprintf(stderr, "ENTITIES REFUSED %s: %s\n", path, err.msg);
	} else {
		st->data_ok++;
	}
	cedar_entities_free(es);
	for (uint32_t i = 0; reqs && reqs->t == JV_ARR && i < reqs->n; i++) {
		const struct cedar_jv *r = &reqs->items[i];
		const struct cedar_jv *vr = cedar_jv_get(r, "validateRequest");
		struct cedar_request rq = {0};
		if (!vr || vr->t != JV_TRUE)
			continue;
		memset(&err, 0, sizeof(err));
		if (r->t != JV_OBJ || cedar_json_request(a, r->s, (size_t)r->i, &rq, &err) ||
		    cedar_validate_request(s, &rq, &err)) {
			st->data_refused++;
			if (st->data_refused <= 20)
				fprintf(stderr, "REQUEST REFUSED %s request %u: %s\n", path, i, err.msg);
		} else {
			st->data_ok++;
		}
	}
}

/* One test's validation verdict against its shouldValidate. */
static void validate_test(const char *root, const char *path, const struct cedar_jv *t,
			  cedar_policy_set *ps, const char *policies, cedar_arena *a,
			  int handwritten, struct stats *st)
{
	struct hints h = {.n = 0};
	char buf[4096];
	struct cedar_err err = {0};
	struct cedar_validation res;
	const struct cedar_jv *sv = cedar_jv_get(t, "shouldValidate");
	if (!sv || (sv->t != JV_TRUE && sv->t != JV_FALSE)) {
		fprintf(stderr, "SKIP %s: no shouldValidate\n", path);
		st->v_skipped++;
		return;
	}
	if (cedar_policy_set_parse_file(ps, policies, "policy", &err)) {
		fprintf(stderr, "SKIP %s: policies do not parse: %s\n", path, err.msg);
		st->v_skipped++;
		return;
	}
	snprintf(buf, sizeof(buf), "%s/%s", root, jv_cstr(a, cedar_jv_get(t, "schema")));
	cedar_schema *s = cedar_schema_parse_file(buf, CEDAR_SCHEMA_AUTO, &err);
	if (handwritten) {
		/* The hand-written entities need the schema to be read (see top). */
		char *text = read_file(buf);
		schema_hints(text, &h);
		free(text);
	}
	int valid = 0;
	if (s) {
		if (cedar_validate(s, ps, CEDAR_VALIDATE_UNMATCHED_SCOPE_ERROR, a, &res, &err)) {
			fprintf(stderr, "SKIP %s: validation failed to run: %s\n", path, err.msg);
			st->v_skipped++;
			cedar_schema_free(s);
			return;
		}
		valid = res.n_errors == 0;
	}
	if (s)
		check_data(root, path, t, s, handwritten ? &h : NULL, a, st);
	if (valid == (sv->t == JV_TRUE)) {
		st->v_agree++;
	} else {
		st->v_disagree++;
		if (st->v_disagree <= 60) {
			fprintf(stderr, "DISAGREE %s: expected %s, got %s\n", path,
				sv->t == JV_TRUE ? "valid" : "invalid", valid ? "valid" : "invalid");
			if (!s)
				fprintf(stderr, "    schema: %s\n", err.msg);
			for (size_t i = 0; s && i < res.n_errors; i++)
				fprintf(stderr, "    %s:%d:%d: %s\n", res.errors[i].policy,
					res.errors[i].line, res.errors[i].col, res.errors[i].msg);
		}
	}
	cedar_schema_free(s);
}

/* The test descriptor is read with the engine's own JSON reader: jansson
 * refuses keys holding U+0000, which the generated corpus uses in contexts.
 * The hand-written tests need the schema hints, applied on a jansson copy. */
static void run_test(const char *root, const char *path, int handwritten, struct stats *st)
{
	char buf[4096];
	cedar_policy_set *ps = NULL;
	cedar_entities *es = NULL;
	cedar_arena *ta = cedar_arena_new(0), *a = cedar_arena_new(0);
	json_t *ents = NULL, *jt = NULL;
	char *schema = NULL, *text = NULL;
	struct cedar_err err = {0};
	struct cedar_jv t;
	const struct cedar_jv *reqs;
	st->tests++;
	if (!(text = read_file(path)) || cedar_jv_parse(ta, text, strlen(text), &t, &err) ||
	    !(reqs = cedar_jv_get(&t, "requests")) || reqs->t != JV_ARR) {
		fprintf(stderr, "UNREADABLE %s: %s\n", path, err.msg);
		st->test_errors++;
		goto out;
	}
	st->requests += reqs->n;
	snprintf(buf, sizeof(buf), "%s/%s", root, jv_cstr(ta, cedar_jv_get(&t, "policies")));
	ps = cedar_policy_set_new();
	if (validate_mode) {
		validate_test(root, path, &t, ps, buf, ta, handwritten, st);
		goto out;
	}
	if (cedar_policy_set_parse_file(ps, buf, "policy", &err)) {
		fprintf(stderr, "SKIP %s: policies do not parse: %s (%u requests)\n", path, err.msg,
			reqs->n);
		st->skipped += reqs->n;
		goto out;
	}
	snprintf(buf, sizeof(buf), "%s/%s", root, jv_cstr(ta, cedar_jv_get(&t, "entities")));
	es = cedar_entities_new();
	struct hints h = {.n = 0};
	if (handwritten) {
		json_error_t je;
		jt = json_load_file(path, 0, &je);
		ents = json_load_file(buf, 0, &je);
		snprintf(buf, sizeof(buf), "%s/%s", root, jv_cstr(ta, cedar_jv_get(&t, "schema")));
		schema = read_file(buf);
		schema_hints(schema, &h);
		if (!jt || !ents || cedar_entities_load_json(es, hint_entities(ents, &h), &err)) {
			fprintf(stderr, "SKIP %s: entities do not load: %s (%u requests)\n", path,
				err.msg, reqs->n);
			st->skipped += reqs->n;
			goto out;
		}
	} else if (cedar_entities_load_file(es, buf, &err)) {
		fprintf(stderr, "SKIP %s: entities do not load: %s (%u requests)\n", path, err.msg,
			reqs->n);
		st->skipped += reqs->n;
		goto out;
	}
	for (uint32_t i = 0; i < reqs->n; i++) {
		const struct cedar_jv *r = &reqs->items[i];
		struct cedar_request rq = {0};
		struct cedar_response resp;
		cedar_arena_reset(a);
		memset(&err, 0, sizeof(err));
		int rc = r->t == JV_OBJ ? cedar_json_request(a, r->s, (size_t)r->i, &rq, &err) : -1;
		if (!rc && handwritten) {
			json_t *ctx = json_object_get(json_array_get(json_object_get(jt, "requests"), i),
						      "context");
			json_t *hc = ctx ? apply_hints(ctx, NULL, &h) : NULL;
			rq.context = hc ? cedar_value_from_json(a, hc, &err) : NULL;
			rc = hc && !rq.context;
			json_decref(hc);
		}
		if (rc) {
			fprintf(stderr, "SKIP %s request %u: %s\n", path, i, err.msg);
			st->skipped++;
			continue;
		}
		if (cedar_authorize(ps, es, &rq, a, &resp, &err)) {
			fprintf(stderr, "MISMATCH %s request %u: authorize failed: %s\n", path, i, err.msg);
			st->mismatched++;
			continue;
		}
		const struct cedar_jv *dec = cedar_jv_get(r, "decision");
		const char *want = resp.decision == CEDAR_ALLOW ? "allow" : "deny";
		int dec_ok = dec && dec->t == JV_STR && dec->n == strlen(want) &&
			     !strncasecmp(dec->s, want, dec->n);
		int rs_ok = jv_set_equal(cedar_jv_get(r, "reason"), resp.reasons, resp.n_reasons);
		int er_ok = jv_set_equal(cedar_jv_get(r, "errors"), resp.errors, resp.n_errors);
		if (dec_ok && rs_ok && er_ok) {
			st->matched++;
			continue;
		}
		st->mismatched++;
		if (st->mismatched <= 50) {
			fprintf(stderr, "MISMATCH %s request %u (%s)\n    got decision %s\n", path, i,
				jv_cstr(a, cedar_jv_get(r, "description")), want);
			print_list("reasons", resp.reasons, resp.n_reasons);
			print_list("errors", resp.errors, resp.n_errors);
			for (size_t k = 0; k < resp.n_errors; k++)
				fprintf(stderr, "      %s: %s\n", resp.errors[k], resp.error_msgs[k]);
		}
	}
out:
	free(schema);
	free(text);
	json_decref(ents);
	json_decref(jt);
	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	cedar_arena_free(a);
	cedar_arena_free(ta);
}

static int is_test_json(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && !strcmp(name + n - 5, ".json") &&
	       !(n > 14 && !strcmp(name + n - 14, ".entities.json"));
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *root, const char *dir, int handwritten, struct stats *st)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	if (!d) {
		fprintf(stderr, "cannot open %s\n", dir);
		st->test_errors++;
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			names = realloc(names, cap * sizeof(*names));
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmpstr);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		DIR *sub = opendir(path);
		if (sub) {
			closedir(sub);
			run_dir(root, path, handwritten, st);
		} else if (is_test_json(names[i])) {
			run_test(root, path, handwritten, st);
		}
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	struct stats st = {0};
	if (argc > 1 && !strcmp(argv[1], "--validate")) {
		validate_mode = 1;
		argv++;
		argc--;
	}
	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: cedar-corpus [--validate] ROOT SUBDIR [TESTS REQUESTS]\n");
		return 2;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%s", argv[1], argv[2]);
	int handwritten = strcmp(argv[2], "corpus-tests") != 0;
	run_dir(argv[1], dir, handwritten, &st);
	if (validate_mode) {
		printf("cedar corpus %s validation: %ld tests: %ld agree, %ld disagree, "
		       "%ld skipped, %ld unreadable tests; entity sets and requests against the "
		       "schema: %ld conform, %ld refused\n", argv[2], st.tests, st.v_agree,
		       st.v_disagree, st.v_skipped, st.test_errors, st.data_ok, st.data_refused);
		if (argc == 5 && st.tests != atol(argv[3])) {
			fprintf(stderr, "expected %s tests\n", argv[3]);
			return 1;
		}
		return st.v_disagree || st.v_skipped || st.test_errors || st.data_refused ||
		       !st.tests ? 1 : 0;
	}
	printf("cedar corpus %s: %ld tests, %ld requests: %ld matched, %ld mismatched, "
	       "%ld skipped, %ld unreadable tests\n",
	       argv[2], st.tests, st.requests, st.matched, st.mismatched, st.skipped,
	       st.test_errors);
	/* The expected counts catch a corpus that was only partly read. */
	if (argc == 5 && (st.tests != atol(argv[3]) || st.requests != atol(argv[4]))) {
		fprintf(stderr, "expected %s tests and %s requests\n", argv[3], argv[4]);
		return 1;
	}
	return st.mismatched || st.skipped || st.test_errors || st.tests == 0 ? 1 : 0;
}
