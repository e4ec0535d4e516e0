-- The capabilities a session's client declared at initialize (sampling,
-- elicitation, roots, ...): the gateway relays an upstream's request to the
-- client only for what the client declared, and declares the same to the
-- upstreams of that session.  NULL: none declared (or a session made before
-- this column existed).
ALTER TABLE mcp_sessions ADD COLUMN client_capabilities jsonb;
