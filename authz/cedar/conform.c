/* Requests and entities against a schema: the checks Cedar makes before it
 * authorizes with a schema (request types the action applies to, context of
 * the action's context type, entities with their declared attributes, tags
 * and parent types). The gateway can run them on the requests it builds. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>

static int clip(size_t n)
{
	return (int)(n < 60 ? n : 60);
}

static int enum_ok(const struct cedar_ety *e, const struct cedar_uid *u)
{
	if (!e->is_enum)
		return 1;
	for (uint32_t i = 0; i < e->neids; i++)
		if (e->eidlens[i] == u->idlen && !memcmp(e->eids[i], u->id, u->idlen))
			return 1;
	return 0;
}

/* Does v have type t? On failure why says what was expected. */
static int conforms(const struct cedar_schema *s, const struct cedar_value *v,
		    const struct cedar_type *t, char *why, size_t n)
{
	static const uint8_t extkind[] = {0, CV_DECIMAL, CV_IP, CV_DATETIME, CV_DURATION};
	const uint8_t want[] = {[CT_BOOL] = CV_BOOL, [CT_LONG] = CV_LONG, [CT_STRING] = CV_STRING,
				[CT_ENTITY] = CV_ENTITY, [CT_SET] = CV_SET, [CT_RECORD] = CV_RECORD,
				[CT_EXT] = extkind[t->kind == CT_EXT ? t->ext : 0]};
	if (v->kind != want[t->kind]) {
		cedar_arena *a = cedar_arena_new(0);
		snprintf(why, n, "expected %s", a ? cedar_type_str(a, t) : "another type");
		cedar_arena_free(a);
		return 0;
	}
	if (t->kind == CT_ENTITY) {
		const struct cedar_ety *e = cedar_schema_ety(s, t->name, t->nlen);
		if (v->u.uid->tlen != t->nlen || memcmp(v->u.uid->type, t->name, t->nlen) ||
		    (e && !enum_ok(e, v->u.uid))) {
			snprintf(why, n, "expected an entity of type %.*s", clip(t->nlen), t->name);
			return 0;
		}
	}
	if (t->kind == CT_SET)
		for (uint32_t i = 0; i < v->n; i++)
			if (!conforms(s, &v->u.items[i], t->elem, why, n))
				return 0;
	if (t->kind == CT_RECORD)
		return cedar_schema_record_conforms(s, v, t, why, n);
	return 1;
}

int cedar_schema_record_conforms(const struct cedar_schema *s, const struct cedar_value *v,
				 const struct cedar_type *t, char *why, size_t n)
{
	char inner[200];
	for (uint32_t i = 0; i < t->nattrs; i++) {
		const struct cedar_attr *at = &t->attrs[i];
		const struct cedar_value *f = cedar_record_get(v, at->key, at->klen);
		if (!f && at->required) {
			snprintf(why, n, "required attribute `%.*s` is missing", clip(at->klen), at->key);
			return 0;
		}
		if (f && !conforms(s, f, at->type, inner, sizeof(inner))) {
			snprintf(why, n, "attribute `%.*s`: %s", clip(at->klen), at->key, inner);
			return 0;
		}
	}
	for (uint32_t i = 0; i < v->n; i++)
		if (!cedar_type_attr(t, v->u.fields[i].key, v->u.fields[i].klen)) {
			snprintf(why, n, "attribute `%.*s` is not declared", clip(v->u.fields[i].klen),
				 v->u.fields[i].key);
			return 0;
		}
	return 1;
}

static int in_list(const struct cedar_ety *const *v, uint32_t n, const struct cedar_uid *u)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i]->nlen == u->tlen && !memcmp(v[i]->name, u->type, u->tlen))
			return enum_ok(v[i], u);
	return 0;
}

int cedar_validate_request(const cedar_schema *s, const struct cedar_request *req,
			   struct cedar_err *err)
{
	static const struct cedar_value empty = {.kind = CV_RECORD};
	const struct cedar_value *p = req->principal, *a = req->action, *r = req->resource;
	const struct cedar_act *act = a && a->kind == CV_ENTITY ? cedar_schema_act(s, a->u.uid) : NULL;
	char why[200];
	if (!act) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request: the action is not declared");
		return CEDAR_E_INPUT;
	}
	if (!p || p->kind != CV_ENTITY || !in_list(act->prin, act->nprin, p->u.uid)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
			      "request: action `%.*s` does not apply to this principal type",
			      clip(act->uid->idlen), act->uid->id);
		return CEDAR_E_INPUT;
	}
	if (!r || r->kind != CV_ENTITY || !in_list(act->res, act->nres, r->u.uid)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
			      "request: action `%.*s` does not apply to this resource type",
			      clip(act->uid->idlen), act->uid->id);
		return CEDAR_E_INPUT;
	}
	const struct cedar_value *ctx = req->context ? req->context : &empty;
	if (ctx->kind != CV_RECORD || !cedar_schema_record_conforms(s, ctx, act->ctx, why,
								    sizeof(why))) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request: context: %s",
			      ctx->kind != CV_RECORD ? "expected a record" : why);
		return CEDAR_E_INPUT;
	}
	return 0;
}

static int entity_conforms(const struct cedar_schema *s, const struct cedar_entity *en,
			   char *why, size_t n)
{
	const struct cedar_uid *u = en->uid;
	const struct cedar_ety *e = cedar_schema_ety(s, u->type, u->tlen);
	char inner[200];
	if (!e) {
		if (cedar_schema_act(s, u))
			return 1;       /* actions come from the schema itself */
		snprintf(why, n, "entity type `%.*s` is not declared", clip(u->tlen), u->type);
		return 0;
	}
	if (!enum_ok(e, u)) {
		snprintf(why, n, "`%.*s` is not one of the entities of enumerated type `%.*s`",
			 clip(u->idlen), u->id, clip(u->tlen), u->type);
		return 0;
	}
	if (!cedar_schema_record_conforms(s, &en->attrs, e->attrs, inner, sizeof(inner))) {
		snprintf(why, n, "%s", inner);
		return 0;
	}
	if (en->tags.n && !e->tags) {
		snprintf(why, n, "entity type `%.*s` has no tags", clip(u->tlen), u->type);
		return 0;
	}
	for (uint32_t i = 0; i < en->tags.n; i++)
		if (!conforms(s, &en->tags.u.fields[i].v, e->tags, inner, sizeof(inner))) {
			snprintf(why, n, "tag `%.*s`: %s", clip(en->tags.u.fields[i].klen),
				 en->tags.u.fields[i].key, inner);
			return 0;
		}
	for (uint32_t i = 0; i < en->nparents; i++) {
		const struct cedar_uid *pu = en->parents[i];
		int okp = 0;
		for (uint32_t k = 0; k < e->nanc; k++)
			okp |= e->anclens[k] == pu->tlen && !memcmp(e->anc[k], pu->type, pu->tlen);
		if (!okp) {
			snprintf(why, n, "a parent of type `%.*s` is not allowed", clip(pu->tlen),
				 pu->type);
			return 0;
		}
	}
	return 1;
}

int cedar_validate_entities(const cedar_schema *s, cedar_entities *es, struct cedar_err *err)
{
	char why[220];
	/* With a schema Cedar also refuses a cycle in the entity hierarchy:
	 * an entity among its own ancestors. */
	if (cedar_entities_prepare(es)) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	for (size_t b = 0; b < es->nbuckets; b++)
		for (const struct cedar_entity *en = es->buckets[b]; en; en = en->next)
			for (uint32_t i = 0; i < en->nanc; i++)
				if (cedar_uid_eq(en->anc[i], en->uid)) {
					cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
						      "entity %.*s::\"%.*s\": the entity hierarchy has a cycle "
						      "through it", clip(en->uid->tlen), en->uid->type,
						      clip(en->uid->idlen), en->uid->id);
					return CEDAR_E_INPUT;
				}
	for (size_t b = 0; b < es->nbuckets; b++)
		for (const struct cedar_entity *en = es->buckets[b]; en; en = en->next)
			if (!entity_conforms(s, en, why, sizeof(why))) {
				cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity %.*s::\"%.*s\": %s",
					      clip(en->uid->tlen), en->uid->type,
					      clip(en->uid->idlen), en->uid->id, why);
				return CEDAR_E_INPUT;
			}
	return 0;
}
