/* Cedar values: total order (for canonical sets and structural equality),
 * cloning, and the public value-building API. */
#include "authz/cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>

uint64_t cedar_hash(const void *p, size_t n, uint64_t seed)
{
	/* Eight bytes at a time, each word mixed by a multiply-xorshift;
	 * only the engine's own tables use it. */
	const unsigned char *s = p;
	uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
		h ^= h >> 31;
		s += 8;
		n -= 8;
	}
	uint64_t w = 0;
	for (size_t i = 0; i < n; i++)
		w |= (uint64_t)s[i] << (8 * i);
	h = (h ^ w) * 0x94D049BB133111EBull;
	return h ^ (h >> 29);
}

_Static_assert(sizeof(struct cedar_value) <= 64 && sizeof(struct cedar_field) <= 64,
	       "cedar_sort swaps through a 64-byte buffer");

/* In-place heapsort: no allocation, whatever the size (glibc's qsort may
 * call malloc for large arrays, and the request path must not). */
void cedar_sort(void *base, size_t n, size_t sz, int (*cmp)(const void *, const void *))
{
	unsigned char *b = base, tmp[64];
	if (n < 2 || sz > sizeof(tmp))
		return;
#define EL(i) (b + (i) * sz)
#define SWAP(i, j) (memcpy(tmp, EL(i), sz), memcpy(EL(i), EL(j), sz), memcpy(EL(j), tmp, sz))
	for (size_t start = n / 2; start-- > 0;) {
		for (size_t r = start;;) {
			size_t c = 2 * r + 1;
			if (c >= n)
				break;
			if (c + 1 < n && cmp(EL(c), EL(c + 1)) < 0)
				c++;
			if (cmp(EL(r), EL(c)) >= 0)
				break;
			SWAP(r, c);
			r = c;
		}
	}
	for (size_t end = n - 1; end > 0; end--) {
		SWAP(0, end);
		for (size_t r = 0;;) {
			size_t c = 2 * r + 1;
			if (c >= end)
				break;
			if (c + 1 < end && cmp(EL(c), EL(c + 1)) < 0)
				c++;
			if (cmp(EL(r), EL(c)) >= 0)
				break;
			SWAP(r, c);
			r = c;
		}
	}
#undef SWAP
#undef EL
}

/* An entity type is a Cedar name, Ident(::Ident)*, with no whitespace
 * and no reserved word among its parts (as the reference refuses it in
 * JSON), so a type read from JSON or built in C is one a policy can name. */
static bool reserved_ident(const char *s, size_t n)
{
	switch (n) {
	case 2: return (s[0] == 'i' && (s[1] == 'f' || s[1] == 'n' || s[1] == 's'));
	case 3: return memcmp(s, "has", 3) == 0;
	case 4: return !memcmp(s, "true", 4) || !memcmp(s, "then", 4) || !memcmp(s, "else", 4) ||
		       !memcmp(s, "like", 4);
	case 5: return memcmp(s, "false", 5) == 0;
	case 7: return memcmp(s, "__cedar", 7) == 0;
	default: return false;
	}
}

static inline bool ident_ch(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

bool cedar_type_name_ok(const char *s, size_t n)
{
	size_t i = 0;
	for (;;) {
		size_t st = i;
		if (i >= n || !ident_ch(s[i], true))
			return false;
		while (i < n && ident_ch(s[i], false))
			i++;
		if (reserved_ident(s + st, i - st))
			return false;
		if (i == n)
			return true;
		if (i + 2 > n || s[i] != ':' || s[i + 1] != ':')
			return false;
		i += 2;
	}
}

struct cedar_uid *cedar_uid_make(cedar_arena *a, const char *type, size_t tlen,
				 const char *id, size_t idlen)
{
	struct cedar_uid *u = cedar_alloc_raw(a, sizeof(*u) + tlen + idlen + 2);
	if (!u)
		return NULL;
	char *t = (char *)(u + 1);
	memcpy(t, type, tlen);
	t[tlen] = 0;
	char *i = t + tlen + 1;
	if (idlen)
		memcpy(i, id, idlen);
	i[idlen] = 0;
	u->type = t;
	u->id = i;
	u->tlen = (uint32_t)tlen;
	u->idlen = (uint32_t)idlen;
	u->hash = cedar_hash(i, idlen, cedar_hash(t, tlen, 0));
	return u;
}

int cedar_keycmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	uint32_t m = alen < blen ? alen : blen;
	int c = cedar_bytes_cmp(a, b, m);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int uidcmp(const struct cedar_uid *x, const struct cedar_uid *y)
{
	if (x == y)
		return 0;
	int c = cedar_keycmp(x->type, x->tlen, y->type, y->tlen);
	if (c)
		return c;
	return cedar_keycmp(x->id, x->idlen, y->id, y->idlen);
}

int cedar_vcmp(const struct cedar_value *x, const struct cedar_value *y)
{
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	switch (x->kind) {
	case CV_BOOL: case CV_LONG: case CV_DECIMAL: case CV_DATETIME: case CV_DURATION:
		return x->u.i < y->u.i ? -1 : x->u.i > y->u.i;
	case CV_STRING:
		return cedar_keycmp(x->u.s, x->n, y->u.s, y->n);
	case CV_ENTITY:
		return uidcmp(x->u.uid, y->u.uid);
	case CV_SET:
		if (x->n != y->n)
			return x->n < y->n ? -1 : 1;
		for (uint32_t i = 0; i < x->n; i++) {
			int c = cedar_vcmp(&x->u.items[i], &y->u.items[i]);
			if (c)
				return c;
		}
		return 0;
	case CV_RECORD:
		if (x->n != y->n)
			return x->n < y->n ? -1 : 1;
		for (uint32_t i = 0; i < x->n; i++) {
			const struct cedar_field *f = &x->u.fields[i], *g = &y->u.fields[i];
			int c = cedar_keycmp(f->key, f->klen, g->key, g->klen);
			if (c)
				return c;
			c = cedar_vcmp(&f->v, &g->v);
			if (c)
				return c;
		}
		return 0;
	case CV_IP: {
		if (x->ip6 != y->ip6)
			return x->ip6 < y->ip6 ? -1 : 1;
		int c = memcmp(x->u.ip, y->u.ip, 16);
		if (c)
			return c;
		return x->ippre < y->ippre ? -1 : x->ippre > y->ippre;
	}
	}
	return 0;
}

static int vcmp_q(const void *a, const void *b)
{
	return cedar_vcmp(a, b);
}

uint32_t cedar_set_normalize(struct cedar_value *items, uint32_t n)
{
	if (n < 2)
		return n;
	if (n <= 16) {
		/* Small sets (the common case) sort faster in place. */
		for (uint32_t i = 1; i < n; i++) {
			struct cedar_value t = items[i];
			uint32_t j = i;
			for (; j > 0 && cedar_vcmp(&items[j - 1], &t) > 0; j--)
				items[j] = items[j - 1];
			items[j] = t;
		}
	} else {
		cedar_sort(items, n, sizeof(*items), vcmp_q);
	}
	uint32_t w = 1;
	for (uint32_t i = 1; i < n; i++)
		if (cedar_vcmp(&items[w - 1], &items[i]) != 0)
			items[w++] = items[i];
	return w;
}

static int fcmp_q(const void *a, const void *b)
{
	const struct cedar_field *f = a, *g = b;
	return cedar_keycmp(f->key, f->klen, g->key, g->klen);
}

int cedar_record_normalize(struct cedar_field *f, uint32_t n)
{
	if (n < 2)
		return 0;
	if (n <= 16) {
		for (uint32_t i = 1; i < n; i++) {
			struct cedar_field t = f[i];
			uint32_t j = i;
			for (; j > 0 && fcmp_q(&f[j - 1], &t) > 0; j--)
				f[j] = f[j - 1];
			f[j] = t;
		}
	} else {
		cedar_sort(f, n, sizeof(*f), fcmp_q);
	}
	for (uint32_t i = 1; i < n; i++)
		if (fcmp_q(&f[i - 1], &f[i]) == 0)
			return -1;
	return 0;
}

const struct cedar_value *cedar_record_get(const struct cedar_value *rec, const char *k,
					   uint32_t klen)
{
	uint32_t lo = 0, hi = rec->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		const struct cedar_field *f = &rec->u.fields[mid];
		int c = cedar_keycmp(f->key, f->klen, k, klen);
		if (c == 0)
			return &f->v;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool cedar_set_contains(const struct cedar_value *set, const struct cedar_value *v)
{
	uint32_t lo = 0, hi = set->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		int c = cedar_vcmp(&set->u.items[mid], v);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

int cedar_value_clone(cedar_arena *a, struct cedar_value *dst, const struct cedar_value *src)
{
	*dst = *src;
	dst->cap = 0;
	switch (src->kind) {
	case CV_STRING:
		dst->u.s = cedar_strndup(a, src->u.s, src->n);
		return dst->u.s ? 0 : -1;
	case CV_ENTITY:
		dst->u.uid = cedar_uid_make(a, src->u.uid->type, src->u.uid->tlen,
					    src->u.uid->id, src->u.uid->idlen);
		return dst->u.uid ? 0 : -1;
	case CV_SET:
		dst->u.items = cedar_alloc(a, sizeof(struct cedar_value) * (src->n ? src->n : 1));
		if (!dst->u.items)
			return -1;
		for (uint32_t i = 0; i < src->n; i++)
			if (cedar_value_clone(a, &dst->u.items[i], &src->u.items[i]))
				return -1;
		return 0;
	case CV_RECORD:
		dst->u.fields = cedar_alloc(a, sizeof(struct cedar_field) * (src->n ? src->n : 1));
		if (!dst->u.fields)
			return -1;
		for (uint32_t i = 0; i < src->n; i++) {
			struct cedar_field *f = &dst->u.fields[i];
			f->key = cedar_strndup(a, src->u.fields[i].key, src->u.fields[i].klen);
			f->klen = src->u.fields[i].klen;
			if (!f->key || cedar_value_clone(a, &f->v, &src->u.fields[i].v))
				return -1;
		}
		return 0;
	}
	return 0;
}

/* ---- public builders ------------------------------------------------- */

static cedar_value *newval(cedar_arena *a, int kind)
{
	if (!a)
		return NULL;
	cedar_value *v = cedar_alloc(a, sizeof(*v));
	if (v)
		v->kind = (uint8_t)kind;
	return v;
}

cedar_value *cedar_value_bool(cedar_arena *a, int b)
{
	cedar_value *v = newval(a, CV_BOOL);
	if (v)
		v->u.i = b ? 1 : 0;
	return v;
}

cedar_value *cedar_value_long(cedar_arena *a, int64_t i)
{
	cedar_value *v = newval(a, CV_LONG);
	if (v)
		v->u.i = i;
	return v;
}

cedar_value *cedar_value_string(cedar_arena *a, const char *s, size_t len)
{
	if (!s)
		return NULL;
	if (len == (size_t)-1)
		len = strlen(s);
	if (len > UINT32_MAX)
		return NULL;
	cedar_value *v = newval(a, CV_STRING);
	if (!v)
		return NULL;
	v->u.s = cedar_strndup(a, s, len);
	v->n = (uint32_t)len;
	return v->u.s ? v : NULL;
}

cedar_value *cedar_value_entity(cedar_arena *a, const char *type, const char *id)
{
	if (!type || !id || !cedar_type_name_ok(type, strlen(type)))
		return NULL;
	cedar_value *v = newval(a, CV_ENTITY);
	if (!v)
		return NULL;
	v->u.uid = cedar_uid_make(a, type, strlen(type), id, strlen(id));
	return v->u.uid ? v : NULL;
}

cedar_value *cedar_value_set_new(cedar_arena *a)
{
	return newval(a, CV_SET);
}

cedar_value *cedar_value_record_new(cedar_arena *a)
{
	return newval(a, CV_RECORD);
}

static int grow(cedar_arena *a, void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
	if (n < *cap)
		return 0;
	uint32_t nc = *cap ? *cap * 2 : 4;
	void *p = cedar_alloc(a, elem * nc);
	if (!p)
		return -1;
	if (n)
		memcpy(p, *arr, elem * n);
	*arr = p;
	*cap = nc;
	return 0;
}

int cedar_value_set_add(cedar_arena *a, cedar_value *set, const cedar_value *v,
			struct cedar_err *err)
{
	if (!set || set->kind != CV_SET || !v) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "set_add: not a set or no value");
		return CEDAR_E_INPUT;
	}
	/* Keep the set canonical (sorted, unique) after every insertion. */
	uint32_t pos = 0;
	while (pos < set->n) {
		int c = cedar_vcmp(&set->u.items[pos], v);
		if (c == 0)
			return 0;
		if (c > 0)
			break;
		pos++;
	}
	void *arr = set->u.items;
	if (grow(a, &arr, set->n, &set->cap, sizeof(struct cedar_value)))
		goto nomem;
	set->u.items = arr;
	memmove(&set->u.items[pos + 1], &set->u.items[pos],
		(set->n - pos) * sizeof(struct cedar_value));
	if (cedar_value_clone(a, &set->u.items[pos], v))
		goto nomem;
	set->n++;
	return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

int cedar_value_record_set(cedar_arena *a, cedar_value *rec, const char *key,
			   const cedar_value *v, struct cedar_err *err)
{
	if (!rec || rec->kind != CV_RECORD || !key || !v) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "record_set: not a record, key or value");
		return CEDAR_E_INPUT;
	}
	size_t kl = strlen(key);
	uint32_t pos = 0;
	while (pos < rec->n) {
		const struct cedar_field *f = &rec->u.fields[pos];
		int c = cedar_keycmp(f->key, f->klen, key, (uint32_t)kl);
		if (c == 0)
			return cedar_value_clone(a, &rec->u.fields[pos].v, v) ? CEDAR_E_NOMEM : 0;
		if (c > 0)
			break;
		pos++;
	}
	void *arr = rec->u.fields;
	if (grow(a, &arr, rec->n, &rec->cap, sizeof(struct cedar_field)))
		goto nomem;
	rec->u.fields = arr;
	memmove(&rec->u.fields[pos + 1], &rec->u.fields[pos],
		(rec->n - pos) * sizeof(struct cedar_field));
	struct cedar_field *f = &rec->u.fields[pos];
	f->key = cedar_strndup(a, key, kl);
	f->klen = (uint32_t)kl;
	if (!f->key || cedar_value_clone(a, &f->v, v))
		goto nomem;
	rec->n++;
	return 0;
nomem:
	cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
	return CEDAR_E_NOMEM;
}

cedar_value *cedar_value_extension(cedar_arena *a, const char *fn, const char *arg,
				   struct cedar_err *err)
{
	int is_method = 0, arity = 0;
	if (!fn || !arg) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "extension: missing function or argument");
		return NULL;
	}
	enum cedar_ext_fn f = cedar_ext_lookup(fn, strlen(fn), &is_method, &arity);
	if (f < EF_DECIMAL || f > EF_DURATION) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "unknown extension constructor `%s`", fn);
		return NULL;
	}
	cedar_value *s = cedar_value_string(a, arg, (size_t)-1);
	cedar_value *v = newval(a, CV_BOOL);
	if (!s || !v) {
		cedar_set_err(err, CEDAR_E_NOMEM, 0, 0, "out of memory");
		return NULL;
	}
	if (cedar_ext_call(f, s, 1, v) != 0) {
		cedar_set_err(err, CEDAR_E_INPUT, 0, 0, "invalid %s literal \"%s\"", fn, arg);
		return NULL;
	}
	return v;
}

int cedar_value_equal(const cedar_value *x, const cedar_value *y)
{
	return x && y && cedar_vcmp(x, y) == 0;
}

/* ---- rendering --------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		while (nc < b->n + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_quoted(struct sbuf *b, const char *s, size_t n)
{
	sb_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[16];
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			sb_add(b, tmp, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\u{%x}", c);
			sb_str(b, tmp);
		} else {
			sb_add(b, (const char *)&c, 1);
		}
	}
	sb_add(b, "\"", 1);
}

static void render(struct sbuf *b, const struct cedar_value *v)
{
	char tmp[96];
	switch (v->kind) {
	case CV_BOOL:
		sb_str(b, v->u.i ? "true" : "false");
		break;
	case CV_LONG:
		snprintf(tmp, sizeof(tmp), "%lld", (long long)v->u.i);
		sb_str(b, tmp);
		break;
	case CV_STRING:
		sb_quoted(b, v->u.s, v->n);
		break;
	case CV_ENTITY:
		sb_add(b, v->u.uid->type, v->u.uid->tlen);
		sb_str(b, "::");
		sb_quoted(b, v->u.uid->id, v->u.uid->idlen);
		break;
	case CV_SET:
		sb_str(b, "[");
		for (uint32_t i = 0; i < v->n; i++) {
			if (i)
				sb_str(b, ", ");
			render(b, &v->u.items[i]);
		}
		sb_str(b, "]");
		break;
	case CV_RECORD:
		sb_str(b, "{");
		for (uint32_t i = 0; i < v->n; i++) {
			if (i)
				sb_str(b, ", ");
			sb_quoted(b, v->u.fields[i].key, v->u.fields[i].klen);
			sb_str(b, ": ");
			render(b, &v->u.fields[i].v);
		}
		sb_str(b, "}");
		break;
	case CV_DECIMAL: {
		int64_t d = v->u.i;
		uint64_t m = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
		snprintf(tmp, sizeof(tmp), "decimal(\"%s%llu.%04llu\")", d < 0 ? "-" : "",
			 (unsigned long long)(m / 10000), (unsigned long long)(m % 10000));
		sb_str(b, tmp);
		break;
	}
	case CV_IP:
		if (!v->ip6) {
			snprintf(tmp, sizeof(tmp), "ip(\"%u.%u.%u.%u/%u\")", v->u.ip[12], v->u.ip[13],
				 v->u.ip[14], v->u.ip[15], v->ippre);
		} else {
			int o = snprintf(tmp, sizeof(tmp), "ip(\"");
			for (int i = 0; i < 8; i++)
				o += snprintf(tmp + o, sizeof(tmp) - (size_t)o, "%s%x", i ? ":" : "",
					      (v->u.ip[2 * i] << 8) | v->u.ip[2 * i + 1]);
			snprintf(tmp + o, sizeof(tmp) - (size_t)o, "/%u\")", v->ippre);
		}
		sb_str(b, tmp);
		break;
	case CV_DATETIME:
		snprintf(tmp, sizeof(tmp), "datetime(%lldms)", (long long)v->u.i);
		sb_str(b, tmp);
		break;
	case CV_DURATION:
		snprintf(tmp, sizeof(tmp), "duration(\"%lldms\")", (long long)v->u.i);
		sb_str(b, tmp);
		break;
	}
}

const char *cedar_value_to_string(cedar_arena *a, const cedar_value *v)
{
	struct sbuf b = {0};
	if (!v)
		return NULL;
	render(&b, v);
	const char *r = b.oom || !b.p ? NULL : cedar_strndup(a, b.p, b.n);
	free(b.p);
	return r;
}
