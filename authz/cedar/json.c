/* Cedar's JSON formats for values, entity uids and entities, read from the
 * jsontext.c DOM. jansson inputs are serialised and read the same way so
 * that there is one interpretation of __entity/__extn. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>

static int jv_str(const struct cedar_jv *o, const char *key, const char **s, uint32_t *n)
{
	const struct cedar_jv *v = cedar_jv_get(o, key);
	if (!v || v->t != JV_STR)
		return -1;
	*s = v->s;
	*n = v->n;
	return 0;
}

int cedar_jv_uid(cedar_arena *a, const struct cedar_jv *j, const struct cedar_uid **out,
		 struct cedar_err *err)
{
	const char *t, *id;
	uint32_t tn, idn;
	const struct cedar_jv *inner = cedar_jv_get(j, "__entity");
	if (inner)
		j = inner;
	if (!j || j->t != JV_OBJ || jv_str(j, "type", &t, &tn) || jv_str(j, "id", &id, &idn) ||
	    tn == 0) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
			      "expected an entity reference {\"type\": ..., \"id\": ...}");
		return CEDAR_E_INPUT;
	}
	if (!cedar_type_name_ok(t, tn)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "invalid entity type name \"%.*s\"",
			      tn > 64 ? 64 : (int)tn, t);
		return CEDAR_E_INPUT;
	}
	struct cedar_uid *u = cedar_uid_make(a, t, tn, id, idn);
	if (!u) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	*out = u;
	return 0;
}

static int jv_extn(cedar_arena *a, const struct cedar_jv *x, struct cedar_value *out,
		   struct cedar_err *err)
{
	const char *fn;
	uint32_t fnl;
	int is_method, arity;
	struct cedar_value args[2];
	int nargs = 0;
	if (!x || x->t != JV_OBJ || jv_str(x, "fn", &fn, &fnl))
		goto bad;
	enum cedar_ext_fn f = cedar_ext_lookup(fn, fnl, &is_method, &arity);
	if (f == EF_NONE) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "unknown extension function `%.*s`",
			      fnl > 64 ? 64 : (int)fnl, fn);
		return CEDAR_E_INPUT;
	}
	const struct cedar_jv *arg = cedar_jv_get(x, "arg");
	const struct cedar_jv *argv = cedar_jv_get(x, "args");
	if (arg) {
		if (cedar_jv_value(a, arg, &args[0], err))
			return CEDAR_E_INPUT;
		nargs = 1;
	} else if (argv && argv->t == JV_ARR && argv->n <= 2) {
		for (uint32_t i = 0; i < argv->n; i++)
			if (cedar_jv_value(a, &argv->items[i], &args[nargs++], err))
				return CEDAR_E_INPUT;
	} else {
		goto bad;
	}
	if (cedar_ext_call(f, args, nargs, out) != 0) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "invalid extension value for `%.*s`",
			      (int)fnl, fn);
		return CEDAR_E_INPUT;
	}
	return 0;
bad:
	cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "malformed __extn value");
	return CEDAR_E_INPUT;
}

/* Which escape a one-key object is, as the reference reads them: 'e' for
 * {"__entity": {"type": S, "id": S, ...}}, 'x' for {"__extn": {"fn": S,
 * "arg": V} or {"fn": S, "args": [...]}}, 'r' for {"__expr": S} (refused);
 * 0 when the shape does not fit, which makes it an ordinary record. */
static int escape_kind(const struct cedar_jv *j)
{
	const struct cedar_jv *in = &j->items[0];
	const char *s;
	uint32_t n;
	if (j->klens[0] == 8 && memcmp(j->keys[0], "__entity", 8) == 0)
		return in->t == JV_OBJ && !jv_str(in, "type", &s, &n) && !jv_str(in, "id", &s, &n)
		       ? 'e' : 0;
	if (j->klens[0] == 6 && memcmp(j->keys[0], "__extn", 6) == 0) {
		const struct cedar_jv *args = cedar_jv_get(in, "args");
		return in->t == JV_OBJ && !jv_str(in, "fn", &s, &n) &&
		       (cedar_jv_get(in, "arg") || (args && args->t == JV_ARR)) ? 'x' : 0;
	}
	if (j->klens[0] == 6 && memcmp(j->keys[0], "__expr", 6) == 0)
		return in->t == JV_STR ? 'r' : 0;
	return 0;
}

/* A JSON object as a record, its values read with the escapes; also how
 * an entity's attrs and tags are read (their own keys are never escapes). */
static int jv_record(cedar_arena *a, const struct cedar_jv *j, struct cedar_value *out,
		     struct cedar_err *err)
{
	memset(out, 0, sizeof(*out));
	out->kind = CV_RECORD;
	out->u.fields = cedar_alloc(a, sizeof(struct cedar_field) * (j->n ? j->n : 1));
	if (!out->u.fields)
		goto nomem;
	for (uint32_t i = 0; i < j->n; i++) {
		struct cedar_field *f = &out->u.fields[i];
		f->klen = j->klens[i];
		f->key = cedar_strndup(a, j->keys[i], j->klens[i]);
		if (!f->key)
			goto nomem;
		if (cedar_jv_value(a, &j->items[i], &f->v, err))
			return CEDAR_E_INPUT;
	}
	out->n = j->n;
	if (cedar_record_normalize(out->u.fields, out->n)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "duplicate key in JSON record");
		return CEDAR_E_INPUT;
	}
	return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

int cedar_jv_value(cedar_arena *a, const struct cedar_jv *j, struct cedar_value *out,
		   struct cedar_err *err)
{
	memset(out, 0, sizeof(*out));
	switch (j->t) {
	case JV_TRUE: case JV_FALSE:
		out->kind = CV_BOOL;
		out->u.i = j->t == JV_TRUE;
		return 0;
	case JV_INT:
		out->kind = CV_LONG;
		out->u.i = j->i;
		return 0;
	case JV_STR:
		/* The DOM lives as long as the caller's arena; copy anyway so
		 * values never point into a DOM the caller may drop. */
		out->kind = CV_STRING;
		out->n = j->n;
		out->u.s = cedar_strndup(a, j->s, j->n);
		if (!out->u.s)
			goto nomem;
		return 0;
	case JV_ARR:
		out->kind = CV_SET;
		out->u.items = cedar_alloc(a, sizeof(struct cedar_value) * (j->n ? j->n : 1));
		if (!out->u.items)
			goto nomem;
		for (uint32_t i = 0; i < j->n; i++)
			if (cedar_jv_value(a, &j->items[i], &out->u.items[i], err))
				return CEDAR_E_INPUT;
		out->n = cedar_set_normalize(out->u.items, j->n);
		return 0;
	case JV_OBJ:
		switch (j->n == 1 ? escape_kind(j) : 0) {
		case 'e':
			out->kind = CV_ENTITY;
			return cedar_jv_uid(a, j, &out->u.uid, err);
		case 'x':
			return jv_extn(a, &j->items[0], out, err);
		case 'r':
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
				      "the __expr escape is no longer supported");
			return CEDAR_E_INPUT;
		}
		return jv_record(a, j, out, err);
	default:
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "null is not a Cedar value");
		return CEDAR_E_INPUT;
	}
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

/* Plain JSON (tool arguments): no escapes, so records may hold any key. */
static int plain_value(cedar_arena *a, const json_t *j, struct cedar_value *out,
		       struct cedar_err *err, int depth)
{
	memset(out, 0, sizeof(*out));
	if (depth > 256) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "JSON nested too deeply");
		return CEDAR_E_INPUT;
	}
	switch (json_typeof(j)) {
	case JSON_TRUE: case JSON_FALSE:
		out->kind = CV_BOOL;
		out->u.i = json_is_true(j);
		return 0;
	case JSON_INTEGER:
		out->kind = CV_LONG;
		out->u.i = (int64_t)json_integer_value(j);
		return 0;
	case JSON_STRING:
		out->kind = CV_STRING;
		out->n = (uint32_t)json_string_length(j);
		out->u.s = cedar_strndup(a, json_string_value(j), out->n);
		return out->u.s ? 0 : CEDAR_E_NOMEM;
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		out->kind = CV_SET;
		out->u.items = cedar_alloc(a, sizeof(struct cedar_value) * (n ? n : 1));
		if (!out->u.items)
			return CEDAR_E_NOMEM;
		for (size_t i = 0; i < n; i++)
			if (plain_value(a, json_array_get(j, i), &out->u.items[i], err, depth + 1))
				return CEDAR_E_INPUT;
		out->n = cedar_set_normalize(out->u.items, (uint32_t)n);
		return 0;
	}
	case JSON_OBJECT: {
		size_t n = json_object_size(j), i = 0;
		const char *k;
		json_t *v;
		out->kind = CV_RECORD;
		out->u.fields = cedar_alloc(a, sizeof(struct cedar_field) * (n ? n : 1));
		if (!out->u.fields)
			return CEDAR_E_NOMEM;
		json_object_foreach((json_t *)j, k, v) {
			struct cedar_field *f = &out->u.fields[i++];
			f->klen = (uint32_t)strlen(k);
			f->key = cedar_strndup(a, k, f->klen);
			if (!f->key)
				return CEDAR_E_NOMEM;
			if (plain_value(a, v, &f->v, err, depth + 1))
				return CEDAR_E_INPUT;
		}
		out->n = (uint32_t)i;
		cedar_record_normalize(out->u.fields, out->n);
		return 0;
	}
	default:
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
			      "unsupported JSON value (null or non-integer number)");
		return CEDAR_E_INPUT;
	}
}

cedar_value *cedar_value_from_json_text(cedar_arena *a, const char *text, size_t len,
					struct cedar_err *err)
{
	struct cedar_jv j;
	cedar_value *v = a && text ? cedar_alloc(a, sizeof(*v)) : NULL;
	if (!v || cedar_jv_parse(a, text, len, &j, err) || cedar_jv_value(a, &j, v, err))
		return NULL;
	return v;
}

cedar_value *cedar_value_from_json(cedar_arena *a, const json_t *j, struct cedar_err *err)
{
	char *s = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	if (!s) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "no JSON value");
		return NULL;
	}
	cedar_value *v = cedar_value_from_json_text(a, s, strlen(s), err);
	free(s);
	return v;
}

cedar_value *cedar_value_from_plain_json(cedar_arena *a, const json_t *j,
					 struct cedar_err *err)
{
	cedar_value *v = a ? cedar_alloc(a, sizeof(*v)) : NULL;
	if (!v || !j || plain_value(a, j, v, err, 0)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "invalid JSON value");
		return NULL;
	}
	return v;
}

int cedar_entities_load_jv(cedar_entities *es, const struct cedar_jv *arr,
			   struct cedar_err *err)
{
	int rc = 0;
	/* Built straight into the store's arena and adopted, not copied. */
	cedar_arena *tmp = es->arena;
	if (arr->t != JV_ARR) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entities JSON must be an array");
		rc = CEDAR_E_INPUT;
		goto out;
	}
	for (uint32_t i = 0; i < arr->n; i++) {
		const struct cedar_jv *ej = &arr->items[i];
		const struct cedar_uid *uid;
		struct cedar_value attrs = {.kind = CV_RECORD}, tags = {.kind = CV_RECORD};
		const struct cedar_jv *jp = cedar_jv_get(ej, "parents");
		const struct cedar_jv *ja = cedar_jv_get(ej, "attrs");
		const struct cedar_jv *jt = cedar_jv_get(ej, "tags");
		/* As the reference: uid, attrs and parents are required; tags not. */
		if ((rc = cedar_jv_uid(tmp, cedar_jv_get(ej, "uid"), &uid, err)))
			goto out;
		if (!ja || ja->t != JV_OBJ || !jp || jp->t != JV_ARR ||
		    (jt && jt->t != JV_OBJ)) {
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity %u needs \"attrs\" (an "
				      "object) and \"parents\" (an array); \"tags\" must be an "
				      "object", i);
			rc = CEDAR_E_INPUT;
			goto out;
		}
		uint32_t np = jp->n;
		const struct cedar_uid **parents = cedar_alloc(tmp, sizeof(*parents) * (np + 1));
		if (!parents) {
			cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
			rc = CEDAR_E_NOMEM;
			goto out;
		}
		if ((rc = jv_record(tmp, ja, &attrs, err)) ||
		    (jt && (rc = jv_record(tmp, jt, &tags, err))))
			goto out;
		for (uint32_t k = 0; k < np; k++)
			if ((rc = cedar_jv_uid(tmp, &jp->items[k], &parents[k], err)))
				goto out;
		if ((rc = cedar_entities_add_uid(es, uid, &attrs, parents, np, &tags, 1, err)))
			goto out;
	}
out:
	return rc;
}

int cedar_entities_load_json_text(cedar_entities *es, const char *text, size_t len,
				  struct cedar_err *err)
{
	struct cedar_jv j;
	if (!es || !text) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "no entity store or text");
		return CEDAR_E_INPUT;
	}
	/* The DOM goes to a scratch arena kept with the store, so loading
	 * into a reused store allocates nothing once warm. */
	if (!es->scratch && !(es->scratch = cedar_arena_new(0))) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	int rc = cedar_jv_parse(es->scratch, text, len, &j, err);
	if (!rc)
		rc = cedar_entities_load_jv(es, &j, err);
	cedar_arena_reset(es->scratch);
	return rc;
}

int cedar_entities_load_json(cedar_entities *es, const json_t *arr, struct cedar_err *err)
{
	char *s = arr ? json_dumps(arr, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	if (!s) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "no JSON value");
		return CEDAR_E_INPUT;
	}
	int rc = cedar_entities_load_json_text(es, s, strlen(s), err);
	free(s);
	return rc;
}

char *cedar_read_file(const char *path, size_t *len, struct cedar_err *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	if (!f) {
		cedar_set_err(err, CEDAR_E_IO, 0, 0, "cannot open %s", path);
		return NULL;
	}
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
				return NULL;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = 0;
	*len = n;
	return buf;
}

int cedar_entities_load_file(cedar_entities *es, const char *path, struct cedar_err *err)
{
	size_t n;
	char *s = cedar_read_file(path, &n, err);
	if (!s)
		return CEDAR_E_IO;
	int rc = cedar_entities_load_json_text(es, s, n, err);
	free(s);
	return rc;
}

/* A request object {"principal", "action", "resource", "context"}; the
 * entity references may be {"type","id"} or {"__entity": {...}}. */
int cedar_jv_request(cedar_arena *a, const struct cedar_jv *j, struct cedar_request *req,
		     struct cedar_err *err)
{
	static const char *const names[] = {"principal", "action", "resource"};
	const cedar_value **slots[] = {&req->principal, &req->action, &req->resource};
	if (j->t != JV_OBJ) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request must be a JSON object");
		return CEDAR_E_INPUT;
	}
	for (int i = 0; i < 3; i++) {
		struct cedar_value *v = cedar_alloc(a, sizeof(*v));
		if (!v) {
			cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
			return CEDAR_E_NOMEM;
		}
		v->kind = CV_ENTITY;
		struct cedar_err inner = {0};
		if (cedar_jv_uid(a, cedar_jv_get(j, names[i]), &v->u.uid, &inner)) {
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request %s must be an entity reference",
				      names[i]);
			return CEDAR_E_INPUT;
		}
		*slots[i] = v;
	}
	const struct cedar_jv *c = cedar_jv_get(j, "context");
	req->context = NULL;
	if (c) {   /* absent means {}; null is refused, as by the reference */
		struct cedar_value *v = cedar_alloc(a, sizeof(*v));
		if (!v) {
			cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
			return CEDAR_E_NOMEM;
		}
		struct cedar_err inner = {0};
		if (c->t != JV_OBJ || cedar_jv_value(a, c, v, &inner) || v->kind != CV_RECORD) {
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request context must be a record%s%s",
				      inner.msg[0] ? ": " : "", inner.msg);
			return CEDAR_E_INPUT;
		}
		req->context = v;
	}
	return 0;
}
