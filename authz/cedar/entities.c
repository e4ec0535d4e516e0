/* Entity store: a hash table of entities with their attributes, tags and
 * transitive ancestors (computed once, before the first authorization). */
#include "authz/cedar/cedar_int.h"

#include <stdlib.h>

cedar_entities *cedar_entities_new(void)
{
	cedar_entities *es = calloc(1, sizeof(*es));
	if (!es)
		return NULL;
	es->arena = cedar_arena_new(0);
	es->nbuckets = 64;
	es->buckets = calloc(es->nbuckets, sizeof(*es->buckets));
	if (!es->arena || !es->buckets) {
		cedar_entities_free(es);
		return NULL;
	}
	return es;
}

void cedar_entities_reset(cedar_entities *es)
{
	if (!es)
		return;
	cedar_arena_reset(es->arena);
	memset(es->buckets, 0, es->nbuckets * sizeof(*es->buckets));
	es->count = 0;
	es->dirty = 0;
}

void cedar_entities_free(cedar_entities *es)
{
	if (!es)
		return;
	cedar_arena_free(es->arena);
	cedar_arena_free(es->scratch);
	free(es->buckets);
	free(es);
}

size_t cedar_entities_count(const cedar_entities *es)
{
	return es ? es->count : 0;
}

const struct cedar_entity *cedar_entities_find(const cedar_entities *es,
					       const struct cedar_uid *uid)
{
	if (!es)
		return NULL;
	for (const struct cedar_entity *e = es->buckets[uid->hash & (es->nbuckets - 1)]; e;
	     e = e->next)
		if (cedar_uid_eq(e->uid, uid))
			return e;
	return NULL;
}

static int rehash(cedar_entities *es)
{
	size_t nb = es->nbuckets * 2;
	struct cedar_entity **b = calloc(nb, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; i < es->nbuckets; i++) {
		struct cedar_entity *e = es->buckets[i];
		while (e) {
			struct cedar_entity *nx = e->next;
			e->next = b[e->uid->hash & (nb - 1)];
			b[e->uid->hash & (nb - 1)] = e;
			e = nx;
		}
	}
	free(es->buckets);
	es->buckets = b;
	es->nbuckets = nb;
	return 0;
}

static bool is_action_type(const struct cedar_uid *u)
{
	return (u->tlen == 6 || (u->tlen > 6 && u->type[u->tlen - 7] == ':')) &&
	       memcmp(u->type + u->tlen - 6, "Action", 6) == 0;
}

int cedar_entities_add_uid(cedar_entities *es, const struct cedar_uid *uid,
			   const struct cedar_value *attrs, const struct cedar_uid *const *parents,
			   size_t np, const struct cedar_value *tags, int adopt, struct cedar_err *err)
{
	cedar_arena *a = es->arena;
	if ((attrs && attrs->kind != CV_RECORD) || (tags && tags->kind != CV_RECORD)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity attrs and tags must be records");
		return CEDAR_E_INPUT;
	}
	/* Cedar's rule: an action entity (type Action or NS::Action) may only
	 * have action parents. */
	if (is_action_type(uid)) {
		for (size_t i = 0; i < np; i++)
			if (!is_action_type(parents[i])) {
				cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
					      "action %.*s::\"%.*s\" has a non-action parent",
					      (int)uid->tlen, uid->type, (int)uid->idlen, uid->id);
				return CEDAR_E_INPUT;
			}
	}
	if (cedar_entities_find(es, uid)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "duplicate entity %s::\"%s\"", uid->type,
			      uid->id);
		return CEDAR_E_INPUT;
	}
	if (es->count + 1 > es->nbuckets && rehash(es))
		goto nomem;
	struct cedar_entity *e = cedar_alloc(a, sizeof(*e));
	if (!e)
		goto nomem;
	e->attrs.kind = CV_RECORD;
	e->tags.kind = CV_RECORD;
	if (adopt) {
		e->uid = uid;
		if (attrs)
			e->attrs = *attrs;
		if (tags)
			e->tags = *tags;
	} else {
		e->uid = cedar_uid_make(a, uid->type, uid->tlen, uid->id, uid->idlen);
		if (!e->uid || (attrs && cedar_value_clone(a, &e->attrs, attrs)) ||
		    (tags && cedar_value_clone(a, &e->tags, tags)))
			goto nomem;
	}
	e->parents = cedar_alloc(a, sizeof(*e->parents) * (np + 1));
	if (!e->parents)
		goto nomem;
	for (size_t i = 0; i < np; i++) {
		const struct cedar_uid *p = parents[i];
		int dup = 0;
		for (uint32_t k = 0; k < e->nparents; k++)
			dup |= cedar_uid_eq(e->parents[k], p);
		if (dup)
			continue;
		e->parents[e->nparents] = adopt ? p : cedar_uid_make(a, p->type, p->tlen, p->id, p->idlen);
		if (!e->parents[e->nparents++])
			goto nomem;
	}
	size_t b = e->uid->hash & (es->nbuckets - 1);
	e->next = es->buckets[b];
	es->buckets[b] = e;
	es->count++;
	es->dirty = 1;
	return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

int cedar_entities_add(cedar_entities *es, const char *type, const char *id,
		       const cedar_value *attrs, const cedar_value *const *parents,
		       size_t n_parents, const cedar_value *tags, struct cedar_err *err)
{
	if (!es || !type || !*type || !id) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity needs a type and an id");
		return CEDAR_E_INPUT;
	}
	if (!cedar_type_name_ok(type, strlen(type))) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "invalid entity type name");
		return CEDAR_E_INPUT;
	}
	if ((attrs && attrs->kind != CV_RECORD) || (tags && tags->kind != CV_RECORD)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity attrs and tags must be records");
		return CEDAR_E_INPUT;
	}
	/* Everything is copied into the store's arena once, then adopted. */
	cedar_arena *a = es->arena;
	const struct cedar_uid **pu = cedar_alloc(a, sizeof(*pu) * (n_parents + 1));
	struct cedar_uid *u = cedar_uid_make(a, type, strlen(type), id, strlen(id));
	struct cedar_value av = {.kind = CV_RECORD}, tv = {.kind = CV_RECORD};
	if (!pu || !u || (attrs && cedar_value_clone(a, &av, attrs)) ||
	    (tags && cedar_value_clone(a, &tv, tags)))
		goto nomem;
	for (size_t i = 0; i < n_parents; i++) {
		if (!parents[i] || parents[i]->kind != CV_ENTITY) {
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity parents must be entity values");
			return CEDAR_E_INPUT;
		}
		const struct cedar_uid *p = parents[i]->u.uid;
		if (!(pu[i] = cedar_uid_make(a, p->type, p->tlen, p->id, p->idlen)))
			goto nomem;
	}
	return cedar_entities_add_uid(es, u, &av, pu, n_parents, &tv, 1, err);
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

/* Transitive closure by depth-first search from each entity; parents that
 * are not in the store are ancestors but lead nowhere further. The work
 * lists start on the stack: request-sized stores never call malloc here. */
struct uidvec {
	const struct cedar_uid **v;
	size_t n, cap;
	const struct cedar_uid *local[32];
};

static int uv_push(struct uidvec *u, const struct cedar_uid *x)
{
	if (u->n == u->cap) {
		size_t nc = u->cap * 2;
		const struct cedar_uid **nv = u->v == u->local ? malloc(nc * sizeof(*nv))
				: realloc(u->v, nc * sizeof(*nv));
		if (!nv)
			return -1;
		if (u->v == u->local)
			memcpy(nv, u->local, u->n * sizeof(*nv));
		u->v = nv;
		u->cap = nc;
	}
	u->v[u->n++] = x;
	return 0;
}

static void uv_init(struct uidvec *u)
{
	u->v = u->local;
	u->n = 0;
	u->cap = sizeof(u->local) / sizeof(u->local[0]);
}

static void uv_free(struct uidvec *u)
{
	if (u->v != u->local)
		free(u->v);
}

int cedar_entities_prepare(cedar_entities *es)
{
	if (!es || !es->dirty)
		return 0;
	struct uidvec stack, anc;
	int rc = 0;
	uv_init(&stack);
	uv_init(&anc);
	for (size_t bi = 0; bi < es->nbuckets && !rc; bi++)
		for (struct cedar_entity *e = es->buckets[bi]; e && !rc; e = e->next) {
			stack.n = anc.n = 0;
			for (uint32_t i = 0; i < e->nparents && !rc; i++)
				rc = uv_push(&stack, e->parents[i]);
			while (stack.n && !rc) {
				const struct cedar_uid *u = stack.v[--stack.n];
				int seen = 0;
				for (size_t k = 0; k < anc.n && !seen; k++)
					seen = cedar_uid_eq(anc.v[k], u);
				if (seen)
					continue;
				if ((rc = uv_push(&anc, u)))
					break;
				const struct cedar_entity *pe = cedar_entities_find(es, u);
				for (uint32_t i = 0; pe && i < pe->nparents && !rc; i++)
					rc = uv_push(&stack, pe->parents[i]);
			}
			if (rc)
				break;
			e->anc = cedar_alloc(es->arena, (anc.n + 1) * sizeof(*e->anc));
			if (!e->anc) {
				rc = -1;
				break;
			}
			memcpy(e->anc, anc.v, anc.n * sizeof(*anc.v));
			e->nanc = (uint32_t)anc.n;
		}
	uv_free(&stack);
	uv_free(&anc);
	if (rc)
		return CEDAR_E_NOMEM;
	es->dirty = 0;
	return 0;
}
