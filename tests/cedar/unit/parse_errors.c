/* Parser errors carry line:col of the offending token and say what was
 * expected; valid policy sets parse. */
#include "authz/cedar/cedar.h"
#include "tests/unit/unit.h"

struct perr {
	const char *text;
	int line, col;
	const char *says;   /* substring of the message */
};

static const struct perr cases[] = {
	{"permit(principal, action, resource) when { context.x > };", 1, 56, "expected expression"},
	{"permit(principal, action, resource);\nforbid(principal, action)", 2, 25, "expected `,`"},
	{"permit(\n  principal == User::\"a\",\n  action,\n  resource\n) when { 1 + };", 5, 14,
	 "expected expression"},
	{"permit(principal, action, resource) when { \"abc\\q\" };", 1, 44, "invalid escape"},
	{"permit(principal, action, resource) when { context.x == 9223372036854775808 };", 1, 57,
	 "out of range"},
	{"permit(principal is User, action is Action, resource);", 1, 34, "action scope"},
	{"permit(principal, action, resource) when { foo };", 1, 44, "unknown variable `foo`"},
	{"permit(principal, action, resource) when { principal.bar(1) };", 1, 54, "unknown method"},
	{"permit(principal, action, resource) when { !!!!!true };", 1, 44, "too many unary"},
	{"permit(principal == ?resource, action, resource);", 1, 21, "slot"},
	{"@a(\"x\") @a(\"y\") permit(principal, action, resource);", 1, 10, "duplicate annotation"},
	{"permit(principal, action, resource) when { {a: 1, a: 2} };", 1, 51, "duplicate key"},
	{"permit(principal, action, resource) when { 1 < 2 < 3 };", 1, 50, "expected `}`"},
	{"permit(principal, action, resource) when { \"open };", 1, 44, "unterminated string"},
	{"permit(principal, action, resource) when {};", 1, 43, "empty condition"},
	{"permit(principal, action, resource) when { context.x / 2 };", 1, 54, "division"},
	{"perm(principal, action, resource);", 1, 1, "expected `permit`, `forbid`"},
	{"permit(principal, action, resource) when { true }", 1, 50, "expected `;`"},
	{"permit(principal, action, resource) when { context.if };", 1, 52, "attribute or method name"},
	{"permit(principal in [User::\"a\"], action, resource);", 1, 21, "expected"},
	{"// comment\n\n   permit(principal, action, resource) when { résumé };", 3, 47, "r"},
};

static void test_errors_have_position(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cedar_err err = {0};
		cedar_policy_set *ps = cedar_policy_set_new();
		int rc = cedar_policy_set_parse(ps, cases[i].text, strlen(cases[i].text), NULL, &err);
		UNIT_EQ_INT(rc, CEDAR_E_PARSE);
		UNIT_EQ_INT(err.line, cases[i].line);
		UNIT_EQ_INT(err.col, cases[i].col);
		if (!strstr(err.msg, cases[i].says))
			UNIT_FAIL_("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].says);
		/* Nothing of a failed text is added. */
		UNIT_EQ_INT(cedar_policy_set_count(ps), 0);
		cedar_policy_set_free(ps);
	}
}

static void test_valid_sets_parse(void)
{
	static const char text[] =
		"@id(\"p\") @advice(\"a\\u{1F600}\\n\")\n"
		"permit(principal == User::\"a\", action in [Action::\"view\", Action::\"edit\"],\n"
		"       resource is Doc in Folder::\"f\")\n"
		"when { context.n + 1 > -9223372036854775808 && context has a.b.c && \"x*y\" like \"x\\*y\" }\n"
		"unless { ip(\"10.0.0.0/8\").isInRange(context.ip) || [1, {a: 2}].containsAny([]) };\n"
		"forbid(principal, action, resource) when { if principal has n then principal.n * 2 == 4 else false };\n"
		"permit(principal in ?principal, action, resource is App::Res in ?resource);\n";
	struct cedar_err err = {0};
	cedar_policy_set *ps = cedar_policy_set_new();
	UNIT_EQ_INT(cedar_policy_set_parse(ps, text, sizeof(text) - 1, NULL, &err), 0);
	UNIT_EQ_INT(cedar_policy_set_count(ps), 3);
	UNIT_EQ_INT(cedar_policy_set_template_count(ps), 1);
	UNIT_EQ_STR(cedar_policy_annotation(ps, "policy0", "id"), "p");
	UNIT_EQ_STR(cedar_policy_annotation(ps, "policy0", "advice"), "a\xF0\x9F\x98\x80\n");
	UNIT_TRUE(cedar_policy_annotation(ps, "policy1", "id") == NULL);
	/* A second text continues the numbering. */
	UNIT_EQ_INT(cedar_policy_set_parse(ps, "permit(principal, action, resource);", 36, NULL, &err), 0);
	UNIT_TRUE(cedar_policy_set_count(ps) == 4);
	UNIT_EQ_INT(cedar_policy_set_add(ps, "named", "forbid(principal, action, resource);", 36, &err), 0);
	UNIT_EQ_INT(cedar_policy_set_add(ps, "named", "forbid(principal, action, resource);", 36, &err),
		    CEDAR_E_INPUT);
	UNIT_EQ_INT(cedar_policy_set_add(ps, "two", "permit(principal, action, resource);permit(principal, action, resource);",
					 72, &err), CEDAR_E_PARSE);
	cedar_policy_set_free(ps);
}

int main(void)
{
	UNIT_RUN(test_errors_have_position);
	UNIT_RUN(test_valid_sets_parse);
	return UNIT_DONE();
}
