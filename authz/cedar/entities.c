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

void cedar_entities_free(cedar_entities *es)
{
	if (!es)
		return;
	cedar_arena_free(es->arena);
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
			   size_t np, const struct cedar_value *tags, struct cedar_err *err)
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
	e->uid = cedar_uid_make(a, uid->type, uid->tlen, uid->id, uid->idlen);
	e->attrs.kind = CV_RECORD;
	e->tags.kind = CV_RECORD;
	if (!e->uid || (attrs && cedar_value_clone(a, &e->attrs, attrs)) ||
	    (tags && cedar_value_clone(a, &e->tags, tags)))
		goto nomem;
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
		e->parents[e->nparents] = cedar_uid_make(a, p->type, p->tlen, p->id, p->idlen);
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
	cedar_arena *tmp = cedar_arena_new(0);
	int rc = CEDAR_E_NOMEM;
	const struct cedar_uid **pu = tmp ? cedar_alloc(tmp, sizeof(*pu) * (n_parents + 1)) : NULL;
	struct cedar_uid *u = tmp ? cedar_uid_make(tmp, type, strlen(type), id, strlen(id)) : NULL;
	if (!pu || !u) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_parents; i++) {
		if (!parents[i] || parents[i]->kind != CV_ENTITY) {
			cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "entity parents must be entity values");
			rc = CEDAR_E_INPUT;
			goto out;
		}
		pu[i] = parents[i]->u.uid;
	}
	rc = cedar_entities_add_uid(es, u, attrs, pu, n_parents, tags, err);
out:
	cedar_arena_free(tmp);
	return rc;
}

/* Transitive closure by depth-first search from each entity; parents that
 * are not in the store are ancestors but lead nowhere further. */
int cedar_entities_prepare(cedar_entities *es)
{
	if (!es || !es->dirty)
		return 0;
	size_t cap = 16;
	const struct cedar_uid **stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return CEDAR_E_NOMEM;
	for (size_t bi = 0; bi < es->nbuckets; bi++)
		for (struct cedar_entity *e = es->buckets[bi]; e; e = e->next) {
			uint32_t acap = e->nparents + 4, nanc = 0;
			const struct cedar_uid **anc = malloc(acap * sizeof(*anc));
			size_t sp = 0;
			if (!anc)
				goto nomem;
			for (uint32_t i = 0; i < e->nparents; i++) {
				if (sp == cap) {
					const struct cedar_uid **ns = realloc(stack, cap * 2 * sizeof(*ns));
					if (!ns) {
						free(anc);
						goto nomem;
					}
					stack = ns;
					cap *= 2;
				}
				stack[sp++] = e->parents[i];
			}
			while (sp) {
				const struct cedar_uid *u = stack[--sp];
				int seen = 0;
				for (uint32_t k = 0; k < nanc && !seen; k++)
					seen = cedar_uid_eq(anc[k], u);
				if (seen)
					continue;
				if (nanc == acap) {
					const struct cedar_uid **na = realloc(anc, acap * 2 * sizeof(*na));
					if (!na) {
						free(anc);
						goto nomem;
					}
					anc = na;
					acap *= 2;
				}
				anc[nanc++] = u;
				const struct cedar_entity *pe = cedar_entities_find(es, u);
				for (uint32_t i = 0; pe && i < pe->nparents; i++) {
					if (sp == cap) {
						const struct cedar_uid **ns = realloc(stack, cap * 2 * sizeof(*ns));
						if (!ns) {
							free(anc);
							goto nomem;
						}
						stack = ns;
						cap *= 2;
					}
					stack[sp++] = pe->parents[i];
				}
			}
			e->anc = cedar_alloc(es->arena, (nanc + 1) * sizeof(*e->anc));
			if (!e->anc) {
				free(anc);
				goto nomem;
			}
			memcpy(e->anc, anc, nanc * sizeof(*anc));
			e->nanc = nanc;
			free(anc);
		}
	free(stack);
	es->dirty = 0;
	return 0;
nomem:
	free(stack);
	return CEDAR_E_NOMEM;
}
