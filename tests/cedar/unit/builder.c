/* The C API that builds entities and context without JSON (what the
 * gateway uses for MCP tool arguments), checked against the same values
 * read from Cedar JSON and through real authorization decisions. */
#include "authz/cedar/cedar.h"
#include "tests/unit/unit.h"

#include <jansson.h>

static const char policies[] =
	"permit(principal in Team::\"eng\", action == Action::\"call_tool\", resource == Tool::\"github__create_issue\")\n"
	"when { context.args.repo like \"acme/*\" && context.args.labels.contains(\"bug\") &&\n"
	"       principal.level >= 3 && context.ip.isInRange(ip(\"10.0.0.0/8\")) };\n"
	"forbid(principal, action, resource) when { context.args has priority && context.args.priority > 9000000000 };\n"
	"forbid(principal, action, resource) when { principal.getTag(\"blocked\") };\n";

static cedar_value *ent(cedar_arena *a, const char *t, const char *id)
{
	return cedar_value_entity(a, t, id);
}

static void test_values(void)
{
	struct cedar_err err = {0};
	cedar_arena *a = cedar_arena_new(0);
	cedar_value *set = cedar_value_set_new(a);
	UNIT_EQ_INT(cedar_value_set_add(a, set, cedar_value_long(a, 3), &err), 0);
	UNIT_EQ_INT(cedar_value_set_add(a, set, cedar_value_string(a, "x", (size_t)-1), &err), 0);
	UNIT_EQ_INT(cedar_value_set_add(a, set, cedar_value_long(a, 3), &err), 0);   /* duplicate */
	cedar_value *rec = cedar_value_record_new(a);
	UNIT_EQ_INT(cedar_value_record_set(a, rec, "s", set, &err), 0);
	UNIT_EQ_INT(cedar_value_record_set(a, rec, "n", cedar_value_long(a, INT64_MIN), &err), 0);
	UNIT_EQ_INT(cedar_value_record_set(a, rec, "n", cedar_value_long(a, INT64_MAX), &err), 0);
	UNIT_EQ_INT(cedar_value_record_set(a, rec, "e", ent(a, "NS::User", "al\"ice"), &err), 0);
	UNIT_EQ_INT(cedar_value_record_set(a, rec, "d", cedar_value_extension(a, "decimal", "-1.5", &err), &err), 0);
	UNIT_EQ_INT(cedar_value_record_set(a, rec, "b", cedar_value_bool(a, 1), &err), 0);
	const char *txt = "{\"b\": true, \"n\": 9223372036854775807, \"s\": [\"x\", 3, 3],"
		" \"e\": {\"__entity\": {\"type\": \"NS::User\", \"id\": \"al\\\"ice\"}},"
		" \"d\": {\"__extn\": {\"fn\": \"decimal\", \"arg\": \"-1.5000\"}}}";
	cedar_value *fromjson = cedar_value_from_json_text(a, txt, strlen(txt), &err);
	UNIT_TRUE(fromjson != NULL);
	UNIT_TRUE(cedar_value_equal(rec, fromjson));
	UNIT_EQ_STR(cedar_value_to_string(a, set), "[3, \"x\"]");
	/* Insertion order does not matter: records and sets are canonical. */
	cedar_value *set2 = cedar_value_set_new(a);
	cedar_value_set_add(a, set2, cedar_value_string(a, "x", 1), &err);
	cedar_value_set_add(a, set2, cedar_value_long(a, 3), &err);
	UNIT_TRUE(cedar_value_equal(set, set2));
	/* Bad input is refused with a message, not accepted. */
	UNIT_TRUE(cedar_value_extension(a, "decimal", "1.23456", &err) == NULL);
	UNIT_TRUE(cedar_value_extension(a, "ip", "300.1.1.1", &err) == NULL);
	UNIT_TRUE(cedar_value_extension(a, "nope", "1", &err) == NULL);
	UNIT_TRUE(cedar_value_extension(a, "datetime", "2024-01-01T00:00:00Z", &err) != NULL);
	UNIT_TRUE(cedar_value_extension(a, "duration", "1d2h", &err) != NULL);
	UNIT_TRUE(cedar_value_entity(a, "", "x") == NULL);
	/* Entity types are Cedar names, as the reference requires in JSON. */
	static const char *const bad_types[] = {"not a name", "A::", "A :: B", "1x", "if",
						"A::in", "__cedar::A", "A::__cedar", "é", ":A"};
	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++)
		if (cedar_value_entity(a, bad_types[i], "x") != NULL)
			UNIT_FAIL_("type %s accepted", bad_types[i]);
	UNIT_TRUE(cedar_value_entity(a, "NS::Sub_1::Action", "x") != NULL);
	UNIT_TRUE(cedar_value_entity(a, "principal", "") != NULL);
	UNIT_TRUE(cedar_value_entity(a, "__cedarX", "x") != NULL);
	UNIT_EQ_INT(cedar_value_record_set(a, set, "k", set, &err), CEDAR_E_INPUT);
	UNIT_TRUE(cedar_value_from_json_text(a, "1.5", 3, &err) == NULL);
	UNIT_TRUE(cedar_value_from_json_text(a, "9223372036854775808", 19, &err) == NULL);
	UNIT_TRUE(cedar_value_from_json_text(a, "[1] x", 5, &err) == NULL);
	/* Strings: escapes and raw control bytes anywhere in a long string. */
	static const char esc[] = "\"0123456789abcdef\\\"x\\u00e9\\n0123456789\"";
	cedar_value *sv = cedar_value_from_json_text(a, esc, sizeof(esc) - 1, &err);
	UNIT_TRUE(sv != NULL);
	UNIT_EQ_STR(sv ? cedar_value_to_string(a, sv) : "", "\"0123456789abcdef\\\"x\u00e9\\u{a}0123456789\"");
	static const char ctl[] = "\"0123456789abcdef\t0123\"";
	UNIT_TRUE(cedar_value_from_json_text(a, ctl, sizeof(ctl) - 1, &err) == NULL);
	static const char ctl2[] = "\"0123456789abcd\x01\"";
	UNIT_TRUE(cedar_value_from_json_text(a, ctl2, sizeof(ctl2) - 1, &err) == NULL);
	/* Large sets and records (past the small in-place sort) come out
	 * sorted and deduplicated too. */
	char big[2048], want[2048];
	size_t bl = 0, wl = 0;
	bl += (size_t)snprintf(big + bl, sizeof(big) - bl, "[");
	for (int i = 0; i < 60; i++)
		bl += (size_t)snprintf(big + bl, sizeof(big) - bl, "%s%d", i ? ", " : "", (i * 37) % 50);
	snprintf(big + bl, sizeof(big) - bl, "]");
	wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "[");
	for (int i = 0; i < 50; i++)
		wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%s%d", i ? ", " : "", i);
	snprintf(want + wl, sizeof(want) - wl, "]");
	cedar_value *bigset = cedar_value_from_json_text(a, big, strlen(big), &err);
	UNIT_TRUE(bigset != NULL);
	UNIT_EQ_STR(cedar_value_to_string(a, bigset), want);
	bl = 0;
	bl += (size_t)snprintf(big + bl, sizeof(big) - bl, "{");
	for (int i = 29; i >= 0; i--)
		bl += (size_t)snprintf(big + bl, sizeof(big) - bl, "\"k%02d\": %d%s", i, i, i ? ", " : "}");
	cedar_value *bigrec = cedar_value_from_json_text(a, big, strlen(big), &err);
	UNIT_TRUE(bigrec != NULL);
	const char *rs = bigrec ? cedar_value_to_string(a, bigrec) : "";
	static const char head[] = "{\"k00\": 0, \"k01\": 1, \"k02\": 2, ";
	UNIT_TRUE(strncmp(rs, head, sizeof(head) - 1) == 0);
	UNIT_TRUE(strstr(rs, "\"k28\": 28, \"k29\": 29}") != NULL);
	cedar_arena_free(a);
}

/* One request evaluated against entities built through the API. */
static int decide(cedar_policy_set *ps, cedar_entities *es, const cedar_value *ctx,
		  const char *user, struct cedar_response *resp, cedar_arena *a)
{
	struct cedar_err err = {0};
	struct cedar_request rq = {
		.principal = ent(a, "User", user),
		.action = ent(a, "Action", "call_tool"),
		.resource = ent(a, "Tool", "github__create_issue"),
		.context = ctx,
	};
	int rc = cedar_authorize(ps, es, &rq, a, resp, &err);
	if (rc)
		fprintf(stderr, "authorize: %s\n", err.msg);
	return rc ? -1 : (int)resp->decision;
}

static void test_authorize_built_entities(void)
{
	struct cedar_err err = {0};
	cedar_arena *a = cedar_arena_new(0), *scratch = cedar_arena_new(1 << 20);
	cedar_policy_set *ps = cedar_policy_set_new();
	cedar_entities *es = cedar_entities_new();
	UNIT_EQ_INT(cedar_policy_set_parse(ps, policies, sizeof(policies) - 1, NULL, &err), 0);

	/* alice in Team::"eng" via Group::"dev"; bob is blocked by a tag. */
	cedar_value *attrs = cedar_value_record_new(a);
	cedar_value_record_set(a, attrs, "level", cedar_value_long(a, 5), &err);
	const cedar_value *alice_parents[] = {ent(a, "Group", "dev")};
	const cedar_value *dev_parents[] = {ent(a, "Team", "eng")};
	cedar_value *tags = cedar_value_record_new(a);
	cedar_value_record_set(a, tags, "blocked", cedar_value_bool(a, 1), &err);
	cedar_value *okt = cedar_value_record_new(a);
	cedar_value_record_set(a, okt, "blocked", cedar_value_bool(a, 0), &err);
	UNIT_EQ_INT(cedar_entities_add(es, "User", "alice", attrs, alice_parents, 1, okt, &err), 0);
	UNIT_EQ_INT(cedar_entities_add(es, "User", "bob", attrs, alice_parents, 1, tags, &err), 0);
	UNIT_EQ_INT(cedar_entities_add(es, "Group", "dev", NULL, dev_parents, 1, NULL, &err), 0);
	UNIT_EQ_INT(cedar_entities_add(es, "User", "alice", NULL, NULL, 0, NULL, &err), CEDAR_E_INPUT);
	const cedar_value *bad_parent[] = {ent(a, "Team", "eng")};
	UNIT_EQ_INT(cedar_entities_add(es, "Action", "x", NULL, bad_parent, 1, NULL, &err), CEDAR_E_INPUT);
	UNIT_EQ_INT(cedar_entities_add(es, "Bad Type", "x", NULL, NULL, 0, NULL, &err), CEDAR_E_INPUT);
	UNIT_EQ_INT(cedar_entities_count(es), 3);

	/* Tool arguments arrive as plain JSON. */
	json_t *args = json_pack("{s:s,s:[s,s],s:I}", "repo", "acme/widgets", "labels", "bug", "ui",
				 "priority", (json_int_t)1);
	cedar_value *ctx = cedar_value_record_new(a);
	cedar_value_record_set(a, ctx, "args", cedar_value_from_plain_json(a, args, &err), &err);
	cedar_value_record_set(a, ctx, "ip", cedar_value_extension(a, "ip", "10.1.2.3", &err), &err);
	struct cedar_response resp;
	UNIT_EQ_INT(decide(ps, es, ctx, "alice", &resp, scratch), CEDAR_ALLOW);
	UNIT_EQ_INT(resp.n_reasons, 1);
	UNIT_EQ_STR(resp.reasons[0], "policy0");
	UNIT_EQ_INT(resp.n_errors, 0);
	cedar_arena_reset(scratch);
	UNIT_EQ_INT(decide(ps, es, ctx, "bob", &resp, scratch), CEDAR_DENY);
	UNIT_EQ_INT(resp.n_reasons, 1);
	UNIT_EQ_STR(resp.reasons[0], "policy2");
	cedar_arena_reset(scratch);
	/* carol is unknown: policy2 errors (no such entity), nothing permits. */
	UNIT_EQ_INT(decide(ps, es, ctx, "carol", &resp, scratch), CEDAR_DENY);
	UNIT_EQ_INT(resp.n_reasons, 0);
	UNIT_EQ_INT(resp.n_errors, 1);
	UNIT_EQ_STR(resp.errors[0], "policy2");
	cedar_arena_reset(scratch);

	/* A large integer argument trips the forbid; a wrong repo loses the permit. */
	json_object_set_new(args, "priority", json_integer(9000000001));
	cedar_value_record_set(a, ctx, "args", cedar_value_from_plain_json(a, args, &err), &err);
	UNIT_EQ_INT(decide(ps, es, ctx, "alice", &resp, scratch), CEDAR_DENY);
	UNIT_EQ_STR(resp.reasons[0], "policy1");
	cedar_arena_reset(scratch);
	json_object_set_new(args, "priority", json_integer(1));
	json_object_set_new(args, "repo", json_string("evil/widgets"));
	cedar_value_record_set(a, ctx, "args", cedar_value_from_plain_json(a, args, &err), &err);
	UNIT_EQ_INT(decide(ps, es, ctx, "alice", &resp, scratch), CEDAR_DENY);
	UNIT_EQ_INT(resp.n_reasons, 0);
	cedar_arena_reset(scratch);

	/* Plain JSON keeps "__entity" as an ordinary key and refuses floats. */
	json_t *esc = json_pack("{s:{s:s,s:s}}", "__entity", "type", "User", "id", "alice");
	const cedar_value *v = cedar_value_from_plain_json(a, esc, &err);
	UNIT_TRUE(v != NULL);
	UNIT_EQ_STR(cedar_value_to_string(a, v), "{\"__entity\": {\"id\": \"alice\", \"type\": \"User\"}}");
	json_t *fl = json_real(1.5);
	UNIT_TRUE(cedar_value_from_plain_json(a, fl, &err) == NULL);
	json_decref(fl);
	json_decref(esc);
	json_decref(args);

	/* A scratch arena with a small cap fails cleanly instead of growing. */
	cedar_arena *tiny = cedar_arena_new(64);
	struct cedar_request rq = {ent(a, "User", "alice"), ent(a, "Action", "call_tool"),
				   ent(a, "Tool", "github__create_issue"), ctx};
	UNIT_EQ_INT(cedar_authorize(ps, es, &rq, tiny, &resp, &err), CEDAR_E_NOMEM);
	cedar_arena_free(tiny);

	/* Templates: link ?principal to a group. */
	UNIT_EQ_INT(cedar_policy_set_add(ps, "tpl", "permit(principal in ?principal, action, resource in ?resource);",
					 63, &err), 0);
	UNIT_EQ_INT(cedar_policy_set_link(ps, "tpl", "link1", ent(a, "Team", "eng"), ent(a, "Tool", "x"), &err), 0);
	UNIT_EQ_INT(cedar_policy_set_link(ps, "tpl", "link1", ent(a, "Team", "eng"), ent(a, "Tool", "x"), &err),
		    CEDAR_E_INPUT);
	UNIT_EQ_INT(cedar_policy_set_link(ps, "tpl", "link2", ent(a, "Team", "eng"), NULL, &err), CEDAR_E_INPUT);
	struct cedar_request rq2 = {ent(a, "User", "bob"), ent(a, "Action", "read"), ent(a, "Tool", "x"), NULL};
	UNIT_EQ_INT(cedar_authorize(ps, es, &rq2, scratch, &resp, &err), 0);
	UNIT_EQ_INT(resp.decision, CEDAR_DENY);   /* bob is blocked */
	cedar_arena_reset(scratch);
	rq2.principal = ent(a, "User", "alice");
	UNIT_EQ_INT(cedar_authorize(ps, es, &rq2, scratch, &resp, &err), 0);
	UNIT_EQ_INT(resp.decision, CEDAR_ALLOW);
	UNIT_EQ_STR(resp.reasons[0], "link1");

	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	cedar_arena_free(scratch);
	cedar_arena_free(a);
}

int main(void)
{
	UNIT_RUN(test_values);
	UNIT_RUN(test_authorize_built_entities);
	return UNIT_DONE();
}
