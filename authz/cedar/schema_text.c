/* Parser for Cedar's human-readable schema format (.cedarschema):
 * namespaces, entity types (with `in` parents, shapes, tags, `enum`),
 * common types (`type`), and actions (`in` groups, `appliesTo`).
 * It reads with the policy parser's lexer and fills the schema builder;
 * names are resolved afterwards by cedar_schema_finish. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>

struct sp {
	struct cedar_lex lx;
	struct cedar_sb *b;
	const char *ns;
	const char **nss;       /* namespaces declared so far */
	uint32_t nns, capns;
};

#define CUR(p) ((p)->lx.cur)

static int failed(struct sp *p)
{
	return p->lx.failed;
}

static void nx(struct sp *p)
{
	cedar_lex_next(&p->lx);
}

static int kw(struct sp *p, const char *k)
{
	return cedar_lex_is_kw(&CUR(p), k);
}

static int want(struct sp *p, enum cedar_tk t, const char *what)
{
	if (CUR(p).t == t) {
		nx(p);
		return 1;
	}
	cedar_lex_expected(&p->lx, what);
	return 0;
}

/* A lone `=` or `?` is not a policy token: the lexer calls it T_BAD. */
static int bad_char(struct sp *p, char c)
{
	return CUR(p).t == T_BAD && CUR(p).n == 1 && CUR(p).s[0] == c;
}

static int oom(struct sp *p)
{
	cedar_lex_fail(&p->lx, CUR(p).line, CUR(p).col, "out of memory");
	return -1;
}

/* Path := IDENT {'::' IDENT}; stops before a `::` followed by a string
 * (an action reference) and sets *uid_follows. */
static const char *path(struct sp *p, uint32_t *n, int *uid_follows)
{
	char buf[1024];
	size_t w = 0;
	if (uid_follows)
		*uid_follows = 0;
	if (CUR(p).t != T_IDENT) {
		cedar_lex_expected(&p->lx, "a name");
		return NULL;
	}
	for (;;) {
		if (w + CUR(p).n + 2 >= sizeof(buf)) {
			cedar_lex_fail(&p->lx, CUR(p).line, CUR(p).col, "name too long");
			return NULL;
		}
		memcpy(buf + w, CUR(p).s, CUR(p).n);
		w += CUR(p).n;
		nx(p);
		if (CUR(p).t != T_COLON2)
			break;
		nx(p);
		if (CUR(p).t == T_STR) {
			if (uid_follows)
				*uid_follows = 1;
			else
				cedar_lex_expected(&p->lx, "a name");
			break;
		}
		if (CUR(p).t != T_IDENT) {
			cedar_lex_expected(&p->lx, "a name after `::`");
			return NULL;
		}
		memcpy(buf + w, "::", 2);
		w += 2;
	}
	*n = (uint32_t)w;
	return failed(p) ? NULL : cedar_strndup(p->lx.a, buf, w);
}

/* Name := IDENT | STR */
static const char *name(struct sp *p, uint32_t *n)
{
	struct cedar_tok t = CUR(p);
	char *s;
	if (t.t == T_IDENT) {
		nx(p);
		*n = (uint32_t)t.n;
		return cedar_strndup(p->lx.a, t.s, t.n);
	}
	if (t.t == T_STR) {
		long l = cedar_lex_string(&p->lx, &t, &s);
		if (l < 0)
			return NULL;
		nx(p);
		*n = (uint32_t)l;
		return s;
	}
	cedar_lex_expected(&p->lx, "a name or a string");
	return NULL;
}

/* Annotations := {'@' IDENT ['(' STR ')']}: accepted and not kept. */
static int annotations(struct sp *p)
{
	while (CUR(p).t == T_AT) {
		nx(p);
		if (!want(p, T_IDENT, "an annotation name"))
			return -1;
		if (CUR(p).t == T_LP) {
			nx(p);
			if (!want(p, T_STR, "an annotation value string") || !want(p, T_RP, "`)`"))
				return -1;
		}
	}
	return failed(p) ? -1 : 0;
}

static struct cedar_sref *sref(struct sp *p, int kind)
{
	struct cedar_sref *r = cedar_alloc(p->lx.a, sizeof(*r));
	if (!r) {
		oom(p);
		return NULL;
	}
	r->kind = (uint8_t)kind;
	r->ns = p->ns;
	r->line = CUR(p).line;
	r->col = CUR(p).col;
	return r;
}

static struct cedar_sref *type(struct sp *p, int depth);

static struct cedar_sref *record(struct sp *p, int depth)
{
	struct cedar_sref *r = sref(p, SR_RECORD);
	uint32_t cap = 0;
	if (!r || !want(p, T_LC, "`{`"))
		return NULL;
	while (!failed(p) && CUR(p).t != T_RC) {
		if (annotations(p))
			return NULL;
		struct cedar_sattr at = {.line = CUR(p).line, .col = CUR(p).col, .required = 1};
		if (!(at.key = name(p, &at.klen)))
			return NULL;
		if (bad_char(p, '?')) {
			at.required = 0;
			nx(p);
		}
		if (!want(p, T_COLON, "`:`") || !(at.type = type(p, depth + 1)))
			return NULL;
		if (!(r->attrs = cedar_sb_grow(p->lx.a, r->attrs, r->nattrs, &cap, sizeof(at))))
			return NULL;
		r->attrs[r->nattrs++] = at;
		if (CUR(p).t != T_COMMA)
			break;
		nx(p);
	}
	return want(p, T_RC, "`}` or `,`") ? r : NULL;
}

static struct cedar_sref *type(struct sp *p, int depth)
{
	if (depth > 100) {
		cedar_lex_fail(&p->lx, CUR(p).line, CUR(p).col, "type nested too deeply");
		return NULL;
	}
	if (CUR(p).t == T_LC)
		return record(p, depth);
	struct cedar_sref *r = sref(p, SR_NAME);
	if (!r || !(r->name = path(p, &r->nlen, NULL)))
		return NULL;
	if (r->nlen == 3 && !memcmp(r->name, "Set", 3) && CUR(p).t == T_LT) {
		nx(p);
		r->kind = SR_SET;
		if (!(r->elem = type(p, depth + 1)) || !want(p, T_GT, "`>`"))
			return NULL;
	}
	return r;
}

/* EntOrTyps := Path | '[' [Path {',' Path}] ']' as entity references. */
static int ent_types(struct sp *p, struct cedar_sref ***out, uint32_t *n)
{
	uint32_t cap = 0;
	int list = CUR(p).t == T_LB;
	*n = 0;
	if (list)
		nx(p);
	while (!failed(p) && !(list && CUR(p).t == T_RB)) {
		struct cedar_sref *r = sref(p, SR_ENTITY);
		if (!r || !(r->name = path(p, &r->nlen, NULL)))
			return -1;
		if (!(*out = cedar_sb_grow(p->lx.a, *out, *n, &cap, sizeof(**out))))
			return oom(p);
		(*out)[(*n)++] = r;
		if (!list || CUR(p).t != T_COMMA)
			break;
		nx(p);
	}
	if (list && !want(p, T_RB, "`]` or `,`"))
		return -1;
	if (!*out && !(*out = cedar_alloc(p->lx.a, sizeof(**out))))
		return oom(p);
	return failed(p) ? -1 : 0;
}

static struct cedar_sb_ety *new_ety(struct sp *p)
{
	struct cedar_sb *b = p->b;
	if (!(b->ets = cedar_sb_grow(b->a, b->ets, b->nets, &b->capets, sizeof(*b->ets)))) {
		oom(p);
		return NULL;
	}
	struct cedar_sb_ety *e = &b->ets[b->nets++];
	memset(e, 0, sizeof(*e));
	e->ns = p->ns;
	e->line = CUR(p).line;
	e->col = CUR(p).col;
	return e;
}

static int enum_ids(struct sp *p, struct cedar_sb_ety *e)
{
	uint32_t cap = 0, ncap = 0;
	if (!want(p, T_LB, "`[`"))
		return -1;
	while (!failed(p) && CUR(p).t == T_STR) {
		struct cedar_tok t = CUR(p);
		char *s;
		long l = cedar_lex_string(&p->lx, &t, &s);
		if (l < 0)
			return -1;
		nx(p);
		if (!(e->eids = cedar_sb_grow(p->lx.a, e->eids, e->neids, &cap, sizeof(*e->eids))) ||
		    !(e->eidlens = cedar_sb_grow(p->lx.a, e->eidlens, e->neids, &ncap,
						 sizeof(*e->eidlens))))
			return oom(p);
		e->eids[e->neids] = s;
		e->eidlens[e->neids++] = (uint32_t)l;
		if (CUR(p).t != T_COMMA)
			break;
		nx(p);
	}
	if (!e->neids) {
		cedar_lex_expected(&p->lx, "at least one entity id string");
		return -1;
	}
	e->is_enum = 1;
	return want(p, T_RB, "`]` or `,`") ? 0 : -1;
}

/* 'entity' Idents ['in' EntOrTyps] ( 'enum' '[' STR+ ']'
 *                                  | [['='] RecType] ['tags' Type] ) ';' */
static int entity_decl(struct sp *p)
{
	uint32_t first = p->b->nets;
	nx(p);
	for (;;) {
		struct cedar_sb_ety *e = new_ety(p);
		uint32_t n;
		const char *id;
		if (!e || CUR(p).t != T_IDENT) {
			cedar_lex_expected(&p->lx, "an entity type name");
			return -1;
		}
		if (!(id = name(p, &n)) || !(e->name = cedar_sb_qualify(p->lx.a, p->ns, id, n)))
			return -1;
		if (CUR(p).t != T_COMMA)
			break;
		nx(p);
	}
	struct cedar_sb_ety proto = {0};
	if (kw(p, "in")) {
		nx(p);
		if (ent_types(p, &proto.parents, &proto.npar))
			return -1;
	}
	if (kw(p, "enum") && proto.npar) {
		cedar_lex_fail(&p->lx, CUR(p).line, CUR(p).col,
			       "an enumerated entity type cannot have parents");
		return -1;
	}
	if (kw(p, "enum")) {
		nx(p);
		if (enum_ids(p, &proto))
			return -1;
	} else {
		if (bad_char(p, '='))
			nx(p);
		if (CUR(p).t == T_LC && !(proto.shape = record(p, 0)))
			return -1;
		if (kw(p, "tags")) {
			nx(p);
			if (!(proto.tags = type(p, 0)))
				return -1;
		}
	}
	for (uint32_t i = first; i < p->b->nets; i++) {
		struct cedar_sb_ety *e = &p->b->ets[i];
		e->parents = proto.parents;
		e->npar = proto.npar;
		e->shape = proto.shape;
		e->tags = proto.tags;
		e->eids = proto.eids;
		e->eidlens = proto.eidlens;
		e->neids = proto.neids;
		e->is_enum = proto.is_enum;
	}
	return want(p, T_SEMI, "`;`") ? 0 : -1;
}

/* Ref := Path '::' STR | Name, alone or as a bracketed list. */
static int action_refs(struct sp *p, struct cedar_sb_aref **out, uint32_t *n)
{
	uint32_t cap = 0;
	int list = CUR(p).t == T_LB;
	if (list)
		nx(p);
	while (!failed(p) && !(list && CUR(p).t == T_RB)) {
		struct cedar_sb_aref r = {0};
		int uid = 0;
		if (CUR(p).t == T_IDENT) {
			if (!(r.type = path(p, &r.tlen, &uid)))
				return -1;
			if (uid) {
				if (!(r.id = name(p, &r.idlen)))
					return -1;
			} else if (strstr(r.type, "::")) {
				cedar_lex_expected(&p->lx, "`::` and an action id string");
				return -1;
			} else {
				r.id = r.type;
				r.idlen = r.tlen;
				r.type = NULL;
			}
		} else if (!(r.id = name(p, &r.idlen))) {
			return -1;
		}
		if (!(*out = cedar_sb_grow(p->lx.a, *out, *n, &cap, sizeof(r))))
			return oom(p);
		(*out)[(*n)++] = r;
		if (!list || CUR(p).t != T_COMMA)
			break;
		nx(p);
	}
	if (list && !want(p, T_RB, "`]` or `,`"))
		return -1;
	return failed(p) ? -1 : 0;
}

static int applies_to(struct sp *p, struct cedar_sb_act *a)
{
	int seen_p = 0, seen_r = 0, seen_c = 0;
	nx(p);
	a->applies = 1;
	if (!want(p, T_LC, "`{`"))
		return -1;
	while (!failed(p) && CUR(p).t != T_RC) {
		struct cedar_tok t = CUR(p);
		int *seen = kw(p, "principal") ? &seen_p : kw(p, "resource") ? &seen_r :
			    kw(p, "context") ? &seen_c : NULL;
		if (!seen) {
			cedar_lex_expected(&p->lx, "`principal`, `resource` or `context`");
			return -1;
		}
		if (*seen) {
			cedar_lex_fail(&p->lx, t.line, t.col, "appliesTo names this twice");
			return -1;
		}
		*seen = 1;
		nx(p);
		if (!want(p, T_COLON, "`:`"))
			return -1;
		if (seen == &seen_c) {
			if (!(a->ctx = type(p, 0)))
				return -1;
		} else if (ent_types(p, seen == &seen_p ? &a->prin : &a->res,
				     seen == &seen_p ? &a->nprin : &a->nres)) {
			return -1;
		} else if (!(seen == &seen_p ? a->nprin : a->nres)) {
			/* As Cedar: an empty list here is a mistake; leave appliesTo out. */
			cedar_lex_fail(&p->lx, t.line, t.col, "an empty type list is not allowed here");
			return -1;
		}
		if (CUR(p).t != T_COMMA)
			break;
		nx(p);
	}
	if (!want(p, T_RC, "`}` or `,`"))
		return -1;
	if (!seen_p || !seen_r) {
		cedar_lex_fail(&p->lx, CUR(p).line, CUR(p).col,
			       "appliesTo needs both `principal` and `resource`");
		return -1;
	}
	return 0;
}

/* 'action' Names ['in' RefOrRefs] ['appliesTo' '{' ... '}'] ';' */
static int action_decl(struct sp *p)
{
	struct cedar_sb *b = p->b;
	uint32_t first = b->nacts;
	nx(p);
	for (;;) {
		if (!(b->acts = cedar_sb_grow(b->a, b->acts, b->nacts, &b->capacts, sizeof(*b->acts))))
			return oom(p);
		struct cedar_sb_act *a = &b->acts[b->nacts++];
		memset(a, 0, sizeof(*a));
		a->ns = p->ns;
		a->line = CUR(p).line;
		a->col = CUR(p).col;
		if (!(a->id = name(p, &a->idlen)))
			return -1;
		if (CUR(p).t != T_COMMA)
			break;
		nx(p);
	}
	struct cedar_sb_act proto = {0};
	if (kw(p, "in")) {
		nx(p);
		if (action_refs(p, &proto.parents, &proto.npar))
			return -1;
	}
	if (kw(p, "appliesTo") && applies_to(p, &proto))
		return -1;
	for (uint32_t i = first; i < b->nacts; i++) {
		struct cedar_sb_act *a = &b->acts[i];
		a->parents = proto.parents;
		a->npar = proto.npar;
		a->prin = proto.prin;
		a->nprin = proto.nprin;
		a->res = proto.res;
		a->nres = proto.nres;
		a->ctx = proto.ctx;
		a->applies = proto.applies;
	}
	return want(p, T_SEMI, "`;` or `appliesTo`") ? 0 : -1;
}

/* 'type' IDENT '=' Type ';' */
static int type_decl(struct sp *p)
{
	struct cedar_sb *b = p->b;
	nx(p);
	if (!(b->cts = cedar_sb_grow(b->a, b->cts, b->ncts, &b->capcts, sizeof(*b->cts))))
		return oom(p);
	struct cedar_sb_common *c = &b->cts[b->ncts++];
	memset(c, 0, sizeof(*c));
	c->ns = p->ns;
	c->line = CUR(p).line;
	c->col = CUR(p).col;
	uint32_t n;
	const char *id;
	if (CUR(p).t != T_IDENT) {
		cedar_lex_expected(&p->lx, "a type name");
		return -1;
	}
	if (!(id = name(p, &n)) || !(c->name = cedar_sb_qualify(p->lx.a, p->ns, id, n)))
		return -1;
	if (!bad_char(p, '=')) {
		cedar_lex_expected(&p->lx, "`=`");
		return -1;
	}
	nx(p);
	if (!(c->type = type(p, 0)))
		return -1;
	return want(p, T_SEMI, "`;`") ? 0 : -1;
}

static int decl(struct sp *p)
{
	if (annotations(p))
		return -1;
	if (kw(p, "entity"))
		return entity_decl(p);
	if (kw(p, "action"))
		return action_decl(p);
	if (kw(p, "type"))
		return type_decl(p);
	cedar_lex_expected(&p->lx, "`entity`, `action`, `type` or `namespace`");
	return -1;
}

/* A namespace is declared once; `__cedar` is Cedar's own. */
static int ns_declared(struct sp *p, const char *ns, struct cedar_tok at)
{
	if (!strcmp(ns, "__cedar") || !strncmp(ns, "__cedar::", 9)) {
		cedar_lex_fail(&p->lx, at.line, at.col, "the `__cedar` namespace is reserved");
		return 1;
	}
	for (uint32_t i = 0; i < p->nns; i++)
		if (!strcmp(p->nss[i], ns)) {
			cedar_lex_fail(&p->lx, at.line, at.col, "namespace declared twice");
			return 1;
		}
	if (!(p->nss = cedar_sb_grow(p->lx.a, p->nss, p->nns, &p->capns, sizeof(*p->nss)))) {
		oom(p);
		return 1;
	}
	p->nss[p->nns++] = ns;
	return 0;
}

int cedar_schema_parse_text(struct cedar_sb *b, const char *text, size_t len)
{
	struct sp p = {.b = b, .ns = ""};
	cedar_lex_init(&p.lx, b->a, text, len, b->err);
	while (!failed(&p) && CUR(&p).t != T_EOF) {
		if (annotations(&p))
			break;
		if (!kw(&p, "namespace")) {
			if (decl(&p))
				break;
			continue;
		}
		uint32_t n;
		struct cedar_tok nt;
		nx(&p);
		nt = CUR(&p);
		if (!(p.ns = path(&p, &n, NULL)) || ns_declared(&p, p.ns, nt) || !want(&p, T_LC, "`{`"))
			break;
		while (!failed(&p) && CUR(&p).t != T_RC && CUR(&p).t != T_EOF)
			if (decl(&p))
				break;
		if (!want(&p, T_RC, "`}`"))
			break;
		p.ns = "";
	}
	if (failed(&p))
		return b->err && b->err->code ? b->err->code : CEDAR_E_PARSE;
	return 0;
}
