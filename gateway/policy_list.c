/*
 * gateway/policy_list.c — lists follow the policy (docs/POLICIES.md, "Lists
 * follow the policy"): a tool (prompt, resource) is left out of its list
 * when its call, decided for this member with the request's context and
 * empty arguments, is denied with no policy erroring.  The decision itself
 * is gw_policy_decide's (one round trip and the cached compiled set for
 * the whole list); this file maps a merged list to its items and back.
 */
#include "gateway/endpoint_int.h"
#include <string.h>

struct gw_policy_item *
gw_policy_list_items(struct gh_arena *a, const struct gw_list *l, struct gw_policy_call *call)
{
    /* the call each kind's entry stands for; templates are not filtered:
     * a template is many resources, decided when one is read */
    static const char *const action[] = { "tools/call", "prompts/get", "resources/read", NULL };
    static const char *const kind[] = { "Tool", "Prompt", "Resource", NULL };
    struct gw_policy_item *items;

    if (l->kind >= GW_TEMPLATES || l->n == 0)
        return NULL;
    if ((items = gh_arena_alloc(a, sizeof(*items) * (size_t)l->n)) == NULL)
        return NULL;            /* unfiltered: every call is still decided */
    for (int i = 0; i < l->n; i++)
        items[i] = (struct gw_policy_item){
            .connector = l->e[i].connector,
            .name = l->e[i].orig,
            .annotations = l->kind == GW_TOOLS ? json_object_get(l->e[i].item, "annotations") : NULL,
        };
    call->items = items;
    call->nitems = l->n;
    call->item_action = action[l->kind];
    call->item_kind = kind[l->kind];
    return items;
}

void
gw_policy_list_drop(struct gw_list *l, const struct gw_policy_item *items)
{
    int k = 0;

    if (items == NULL)
        return;
    for (int i = 0; i < l->n; i++)
        if (!items[i].hidden)
            l->e[k++] = l->e[i];
    l->n = k;
}
