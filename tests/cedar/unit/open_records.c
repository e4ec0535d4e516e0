/* CEDAR_VALIDATE_OPEN_EMPTY_RECORDS: a record type declared `{}` is open
 * (Gatehouse's context.args, any JSON object), everything else stays
 * strict; without the flag `{}` is closed, as in Cedar. */
#include "authz/cedar/cedar.h"
#include "tests/unit/unit.h"

static const char SCHEMA[] =
	"entity User = { email: String };\n"
	"entity Tool = { name: String };\n"
	"action \"tools/call\" appliesTo { principal: [User], resource: [Tool],\n"
	"  context: { args: {}, hour: Long } };\n";

/* Errors of text against SCHEMA with flags; -1 when it could not run. */
static long errors(const char *text, unsigned flags, char *first, size_t len)
{
	struct cedar_err err = {0};
	struct cedar_validation res;
	cedar_schema *s = cedar_schema_parse(SCHEMA, sizeof(SCHEMA) - 1, CEDAR_SCHEMA_TEXT, &err);
	cedar_policy_set *ps = cedar_policy_set_new();
	cedar_arena *a = cedar_arena_new(0);
	long n = -1;
	if (s && ps && a && !cedar_policy_set_parse(ps, text, strlen(text), NULL, &err) &&
	    !cedar_validate(s, ps, flags, a, &res, &err)) {
		n = (long)res.n_errors;
		snprintf(first, len, "%s", n ? res.errors[0].msg : "");
	}
	cedar_arena_free(a);
	cedar_policy_set_free(ps);
	cedar_schema_free(s);
	return n;
}

static void test_args_open(void)
{
	static const char ok[] =
		"forbid (principal, action == Action::\"tools/call\", resource)\n"
		"  unless { [\"general\", \"ops\"].contains(context.args.channel) };\n"
		"permit (principal, action, resource) when { context.args has repo &&\n"
		"  context.args.repo.owner == principal.email && context.args.n + 1 > context.hour };\n";
	char msg[256];
	UNIT_EQ_INT(errors(ok, CEDAR_VALIDATE_OPEN_EMPTY_RECORDS, msg, sizeof msg), 0);
	/* closed without the flag, as Cedar has it */
	UNIT_TRUE(errors(ok, 0, msg, sizeof msg) > 0);
	UNIT_TRUE(strstr(msg, "channel") != NULL);
}

static void test_rest_strict(void)
{
	char msg[256];
	UNIT_EQ_INT(errors("permit (principal, action, resource) when { context.weather == 1 };",
			   CEDAR_VALIDATE_OPEN_EMPTY_RECORDS, msg, sizeof msg), 1);
	UNIT_TRUE(strstr(msg, "weather") != NULL);
	UNIT_EQ_INT(errors("permit (principal, action, resource) when { principal.emial == \"x\" };",
			   CEDAR_VALIDATE_OPEN_EMPTY_RECORDS, msg, sizeof msg), 1);
	UNIT_TRUE(strstr(msg, "emial") != NULL);
	/* a type error beside an argument is still one */
	UNIT_EQ_INT(errors("permit (principal, action, resource) when { context.args has x && context.hour == \"9\" };",
			   CEDAR_VALIDATE_OPEN_EMPTY_RECORDS, msg, sizeof msg), 1);
}

int main(void)
{
	UNIT_RUN(test_args_open);
	UNIT_RUN(test_rest_strict);
	return UNIT_DONE();
}
