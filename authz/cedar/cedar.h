/* Cedar policy engine: parser, evaluator and authorizer (authz/cedar).
 *
 * Usage: compile a policy set once (cedar_policy_set_parse), build an entity
 * store (JSON or the value-building API below), then per request call
 * cedar_authorize() with a scratch arena that is reset between requests.
 *
 * Every function returning int returns 0 on success or a negative code and
 * fills the struct cedar_err (the first error recorded wins).
 * Values are built in a cedar_arena and are copied when inserted into a
 * record, a set or an entity store, so build inner values completely before
 * inserting them. */
#ifndef GH_CEDAR_H
#define GH_CEDAR_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define CEDAR_OK 0
#define CEDAR_E_PARSE (-1)   /* policy text or JSON input is malformed */
#define CEDAR_E_INPUT (-2)   /* a value or argument is invalid */
#define CEDAR_E_NOMEM (-3)   /* out of memory or arena cap reached */
#define CEDAR_E_IO (-4)      /* a file could not be read */

struct cedar_err {
	int code;        /* the CEDAR_E_* value */
	int line, col;   /* 1-based position in policy text, 0 when not applicable */
	char msg[256];   /* safe to show to a policy author */
};

typedef struct cedar_arena cedar_arena;
typedef struct cedar_value cedar_value;
typedef struct cedar_entities cedar_entities;
typedef struct cedar_policy_set cedar_policy_set;

/* ---- arena: bump allocation, freed all at once ---------------------- */
/* cap_bytes = 0 means no cap. */
cedar_arena *cedar_arena_new(size_t cap_bytes);
void cedar_arena_reset(cedar_arena *a);
void cedar_arena_free(cedar_arena *a);

/* ---- values (all allocated in the given arena; NULL on failure) ----- */
cedar_value *cedar_value_bool(cedar_arena *a, int b);
cedar_value *cedar_value_long(cedar_arena *a, int64_t v);
/* len == (size_t)-1 means NUL-terminated */
cedar_value *cedar_value_string(cedar_arena *a, const char *s, size_t len);
/* type must be a Cedar name (Ident(::Ident)*, no reserved word); NULL if not. */
cedar_value *cedar_value_entity(cedar_arena *a, const char *type, const char *id);
cedar_value *cedar_value_set_new(cedar_arena *a);
int cedar_value_set_add(cedar_arena *a, cedar_value *set, const cedar_value *v,
			struct cedar_err *err);
cedar_value *cedar_value_record_new(cedar_arena *a);
/* Replaces an existing key. */
int cedar_value_record_set(cedar_arena *a, cedar_value *rec, const char *key,
			   const cedar_value *v, struct cedar_err *err);
/* fn is "decimal", "ip", "datetime" or "duration"; arg is its string. */
cedar_value *cedar_value_extension(cedar_arena *a, const char *fn, const char *arg,
				   struct cedar_err *err);
/* Cedar's JSON value format (__entity, __extn, records, sets, exact int64). */
cedar_value *cedar_value_from_json(cedar_arena *a, const json_t *j, struct cedar_err *err);
cedar_value *cedar_value_from_json_text(cedar_arena *a, const char *text, size_t len,
					struct cedar_err *err);
/* Plain JSON (e.g. MCP tool arguments): objects become records, arrays sets;
 * no __entity/__extn escapes are honoured, non-integer numbers are rejected. */
cedar_value *cedar_value_from_plain_json(cedar_arena *a, const json_t *j,
					 struct cedar_err *err);
/* Cedar-syntax rendering, for logs and tests; allocated in a. */
const char *cedar_value_to_string(cedar_arena *a, const cedar_value *v);
int cedar_value_equal(const cedar_value *x, const cedar_value *y);

/* ---- entity store -------------------------------------------------- */
cedar_entities *cedar_entities_new(void);
void cedar_entities_free(cedar_entities *es);
/* Empties the store but keeps its memory, for a store rebuilt per request. */
void cedar_entities_reset(cedar_entities *es);
/* attrs and tags are records or NULL; parents are entity values. */
int cedar_entities_add(cedar_entities *es, const char *type, const char *id,
		       const cedar_value *attrs, const cedar_value *const *parents,
		       size_t n_parents, const cedar_value *tags, struct cedar_err *err);
/* Cedar's entities JSON: an array of {uid, attrs, parents, tags}. */
int cedar_entities_load_json(cedar_entities *es, const json_t *arr, struct cedar_err *err);
int cedar_entities_load_json_text(cedar_entities *es, const char *text, size_t len,
				  struct cedar_err *err);
int cedar_entities_load_file(cedar_entities *es, const char *path, struct cedar_err *err);
size_t cedar_entities_count(const cedar_entities *es);

/* ---- policy set ---------------------------------------------------- */
cedar_policy_set *cedar_policy_set_new(void);
void cedar_policy_set_free(cedar_policy_set *ps);
/* Parses every policy and template of text; they get the ids
 * <id_prefix>0, <id_prefix>1, ... continuing the set's count
 * (id_prefix NULL means "policy", as the Cedar tooling does). On error
 * nothing is added and err has line:col and what was expected. */
int cedar_policy_set_parse(cedar_policy_set *ps, const char *text, size_t len,
			   const char *id_prefix, struct cedar_err *err);
/* Parses text holding exactly one policy or template and adds it under id
 * (which must be new in the set). */
int cedar_policy_set_add(cedar_policy_set *ps, const char *id, const char *text, size_t len,
			 struct cedar_err *err);
int cedar_policy_set_parse_file(cedar_policy_set *ps, const char *path,
				const char *id_prefix, struct cedar_err *err);
/* Links a template: slot values are entity values (NULL if the template has
 * no such slot). The link is a policy with id new_id. */
int cedar_policy_set_link(cedar_policy_set *ps, const char *template_id, const char *new_id,
			  const cedar_value *principal, const cedar_value *resource,
			  struct cedar_err *err);
size_t cedar_policy_set_count(const cedar_policy_set *ps);   /* policies incl. templates */
size_t cedar_policy_set_template_count(const cedar_policy_set *ps);
/* Annotation value of a policy (e.g. "message"), NULL if absent. */
const char *cedar_policy_annotation(const cedar_policy_set *ps, const char *policy_id,
				    const char *key);
/* 1 for a forbid, 0 for a permit, -1 when there is no such policy: a
 * caller that fails closed denies when an erroring policy is a forbid. */
int cedar_policy_is_forbid(const cedar_policy_set *ps, const char *policy_id);

/* ---- authorization ------------------------------------------------- */
enum cedar_decision { CEDAR_DENY = 0, CEDAR_ALLOW = 1 };

struct cedar_request {
	const cedar_value *principal;   /* entity values */
	const cedar_value *action;
	const cedar_value *resource;
	const cedar_value *context;     /* record, or NULL for {} */
};

struct cedar_response {
	enum cedar_decision decision;
	size_t n_reasons;        /* determining policies, in policy-set order */
	const char **reasons;
	size_t n_errors;         /* policies whose evaluation errored */
	const char **errors;
	const char **error_msgs; /* one message per errors[] entry */
};

/* Response arrays live in scratch; reset it between requests. */
int cedar_authorize(const cedar_policy_set *ps, cedar_entities *es,
		    const struct cedar_request *req, cedar_arena *scratch,
		    struct cedar_response *resp, struct cedar_err *err);

/* Evaluates one expression (text) against a request, for tests and tools. */
int cedar_eval_expr(const char *expr_text, cedar_entities *es,
		    const struct cedar_request *req, cedar_arena *a,
		    const cedar_value **out, struct cedar_err *err);

/* ---- schemas and validation ----------------------------------------- */
typedef struct cedar_schema cedar_schema;
enum cedar_schema_format { CEDAR_SCHEMA_AUTO = 0, CEDAR_SCHEMA_TEXT, CEDAR_SCHEMA_JSON };
/* Cedar's human-readable (.cedarschema) or JSON schema format; AUTO takes
 * text starting with `{` as JSON. Errors carry line:col where known. */
cedar_schema *cedar_schema_parse(const char *text, size_t len, int format, struct cedar_err *err);
cedar_schema *cedar_schema_parse_file(const char *path, int format, struct cedar_err *err);
void cedar_schema_free(cedar_schema *s);

struct cedar_diag {
	const char *policy;   /* policy id */
	int line, col;        /* in the policy text */
	char msg[224];        /* says what was expected; safe to show */
};

struct cedar_validation {
	size_t n_errors, n_warnings;
	struct cedar_diag *errors;    /* every error of each policy in text order
				       * (past 64, one line says there were more) */
	struct cedar_diag *warnings;  /* impossible policies */
};

/* A scope no action of the schema applies to is an error, as in Cedar
 * before 4.x made it a warning (cedar-policy/cedar#2545); the official
 * corpus still expects it. */
#define CEDAR_VALIDATE_UNMATCHED_SCOPE_ERROR 1u
/* A record type declared with no attributes (`{}`) is open: any attribute
 * may be tested with `has` and read, and what is read has no type, so it
 * is not judged (Cedar schemas cannot say "any JSON object"; Gatehouse's
 * context.args is one).  A read of a missing attribute still errors at run
 * time, where a forbid that errors denies. */
#define CEDAR_VALIDATE_OPEN_EMPTY_RECORDS 2u

/* Strict-mode validation of every policy and template of ps against s;
 * flags are CEDAR_VALIDATE_*; the arrays live in a. Returns 0 when
 * validation ran (see n_errors). */
int cedar_validate(const cedar_schema *s, const cedar_policy_set *ps, unsigned flags,
		   cedar_arena *a, struct cedar_validation *out, struct cedar_err *err);
/* A request against the schema: the action is declared, principal and
 * resource have types it applies to, the context has its context type.
 * 0 when it conforms, CEDAR_E_INPUT with the reason otherwise. */
int cedar_validate_request(const cedar_schema *s, const struct cedar_request *req,
			   struct cedar_err *err);
/* Every entity of es against the schema: declared type (or declared
 * action), attributes and tags of the declared types, parents of allowed
 * types. */
int cedar_validate_entities(const cedar_schema *s, cedar_entities *es, struct cedar_err *err);

/* ---- command line -------------------------------------------------- */
/* argv[0] == "cedar"; subcommands:
 *   check FILE              parses FILE; errors as FILE:line:col: message
 *   authorize --policies F --entities F --request F
 *                           prints {"decision","reasons","errors":[{policy,message}]}
 *   authorize --batch F     F (or - for stdin) holds one JSON case per line,
 *                           {"policies": TEXT, "entities": [...], "request": {...}};
 *                           prints one response per line, or {"error","stage"}.
 * Returns the process exit code: 0 when a decision (allow or deny) was
 * printed or the file checks, 1 on an error, 2 on a usage error. */
int cedar_cli_main(int argc, char **argv);

#endif
