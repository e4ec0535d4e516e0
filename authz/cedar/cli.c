/* `gatehouse cedar check FILE` and `gatehouse cedar authorize ...`;
 * `validate` is in validate_cli.c. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>

static int usage(void)
{
	fprintf(stderr,
		"usage: gatehouse cedar check FILE\n"
		"       gatehouse cedar authorize --policies FILE --entities FILE --request FILE\n"
		"       gatehouse cedar authorize --batch FILE   (JSON lines; - for stdin)\n"
		"       gatehouse cedar validate --schema FILE --policies FILE"
		" [--entities FILE] [--request FILE]\n"
		"       gatehouse cedar validate --batch FILE    (JSON lines; - for stdin)\n");
	return 2;
}

static int cmd_check(int argc, char **argv)
{
	struct cedar_err err = {0};
	if (argc != 3)
		return usage();
	cedar_policy_set *ps = cedar_policy_set_new();
	if (!ps) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	int rc = cedar_policy_set_parse_file(ps, argv[2], NULL, &err);
	if (rc)
		fprintf(stderr, "%s:%s\n", argv[2], err.msg);
	else
		printf("%s: ok, %zu policies\n", argv[2], cedar_policy_set_count(ps));
	cedar_policy_set_free(ps);
	return rc ? 1 : 0;
}

static int load_request(cedar_arena *a, const char *path, struct cedar_request *req,
			struct cedar_err *err)
{
	size_t n;
	char *text = cedar_read_file(path, &n, err);
	if (!text)
		return CEDAR_E_IO;
	int rc = cedar_json_request(a, text, n, req, err);
	free(text);
	return rc;
}

static json_t *response_json(const struct cedar_response *resp)
{
	json_t *out = json_object(), *reasons = json_array(), *errors = json_array();
	json_object_set_new(out, "decision",
			    json_string(resp->decision == CEDAR_ALLOW ? "allow" : "deny"));
	for (size_t i = 0; i < resp->n_reasons; i++)
		json_array_append_new(reasons, json_string(resp->reasons[i]));
	for (size_t i = 0; i < resp->n_errors; i++)
		json_array_append_new(errors, json_pack("{s:s,s:s}", "policy", resp->errors[i],
							"message", resp->error_msgs[i]));
	json_object_set_new(out, "reasons", reasons);
	json_object_set_new(out, "errors", errors);
	return out;
}

/* One case: {"policies": TEXT, "entities": [...], "request": {...}}. */
static json_t *batch_case(const char *line, size_t len, cedar_arena *a)
{
	struct cedar_err err = {0};
	struct cedar_jv j;
	struct cedar_request req = {0};
	struct cedar_response resp;
	json_t *out = NULL;
	const char *stage = "case";
	cedar_policy_set *ps = cedar_policy_set_new();
	cedar_entities *es = cedar_entities_new();
	if (!ps || !es) {
		cedar_set_err(&err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		goto out;
	}
	if (cedar_jv_parse(a, line, len, &j, &err))
		goto out;
	const struct cedar_jv *pt = cedar_jv_get(&j, "policies");
	const struct cedar_jv *et = cedar_jv_get(&j, "entities");
	const struct cedar_jv *rq = cedar_jv_get(&j, "request");
	if (!pt || pt->t != JV_STR || !rq) {
		cedar_set_err(&err, CEDAR_E_INPUT, 0, 0, "a case needs \"policies\" and \"request\"");
		goto out;
	}
	stage = "policies";
	if (cedar_policy_set_parse(ps, pt->s, pt->n, NULL, &err))
		goto out;
	/* As cedar-wasm: templates go in "templates", not among the policies. */
	if (cedar_policy_set_template_count(ps)) {
		cedar_set_err(&err, CEDAR_E_INPUT, 0, 0, "static policy set includes a template");
		goto out;
	}
	/* Optional templates {"id": TEXT} and links [{templateId, newId,
	 * values: {"?principal": uid, "?resource": uid}}], as cedar-wasm takes. */
	const struct cedar_jv *tp = cedar_jv_get(&j, "templates");
	const struct cedar_jv *lk = cedar_jv_get(&j, "links");
	stage = "templates";
	for (uint32_t i = 0; tp && tp->t == JV_OBJ && i < tp->n; i++) {
		const struct cedar_jv *tt = &tp->items[i];
		if (tt->t != JV_STR || memchr(tp->keys[i], 0, tp->klens[i])) {
			cedar_set_err(&err, CEDAR_E_INPUT, 0, 0, "a template must be a string");
			goto out;
		}
		if (cedar_policy_set_add(ps, tp->keys[i], tt->s, tt->n, &err))
			goto out;
	}
	stage = "links";
	for (uint32_t i = 0; lk && lk->t == JV_ARR && i < lk->n; i++) {
		const struct cedar_jv *l = &lk->items[i];
		const struct cedar_jv *tid = cedar_jv_get(l, "templateId");
		const struct cedar_jv *nid = cedar_jv_get(l, "newId");
		const struct cedar_jv *vals = cedar_jv_get(l, "values");
		cedar_value *slot[2] = {NULL, NULL};
		static const char *const sn[2] = {"?principal", "?resource"};
		if (!tid || tid->t != JV_STR || !nid || nid->t != JV_STR) {
			cedar_set_err(&err, CEDAR_E_INPUT, 0, 0, "a link needs templateId and newId");
			goto out;
		}
		for (int k = 0; k < 2; k++) {
			const struct cedar_jv *u = cedar_jv_get(vals, sn[k]);
			if (!u)
				continue;
			slot[k] = cedar_alloc(a, sizeof(*slot[k]));
			if (!slot[k] || cedar_jv_uid(a, u, &slot[k]->u.uid, &err))
				goto out;
			slot[k]->kind = CV_ENTITY;
		}
		if (cedar_policy_set_link(ps, tid->s, nid->s, slot[0], slot[1], &err))
			goto out;
	}
	/* Entities and request are read from their own text, as from files. */
	stage = "entities";
	if (et && (et->t != JV_ARR || cedar_entities_load_json_text(es, et->s, (size_t)et->i, &err))) {
		cedar_set_err(&err, CEDAR_E_INPUT, 0, 0, "entities must be an array");
		goto out;
	}
	stage = "request";
	if (rq->t != JV_OBJ || cedar_json_request(a, rq->s, (size_t)rq->i, &req, &err)) {
		cedar_set_err(&err, CEDAR_E_INPUT, 0, 0, "request must be an object");
		goto out;
	}
	stage = "authorize";
	if (cedar_authorize(ps, es, &req, a, &resp, &err))
		goto out;
	out = response_json(&resp);
out:
	if (!out)
		out = json_pack("{s:s,s:s}", "error", err.msg, "stage", stage);
	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	return out;
}

/* One JSON case a line from path (- for stdin), one JSON answer a line on
 * stdout; `authorize --batch` and `validate --batch` differ only in fn. */
int cedar_cli_batch(const char *path, json_t *(*fn)(const char *line, size_t len, cedar_arena *a))
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	cedar_arena *a = cedar_arena_new(0);
	if (!f || !a) {
		fprintf(stderr, "cannot open %s\n", path);
		cedar_arena_free(a);
		if (f && f != stdin)
			fclose(f);
		return 1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		if (n == 1 && line[0] == '\n')
			continue;
		json_t *out = fn(line, (size_t)n, a);
		char *s = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(out);
		cedar_arena_reset(a);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	cedar_arena_free(a);
	return 0;
}

static int cmd_authorize(int argc, char **argv)
{
	const char *pf = NULL, *ef = NULL, *rf = NULL, *bf = NULL;
	for (int i = 2; i < argc; i++) {
		const char **dst = !strcmp(argv[i], "--policies") ? &pf
				 : !strcmp(argv[i], "--entities") ? &ef
				 : !strcmp(argv[i], "--request") ? &rf
				 : !strcmp(argv[i], "--batch") ? &bf : NULL;
		if (!dst || i + 1 >= argc)
			return usage();
		*dst = argv[++i];
	}
	if (bf && !pf && !ef && !rf)
		return cedar_cli_batch(bf, batch_case);
	if (bf || !pf || !ef || !rf)
		return usage();
	struct cedar_err err = {0};
	struct cedar_request req = {0};
	struct cedar_response resp;
	int ret = 1;
	cedar_policy_set *ps = cedar_policy_set_new();
	cedar_entities *es = cedar_entities_new();
	cedar_arena *a = cedar_arena_new(0);
	json_t *out = NULL;
	if (!ps || !es || !a) {
		fprintf(stderr, "out of memory\n");
		goto out;
	}
	if (cedar_policy_set_parse_file(ps, pf, NULL, &err)) {
		fprintf(stderr, "%s:%s\n", pf, err.msg);
		goto out;
	}
	if (cedar_entities_load_file(es, ef, &err) || load_request(a, rf, &req, &err) ||
	    cedar_authorize(ps, es, &req, a, &resp, &err)) {
		fprintf(stderr, "error: %s\n", err.msg);
		goto out;
	}
	out = response_json(&resp);
	char *s = json_dumps(out, JSON_INDENT(2));
	if (s) {
		printf("%s\n", s);
		free(s);
		ret = 0;
	}
out:
	json_decref(out);
	cedar_arena_free(a);
	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	return ret;
}

int cedar_cli_main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc, argv);
	if (!strcmp(argv[1], "authorize"))
		return cmd_authorize(argc, argv);
	if (!strcmp(argv[1], "validate")) {
		int rc = cedar_cli_validate(argc, argv);
		return rc == 2 ? usage() : rc;
	}
	return usage();
}
