/* cmd/main_int.h — the subcommands of the gatehouse binary. */
#ifndef GH_MAIN_INT_H
#define GH_MAIN_INT_H

#include "core/core.h"

struct gh_command {
    const char *name;
    int (*fn)(int argc, char **argv, const char *config);
    const char *help;
};

/* One option of a subcommand (getopt_long's name, has_arg, val). */
struct opt_spec {
    const char *name;
    int         has_arg;
    int         val;
};

/* Parses --config/--help plus the command's own options, calling on() for
 * each.  Returns 0, 1 after printing --help, or 2 on a usage error (the
 * usage text is printed). */
int main_parse_opts(int argc, char **argv, const char *usage_text, const struct opt_spec *spec,
                    int nspec, const char **config, int (*on)(int val, const char *arg, void *ctx),
                    void *ctx);

int main_config(const char *file);
int main_fail(const struct gh_err *e);
/* Usage errors about one argument (exit code 2 is the caller's).  Neither
 * shows a value: `--password=…`, `-pVALUE` or the words of an unquoted
 * `--header Authorization: Bearer …` may be secrets, and stderr is logged. */
void main_bad_option(const char *arg, const char *usage_text);
void main_extra_argument(const char *usage_text);

int main_serve(int argc, char **argv, const char *config);
int main_migrate(int argc, char **argv, const char *config);
int main_user(int argc, char **argv, const char *config);
int main_config_doc(int argc, char **argv, const char *config);
int main_agent(int argc, char **argv, const char *config);    /* members.c */
int main_member(int argc, char **argv, const char *config);
int main_pat(int argc, char **argv, const char *config);
int main_client(int argc, char **argv, const char *config);
int main_cedar(int argc, char **argv, const char *config);
int main_connector(int argc, char **argv, const char *config);   /* cmd/connector.c */
int main_policy(int argc, char **argv, const char *config);      /* cmd/policy.c */

#endif
