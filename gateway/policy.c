/*
 * gateway/policy.c — the enforcement seam.  Every tools/call passes through
 * gw_policy_decide once, before it is forwarded; the decision goes into the
 * audit row.  Until the policy issue lands there is no engine: every
 * authenticated call is allowed, and says so.
 */
#include "gateway/gw_int.h"

int
gw_policy_decide(struct gh_arena *a, const struct gw_policy_call *call, struct gw_decision *out, struct gh_err *e)
{
    (void)a, (void)call, (void)e;
    *out = (struct gw_decision){
        .allow = true,
        .decision = "allow",
        .policy_ids = NULL,
        .message = "allow (no policy engine)",
        .policy_versions = NULL,
    };
    return 0;
}
