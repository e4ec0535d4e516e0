/* Schemas: the validator's types, and the step both schema formats end in:
 * resolving type names (common types, entity types, builtins), checking
 * the declarations, and computing the entity-type and action hierarchies. */
#include "authz/cedar/cedar_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const struct cedar_type cedar_t_long = {.kind = CT_LONG};
const struct cedar_type cedar_t_string = {.kind = CT_STRING};
const struct cedar_type cedar_t_bool = {.kind = CT_BOOL, .b = CB_ANY};
const struct cedar_type cedar_t_tt = {.kind = CT_BOOL, .b = CB_TT};
const struct cedar_type cedar_t_ff = {.kind = CT_BOOL, .b = CB_FF};
const struct cedar_type cedar_t_ext[5] = {
	{.kind = 0}, {.kind = CT_EXT, .ext = CX_DECIMAL}, {.kind = CT_EXT, .ext = CX_IP},
	{.kind = CT_EXT, .ext = CX_DATETIME}, {.kind = CT_EXT, .ext = CX_DURATION}};

static int name_eq(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && cedar_bytes_cmp(a, b, an) == 0;
}

const struct cedar_ety *cedar_schema_ety(const struct cedar_schema *s, const char *name, size_t n)
{
	size_t lo = 0, hi = s->nets;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cedar_keycmp(s->ets[mid].name, s->ets[mid].nlen, name, (uint32_t)n);
		if (!c)
			return &s->ets[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct cedar_act *cedar_schema_act(const struct cedar_schema *s, const struct cedar_uid *uid)
{
	for (size_t i = 0; i < s->nacts; i++)
		if (cedar_uid_eq(s->acts[i].uid, uid))
			return &s->acts[i];
	return NULL;
}

const struct cedar_attr *cedar_type_attr(const struct cedar_type *rec, const char *k, uint32_t klen)
{
	for (uint32_t i = 0; i < rec->nattrs; i++)
		if (name_eq(rec->attrs[i].key, rec->attrs[i].klen, k, klen))
			return &rec->attrs[i];
	return NULL;
}

int cedar_type_eq(const struct cedar_type *x, const struct cedar_type *y)
{
	if (x == y)
		return 1;
	if (x->kind != y->kind)
		return 0;
	switch (x->kind) {
	case CT_BOOL: return x->b == y->b;
	case CT_EXT: return x->ext == y->ext;
	case CT_ENTITY: return name_eq(x->name, x->nlen, y->name, y->nlen);
	case CT_SET: return cedar_type_eq(x->elem, y->elem);
	case CT_RECORD:
		if (x->nattrs != y->nattrs)
			return 0;
		for (uint32_t i = 0; i < x->nattrs; i++)
			if (!name_eq(x->attrs[i].key, x->attrs[i].klen, y->attrs[i].key,
				     y->attrs[i].klen) ||
			    x->attrs[i].required != y->attrs[i].required ||
			    !cedar_type_eq(x->attrs[i].type, y->attrs[i].type))
				return 0;
		return 1;
	default: return 1;
	}
}

/* Records must have the same keys; an attribute optional on either side
 * is optional in the bound (the Lean specification's lubRecordType). */
static const struct cedar_type *lub_record(cedar_arena *a, const struct cedar_type *x,
					   const struct cedar_type *y)
{
	if (x->nattrs != y->nattrs)
		return NULL;
	struct cedar_type *r = cedar_alloc(a, sizeof(*r));
	struct cedar_attr *at = cedar_alloc(a, (x->nattrs + 1) * sizeof(*at));
	if (!r || !at)
		return NULL;
	for (uint32_t i = 0; i < x->nattrs; i++) {
		if (!name_eq(x->attrs[i].key, x->attrs[i].klen, y->attrs[i].key, y->attrs[i].klen))
			return NULL;
		at[i] = x->attrs[i];
		at[i].required = x->attrs[i].required && y->attrs[i].required;
		if (!(at[i].type = cedar_type_lub(a, x->attrs[i].type, y->attrs[i].type)))
			return NULL;
	}
	r->kind = CT_RECORD;
	r->attrs = at;
	r->nattrs = x->nattrs;
	return r;
}

const struct cedar_type *cedar_type_lub(cedar_arena *a, const struct cedar_type *x,
					const struct cedar_type *y)
{
	if (x->kind == CT_BOOL && y->kind == CT_BOOL)
		return x->b == y->b ? x : &cedar_t_bool;
	if (x->kind == CT_SET && y->kind == CT_SET) {
		const struct cedar_type *e = cedar_type_lub(a, x->elem, y->elem);
		if (!e)
			return NULL;
		if (e == x->elem)
			return x;
		struct cedar_type *s = cedar_alloc(a, sizeof(*s));
		if (s) {
			s->kind = CT_SET;
			s->elem = e;
		}
		return s;
	}
	if (x->kind == CT_RECORD && y->kind == CT_RECORD)
		return lub_record(a, x, y);
	return cedar_type_eq(x, y) ? x : NULL;
}

static void type_str(const struct cedar_type *t, char *o, size_t cap, size_t *w)
{
	static const char *const ext[] = {"", "decimal", "ipaddr", "datetime", "duration"};
	char buf[64];
	const char *s = buf;
	buf[0] = 0;
	switch (t->kind) {
	case CT_BOOL: s = t->b == CB_TT ? "__cedar::Bool (true)" : t->b == CB_FF ?
			  "__cedar::Bool (false)" : "__cedar::Bool"; break;
	case CT_LONG: s = "__cedar::Long"; break;
	case CT_STRING: s = "__cedar::String"; break;
	case CT_EXT: s = ext[t->ext]; break;
	case CT_ENTITY:
		snprintf(buf, sizeof(buf), "%.*s", (int)(t->nlen < 60 ? t->nlen : 60), t->name);
		break;
	case CT_SET:
		*w += (size_t)snprintf(o + *w, *w < cap ? cap - *w : 0, "Set<");
		if (*w < cap)
			type_str(t->elem, o, cap, w);
		s = ">";
		break;
	case CT_RECORD:
		*w += (size_t)snprintf(o + *w, *w < cap ? cap - *w : 0, "{");
		for (uint32_t i = 0; i < t->nattrs && *w < cap; i++) {
			*w += (size_t)snprintf(o + *w, *w < cap ? cap - *w : 0, "%s%.*s%s: ",
					       i ? ", " : "", (int)(t->attrs[i].klen < 40 ?
								    t->attrs[i].klen : 40),
					       t->attrs[i].key, t->attrs[i].required ? "" : "?");
			if (*w < cap)
				type_str(t->attrs[i].type, o, cap, w);
		}
		s = "}";
		break;
	default: break;
	}
	if (*w < cap)
		*w += (size_t)snprintf(o + *w, cap - *w, "%s", s);
}

const char *cedar_type_str(cedar_arena *a, const struct cedar_type *t)
{
	size_t cap = 120, w = 0;
	char *o = cedar_alloc(a, cap + 4);
	if (!o)
		return "?";
	type_str(t, o, cap, &w);
	if (w >= cap)
		strcpy(o + cap - 4, "...");
	return o;
}

/* ---- the builder ---------------------------------------------------------- */

void *cedar_sb_grow(cedar_arena *a, void *v, uint32_t n, uint32_t *cap, size_t sz)
{
	if (n < *cap)
		return v;
	uint32_t nc = *cap ? *cap * 2 : 8;
	void *nv = cedar_alloc(a, nc * sz);
	if (nv && n)
		memcpy(nv, v, n * sz);
	if (nv)
		*cap = nc;
	return nv;
}

const char *cedar_sb_qualify(cedar_arena *a, const char *ns, const char *name, size_t n)
{
	size_t nl = ns ? strlen(ns) : 0;
	char *o = cedar_alloc(a, nl + n + 3);
	if (!o)
		return NULL;
	if (nl) {
		memcpy(o, ns, nl);
		memcpy(o + nl, "::", 2);
		nl += 2;
	}
	memcpy(o + nl, name, n);
	o[nl + n] = 0;
	return o;
}

struct res {
	struct cedar_sb *b;
	struct cedar_schema *s;
};

static int sfail(struct cedar_sb *b, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int sfail(struct cedar_sb *b, int line, int col, const char *fmt, ...)
{
	char msg[220];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		cedar_set_err(b->err, CEDAR_E_INPUT, line, col, "%d:%d: %s", line, col, msg);
	else
		cedar_set_err(b->err, CEDAR_E_INPUT, 0, 0, "%s", msg);
	return CEDAR_E_INPUT;
}

static struct cedar_sb_common *find_common(struct cedar_sb *b, const char *q)
{
	for (uint32_t i = 0; i < b->ncts; i++)
		if (!strcmp(b->cts[i].name, q))
			return &b->cts[i];
	return NULL;
}

static const struct cedar_type *builtin(const char *n)
{
	static const struct { const char *n; const struct cedar_type *t; } bs[] = {
		{"Long", &cedar_t_long}, {"String", &cedar_t_string}, {"Bool", &cedar_t_bool},
		{"ipaddr", &cedar_t_ext[CX_IP]}, {"decimal", &cedar_t_ext[CX_DECIMAL]},
		{"datetime", &cedar_t_ext[CX_DATETIME]}, {"duration", &cedar_t_ext[CX_DURATION]}};
	for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++)
		if (!strcmp(n, bs[i].n))
			return bs[i].t;
	return NULL;
}

static const struct cedar_type *resolve(struct res *r, const struct cedar_sref *t, int depth);

static const struct cedar_type *entity_type(struct res *r, const struct cedar_ety *e)
{
	struct cedar_type *t = cedar_alloc(r->b->a, sizeof(*t));
	if (t) {
		t->kind = CT_ENTITY;
		t->name = e->name;
		t->nlen = e->nlen;
	}
	return t;
}

static const struct cedar_type *common_type(struct res *r, struct cedar_sb_common *c, int depth)
{
	if (c->done)
		return c->done;
	if (c->busy || depth > 64) {
		sfail(r->b, c->line, c->col, "common type `%s` refers to itself", c->name);
		return NULL;
	}
	c->busy = 1;
	c->done = resolve(r, c->type, depth + 1);
	c->busy = 0;
	return c->done;
}

/* An entity type written in namespace ns: ns::N first, then N as given. */
static const struct cedar_ety *resolve_ety(struct res *r, const char *ns, const char *n, size_t nl)
{
	const struct cedar_ety *e = NULL;
	if (ns && *ns) {
		const char *q = cedar_sb_qualify(r->b->a, ns, n, nl);
		if (q)
			e = cedar_schema_ety(r->s, q, strlen(q));
	}
	return e ? e : cedar_schema_ety(r->s, n, nl);
}

/* A type name: ns::N as a common type, then as an entity type; then N as a
 * common type and as an entity type; then a builtin (so `type ipaddr = …`
 * or `entity ipaddr` takes the name over). `__cedar::N` is always the
 * builtin. */
static const struct cedar_type *resolve_name(struct res *r, const struct cedar_sref *t, int depth)
{
	char nm[512];
	snprintf(nm, sizeof(nm), "%.*s", (int)t->nlen, t->name);
	if (!strncmp(nm, "__cedar::", 9)) {
		const struct cedar_type *bt = builtin(nm + 9);
		if (!bt)
			sfail(r->b, t->line, t->col, "unknown builtin type `%s`", nm);
		return bt;
	}
	int qualified = strstr(nm, "::") != NULL;
	const char *q = t->ns && *t->ns ? cedar_sb_qualify(r->b->a, t->ns, nm, strlen(nm)) : NULL;
	struct cedar_sb_common *c;
	const struct cedar_ety *e;
	if (q && (c = find_common(r->b, q)))
		return common_type(r, c, depth);
	if (q && (e = cedar_schema_ety(r->s, q, strlen(q))))
		return entity_type(r, e);
	if ((c = find_common(r->b, nm)))
		return common_type(r, c, depth);
	if ((e = cedar_schema_ety(r->s, nm, strlen(nm))))
		return entity_type(r, e);
	const struct cedar_type *bt = qualified ? NULL : builtin(nm);
	if (bt)
		return bt;
	sfail(r->b, t->line, t->col, "undeclared type `%s`", nm);
	return NULL;
}

static int attr_cmp(const void *x, const void *y)
{
	const struct cedar_attr *a = x, *b = y;
	return cedar_keycmp(a->key, a->klen, b->key, b->klen);
}

static const struct cedar_type *resolve_record(struct res *r, const struct cedar_sref *t, int depth)
{
	struct cedar_type *rt = cedar_alloc(r->b->a, sizeof(*rt));
	struct cedar_attr *at = cedar_alloc(r->b->a, (t->nattrs + 1) * sizeof(*at));
	if (!rt || !at)
		return NULL;
	for (uint32_t i = 0; i < t->nattrs; i++) {
		at[i].key = t->attrs[i].key;
		at[i].klen = t->attrs[i].klen;
		at[i].required = (uint8_t)t->attrs[i].required;
		if (!(at[i].type = resolve(r, t->attrs[i].type, depth + 1)))
			return NULL;
	}
	qsort(at, t->nattrs, sizeof(*at), attr_cmp);
	for (uint32_t i = 1; i < t->nattrs; i++)
		if (!attr_cmp(&at[i - 1], &at[i])) {
			sfail(r->b, t->line, t->col, "duplicate attribute `%.*s`",
			      (int)(at[i].klen < 60 ? at[i].klen : 60), at[i].key);
			return NULL;
		}
	rt->kind = CT_RECORD;
	rt->attrs = at;
	rt->nattrs = t->nattrs;
	return rt;
}

static const struct cedar_type *resolve(struct res *r, const struct cedar_sref *t, int depth)
{
	if (depth > 200) {
		sfail(r->b, t->line, t->col, "%s", "type nested too deeply");
		return NULL;
	}
	switch (t->kind) {
	case SR_TYPE: return t->type;
	case SR_NAME: return resolve_name(r, t, depth);
	case SR_ENTITY: {
		const struct cedar_ety *e = resolve_ety(r, t->ns, t->name, t->nlen);
		if (!e)
			sfail(r->b, t->line, t->col, "undeclared entity type `%.*s`",
			      (int)(t->nlen < 100 ? t->nlen : 100), t->name);
		return e ? entity_type(r, e) : NULL;
	}
	case SR_SET: {
		struct cedar_type *st = cedar_alloc(r->b->a, sizeof(*st));
		if (!st || !(st->elem = resolve(r, t->elem, depth + 1)))
			return NULL;
		st->kind = CT_SET;
		return st;
	}
	case SR_RECORD: return resolve_record(r, t, depth);
	default: return NULL;
	}
}

/* ---- hierarchies ------------------------------------------------------------ */

/* Scratch for the ancestor walks, allocated once: a walk marks what it
 * saw with its own stamp, so nothing is cleared between types. */
struct walk {
	uint32_t *stack, *stamp, *buf;
};

/* Transitive ancestors of entity type i, by depth-first search over the
 * declared parents (cycles are harmless: each type is visited once). */
static int ety_ancestors(struct res *r, const struct cedar_ety ***par, const uint32_t *npar,
			 struct walk *w, uint32_t i)
{
	struct cedar_schema *s = r->s;
	uint32_t n = 0, na = 0;
	w->stack[n++] = i;
	while (n) {
		uint32_t k = w->stack[--n];
		for (uint32_t j = 0; j < npar[k]; j++) {
			uint32_t pi = (uint32_t)(par[k][j] - s->ets);
			if (w->stamp[pi] == i + 1)
				continue;
			w->stamp[pi] = i + 1;
			w->buf[na++] = pi;
			w->stack[n++] = pi;
		}
	}
	const char **anc = cedar_alloc(r->b->a, (na + 1) * sizeof(*anc));
	uint32_t *al = cedar_alloc(r->b->a, (na + 1) * sizeof(*al));
	if (!anc || !al)
		return CEDAR_E_NOMEM;
	for (uint32_t k = 0; k < na; k++) {
		anc[k] = s->ets[w->buf[k]].name;
		al[k] = s->ets[w->buf[k]].nlen;
	}
	s->ets[i].anc = anc;
	s->ets[i].anclens = al;
	s->ets[i].nanc = na;
	return 0;
}

static int ety_cmp(const void *x, const void *y)
{
	const struct cedar_ety *a = x, *b = y;
	return cedar_keycmp(a->name, a->nlen, b->name, b->nlen);
}

/* Entity types are kept sorted by name, so lookups are binary searches. */
static int declare_etys(struct res *r)
{
	struct cedar_sb *b = r->b;
	struct cedar_schema *s = r->s;
	s->ets = cedar_alloc(b->a, (b->nets + 1) * sizeof(*s->ets));
	if (!s->ets)
		return CEDAR_E_NOMEM;
	for (uint32_t i = 0; i < b->nets; i++) {
		struct cedar_ety *e = &s->ets[s->nets++];
		e->src = i;
		e->name = b->ets[i].name;
		e->nlen = (uint32_t)strlen(e->name);
		e->is_enum = b->ets[i].is_enum;
		e->eids = b->ets[i].eids;
		e->eidlens = b->ets[i].eidlens;
		e->neids = b->ets[i].neids;
	}
	qsort(s->ets, s->nets, sizeof(*s->ets), ety_cmp);
	for (size_t i = 1; i < s->nets; i++)
		if (!ety_cmp(&s->ets[i - 1], &s->ets[i])) {
			const struct cedar_sb_ety *later = &b->ets[s->ets[i].src > s->ets[i - 1].src ?
								   s->ets[i].src : s->ets[i - 1].src];
			return sfail(b, later->line, later->col, "entity type `%s` declared twice",
				     later->name);
		}
	return 0;
}

/* Shape, tags and parent types of entity type i. */
static int ety_resolve(struct res *r, uint32_t i, const struct cedar_ety **par, uint32_t *npar)
{
	static const struct cedar_type empty = {.kind = CT_RECORD};
	struct cedar_ety *e = &r->s->ets[i];
	struct cedar_sb_ety *be = &r->b->ets[e->src];
	e->attrs = be->shape ? resolve(r, be->shape, 0) : &empty;
	if (!e->attrs || (be->tags && !(e->tags = resolve(r, be->tags, 0))))
		return CEDAR_E_INPUT;
	if (e->attrs->kind != CT_RECORD)
		return sfail(r->b, be->line, be->col, "the shape of `%s` is not a record", e->name);
	for (uint32_t j = 0; j < be->npar; j++) {
		const struct cedar_sref *p = be->parents[j];
		const struct cedar_ety *pe = resolve_ety(r, p->ns, p->name, p->nlen);
		int dup = 0;
		if (!pe)
			return sfail(r->b, p->line, p->col, "undeclared entity type `%.*s`",
				     (int)(p->nlen < 100 ? p->nlen : 100), p->name);
		for (uint32_t k = 0; k < *npar; k++)
			dup |= par[k] == pe;
		if (!dup)
			par[(*npar)++] = pe;
	}
	return 0;
}

static int finish_etys(struct res *r)
{
	struct cedar_sb *b = r->b;
	struct cedar_schema *s = r->s;
	int rc = declare_etys(r);
	if (rc)
		return rc;
	const struct cedar_ety ***par = cedar_alloc(b->a, (s->nets + 1) * sizeof(*par));
	uint32_t *npar = cedar_alloc(b->a, (s->nets + 1) * sizeof(*npar));
	struct walk w = {cedar_alloc(b->a, (s->nets + 1) * sizeof(uint32_t)),
			 cedar_alloc(b->a, (s->nets + 1) * sizeof(uint32_t)),
			 cedar_alloc(b->a, (s->nets + 1) * sizeof(uint32_t))};
	if (!par || !npar || !w.stack || !w.stamp || !w.buf)
		return CEDAR_E_NOMEM;
	for (uint32_t i = 0; i < s->nets; i++) {
		if (!(par[i] = cedar_alloc(b->a, (b->ets[s->ets[i].src].npar + 1) * sizeof(**par))))
			return CEDAR_E_NOMEM;
		if ((rc = ety_resolve(r, i, par[i], &npar[i])))
			return rc;
	}
	for (uint32_t i = 0; i < s->nets; i++)
		if (ety_ancestors(r, par, npar, &w, i))
			return CEDAR_E_NOMEM;
	return 0;
}

static const struct cedar_uid *act_ref(struct res *r, const struct cedar_sb_act *a,
				       const struct cedar_sb_aref *p)
{
	const char *t;
	size_t tl;
	if (p->type) {
		t = p->type;
		tl = p->tlen;
		/* A bare `Action` (JSON) is the action type of this namespace. */
		if (tl == 6 && !memcmp(t, "Action", 6) && a->ns && *a->ns) {
			t = cedar_sb_qualify(r->b->a, a->ns, "Action", 6);
			tl = t ? strlen(t) : 0;
		}
	} else {
		t = cedar_sb_qualify(r->b->a, a->ns, "Action", 6);
		tl = t ? strlen(t) : 0;
	}
	return t ? cedar_uid_make(r->b->a, t, tl, p->id, p->idlen) : NULL;
}

static int act_types(struct res *r, struct cedar_sref **v, uint32_t n,
		     const struct cedar_ety ***out, uint32_t *nout)
{
	const struct cedar_ety **o = cedar_alloc(r->b->a, (n + 1) * sizeof(*o));
	if (!o)
		return CEDAR_E_NOMEM;
	*nout = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct cedar_ety *e = resolve_ety(r, v[i]->ns, v[i]->name, v[i]->nlen);
		if (!e)
			return sfail(r->b, v[i]->line, v[i]->col, "undeclared entity type `%.*s`",
				     (int)(v[i]->nlen < 100 ? v[i]->nlen : 100), v[i]->name);
		int dup = 0;
		for (uint32_t k = 0; k < *nout; k++)
			dup |= o[k] == e;
		if (!dup)
			o[(*nout)++] = e;
	}
	*out = o;
	return 0;
}

static int declare_acts(struct res *r)
{
	struct cedar_sb *b = r->b;
	struct cedar_schema *s = r->s;
	static const struct cedar_type empty = {.kind = CT_RECORD};
	s->acts = cedar_alloc(b->a, (b->nacts + 1) * sizeof(*s->acts));
	if (!s->acts)
		return CEDAR_E_NOMEM;
	for (uint32_t i = 0; i < b->nacts; i++) {
		struct cedar_sb_act *ba = &b->acts[i];
		struct cedar_sb_aref self = {.id = ba->id, .idlen = ba->idlen};
		const struct cedar_uid *u = act_ref(r, ba, &self);
		int idl = (int)(ba->idlen < 100 ? ba->idlen : 100);
		if (!u)
			return CEDAR_E_NOMEM;
		if (cedar_schema_act(s, u))
			return sfail(b, ba->line, ba->col, "action `%.*s` declared twice", idl, ba->id);
		struct cedar_act *a = &s->acts[s->nacts++];
		a->uid = u;
		a->applies = ba->applies;
		if (act_types(r, ba->prin, ba->nprin, &a->prin, &a->nprin) ||
		    act_types(r, ba->res, ba->nres, &a->res, &a->nres))
			return CEDAR_E_INPUT;
		if (!(a->ctx = ba->ctx ? resolve(r, ba->ctx, 0) : &empty))
			return CEDAR_E_INPUT;
		if (a->ctx->kind != CT_RECORD)
			return sfail(b, ba->line, ba->col, "the context of action `%.*s` is not a record",
				     idl, ba->id);
	}
	return 0;
}

/* Each action's declared parents, as indexes into s->acts. */
static int act_parents(struct res *r, uint32_t **par, uint32_t *npar)
{
	struct cedar_sb *b = r->b;
	struct cedar_schema *s = r->s;
	for (uint32_t i = 0; i < s->nacts; i++) {
		struct cedar_sb_act *ba = &b->acts[i];
		if (!(par[i] = cedar_alloc(b->a, (ba->npar + 1) * sizeof(**par))))
			return CEDAR_E_NOMEM;
		for (uint32_t j = 0; j < ba->npar; j++) {
			const struct cedar_uid *pu = act_ref(r, ba, &ba->parents[j]);
			const struct cedar_act *pa = pu ? cedar_schema_act(s, pu) : NULL;
			if (!pa)
				return sfail(b, ba->line, ba->col, "undeclared action `%.*s` in `in`",
					     (int)(ba->parents[j].idlen < 100 ? ba->parents[j].idlen : 100),
					     ba->parents[j].id);
			par[i][npar[i]++] = (uint32_t)(pa - s->acts);
		}
	}
	return 0;
}

/* Transitive ancestors of every action by depth-first search; reaching
 * the action itself is a cycle, which Cedar refuses. */
static int finish_acts(struct res *r)
{
	struct cedar_sb *b = r->b;
	struct cedar_schema *s = r->s;
	int rc = declare_acts(r);
	if (rc)
		return rc;
	uint32_t **par = cedar_alloc(b->a, (s->nacts + 1) * sizeof(*par));
	uint32_t *npar = cedar_alloc(b->a, (s->nacts + 1) * sizeof(*npar));
	struct walk w = {cedar_alloc(b->a, (s->nacts + 1) * sizeof(uint32_t)),
			 cedar_alloc(b->a, (s->nacts + 1) * sizeof(uint32_t)),
			 cedar_alloc(b->a, (s->nacts + 1) * sizeof(uint32_t))};
	if (!par || !npar || !w.stack || !w.stamp || !w.buf)
		return CEDAR_E_NOMEM;
	if ((rc = act_parents(r, par, npar)))
		return rc;
	for (uint32_t i = 0; i < s->nacts; i++) {
		uint32_t n = 0, na = 0;
		w.stack[n++] = i;
		while (n) {
			uint32_t k = w.stack[--n];
			for (uint32_t j = 0; j < npar[k]; j++) {
				uint32_t pi = par[k][j];
				if (pi == i)
					return sfail(b, b->acts[i].line, b->acts[i].col,
						     "action `%.*s` is its own ancestor",
						     (int)(s->acts[i].uid->idlen < 100 ? s->acts[i].uid->idlen
										       : 100),
						     s->acts[i].uid->id);
				if (w.stamp[pi] == i + 1)
					continue;
				w.stamp[pi] = i + 1;
				w.buf[na++] = pi;
				w.stack[n++] = pi;
			}
		}
		const struct cedar_uid **anc = cedar_alloc(b->a, (na + 1) * sizeof(*anc));
		if (!anc)
			return CEDAR_E_NOMEM;
		for (uint32_t k = 0; k < na; k++)
			anc[k] = s->acts[w.buf[k]].uid;
		s->acts[i].anc = anc;
		s->acts[i].nanc = na;
	}
	return 0;
}

static const char *last_part(const char *q)
{
	const char *l = strrchr(q, ':');
	return l ? l + 1 : q;
}

/* Names Cedar keeps for itself: builtin type names cannot be common types,
 * and `Action` is the action type of each namespace. */
static int reserved_names(struct cedar_sb *b)
{
	static const char *const bt[] = {"Bool", "Boolean", "Entity", "Extension", "Long",
					 "Record", "Set", "String", NULL};
	for (uint32_t i = 0; i < b->ncts; i++)
		for (size_t k = 0; bt[k]; k++)
			if (!strcmp(last_part(b->cts[i].name), bt[k]))
				return sfail(b, b->cts[i].line, b->cts[i].col,
					     "`%s` is a reserved type name", bt[k]);
	for (uint32_t i = 0; i < b->nets; i++)
		if (!strcmp(last_part(b->ets[i].name), "Action"))
			return sfail(b, b->ets[i].line, b->ets[i].col,
				     "`Action` is reserved for the actions of a namespace");
	return 0;
}

/* A type declared in a namespace may not shadow one of the same name in
 * the empty namespace (Cedar refuses the schema). */
static int shadows(struct cedar_sb *b)
{
	for (uint32_t k = 0; k < b->nets + b->ncts; k++) {
		const char *q = k < b->nets ? b->ets[k].name : b->cts[k - b->nets].name;
		const char *ns = k < b->nets ? b->ets[k].ns : b->cts[k - b->nets].ns;
		int line = k < b->nets ? b->ets[k].line : b->cts[k - b->nets].line;
		int col = k < b->nets ? b->ets[k].col : b->cts[k - b->nets].col;
		const char *base = last_part(q);
		if (!ns || !*ns)
			continue;
		for (uint32_t j = 0; j < b->nets + b->ncts; j++) {
			const char *o = j < b->nets ? b->ets[j].name : b->cts[j - b->nets].name;
			const char *ons = j < b->nets ? b->ets[j].ns : b->cts[j - b->nets].ns;
			if ((!ons || !*ons) && !strcmp(o, base))
				return sfail(b, line, col, "`%s` shadows `%s` of the empty namespace",
					     q, base);
		}
	}
	return 0;
}

int cedar_schema_finish(struct cedar_sb *b, struct cedar_schema *s)
{
	struct res r = {b, s};
	if (reserved_names(b) || shadows(b))
		return CEDAR_E_INPUT;
	for (uint32_t i = 0; i < b->ncts; i++)
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(b->cts[i].name, b->cts[j].name))
				return sfail(b, b->cts[i].line, b->cts[i].col,
					     "common type `%s` declared twice", b->cts[i].name);
	int rc = finish_etys(&r);
	if (!rc)
		rc = finish_acts(&r);
	for (uint32_t i = 0; !rc && i < b->ncts; i++)
		if (!common_type(&r, &b->cts[i], 0))
			rc = CEDAR_E_INPUT;
	return rc;
}

/* ---- the public entry points ------------------------------------------------ */

cedar_schema *cedar_schema_parse(const char *text, size_t len, int format, struct cedar_err *err)
{
	cedar_arena *a = cedar_arena_new(0);
	struct cedar_schema *s = a ? cedar_alloc(a, sizeof(*s)) : NULL;
	struct cedar_sb b = {.a = a, .err = err};
	int rc;
	if (!s) {
		cedar_arena_free(a);
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return NULL;
	}
	s->a = a;
	if (format == CEDAR_SCHEMA_AUTO) {
		size_t i = 0;
		while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
				   text[i] == '\r'))
			i++;
		format = i < len && text[i] == '{' ? CEDAR_SCHEMA_JSON : CEDAR_SCHEMA_TEXT;
	}
	rc = format == CEDAR_SCHEMA_JSON ? cedar_schema_parse_json(&b, text, len)
					 : cedar_schema_parse_text(&b, text, len);
	if (!rc)
		rc = cedar_schema_finish(&b, s);
	if (rc) {
		if (err && !err->code)
			cedar_set_err(err, rc, 0, 0, "out of memory");
		cedar_arena_free(a);
		return NULL;
	}
	return s;
}

cedar_schema *cedar_schema_parse_file(const char *path, int format, struct cedar_err *err)
{
	size_t len;
	char *text = cedar_read_file(path, &len, err);
	if (!text)
		return NULL;
	if (format == CEDAR_SCHEMA_AUTO) {
		size_t n = strlen(path);
		if (n > 5 && !strcmp(path + n - 5, ".json"))
			format = CEDAR_SCHEMA_JSON;
	}
	cedar_schema *s = cedar_schema_parse(text, len, format, err);
	free(text);
	return s;
}

void cedar_schema_free(cedar_schema *s)
{
	if (s)
		cedar_arena_free(s->a);
}
