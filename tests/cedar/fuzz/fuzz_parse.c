/* libFuzzer target: the policy parser. Any input is parsed as a policy set
 * and as a single expression; errors must be reported, never crash, and
 * every allocation must be released (LeakSanitizer checks). */
#include "authz/cedar/cedar_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cedar_err err = {0};
	cedar_policy_set *ps = cedar_policy_set_new();
	if (ps) {
		int rc = cedar_policy_set_parse(ps, (const char *)data, size, NULL, &err);
		/* A failed parse must say where and why. */
		if (rc == CEDAR_E_PARSE && (err.line < 1 || err.col < 1 || !err.msg[0]))
			__builtin_trap();
		cedar_policy_set_free(ps);
	}
	cedar_arena *a = cedar_arena_new(1 << 24);
	struct cedar_expr *x;
	memset(&err, 0, sizeof(err));
	if (a)
		(void)cedar_parse_expr(a, (const char *)data, size, &x, &err);
	cedar_arena_free(a);
	return 0;
}
