/* Policy sets: compiled once, indexed by scope so that a request only
 * evaluates the policies whose scope can match, and the authorizer. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>

/* Index keys: each policy sits in exactly one bucket, the most selective
 * its scope allows, or in the generic list. */
enum { K_PEQ = 1, K_REQ, K_PIN, K_RIN, K_AEQ };

struct ibucket {
	uint8_t tag;
	const struct cedar_uid *uid;
	uint32_t *idx;
	uint32_t n, cap;
	struct ibucket *next;
};

struct cedar_policy_set {
	cedar_arena *a;            /* policies and their ASTs */
	struct cedar_policy **pol;
	size_t n, cap;
	cedar_arena *ia;           /* the index, rebuilt after each change */
	struct ibucket **tab;
	size_t ntab;
	uint32_t *generic;
	uint32_t ngeneric, capgeneric;
};

cedar_policy_set *cedar_policy_set_new(void)
{
	cedar_policy_set *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return NULL;
	ps->a = cedar_arena_new(0);
	if (!ps->a) {
		free(ps);
		return NULL;
	}
	return ps;
}

void cedar_policy_set_free(cedar_policy_set *ps)
{
	if (!ps)
		return;
	cedar_arena_free(ps->a);
	cedar_arena_free(ps->ia);
	free(ps->pol);
	free(ps);
}

size_t cedar_policy_set_count(const cedar_policy_set *ps)
{
	return ps ? ps->n : 0;
}

size_t cedar_policy_set_template_count(const cedar_policy_set *ps)
{
	size_t n = 0;
	for (size_t i = 0; ps && i < ps->n; i++)
		n += ps->pol[i]->is_template != 0;
	return n;
}

static uint64_t khash(int tag, const struct cedar_uid *u)
{
	return u->hash ^ ((uint64_t)tag * 0x9E3779B97F4A7C15ull);
}

static struct ibucket *ifind(const cedar_policy_set *ps, int tag, const struct cedar_uid *u)
{
	if (!ps->ntab)
		return NULL;
	for (struct ibucket *b = ps->tab[khash(tag, u) & (ps->ntab - 1)]; b; b = b->next)
		if (b->tag == tag && cedar_uid_eq(b->uid, u))
			return b;
	return NULL;
}

static int push_idx(cedar_arena *a, uint32_t **arr, uint32_t *n, uint32_t *cap, uint32_t v)
{
	if (*n == *cap) {
		uint32_t nc = *cap ? *cap * 2 : 8;
		uint32_t *na = cedar_alloc(a, nc * sizeof(*na));
		if (!na)
			return -1;
		if (*n)
			memcpy(na, *arr, *n * sizeof(*na));
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = v;
	return 0;
}

static int build_index(cedar_policy_set *ps)
{
	cedar_arena_free(ps->ia);
	ps->ia = cedar_arena_new(0);
	ps->ngeneric = ps->capgeneric = 0;
	ps->generic = NULL;
	if (!ps->ia)
		return -1;
	ps->ntab = 16;
	while (ps->ntab < ps->n * 2)
		ps->ntab *= 2;
	ps->tab = cedar_alloc(ps->ia, ps->ntab * sizeof(*ps->tab));
	if (!ps->tab)
		return -1;
	for (size_t i = 0; i < ps->n; i++) {
		const struct cedar_policy *p = ps->pol[i];
		int tag = 0;
		const struct cedar_uid *u = NULL;
		if (p->is_template)
			continue;
		if (p->p.kind == SC_EQ) {
			tag = K_PEQ;
			u = p->p.uid;
		} else if (p->r.kind == SC_EQ) {
			tag = K_REQ;
			u = p->r.uid;
		} else if (p->p.kind == SC_IN || p->p.kind == SC_IS_IN) {
			tag = K_PIN;
			u = p->p.uid;
		} else if (p->r.kind == SC_IN || p->r.kind == SC_IS_IN) {
			tag = K_RIN;
			u = p->r.uid;
		} else if (p->a.kind == SC_EQ) {
			tag = K_AEQ;
			u = p->a.uid;
		}
		if (!tag) {
			if (push_idx(ps->ia, &ps->generic, &ps->ngeneric, &ps->capgeneric, (uint32_t)i))
				return -1;
			continue;
		}
		struct ibucket *b = ifind(ps, tag, u);
		if (!b) {
			b = cedar_alloc(ps->ia, sizeof(*b));
			if (!b)
				return -1;
			b->tag = (uint8_t)tag;
			b->uid = u;
			size_t h = khash(tag, u) & (ps->ntab - 1);
			b->next = ps->tab[h];
			ps->tab[h] = b;
		}
		if (push_idx(ps->ia, &b->idx, &b->n, &b->cap, (uint32_t)i))
			return -1;
	}
	return 0;
}

static int add_policy(cedar_policy_set *ps, struct cedar_policy *p)
{
	if (ps->n == ps->cap) {
		size_t nc = ps->cap ? ps->cap * 2 : 16;
		struct cedar_policy **np = realloc(ps->pol, nc * sizeof(*np));
		if (!np)
			return -1;
		ps->pol = np;
		ps->cap = nc;
	}
	p->index = (uint32_t)ps->n;
	ps->pol[ps->n++] = p;
	return 0;
}

static const struct cedar_policy *find_policy(const cedar_policy_set *ps, const char *id)
{
	for (size_t i = 0; i < ps->n; i++)
		if (strcmp(ps->pol[i]->id, id) == 0)
			return ps->pol[i];
	return NULL;
}

int cedar_policy_set_parse(cedar_policy_set *ps, const char *text, size_t len,
			   const char *id_prefix, struct cedar_err *err)
{
	struct cedar_policy **v;
	size_t n;
	if (!ps || !text) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "no policy set or text");
		return CEDAR_E_INPUT;
	}
	int rc = cedar_parse_policies(ps->a, text, len, &v, &n, err);
	if (rc)
		return rc;
	if (!id_prefix)
		id_prefix = "policy";
	size_t base = ps->n;
	for (size_t i = 0; i < n; i++) {
		char id[256];
		snprintf(id, sizeof(id), "%s%zu", id_prefix, base + i);
		v[i]->id = cedar_strndup(ps->a, id, strlen(id));
		if (!v[i]->id || add_policy(ps, v[i]))
			goto nomem;
	}
	if (build_index(ps))
		goto nomem;
	return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

int cedar_policy_set_add(cedar_policy_set *ps, const char *id, const char *text, size_t len,
			 struct cedar_err *err)
{
	struct cedar_policy **v;
	size_t n;
	if (!ps || !id || !text) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "no policy set, id or text");
		return CEDAR_E_INPUT;
	}
	if (find_policy(ps, id)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "policy id `%s` is already in the set", id);
		return CEDAR_E_INPUT;
	}
	int rc = cedar_parse_policies(ps->a, text, len, &v, &n, err);
	if (rc)
		return rc;
	if (n != 1) {
		cedar_set_err(err, CEDAR_E_PARSE, 1, 1, "1:1: expected exactly one policy, found %zu", n);
		return CEDAR_E_PARSE;
	}
	v[0]->id = cedar_strndup(ps->a, id, strlen(id));
	if (!v[0]->id || add_policy(ps, v[0]) || build_index(ps)) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	return 0;
}

int cedar_policy_set_parse_file(cedar_policy_set *ps, const char *path,
				const char *id_prefix, struct cedar_err *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int rc;
	if (!f) {
		cedar_set_err(err, CEDAR_E_IO, 0, 0, "cannot open %s", path);
		return CEDAR_E_IO;
	}
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb) {
				rc = CEDAR_E_NOMEM;
				cedar_set_err(err, rc, 0, 0, "out of memory");
				goto out;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	rc = cedar_policy_set_parse(ps, buf ? buf : "", n, id_prefix, err);
out:
	fclose(f);
	free(buf);
	return rc;
}

int cedar_policy_set_link(cedar_policy_set *ps, const char *template_id, const char *new_id,
			  const cedar_value *principal, const cedar_value *resource,
			  struct cedar_err *err)
{
	const struct cedar_policy *t = ps && template_id ? find_policy(ps, template_id) : NULL;
	if (!t || !t->is_template) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "no template with id `%s`",
			      template_id ? template_id : "");
		return CEDAR_E_INPUT;
	}
	if (!new_id || find_policy(ps, new_id)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "policy id `%s` is missing or taken",
			      new_id ? new_id : "");
		return CEDAR_E_INPUT;
	}
	if ((t->p.slot && (!principal || principal->kind != CV_ENTITY)) ||
	    (t->r.slot && (!resource || resource->kind != CV_ENTITY)) ||
	    (!t->p.slot && principal) || (!t->r.slot && resource)) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0,
			      "link values must be entities and match the template's slots");
		return CEDAR_E_INPUT;
	}
	struct cedar_policy *p = cedar_alloc(ps->a, sizeof(*p));
	if (!p)
		goto nomem;
	*p = *t;
	p->is_template = 0;
	p->id = cedar_strndup(ps->a, new_id, strlen(new_id));
	if (!p->id)
		goto nomem;
	if (t->p.slot) {
		const struct cedar_uid *u = principal->u.uid;
		if (!(p->p.uid = cedar_uid_make(ps->a, u->type, u->tlen, u->id, u->idlen)))
			goto nomem;
	}
	if (t->r.slot) {
		const struct cedar_uid *u = resource->u.uid;
		if (!(p->r.uid = cedar_uid_make(ps->a, u->type, u->tlen, u->id, u->idlen)))
			goto nomem;
	}
	if (add_policy(ps, p) || build_index(ps))
		goto nomem;
	return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

const char *cedar_policy_annotation(const cedar_policy_set *ps, const char *policy_id,
				    const char *key)
{
	const struct cedar_policy *p = ps && policy_id ? find_policy(ps, policy_id) : NULL;
	for (uint32_t i = 0; p && key && i < p->nannos; i++)
		if (strcmp(p->annos[i].key, key) == 0)
			return p->annos[i].val;
	return NULL;
}

int cedar_policy_is_forbid(const cedar_policy_set *ps, const char *policy_id)
{
	const struct cedar_policy *p = ps && policy_id ? find_policy(ps, policy_id) : NULL;
	return p ? p->forbid : -1;
}

/* ---- authorization -------------------------------------------------------- */

struct authz_run {
	const cedar_policy_set *ps;
	struct cedar_evalctx *cx;
	uint8_t *seen;
	uint32_t *forbids, *permits, *errs;
	int *errcodes;
	uint32_t nf, np, ne;
};

static void run_one(struct authz_run *r, uint32_t i)
{
	if (r->seen[i >> 3] & (1u << (i & 7)))
		return;
	r->seen[i >> 3] |= (uint8_t)(1u << (i & 7));
	const struct cedar_policy *p = r->ps->pol[i];
	int rc = cedar_policy_eval(r->cx, p);
	if (rc < 0) {
		r->errcodes[r->ne] = rc;
		r->errs[r->ne++] = i;
	} else if (rc > 0) {
		if (p->forbid)
			r->forbids[r->nf++] = i;
		else
			r->permits[r->np++] = i;
	}
}

static void run_bucket(struct authz_run *r, int tag, const struct cedar_uid *u)
{
	const struct ibucket *b = ifind(r->ps, tag, u);
	for (uint32_t k = 0; b && k < b->n; k++)
		run_one(r, b->idx[k]);
}

static void run_in(struct authz_run *r, int tag, const struct cedar_uid *u)
{
	run_bucket(r, tag, u);
	const struct cedar_entity *e = cedar_entities_find(r->cx->es, u);
	for (uint32_t k = 0; e && k < e->nanc; k++)
		run_bucket(r, tag, e->anc[k]);
}

static int u32cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int check_entity(const cedar_value *v, const char *what, struct cedar_err *err)
{
	if (v && v->kind == CV_ENTITY)
		return 0;
	cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request %s must be an entity", what);
	return CEDAR_E_INPUT;
}

static int setup_ctx(struct cedar_evalctx *cx, cedar_entities *es,
		     const struct cedar_request *req, cedar_arena *a, struct cedar_err *err)
{
	memset(cx, 0, sizeof(*cx));
	cx->a = a;
	cx->es = es;
	if (!req || check_entity(req->principal, "principal", err) ||
	    check_entity(req->action, "action", err) || check_entity(req->resource, "resource", err))
		return CEDAR_E_INPUT;
	if (req->context && req->context->kind != CV_RECORD) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "request context must be a record");
		return CEDAR_E_INPUT;
	}
	if (es && cedar_entities_prepare(es)) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	cx->vars[VAR_PRINCIPAL] = *req->principal;
	cx->vars[VAR_ACTION] = *req->action;
	cx->vars[VAR_RESOURCE] = *req->resource;
	if (req->context)
		cx->vars[VAR_CONTEXT] = *req->context;
	else
		cx->vars[VAR_CONTEXT].kind = CV_RECORD;
	return 0;
}

int cedar_authorize(const cedar_policy_set *ps, cedar_entities *es,
		    const struct cedar_request *req, cedar_arena *scratch,
		    struct cedar_response *resp, struct cedar_err *err)
{
	struct cedar_evalctx cx;
	struct authz_run r = {0};
	if (!ps || !scratch || !resp) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "authorize: missing argument");
		return CEDAR_E_INPUT;
	}
	int rc = setup_ctx(&cx, es, req, scratch, err);
	if (rc)
		return rc;
	size_t n = ps->n ? ps->n : 1;
	r.ps = ps;
	r.cx = &cx;
	r.seen = cedar_alloc(scratch, n / 8 + 1);
	r.forbids = cedar_alloc(scratch, n * sizeof(uint32_t));
	r.permits = cedar_alloc(scratch, n * sizeof(uint32_t));
	r.errs = cedar_alloc(scratch, n * sizeof(uint32_t));
	r.errcodes = cedar_alloc(scratch, n * sizeof(int));
	if (!r.seen || !r.forbids || !r.permits || !r.errs || !r.errcodes)
		goto nomem;
	run_bucket(&r, K_PEQ, req->principal->u.uid);
	run_bucket(&r, K_REQ, req->resource->u.uid);
	run_in(&r, K_PIN, req->principal->u.uid);
	run_in(&r, K_RIN, req->resource->u.uid);
	run_bucket(&r, K_AEQ, req->action->u.uid);
	for (uint32_t k = 0; k < ps->ngeneric; k++)
		run_one(&r, ps->generic[k]);

	uint32_t *win = r.nf ? r.forbids : r.permits;
	uint32_t nw = r.nf ? r.nf : r.np;
	resp->decision = r.nf || !r.np ? CEDAR_DENY : CEDAR_ALLOW;
	cedar_sort(win, nw, sizeof(uint32_t), u32cmp);
	resp->n_reasons = nw;
	resp->reasons = cedar_alloc(scratch, (nw + 1) * sizeof(char *));
	resp->n_errors = r.ne;
	resp->errors = cedar_alloc(scratch, (r.ne + 1) * sizeof(char *));
	resp->error_msgs = cedar_alloc(scratch, (r.ne + 1) * sizeof(char *));
	if (!resp->reasons || !resp->errors || !resp->error_msgs)
		goto nomem;
	for (uint32_t k = 0; k < nw; k++)
		resp->reasons[k] = ps->pol[win[k]]->id;
	/* Errors keep policy order too; sort indices with their codes. */
	for (uint32_t k = 1; k < r.ne; k++)
		for (uint32_t m = k; m > 0 && r.errs[m - 1] > r.errs[m]; m--) {
			uint32_t ti = r.errs[m];
			int tc = r.errcodes[m];
			r.errs[m] = r.errs[m - 1];
			r.errcodes[m] = r.errcodes[m - 1];
			r.errs[m - 1] = ti;
			r.errcodes[m - 1] = tc;
		}
	for (uint32_t k = 0; k < r.ne; k++) {
		resp->errors[k] = ps->pol[r.errs[k]]->id;
		resp->error_msgs[k] = cedar_eval_err_str(r.errcodes[k]);
	}
	return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory (scratch arena cap)");
	return CEDAR_E_NOMEM;
}

int cedar_eval_expr(const char *expr_text, cedar_entities *es,
		    const struct cedar_request *req, cedar_arena *a,
		    const cedar_value **out, struct cedar_err *err)
{
	struct cedar_evalctx cx;
	struct cedar_expr *x;
	if (!expr_text || !a || !out) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "eval_expr: missing argument");
		return CEDAR_E_INPUT;
	}
	int rc = cedar_parse_expr(a, expr_text, strlen(expr_text), &x, err);
	if (rc)
		return rc;
	if ((rc = setup_ctx(&cx, es, req, a, err)))
		return rc;
	struct cedar_value *v = cedar_alloc(a, sizeof(*v));
	if (!v) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	rc = cedar_eval(&cx, x, v);
	if (rc) {
		cedar_set_err(err, CEDAR_E_INPUT, x->line, x->col, "evaluation error: %s",
			      cedar_eval_err_str(rc));
		return CEDAR_E_INPUT;
	}
	*out = v;
	return 0;
}

struct cedar_policy *const *cedar_policy_set_policies(const cedar_policy_set *ps, size_t *n)
{
	*n = ps->n;
	return ps->pol;
}
