/* Cedar's JSON formats for values, entity uids, entities and requests.
 * Text is read straight into values (the direct reader below); the shapes
 * whose meaning depends on a whole object (escapes, entity references) are
 * read through the jsontext.c DOM and interpreted in one place here.
 * jansson inputs are serialised and read the same way. */
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

static int uid_make_checked(cedar_arena *a, const char *t, uint32_t tn, const char *id,
			    uint32_t idn, const struct cedar_uid **out, struct cedar_err *err);

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
	return uid_make_checked(a, t, tn, id, idn, out, err);
}

static int uid_make_checked(cedar_arena *a, const char *t, uint32_t tn, const char *id,
			    uint32_t idn, const struct cedar_uid **out, struct cedar_err *err)
{
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

/* ---- direct reading ---------------------------------------------------
 * Entities, values and requests are read from JSON text straight into
 * values, without a DOM: the bulk of the text (attrs, context, tool
 * arguments) is records, sets and scalars. The few shapes whose meaning
 * depends on the whole object, an object whose first key begins with `_`
 * (a possible __entity/__extn/__expr escape) and entity references, are read
 * as a DOM into a scratch arena and converted by cedar_jv_value/cedar_jv_uid
 * above, so there is one interpretation of them. */

struct dreader {
	struct cedar_jrd r;      /* r.a: where values go */
	cedar_arena *tmp;        /* DOMs of escapes, uids and skipped members */
};

static int d_value(struct dreader *d, struct cedar_value *out);

static int d_dom(struct dreader *d, struct cedar_jv *j)
{
	cedar_arena *va = d->r.a;
	d->r.a = d->tmp;
	int rc = cedar_jrd_value(&d->r, j);
	d->r.a = va;
	return rc ? CEDAR_E_PARSE : 0;
}

static int d_expect(struct dreader *d, char c, const char *what)
{
	cedar_jrd_ws(&d->r);
	if (d->r.pos < d->r.n && d->r.s[d->r.pos] == c) {
		d->r.pos++;
		return 0;
	}
	cedar_jrd_fail(&d->r, what);
	return CEDAR_E_PARSE;
}

/* After an item: 1 at the closing bracket, 0 after a comma. */
static int d_next(struct dreader *d, char close, const char *what)
{
	cedar_jrd_ws(&d->r);
	if (d->r.pos < d->r.n && d->r.s[d->r.pos] == ',') {
		d->r.pos++;
		return 0;
	}
	if (d->r.pos < d->r.n && d->r.s[d->r.pos] == close) {
		d->r.pos++;
		return 1;
	}
	cedar_jrd_fail(&d->r, what);
	return CEDAR_E_PARSE;
}

/* At '{'. With escapes, an object that may be one goes the DOM way. */
static int d_record(struct dreader *d, struct cedar_value *out, int escapes)
{
	struct cedar_jrd *r = &d->r;
	size_t start = r->pos;
	uint32_t n = 0, cap = 0;
	struct cedar_field *f = NULL;
	memset(out, 0, sizeof(*out));
	out->kind = CV_RECORD;
	r->pos++;
	cedar_jrd_ws(r);
	if (escapes && r->pos + 1 < r->n && r->s[r->pos] == '"' &&
	    (r->s[r->pos + 1] == '_' || r->s[r->pos + 1] == '\\')) {
		struct cedar_jv j;
		r->pos = start;
		if (d_dom(d, &j))
			return CEDAR_E_PARSE;
		return cedar_jv_value(r->a, &j, out, r->err);
	}
	if (++r->depth > 512)
		return cedar_jrd_fail(r, "nested too deeply"), CEDAR_E_PARSE;
	if (r->pos < r->n && r->s[r->pos] == '}') {
		r->pos++;
		goto done;
	}
	for (;;) {
		if (n == cap) {
			uint32_t nc = cap ? cap * 2 : 8;
			struct cedar_field *nf = cedar_alloc_raw(r->a, nc * sizeof(*nf));
			if (!nf)
				goto nomem;
			if (n)
				memcpy(nf, f, n * sizeof(*nf));
			f = nf;
			cap = nc;
		}
		cedar_jrd_ws(r);
		if (r->pos >= r->n || r->s[r->pos] != '"')
			return cedar_jrd_fail(r, "expected object key"), CEDAR_E_PARSE;
		if (cedar_jrd_string(r, &f[n].key, &f[n].klen) || d_expect(d, ':', "expected `:`") ||
		    d_value(d, &f[n].v))
			return CEDAR_E_PARSE;
		n++;
		int rc = d_next(d, '}', "expected `,` or `}`");
		if (rc < 0)
			return rc;
		if (rc)
			break;
	}
done:
	r->depth--;
	out->u.fields = f;
	out->n = n;
	if (cedar_record_normalize(f, n)) {
		cedar_set_err(r->err, CEDAR_E_INPUT, 0, 0, "duplicate key in JSON record");
		return CEDAR_E_INPUT;
	}
	return 0;
nomem:
	cedar_set_err(r->err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

static int d_set(struct dreader *d, struct cedar_value *out)
{
	struct cedar_jrd *r = &d->r;
	uint32_t n = 0, cap = 0;
	struct cedar_value *v = NULL;
	memset(out, 0, sizeof(*out));
	out->kind = CV_SET;
	r->pos++;
	if (++r->depth > 512)
		return cedar_jrd_fail(r, "nested too deeply"), CEDAR_E_PARSE;
	cedar_jrd_ws(r);
	if (r->pos < r->n && r->s[r->pos] == ']') {
		r->pos++;
		goto done;
	}
	for (;;) {
		if (n == cap) {
			uint32_t nc = cap ? cap * 2 : 8;
			struct cedar_value *nv = cedar_alloc_raw(r->a, nc * sizeof(*nv));
			if (!nv) {
				cedar_set_err(r->err, CEDAR_E_NOMEM, 0, 0, "out of memory");
				return CEDAR_E_NOMEM;
			}
			if (n)
				memcpy(nv, v, n * sizeof(*nv));
			v = nv;
			cap = nc;
		}
		if (d_value(d, &v[n]))
			return CEDAR_E_PARSE;
		n++;
		int rc = d_next(d, ']', "expected `,` or `]`");
		if (rc < 0)
			return rc;
		if (rc)
			break;
	}
done:
	r->depth--;
	out->u.items = v;
	out->n = cedar_set_normalize(v, n);
	return 0;
}

static int d_value(struct dreader *d, struct cedar_value *out)
{
	struct cedar_jrd *r = &d->r;
	cedar_jrd_ws(r);
	char c = r->pos < r->n ? r->s[r->pos] : 0;
	if (c == '{')
		return d_record(d, out, 1);
	if (c == '[')
		return d_set(d, out);
	if (c == '"') {
		if (r->depth >= 512)   /* counted as the DOM reader counts it */
			return cedar_jrd_fail(r, "nested too deeply"), CEDAR_E_PARSE;
		memset(out, 0, sizeof(*out));
		out->kind = CV_STRING;
		return cedar_jrd_string(r, &out->u.s, &out->n) ? CEDAR_E_PARSE : 0;
	}
	struct cedar_jv j;   /* scalars allocate nothing */
	if (cedar_jrd_value(r, &j))
		return CEDAR_E_PARSE;
	return cedar_jv_value(r->a, &j, out, r->err);
}

static int d_end(struct dreader *d)
{
	cedar_jrd_ws(&d->r);
	if (d->r.pos != d->r.n) {
		cedar_jrd_fail(&d->r, "trailing characters after JSON value");
		return CEDAR_E_PARSE;
	}
	return 0;
}

cedar_value *cedar_value_from_json_text(cedar_arena *a, const char *text, size_t len,
					struct cedar_err *err)
{
	cedar_value *v = a && text ? cedar_alloc(a, sizeof(*v)) : NULL;
	struct dreader d = {.r = {.s = text, .n = len, .a = a, .err = err}, .tmp = a};
	if (!v || d_value(&d, v) || d_end(&d))
		return NULL;
	return v;
}

/* An entity reference into ua. The plain {"type": S, "id": S} (either
 * order) is read directly; anything else, __entity included, goes the DOM
 * way through cedar_jv_uid, which has the last word on what is valid. */
static int d_uid(struct dreader *d, cedar_arena *ua, const struct cedar_uid **out,
		 struct cedar_err *err)
{
	struct cedar_jrd *r = &d->r;
	cedar_arena *va = r->a;
	const char *t = NULL, *id = NULL;
	uint32_t tn = 0, idn = 0;
	struct cedar_jv j;
	cedar_jrd_ws(r);
	size_t start = r->pos;
	if (r->pos >= r->n || r->s[r->pos] != '{')
		goto slow;
	r->pos++;
	r->a = d->tmp;
	for (int k = 0; k < 2; k++) {
		cedar_jrd_ws(r);
		const char *p = r->s + r->pos;
		size_t left = r->n - r->pos;
		int is_type = left >= 6 && memcmp(p, "\"type\"", 6) == 0;
		if (!is_type && !(left >= 4 && memcmp(p, "\"id\"", 4) == 0))
			goto slow;
		if ((is_type && t) || (!is_type && id))
			goto slow;
		r->pos += is_type ? 6 : 4;
		cedar_jrd_ws(r);
		if (r->pos >= r->n || r->s[r->pos] != ':')
			goto slow;
		r->pos++;
		cedar_jrd_ws(r);
		if (r->pos >= r->n || r->s[r->pos] != '"' ||
		    cedar_jrd_string(r, is_type ? &t : &id, is_type ? &tn : &idn))
			goto slow;
		cedar_jrd_ws(r);
		if (r->pos >= r->n || r->s[r->pos] != (k ? '}' : ','))
			goto slow;
		r->pos++;
	}
	r->a = va;
	if (tn == 0)
		goto slow;
	return uid_make_checked(ua, t, tn, id, idn, out, err);
slow:
	r->a = va;
	r->pos = start;
	if (d_dom(d, &j))
		return CEDAR_E_PARSE;
	return cedar_jv_uid(ua, &j, out, err);
}

/* Member name at '"' (read into tmp); the reader stands after the ':'. */
static int d_key(struct dreader *d, const char **k, uint32_t *kn)
{
	cedar_arena *va = d->r.a;
	d->r.a = d->tmp;
	cedar_jrd_ws(&d->r);
	int rc = d->r.pos < d->r.n && d->r.s[d->r.pos] == '"' ? cedar_jrd_string(&d->r, k, kn)
		: cedar_jrd_fail(&d->r, "expected object key");
	d->r.a = va;
	return rc || d_expect(d, ':', "expected `:`") ? CEDAR_E_PARSE : 0;
}

static int key_is(const char *k, uint32_t kn, const char *name)
{
	return kn == strlen(name) && memcmp(k, name, kn) == 0;
}

/* An array of entity references, at '['; kept in the store's arena. */
static int d_parents(struct dreader *d, cedar_entities *es, const struct cedar_uid ***out,
		     uint32_t *n_out)
{
	const struct cedar_uid **v = NULL;
	uint32_t n = 0, cap = 0;
	int rc;
	d->r.pos++;
	cedar_jrd_ws(&d->r);
	if (d->r.pos < d->r.n && d->r.s[d->r.pos] == ']') {
		d->r.pos++;
		goto done;
	}
	for (;;) {
		if (n == cap) {
			uint32_t nc = cap ? cap * 2 : 4;
			const struct cedar_uid **nv = cedar_alloc_raw(es->arena, nc * sizeof(*nv));
			if (!nv) {
				cedar_set_err(d->r.err, CEDAR_E_NOMEM, 0, 0, "out of memory");
				return CEDAR_E_NOMEM;
			}
			if (n)
				memcpy(nv, v, n * sizeof(*nv));
			v = nv;
			cap = nc;
		}
		if ((rc = d_uid(d, es->arena, &v[n], d->r.err)))
			return rc;
		n++;
		rc = d_next(d, ']', "expected `,` or `]`");
		if (rc < 0)
			return rc;
		if (rc)
			break;
	}
done:
	*out = v;
	*n_out = n;
	return 0;
}

/* One entity object {"uid", "attrs", "parents"[, "tags"]}, at '{'. */
static int d_entity(struct dreader *d, cedar_entities *es, uint32_t index)
{
	struct cedar_err *err = d->r.err;
	const struct cedar_uid *uid = NULL, **parents = NULL;
	struct cedar_value attrs = {.kind = CV_RECORD}, tags = {.kind = CV_RECORD};
	int have_attrs = 0, have_parents = 0, have_tags = 0, rc;
	uint32_t np = 0;
	d->r.pos++;
	cedar_jrd_ws(&d->r);
	if (d->r.pos < d->r.n && d->r.s[d->r.pos] == '}')
		d->r.pos++;
	else
		for (;;) {
			const char *k;
			uint32_t kn;
			struct cedar_jv j;
			if (d_key(d, &k, &kn))
				return CEDAR_E_PARSE;
			cedar_jrd_ws(&d->r);
			char c = d->r.pos < d->r.n ? d->r.s[d->r.pos] : 0;
			if ((key_is(k, kn, "uid") && uid) || (key_is(k, kn, "attrs") && have_attrs) ||
			    (key_is(k, kn, "parents") && have_parents) ||
			    (key_is(k, kn, "tags") && have_tags)) {
				cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity %u: duplicate \"%.*s\"",
					      index, (int)kn, k);
				return CEDAR_E_INPUT;
			}
			if (key_is(k, kn, "attrs") || key_is(k, kn, "tags")) {
				/* Their keys are attribute names, never escapes. */
				int is_attrs = k[0] == 'a';
				if (c != '{')
					goto shape;
				if ((rc = d_record(d, is_attrs ? &attrs : &tags, 0)))
					return rc;
				have_attrs |= is_attrs;
				have_tags |= !is_attrs;
			} else if (key_is(k, kn, "uid")) {
				if ((rc = d_uid(d, es->arena, &uid, err)))
					return rc;
			} else if (key_is(k, kn, "parents")) {
				if (c != '[')
					goto shape;
				if ((rc = d_parents(d, es, &parents, &np)))
					return rc;
				have_parents = 1;
			} else if (d_dom(d, &j)) {   /* another member: read and ignored */
				return CEDAR_E_PARSE;
			}
			rc = d_next(d, '}', "expected `,` or `}`");
			if (rc < 0)
				return rc;
			if (rc)
				break;
		}
	if (!uid) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
			      "expected an entity reference {\"type\": ..., \"id\": ...}");
		return CEDAR_E_INPUT;
	}
	if (!have_attrs || !have_parents)
		goto shape;
	return cedar_entities_add_uid(es, uid, &attrs, parents, np, have_tags ? &tags : NULL, 1,
				      err);
shape:
	/* As the reference: uid, attrs and parents are required; tags not. */
	cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity %u needs \"attrs\" (an object) and "
		      "\"parents\" (an array); \"tags\" must be an object", index);
	return CEDAR_E_INPUT;
}

int cedar_entities_load_json_text(cedar_entities *es, const char *text, size_t len,
				  struct cedar_err *err)
{
	if (!es || !text) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "no entity store or text");
		return CEDAR_E_INPUT;
	}
	/* Values go straight into the store's arena; the small DOMs to a
	 * scratch arena kept with the store, so a reused store allocates
	 * nothing once warm. */
	if (!es->scratch && !(es->scratch = cedar_arena_new(0))) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	struct dreader d = {.r = {.s = text, .n = len, .a = es->arena, .err = err},
			    .tmp = es->scratch};
	int rc = d_expect(&d, '[', "entities JSON must be an array");
	cedar_jrd_ws(&d.r);
	if (!rc && d.r.pos < d.r.n && d.r.s[d.r.pos] == ']')
		d.r.pos++;
	else
		for (uint32_t i = 0; !rc; i++) {
			cedar_jrd_ws(&d.r);
			if (d.r.pos >= d.r.n || d.r.s[d.r.pos] != '{') {
				cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity %u must be an object", i);
				rc = CEDAR_E_INPUT;
				break;
			}
			if ((rc = d_entity(&d, es, i)))
				break;
			rc = d_next(&d, ']', "expected `,` or `]`");
			if (rc == 1) {
				rc = 0;
				break;
			}
		}
	if (!rc)
		rc = d_end(&d);
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
 * entity references may be {"type","id"} or {"__entity": {...}}; context
 * absent means {}, null is refused (as by the reference); other members
 * are ignored. Everything, small DOMs included, goes to a. */
int cedar_json_request(cedar_arena *a, const char *text, size_t len, struct cedar_request *req,
		       struct cedar_err *err)
{
	static const char *const names[] = {"principal", "action", "resource"};
	const cedar_value **slots[] = {&req->principal, &req->action, &req->resource};
	struct dreader d = {.r = {.s = text, .n = len, .a = a, .err = err}, .tmp = a};
	memset(req, 0, sizeof(*req));
	if (d_expect(&d, '{', "request must be a JSON object"))
		return CEDAR_E_INPUT;
	cedar_jrd_ws(&d.r);
	if (d.r.pos < d.r.n && d.r.s[d.r.pos] == '}')
		d.r.pos++;
	else
		for (;;) {
			const char *k;
			uint32_t kn;
			struct cedar_jv j;
			int slot = -1, rc;
			if (d_key(&d, &k, &kn))
				return CEDAR_E_PARSE;
			for (int i = 0; i < 3; i++)
				if (key_is(k, kn, names[i]))
					slot = i;
			if (slot >= 0) {
				struct cedar_value *v = cedar_alloc(a, sizeof(*v));
				struct cedar_err inner = {0};
				if (!v) {
					cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
					return CEDAR_E_NOMEM;
				}
				v->kind = CV_ENTITY;
				if ((rc = d_uid(&d, a, &v->u.uid, &inner))) {
					if (rc == CEDAR_E_PARSE)
						return rc;
					cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
						      "request %s must be an entity reference: %s",
						      names[slot], inner.msg);
					return CEDAR_E_INPUT;
				}
				*slots[slot] = v;
			} else if (key_is(k, kn, "context")) {
				struct cedar_value *v = cedar_alloc(a, sizeof(*v));
				struct cedar_err inner = {0};
				if (!v) {
					cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
					return CEDAR_E_NOMEM;
				}
				d.r.err = &inner;
				rc = d_value(&d, v);
				d.r.err = err;
				if (rc || v->kind != CV_RECORD) {
					cedar_set_err(err, rc == CEDAR_E_PARSE ? CEDAR_E_PARSE : CEDAR_E_INPUT,
						      inner.line, inner.col,
						      "request context must be a record%s%s",
						      inner.msg[0] ? ": " : "", inner.msg);
					return rc == CEDAR_E_PARSE ? CEDAR_E_PARSE : CEDAR_E_INPUT;
				}
				req->context = v;
			} else if (d_dom(&d, &j)) {
				return CEDAR_E_PARSE;
			}
			rc = d_next(&d, '}', "expected `,` or `}`");
			if (rc < 0)
				return rc;
			if (rc)
				break;
		}
	for (int i = 0; i < 3; i++)
		if (!*slots[i]) {
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request %s must be an entity reference",
				      names[i]);
			return CEDAR_E_INPUT;
		}
	return d_end(&d);
}
