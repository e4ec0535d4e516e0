/* Recursive-descent parser for the Cedar policy language, following the
 * grammar of cedar-policy-core (Policy, Scope, Expr ... Primary). Errors
 * carry the line:col of the offending token and name what was expected. */
#include "authz/cedar/cedar_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_DEPTH 200

static void advance_ch(struct cedar_lex *p)
{
	unsigned char c = (unsigned char)p->src[p->pos++];
	if (c == '\n') {
		p->line++;
		p->col = 1;
	} else if ((c & 0xC0) != 0x80) {
		p->col++;
	}
}

static const char *tokname(const struct cedar_tok *t, char *buf, size_t bufsz)
{
	switch (t->t) {
	case T_EOF: return "end of input";
	case T_STR: return "string literal";
	case T_INT: return "integer literal";
	default: break;
	}
	size_t n = t->n < 30 ? t->n : 30;
	snprintf(buf, bufsz, "`%.*s`", (int)n, t->s);
	return buf;
}

static void fail_at(struct cedar_lex *p, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void fail_at(struct cedar_lex *p, int line, int col, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = 1;
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cedar_set_err(p->err, CEDAR_E_PARSE, line, col, "%d:%d: %s", line, col, msg);
}

static void expected(struct cedar_lex *p, const char *what)
{
	if (p->failed)
		return;
	char buf[64], msg[200];
	snprintf(msg, sizeof(msg), "expected %s, found %s", what, tokname(&p->cur, buf, sizeof(buf)));
	fail_at(p, p->cur.line, p->cur.col, "%s", msg);
}

static int isidstart(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int isidch(int c)
{
	return isidstart(c) || (c >= '0' && c <= '9');
}

static void next(struct cedar_lex *p)
{
	if (p->failed) {
		p->cur.t = T_EOF;
		return;
	}
	for (;;) {
		while (p->pos < p->len && (p->src[p->pos] == ' ' || p->src[p->pos] == '\t' ||
					   p->src[p->pos] == '\n' || p->src[p->pos] == '\r'))
			advance_ch(p);
		if (p->pos + 1 < p->len && p->src[p->pos] == '/' && p->src[p->pos + 1] == '/') {
			while (p->pos < p->len && p->src[p->pos] != '\n')
				advance_ch(p);
			continue;
		}
		break;
	}
	struct cedar_tok *t = &p->cur;
	t->line = p->line;
	t->col = p->col;
	t->s = p->src + p->pos;
	t->n = 1;
	if (p->pos >= p->len) {
		t->t = T_EOF;
		t->n = 0;
		return;
	}
	char c = p->src[p->pos];
	char d = p->pos + 1 < p->len ? p->src[p->pos + 1] : 0;
	size_t start = p->pos;
	if (isidstart((unsigned char)c)) {
		while (p->pos < p->len && isidch((unsigned char)p->src[p->pos]))
			advance_ch(p);
		t->t = T_IDENT;
		t->n = p->pos - start;
		return;
	}
	if (c >= '0' && c <= '9') {
		while (p->pos < p->len && p->src[p->pos] >= '0' && p->src[p->pos] <= '9')
			advance_ch(p);
		t->t = T_INT;
		t->n = p->pos - start;
		return;
	}
	if (c == '"') {
		advance_ch(p);
		size_t s0 = p->pos;
		while (p->pos < p->len && p->src[p->pos] != '"') {
			if (p->src[p->pos] == '\\' && p->pos + 1 < p->len)
				advance_ch(p);
			advance_ch(p);
		}
		if (p->pos >= p->len) {
			fail_at(p, t->line, t->col, "%s", "unterminated string literal");
			t->t = T_EOF;
			return;
		}
		t->t = T_STR;
		t->s = p->src + s0;
		t->n = p->pos - s0;
		advance_ch(p);
		return;
	}
	if (c == '?' && isidstart((unsigned char)d)) {
		advance_ch(p);
		while (p->pos < p->len && isidch((unsigned char)p->src[p->pos]))
			advance_ch(p);
		t->t = T_SLOT;
		t->n = p->pos - start;
		return;
	}
	struct { char a, b; enum cedar_tk t; } two[] = {
		{'=', '=', T_EQ}, {'!', '=', T_NE}, {'<', '=', T_LE}, {'>', '=', T_GE},
		{'&', '&', T_AND}, {'|', '|', T_OR}, {':', ':', T_COLON2}};
	for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
		if (c == two[i].a && d == two[i].b) {
			advance_ch(p);
			advance_ch(p);
			t->t = two[i].t;
			t->n = 2;
			return;
		}
	const char *one = "()[]{},;.:@<>!+-*";
	static const enum cedar_tk onet[] = {T_LP, T_RP, T_LB, T_RB, T_LC, T_RC, T_COMMA, T_SEMI,
				       T_DOT, T_COLON, T_AT, T_LT, T_GT, T_NOT, T_PLUS,
				       T_MINUS, T_STAR};
	const char *f = c ? strchr(one, c) : NULL;
	/* Step over a whole UTF-8 character so the error shows it intact. */
	advance_ch(p);
	while (p->pos < p->len && ((unsigned char)p->src[p->pos] & 0xC0) == 0x80)
		advance_ch(p);
	t->n = p->pos - start;
	t->t = f ? onet[f - one] : T_BAD;
}

static int is_kw(const struct cedar_tok *t, const char *kw)
{
	return t->t == T_IDENT && strlen(kw) == t->n && memcmp(t->s, kw, t->n) == 0;
}

static int accept(struct cedar_lex *p, enum cedar_tk t)
{
	if (p->cur.t == t) {
		next(p);
		return 1;
	}
	return 0;
}

static int expect(struct cedar_lex *p, enum cedar_tk t, const char *what)
{
	if (accept(p, t))
		return 1;
	expected(p, what);
	return 0;
}

static int reserved(const struct cedar_tok *t)
{
	static const char *const r[] = {"true", "false", "if", "then", "else", "in", "is",
					"like", "has", "__cedar"};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (is_kw(t, r[i]))
			return 1;
	return 0;
}

/* ---- string literals ---------------------------------------------------- */

static int put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Unescapes t into bytes; in pattern mode `*` is a wildcard (-1 in pat)
 * and `\*` a literal star. Returns the length, or -1 after reporting. */
static long unescape(struct cedar_lex *p, const struct cedar_tok *t, char **out, int16_t **pat)
{
	char *o = cedar_alloc(p->a, t->n + 1);
	int16_t *po = pat ? cedar_alloc(p->a, (t->n + 1) * sizeof(int16_t)) : NULL;
	if (!o || (pat && !po)) {
		fail_at(p, t->line, t->col, "%s", "out of memory");
		return -1;
	}
	size_t w = 0;
	for (size_t i = 0; i < t->n; i++) {
		char c = t->s[i];
		if (c != '\\') {
			if (po)
				po[w] = c == '*' ? -1 : (int16_t)(unsigned char)c;
			o[w++] = c;
			continue;
		}
		if (++i >= t->n)
			goto bad;
		char e = t->s[i];
		char buf[4];
		int bl = 1;
		switch (e) {
		case 'n': buf[0] = '\n'; break;
		case 'r': buf[0] = '\r'; break;
		case 't': buf[0] = '\t'; break;
		case '0': buf[0] = 0; break;
		case '\\': buf[0] = '\\'; break;
		case '\'': buf[0] = '\''; break;
		case '"': buf[0] = '"'; break;
		case '*':
			if (!pat)
				goto bad;
			buf[0] = '*';
			break;
		case 'x': {
			int h1 = i + 1 < t->n ? gh_hex_digit(t->s[i + 1]) : -1;
			int h2 = i + 2 < t->n ? gh_hex_digit(t->s[i + 2]) : -1;
			if (h1 < 0 || h2 < 0 || h1 > 7)
				goto bad;
			buf[0] = (char)(h1 * 16 + h2);
			i += 2;
			break;
		}
		case 'u': {
			if (i + 1 >= t->n || t->s[i + 1] != '{')
				goto bad;
			size_t j = i + 2;
			uint32_t cp = 0;
			int nd = 0;
			while (j < t->n && t->s[j] != '}') {
				if (t->s[j] == '_' && nd > 0) {
					j++;
					continue;
				}
				int h = gh_hex_digit(t->s[j]);
				if (h < 0 || ++nd > 6)
					goto bad;
				cp = cp * 16 + (uint32_t)h;
				j++;
			}
			if (j >= t->n || nd == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
				goto bad;
			bl = put_utf8(buf, cp);
			i = j;
			break;
		}
		default:
			goto bad;
		}
		for (int k = 0; k < bl; k++) {
			/* Only `\*` is a literal star: a star written as \x2a or
			 * \u{2a} is still a wildcard, as in Cedar. */
			if (po)
				po[w] = buf[0] == '*' && bl == 1 && e != '*' ? -1
					: (int16_t)(unsigned char)buf[k];
			o[w++] = buf[k];
		}
	}
	o[w] = 0;
	*out = o;
	if (pat)
		*pat = po;
	return (long)w;
bad:
	fail_at(p, t->line, t->col, "%s", "invalid escape sequence in string literal");
	return -1;
}

/* ---- AST helpers -------------------------------------------------------- */

static struct cedar_expr *node(struct cedar_lex *p, int op, int line, int col)
{
	struct cedar_expr *x = cedar_alloc(p->a, sizeof(*x));
	if (!x) {
		fail_at(p, line, col, "%s", "out of memory");
		return NULL;
	}
	x->op = (uint8_t)op;
	x->line = line;
	x->col = col;
	return x;
}

static struct cedar_expr *bin(struct cedar_lex *p, int op, struct cedar_expr *l,
			      struct cedar_expr *r, int line, int col)
{
	if (!l || !r)
		return NULL;
	struct cedar_expr *x = node(p, op, line, col);
	if (x) {
		x->a = l;
		x->b = r;
	}
	return x;
}

/* Parses Path; on success start and tlen hold "A::B::C". Stops before a
 * `::` that is followed by a string (the caller's entity literal). */
static int parse_path(struct cedar_lex *p, const char **start, size_t *tlen, int allow_reserved)
{
	if (p->cur.t != T_IDENT || (!allow_reserved && reserved(&p->cur))) {
		expected(p, "identifier");
		return -1;
	}
	*start = p->cur.s;
	const char *end = p->cur.s + p->cur.n;
	next(p);
	while (p->cur.t == T_COLON2) {
		/* Peek: is an identifier following? */
		size_t save_pos = p->pos;
		int sl = p->line, sc = p->col;
		struct cedar_tok save = p->cur;
		next(p);
		if (p->cur.t == T_IDENT && !reserved(&p->cur)) {
			end = p->cur.s + p->cur.n;
			next(p);
			continue;
		}
		p->pos = save_pos;
		p->line = sl;
		p->col = sc;
		p->cur = save;
		break;
	}
	*tlen = (size_t)(end - *start);
	return 0;
}

/* Normalises "A :: B" (whitespace) into "A::B". */
static char *clean_path(struct cedar_lex *p, const char *s, size_t n, size_t *out_n)
{
	char *o = cedar_alloc(p->a, n + 1);
	size_t w = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
			continue;
		if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
			while (i < n && s[i] != '\n')
				i++;
			continue;
		}
		o[w++] = s[i];
	}
	o[w] = 0;
	*out_n = w;
	return o;
}

/* Path '::' STR, starting at the current token. */
static const struct cedar_uid *parse_entity(struct cedar_lex *p)
{
	const char *s;
	size_t n;
	if (parse_path(p, &s, &n, 0))
		return NULL;
	if (!expect(p, T_COLON2, "`::` and an entity id"))
		return NULL;
	if (p->cur.t != T_STR) {
		expected(p, "entity id string");
		return NULL;
	}
	char *id;
	struct cedar_tok st = p->cur;
	long idn = unescape(p, &st, &id, NULL);
	if (idn < 0)
		return NULL;
	next(p);
	size_t tn;
	char *t = clean_path(p, s, n, &tn);
	struct cedar_uid *u = t ? cedar_uid_make(p->a, t, tn, id, (size_t)idn) : NULL;
	if (!u)
		fail_at(p, st.line, st.col, "%s", "out of memory");
	return u;
}

static struct cedar_expr *parse_expr(struct cedar_lex *p);

static struct cedar_expr *lit_node(struct cedar_lex *p, int kind, int64_t i, int line, int col)
{
	struct cedar_expr *x = node(p, X_LIT, line, col);
	if (x) {
		x->lit.kind = (uint8_t)kind;
		x->lit.u.i = i;
	}
	return x;
}

/* Comma-separated expressions up to `close`, trailing comma allowed. */
static int parse_list(struct cedar_lex *p, enum cedar_tk close, const char *what,
		      struct cedar_expr ***out, uint32_t *n)
{
	uint32_t cap = 4, cnt = 0;
	struct cedar_expr **v = cedar_alloc(p->a, cap * sizeof(*v));
	if (!v)
		return -1;
	while (p->cur.t != close) {
		struct cedar_expr *e = parse_expr(p);
		if (!e)
			return -1;
		if (cnt == cap) {
			struct cedar_expr **nv = cedar_alloc(p->a, cap * 2 * sizeof(*v));
			if (!nv)
				return -1;
			memcpy(nv, v, cap * sizeof(*v));
			v = nv;
			cap *= 2;
		}
		v[cnt++] = e;
		if (!accept(p, T_COMMA))
			break;
	}
	if (!expect(p, close, what))
		return -1;
	*out = v;
	*n = cnt;
	return 0;
}

static struct cedar_expr *parse_record(struct cedar_lex *p, int line, int col)
{
	struct cedar_expr *x = node(p, X_RECORD, line, col);
	uint32_t cap = 4, cnt = 0;
	if (!x)
		return NULL;
	x->args = cedar_alloc(p->a, cap * sizeof(*x->args));
	x->keys = cedar_alloc(p->a, cap * sizeof(*x->keys));
	x->klens = cedar_alloc(p->a, cap * sizeof(*x->klens));
	if (!x->args || !x->keys || !x->klens)
		return NULL;
	while (p->cur.t != T_RC) {
		const char *k;
		long kn;
		struct cedar_tok kt = p->cur;
		if (kt.t == T_STR) {
			char *ks;
			kn = unescape(p, &kt, &ks, NULL);
			if (kn < 0)
				return NULL;
			k = ks;
		} else if (kt.t == T_IDENT && !reserved(&kt)) {
			k = cedar_strndup(p->a, kt.s, kt.n);
			kn = (long)kt.n;
		} else {
			expected(p, "record key (identifier or string)");
			return NULL;
		}
		next(p);
		if (!expect(p, T_COLON, "`:`"))
			return NULL;
		struct cedar_expr *e = parse_expr(p);
		if (!e)
			return NULL;
		for (uint32_t i = 0; i < cnt; i++)
			if (x->klens[i] == (uint32_t)kn && memcmp(x->keys[i], k, (size_t)kn) == 0) {
				fail_at(p, kt.line, kt.col, "duplicate key `%s` in record literal", k);
				return NULL;
			}
		if (cnt == cap) {
			cap *= 2;
			struct cedar_expr **na = cedar_alloc(p->a, cap * sizeof(*na));
			const char **nk = cedar_alloc(p->a, cap * sizeof(*nk));
			uint32_t *nl = cedar_alloc(p->a, cap * sizeof(*nl));
			if (!na || !nk || !nl)
				return NULL;
			memcpy(na, x->args, cnt * sizeof(*na));
			memcpy(nk, x->keys, cnt * sizeof(*nk));
			memcpy(nl, x->klens, cnt * sizeof(*nl));
			x->args = na;
			x->keys = nk;
			x->klens = nl;
		}
		x->args[cnt] = e;
		x->keys[cnt] = k;
		x->klens[cnt] = (uint32_t)kn;
		cnt++;
		if (!accept(p, T_COMMA))
			break;
	}
	if (!expect(p, T_RC, "`}` or `,`"))
		return NULL;
	x->n = cnt;
	return x;
}

static struct cedar_expr *parse_primary(struct cedar_lex *p)
{
	struct cedar_tok t = p->cur;
	char buf[64];
	switch (t.t) {
	case T_INT: {
		/* Magnitude checked here; -9223372036854775808 is folded by the
		 * unary minus before this check, see parse_unary. */
		uint64_t v = 0;
		for (size_t i = 0; i < t.n; i++) {
			uint64_t d = (uint64_t)(t.s[i] - '0');
			if (v > (UINT64_MAX - d) / 10) {
				v = UINT64_MAX;
				break;
			}
			v = v * 10 + d;
		}
		next(p);
		struct cedar_expr *x = lit_node(p, CV_LONG, 0, t.line, t.col);
		if (!x)
			return NULL;
		if (v > (uint64_t)INT64_MAX) {
			/* Remember the raw magnitude in n for the minus folding. */
			x->lit.u.i = INT64_MIN;
			x->n = v == (uint64_t)INT64_MAX + 1 ? 1 : 2;
		} else {
			x->lit.u.i = (int64_t)v;
		}
		return x;
	}
	case T_STR: {
		char *s;
		long n = unescape(p, &t, &s, NULL);
		if (n < 0)
			return NULL;
		next(p);
		struct cedar_expr *x = node(p, X_LIT, t.line, t.col);
		if (x) {
			x->lit.kind = CV_STRING;
			x->lit.u.s = s;
			x->lit.n = (uint32_t)n;
		}
		return x;
	}
	case T_LP: {
		next(p);
		struct cedar_expr *e = parse_expr(p);
		if (!e || !expect(p, T_RP, "`)`"))
			return NULL;
		return e;
	}
	case T_LB: {
		next(p);
		struct cedar_expr *x = node(p, X_SET, t.line, t.col);
		if (!x || parse_list(p, T_RB, "`]` or `,`", &x->args, &x->n))
			return NULL;
		return x;
	}
	case T_LC:
		next(p);
		return parse_record(p, t.line, t.col);
	case T_SLOT:
		fail_at(p, t.line, t.col, "template slot %s is only allowed in the policy scope",
			tokname(&t, buf, sizeof(buf)));
		return NULL;
	case T_IDENT:
		break;
	default:
		expected(p, "expression");
		return NULL;
	}
	if (is_kw(&t, "true") || is_kw(&t, "false")) {
		next(p);
		return lit_node(p, CV_BOOL, is_kw(&t, "true"), t.line, t.col);
	}
	static const char *const vars[] = {"principal", "action", "resource", "context"};
	const char *s;
	size_t n;
	if (parse_path(p, &s, &n, 0))
		return NULL;
	if (p->cur.t == T_COLON2) {
		/* An entity literal: rewind to the path start is unnecessary,
		 * parse_entity re-reads from the `::`. */
		next(p);
		if (p->cur.t != T_STR) {
			expected(p, "entity id string or identifier");
			return NULL;
		}
		struct cedar_tok st = p->cur;
		char *id;
		long idn = unescape(p, &st, &id, NULL);
		if (idn < 0)
			return NULL;
		next(p);
		size_t tn;
		char *ty = clean_path(p, s, n, &tn);
		struct cedar_expr *x = node(p, X_LIT, t.line, t.col);
		if (!x || !ty)
			return NULL;
		x->lit.kind = CV_ENTITY;
		x->lit.u.uid = cedar_uid_make(p->a, ty, tn, id, (size_t)idn);
		return x->lit.u.uid ? x : NULL;
	}
	if (p->cur.t == T_LP) {
		size_t fn_n;
		char *fname = clean_path(p, s, n, &fn_n);
		int is_method = 0, arity = 0;
		enum cedar_ext_fn f = fname ? cedar_ext_lookup(fname, fn_n, &is_method, &arity) : EF_NONE;
		if (f == EF_NONE || is_method) {
			if (is_method)
				fail_at(p, t.line, t.col, "`%s` is a method, not a function", fname);
			else
				fail_at(p, t.line, t.col, "unknown function `%s`", fname ? fname : "");
			return NULL;
		}
		next(p);
		struct cedar_expr *x = node(p, X_EXT, t.line, t.col);
		if (!x || parse_list(p, T_RP, "`)` or `,`", &x->args, &x->n))
			return NULL;
		/* Wrong arity is an evaluation error in Cedar, not a parse error. */
		x->fn = (uint8_t)f;
		return x;
	}
	for (int i = 0; i < 4; i++)
		if (n == strlen(vars[i]) && memcmp(s, vars[i], n) == 0) {
			struct cedar_expr *x = node(p, X_VAR, t.line, t.col);
			if (x)
				x->var = (uint8_t)i;
			return x;
		}
	fail_at(p, t.line, t.col,
		"unknown variable `%s`; expected principal, action, resource, context, a literal or an entity",
		cedar_strndup(p->a, s, n));
	return NULL;
}

static const struct {
	const char *name;
	int op, nargs;
} builtin_methods[] = {
	{"contains", X_CONTAINS, 1}, {"containsAll", X_CONTAINSALL, 1},
	{"containsAny", X_CONTAINSANY, 1}, {"isEmpty", X_ISEMPTY, 0},
	{"hasTag", X_HASTAG, 1}, {"getTag", X_GETTAG, 1},
};

static struct cedar_expr *parse_member(struct cedar_lex *p)
{
	struct cedar_expr *x = parse_primary(p);
	if (x && x->op == X_LIT && x->lit.kind == CV_LONG && x->n != 0 &&
	    (p->cur.t == T_DOT || p->cur.t == T_LB)) {
		fail_at(p, x->line, x->col, "%s", "integer literal out of range");
		return NULL;
	}
	while (x && !p->failed) {
		struct cedar_tok t = p->cur;
		if (t.t == T_LB) {
			next(p);
			if (p->cur.t != T_STR) {
				expected(p, "string literal attribute name");
				return NULL;
			}
			struct cedar_tok st = p->cur;
			char *k;
			long kn = unescape(p, &st, &k, NULL);
			if (kn < 0)
				return NULL;
			next(p);
			if (!expect(p, T_RB, "`]`"))
				return NULL;
			struct cedar_expr *g = node(p, X_GETATTR, t.line, t.col);
			if (!g)
				return NULL;
			g->a = x;
			g->name = k;
			g->nlen = (uint32_t)kn;
			x = g;
			continue;
		}
		if (t.t != T_DOT)
			break;
		next(p);
		struct cedar_tok id = p->cur;
		if (id.t != T_IDENT || reserved(&id)) {
			expected(p, "attribute or method name");
			return NULL;
		}
		next(p);
		if (p->cur.t != T_LP) {
			struct cedar_expr *g = node(p, X_GETATTR, id.line, id.col);
			if (!g)
				return NULL;
			g->a = x;
			g->name = cedar_strndup(p->a, id.s, id.n);
			g->nlen = (uint32_t)id.n;
			x = g;
			continue;
		}
		next(p);
		struct cedar_expr **args;
		uint32_t nargs;
		if (parse_list(p, T_RP, "`)` or `,`", &args, &nargs))
			return NULL;
		struct cedar_expr *m = NULL;
		for (size_t i = 0; i < sizeof(builtin_methods) / sizeof(builtin_methods[0]); i++)
			if (strlen(builtin_methods[i].name) == id.n &&
			    memcmp(builtin_methods[i].name, id.s, id.n) == 0) {
				if (nargs != (uint32_t)builtin_methods[i].nargs) {
					fail_at(p, id.line, id.col, "wrong number of arguments to `%s`",
						builtin_methods[i].name);
					return NULL;
				}
				m = node(p, builtin_methods[i].op, id.line, id.col);
				if (!m)
					return NULL;
				m->a = x;
				m->b = nargs ? args[0] : NULL;
			}
		if (!m) {
			int is_method = 0, arity = 0;
			enum cedar_ext_fn f = cedar_ext_lookup(id.s, id.n, &is_method, &arity);
			char *nm = cedar_strndup(p->a, id.s, id.n);
			if (f == EF_NONE || !is_method) {
				fail_at(p, id.line, id.col, "unknown method `%s`", nm ? nm : "");
				return NULL;
			}
			m = node(p, X_EXT, id.line, id.col);
			if (!m)
				return NULL;
			m->fn = (uint8_t)f;
			m->n = nargs + 1;
			m->args = cedar_alloc(p->a, (nargs + 1) * sizeof(*m->args));
			if (!m->args)
				return NULL;
			m->args[0] = x;
			for (uint32_t i = 0; i < nargs; i++)
				m->args[i + 1] = args[i];
		}
		x = m;
	}
	return p->failed ? NULL : x;
}

static struct cedar_expr *parse_unary(struct cedar_lex *p)
{
	struct cedar_tok t = p->cur;
	int nots = 0, negs = 0;
	enum cedar_tk kind = t.t;
	if (kind == T_NOT || kind == T_MINUS) {
		while (p->cur.t == kind) {
			next(p);
			if (kind == T_NOT)
				nots++;
			else
				negs++;
		}
		if (nots + negs > 4) {
			fail_at(p, t.line, t.col, "%s", "too many unary operators (at most 4)");
			return NULL;
		}
	}
	int lit_int = p->cur.t == T_INT;
	struct cedar_expr *x = parse_member(p);
	if (!x)
		return NULL;
	int plain_lit = lit_int && x->op == X_LIT && x->lit.kind == CV_LONG;
	if (plain_lit && negs > 0) {
		/* `-N` is a literal, which is how INT64_MIN can be written. */
		if (x->n == 2) {
			fail_at(p, x->line, x->col, "%s", "integer literal out of range");
			return NULL;
		}
		if (x->n == 0)
			x->lit.u.i = -x->lit.u.i;
		x->n = 0;
		negs--;
	}
	if (plain_lit && x->n != 0) {
		fail_at(p, x->line, x->col, "%s", "integer literal out of range");
		return NULL;
	}
	for (int i = 0; i < negs; i++) {
		struct cedar_expr *y = node(p, X_NEG, t.line, t.col);
		if (!y)
			return NULL;
		y->a = x;
		x = y;
	}
	for (int i = 0; i < nots; i++) {
		struct cedar_expr *y = node(p, X_NOT, t.line, t.col);
		if (!y)
			return NULL;
		y->a = x;
		x = y;
	}
	return x;
}

static struct cedar_expr *parse_mult(struct cedar_lex *p)
{
	struct cedar_expr *x = parse_unary(p);
	while (x && p->cur.t == T_STAR) {
		struct cedar_tok t = p->cur;
		next(p);
		x = bin(p, X_MUL, x, parse_unary(p), t.line, t.col);
	}
	if (x && p->cur.t == T_BAD && (p->cur.s[0] == '/' || p->cur.s[0] == '%')) {
		fail_at(p, p->cur.line, p->cur.col, "%s", "division and remainder are not Cedar operators");
		return NULL;
	}
	return x;
}

static struct cedar_expr *parse_add(struct cedar_lex *p)
{
	struct cedar_expr *x = parse_mult(p);
	while (x && (p->cur.t == T_PLUS || p->cur.t == T_MINUS)) {
		struct cedar_tok t = p->cur;
		next(p);
		x = bin(p, t.t == T_PLUS ? X_ADD : X_SUB, x, parse_mult(p), t.line, t.col);
	}
	return x;
}

static struct cedar_expr *make_has(struct cedar_lex *p, struct cedar_expr *e, const char *k,
				   uint32_t kn, int line, int col)
{
	struct cedar_expr *h = node(p, X_HAS, line, col);
	if (h) {
		h->a = e;
		h->name = k;
		h->nlen = kn;
	}
	return h;
}

static struct cedar_expr *parse_relation(struct cedar_lex *p)
{
	struct cedar_expr *x = parse_add(p);
	if (!x)
		return NULL;
	struct cedar_tok t = p->cur;
	static const struct { enum cedar_tk t; int op; } rel[] = {
		{T_EQ, X_EQ}, {T_NE, X_NE}, {T_LT, X_LT}, {T_LE, X_LE}, {T_GT, X_GT}, {T_GE, X_GE}};
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++)
		if (t.t == rel[i].t) {
			next(p);
			return bin(p, rel[i].op, x, parse_add(p), t.line, t.col);
		}
	if (is_kw(&t, "in")) {
		next(p);
		return bin(p, X_IN, x, parse_add(p), t.line, t.col);
	}
	if (is_kw(&t, "has")) {
		next(p);
		struct cedar_tok k = p->cur;
		if (k.t == T_STR) {
			char *ks;
			long kn = unescape(p, &k, &ks, NULL);
			if (kn < 0)
				return NULL;
			next(p);
			return make_has(p, x, ks, (uint32_t)kn, t.line, t.col);
		}
		if (k.t != T_IDENT || reserved(&k)) {
			expected(p, "attribute name after `has`");
			return NULL;
		}
		/* `e has a.b.c` means e has a && e.a has b && e.a.b has c. */
		struct cedar_expr *acc = x, *res = NULL;
		for (;;) {
			k = p->cur;
			if (k.t != T_IDENT || reserved(&k)) {
				expected(p, "attribute name");
				return NULL;
			}
			next(p);
			const char *ks = cedar_strndup(p->a, k.s, k.n);
			struct cedar_expr *h = make_has(p, acc, ks, (uint32_t)k.n, t.line, t.col);
			res = res ? bin(p, X_AND, res, h, t.line, t.col) : h;
			if (!res || p->cur.t != T_DOT)
				break;
			next(p);
			struct cedar_expr *g = node(p, X_GETATTR, k.line, k.col);
			if (!g)
				return NULL;
			g->a = acc;
			g->name = ks;
			g->nlen = (uint32_t)k.n;
			acc = g;
		}
		return res;
	}
	if (is_kw(&t, "like")) {
		next(p);
		struct cedar_tok k = p->cur;
		if (k.t != T_STR) {
			expected(p, "pattern string after `like`");
			return NULL;
		}
		char *s;
		int16_t *pat;
		long n = unescape(p, &k, &s, &pat);
		if (n < 0)
			return NULL;
		next(p);
		struct cedar_expr *l = node(p, X_LIKE, t.line, t.col);
		if (l) {
			l->a = x;
			l->pat = pat;
			l->n = (uint32_t)n;
		}
		return l;
	}
	if (is_kw(&t, "is")) {
		next(p);
		const char *s;
		size_t n;
		if (parse_path(p, &s, &n, 0))
			return NULL;
		struct cedar_expr *is = node(p, X_IS, t.line, t.col);
		if (!is)
			return NULL;
		size_t cn;
		is->a = x;
		is->name = clean_path(p, s, n, &cn);
		is->nlen = (uint32_t)cn;
		if (is_kw(&p->cur, "in")) {
			struct cedar_tok it = p->cur;
			next(p);
			struct cedar_expr *in = bin(p, X_IN, x, parse_add(p), it.line, it.col);
			return bin(p, X_AND, is, in, t.line, t.col);
		}
		return is;
	}
	return x;
}

static struct cedar_expr *parse_and(struct cedar_lex *p)
{
	struct cedar_expr *x = parse_relation(p);
	while (x && p->cur.t == T_AND) {
		struct cedar_tok t = p->cur;
		next(p);
		x = bin(p, X_AND, x, parse_relation(p), t.line, t.col);
	}
	return x;
}

static struct cedar_expr *parse_or(struct cedar_lex *p)
{
	struct cedar_expr *x = parse_and(p);
	while (x && p->cur.t == T_OR) {
		struct cedar_tok t = p->cur;
		next(p);
		x = bin(p, X_OR, x, parse_and(p), t.line, t.col);
	}
	return x;
}

static struct cedar_expr *parse_expr(struct cedar_lex *p)
{
	struct cedar_tok t = p->cur;
	if (++p->depth > MAX_DEPTH) {
		fail_at(p, t.line, t.col, "%s", "expression nested too deeply");
		return NULL;
	}
	struct cedar_expr *x;
	if (is_kw(&t, "if")) {
		next(p);
		struct cedar_expr *c = parse_expr(p);
		if (!c || !is_kw(&p->cur, "then")) {
			expected(p, "`then`");
			p->depth--;
			return NULL;
		}
		next(p);
		struct cedar_expr *a = parse_expr(p);
		if (!a || !is_kw(&p->cur, "else")) {
			expected(p, "`else`");
			p->depth--;
			return NULL;
		}
		next(p);
		struct cedar_expr *b = parse_expr(p);
		x = b ? node(p, X_IF, t.line, t.col) : NULL;
		if (x) {
			x->a = c;
			x->b = a;
			x->c = b;
		}
	} else {
		x = parse_or(p);
	}
	p->depth--;
	return p->failed ? NULL : x;
}

/* ---- policies ------------------------------------------------------------ */

static int parse_entity_or_slot(struct cedar_lex *p, struct cedar_scope *sc, const char *slot)
{
	sc->uid_at = (struct cedar_pos){p->cur.line, p->cur.col};
	if (p->cur.t == T_SLOT) {
		if (strlen(slot) + 1 != p->cur.n || memcmp(p->cur.s + 1, slot, p->cur.n - 1) != 0) {
			char buf[64];
			fail_at(p, p->cur.line, p->cur.col, "unexpected slot %s here",
				tokname(&p->cur, buf, sizeof(buf)));
			return -1;
		}
		sc->slot = 1;
		next(p);
		return 0;
	}
	if (p->cur.t != T_IDENT) {
		expected(p, slot[0] == 'p' ? "entity or ?principal" : "entity or ?resource");
		return -1;
	}
	sc->uid = parse_entity(p);
	return sc->uid ? 0 : -1;
}

static int parse_scope_var(struct cedar_lex *p, const char *var, struct cedar_scope *sc)
{
	if (!is_kw(&p->cur, var)) {
		char what[32];
		snprintf(what, sizeof(what), "`%s`", var);
		expected(p, what);
		return -1;
	}
	sc->at = (struct cedar_pos){p->cur.line, p->cur.col};
	next(p);
	int is_action = var[0] == 'a';
	if (accept(p, T_EQ)) {
		sc->kind = SC_EQ;
		if (is_action) {
			sc->uid_at = (struct cedar_pos){p->cur.line, p->cur.col};
			sc->uid = parse_entity(p);
			return sc->uid ? 0 : -1;
		}
		return parse_entity_or_slot(p, sc, var);
	}
	if (is_kw(&p->cur, "in")) {
		next(p);
		sc->kind = SC_IN;
		if (!is_action)
			return parse_entity_or_slot(p, sc, var);
		if (accept(p, T_LB)) {
			sc->kind = SC_IN_SET;
			uint32_t cap = 4;
			sc->uids = cedar_alloc(p->a, cap * sizeof(*sc->uids));
			sc->uids_at = cedar_alloc(p->a, cap * sizeof(*sc->uids_at));
			while (sc->uids && sc->uids_at && p->cur.t != T_RB) {
				struct cedar_pos at = {p->cur.line, p->cur.col};
				const struct cedar_uid *u = parse_entity(p);
				if (!u)
					return -1;
				if (sc->nuids == cap) {
					const struct cedar_uid **nu = cedar_alloc(p->a, cap * 2 * sizeof(*nu));
					struct cedar_pos *na = cedar_alloc(p->a, cap * 2 * sizeof(*na));
					if (!nu || !na)
						return -1;
					memcpy(nu, sc->uids, cap * sizeof(*nu));
					memcpy(na, sc->uids_at, cap * sizeof(*na));
					sc->uids = nu;
					sc->uids_at = na;
					cap *= 2;
				}
				sc->uids_at[sc->nuids] = at;
				sc->uids[sc->nuids++] = u;
				if (!accept(p, T_COMMA))
					break;
			}
			return expect(p, T_RB, "`]` or `,`") ? 0 : -1;
		}
		sc->uid_at = (struct cedar_pos){p->cur.line, p->cur.col};
		sc->uid = parse_entity(p);
		return sc->uid ? 0 : -1;
	}
	if (is_kw(&p->cur, "is")) {
		if (is_action) {
			fail_at(p, p->cur.line, p->cur.col, "%s", "`is` is not allowed in the action scope");
			return -1;
		}
		next(p);
		const char *s;
		size_t n, cn;
		sc->is_at = (struct cedar_pos){p->cur.line, p->cur.col};
		if (parse_path(p, &s, &n, 0))
			return -1;
		sc->kind = SC_IS;
		sc->is_type = clean_path(p, s, n, &cn);
		sc->is_tlen = (uint32_t)cn;
		if (is_kw(&p->cur, "in")) {
			next(p);
			sc->kind = SC_IS_IN;
			return parse_entity_or_slot(p, sc, var);
		}
		return 0;
	}
	sc->kind = SC_ANY;
	return 0;
}

static struct cedar_policy *parse_policy(struct cedar_lex *p)
{
	struct cedar_policy *pol = cedar_alloc(p->a, sizeof(*pol));
	uint32_t acap = 0;
	if (!pol)
		return NULL;
	pol->line = p->cur.line;
	pol->col = p->cur.col;
	while (p->cur.t == T_AT) {
		next(p);
		struct cedar_tok k = p->cur;
		if (k.t != T_IDENT) {
			expected(p, "annotation name");
			return NULL;
		}
		next(p);
		char *val = "";
		if (accept(p, T_LP)) {
			struct cedar_tok vs = p->cur;
			if (vs.t != T_STR) {
				expected(p, "annotation value string");
				return NULL;
			}
			if (unescape(p, &vs, &val, NULL) < 0)
				return NULL;
			next(p);
			if (!expect(p, T_RP, "`)`"))
				return NULL;
		}
		char *key = cedar_strndup(p->a, k.s, k.n);
		for (uint32_t i = 0; i < pol->nannos; i++)
			if (strcmp(pol->annos[i].key, key) == 0) {
				fail_at(p, k.line, k.col, "duplicate annotation `@%s`", key);
				return NULL;
			}
		if (pol->nannos == acap) {
			acap = acap ? acap * 2 : 4;
			struct cedar_annotation *na = cedar_alloc(p->a, acap * sizeof(*na));
			if (!na)
				return NULL;
			if (pol->nannos)
				memcpy(na, pol->annos, pol->nannos * sizeof(*na));
			pol->annos = na;
		}
		pol->annos[pol->nannos].key = key;
		pol->annos[pol->nannos].val = val;
		pol->nannos++;
	}
	if (is_kw(&p->cur, "permit")) {
		pol->forbid = 0;
	} else if (is_kw(&p->cur, "forbid")) {
		pol->forbid = 1;
	} else {
		expected(p, "`permit`, `forbid` or an annotation");
		return NULL;
	}
	next(p);
	if (!expect(p, T_LP, "`(`") || parse_scope_var(p, "principal", &pol->p) ||
	    !expect(p, T_COMMA, "`,`") || parse_scope_var(p, "action", &pol->a) ||
	    !expect(p, T_COMMA, "`,`") || parse_scope_var(p, "resource", &pol->r) ||
	    !expect(p, T_RP, "`)`"))
		return NULL;
	pol->has_slots = pol->p.slot || pol->r.slot;
	pol->is_template = pol->has_slots;
	while (is_kw(&p->cur, "when") || is_kw(&p->cur, "unless")) {
		struct cedar_tok t = p->cur;
		int unless = is_kw(&t, "unless");
		next(p);
		if (!expect(p, T_LC, "`{`"))
			return NULL;
		if (p->cur.t == T_RC) {
			fail_at(p, p->cur.line, p->cur.col, "%s", "expected an expression, found `}` (empty condition)");
			return NULL;
		}
		struct cedar_expr *c = parse_expr(p);
		if (!c || !expect(p, T_RC, "`}`"))
			return NULL;
		if (unless) {
			struct cedar_expr *n = node(p, X_NOT, t.line, t.col);
			if (!n)
				return NULL;
			n->a = c;
			c = n;
		}
		pol->cond = pol->cond ? bin(p, X_AND, pol->cond, c, t.line, t.col) : c;
		if (!pol->cond)
			return NULL;
	}
	if (!expect(p, T_SEMI, "`;`, `when` or `unless`"))
		return NULL;
	return pol;
}

static void init_parser(struct cedar_lex *p, cedar_arena *a, const char *text, size_t len,
			struct cedar_err *err)
{
	memset(p, 0, sizeof(*p));
	p->src = text;
	p->len = len;
	p->line = 1;
	p->col = 1;
	p->a = a;
	p->err = err;
	next(p);
}

int cedar_parse_policies(cedar_arena *a, const char *text, size_t len,
			 struct cedar_policy ***out, size_t *n_out, struct cedar_err *err)
{
	struct cedar_lex p;
	size_t cap = 8, n = 0;
	struct cedar_policy **v = cedar_alloc(a, cap * sizeof(*v));
	if (!v) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return CEDAR_E_NOMEM;
	}
	init_parser(&p, a, text, len, err);
	while (!p.failed && p.cur.t != T_EOF) {
		struct cedar_policy *pol = parse_policy(&p);
		if (!pol)
			break;
		if (n == cap) {
			struct cedar_policy **nv = cedar_alloc(a, cap * 2 * sizeof(*nv));
			if (!nv)
				break;
			memcpy(nv, v, cap * sizeof(*nv));
			v = nv;
			cap *= 2;
		}
		v[n++] = pol;
	}
	if (p.failed || p.cur.t != T_EOF) {
		if (!p.failed)
			cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return err && err->code ? err->code : CEDAR_E_PARSE;
	}
	*out = v;
	*n_out = n;
	return 0;
}

int cedar_parse_expr(cedar_arena *a, const char *text, size_t len, struct cedar_expr **out,
		     struct cedar_err *err)
{
	struct cedar_lex p;
	init_parser(&p, a, text, len, err);
	struct cedar_expr *x = parse_expr(&p);
	if (x && p.cur.t != T_EOF)
		expected(&p, "end of expression");
	if (!x || p.failed) {
		if (!p.failed)
			cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return err && err->code ? err->code : CEDAR_E_PARSE;
	}
	*out = x;
	return 0;
}

/* ---- the lexer for the schema parser ------------------------------------ */

void cedar_lex_init(struct cedar_lex *p, cedar_arena *a, const char *text, size_t len,
		    struct cedar_err *err)
{
	init_parser(p, a, text, len, err);
}

void cedar_lex_next(struct cedar_lex *p)
{
	next(p);
}

int cedar_lex_is_kw(const struct cedar_tok *t, const char *kw)
{
	return is_kw(t, kw);
}

void cedar_lex_fail(struct cedar_lex *p, int line, int col, const char *what)
{
	fail_at(p, line, col, "%s", what);
}

void cedar_lex_expected(struct cedar_lex *p, const char *what)
{
	expected(p, what);
}

long cedar_lex_string(struct cedar_lex *p, const struct cedar_tok *t, char **out)
{
	return unescape(p, t, out, NULL);
}
