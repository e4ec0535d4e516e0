-- What the shadow policies would have decided (gateway/policy.c), beside
-- the decision that was enforced: "allow" or "deny", then the ids of the
-- policies that determined it with their versions ("deny <id>,<id>@1,2").
-- NULL when the agent (member) has no shadow policy.  Held rows carry it
-- too (032's staging table).
ALTER TABLE audit_events ADD COLUMN policy_shadow text;
ALTER TABLE audit_events_held ADD COLUMN policy_shadow text;
