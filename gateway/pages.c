/*
 * gateway/pages.c — /admin/connectors, /admin/audit (+ CSV) and
 * /profile/activity.
 */
#include "gateway/gw_int.h"

int
gw_pages_register_routes(void)
{
    return 0;
}
