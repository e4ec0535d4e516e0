/* A small JSON reader for Cedar's entity/value formats. jansson rejects
 * object keys containing U+0000, which Cedar allows in attribute names, so
 * Cedar JSON is read here into an arena DOM with length-counted strings;
 * integers are exact int64 and anything else numeric is rejected. */
#include "authz/cedar/cedar_int.h"

#include <stdlib.h>


int cedar_jrd_fail(struct cedar_jrd *r, const char *what)
{
	size_t line = 1, col = 1;
	for (size_t i = 0; i < r->pos && i < r->n; i++) {
		if (r->s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	cedar_set_err(r->err, CEDAR_E_PARSE, (int)line, (int)col, "JSON %zu:%zu: %s", line, col, what);
	return -1;
}


static int hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (h < 0)
			return -1;
		v = v * 16 + (uint32_t)h;
	}
	*out = v;
	return 0;
}

/* Bytes that end a run of plain string content: quote, backslash, control. */
static const unsigned char jspecial[256] = {
	[0 ... 0x1F] = 1, ['"'] = 1, ['\\'] = 1,
};

int cedar_jrd_string(struct cedar_jrd *r, const char **out, uint32_t *outn)
{
	r->pos++;   /* opening quote */
	size_t start = r->pos, len = 0;
	/* One scan finds the end, refuses control characters and notes
	 * whether there is anything to unescape; most strings have nothing. */
	size_t end = start;
	int esc = 0;
	const unsigned char *u = (const unsigned char *)r->s;
	/* Fast path: the next quote (memchr is vectorised), then one pass
	 * over the span that compiles to vector compares. */
	const unsigned char *q = memchr(u + start, '"', r->n - start);
	if (q) {
		size_t qn = (size_t)(q - u) - start, i = 0;
		uint64_t hit = 0;
		/* Eight bytes at a time: a zero byte of w ^ '\\'*8 is a
		 * backslash, a byte below 0x20 a control character. */
		for (; i + 8 <= qn; i += 8) {
			uint64_t w, b;
			memcpy(&w, u + start + i, 8);
			b = w ^ 0x5C5C5C5C5C5C5C5Cull;
			hit |= ((b - 0x0101010101010101ull) & ~b) | ((w - 0x2020202020202020ull) & ~w);
		}
		int bad = (hit & 0x8080808080808080ull) != 0;
		for (; i < qn; i++)
			bad |= (u[start + i] < 0x20) | (u[start + i] == '\\');
		if (!bad) {
			end = start + qn;
			char *o = cedar_alloc_raw(r->a, qn + 1);
			if (!o)
				return cedar_jrd_fail(r, "out of memory");
			memcpy(o, u + start, qn);
			o[qn] = 0;
			*out = o;
			*outn = (uint32_t)qn;
			r->pos = end + 1;
			return 0;
		}
	}
	while (end < r->n) {
		unsigned char c = u[end];
		if (!jspecial[c]) {
			end++;
			continue;
		}
		if (c == '"')
			break;
		if (c == '\\') {
			esc = 1;
			end += 2;
			continue;
		}
		if (c < 0x20) {
			r->pos = end;
			return cedar_jrd_fail(r, "control character in string");
		}
		end++;
	}
	if (end >= r->n)
		return cedar_jrd_fail(r, "unterminated string");
	char *o = cedar_alloc_raw(r->a, end - start + 1);
	if (!o)
		return cedar_jrd_fail(r, "out of memory");
	if (!esc) {
		memcpy(o, r->s + start, end - start);
		o[end - start] = 0;
		*out = o;
		*outn = (uint32_t)(end - start);
		r->pos = end + 1;
		return 0;
	}
	while (r->pos < end) {
		unsigned char c = (unsigned char)r->s[r->pos];
		if (c != '\\') {
			o[len++] = (char)c;
			r->pos++;
			continue;
		}
		char e = r->s[r->pos + 1];
		r->pos += 2;
		switch (e) {
		case '"': o[len++] = '"'; break;
		case '\\': o[len++] = '\\'; break;
		case '/': o[len++] = '/'; break;
		case 'b': o[len++] = '\b'; break;
		case 'f': o[len++] = '\f'; break;
		case 'n': o[len++] = '\n'; break;
		case 'r': o[len++] = '\r'; break;
		case 't': o[len++] = '\t'; break;
		case 'u': {
			uint32_t cp, lo;
			if (r->pos + 4 > end || hex4(r->s + r->pos, &cp))
				return cedar_jrd_fail(r, "bad \\u escape");
			r->pos += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (r->pos + 6 > end || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u' ||
				    hex4(r->s + r->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
					return cedar_jrd_fail(r, "unpaired surrogate in string");
				r->pos += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				return cedar_jrd_fail(r, "unpaired surrogate in string");
			}
			if (cp < 0x80) {
				o[len++] = (char)cp;
			} else if (cp < 0x800) {
				o[len++] = (char)(0xC0 | (cp >> 6));
				o[len++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				o[len++] = (char)(0xE0 | (cp >> 12));
				o[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				o[len++] = (char)(0x80 | (cp & 0x3F));
			} else {
				o[len++] = (char)(0xF0 | (cp >> 18));
				o[len++] = (char)(0x80 | ((cp >> 12) & 0x3F));
				o[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				o[len++] = (char)(0x80 | (cp & 0x3F));
			}
			break;
		}
		default:
			return cedar_jrd_fail(r, "bad escape in string");
		}
	}
	r->pos = end + 1;
	o[len] = 0;
	*out = o;
	*outn = (uint32_t)len;
	return 0;
}

int cedar_jrd_value(struct cedar_jrd *r, struct cedar_jv *v)
{
	cedar_jrd_ws(r);
	memset(v, 0, sizeof(*v));
	if (r->pos >= r->n)
		return cedar_jrd_fail(r, "unexpected end of input");
	if (++r->depth > 512)
		return cedar_jrd_fail(r, "nested too deeply");
	char c = r->s[r->pos];
	int rc = 0;
	if (c == '"') {
		v->t = JV_STR;
		rc = cedar_jrd_string(r, &v->s, &v->n);
	} else if (c == '{' || c == '[') {
		int obj = c == '{';
		uint32_t cap = 0;
		size_t start = r->pos;
		v->t = obj ? JV_OBJ : JV_ARR;
		v->s = r->s + start;
		r->pos++;
		cedar_jrd_ws(r);
		if (r->pos < r->n && r->s[r->pos] == (obj ? '}' : ']')) {
			r->pos++;
			goto done;
		}
		for (;;) {
			if (v->n == cap) {
				uint32_t nc = cap ? cap * 2 : 4;
				/* Filled before use: items by jvalue, keys by jstring. */
				struct cedar_jv *ni = cedar_alloc_raw(r->a, nc * sizeof(*ni));
				const char **nk = obj ? cedar_alloc_raw(r->a, nc * sizeof(*nk)) : NULL;
				uint32_t *nl = obj ? cedar_alloc_raw(r->a, nc * sizeof(*nl)) : NULL;
				if (!ni || (obj && (!nk || !nl)))
					return cedar_jrd_fail(r, "out of memory");
				if (v->n) {
					memcpy(ni, v->items, v->n * sizeof(*ni));
					if (obj) {
						memcpy(nk, v->keys, v->n * sizeof(*nk));
						memcpy(nl, v->klens, v->n * sizeof(*nl));
					}
				}
				v->items = ni;
				v->keys = nk;
				v->klens = nl;
				cap = nc;
			}
			if (obj) {
				cedar_jrd_ws(r);
				if (r->pos >= r->n || r->s[r->pos] != '"')
					return cedar_jrd_fail(r, "expected object key");
				if (cedar_jrd_string(r, &v->keys[v->n], &v->klens[v->n]))
					return -1;
				cedar_jrd_ws(r);
				if (r->pos >= r->n || r->s[r->pos] != ':')
					return cedar_jrd_fail(r, "expected `:`");
				r->pos++;
			}
			if (cedar_jrd_value(r, &v->items[v->n]))
				return -1;
			v->n++;
			cedar_jrd_ws(r);
			if (r->pos < r->n && r->s[r->pos] == ',') {
				r->pos++;
				continue;
			}
			if (r->pos < r->n && r->s[r->pos] == (obj ? '}' : ']')) {
				r->pos++;
				break;
			}
			return cedar_jrd_fail(r, obj ? "expected `,` or `}`" : "expected `,` or `]`");
		}
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		size_t st = r->pos;
		int neg = c == '-';
		if (neg)
			r->pos++;
		uint64_t m = 0;
		int nd = 0, big = 0;
		while (r->pos < r->n && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') {
			uint64_t d = (uint64_t)(r->s[r->pos] - '0');
			if (m > (UINT64_MAX - d) / 10)
				big = 1;
			else
				m = m * 10 + d;
			nd++;
			r->pos++;
		}
		if (nd == 0)
			return cedar_jrd_fail(r, "bad number");
		if (r->pos < r->n && (r->s[r->pos] == '.' || r->s[r->pos] == 'e' || r->s[r->pos] == 'E')) {
			r->pos = st;
			return cedar_jrd_fail(r, "non-integer numbers are not Cedar values");
		}
		if (big || m > (uint64_t)INT64_MAX + (uint64_t)neg) {
			r->pos = st;
			return cedar_jrd_fail(r, "integer out of the 64-bit range");
		}
		v->t = JV_INT;
		v->i = neg ? (int64_t)(0 - m) : (int64_t)m;
	} else if (r->n - r->pos >= 4 && !memcmp(r->s + r->pos, "true", 4)) {
		v->t = JV_TRUE;
		r->pos += 4;
	} else if (r->n - r->pos >= 5 && !memcmp(r->s + r->pos, "false", 5)) {
		v->t = JV_FALSE;
		r->pos += 5;
	} else if (r->n - r->pos >= 4 && !memcmp(r->s + r->pos, "null", 4)) {
		v->t = JV_NULL;
		r->pos += 4;
	} else {
		return cedar_jrd_fail(r, "expected a JSON value");
	}
done:
	if (v->t == JV_OBJ || v->t == JV_ARR)
		v->i = (int64_t)(r->pos - (size_t)(v->s - r->s));
	r->depth--;
	return rc;
}

int cedar_jv_parse(cedar_arena *a, const char *text, size_t len, struct cedar_jv *out,
		   struct cedar_err *err)
{
	struct cedar_jrd r = {.s = text, .n = len, .a = a, .err = err};
	if (cedar_jrd_value(&r, out))
		return CEDAR_E_PARSE;
	cedar_jrd_ws(&r);
	if (r.pos != r.n) {
		cedar_jrd_fail(&r, "trailing characters after JSON value");
		return CEDAR_E_PARSE;
	}
	return 0;
}

const struct cedar_jv *cedar_jv_get(const struct cedar_jv *o, const char *key)
{
	if (!o || o->t != JV_OBJ)
		return NULL;
	size_t kl = strlen(key);
	for (uint32_t i = 0; i < o->n; i++)
		if (o->klens[i] == kl && memcmp(o->keys[i], key, kl) == 0)
			return &o->items[i];
	return NULL;
}
