-- MCP sessions of the gateway (session-based protocol revisions).  The wire
-- id is a bearer secret: only its SHA-256 is stored.  A session is bound to
-- the agent and the user it was created for; the upstream session ids the
-- gateway holds for it are sealed under the server key.
CREATE TABLE mcp_sessions (
    id_hash          text PRIMARY KEY,
    agent_id         uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    user_id          uuid REFERENCES users(id) ON DELETE CASCADE,  -- NULL: test identity
    credential_kind  text NOT NULL,
    protocol_version text NOT NULL,
    client_info      jsonb,
    upstreams        text,            -- sealed JSON {connector id: {sid, proto}}
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mcp_sessions_last_seen ON mcp_sessions (last_seen_at);
