/* libFuzzer target: the evaluator and authorizer. The input is
 *   POLICIES [\0 ENTITIES-JSON [\0 CONTEXT-JSON]]
 * Policies that parse are authorized against a fixed entity hierarchy (plus
 * any entities the input adds) for a few requests; values built from the
 * JSON are also rendered and compared. No crash, no leak, no UB. */
#include "authz/cedar/cedar_int.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char base_entities[] =
	"[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},"
	"\"attrs\":{\"n\":1,\"s\":\"abc\",\"b\":true,\"ss\":[\"a\",\"b\"],"
	"\"e\":{\"__entity\":{\"type\":\"Group\",\"id\":\"admins\"}},\"r\":{\"x\":9223372036854775807,\"y\":\"\"},"
	"\"d\":{\"__extn\":{\"fn\":\"decimal\",\"arg\":\"1.5\"}},"
	"\"ip\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"10.0.0.1/8\"}},"
	"\"dt\":{\"__extn\":{\"fn\":\"datetime\",\"arg\":\"2024-01-01T00:00:00Z\"}},"
	"\"du\":{\"__extn\":{\"fn\":\"duration\",\"arg\":\"1d2h\"}}},"
	"\"parents\":[{\"type\":\"Group\",\"id\":\"staff\"}],\"tags\":{\"k\":1,\"s\":\"v\"}},"
	"{\"uid\":{\"type\":\"Group\",\"id\":\"staff\"},\"attrs\":{},"
	"\"parents\":[{\"type\":\"Group\",\"id\":\"admins\"}]},"
	"{\"uid\":{\"type\":\"Group\",\"id\":\"admins\"},\"attrs\":{\"n\":-9223372036854775808},\"parents\":[]},"
	"{\"uid\":{\"type\":\"Action\",\"id\":\"view\"},\"attrs\":{},"
	"\"parents\":[{\"type\":\"Action\",\"id\":\"all\"}]},"
	"{\"uid\":{\"type\":\"Doc\",\"id\":\"d1\"},\"attrs\":{\"owner\":{\"__entity\":"
	"{\"type\":\"User\",\"id\":\"alice\"}}},\"parents\":[]}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *z1 = memchr(s, 0, size);
	size_t plen = z1 ? (size_t)(z1 - s) : size;
	const char *ent = z1 ? z1 + 1 : NULL;
	size_t elen = z1 ? size - plen - 1 : 0;
	const char *z2 = ent ? memchr(ent, 0, elen) : NULL;
	const char *ctx = z2 ? z2 + 1 : NULL;
	size_t clen = z2 ? (size_t)(s + size - ctx) : 0;
	if (z2)
		elen = (size_t)(z2 - ent);

	struct cedar_err err = {0};
	cedar_policy_set *ps = cedar_policy_set_new();
	cedar_entities *es = cedar_entities_new();
	cedar_arena *a = cedar_arena_new(1 << 24);
	if (!ps || !es || !a)
		goto out;
	if (cedar_policy_set_parse(ps, s, plen, NULL, &err))
		goto values;
	if (cedar_entities_load_json_text(es, base_entities, sizeof(base_entities) - 1, &err))
		__builtin_trap();
	if (ent)
		(void)cedar_entities_load_json_text(es, ent, elen, &err);
	const cedar_value *context = ctx ? cedar_value_from_json_text(a, ctx, clen, &err) : NULL;
	if (context && context->kind != CV_RECORD)
		context = NULL;
	static const char *const req[][6] = {
		{"User", "alice", "Action", "view", "Doc", "d1"},
		{"Group", "staff", "Action", "all", "User", "alice"},
		{"User", "nobody", "Action", "edit", "Doc", "none"},
	};
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		struct cedar_request rq = {
			.principal = cedar_value_entity(a, req[i][0], req[i][1]),
			.action = cedar_value_entity(a, req[i][2], req[i][3]),
			.resource = cedar_value_entity(a, req[i][4], req[i][5]),
			.context = context,
		};
		struct cedar_response resp;
		if (rq.principal && rq.action && rq.resource &&
		    cedar_authorize(ps, es, &rq, a, &resp, &err) == 0) {
			/* Cedar's decision rule holds for every response. */
			if (resp.decision == CEDAR_ALLOW && resp.n_reasons == 0)
				__builtin_trap();
		}
	}
values:
	/* The JSON value reader on the raw input, rendered and self-compared,
	 * and held against the DOM reader: the direct reader must accept
	 * exactly what the DOM reader accepts, as the same value. */
	{
		struct cedar_err e2 = {0};
		struct cedar_jv j;
		struct cedar_value dv;
		const cedar_value *v = cedar_value_from_json_text(a, s, size, &err);
		int dom_ok = cedar_jv_parse(a, s, size, &j, &e2) == 0 &&
			     cedar_jv_value(a, &j, &dv, &e2) == 0;
		if (!!v != dom_ok || (v && !cedar_value_equal(v, &dv)))
			__builtin_trap();
		if (v) {
			(void)cedar_value_to_string(a, v);
			if (!cedar_value_equal(v, v))
				__builtin_trap();
		}
	}
out:
	cedar_arena_free(a);
	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	return 0;
}
