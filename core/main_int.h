/* core/main_int.h — the subcommands of the gatehouse binary. */
#ifndef GH_MAIN_INT_H
#define GH_MAIN_INT_H

#include "core/core.h"

struct gh_command {
    const char *name;
    int (*fn)(int argc, char **argv, const char *config);
    const char *help;
};

int main_config(const char *file);
int main_fail(const struct gh_err *e);

int main_serve(int argc, char **argv, const char *config);
int main_migrate(int argc, char **argv, const char *config);
int main_user(int argc, char **argv, const char *config);
int main_config_doc(int argc, char **argv, const char *config);
int main_agent(int argc, char **argv, const char *config);
int main_pat(int argc, char **argv, const char *config);
int main_cedar(int argc, char **argv, const char *config);

#endif
