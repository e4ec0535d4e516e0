/* Evaluator: Cedar's semantics as in the Lean specification (Evaluator.lean).
 * Every error aborts the expression; && and || short-circuit; values built
 * during evaluation live in the request arena. */
#include "authz/cedar/cedar_int.h"

static int as_bool(int rc, const struct cedar_value *v, int *b)
{
	if (rc)
		return rc;
	if (v->kind != CV_BOOL)
		return EE_TYPE;
	*b = (int)v->u.i;
	return 0;
}

static void set_bool(struct cedar_value *out, int b)
{
	memset(out, 0, sizeof(*out));
	out->kind = CV_BOOL;
	out->u.i = b ? 1 : 0;
}

static void set_long(struct cedar_value *out, int64_t i)
{
	memset(out, 0, sizeof(*out));
	out->kind = CV_LONG;
	out->u.i = i;
}

/* The request's own entities are read by most policies: look each up once. */
static const struct cedar_entity *find_entity(struct cedar_evalctx *cx, const struct cedar_uid *u)
{
	for (int i = 0; i < 3; i++)
		if (u == cx->vars[i].u.uid) {
			if (!cx->vent_done[i]) {
				cx->vent[i] = cedar_entities_find(cx->es, u);
				cx->vent_done[i] = 1;
			}
			return cx->vent[i];
		}
	return cedar_entities_find(cx->es, u);
}

static bool is_ancestor(struct cedar_evalctx *cx, const struct cedar_uid *u,
			const struct cedar_uid *anc)
{
	if (cedar_uid_eq(u, anc))
		return true;
	const struct cedar_entity *e = find_entity(cx, u);
	if (!e)
		return false;
	for (uint32_t i = 0; i < e->nanc; i++)
		if (cedar_uid_eq(e->anc[i], anc))
			return true;
	return false;
}

static bool like_match(const char *s, size_t n, const int16_t *pat, size_t m)
{
	/* Iterative wildcard match with single backtrack point: O(n*m) worst. */
	size_t i = 0, j = 0, star_j = (size_t)-1, star_i = 0;
	while (i < n) {
		if (j < m && pat[j] != -1 && pat[j] == (int16_t)(unsigned char)s[i]) {
			i++;
			j++;
		} else if (j < m && pat[j] == -1) {
			star_j = j++;
			star_i = i;
		} else if (star_j != (size_t)-1) {
			j = star_j + 1;
			i = ++star_i;
		} else {
			return false;
		}
	}
	while (j < m && pat[j] == -1)
		j++;
	return j == m;
}

static int attrs_of(struct cedar_evalctx *cx, const struct cedar_value *v,
		    const struct cedar_value **rec, int missing_ok)
{
	static const struct cedar_value empty = {.kind = CV_RECORD};
	if (v->kind == CV_RECORD) {
		*rec = v;
		return 0;
	}
	if (v->kind != CV_ENTITY)
		return EE_TYPE;
	const struct cedar_entity *e = find_entity(cx, v->u.uid);
	if (!e) {
		if (!missing_ok)
			return EE_NO_ENTITY;
		*rec = &empty;
		return 0;
	}
	*rec = &e->attrs;
	return 0;
}

static int eval_binary(struct cedar_evalctx *cx, const struct cedar_expr *x,
		       struct cedar_value *out)
{
	struct cedar_value l, r;
	int rc = cedar_eval(cx, x->a, &l);
	if (rc)
		return rc;
	rc = cedar_eval(cx, x->b, &r);
	if (rc)
		return rc;
	int64_t v;
	switch (x->op) {
	case X_EQ:
		set_bool(out, cedar_vcmp(&l, &r) == 0);
		return 0;
	case X_NE:
		set_bool(out, cedar_vcmp(&l, &r) != 0);
		return 0;
	case X_LT: case X_LE: case X_GT: case X_GE:
		if (l.kind != r.kind || (l.kind != CV_LONG && l.kind != CV_DATETIME &&
					 l.kind != CV_DURATION))
			return EE_TYPE;
		switch (x->op) {
		case X_LT: set_bool(out, l.u.i < r.u.i); break;
		case X_LE: set_bool(out, l.u.i <= r.u.i); break;
		case X_GT: set_bool(out, l.u.i > r.u.i); break;
		default: set_bool(out, l.u.i >= r.u.i); break;
		}
		return 0;
	case X_ADD: case X_SUB: case X_MUL: {
		if (l.kind != CV_LONG || r.kind != CV_LONG)
			return EE_TYPE;
		bool ov = x->op == X_ADD ? __builtin_add_overflow(l.u.i, r.u.i, &v)
			: x->op == X_SUB ? __builtin_sub_overflow(l.u.i, r.u.i, &v)
					 : __builtin_mul_overflow(l.u.i, r.u.i, &v);
		if (ov)
			return EE_OVERFLOW;
		set_long(out, v);
		return 0;
	}
	case X_IN:
		if (l.kind != CV_ENTITY)
			return EE_TYPE;
		if (r.kind == CV_ENTITY) {
			set_bool(out, is_ancestor(cx, l.u.uid, r.u.uid));
			return 0;
		}
		if (r.kind != CV_SET)
			return EE_TYPE;
		for (uint32_t i = 0; i < r.n; i++)
			if (r.u.items[i].kind != CV_ENTITY)
				return EE_TYPE;
		for (uint32_t i = 0; i < r.n; i++)
			if (is_ancestor(cx, l.u.uid, r.u.items[i].u.uid)) {
				set_bool(out, 1);
				return 0;
			}
		set_bool(out, 0);
		return 0;
	case X_CONTAINS:
		if (l.kind != CV_SET)
			return EE_TYPE;
		set_bool(out, cedar_set_contains(&l, &r));
		return 0;
	case X_CONTAINSALL: case X_CONTAINSANY: {
		if (l.kind != CV_SET || r.kind != CV_SET)
			return EE_TYPE;
		int all = x->op == X_CONTAINSALL, any = 0;
		for (uint32_t i = 0; i < r.n; i++) {
			bool c = cedar_set_contains(&l, &r.u.items[i]);
			if (c)
				any = 1;
			else
				all = 0;
		}
		set_bool(out, x->op == X_CONTAINSALL ? all : any);
		return 0;
	}
	case X_HASTAG: case X_GETTAG: {
		if (l.kind != CV_ENTITY || r.kind != CV_STRING)
			return EE_TYPE;
		const struct cedar_entity *e = find_entity(cx, l.u.uid);
		const struct cedar_value *t = e ? cedar_record_get(&e->tags, r.u.s, r.n) : NULL;
		if (x->op == X_HASTAG) {
			set_bool(out, t != NULL);
			return 0;
		}
		if (!e)
			return EE_NO_ENTITY;
		if (!t)
			return EE_NO_TAG;
		*out = *t;
		return 0;
	}
	}
	return EE_TYPE;
}

static int eval_inner(struct cedar_evalctx *cx, const struct cedar_expr *x,
		      struct cedar_value *out);

/* Depth is bounded so a pathological policy (a chain of 100000 `+`) is an
 * evaluation error rather than a stack overflow. */
#define MAX_EVAL_DEPTH 2000

int cedar_eval(struct cedar_evalctx *cx, const struct cedar_expr *x, struct cedar_value *out)
{
	if (++cx->depth > MAX_EVAL_DEPTH) {
		cx->depth--;
		return EE_DEPTH;
	}
	int rc = eval_inner(cx, x, out);
	cx->depth--;
	return rc;
}

static int eval_inner(struct cedar_evalctx *cx, const struct cedar_expr *x,
		      struct cedar_value *out)
{
	struct cedar_value v;
	int rc, b;
	switch (x->op) {
	case X_LIT:
		*out = x->lit;
		return 0;
	case X_VAR:
		*out = cx->vars[x->var];
		return 0;
	case X_IF:
		rc = cedar_eval(cx, x->a, &v);
		if ((rc = as_bool(rc, &v, &b)))
			return rc;
		return cedar_eval(cx, b ? x->b : x->c, out);
	case X_AND: case X_OR:
		rc = cedar_eval(cx, x->a, &v);
		if ((rc = as_bool(rc, &v, &b)))
			return rc;
		if (x->op == X_AND ? !b : b) {
			set_bool(out, b);
			return 0;
		}
		rc = cedar_eval(cx, x->b, &v);
		if ((rc = as_bool(rc, &v, &b)))
			return rc;
		set_bool(out, b);
		return 0;
	case X_NOT:
		rc = cedar_eval(cx, x->a, &v);
		if ((rc = as_bool(rc, &v, &b)))
			return rc;
		set_bool(out, !b);
		return 0;
	case X_NEG:
		if ((rc = cedar_eval(cx, x->a, &v)))
			return rc;
		if (v.kind != CV_LONG)
			return EE_TYPE;
		if (v.u.i == INT64_MIN)
			return EE_OVERFLOW;
		set_long(out, -v.u.i);
		return 0;
	case X_ISEMPTY:
		if ((rc = cedar_eval(cx, x->a, &v)))
			return rc;
		if (v.kind != CV_SET)
			return EE_TYPE;
		set_bool(out, v.n == 0);
		return 0;
	case X_LIKE:
		if ((rc = cedar_eval(cx, x->a, &v)))
			return rc;
		if (v.kind != CV_STRING)
			return EE_TYPE;
		set_bool(out, like_match(v.u.s, v.n, x->pat, x->n));
		return 0;
	case X_IS:
		if ((rc = cedar_eval(cx, x->a, &v)))
			return rc;
		if (v.kind != CV_ENTITY)
			return EE_TYPE;
		set_bool(out, v.u.uid->tlen == x->nlen &&
				      cedar_bytes_cmp(v.u.uid->type, x->name, x->nlen) == 0);
		return 0;
	case X_HAS: case X_GETATTR: {
		const struct cedar_value *rec;
		if ((rc = cedar_eval(cx, x->a, &v)))
			return rc;
		if ((rc = attrs_of(cx, &v, &rec, x->op == X_HAS)))
			return rc;
		const struct cedar_value *f = cedar_record_get(rec, x->name, x->nlen);
		if (x->op == X_HAS) {
			set_bool(out, f != NULL);
			return 0;
		}
		if (!f)
			return EE_NO_ATTR;
		*out = *f;
		return 0;
	}
	case X_SET: {
		struct cedar_value *items = cedar_alloc(cx->a, sizeof(*items) * (x->n ? x->n : 1));
		if (!items)
			return EE_NOMEM;
		for (uint32_t i = 0; i < x->n; i++)
			if ((rc = cedar_eval(cx, x->args[i], &items[i])))
				return rc;
		memset(out, 0, sizeof(*out));
		out->kind = CV_SET;
		out->u.items = items;
		out->n = cedar_set_normalize(items, x->n);
		return 0;
	}
	case X_RECORD: {
		struct cedar_field *f = cedar_alloc(cx->a, sizeof(*f) * (x->n ? x->n : 1));
		if (!f)
			return EE_NOMEM;
		for (uint32_t i = 0; i < x->n; i++) {
			f[i].key = x->keys[i];
			f[i].klen = x->klens[i];
			if ((rc = cedar_eval(cx, x->args[i], &f[i].v)))
				return rc;
		}
		cedar_record_normalize(f, x->n);
		memset(out, 0, sizeof(*out));
		out->kind = CV_RECORD;
		out->u.fields = f;
		out->n = x->n;
		return 0;
	}
	case X_EXT: {
		struct cedar_value local[4];
		struct cedar_value *args = x->n <= 4 ? local
				: cedar_alloc(cx->a, x->n * sizeof(*args));
		if (!args)
			return EE_NOMEM;
		for (uint32_t i = 0; i < x->n; i++)
			if ((rc = cedar_eval(cx, x->args[i], &args[i])))
				return rc;
		return cedar_ext_call((enum cedar_ext_fn)x->fn, args, (int)x->n, out);
	}
	default:
		return eval_binary(cx, x, out);
	}
}

static bool scope_match(struct cedar_evalctx *cx, const struct cedar_scope *sc,
			const struct cedar_value *v)
{
	if (sc->kind == SC_ANY)
		return true;
	if (v->kind != CV_ENTITY)
		return false;
	const struct cedar_uid *u = v->u.uid;
	switch (sc->kind) {
	case SC_EQ:
		return cedar_uid_eq(u, sc->uid);
	case SC_IN:
		return is_ancestor(cx, u, sc->uid);
	case SC_IS:
		return u->tlen == sc->is_tlen && cedar_bytes_cmp(u->type, sc->is_type, u->tlen) == 0;
	case SC_IS_IN:
		return u->tlen == sc->is_tlen && cedar_bytes_cmp(u->type, sc->is_type, u->tlen) == 0 &&
		       is_ancestor(cx, u, sc->uid);
	case SC_IN_SET:
		for (uint32_t i = 0; i < sc->nuids; i++)
			if (is_ancestor(cx, u, sc->uids[i]))
				return true;
		return false;
	}
	return false;
}

int cedar_policy_eval(struct cedar_evalctx *cx, const struct cedar_policy *p)
{
	if (!scope_match(cx, &p->p, &cx->vars[VAR_PRINCIPAL]) ||
	    !scope_match(cx, &p->a, &cx->vars[VAR_ACTION]) ||
	    !scope_match(cx, &p->r, &cx->vars[VAR_RESOURCE]))
		return 0;
	if (!p->cond)
		return 1;
	struct cedar_value v;
	int b, rc = cedar_eval(cx, p->cond, &v);
	if ((rc = as_bool(rc, &v, &b)))
		return rc;
	return b;
}
