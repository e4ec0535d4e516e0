/* Internal structures shared by the files of authz/cedar. */
#ifndef GH_CEDAR_INT_H
#define GH_CEDAR_INT_H

#include "authz/cedar/cedar.h"
#include "core/core.h"
#include <stdbool.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------- */
struct cedar_arena_chunk {
	struct cedar_arena_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

struct cedar_arena {
	struct cedar_arena_chunk *head;
	size_t cap, total;
#ifdef GH_ARENA_MALLOC_EACH
	/* Debug builds give each allocation its own malloc so ASan sees
	 * overflows between neighbouring objects. */
	void **blocks;
	size_t nblocks, capblocks;
#endif
};

void *cedar_alloc_slow(cedar_arena *a, size_t n);

/* Not zeroed: for buffers the caller fills completely (strings, copies).
 * The common case, room left in the head chunk, is inline: evaluation and
 * JSON reading allocate many small blocks. */
static inline void *cedar_alloc_raw(cedar_arena *a, size_t n)
{
#ifndef GH_ARENA_MALLOC_EACH
	size_t r = n ? (n + 15) & ~(size_t)15 : 16;
	struct cedar_arena_chunk *c = a->head;
	if (c && c->size - c->used >= r) {
		void *p = c->data + c->used;
		c->used += r;
		return p;
	}
#endif
	return cedar_alloc_slow(a, n);
}

/* Zeroed, 16-aligned. */
static inline void *cedar_alloc(cedar_arena *a, size_t n)
{
	void *p = cedar_alloc_raw(a, n);
	if (p)
		memset(p, 0, n);
	return p;
}

static inline char *cedar_strndup(cedar_arena *a, const char *s, size_t n)
{
	char *p = cedar_alloc_raw(a, n + 1);
	if (!p)
		return NULL;
	if (n)
		memcpy(p, s, n);
	p[n] = 0;
	return p;
}

/* ---- values --------------------------------------------------------- */
enum cv_kind {
	CV_BOOL = 1, CV_LONG, CV_STRING, CV_ENTITY, CV_SET, CV_RECORD,
	CV_DECIMAL, CV_IP, CV_DATETIME, CV_DURATION
};

struct cedar_uid {
	const char *type, *id;
	uint32_t tlen, idlen;
	uint64_t hash;
};

struct cedar_field;

struct cedar_value {
	uint8_t kind;
	uint8_t ip6;      /* CV_IP: 1 for IPv6 */
	uint8_t ippre;    /* CV_IP: prefix length */
	uint32_t n;       /* string length, set/record size */
	uint32_t cap;     /* set/record capacity while being built */
	union {
		int64_t i;                 /* bool, long, decimal, datetime, duration */
		const char *s;
		const struct cedar_uid *uid;
		struct cedar_value *items; /* sorted, unique */
		struct cedar_field *fields;/* sorted by key */
		uint8_t ip[16];
	} u;
};

struct cedar_field {
	const char *key;
	uint32_t klen;
	struct cedar_value v;
};

/* Names and ids are short: an inline loop beats a call to memcmp. */
static inline int cedar_bytes_cmp(const char *a, const char *b, size_t n)
{
	if (n > 24)
		return memcmp(a, b, n);
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
	return 0;
}

uint64_t cedar_hash(const void *p, size_t n, uint64_t seed);
/* In-place, never allocates; elements of at most 64 bytes. */
void cedar_sort(void *base, size_t n, size_t sz, int (*cmp)(const void *, const void *));
bool cedar_type_name_ok(const char *s, size_t n);
struct cedar_uid *cedar_uid_make(cedar_arena *a, const char *type, size_t tlen,
				 const char *id, size_t idlen);
static inline bool cedar_uid_eq(const struct cedar_uid *x, const struct cedar_uid *y)
{
	return x == y || (x->hash == y->hash && x->tlen == y->tlen && x->idlen == y->idlen &&
			  cedar_bytes_cmp(x->type, y->type, x->tlen) == 0 &&
			  cedar_bytes_cmp(x->id, y->id, x->idlen) == 0);
}
int cedar_vcmp(const struct cedar_value *x, const struct cedar_value *y);
int cedar_keycmp(const char *a, uint32_t alen, const char *b, uint32_t blen);
/* Sorts and deduplicates items in place; returns the new count. */
uint32_t cedar_set_normalize(struct cedar_value *items, uint32_t n);
/* Sorts fields; returns -1 on a duplicate key. */
int cedar_record_normalize(struct cedar_field *f, uint32_t n);
const struct cedar_value *cedar_record_get(const struct cedar_value *rec, const char *k,
					   uint32_t klen);
bool cedar_set_contains(const struct cedar_value *set, const struct cedar_value *v);
int cedar_value_clone(cedar_arena *a, struct cedar_value *dst, const struct cedar_value *src);
void cedar_set_err(struct cedar_err *err, int code, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* ---- extensions (ext.c) ---------------------------------------------- */
enum cedar_ext_fn {
	EF_NONE = 0,
	EF_DECIMAL, EF_IP, EF_DATETIME, EF_DURATION,          /* constructors */
	EF_LESSTHAN, EF_LESSTHANOREQUAL, EF_GREATERTHAN, EF_GREATERTHANOREQUAL,
	EF_ISIPV4, EF_ISIPV6, EF_ISLOOPBACK, EF_ISMULTICAST, EF_ISINRANGE,
	EF_OFFSET, EF_DURATIONSINCE, EF_TODATE, EF_TOTIME,
	EF_TOMILLISECONDS, EF_TOSECONDS, EF_TOMINUTES, EF_TOHOURS, EF_TODAYS
};
enum cedar_ext_fn cedar_ext_lookup(const char *name, size_t len, int *is_method, int *arity);
int cedar_parse_decimal(const char *s, size_t n, int64_t *out);
int cedar_parse_ip(const char *s, size_t n, struct cedar_value *out);
int cedar_parse_datetime(const char *s, size_t n, int64_t *out);
int cedar_parse_duration(const char *s, size_t n, int64_t *out);

/* ---- evaluation errors ----------------------------------------------- */
enum cedar_eval_err {
	EE_OK = 0, EE_TYPE = -10, EE_OVERFLOW, EE_NO_ENTITY, EE_NO_ATTR, EE_NO_TAG,
	EE_EXTENSION, EE_NOMEM, EE_DEPTH
};
const char *cedar_eval_err_str(int e);
/* Calls an extension function on already evaluated arguments. */
int cedar_ext_call(enum cedar_ext_fn fn, const struct cedar_value *args, int nargs,
		   struct cedar_value *out);

/* ---- expressions ----------------------------------------------------- */
enum cx_op {
	X_LIT = 1, X_VAR, X_IF, X_AND, X_OR, X_NOT, X_NEG,
	X_EQ, X_NE, X_LT, X_LE, X_GT, X_GE, X_ADD, X_SUB, X_MUL, X_IN,
	X_CONTAINS, X_CONTAINSALL, X_CONTAINSANY, X_ISEMPTY, X_HASTAG, X_GETTAG,
	X_HAS, X_GETATTR, X_LIKE, X_IS, X_SET, X_RECORD, X_EXT
};
enum cx_var { VAR_PRINCIPAL = 0, VAR_ACTION, VAR_RESOURCE, VAR_CONTEXT };

struct cedar_expr {
	uint8_t op;
	uint8_t var;          /* X_VAR */
	uint8_t fn;           /* X_EXT: enum cedar_ext_fn */
	uint32_t n;           /* X_SET/X_RECORD/X_EXT argument count; X_LIKE pattern len */
	struct cedar_expr *a, *b, *c;
	struct cedar_expr **args;
	const char **keys;    /* X_RECORD */
	uint32_t *klens;
	const char *name;     /* X_HAS/X_GETATTR attribute, X_IS type */
	uint32_t nlen;
	const int16_t *pat;   /* X_LIKE: byte or -1 for a wildcard */
	struct cedar_value lit;
	int line, col;
};

/* ---- policies -------------------------------------------------------- */
enum cs_kind { SC_ANY = 0, SC_EQ, SC_IN, SC_IS, SC_IS_IN, SC_IN_SET };

struct cedar_pos {
	int line, col;
};

struct cedar_scope {
	uint8_t kind;
	uint8_t slot;                   /* uid comes from a template slot */
	const char *is_type;
	uint32_t is_tlen;
	const struct cedar_uid *uid;    /* SC_EQ, SC_IN, SC_IS_IN */
	const struct cedar_uid **uids;  /* SC_IN_SET */
	uint32_t nuids;
	/* Where the parts are, so the validator points at the one in error:
	 * the variable, the type after `is`, the entity (or slot), and each
	 * entity of an action list. */
	struct cedar_pos at, is_at, uid_at;
	struct cedar_pos *uids_at;
};

struct cedar_annotation {
	const char *key, *val;
};

struct cedar_policy {
	const char *id;
	int forbid;
	int is_template;
	int has_slots;
	uint32_t index;
	struct cedar_scope p, a, r;
	struct cedar_expr *cond;        /* conjunction of when/unless, NULL = true */
	struct cedar_annotation *annos;
	uint32_t nannos;
	int line, col;
};

/* ---- lexer (parse.c), shared by the policy and schema parsers ---------- */
enum cedar_tk {
	T_EOF, T_IDENT, T_STR, T_INT, T_LP, T_RP, T_LB, T_RB, T_LC, T_RC, T_COMMA, T_SEMI,
	T_DOT, T_COLON2, T_COLON, T_AT, T_SLOT, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
	T_AND, T_OR, T_NOT, T_PLUS, T_MINUS, T_STAR, T_BAD
};

struct cedar_tok {
	enum cedar_tk t;
	const char *s;   /* token text (for T_STR: between the quotes) */
	size_t n;
	int line, col;
};

struct cedar_lex {
	const char *src;
	size_t len, pos;
	int line, col;
	struct cedar_tok cur;
	cedar_arena *a;
	struct cedar_err *err;
	int failed;
	int depth;
};

void cedar_lex_init(struct cedar_lex *p, cedar_arena *a, const char *text, size_t len,
		    struct cedar_err *err);
void cedar_lex_next(struct cedar_lex *p);
int cedar_lex_is_kw(const struct cedar_tok *t, const char *kw);
/* Records "line:col: what" once; later failures keep the first. */
void cedar_lex_fail(struct cedar_lex *p, int line, int col, const char *what);
/* "expected WHAT, found TOKEN" at the current token. */
void cedar_lex_expected(struct cedar_lex *p, const char *what);
/* Unescapes a string token into a; the length, or -1 after reporting. */
long cedar_lex_string(struct cedar_lex *p, const struct cedar_tok *t, char **out);

/* Parser entry points (parse.c): policies are allocated in a. */
int cedar_parse_policies(cedar_arena *a, const char *text, size_t len,
			 struct cedar_policy ***out, size_t *n_out, struct cedar_err *err);
int cedar_parse_expr(cedar_arena *a, const char *text, size_t len,
		     struct cedar_expr **out, struct cedar_err *err);

struct cedar_policy *const *cedar_policy_set_policies(const cedar_policy_set *ps, size_t *n);

/* ---- entities -------------------------------------------------------- */
struct cedar_entity {
	const struct cedar_uid *uid;
	struct cedar_value attrs;           /* record */
	struct cedar_value tags;            /* record */
	const struct cedar_uid **parents;
	uint32_t nparents;
	const struct cedar_uid **anc;       /* transitive ancestors */
	uint32_t nanc;
	struct cedar_entity *next;          /* hash chain */
};

struct cedar_entities {
	cedar_arena *arena;
	struct cedar_entity **buckets;
	size_t nbuckets, count;
	int dirty;                          /* ancestors need recomputing */
	cedar_arena *scratch;               /* JSON DOMs while loading */
};

const struct cedar_entity *cedar_entities_find(const cedar_entities *es,
					       const struct cedar_uid *uid);
int cedar_entities_prepare(cedar_entities *es);
/* adopt: uid, attrs, parents and tags were built in es->arena and are
 * kept as they are instead of being copied. */
int cedar_entities_add_uid(cedar_entities *es, const struct cedar_uid *uid,
			   const struct cedar_value *attrs, const struct cedar_uid *const *parents,
			   size_t np, const struct cedar_value *tags, int adopt, struct cedar_err *err);

/* ---- evaluation ------------------------------------------------------ */
struct cedar_evalctx {
	cedar_arena *a;
	cedar_entities *es;
	struct cedar_value vars[4];
	int depth;
	/* principal, action, resource looked up once per request */
	const struct cedar_entity *vent[3];
	uint8_t vent_done[3];
};
int cedar_eval(struct cedar_evalctx *cx, const struct cedar_expr *x, struct cedar_value *out);
/* 1 satisfied, 0 not, negative error */
int cedar_policy_eval(struct cedar_evalctx *cx, const struct cedar_policy *p);

/* JSON DOM (jsontext.c): length-counted strings, exact int64. */
enum { JV_NULL = 1, JV_TRUE, JV_FALSE, JV_INT, JV_STR, JV_ARR, JV_OBJ };
struct cedar_jv {
	uint8_t t;
	uint32_t n;                 /* string length or item count */
	int64_t i;                  /* JV_INT value; JV_ARR/JV_OBJ: length of its text */
	const char *s;              /* JV_STR bytes; JV_ARR/JV_OBJ: where its text starts */
	struct cedar_jv *items;
	const char **keys;          /* JV_OBJ */
	uint32_t *klens;
};
int cedar_jv_parse(cedar_arena *a, const char *text, size_t len, struct cedar_jv *out,
		   struct cedar_err *err);
/* The reader underneath, for json.c's direct (DOM-less) reading: strings
 * and DOM nodes are allocated in a. */
struct cedar_jrd {
	const char *s;
	size_t n, pos;
	cedar_arena *a;
	struct cedar_err *err;
	int depth;
};
int cedar_jrd_fail(struct cedar_jrd *r, const char *what);
static inline void cedar_jrd_ws(struct cedar_jrd *r)
{
	while (r->pos < r->n && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' ||
				 r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
		r->pos++;
}
int cedar_jrd_string(struct cedar_jrd *r, const char **out, uint32_t *outn);  /* at '"' */
int cedar_jrd_value(struct cedar_jrd *r, struct cedar_jv *v);
const struct cedar_jv *cedar_jv_get(const struct cedar_jv *o, const char *key);

/* Cedar JSON formats (json.c) */
int cedar_jv_value(cedar_arena *a, const struct cedar_jv *j, struct cedar_value *out,
		   struct cedar_err *err);
int cedar_jv_uid(cedar_arena *a, const struct cedar_jv *j, const struct cedar_uid **out,
		 struct cedar_err *err);
char *cedar_read_file(const char *path, size_t *len, struct cedar_err *err);
/* A request from its JSON text, straight into values in a. */
int cedar_json_request(cedar_arena *a, const char *text, size_t len, struct cedar_request *req,
		       struct cedar_err *err);

/* ---- schema (schema.c, schema_json.c) and validation (validate.c) ------ */
enum ct_kind { CT_BOOL = 1, CT_LONG, CT_STRING, CT_ENTITY, CT_SET, CT_RECORD, CT_EXT };
enum ct_bool { CB_ANY = 0, CB_TT, CB_FF };
enum ct_ext { CX_DECIMAL = 1, CX_IP, CX_DATETIME, CX_DURATION };

struct cedar_attr;

/* A type of Cedar's validator: Bool with its singleton refinements true and
 * false, entity types by name, records with required and optional attributes
 * (sorted by key). Types are built once and shared, never mutated. */
struct cedar_type {
	uint8_t kind;
	uint8_t b;                      /* CT_BOOL: enum ct_bool */
	uint8_t ext;                    /* CT_EXT: enum ct_ext */
	const char *name;               /* CT_ENTITY: fully qualified type */
	uint32_t nlen;
	const struct cedar_type *elem;  /* CT_SET */
	const struct cedar_attr *attrs; /* CT_RECORD */
	uint32_t nattrs;
};

struct cedar_attr {
	const char *key;
	uint32_t klen;
	uint8_t required;
	const struct cedar_type *type;
};

struct cedar_ety {
	const char *name;
	uint32_t nlen;
	uint32_t src;                    /* index of its declaration in the builder */
	const struct cedar_type *attrs;  /* record; empty for enumerated types */
	const struct cedar_type *tags;   /* NULL: no tags */
	const char **eids;               /* enumerated entities, or NULL */
	uint32_t *eidlens;
	uint32_t neids;
	int is_enum;
	const char **anc;                /* transitive ancestor types */
	uint32_t *anclens;
	uint32_t nanc;
};

struct cedar_act {
	const struct cedar_uid *uid;
	const struct cedar_ety **prin, **res;
	uint32_t nprin, nres;
	const struct cedar_type *ctx;    /* record */
	const struct cedar_uid **anc;    /* transitive ancestor actions */
	uint32_t nanc;
	int applies;                     /* an appliesTo was given */
};

struct cedar_schema {
	cedar_arena *a;
	struct cedar_ety *ets;           /* sorted by name */
	size_t nets;
	struct cedar_act *acts;
	size_t nacts;
};

extern const struct cedar_type cedar_t_long, cedar_t_string, cedar_t_bool, cedar_t_tt,
	cedar_t_ff, cedar_t_ext[5];
const struct cedar_ety *cedar_schema_ety(const struct cedar_schema *s, const char *name,
					 size_t n);
const struct cedar_act *cedar_schema_act(const struct cedar_schema *s,
					 const struct cedar_uid *uid);
const struct cedar_attr *cedar_type_attr(const struct cedar_type *rec, const char *k,
					 uint32_t klen);
int cedar_type_eq(const struct cedar_type *x, const struct cedar_type *y);
/* Cedar's least upper bound; NULL when there is none. */
const struct cedar_type *cedar_type_lub(cedar_arena *a, const struct cedar_type *x,
					const struct cedar_type *y);
/* Human-readable rendering for messages, in a. */
const char *cedar_type_str(cedar_arena *a, const struct cedar_type *t);

/* The schema builder shared by the two formats: declarations are collected
 * with unresolved type references, then resolved and closed at once. */
enum sr_kind { SR_NAME = 1, SR_ENTITY, SR_TYPE, SR_SET, SR_RECORD };

/* A type as written, before names are resolved. */
struct cedar_sref {
	uint8_t kind;
	const struct cedar_type *type;  /* SR_TYPE: a builtin */
	const char *name;               /* SR_NAME (type or common name), SR_ENTITY */
	uint32_t nlen;
	const char *ns;                 /* the namespace it was written in */
	struct cedar_sref *elem;        /* SR_SET */
	struct cedar_sattr *attrs;      /* SR_RECORD */
	uint32_t nattrs;
	int line, col;
};

struct cedar_sattr {
	const char *key;
	uint32_t klen;
	int required;
	struct cedar_sref *type;
	int line, col;
};

struct cedar_sb_ety {
	const char *name, *ns;           /* name fully qualified */
	struct cedar_sref *shape, *tags; /* either may be NULL */
	struct cedar_sref **parents;     /* SR_ENTITY references */
	uint32_t npar;
	const char **eids;
	uint32_t *eidlens, neids;
	int is_enum, line, col;
};

struct cedar_sb_common {
	const char *name, *ns;
	struct cedar_sref *type;
	int line, col, busy;
	const struct cedar_type *done;
};

struct cedar_sb_aref {      /* an action named in `in`: type may be NULL */
	const char *type, *id;
	uint32_t tlen, idlen;
};

struct cedar_sb_act {
	const char *ns, *id;
	uint32_t idlen;
	struct cedar_sb_aref *parents;
	uint32_t npar;
	struct cedar_sref **prin, **res, *ctx;
	uint32_t nprin, nres;
	int applies, line, col;
};

/* The schema builder the two formats fill; cedar_schema_finish resolves
 * names, checks declarations and computes the hierarchies. */
struct cedar_sb {
	cedar_arena *a;
	struct cedar_err *err;
	struct cedar_sb_ety *ets;
	uint32_t nets, capets;
	struct cedar_sb_common *cts;
	uint32_t ncts, capcts;
	struct cedar_sb_act *acts;
	uint32_t nacts, capacts;
};
void *cedar_sb_grow(cedar_arena *a, void *v, uint32_t n, uint32_t *cap, size_t sz);
const char *cedar_sb_qualify(cedar_arena *a, const char *ns, const char *name, size_t n);
int cedar_schema_finish(struct cedar_sb *b, struct cedar_schema *s);
int cedar_schema_parse_text(struct cedar_sb *b, const char *text, size_t len);
int cedar_schema_parse_json(struct cedar_sb *b, const char *text, size_t len);
/* cli.c: runs fn on each JSON line of path (- for stdin), printing its answers. */
int cedar_cli_batch(const char *path, json_t *(*fn)(const char *line, size_t len, cedar_arena *a));
/* validate_cli.c: `cedar validate`; 2 means a usage error. */
int cedar_cli_validate(int argc, char **argv);
/* conform.c: does record value v have record type t? why says what not. */
int cedar_schema_record_conforms(const struct cedar_schema *s, const struct cedar_value *v,
				 const struct cedar_type *t, char *why, size_t n);

#endif
