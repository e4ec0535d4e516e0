/* Extension types: decimal, ipaddr, datetime, duration. The parsers follow
 * the Lean specification's acceptance rules exactly, since a string that one
 * implementation accepts and another rejects changes authorization results. */
#include "authz/cedar/cedar_int.h"

static const struct {
	const char *name;
	enum cedar_ext_fn fn;
	int method, arity;   /* arity counts the receiver for methods */
} exts[] = {
	{"decimal", EF_DECIMAL, 0, 1}, {"ip", EF_IP, 0, 1},
	{"datetime", EF_DATETIME, 0, 1}, {"duration", EF_DURATION, 0, 1},
	{"lessThan", EF_LESSTHAN, 1, 2}, {"lessThanOrEqual", EF_LESSTHANOREQUAL, 1, 2},
	{"greaterThan", EF_GREATERTHAN, 1, 2},
	{"greaterThanOrEqual", EF_GREATERTHANOREQUAL, 1, 2},
	{"isIpv4", EF_ISIPV4, 1, 1}, {"isIpv6", EF_ISIPV6, 1, 1},
	{"isLoopback", EF_ISLOOPBACK, 1, 1}, {"isMulticast", EF_ISMULTICAST, 1, 1},
	{"isInRange", EF_ISINRANGE, 1, 2},
	{"offset", EF_OFFSET, 1, 2}, {"durationSince", EF_DURATIONSINCE, 1, 2},
	{"toDate", EF_TODATE, 1, 1}, {"toTime", EF_TOTIME, 1, 1},
	{"toMilliseconds", EF_TOMILLISECONDS, 1, 1}, {"toSeconds", EF_TOSECONDS, 1, 1},
	{"toMinutes", EF_TOMINUTES, 1, 1}, {"toHours", EF_TOHOURS, 1, 1},
	{"toDays", EF_TODAYS, 1, 1},
};

enum cedar_ext_fn cedar_ext_lookup(const char *name, size_t len, int *is_method, int *arity)
{
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
		if (strlen(exts[i].name) == len && memcmp(exts[i].name, name, len) == 0) {
			*is_method = exts[i].method;
			*arity = exts[i].arity;
			return exts[i].fn;
		}
	return EF_NONE;
}

static int isdig(char c)
{
	return c >= '0' && c <= '9';
}

/* Unsigned digits (non-empty, all digits) into an __int128; -1 if too big. */
static int digits128(const char *s, size_t n, __int128 *out)
{
	__int128 v = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdig(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > ((__int128)1 << 100))
			return -1;
	}
	*out = v;
	return 0;
}

int cedar_parse_decimal(const char *s, size_t n, int64_t *out)
{
	const char *dot = memchr(s, '.', n);
	if (!dot || memchr(dot + 1, '.', n - (size_t)(dot + 1 - s)))
		return -1;
	const char *l = s;
	size_t ll = (size_t)(dot - s);
	const char *r = dot + 1;
	size_t rl = n - ll - 1;
	if (rl == 0 || rl > 4)
		return -1;
	int neg = 0;
	if (ll && l[0] == '-') {
		neg = 1;
		l++;
		ll--;
	}
	__int128 lv, rv;
	if (digits128(l, ll, &lv) || digits128(r, rl, &rv))
		return -1;
	for (size_t i = rl; i < 4; i++)
		rv *= 10;
	__int128 v = lv * 10000 + rv;
	if (neg)
		v = -v;
	if (v > INT64_MAX || v < INT64_MIN)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* A decimal number without leading zeros (except "0"), at most maxd digits. */
static int small_num(const char *s, size_t n, size_t maxd, unsigned limit, unsigned *out)
{
	if (n == 0 || n > maxd || (s[0] == '0' && n > 1))
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdig(s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > limit)
		return -1;
	*out = v;
	return 0;
}

static int parse_v4(const char *s, size_t n, uint8_t addr[4])
{
	size_t start = 0;
	int seg = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			unsigned v;
			if (seg >= 4 || small_num(s + start, i - start, 3, 255, &v))
				return -1;
			addr[seg++] = (uint8_t)v;
			start = i + 1;
		}
	}
	return seg == 4 ? 0 : -1;
}

/* Colon-separated hex groups; empty string is zero groups. */
static int v6_groups(const char *s, size_t n, uint16_t *g, int max)
{
	int cnt = 0;
	if (n == 0)
		return 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == ':') {
			size_t len = i - start;
			if (len == 0 || len > 4 || cnt >= max)
				return -1;
			unsigned v = 0;
			for (size_t k = start; k < i; k++) {
				int h = gh_hex_digit(s[k]);
				if (h < 0)
					return -1;
				v = v * 16 + (unsigned)h;
			}
			g[cnt++] = (uint16_t)v;
			start = i + 1;
		}
	}
	return cnt;
}

static int parse_v6(const char *s, size_t n, uint8_t addr[16])
{
	uint16_t g[8] = {0};
	const char *dc = NULL;
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == ':' && s[i + 1] == ':') {
			dc = s + i;
			break;
		}
	if (!dc) {
		if (v6_groups(s, n, g, 8) != 8)
			return -1;
	} else {
		const char *rest = dc + 2;
		size_t rl = n - (size_t)(rest - s);
		/* A second "::" is not allowed (splitOn gives three parts). */
		for (size_t i = 0; i + 1 < rl; i++)
			if (rest[i] == ':' && rest[i + 1] == ':')
				return -1;
		uint16_t a[8], b[8];
		int na = v6_groups(s, (size_t)(dc - s), a, 8);
		int nb = v6_groups(rest, rl, b, 8);
		if (na < 0 || nb < 0 || na + nb >= 8)
			return -1;
		for (int i = 0; i < na; i++)
			g[i] = a[i];
		for (int i = 0; i < nb; i++)
			g[8 - nb + i] = b[i];
	}
	for (int i = 0; i < 8; i++) {
		addr[2 * i] = (uint8_t)(g[i] >> 8);
		addr[2 * i + 1] = (uint8_t)g[i];
	}
	return 0;
}

int cedar_parse_ip(const char *s, size_t n, struct cedar_value *out)
{
	const char *slash = memchr(s, '/', n);
	size_t al = slash ? (size_t)(slash - s) : n;
	const char *pre = slash ? slash + 1 : NULL;
	size_t pl = slash ? n - al - 1 : 0;
	if (pre && memchr(pre, '/', pl))
		return -1;
	memset(out, 0, sizeof(*out));
	out->kind = CV_IP;
	uint8_t v4[4];
	unsigned p;
	if (parse_v4(s, al, v4) == 0) {
		if (pre) {
			if (small_num(pre, pl, 2, 32, &p))
				goto v6;
		} else {
			p = 32;
		}
		memcpy(out->u.ip + 12, v4, 4);
		out->ippre = (uint8_t)p;
		return 0;
	}
v6:
	memset(out->u.ip, 0, 16);
	if (pre) {
		if (small_num(pre, pl, 3, 128, &p))
			return -1;
	} else {
		p = 128;
	}
	if (parse_v6(s, al, out->u.ip))
		return -1;
	out->ip6 = 1;
	out->ippre = (uint8_t)p;
	return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int fixed_num(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdig(s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int cedar_parse_datetime(const char *s, size_t n, int64_t *out)
{
	unsigned y, mo, d, h = 0, mi = 0, se = 0, ms = 0, oh = 0, om = 0;
	int sign = 0;
	if (n < 10 || s[4] != '-' || s[7] != '-' || fixed_num(s, 4, &y) ||
	    fixed_num(s + 5, 2, &mo) || fixed_num(s + 8, 2, &d))
		return -1;
	if (n > 10) {
		const char *t = s + 10;
		size_t tl = n - 10;
		if (tl < 10 || t[0] != 'T' || t[3] != ':' || t[6] != ':' ||
		    fixed_num(t + 1, 2, &h) || fixed_num(t + 4, 2, &mi) ||
		    fixed_num(t + 7, 2, &se))
			return -1;
		t += 9;
		tl -= 9;
		if (t[0] == '.') {
			if (tl < 5 || fixed_num(t + 1, 3, &ms))
				return -1;
			t += 4;
			tl -= 4;
		}
		if (tl == 1 && t[0] == 'Z') {
			/* UTC */
		} else if (tl == 5 && (t[0] == '+' || t[0] == '-')) {
			if (fixed_num(t + 1, 2, &oh) || fixed_num(t + 3, 2, &om))
				return -1;
			sign = t[0] == '+' ? 1 : -1;
			if (om >= 60 || oh * 3600 + om * 60 >= 86400)
				return -1;
		} else {
			return -1;
		}
	}
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (mo < 1 || mo > 12 || d < 1)
		return -1;
	unsigned md = mdays[mo - 1];
	if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		md = 29;
	if (d > md || h > 23 || mi > 59 || se > 59)
		return -1;
	int64_t days = days_from_civil(y, mo, d);
	int64_t v = days * 86400000 + (int64_t)h * 3600000 + (int64_t)mi * 60000 +
		    (int64_t)se * 1000 + ms;
	v -= (int64_t)sign * ((int64_t)oh * 3600000 + (int64_t)om * 60000);
	*out = v;
	return 0;
}

int cedar_parse_duration(const char *s, size_t n, int64_t *out)
{
	int neg = 0;
	if (n && s[0] == '-') {
		neg = 1;
		s++;
		n--;
	}
	if (n == 0)
		return -1;
	/* Strip quantity-unit pairs from the end, smallest unit first, as
	 * the specification does; each unit appears at most once, in order. */
	static const struct { const char *u; int64_t mult; } units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	__int128 total = 0;
	for (int k = 0; k < 5; k++) {
		size_t ul = strlen(units[k].u);
		if (n < ul || memcmp(s + n - ul, units[k].u, ul) != 0)
			continue;
		size_t end = n - ul, st = end;
		while (st > 0 && isdig(s[st - 1]))
			st--;
		if (st == end)
			return -1;
		__int128 q;
		if (digits128(s + st, end - st, &q))
			return -1;
		if (neg)
			q = -q;
		if (q > INT64_MAX || q < INT64_MIN)
			return -1;
		total += q * units[k].mult;
		n = st;
	}
	if (n != 0 || total > INT64_MAX || total < INT64_MIN)
		return -1;
	*out = (int64_t)total;
	return 0;
}

/* ---- calls ------------------------------------------------------------- */

static void ip_range(const struct cedar_value *v, uint8_t lo[16], uint8_t hi[16])
{
	int width = v->ip6 ? 128 : 32;
	int base = v->ip6 ? 0 : 96;   /* bit offset of the address in u.ip */
	int keep = base + (v->ippre > width ? width : v->ippre);
	for (int bit = 0; bit < 128; bit++) {
		int byte = bit / 8, sh = 7 - bit % 8;
		int val = (v->u.ip[byte] >> sh) & 1;
		int l = bit < keep ? val : 0;
		int h = bit < keep ? val : 1;
		if (bit < base)
			l = h = 0;
		if (sh == 7)
			lo[byte] = hi[byte] = 0;
		lo[byte] |= (uint8_t)(l << sh);
		hi[byte] |= (uint8_t)(h << sh);
	}
}

static bool ip_in_range(const struct cedar_value *x, const struct cedar_value *y)
{
	if (x->ip6 != y->ip6)
		return false;
	uint8_t xl[16], xh[16], yl[16], yh[16];
	ip_range(x, xl, xh);
	ip_range(y, yl, yh);
	return memcmp(yh, xh, 16) >= 0 && memcmp(xl, yl, 16) >= 0;
}

static bool ip_in_const(const struct cedar_value *x, const char *range)
{
	struct cedar_value r;
	if (cedar_parse_ip(range, strlen(range), &r))
		return false;
	return ip_in_range(x, &r);
}

static int setb(struct cedar_value *out, bool b)
{
	memset(out, 0, sizeof(*out));
	out->kind = CV_BOOL;
	out->u.i = b;
	return 0;
}

static int seti(struct cedar_value *out, int kind, int64_t i)
{
	memset(out, 0, sizeof(*out));
	out->kind = (uint8_t)kind;
	out->u.i = i;
	return 0;
}

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

int cedar_ext_call(enum cedar_ext_fn fn, const struct cedar_value *args, int nargs,
		   struct cedar_value *out)
{
	const struct cedar_value *x = nargs > 0 ? &args[0] : NULL;
	const struct cedar_value *y = nargs > 1 ? &args[1] : NULL;
	int64_t r;
#define NEED1(k) do { if (nargs != 1 || x->kind != (k)) return EE_TYPE; } while (0)
#define NEED2(k1, k2) do { if (nargs != 2 || x->kind != (k1) || y->kind != (k2)) return EE_TYPE; } while (0)
	switch (fn) {
	case EF_DECIMAL:
		NEED1(CV_STRING);
		if (cedar_parse_decimal(x->u.s, x->n, &r))
			return EE_EXTENSION;
		return seti(out, CV_DECIMAL, r);
	case EF_IP: {
		NEED1(CV_STRING);
		struct cedar_value v;
		if (cedar_parse_ip(x->u.s, x->n, &v))
			return EE_EXTENSION;
		*out = v;
		return 0;
	}
	case EF_DATETIME:
		NEED1(CV_STRING);
		if (cedar_parse_datetime(x->u.s, x->n, &r))
			return EE_EXTENSION;
		return seti(out, CV_DATETIME, r);
	case EF_DURATION:
		NEED1(CV_STRING);
		if (cedar_parse_duration(x->u.s, x->n, &r))
			return EE_EXTENSION;
		return seti(out, CV_DURATION, r);
	case EF_LESSTHAN:
		NEED2(CV_DECIMAL, CV_DECIMAL);
		return setb(out, x->u.i < y->u.i);
	case EF_LESSTHANOREQUAL:
		NEED2(CV_DECIMAL, CV_DECIMAL);
		return setb(out, x->u.i <= y->u.i);
	case EF_GREATERTHAN:
		NEED2(CV_DECIMAL, CV_DECIMAL);
		return setb(out, x->u.i > y->u.i);
	case EF_GREATERTHANOREQUAL:
		NEED2(CV_DECIMAL, CV_DECIMAL);
		return setb(out, x->u.i >= y->u.i);
	case EF_ISIPV4:
		NEED1(CV_IP);
		return setb(out, !x->ip6);
	case EF_ISIPV6:
		NEED1(CV_IP);
		return setb(out, x->ip6);
	case EF_ISLOOPBACK:
		NEED1(CV_IP);
		return setb(out, ip_in_const(x, x->ip6 ? "::1" : "127.0.0.0/8"));
	case EF_ISMULTICAST:
		NEED1(CV_IP);
		return setb(out, ip_in_const(x, x->ip6 ? "ff00::/8" : "224.0.0.0/4"));
	case EF_ISINRANGE:
		NEED2(CV_IP, CV_IP);
		return setb(out, ip_in_range(x, y));
	case EF_OFFSET:
		NEED2(CV_DATETIME, CV_DURATION);
		if (__builtin_add_overflow(x->u.i, y->u.i, &r))
			return EE_EXTENSION;
		return seti(out, CV_DATETIME, r);
	case EF_DURATIONSINCE:
		NEED2(CV_DATETIME, CV_DATETIME);
		if (__builtin_sub_overflow(x->u.i, y->u.i, &r))
			return EE_EXTENSION;
		return seti(out, CV_DURATION, r);
	case EF_TODATE: {
		NEED1(CV_DATETIME);
		int64_t q = floordiv(x->u.i, 86400000);
		if (__builtin_mul_overflow(q, (int64_t)86400000, &r))
			return EE_EXTENSION;
		return seti(out, CV_DATETIME, r);
	}
	case EF_TOTIME: {
		NEED1(CV_DATETIME);
		int64_t m = x->u.i % 86400000;
		if (m < 0)
			m += 86400000;
		return seti(out, CV_DURATION, m);
	}
	case EF_TOMILLISECONDS:
		NEED1(CV_DURATION);
		return seti(out, CV_LONG, x->u.i);
	case EF_TOSECONDS:
		NEED1(CV_DURATION);
		return seti(out, CV_LONG, x->u.i / 1000);
	case EF_TOMINUTES:
		NEED1(CV_DURATION);
		return seti(out, CV_LONG, x->u.i / 60000);
	case EF_TOHOURS:
		NEED1(CV_DURATION);
		return seti(out, CV_LONG, x->u.i / 3600000);
	case EF_TODAYS:
		NEED1(CV_DURATION);
		return seti(out, CV_LONG, x->u.i / 86400000);
	case EF_NONE:
		break;
	}
#undef NEED1
#undef NEED2
	return EE_TYPE;
}

const char *cedar_eval_err_str(int e)
{
	switch (e) {
	case EE_TYPE: return "type error";
	case EE_OVERFLOW: return "integer overflow";
	case EE_NO_ENTITY: return "entity does not exist";
	case EE_NO_ATTR: return "attribute does not exist";
	case EE_NO_TAG: return "tag does not exist";
	case EE_EXTENSION: return "extension function error";
	case EE_NOMEM: return "out of memory";
	case EE_DEPTH: return "expression nested too deeply";
	}
	return "error";
}
