/* Cedar's JSON formats for values, entity uids and entities. */
#include "authz/cedar/cedar_int.h"

static int json_str(const json_t *o, const char *key, const char **s, size_t *n)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return -1;
	*s = json_string_value(v);
	*n = json_string_length(v);
	return 0;
}

int cedar_json_uid(cedar_arena *a, const json_t *j, const struct cedar_uid **out,
		   struct cedar_err *err)
{
	const char *t, *id;
	size_t tn, idn;
	if (json_is_object(j) && json_object_get(j, "__entity"))
		j = json_object_get(j, "__entity");
	if (!json_is_object(j) || json_str(j, "type", &t, &tn) || json_str(j, "id", &id, &idn) ||
	    tn == 0) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
			      "expected an entity reference {\"type\": ..., \"id\": ...}");
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

static int json_extn(cedar_arena *a, const json_t *x, struct cedar_value *out,
		     struct cedar_err *err)
{
	const char *fn;
	size_t fnl;
	int is_method, arity;
	struct cedar_value args[2];
	int nargs = 0;
	if (!json_is_object(x) || json_str(x, "fn", &fn, &fnl))
		goto bad;
	enum cedar_ext_fn f = cedar_ext_lookup(fn, fnl, &is_method, &arity);
	if (f == EF_NONE && fnl == 6 && memcmp(fn, "ipaddr", 6) == 0)
		f = EF_IP;
	if (f == EF_NONE)
		goto bad;
	json_t *arg = json_object_get(x, "arg");
	json_t *argv = json_object_get(x, "args");
	if (arg) {
		if (cedar_json_value(a, arg, 0, &args[0], err))
			return CEDAR_E_INPUT;
		nargs = 1;
	} else if (json_is_array(argv) && json_array_size(argv) <= 2) {
		for (size_t i = 0; i < json_array_size(argv); i++)
			if (cedar_json_value(a, json_array_get(argv, i), 0, &args[nargs++], err))
				return CEDAR_E_INPUT;
	} else {
		goto bad;
	}
	if (cedar_ext_call(f, args, nargs, out) != 0) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "invalid extension value for `%s`", fn);
		return CEDAR_E_INPUT;
	}
	return 0;
bad:
	cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "malformed __extn value");
	return CEDAR_E_INPUT;
}

int cedar_json_value(cedar_arena *a, const json_t *j, int plain, struct cedar_value *out,
		     struct cedar_err *err)
{
	memset(out, 0, sizeof(*out));
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
		break;
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		out->kind = CV_SET;
		out->u.items = cedar_alloc(a, sizeof(struct cedar_value) * (n ? n : 1));
		if (!out->u.items)
			break;
		for (size_t i = 0; i < n; i++)
			if (cedar_json_value(a, json_array_get(j, i), plain, &out->u.items[i], err))
				return CEDAR_E_INPUT;
		out->n = cedar_set_normalize(out->u.items, (uint32_t)n);
		return 0;
	}
	case JSON_OBJECT: {
		if (!plain && json_object_size(j) == 1 && json_object_get(j, "__entity")) {
			out->kind = CV_ENTITY;
			return cedar_json_uid(a, j, &out->u.uid, err);
		}
		if (!plain && json_object_size(j) == 1 && json_object_get(j, "__extn"))
			return json_extn(a, json_object_get(j, "__extn"), out, err);
		size_t n = json_object_size(j), i = 0;
		const char *k;
		json_t *v;
		out->kind = CV_RECORD;
		out->u.fields = cedar_alloc(a, sizeof(struct cedar_field) * (n ? n : 1));
		if (!out->u.fields)
			break;
		json_object_foreach((json_t *)j, k, v) {
			struct cedar_field *f = &out->u.fields[i++];
			f->klen = (uint32_t)strlen(k);
			f->key = cedar_strndup(a, k, f->klen);
			if (!f->key)
				goto nomem;
			if (cedar_json_value(a, v, plain, &f->v, err))
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
	if (out->kind == CV_STRING && out->u.s)
		return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

cedar_value *cedar_value_from_json(cedar_arena *a, const json_t *j, struct cedar_err *err)
{
	cedar_value *v = a ? cedar_alloc(a, sizeof(*v)) : NULL;
	if (!v || !j || cedar_json_value(a, j, 0, v, err))
		return NULL;
	return v;
}

cedar_value *cedar_value_from_plain_json(cedar_arena *a, const json_t *j,
					 struct cedar_err *err)
{
	cedar_value *v = a ? cedar_alloc(a, sizeof(*v)) : NULL;
	if (!v || !j || cedar_json_value(a, j, 1, v, err))
		return NULL;
	return v;
}

int cedar_entities_load_json(cedar_entities *es, const json_t *arr, struct cedar_err *err)
{
	int rc = 0;
	cedar_arena *tmp = cedar_arena_new(0);
	if (!tmp) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	if (!json_is_array(arr)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entities JSON must be an array");
		rc = CEDAR_E_INPUT;
		goto out;
	}
	size_t i;
	json_t *ej;
	json_array_foreach((json_t *)arr, i, ej) {
		const struct cedar_uid *uid;
		struct cedar_value attrs = {.kind = CV_RECORD}, tags = {.kind = CV_RECORD};
		json_t *jp = json_object_get(ej, "parents");
		size_t np = json_array_size(jp);
		const struct cedar_uid **parents = cedar_alloc(tmp, sizeof(*parents) * (np + 1));
		if (!parents) {
			cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
			rc = CEDAR_E_NOMEM;
			goto out;
		}
		if ((rc = cedar_json_uid(tmp, json_object_get(ej, "uid"), &uid, err)))
			goto out;
		json_t *ja = json_object_get(ej, "attrs");
		json_t *jt = json_object_get(ej, "tags");
		if ((ja && (!json_is_object(ja) || (rc = cedar_json_value(tmp, ja, 0, &attrs, err)))) ||
		    (jt && (!json_is_object(jt) || (rc = cedar_json_value(tmp, jt, 0, &tags, err))))) {
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity attrs and tags must be objects");
			rc = CEDAR_E_INPUT;
			goto out;
		}
		for (size_t k = 0; k < np; k++)
			if ((rc = cedar_json_uid(tmp, json_array_get(jp, k), &parents[k], err)))
				goto out;
		if ((rc = cedar_entities_add_uid(es, uid, &attrs, parents, np, &tags, err)))
			goto out;
	}
out:
	cedar_arena_free(tmp);
	return rc;
}

int cedar_entities_load_file(cedar_entities *es, const char *path, struct cedar_err *err)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
	if (!j) {
		cedar_set_err(err, CEDAR_E_IO, je.line, je.column, "%s: %s", path, je.text);
		return CEDAR_E_IO;
	}
	int rc = cedar_entities_load_json(es, j, err);
	json_decref(j);
	return rc;
}
