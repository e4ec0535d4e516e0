-- A connect started on /agents/{slug}/connections (gateway/connect.c): the
-- OAuth state's SHA-256, bound to the browser session that started it
-- (the session cookie's SHA-256) and its member, single use (deleted when
-- the callback takes it) and good for ten minutes; the PKCE verifier
-- sealed under the server key with the state hash as associated data.
CREATE TABLE connect_states (
    state_hash      text PRIMARY KEY,
    session_hash    text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    agent_id        uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    connector_id    uuid NOT NULL REFERENCES connectors(id) ON DELETE CASCADE,
    verifier_sealed text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
