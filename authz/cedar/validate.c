/* The policy validator: Cedar's strict-mode typechecker, following the Lean
 * specification (cedar-spec cedar-lean/Cedar/Validation/Typechecker.lean and
 * Validator.lean). A policy is typechecked as `principal-scope && action-scope
 * && resource-scope && conditions` once per request environment the schema
 * defines (action × principal type × resource type), with `action` replaced
 * by the environment's action. Booleans carry the refinements true/false, so
 * `&&`, `||` and `if` skip what can never run, as Cedar does; capabilities
 * (attributes and tags proven present by `has`/`hasTag`) make optional
 * attributes readable. An error in any environment makes the policy invalid;
 * a policy that is false in every environment gets a warning.
 *
 * Every error is reported, as Cedar does, not only the first: an expression
 * in error still has a type when its type does not depend on what went
 * wrong (`a + b` is a Long, `a < b` and `a && b` are Bools, a misused
 * optional attribute has its declared type), and what encloses it is
 * checked with that type; where no type is left (an unknown attribute) the
 * enclosing expression is not judged, since any error there would be an
 * echo of the first. The same error from several environments is one. */
#include "authz/cedar/cedar_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct cap {
	const struct cedar_expr *x;
	const char *k;                  /* attribute, or NULL for a tag */
	uint32_t klen;
	const struct cedar_expr *tag;
};

struct caps {
	const struct cap *v;
	uint32_t n;
};

struct tr {
	const struct cedar_type *t;
	struct caps c;
};

struct verr {
	int line, col;
	uint32_t seq;                   /* order found, for a stable sort */
	char msg[200];
};

/* A policy's errors are bounded: past this many, one line says there
 * were more. */
#define MAX_POLICY_ERRORS 64

struct vctx {
	cedar_arena *a;
	const struct cedar_schema *s;
	const struct cedar_policy *pol;
	unsigned flags;                 /* CEDAR_VALIDATE_* */
	const struct cedar_act *act;    /* the environment */
	const struct cedar_ety *pty, *rty;
	struct cedar_value actval;
	struct verr *errs;              /* distinct errors, MAX_POLICY_ERRORS room */
	uint32_t nerr;
	int more;                       /* an error found that errs has no room for */
};

static int vfail(struct vctx *v, const struct cedar_expr *x, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records an error at x (at the policy when x is NULL) unless the same
 * message is already there, and returns -1: the expression's type is
 * unknown. */
static int vfail(struct vctx *v, const struct cedar_expr *x, const char *fmt, ...)
{
	struct verr e = {x ? x->line : v->pol->line, x ? x->col : v->pol->col, v->nerr, ""};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	for (uint32_t i = 0; i < v->nerr; i++)
		if (v->errs[i].line == e.line && v->errs[i].col == e.col && !strcmp(v->errs[i].msg, e.msg))
			return -1;
	if (!v->errs)
		v->errs = cedar_alloc(v->a, MAX_POLICY_ERRORS * sizeof(*v->errs));
	if (v->errs && v->nerr < MAX_POLICY_ERRORS)
		v->errs[v->nerr++] = e;
	else
		v->more = 1;
	return -1;
}

static const char *ts(struct vctx *v, const struct cedar_type *t)
{
	return cedar_type_str(v->a, t);
}

static int clip(size_t n)
{
	return (int)(n < 80 ? n : 80);
}

/* ---- expressions as keys of capabilities --------------------------------- */

static int xeq(const struct cedar_expr *a, const struct cedar_expr *b);

static int xeq_list(struct cedar_expr *const *a, struct cedar_expr *const *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!xeq(a[i], b[i]))
			return 0;
	return 1;
}

static int xeq(const struct cedar_expr *a, const struct cedar_expr *b)
{
	if (a == b)
		return 1;
	if (!a || !b || a->op != b->op || a->n != b->n || a->var != b->var || a->fn != b->fn ||
	    a->nlen != b->nlen)
		return 0;
	if (a->nlen && memcmp(a->name, b->name, a->nlen))
		return 0;
	if (a->op == X_LIT)
		return cedar_value_equal(&a->lit, &b->lit);
	if (a->op == X_LIKE && memcmp(a->pat, b->pat, a->n * sizeof(*a->pat)))
		return 0;
	if (a->op == X_RECORD)
		for (uint32_t i = 0; i < a->n; i++)
			if (a->klens[i] != b->klens[i] || memcmp(a->keys[i], b->keys[i], a->klens[i]))
				return 0;
	return xeq(a->a, b->a) && xeq(a->b, b->b) && xeq(a->c, b->c) &&
	       (a->n == 0 || !a->args || xeq_list(a->args, b->args, a->n));
}

static int cap_has(struct caps c, const struct cedar_expr *x, const char *k, uint32_t kl,
		   const struct cedar_expr *tag)
{
	for (uint32_t i = 0; i < c.n; i++) {
		const struct cap *p = &c.v[i];
		if ((k ? p->k && p->klen == kl && !memcmp(p->k, k, kl) : !p->k && xeq(p->tag, tag)) &&
		    xeq(p->x, x))
			return 1;
	}
	return 0;
}

static struct caps cap_union(struct vctx *v, struct caps a, struct caps b)
{
	if (!a.n)
		return b;
	if (!b.n)
		return a;
	struct cap *o = cedar_alloc(v->a, (a.n + b.n) * sizeof(*o));
	if (!o)
		return a;
	memcpy(o, a.v, a.n * sizeof(*o));
	memcpy(o + a.n, b.v, b.n * sizeof(*o));
	return (struct caps){o, a.n + b.n};
}

static struct caps cap_inter(struct vctx *v, struct caps a, struct caps b)
{
	struct cap *o = a.n ? cedar_alloc(v->a, a.n * sizeof(*o)) : NULL;
	uint32_t n = 0;
	for (uint32_t i = 0; o && i < a.n; i++)
		if (cap_has(b, a.v[i].x, a.v[i].k, a.v[i].klen, a.v[i].tag))
			o[n++] = a.v[i];
	return (struct caps){o, n};
}

static struct caps cap_one(struct vctx *v, const struct cedar_expr *x, const char *k, uint32_t kl,
			   const struct cedar_expr *tag)
{
	struct cap *o = cedar_alloc(v->a, sizeof(*o));
	if (!o)
		return (struct caps){0};
	*o = (struct cap){x, k, kl, tag};
	return (struct caps){o, 1};
}

/* ---- schema lookups ---------------------------------------------------------- */

static const struct cedar_type *ent_type(struct vctx *v, const char *name, uint32_t n)
{
	struct cedar_type *t = cedar_alloc(v->a, sizeof(*t));
	if (t) {
		t->kind = CT_ENTITY;
		t->name = name;
		t->nlen = n;
	}
	return t;
}

static const struct cedar_ety *ety_of(struct vctx *v, const struct cedar_type *t)
{
	return cedar_schema_ety(v->s, t->name, t->nlen);
}

static int action_type(const struct cedar_schema *s, const char *n, uint32_t nl)
{
	for (size_t i = 0; i < s->nacts; i++)
		if (s->acts[i].uid->tlen == nl && !memcmp(s->acts[i].uid->type, n, nl))
			return 1;
	return 0;
}

static int uid_valid(const struct cedar_schema *s, const struct cedar_uid *u)
{
	const struct cedar_ety *e = cedar_schema_ety(s, u->type, u->tlen);
	if (e && !e->is_enum)
		return 1;
	for (uint32_t i = 0; e && i < e->neids; i++)
		if (e->eidlens[i] == u->idlen && !memcmp(e->eids[i], u->id, u->idlen))
			return 1;
	return !e && cedar_schema_act(s, u) != NULL;
}

static int act_desc(const struct cedar_schema *s, const struct cedar_uid *a,
		    const struct cedar_uid *b)
{
	if (cedar_uid_eq(a, b))
		return 1;
	const struct cedar_act *e = cedar_schema_act(s, a);
	for (uint32_t i = 0; e && i < e->nanc; i++)
		if (cedar_uid_eq(e->anc[i], b))
			return 1;
	return 0;
}

/* TypeEnv.descendentOf: can an entity of type a be in one of type b? */
static int type_desc(const struct cedar_schema *s, const struct cedar_type *a,
		     const struct cedar_type *b)
{
	if (a->nlen == b->nlen && !memcmp(a->name, b->name, a->nlen))
		return 1;
	const struct cedar_ety *e = cedar_schema_ety(s, a->name, a->nlen);
	if (e) {
		for (uint32_t i = 0; i < e->nanc; i++)
			if (e->anclens[i] == b->nlen && !memcmp(e->anc[i], b->name, b->nlen))
				return 1;
		return 0;
	}
	for (size_t i = 0; i < s->nacts; i++) {
		const struct cedar_act *ac = &s->acts[i];
		if (ac->uid->tlen != a->nlen || memcmp(ac->uid->type, a->name, a->nlen))
			continue;
		for (uint32_t j = 0; j < ac->nanc; j++)
			if (ac->anc[j]->tlen == b->nlen && !memcmp(ac->anc[j]->type, b->name, b->nlen))
				return 1;
	}
	return 0;
}

/* `action` is the environment's action: a literal, as after Lean's
 * substituteAction. */
static const struct cedar_value *lit_of(struct vctx *v, const struct cedar_expr *x)
{
	if (x->op == X_LIT)
		return &x->lit;
	if (x->op == X_VAR && x->var == VAR_ACTION)
		return &v->actval;
	return NULL;
}

static const struct cedar_uid *uid_of(struct vctx *v, const struct cedar_expr *x)
{
	const struct cedar_value *l = lit_of(v, x);
	return l && l->kind == CV_ENTITY ? l->u.uid : NULL;
}

/* ---- the typechecker --------------------------------------------------------- */

static int tc(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out);

static int ok(struct tr *out, const struct cedar_type *t)
{
	out->t = t;
	out->c = (struct caps){0};
	return t ? 0 : -1;
}

/* An unknown type (NULL) is not judged: its error is already recorded. */
static int want_bool(struct vctx *v, const struct cedar_expr *x, const struct cedar_type *t)
{
	if (!t)
		return -1;
	if (t->kind == CT_BOOL)
		return 0;
	return vfail(v, x, "expected a boolean, found %s", ts(v, t));
}

/* A condition in error leaves both branches to check. */
static int tc_if(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	struct tr r1, r2, r3;
	int k1 = !tc(v, x->a, c, &r1) && !want_bool(v, x->a, r1.t);
	if (k1 && r1.t->b == CB_TT) {
		if (tc(v, x->b, cap_union(v, c, r1.c), &r2))
			return -1;
		*out = (struct tr){r2.t, cap_union(v, r1.c, r2.c)};
		return 0;
	}
	if (k1 && r1.t->b == CB_FF)
		return tc(v, x->c, c, out);
	int k2 = !tc(v, x->b, k1 ? cap_union(v, c, r1.c) : c, &r2);
	int k3 = !tc(v, x->c, c, &r3);
	if (!k2 || !k3)
		return -1;
	const struct cedar_type *l = cedar_type_lub(v->a, r2.t, r3.t);
	if (!l)
		return vfail(v, x, "the branches of `if` have incompatible types %s and %s",
			     ts(v, r2.t), ts(v, r3.t));
	if (!k1)
		return ok(out, l);
	*out = (struct tr){l, cap_inter(v, cap_union(v, r1.c, r2.c), r3.c)};
	return 0;
}

/* `&&` and `||` are Bools whatever their operands: an error on one side
 * leaves the other to check. */
static int tc_and(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	struct tr r1, r2;
	int k1 = !tc(v, x->a, c, &r1) && !want_bool(v, x->a, r1.t);
	if (k1 && r1.t->b == CB_FF)
		return ok(out, &cedar_t_ff);
	int k2 = !tc(v, x->b, k1 ? cap_union(v, c, r1.c) : c, &r2) && !want_bool(v, x->b, r2.t);
	if (!k1 || !k2)
		return ok(out, &cedar_t_bool);
	if (r2.t->b == CB_FF)
		return ok(out, &cedar_t_ff);
	*out = (struct tr){r2.t->b == CB_TT ? r1.t : &cedar_t_bool, cap_union(v, r1.c, r2.c)};
	return 0;
}

static int tc_or(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	struct tr r1, r2;
	int k1 = !tc(v, x->a, c, &r1) && !want_bool(v, x->a, r1.t);
	if (k1 && r1.t->b == CB_TT)
		return ok(out, &cedar_t_tt);
	int k2 = !tc(v, x->b, c, &r2) && !want_bool(v, x->b, r2.t);
	if (!k1 || !k2)
		return ok(out, &cedar_t_bool);
	if (r1.t->b == CB_FF) {
		*out = r2;
		return 0;
	}
	if (r2.t->b == CB_TT)
		return ok(out, &cedar_t_tt);
	*out = (struct tr){&cedar_t_bool, r2.t->b == CB_FF ? r1.c : cap_inter(v, r1.c, r2.c)};
	return 0;
}

/* The binary operators are called with their operands' types, NULL where
 * unknown; each judges what it knows, and after an error its own type
 * stands (a Bool, or a Long for arithmetic). */
static int tc_eq(struct vctx *v, const struct cedar_expr *x, const struct cedar_type *t1,
		 const struct cedar_type *t2, struct tr *out)
{
	const struct cedar_value *l1 = lit_of(v, x->a), *l2 = lit_of(v, x->b);
	if (!t1 || !t2)
		return ok(out, &cedar_t_bool);
	if (l1 && l2)
		return ok(out, cedar_value_equal(l1, l2) ? &cedar_t_tt : &cedar_t_ff);
	if (cedar_type_lub(v->a, t1, t2))
		return ok(out, &cedar_t_bool);
	if (t1->kind == CT_ENTITY && t2->kind == CT_ENTITY)
		return ok(out, &cedar_t_ff);
	vfail(v, x, "cannot compare %s with %s", ts(v, t1), ts(v, t2));
	return ok(out, &cedar_t_bool);
}

static int tc_in(struct vctx *v, const struct cedar_expr *x, const struct cedar_type *t1,
		 const struct cedar_type *t2, struct tr *out)
{
	const struct cedar_uid *u1 = uid_of(v, x->a);
	int bad = 0;
	if (u1 && !cedar_schema_act(v->s, u1))
		u1 = NULL;
	if (t1 && t1->kind != CT_ENTITY)
		bad = vfail(v, x->a, "expected an entity on the left of `in`, found %s", ts(v, t1));
	if (t2 && t2->kind != CT_ENTITY && !(t2->kind == CT_SET && t2->elem->kind == CT_ENTITY))
		bad = vfail(v, x->b,
			    "expected an entity or a set of entities on the right of `in`, found %s",
			    ts(v, t2));
	if (bad || !t1 || !t2)
		return ok(out, &cedar_t_bool);
	if (t2->kind == CT_ENTITY) {
		const struct cedar_uid *u2 = uid_of(v, x->b);
		if (u1 && u2)
			return ok(out, act_desc(v->s, u1, u2) ? &cedar_t_tt : &cedar_t_ff);
		return ok(out, type_desc(v->s, t1, t2) ? &cedar_t_bool : &cedar_t_ff);
	}
	int all = x->b->op == X_SET, any = 0;
	for (uint32_t i = 0; all && i < x->b->n; i++) {
		const struct cedar_uid *u = uid_of(v, x->b->args[i]);
		all = u != NULL;
		any |= u && u1 && act_desc(v->s, u1, u);
	}
	if (u1 && all)
		return ok(out, any ? &cedar_t_tt : &cedar_t_ff);
	return ok(out, type_desc(v->s, t1, t2->elem) ? &cedar_t_bool : &cedar_t_ff);
}

/* hasTag is a Bool after an error; getTag's type is then unknown (as in
 * Cedar, even when only the `hasTag` guard is missing). */
static int tc_tag(struct vctx *v, const struct cedar_expr *x, const struct cedar_type *t1,
		  const struct cedar_type *t2, struct caps c, struct tr *out)
{
	int has = x->op == X_HASTAG, bad = 0;
	if (t1 && t1->kind != CT_ENTITY)
		bad = vfail(v, x->a, "expected an entity, found %s", ts(v, t1));
	if (t2 && t2->kind != CT_STRING)
		bad = vfail(v, x->b, "expected a string tag name, found %s", ts(v, t2));
	if (bad || !t1)
		return has ? ok(out, &cedar_t_bool) : -1;
	const struct cedar_ety *e = ety_of(v, t1);
	if (!e) {
		if (has && action_type(v->s, t1->name, t1->nlen))
			return ok(out, &cedar_t_ff);
		vfail(v, x, "unknown entity type %s", ts(v, t1));
		return has ? ok(out, &cedar_t_bool) : -1;
	}
	int have = t2 && cap_has(c, x->a, NULL, 0, x->b);
	if (has) {
		if (!e->tags)
			return ok(out, &cedar_t_ff);
		if (!t2)
			return ok(out, &cedar_t_bool);
		if (have)
			return ok(out, &cedar_t_tt);
		*out = (struct tr){&cedar_t_bool, cap_one(v, x->a, NULL, 0, x->b)};
		return 0;
	}
	if (!e->tags)
		return vfail(v, x, "entity type %s has no tags", ts(v, t1));
	if (!have)
		return vfail(v, x, "tag access on %s must be guarded by `hasTag`", ts(v, t1));
	return ok(out, e->tags);
}

/* 0 when t is known and of kind; otherwise -1, and an error at x (the
 * operand itself, so the message does not depend on the other one and
 * reads the same in every environment) when t is known. */
static int want_kind(struct vctx *v, const struct cedar_expr *x, const struct cedar_type *t,
		     int kind, const char *what)
{
	if (!t)
		return -1;
	if (t->kind == kind)
		return 0;
	return vfail(v, x, "expected %s, found %s", what, ts(v, t));
}

static int time_ext(const struct cedar_type *t)
{
	return t && t->kind == CT_EXT && (t->ext == CX_DATETIME || t->ext == CX_DURATION);
}

/* Longs, or two datetimes, or two durations. */
static int tc_cmp(struct vctx *v, const struct cedar_expr *x, const struct cedar_type *t1,
		  const struct cedar_type *t2, struct tr *out)
{
	if (time_ext(t1) || time_ext(t2)) {
		if (t1 && t2 && !(t1->kind == CT_EXT && t2->kind == CT_EXT && t1->ext == t2->ext))
			vfail(v, x, "expected two Longs, two datetimes or two durations, found %s and %s",
			      ts(v, t1), ts(v, t2));
		return ok(out, &cedar_t_bool);
	}
	want_kind(v, x->a, t1, CT_LONG, "Long (or datetime or duration)");
	want_kind(v, x->b, t2, CT_LONG, "Long (or datetime or duration)");
	return ok(out, &cedar_t_bool);
}

static int lub_bool(struct vctx *v, const struct cedar_expr *x, const struct cedar_type *a,
		    const struct cedar_type *b, struct tr *out)
{
	if (!cedar_type_lub(v->a, a, b))
		vfail(v, x, "incompatible types %s and %s", ts(v, a), ts(v, b));
	return ok(out, &cedar_t_bool);
}

/* Both operands are checked, whatever the first holds. */
static int tc_binary(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	struct tr r1, r2;
	tc(v, x->a, c, &r1);
	tc(v, x->b, c, &r2);
	const struct cedar_type *t1 = r1.t, *t2 = r2.t;
	switch (x->op) {
	case X_EQ: return tc_eq(v, x, t1, t2, out);
	case X_NE:
		tc_eq(v, x, t1, t2, out);
		return ok(out, out->t->b == CB_TT ? &cedar_t_ff : out->t->b == CB_FF ? &cedar_t_tt
											 : &cedar_t_bool);
	case X_IN: return tc_in(v, x, t1, t2, out);
	case X_HASTAG: case X_GETTAG: return tc_tag(v, x, t1, t2, c, out);
	case X_LT: case X_LE: case X_GT: case X_GE: return tc_cmp(v, x, t1, t2, out);
	case X_ADD: case X_SUB: case X_MUL:
		want_kind(v, x->a, t1, CT_LONG, "Long");
		want_kind(v, x->b, t2, CT_LONG, "Long");
		return ok(out, &cedar_t_long);
	case X_CONTAINS:
		if (!want_kind(v, x->a, t1, CT_SET, "a set") && t2)
			return lub_bool(v, x, t2, t1->elem, out);
		return ok(out, &cedar_t_bool);
	default: /* X_CONTAINSALL, X_CONTAINSANY */
		if (want_kind(v, x->a, t1, CT_SET, "a set") | want_kind(v, x->b, t2, CT_SET, "a set"))
			return ok(out, &cedar_t_bool);
		return lub_bool(v, x, t1->elem, t2->elem, out);
	}
}

static int tc_unary(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	struct tr r;
	int known = !tc(v, x->a, c, &r);
	const struct cedar_type *t = r.t;
	switch (x->op) {
	case X_NOT:
		if (!known || want_bool(v, x->a, t))
			return ok(out, &cedar_t_bool);
		return ok(out, t->b == CB_TT ? &cedar_t_ff : t->b == CB_FF ? &cedar_t_tt : &cedar_t_bool);
	case X_NEG:
		want_kind(v, x->a, t, CT_LONG, "Long");
		return ok(out, &cedar_t_long);
	case X_ISEMPTY:
		want_kind(v, x->a, t, CT_SET, "a set");
		return ok(out, &cedar_t_bool);
	case X_LIKE:
		want_kind(v, x->a, t, CT_STRING, "a string before `like`");
		return ok(out, &cedar_t_bool);
	default: /* X_IS */
		if (!known)
			return ok(out, &cedar_t_bool);
		if (t->kind != CT_ENTITY) {
			vfail(v, x->a, "expected an entity before `is`, found %s", ts(v, t));
			return ok(out, &cedar_t_bool);
		}
		return ok(out, t->nlen == x->nlen && !memcmp(t->name, x->name, t->nlen) ? &cedar_t_tt
											  : &cedar_t_ff);
	}
}

static int tc_attr(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	struct tr r;
	const struct cedar_type *rec;
	int entity = 0, has = x->op == X_HAS;
	if (tc(v, x->a, c, &r))
		return has ? ok(out, &cedar_t_bool) : -1;
	if (r.t->kind == CT_RECORD) {
		rec = r.t;
	} else if (r.t->kind == CT_ENTITY) {
		const struct cedar_ety *e = ety_of(v, r.t);
		entity = 1;
		if (!e) {
			if (has && action_type(v->s, r.t->name, r.t->nlen))
				return ok(out, &cedar_t_ff);
			vfail(v, x, "%s has no attributes", ts(v, r.t));
			return has ? ok(out, &cedar_t_bool) : -1;
		}
		rec = e->attrs;
	} else {
		vfail(v, x->a, "expected an entity or a record, found %s", ts(v, r.t));
		return has ? ok(out, &cedar_t_bool) : -1;
	}
	const struct cedar_attr *at = cedar_type_attr(rec, x->name, x->nlen);
	int have = cap_has(c, x->a, x->name, x->nlen, NULL);
	if (!entity && !rec->nattrs && (v->flags & CEDAR_VALIDATE_OPEN_EMPTY_RECORDS))
		/* an open record: `has` may be either, a read has no type */
		return has ? ok(out, &cedar_t_bool) : -1;
	if (x->op == X_HAS) {
		if (!at)
			return ok(out, &cedar_t_ff);
		if (have || (at->required && !entity))
			return ok(out, &cedar_t_tt);
		*out = (struct tr){&cedar_t_bool, cap_one(v, x->a, x->name, x->nlen, NULL)};
		return 0;
	}
	if (!at)
		return vfail(v, x, "no attribute `%.*s` on %s", clip(x->nlen), x->name, ts(v, r.t));
	if (!at->required && !have)
		vfail(v, x, "attribute `%.*s` of %s is optional: test it with `has` first",
		      clip(x->nlen), x->name, ts(v, r.t));
	return ok(out, at->type);
}

/* Every element is checked; one in error leaves the set's type unknown. */
static int tc_set(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	const struct cedar_type *t = NULL;
	int known = 1;
	if (!x->n)
		return vfail(v, x, "%s", "the empty set literal has no type: it cannot be validated");
	for (uint32_t i = 0; i < x->n; i++) {
		struct tr r;
		if (tc(v, x->args[i], c, &r) || !known) {
			known = 0;
			continue;
		}
		const struct cedar_type *l = t ? cedar_type_lub(v->a, t, r.t) : r.t;
		if (!l) {
			vfail(v, x->args[i], "set elements have incompatible types %s and %s",
			      ts(v, t), ts(v, r.t));
			known = 0;
		}
		t = l;
	}
	if (!known)
		return -1;
	struct cedar_type *st = cedar_alloc(v->a, sizeof(*st));
	if (st) {
		st->kind = CT_SET;
		st->elem = t;
	}
	return ok(out, st);
}

static int attr_cmp(const void *x, const void *y)
{
	const struct cedar_attr *a = x, *b = y;
	return cedar_keycmp(a->key, a->klen, b->key, b->klen);
}

static int tc_record(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	struct cedar_type *rt = cedar_alloc(v->a, sizeof(*rt));
	struct cedar_attr *at = cedar_alloc(v->a, (x->n + 1) * sizeof(*at));
	int known = 1;
	if (!rt || !at)
		return vfail(v, x, "%s", "out of memory");
	for (uint32_t i = 0; i < x->n; i++) {
		struct tr r;
		if (tc(v, x->args[i], c, &r))
			known = 0;
		at[i] = (struct cedar_attr){x->keys[i], x->klens[i], 1, r.t};
	}
	if (!known)
		return -1;
	qsort(at, x->n, sizeof(*at), attr_cmp);
	rt->kind = CT_RECORD;
	rt->attrs = at;
	rt->nattrs = x->n;
	return ok(out, rt);
}

static int tc_ctor(struct vctx *v, const struct cedar_expr *x, struct tr *out)
{
	const struct cedar_expr *a = x->n == 1 ? x->args[0] : NULL;
	struct cedar_value tmp;
	int64_t i;
	int bad = !a || a->op != X_LIT || a->lit.kind != CV_STRING;
	static const uint8_t ext[] = {[EF_DECIMAL] = CX_DECIMAL, [EF_IP] = CX_IP,
				      [EF_DATETIME] = CX_DATETIME, [EF_DURATION] = CX_DURATION};
	if (!bad) {
		const char *s = a->lit.u.s;
		size_t n = a->lit.n;
		switch (x->fn) {
		case EF_DECIMAL: bad = cedar_parse_decimal(s, n, &i) != 0; break;
		case EF_IP: bad = cedar_parse_ip(s, n, &tmp) != 0; break;
		case EF_DATETIME: bad = cedar_parse_datetime(s, n, &i) != 0; break;
		default: bad = cedar_parse_duration(s, n, &i) != 0; break;
		}
	}
	if (bad)
		vfail(v, x, "%s", "an extension constructor takes one valid string literal");
	return ok(out, &cedar_t_ext[ext[x->fn]]);
}

/* Argument extension types and result of each extension method. */
static int tc_call(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	static const struct { uint8_t fn, n, a0, a1; const struct cedar_type *r; } sig[] = {
		{EF_LESSTHAN, 2, CX_DECIMAL, CX_DECIMAL, &cedar_t_bool},
		{EF_LESSTHANOREQUAL, 2, CX_DECIMAL, CX_DECIMAL, &cedar_t_bool},
		{EF_GREATERTHAN, 2, CX_DECIMAL, CX_DECIMAL, &cedar_t_bool},
		{EF_GREATERTHANOREQUAL, 2, CX_DECIMAL, CX_DECIMAL, &cedar_t_bool},
		{EF_ISIPV4, 1, CX_IP, 0, &cedar_t_bool}, {EF_ISIPV6, 1, CX_IP, 0, &cedar_t_bool},
		{EF_ISLOOPBACK, 1, CX_IP, 0, &cedar_t_bool},
		{EF_ISMULTICAST, 1, CX_IP, 0, &cedar_t_bool},
		{EF_ISINRANGE, 2, CX_IP, CX_IP, &cedar_t_bool},
		{EF_OFFSET, 2, CX_DATETIME, CX_DURATION, &cedar_t_ext[CX_DATETIME]},
		{EF_DURATIONSINCE, 2, CX_DATETIME, CX_DATETIME, &cedar_t_ext[CX_DURATION]},
		{EF_TODATE, 1, CX_DATETIME, 0, &cedar_t_ext[CX_DATETIME]},
		{EF_TOTIME, 1, CX_DATETIME, 0, &cedar_t_ext[CX_DURATION]},
		{EF_TOMILLISECONDS, 1, CX_DURATION, 0, &cedar_t_long},
		{EF_TOSECONDS, 1, CX_DURATION, 0, &cedar_t_long},
		{EF_TOMINUTES, 1, CX_DURATION, 0, &cedar_t_long},
		{EF_TOHOURS, 1, CX_DURATION, 0, &cedar_t_long},
		{EF_TODAYS, 1, CX_DURATION, 0, &cedar_t_long}};
	const struct cedar_type *ty[2] = {0};
	for (uint32_t i = 0; i < x->n; i++) {
		struct tr r;
		tc(v, x->args[i], c, &r);
		if (i < 2)
			ty[i] = r.t;
	}
	if (x->fn == EF_DECIMAL || x->fn == EF_IP || x->fn == EF_DATETIME || x->fn == EF_DURATION)
		return tc_ctor(v, x, out);
	for (size_t i = 0; i < sizeof(sig) / sizeof(sig[0]); i++) {
		if (sig[i].fn != x->fn)
			continue;
		/* each argument of a known, wrong type is an error of its own;
		 * the result's type stands either way */
		static const char *const en[] = {"", "decimal", "ipaddr", "datetime", "duration"};
		if (x->n != sig[i].n)
			vfail(v, x, "wrong number of arguments to an extension function: expected %s%s%s",
			      en[sig[i].a0], sig[i].n > 1 ? " and " : "",
			      sig[i].n > 1 ? en[sig[i].a1] : "");
		for (uint32_t k = 0; x->n == sig[i].n && k < x->n; k++) {
			uint8_t want = k ? sig[i].a1 : sig[i].a0;
			if (ty[k] && (ty[k]->kind != CT_EXT || ty[k]->ext != want))
				vfail(v, x->args[k], "expected %s, found %s", en[want], ts(v, ty[k]));
		}
		return ok(out, sig[i].r);
	}
	return vfail(v, x, "%s", "unknown extension function");
}

static int tc_lit(struct vctx *v, const struct cedar_expr *x, struct tr *out)
{
	const struct cedar_value *l = lit_of(v, x);
	switch (l->kind) {
	case CV_BOOL: return ok(out, l->u.i ? &cedar_t_tt : &cedar_t_ff);
	case CV_LONG: return ok(out, &cedar_t_long);
	case CV_STRING: return ok(out, &cedar_t_string);
	default:
		/* An entity of an unknown type has no type, as in Cedar; an
		 * unknown action or enum member keeps its type, so that
		 * `action == Action::"nope"` is false in every environment. */
		if (!uid_valid(v->s, l->u.uid)) {
			const struct cedar_uid *u = l->u.uid;
			vfail(v, x, "unknown entity %.*s::\"%.*s\"", clip(u->tlen), u->type,
			      clip(u->idlen), u->id);
			if (!cedar_schema_ety(v->s, u->type, u->tlen) && !action_type(v->s, u->type, u->tlen))
				return -1;
		}
		return ok(out, ent_type(v, l->u.uid->type, l->u.uid->tlen));
	}
}

static int tc_node(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	switch (x->op) {
	case X_LIT: return tc_lit(v, x, out);
	case X_VAR:
		switch (x->var) {
		case VAR_PRINCIPAL: return ok(out, ent_type(v, v->pty->name, v->pty->nlen));
		case VAR_RESOURCE: return ok(out, ent_type(v, v->rty->name, v->rty->nlen));
		case VAR_CONTEXT: return ok(out, v->act->ctx);
		default: return tc_lit(v, x, out);
		}
	case X_IF: return tc_if(v, x, c, out);
	case X_AND: return tc_and(v, x, c, out);
	case X_OR: return tc_or(v, x, c, out);
	case X_NOT: case X_NEG: case X_ISEMPTY: case X_LIKE: case X_IS:
		return tc_unary(v, x, c, out);
	case X_HAS: case X_GETATTR: return tc_attr(v, x, c, out);
	case X_SET: return tc_set(v, x, c, out);
	case X_RECORD: return tc_record(v, x, c, out);
	case X_EXT: return tc_call(v, x, c, out);
	default: return tc_binary(v, x, c, out);
	}
}

/* 0 with out's type, or -1 with none (NULL): the type is unknown after an
 * error, which is recorded. Known is not valid: an expression in error may
 * still have its type (see the top of this file). */
static int tc(struct vctx *v, const struct cedar_expr *x, struct caps c, struct tr *out)
{
	if (tc_node(v, x, c, out) == 0 && out->t)
		return 0;
	*out = (struct tr){0};
	return -1;
}

/* ---- policies ------------------------------------------------------------------ */

/* `Action` and `N::Action` name action types even where the schema declares
 * no action, and the reference accepts them after `is`. */
static int action_name(const char *n, uint32_t nl)
{
	return nl >= 6 && !memcmp(n + nl - 6, "Action", 6) && (nl == 6 || n[nl - 7] == ':');
}

/* As deep as the evaluator goes; the typechecker and the capability
 * comparisons recurse no deeper than this walk, which runs first. */
#define MAX_VALIDATE_DEPTH 2000

/* Lean's checkEntities: every entity literal and `is` type exists, even
 * where the typechecker would skip it. Each unknown one is an error; only
 * nesting too deep to typecheck stops the walk (-1). */
static int check_entities(struct vctx *v, const struct cedar_expr *x, int depth)
{
	if (!x)
		return 0;
	if (depth > MAX_VALIDATE_DEPTH)
		return vfail(v, x, "expression nested too deeply to validate (more than %d levels)",
			     MAX_VALIDATE_DEPTH);
	if (x->op == X_LIT && x->lit.kind == CV_ENTITY && !uid_valid(v->s, x->lit.u.uid))
		vfail(v, x, "unknown entity %.*s::\"%.*s\"", clip(x->lit.u.uid->tlen),
		      x->lit.u.uid->type, clip(x->lit.u.uid->idlen), x->lit.u.uid->id);
	if (x->op == X_IS && !cedar_schema_ety(v->s, x->name, x->nlen) &&
	    !action_type(v->s, x->name, x->nlen) && !action_name(x->name, x->nlen))
		vfail(v, x, "unknown entity type `%.*s`", clip(x->nlen), x->name);
	if (check_entities(v, x->a, depth + 1) || check_entities(v, x->b, depth + 1) ||
	    check_entities(v, x->c, depth + 1))
		return -1;
	for (uint32_t i = 0; x->args && i < x->n; i++)
		if (check_entities(v, x->args[i], depth + 1))
			return -1;
	return 0;
}

/* The scope as expressions, each node at the part of the scope it stands
 * for, so an error there points at it. */
static struct cedar_expr *mk(cedar_arena *a, int op, struct cedar_pos at)
{
	struct cedar_expr *x = cedar_alloc(a, sizeof(*x));
	if (x) {
		x->op = (uint8_t)op;
		x->line = at.line;
		x->col = at.col;
	}
	return x;
}

static struct cedar_expr *mk2(cedar_arena *a, int op, struct cedar_pos at, struct cedar_expr *l,
			      struct cedar_expr *r)
{
	struct cedar_expr *x = l && r ? mk(a, op, at) : NULL;
	if (x) {
		x->a = l;
		x->b = r;
	}
	return x;
}

static struct cedar_expr *mk_uid(cedar_arena *a, struct cedar_pos at, const struct cedar_uid *u)
{
	struct cedar_expr *x = mk(a, X_LIT, at);
	if (x) {
		x->lit.kind = CV_ENTITY;
		x->lit.u.uid = u;
	}
	return x;
}

/* Scope.toExpr. In a template an unfilled slot stands for an entity of any
 * type, so its constraint is left out; a link has its entities and is
 * checked with them. */
static struct cedar_expr *scope_expr(cedar_arena *a, const struct cedar_scope *sc, int var)
{
	struct cedar_expr *vx = mk(a, X_VAR, sc->at), *t = mk(a, X_LIT, sc->at), *is = NULL, *set;
	if (!vx || !t)
		return NULL;
	vx->var = (uint8_t)var;
	t->lit.kind = CV_BOOL;
	t->lit.u.i = 1;
	if (sc->kind == SC_IS || sc->kind == SC_IS_IN) {
		if ((is = mk(a, X_IS, sc->is_at))) {
			is->a = vx;
			is->name = sc->is_type;
			is->nlen = sc->is_tlen;
		}
	}
	switch (sc->kind) {
	case SC_EQ: return !sc->uid ? t : mk2(a, X_EQ, sc->at, vx, mk_uid(a, sc->uid_at, sc->uid));
	case SC_IN: return !sc->uid ? t : mk2(a, X_IN, sc->at, vx, mk_uid(a, sc->uid_at, sc->uid));
	case SC_IS: return is;
	case SC_IS_IN:
		return !sc->uid ? is : mk2(a, X_AND, sc->at, is, mk2(a, X_IN, sc->at, vx,
								  mk_uid(a, sc->uid_at, sc->uid)));
	case SC_IN_SET:
		if (!(set = mk(a, X_SET, sc->at)) ||
		    !(set->args = cedar_alloc(a, (sc->nuids + 1) * sizeof(*set->args))))
			return NULL;
		set->n = sc->nuids;
		for (uint32_t i = 0; i < sc->nuids; i++)
			if (!(set->args[i] = mk_uid(a, sc->uids_at[i], sc->uids[i])))
				return NULL;
		return mk2(a, X_IN, sc->at, vx, set);
	default: return t;
	}
}

/* Policy.toExpr; *scope gets the scope alone. */
static struct cedar_expr *policy_expr(cedar_arena *a, const struct cedar_policy *p,
				      struct cedar_expr **scope)
{
	struct cedar_pos at = {p->line, p->col};
	struct cedar_expr *cond = p->cond;
	if (!cond && (cond = mk(a, X_LIT, at))) {
		cond->lit.kind = CV_BOOL;
		cond->lit.u.i = 1;
	}
	struct cedar_expr *ps = scope_expr(a, &p->p, VAR_PRINCIPAL);
	struct cedar_expr *as = scope_expr(a, &p->a, VAR_ACTION);
	struct cedar_expr *rs = scope_expr(a, &p->r, VAR_RESOURCE);
	*scope = mk2(a, X_AND, at, ps, mk2(a, X_AND, at, as, rs));
	return mk2(a, X_AND, at, ps, mk2(a, X_AND, at, as, mk2(a, X_AND, at, rs, cond)));
}

/* Appends one diagnostic to a list in a that grows by doubling. */
static int add_diag(cedar_arena *a, struct cedar_diag **v, size_t *n, size_t *cap,
		    const struct cedar_policy *p, int line, int col, const char *msg)
{
	if (*n == *cap) {
		struct cedar_diag *nv = cedar_alloc_raw(a, *cap * 2 * sizeof(*nv));
		if (!nv)
			return -1;
		memcpy(nv, *v, *n * sizeof(*nv));
		*v = nv;
		*cap *= 2;
	}
	(*v)[*n].policy = p->id;
	(*v)[*n].line = line;
	(*v)[*n].col = col;
	snprintf((*v)[*n].msg, sizeof((*v)[*n].msg), "%s", msg);
	(*n)++;
	return 0;
}

#define UNMATCHED "no action in the schema applies to the principal and resource types " \
	"this scope allows: the policy can never apply"

/* Typechecks one policy in every environment, recording every error in v.
 * A scope that no environment satisfies (*unmatched) and a condition false
 * in every environment (*all_false) are warnings, as in Cedar since 4.x
 * (cedar-policy/cedar#2545); before, the first was an error, which
 * CEDAR_VALIDATE_UNMATCHED_SCOPE_ERROR restores. -1 when invalid. */
static int validate_policy(const struct cedar_schema *s, const struct cedar_policy *p,
			   unsigned flags, cedar_arena *scratch, struct vctx *v, int *all_false,
			   int *unmatched)
{
	struct cedar_expr *scope = NULL, *x = policy_expr(scratch, p, &scope);
	int applies = 0;
	*all_false = 1;
	*unmatched = 0;
	memset(v, 0, sizeof(*v));
	v->a = scratch;
	v->s = s;
	v->pol = p;
	v->flags = flags;
	if (!x || !scope)
		return vfail(v, NULL, "%s", "out of memory");
	if (check_entities(v, x, 0))
		return -1;      /* too deep to typecheck */
	for (size_t i = 0; i < s->nacts; i++) {
		const struct cedar_act *act = &s->acts[i];
		for (uint32_t j = 0; j < act->nprin; j++)
			for (uint32_t k = 0; k < act->nres; k++) {
				struct tr r, rs;
				v->act = act;
				v->pty = act->prin[j];
				v->rty = act->res[k];
				v->actval.kind = CV_ENTITY;
				v->actval.u.uid = act->uid;
				int ks = !tc(v, scope, (struct caps){0}, &rs);
				int kx = !tc(v, x, (struct caps){0}, &r) && !want_bool(v, x, r.t);
				applies |= !ks || rs.t->b != CB_FF;
				*all_false &= kx && r.t->b == CB_FF;
			}
	}
	*unmatched = !applies;
	if (v->nerr || v->more)
		return -1;
	if (!applies && (flags & CEDAR_VALIDATE_UNMATCHED_SCOPE_ERROR))
		return vfail(v, NULL, "%s", UNMATCHED);
	return 0;
}

static int verr_cmp(const void *x, const void *y)
{
	const struct verr *a = x, *b = y;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->col != b->col)
		return a->col < b->col ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* A policy's errors in the order of the text. */
static int policy_errors(cedar_arena *a, struct cedar_validation *out, size_t *cap,
			 const struct cedar_policy *p, struct vctx *v)
{
	char more[96];
	qsort(v->errs, v->nerr, sizeof(*v->errs), verr_cmp);
	for (uint32_t i = 0; i < v->nerr; i++)
		if (add_diag(a, &out->errors, &out->n_errors, cap, p, v->errs[i].line,
			     v->errs[i].col, v->errs[i].msg))
			return -1;
	if (!v->more)
		return 0;
	if (v->nerr)
		snprintf(more, sizeof(more), "more errors than the %u shown", v->nerr);
	else
		snprintf(more, sizeof(more), "%s", "out of memory");
	return add_diag(a, &out->errors, &out->n_errors, cap, p, p->line, p->col, more);
}

int cedar_validate(const cedar_schema *s, const cedar_policy_set *ps, unsigned flags,
		   cedar_arena *a, struct cedar_validation *out, struct cedar_err *err)
{
	size_t n, ecap, wcap;
	struct cedar_policy *const *pol = cedar_policy_set_policies(ps, &n);
	cedar_arena *scratch = cedar_arena_new(0);
	memset(out, 0, sizeof(*out));
	ecap = wcap = n + 1;
	out->errors = cedar_alloc_raw(a, ecap * sizeof(*out->errors));
	out->warnings = cedar_alloc_raw(a, wcap * sizeof(*out->warnings));
	if (!scratch || !out->errors || !out->warnings)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct vctx v;
		int all_false, unmatched, rc = 0;
		cedar_arena_reset(scratch);
		if (validate_policy(s, pol[i], flags, scratch, &v, &all_false, &unmatched))
			rc = policy_errors(a, out, &ecap, pol[i], &v);
		else if (unmatched)
			rc = add_diag(a, &out->warnings, &out->n_warnings, &wcap, pol[i], pol[i]->line,
				      pol[i]->col, UNMATCHED);
		else if (all_false)
			rc = add_diag(a, &out->warnings, &out->n_warnings, &wcap, pol[i], pol[i]->line,
				      pol[i]->col, "policy is impossible: it is false for every request "
				      "the schema allows");
		if (rc)
			goto nomem;
	}
	cedar_arena_free(scratch);
	return 0;
nomem:
	cedar_arena_free(scratch);
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}
