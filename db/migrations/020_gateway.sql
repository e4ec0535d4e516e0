-- MCP gateway: connectors (upstream MCP servers of an agent) and the audit log.

-- An upstream MCP server registered on an agent.  Its static credentials
-- (header values) are one AES-256-GCM blob under the server key: a JSON
-- array [{name, value}] sealed with the connector id as associated data, so
-- a blob copied to another row does not open.  header_names is for display.
CREATE TABLE connectors (
    id             uuid PRIMARY KEY,
    agent_id       uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$' AND strpos(name, '__') = 0),
    url            text NOT NULL CHECK (url ~ '^https?://'),
    enabled        boolean NOT NULL DEFAULT true,
    headers_sealed text,
    header_names   text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, name)
);

-- One row per request that reached the gateway, allowed or denied.  No
-- foreign keys: the log outlives the agents, users and clients it names,
-- which is why it copies their slug, email and name.  key_suffix is a short
-- non-secret id of the credential row, never token material.
CREATE TABLE audit_events (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL,
    agent_id        uuid,
    agent_slug      text,
    user_id         uuid,
    user_email      text,
    credential_kind text,
    key_suffix      text,
    client_id       text,
    client_name     text,
    session_id      text,
    request_id      text,
    method          text,
    tool            text,
    connector       text,
    decision        text NOT NULL,
    policy_ids      text,
    policy_versions text,
    message         text,
    upstream_status integer,
    duration_us     bigint
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_agent ON audit_events (agent_id, at);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_client ON audit_events (client_id, at);
CREATE INDEX audit_events_tool ON audit_events (tool, at);
