-- A member rejected or removed (by an owner, the CLI, or leaving) loses
-- their MCP sessions of the agent with the state change, in its
-- transaction, whatever process or code path made it.  Each deleted row
-- is announced on NOTIFY gw_sessions, as the gateway's own deletions are,
-- so every process drops the session and ends its GET stream: the old
-- session id answers 404 even if the person is admitted again.  The
-- upstream sessions held for them are not ended here (their ids are
-- sealed under the server key); they idle out upstream, as those of swept
-- sessions do.
CREATE FUNCTION agent_members_end_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    FOR h IN DELETE FROM mcp_sessions WHERE agent_id = NEW.agent_id AND user_id = NEW.user_id
             RETURNING id_hash LOOP
        PERFORM pg_notify('gw_sessions', h);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER agent_members_left AFTER UPDATE ON agent_members FOR EACH ROW
    WHEN (NEW.state IN ('rejected', 'removed') AND OLD.state IS DISTINCT FROM NEW.state
          AND NEW.user_id IS NOT NULL)
    EXECUTE FUNCTION agent_members_end_sessions();

-- the trigger's lookup, and the gateway's per-member session limit
CREATE INDEX mcp_sessions_member ON mcp_sessions (agent_id, user_id);
