/* A policy set is compiled once: its text is wiped and freed before any
 * request, and every decision still comes out right (under ASan a read of
 * the text would be reported). A request allocates only from its small
 * scratch arena: once warm, cedar_authorize calls malloc not at all (the
 * ASan build gives each arena allocation its own malloc on purpose, so
 * there the check is that every block is given back at the arena reset).
 * Linked with --wrap=malloc,calloc,realloc,free to count the calls. */
#include "authz/cedar/cedar.h"
#include "tests/unit/unit.h"

#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static long heap_calls, heap_live;

void *__wrap_malloc(size_t n)
{
	void *p = __real_malloc(n);
	heap_calls++;
	heap_live += p != NULL;
	return p;
}

void *__wrap_calloc(size_t n, size_t m)
{
	void *p = __real_calloc(n, m);
	heap_calls++;
	heap_live += p != NULL;
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	void *q = __real_realloc(p, n);
	heap_calls++;
	heap_live += !p && q;
	return q;
}

void __wrap_free(void *p)
{
	heap_live -= p != NULL;
	__real_free(p);
}

static const char policy_text[] =
	"@message(\"no destructive tools\")\n"
	"forbid(principal, action == Action::\"tools/call\", resource)\n"
	"when { resource.destructive } unless { principal in Group::\"admins\" };\n"
	"permit(principal in Group::\"eng\", action in [Action::\"tools/call\", Action::\"tools/list\"],\n"
	"       resource is Tool in Connector::\"github\")\n"
	"when { context.args.repo like \"acme/*\" && context has args.labels &&\n"
	"       context.args.labels.containsAny([\"bug\", \"feature\"]) &&\n"
	"       context.now.datetime.toTime() < duration(\"17h\") &&\n"
	"       context.client.ip.isInRange(ip(\"10.0.0.0/8\")) };\n"
	"forbid(principal, action, resource) when { context.session.denials * 1 >= 3 };\n"
	"permit(principal == ?principal, action, resource in ?resource);\n";

static cedar_value *ent(cedar_arena *a, const char *t, const char *id)
{
	return cedar_value_entity(a, t, id);
}

static cedar_value *context(cedar_arena *a, const char *repo, long denials)
{
	struct cedar_err err = {0};
	cedar_value *args = cedar_value_record_new(a), *labels = cedar_value_set_new(a);
	cedar_value_set_add(a, labels, cedar_value_string(a, "bug", (size_t)-1), &err);
	cedar_value_record_set(a, args, "repo", cedar_value_string(a, repo, (size_t)-1), &err);
	cedar_value_record_set(a, args, "labels", labels, &err);
	cedar_value *now = cedar_value_record_new(a);
	cedar_value_record_set(a, now, "datetime",
			       cedar_value_extension(a, "datetime", "2026-11-25T10:00:00Z", &err), &err);
	cedar_value *client = cedar_value_record_new(a);
	cedar_value_record_set(a, client, "ip", cedar_value_extension(a, "ip", "10.1.2.3", &err), &err);
	cedar_value *session = cedar_value_record_new(a);
	cedar_value_record_set(a, session, "denials", cedar_value_long(a, denials), &err);
	cedar_value *ctx = cedar_value_record_new(a);
	cedar_value_record_set(a, ctx, "args", args, &err);
	cedar_value_record_set(a, ctx, "now", now, &err);
	cedar_value_record_set(a, ctx, "client", client, &err);
	cedar_value_record_set(a, ctx, "session", session, &err);
	UNIT_EQ_INT(err.code, 0);
	return ctx;
}

struct rcase {
	struct cedar_request rq;
	enum cedar_decision want;
	const char *reason;     /* first determining policy, NULL for none */
};

static void test_compiled_once_small_arena(void)
{
	struct cedar_err err = {0};
	cedar_arena *a = cedar_arena_new(0);
	cedar_policy_set *ps = cedar_policy_set_new();
	cedar_entities *es = cedar_entities_new();

	/* Compile from a heap copy, then wipe and free the text. */
	char *text = malloc(sizeof(policy_text));
	memcpy(text, policy_text, sizeof(policy_text));
	UNIT_EQ_INT(cedar_policy_set_parse(ps, text, sizeof(policy_text) - 1, NULL, &err), 0);
	UNIT_EQ_INT(cedar_policy_set_link(ps, "policy3", "bob-docs", ent(a, "User", "bob"),
					  ent(a, "Folder", "docs"), &err), 0);
	memset(text, '#', sizeof(policy_text));
	free(text);

	const cedar_value *eng[] = {ent(a, "Group", "eng")};
	const cedar_value *gh[] = {ent(a, "Connector", "github")};
	const cedar_value *docs[] = {ent(a, "Folder", "docs")};
	cedar_value *destructive = cedar_value_record_new(a), *safe = cedar_value_record_new(a);
	cedar_value_record_set(a, destructive, "destructive", cedar_value_bool(a, 1), &err);
	cedar_value_record_set(a, safe, "destructive", cedar_value_bool(a, 0), &err);
	UNIT_EQ_INT(cedar_entities_add(es, "User", "alice", NULL, eng, 1, NULL, &err), 0);
	UNIT_EQ_INT(cedar_entities_add(es, "Tool", "github/create_issue", safe, gh, 1, NULL, &err), 0);
	UNIT_EQ_INT(cedar_entities_add(es, "Tool", "github/delete_repo", destructive, gh, 1, NULL, &err), 0);
	UNIT_EQ_INT(cedar_entities_add(es, "Doc", "d", safe, docs, 1, NULL, &err), 0);

	const cedar_value *call = ent(a, "Action", "tools/call");
	struct rcase cases[] = {
		{{ent(a, "User", "alice"), call, ent(a, "Tool", "github/create_issue"),
		  context(a, "acme/widgets", 0)}, CEDAR_ALLOW, "policy1"},
		{{ent(a, "User", "alice"), call, ent(a, "Tool", "github/create_issue"),
		  context(a, "evil/widgets", 0)}, CEDAR_DENY, NULL},
		{{ent(a, "User", "alice"), call, ent(a, "Tool", "github/delete_repo"),
		  context(a, "acme/widgets", 0)}, CEDAR_DENY, "policy0"},
		{{ent(a, "User", "alice"), call, ent(a, "Tool", "github/create_issue"),
		  context(a, "acme/widgets", 3)}, CEDAR_DENY, "policy2"},
		{{ent(a, "User", "bob"), ent(a, "Action", "read"), ent(a, "Doc", "d"),
		  context(a, "", 0)}, CEDAR_ALLOW, "bob-docs"},
	};
	const size_t nc = sizeof(cases) / sizeof(cases[0]);

	/* A scratch arena of 16 KiB is plenty for a request. */
	cedar_arena *scratch = cedar_arena_new(16 << 10);
	struct cedar_response resp;
	for (size_t i = 0; i < nc; i++) {   /* warm-up: the arena gets its chunk */
		UNIT_EQ_INT(cedar_authorize(ps, es, &cases[i].rq, scratch, &resp, &err), 0);
		cedar_arena_reset(scratch);
	}
	long calls0 = heap_calls, live0 = heap_live, wrong = 0;
	for (int round = 0; round < 200; round++)
		for (size_t i = 0; i < nc; i++) {
			if (cedar_authorize(ps, es, &cases[i].rq, scratch, &resp, &err) ||
			    resp.decision != cases[i].want ||
			    (cases[i].reason ? resp.n_reasons < 1 || strcmp(resp.reasons[0], cases[i].reason)
					     : resp.n_reasons != 0) ||
			    resp.n_errors != 0) {
				if (!wrong++)
					UNIT_FAIL_("case %zu: decision %d, %zu reasons (%s), %zu errors: %s", i,
						   (int)resp.decision, resp.n_reasons,
						   resp.n_reasons ? resp.reasons[0] : "-", resp.n_errors,
						   err.msg);
			}
			cedar_arena_reset(scratch);
		}
	UNIT_EQ_INT(wrong, 0);
	UNIT_EQ_INT(heap_live, live0);
#ifndef GH_ARENA_MALLOC_EACH
	UNIT_EQ_INT(heap_calls - calls0, 0);
#else
	(void)calls0;
#endif
	UNIT_EQ_STR(cedar_policy_annotation(ps, "policy0", "message"), "no destructive tools");

	cedar_arena_free(scratch);
	cedar_entities_free(es);
	cedar_policy_set_free(ps);
	cedar_arena_free(a);
}

int main(void)
{
	UNIT_RUN(test_compiled_once_small_arena);
	return UNIT_DONE();
}
