-- Write-ahead audit (gateway/audit.c): the row of a forwarded call is
-- committed before the call goes upstream, carrying call_id (random, made
-- by the gateway) and no outcome; the call's outcome completes it later
-- by call_id: upstream_status, duration_us, upstream_error and outcome_at.
-- A row with a call_id and no outcome_at is a call cut short (the process
-- ended while it was in flight), or one whose write-ahead commit was never
-- confirmed and which therefore never went upstream.  Rows written whole
-- (refusals, local answers) have neither.
ALTER TABLE audit_events ADD COLUMN call_id text,
                         ADD COLUMN outcome_at timestamptz,
                         ADD COLUMN upstream_error text;
CREATE UNIQUE INDEX audit_events_call ON audit_events (call_id) WHERE call_id IS NOT NULL;
-- held outcomes are merged through the staging table (032) like held rows
ALTER TABLE audit_events_held ADD COLUMN call_id text,
                              ADD COLUMN outcome_at timestamptz,
                              ADD COLUMN upstream_error text;
-- an outcome's UPDATE holds the advisory lock shared until its commit
-- ends, as an INSERT does (032): the merge of held rows waits for an
-- outcome still committing on a broken connection
CREATE TRIGGER audit_events_commit_lock_update BEFORE UPDATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_commit_lock();
