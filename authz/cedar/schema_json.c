/* Parser for Cedar's JSON schema format: {"Namespace": {"entityTypes",
 * "actions", "commonTypes"}}. It fills the same builder as the
 * human-readable format, so both resolve and check names alike. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>

struct jp {
	struct cedar_sb *b;
	const char *ns;
	int depth;
};

static int jfail(struct jp *p, const char *what, const char *where)
{
	cedar_set_err(p->b->err, CEDAR_E_INPUT, 0, 0, "schema JSON: %s%s%.120s", what,
		      where ? " at " : "", where ? where : "");
	return CEDAR_E_INPUT;
}

static const char *dup(struct jp *p, const char *s)
{
	return cedar_strndup(p->b->a, s, strlen(s));
}

static int only_keys(struct jp *p, json_t *o, const char *const *keys, const char *where)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		int ok = 0;
		for (size_t i = 0; keys[i]; i++)
			ok |= !strcmp(k, keys[i]);
		if (!ok) {
			char buf[200];
			snprintf(buf, sizeof(buf), "unknown key `%.60s` in %.60s", k, where);
			return jfail(p, buf, NULL);
		}
	}
	return 0;
}

static struct cedar_sref *jtype(struct jp *p, json_t *j, const char *where);

static struct cedar_sref *jrecord(struct jp *p, json_t *j, struct cedar_sref *r, const char *where)
{
	json_t *attrs = json_object_get(j, "attributes"), *v;
	const char *k;
	uint32_t cap = 0;
	static const char *const akeys[] = {"type", "name", "element", "attributes", "required",
					    "annotations", NULL};
	r->kind = SR_RECORD;
	if (attrs && !json_is_object(attrs)) {
		jfail(p, "`attributes` must be an object", where);
		return NULL;
	}
	if (json_is_true(json_object_get(j, "additionalAttributes"))) {
		jfail(p, "`additionalAttributes` is not supported", where);
		return NULL;
	}
	json_object_foreach(attrs, k, v) {
		struct cedar_sattr at = {.required = 1};
		json_t *req = json_object_get(v, "required");
		if (!json_is_object(v) || only_keys(p, v, akeys, k) ||
		    (req && !json_is_boolean(req))) {
			jfail(p, "bad attribute", k);
			return NULL;
		}
		at.key = dup(p, k);
		at.klen = (uint32_t)strlen(k);
		at.required = !req || json_is_true(req);
		if (!(at.type = jtype(p, v, k)))
			return NULL;
		if (!(r->attrs = cedar_sb_grow(p->b->a, r->attrs, r->nattrs, &cap, sizeof(at))))
			return NULL;
		r->attrs[r->nattrs++] = at;
	}
	return r;
}

static struct cedar_sref *jtype(struct jp *p, json_t *j, const char *where)
{
	struct cedar_sref *r = cedar_alloc(p->b->a, sizeof(*r));
	const char *t = json_string_value(json_object_get(j, "type"));
	const char *nm = json_string_value(json_object_get(j, "name"));
	if (!r || !t || ++p->depth > 100) {
		jfail(p, r ? "a type needs a string `type`" : "out of memory", where);
		return NULL;
	}
	r->ns = p->ns;
	if (!strcmp(t, "Long") || !strcmp(t, "String") || !strcmp(t, "Boolean")) {
		r->kind = SR_TYPE;
		r->type = t[0] == 'L' ? &cedar_t_long : t[0] == 'S' ? &cedar_t_string : &cedar_t_bool;
	} else if (!strcmp(t, "Set")) {
		json_t *e = json_object_get(j, "element");
		r->kind = SR_SET;
		if (!json_is_object(e)) {
			jfail(p, "`Set` needs an `element` type", where);
			r = NULL;
		} else if (!(r->elem = jtype(p, e, where))) {
			r = NULL;
		}
	} else if (!strcmp(t, "Record")) {
		r = jrecord(p, j, r, where);
	} else if (!strcmp(t, "Entity") || !strcmp(t, "EntityOrCommon") ||
		   !strcmp(t, "Extension")) {
		if (!nm) {
			jfail(p, "this type needs a string `name`", where);
			r = NULL;
		} else {
			char buf[300];
			snprintf(buf, sizeof(buf), "%s%.280s", t[1] == 'x' ? "__cedar::" : "", nm);
			r->kind = t[0] == 'E' && t[1] == 'n' && t[6] == 0 ? SR_ENTITY : SR_NAME;
			r->name = dup(p, buf);
			r->nlen = (uint32_t)strlen(buf);
		}
	} else {
		r->kind = SR_NAME;       /* a common type named directly */
		r->name = dup(p, t);
		r->nlen = (uint32_t)strlen(t);
	}
	p->depth--;
	return r;
}

static int jnames(struct jp *p, json_t *arr, struct cedar_sref ***out, uint32_t *n,
		  const char *where)
{
	size_t i;
	json_t *v;
	if (arr && !json_is_array(arr))
		return jfail(p, "expected an array of entity type names", where);
	*out = cedar_alloc(p->b->a, (json_array_size(arr) + 1) * sizeof(**out));
	*n = 0;
	if (!*out)
		return CEDAR_E_NOMEM;
	json_array_foreach(arr, i, v) {
		struct cedar_sref *r = cedar_alloc(p->b->a, sizeof(*r));
		if (!r)
			return CEDAR_E_NOMEM;
		if (!json_is_string(v))
			return jfail(p, "expected an entity type name", where);
		r->kind = SR_ENTITY;
		r->ns = p->ns;
		r->name = dup(p, json_string_value(v));
		r->nlen = (uint32_t)strlen(r->name);
		(*out)[(*n)++] = r;
	}
	return 0;
}

static int jentity(struct jp *p, const char *k, json_t *v)
{
	static const char *const keys[] = {"memberOfTypes", "shape", "tags", "enum",
					   "annotations", NULL};
	struct cedar_sb *b = p->b;
	if (!json_is_object(v) || only_keys(p, v, keys, k))
		return jfail(p, "an entity type must be an object", k);
	if (!(b->ets = cedar_sb_grow(b->a, b->ets, b->nets, &b->capets, sizeof(*b->ets))))
		return CEDAR_E_NOMEM;
	struct cedar_sb_ety *e = &b->ets[b->nets++];
	memset(e, 0, sizeof(*e));
	e->ns = p->ns;
	e->name = cedar_sb_qualify(b->a, p->ns, k, strlen(k));
	json_t *sh = json_object_get(v, "shape"), *tg = json_object_get(v, "tags");
	json_t *en = json_object_get(v, "enum");
	if (jnames(p, json_object_get(v, "memberOfTypes"), &e->parents, &e->npar, k))
		return CEDAR_E_INPUT;
	if ((sh && !(e->shape = jtype(p, sh, k))) || (tg && !(e->tags = jtype(p, tg, k))))
		return CEDAR_E_INPUT;
	if (en) {
		size_t i;
		json_t *s;
		if (!json_is_array(en) || !json_array_size(en) || sh || tg ||
		    json_object_get(v, "memberOfTypes"))
			return jfail(p, "`enum` must be a non-empty array, without shape, tags "
				     "or memberOfTypes", k);
		e->is_enum = 1;
		e->eids = cedar_alloc(b->a, json_array_size(en) * sizeof(*e->eids));
		e->eidlens = cedar_alloc(b->a, json_array_size(en) * sizeof(*e->eidlens));
		if (!e->eids || !e->eidlens)
			return CEDAR_E_NOMEM;
		json_array_foreach(en, i, s) {
			if (!json_is_string(s))
				return jfail(p, "`enum` holds strings", k);
			e->eids[e->neids] = cedar_strndup(b->a, json_string_value(s),
							  json_string_length(s));
			e->eidlens[e->neids++] = (uint32_t)json_string_length(s);
		}
	}
	return 0;
}

static int jaction(struct jp *p, const char *k, json_t *v)
{
	static const char *const keys[] = {"memberOf", "appliesTo", "attributes",
					   "annotations", NULL};
	struct cedar_sb *b = p->b;
	if (!json_is_object(v) || only_keys(p, v, keys, k))
		return jfail(p, "an action must be an object", k);
	if (!(b->acts = cedar_sb_grow(b->a, b->acts, b->nacts, &b->capacts, sizeof(*b->acts))))
		return CEDAR_E_NOMEM;
	struct cedar_sb_act *a = &b->acts[b->nacts++];
	memset(a, 0, sizeof(*a));
	a->ns = p->ns;
	a->id = dup(p, k);
	a->idlen = (uint32_t)strlen(k);
	json_t *mo = json_object_get(v, "memberOf"), *at = json_object_get(v, "appliesTo"), *m;
	size_t i;
	if (mo && !json_is_array(mo))
		return jfail(p, "`memberOf` must be an array", k);
	a->parents = cedar_alloc(b->a, (json_array_size(mo) + 1) * sizeof(*a->parents));
	if (!a->parents)
		return CEDAR_E_NOMEM;
	json_array_foreach(mo, i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));
		const char *ty = json_string_value(json_object_get(m, "type"));
		if (!id)
			return jfail(p, "`memberOf` entries need a string `id`", k);
		struct cedar_sb_aref *r = &a->parents[a->npar++];
		r->id = dup(p, id);
		r->idlen = (uint32_t)strlen(id);
		if (ty) {
			r->type = dup(p, ty);
			r->tlen = (uint32_t)strlen(ty);
		}
	}
	if (at && !json_is_null(at)) {
		json_t *ctx = json_object_get(at, "context");
		a->applies = 1;
		if (!json_is_object(at) || !json_object_get(at, "principalTypes") ||
		    !json_object_get(at, "resourceTypes") ||
		    jnames(p, json_object_get(at, "principalTypes"), &a->prin, &a->nprin, k) ||
		    jnames(p, json_object_get(at, "resourceTypes"), &a->res, &a->nres, k))
			return jfail(p, "bad `appliesTo`", k);
		if (ctx && !(a->ctx = jtype(p, ctx, k)))
			return CEDAR_E_INPUT;
	}
	return 0;
}

static int jnamespace(struct jp *p, const char *ns, json_t *v)
{
	static const char *const keys[] = {"entityTypes", "actions", "commonTypes",
					   "annotations", NULL};
	const char *k;
	json_t *x;
	if (!json_is_object(v) || only_keys(p, v, keys, ns[0] ? ns : "the empty namespace"))
		return jfail(p, "a namespace must be an object", ns);
	if (!strcmp(ns, "__cedar") || !strncmp(ns, "__cedar::", 9))
		return jfail(p, "the `__cedar` namespace is reserved", NULL);
	p->ns = dup(p, ns);
	json_object_foreach(json_object_get(v, "entityTypes"), k, x)
		if (jentity(p, k, x))
			return CEDAR_E_INPUT;
	json_object_foreach(json_object_get(v, "actions"), k, x)
		if (jaction(p, k, x))
			return CEDAR_E_INPUT;
	json_object_foreach(json_object_get(v, "commonTypes"), k, x) {
		struct cedar_sb *b = p->b;
		if (!(b->cts = cedar_sb_grow(b->a, b->cts, b->ncts, &b->capcts, sizeof(*b->cts))))
			return CEDAR_E_NOMEM;
		struct cedar_sb_common *c = &b->cts[b->ncts++];
		memset(c, 0, sizeof(*c));
		c->ns = p->ns;
		c->name = cedar_sb_qualify(b->a, p->ns, k, strlen(k));
		if (!json_is_object(x) || !(c->type = jtype(p, x, k)))
			return jfail(p, "bad common type", k);
	}
	return 0;
}

int cedar_schema_parse_json(struct cedar_sb *b, const char *text, size_t len)
{
	json_error_t je;
	struct jp p = {.b = b, .ns = ""};
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	const char *ns;
	json_t *v;
	int rc = 0;
	if (!root || !json_is_object(root)) {
		if (root)
			cedar_set_err(b->err, CEDAR_E_PARSE, 0, 0, "schema JSON: expected an object");
		else
			cedar_set_err(b->err, CEDAR_E_PARSE, je.line, je.column, "%d:%d: %s", je.line,
				      je.column, je.text);
		json_decref(root);
		return CEDAR_E_PARSE;
	}
	json_object_foreach(root, ns, v)
		if ((rc = jnamespace(&p, ns, v)))
			break;
	json_decref(root);
	return rc;
}
