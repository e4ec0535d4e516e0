/* gatehouse-cedar: stands in for `gatehouse cedar ...` until core/main.c
 * dispatches to cedar_cli_main. */
#include "authz/cedar/cedar.h"

int main(int argc, char **argv)
{
	char *cedar = "cedar";
	if (argc < 1)
		return 2;
	argv[0] = cedar;
	return cedar_cli_main(argc, argv);
}
