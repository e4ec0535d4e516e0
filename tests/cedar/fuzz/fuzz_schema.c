/* libFuzzer target: the schema parsers. Any input is read as a
 * human-readable and as a JSON schema; errors must be reported, never
 * crash, and every allocation must be released (LeakSanitizer checks).
 * A schema that parses is used to validate a fixed policy set, so the
 * validator meets every shape of schema the fuzzer finds. */
#include "authz/cedar/cedar_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policies[] =
	"permit(principal, action, resource) when { principal has a && principal.a == 1 };\n"
	"forbid(principal in Group::\"g\", action in [Action::\"view\"], resource is Doc)\n"
	"  when { resource.owner == principal || context.n.contains(1) || resource.hasTag(\"t\") &&\n"
	"         resource.getTag(\"t\") like \"x*\" || (if context has ip then context.ip.isLoopback()\n"
	"         else context.when < datetime(\"2024-01-01\")) };\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cedar_policy_set *ps;
	if (!ps) {
		struct cedar_err perr = {0};
		ps = cedar_policy_set_new();
		if (!ps || cedar_policy_set_parse(ps, policies, sizeof(policies) - 1, NULL, &perr))
			__builtin_trap();
	}
	for (int format = CEDAR_SCHEMA_TEXT; format <= CEDAR_SCHEMA_JSON; format++) {
		struct cedar_err err = {0};
		cedar_schema *s = cedar_schema_parse((const char *)data, size, format, &err);
		if (!s) {
			/* A refusal must say why. */
			if (!err.msg[0])
				__builtin_trap();
			continue;
		}
		cedar_arena *a = cedar_arena_new(1 << 24);
		struct cedar_validation res;
		if (a)
			(void)cedar_validate(s, ps, 0, a, &res, &err);
		cedar_arena_free(a);
		cedar_schema_free(s);
	}
	return 0;
}
