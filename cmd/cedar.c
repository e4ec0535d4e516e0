/* cmd/cedar.c — `gatehouse cedar …` hands over to the policy engine's CLI. */
#include "cmd/main_int.h"
#include "authz/cedar/cedar.h"

int
main_cedar(int argc, char **argv, const char *config)
{
    (void)config;
    return cedar_cli_main(argc, argv);
}
