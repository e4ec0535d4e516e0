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

-- Every statement that inserts into audit_events (a batch's INSERT or COPY,
-- the merge itself) holds this advisory lock shared until its transaction
-- ends, i.e. until its commit has finished.  The merge of held rows takes
-- it exclusively (audit.c, HELD_BEGIN_SQL), so it waits for every batch
-- still committing — also one whose client connection already broke, and
-- whose rows are therefore held — before it looks for the rows the log
-- lacks: a held row is never written a second time by a merge that ran
-- while its first commit was still under way.  A session's own exclusive
-- lock does not conflict with its shared one.
CREATE FUNCTION audit_events_commit_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7140365317);
    RETURN NULL;
END $$;
CREATE TRIGGER audit_events_commit_lock BEFORE INSERT ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_commit_lock();
