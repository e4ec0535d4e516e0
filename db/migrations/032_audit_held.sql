-- Held audit rows (gateway/audit.c) are merged through this table: copied
-- in, inserted into audit_events unless the log has them already, and
-- deleted again, in one transaction under an advisory lock, so it is empty
-- outside that transaction.  A table of its own rather than a temporary
-- one: a role without the TEMP privilege (a hardened or managed database)
-- can use it.  Unlogged: nothing in it outlives a transaction.  Its columns
-- are the ones audit.c writes (COLS there); a column added to audit_events
-- for those rows is added here too.
CREATE UNLOGGED TABLE audit_events_held AS
    SELECT at, agent_id, agent_slug, user_id, user_email, credential_kind, key_suffix, client_id,
           client_name, session_id, request_id, method, tool, connector, decision, policy_ids,
           policy_versions, message, upstream_status, duration_us
    FROM audit_events WITH NO DATA;
