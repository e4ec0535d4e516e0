/* cedar-corpus ROOT SUBDIR: runs every integration test (*.json other than
 * *.entities.json) under ROOT/SUBDIR and compares decision, reasons and
 * errors for each request with the expected ones. Exit 1 on any mismatch.
 *
 * The hand-written tests write entity references in attributes as bare
 * {"type", "id"} objects and extension values as plain strings, relying on
 * the schema to tell them apart. For those we read just what is needed of
 * the .cedarschema: which attribute names have an extension type; and bare
 * {"type","id"} objects are taken as entity references. The generated
 * corpus uses the explicit __entity/__extn forms and is read unchanged. */
#include "authz/cedar/cedar.h"

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
};

static int set_equal(json_t *expected, const char **got, size_t n)
{
	if (json_array_size(expected) != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int found = 0;
		for (size_t k = 0; k < json_array_size(expected); k++)
			if (!strcmp(json_string_value(json_array_get(expected, k)), got[i]))
				found = 1;
		if (!found)
			return 0;
	}
	return 1;
}

static void print_list(const char *label, const char **v, size_t n)
{
	fprintf(stderr, "    got %s: [", label);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", v[i]);
	fprintf(stderr, "]\n");
}

static cedar_value *uid_value(cedar_arena *a, json_t *j)
{
	struct cedar_err err = {0};
	if (!j)
		return NULL;
	if (json_is_object(j) && json_object_get(j, "__entity"))
		return cedar_value_from_json(a, j, &err);
	json_t *w = json_pack("{s:O}", "__entity", j);
	cedar_value *v = cedar_value_from_json(a, w, &err);
	json_decref(w);
	return v;
}

static void run_test(const char *root, const char *path, int handwritten, struct stats *st)
{
	json_error_t je;
	char buf[4096];
	json_t *t = json_load_file(path, JSON_ALLOW_NUL, &je);
	cedar_policy_set *ps = NULL;
	cedar_entities *es = NULL;
	cedar_arena *a = cedar_arena_new(0);
	json_t *ents = NULL;
	char *schema = NULL;
	struct cedar_err err = {0};
	st->tests++;
	if (!t) {
		fprintf(stderr, "%s: %s\n", path, je.text);
		st->test_errors++;
		goto out;
	}
	json_t *reqs = json_object_get(t, "requests");
	snprintf(buf, sizeof(buf), "%s/%s", root, json_string_value(json_object_get(t, "policies")));
	ps = cedar_policy_set_new();
	if (cedar_policy_set_parse_file(ps, buf, "policy", &err)) {
		fprintf(stderr, "SKIP %s: policies do not parse: %s (%zu requests)\n", path, err.msg,
			json_array_size(reqs));
		st->skipped += (long)json_array_size(reqs);
		st->requests += (long)json_array_size(reqs);
		goto out;
	}
	snprintf(buf, sizeof(buf), "%s/%s", root, json_string_value(json_object_get(t, "entities")));
	ents = json_load_file(buf, JSON_ALLOW_NUL, &je);
	struct hints h = {.n = 0};
	if (handwritten) {
		snprintf(buf, sizeof(buf), "%s/%s", root,
			 json_string_value(json_object_get(t, "schema")));
		schema = read_file(buf);
		schema_hints(schema, &h);
		if (ents)
			hint_entities(ents, &h);
	}
	es = cedar_entities_new();
	if (!ents || cedar_entities_load_json(es, ents, &err)) {
		fprintf(stderr, "SKIP %s: entities do not load: %s (%zu requests)\n", path,
			ents ? err.msg : je.text, json_array_size(reqs));
		st->skipped += (long)json_array_size(reqs);
		st->requests += (long)json_array_size(reqs);
		goto out;
	}
	size_t i;
	json_t *r;
	json_array_foreach(reqs, i, r) {
		struct cedar_request rq = {0};
		struct cedar_response resp;
		st->requests++;
		cedar_arena_reset(a);
		memset(&err, 0, sizeof(err));
		rq.principal = uid_value(a, json_object_get(r, "principal"));
		rq.action = uid_value(a, json_object_get(r, "action"));
		rq.resource = uid_value(a, json_object_get(r, "resource"));
		json_t *ctx = json_object_get(r, "context");
		json_t *hc = handwritten && ctx ? apply_hints(ctx, NULL, &h) : json_incref(ctx);
		rq.context = hc ? cedar_value_from_json(a, hc, &err) : NULL;
		json_decref(hc);
		if (!rq.principal || !rq.action || !rq.resource || (ctx && !rq.context)) {
			fprintf(stderr, "SKIP %s request %zu: %s\n", path, i,
				!rq.principal || !rq.action || !rq.resource
					? "principal, action or resource missing"
					: err.msg);
			st->skipped++;
			continue;
		}
		if (cedar_authorize(ps, es, &rq, a, &resp, &err)) {
			fprintf(stderr, "MISMATCH %s request %zu: authorize failed: %s\n", path, i, err.msg);
			st->mismatched++;
			continue;
		}
		const char *dec = json_string_value(json_object_get(r, "decision"));
		int dec_ok = dec && !strcasecmp(dec, resp.decision == CEDAR_ALLOW ? "allow" : "deny");
		int rs_ok = set_equal(json_object_get(r, "reason"), resp.reasons, resp.n_reasons);
		int er_ok = set_equal(json_object_get(r, "errors"), resp.errors, resp.n_errors);
		if (dec_ok && rs_ok && er_ok) {
			st->matched++;
			continue;
		}
		st->mismatched++;
		if (st->mismatched <= 50) {
			char *exp = json_dumps(r, JSON_COMPACT);
			fprintf(stderr, "MISMATCH %s request %zu\n    expected %s\n    got decision %s\n",
				path, i, exp, resp.decision == CEDAR_ALLOW ? "allow" : "deny");
			print_list("reasons", resp.reasons, resp.n_reasons);
			print_list("errors", resp.errors, resp.n_errors);
			for (size_t k = 0; k < resp.n_errors; k++)
				fprintf(stderr, "      %s: %s\n", resp.errors[k], resp.error_msgs[k]);
			free(exp);
		}
	}
out:
	free(schema);
	json_decref(ents);
	json_decref(t);
	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	cedar_arena_free(a);
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
	if (argc != 3) {
		fprintf(stderr, "usage: cedar-corpus ROOT SUBDIR\n");
		return 2;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%s", argv[1], argv[2]);
	int handwritten = strcmp(argv[2], "corpus-tests") != 0;
	run_dir(argv[1], dir, handwritten, &st);
	printf("cedar corpus %s: %ld tests, %ld requests: %ld matched, %ld mismatched, "
	       "%ld skipped, %ld unreadable tests\n",
	       argv[2], st.tests, st.requests, st.matched, st.mismatched, st.skipped,
	       st.test_errors);
	return st.mismatched || st.test_errors || st.tests == 0 ? 1 : 0;
}
