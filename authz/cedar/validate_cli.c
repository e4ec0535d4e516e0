/* `gatehouse cedar validate`: policies (and optionally entities and a
 * request) against a schema, as FILE:line:col messages; and `--batch`, one
 * JSON case per line, which the differential test drives. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>

static void print_diags(const char *file, const struct cedar_diag *d, size_t n, const char *kind)
{
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s:%d:%d: %s%s: %s\n", file, d[i].line, d[i].col, kind,
			d[i].policy, d[i].msg);
}

/* Entities and request are optional extras checked after the policies. */
static int check_data(const cedar_schema *s, const char *ef, const char *rf, cedar_arena *a)
{
	struct cedar_err err = {0};
	struct cedar_request req = {0};
	size_t n;
	char *text = NULL;
	cedar_entities *es = ef ? cedar_entities_new() : NULL;
	int rc = 0;
	if (ef && (!es || cedar_entities_load_file(es, ef, &err) ||
		   cedar_validate_entities(s, es, &err))) {
		fprintf(stderr, "%s: %s\n", ef, err.msg);
		rc = 1;
	}
	if (!rc && rf && (!(text = cedar_read_file(rf, &n, &err)) ||
			  cedar_json_request(a, text, n, &req, &err) ||
			  cedar_validate_request(s, &req, &err))) {
		fprintf(stderr, "%s: %s\n", rf, err.msg);
		rc = 1;
	}
	free(text);
	cedar_entities_free(es);
	return rc;
}

static int validate_files(const char *sf, const char *pf, const char *ef, const char *rf)
{
	struct cedar_err err = {0};
	struct cedar_validation res;
	int ret = 1;
	cedar_schema *s = NULL;
	cedar_policy_set *ps = cedar_policy_set_new();
	cedar_arena *a = cedar_arena_new(0);
	if (!ps || !a) {
		fprintf(stderr, "out of memory\n");
		goto out;
	}
	if (!(s = cedar_schema_parse_file(sf, CEDAR_SCHEMA_AUTO, &err))) {
		fprintf(stderr, "%s:%s%s\n", sf, err.line ? "" : " ", err.msg);
		goto out;
	}
	if (cedar_policy_set_parse_file(ps, pf, NULL, &err)) {
		fprintf(stderr, "%s:%s\n", pf, err.msg);
		goto out;
	}
	if (cedar_validate(s, ps, 0, a, &res, &err)) {
		fprintf(stderr, "error: %s\n", err.msg);
		goto out;
	}
	print_diags(pf, res.errors, res.n_errors, "");
	print_diags(pf, res.warnings, res.n_warnings, "warning: ");
	if (res.n_errors || check_data(s, ef, rf, a))
		goto out;
	printf("%s: ok, %zu policies validate against %s\n", pf, cedar_policy_set_count(ps), sf);
	ret = 0;
out:
	cedar_schema_free(s);
	cedar_policy_set_free(ps);
	cedar_arena_free(a);
	return ret;
}

static json_t *diags_json(const struct cedar_diag *d, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:i,s:i,s:s}", "policy", d[i].policy,
						     "line", d[i].line, "col", d[i].col,
						     "message", d[i].msg));
	return arr;
}

/* Optional "entities" and "request" of a batch case against the schema:
 * "ok", or why not. */
static json_t *batch_data(const cedar_schema *s, const struct cedar_jv *et,
			  const struct cedar_jv *rq, cedar_arena *a)
{
	struct cedar_err err = {0};
	struct cedar_request req = {0};
	cedar_entities *es = cedar_entities_new();
	int rc = !es;
	if (!rc && et && (et->t != JV_ARR ||
			  cedar_entities_load_json_text(es, et->s, (size_t)et->i, &err) ||
			  cedar_validate_entities(s, es, &err)))
		rc = 1;
	if (!rc && rq && (rq->t != JV_OBJ || cedar_json_request(a, rq->s, (size_t)rq->i, &req, &err) ||
			  cedar_validate_request(s, &req, &err)))
		rc = 1;
	cedar_entities_free(es);
	return json_string(rc ? (err.msg[0] ? err.msg : "bad entities or request") : "ok");
}

/* One case: {"schema": TEXT or JSON object, "policies": TEXT} and
 * optionally "entities" and "request", answered in "data". */
static json_t *batch_case(const char *line, size_t len, cedar_arena *a)
{
	struct cedar_err err = {0};
	struct cedar_jv j;
	struct cedar_validation res;
	const char *stage = "case";
	json_t *out = NULL;
	cedar_schema *s = NULL;
	cedar_policy_set *ps = cedar_policy_set_new();
	if (!ps || cedar_jv_parse(a, line, len, &j, &err))
		goto out;
	const struct cedar_jv *st = cedar_jv_get(&j, "schema"), *pt = cedar_jv_get(&j, "policies");
	if (!st || !pt || pt->t != JV_STR || (st->t != JV_STR && st->t != JV_OBJ)) {
		cedar_set_err(&err, CEDAR_E_INPUT, 0, 0, "a case needs \"schema\" and \"policies\"");
		goto out;
	}
	/* Policies first, as cedar-wasm reports them before the schema. */
	stage = "policies";
	if (cedar_policy_set_parse(ps, pt->s, pt->n, NULL, &err))
		goto out;
	stage = "schema";
	if (!(s = st->t == JV_STR ? cedar_schema_parse(st->s, st->n, CEDAR_SCHEMA_TEXT, &err)
				  : cedar_schema_parse(st->s, (size_t)st->i, CEDAR_SCHEMA_JSON, &err)))
		goto out;
	stage = "validate";
	if (cedar_validate(s, ps, 0, a, &res, &err))
		goto out;
	out = json_pack("{s:b,s:o,s:o}", "valid", res.n_errors == 0, "errors",
			diags_json(res.errors, res.n_errors), "warnings",
			diags_json(res.warnings, res.n_warnings));
	const struct cedar_jv *et = cedar_jv_get(&j, "entities"), *rq = cedar_jv_get(&j, "request");
	if (out && (et || rq))
		json_object_set_new(out, "data", batch_data(s, et, rq, a));
out:
	if (!out)
		out = json_pack("{s:s,s:s}", "error", err.msg, "stage", stage);
	cedar_schema_free(s);
	cedar_policy_set_free(ps);
	return out;
}

int cedar_cli_validate(int argc, char **argv)
{
	const char *sf = NULL, *pf = NULL, *ef = NULL, *rf = NULL, *bf = NULL;
	for (int i = 2; i < argc; i++) {
		const char **dst = !strcmp(argv[i], "--schema") ? &sf
				 : !strcmp(argv[i], "--policies") ? &pf
				 : !strcmp(argv[i], "--entities") ? &ef
				 : !strcmp(argv[i], "--request") ? &rf
				 : !strcmp(argv[i], "--batch") ? &bf : NULL;
		if (!dst || i + 1 >= argc)
			return 2;
		*dst = argv[++i];
	}
	if (bf)
		return sf || pf || ef || rf ? 2 : cedar_cli_batch(bf, batch_case);
	if (!sf || !pf)
		return 2;
	return validate_files(sf, pf, ef, rf);
}
