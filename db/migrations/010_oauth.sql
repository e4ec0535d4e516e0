-- OAuth 2.1 authorization server: agents, clients, grants, codes, tokens, PATs.
-- Every token, code and secret is stored as its SHA-256 only.

CREATE TABLE agents (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name       text NOT NULL,
    untrusted  boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO agents (slug, name) VALUES ('default', 'Default agent');

-- kind 'dcr': registered through RFC 7591; 'cimd': client_id is the URL of
-- a Client ID Metadata Document (metadata is the cached document).
CREATE TABLE oauth_clients (
    client_id          text PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('dcr', 'cimd')),
    client_name        text,
    metadata           jsonb NOT NULL,
    auth_method        text NOT NULL CHECK (auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
    secret_hash        text,
    reg_token_hash     text,
    fingerprint        text,
    created_ip         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    cache_expires_at   timestamptz
);
CREATE INDEX oauth_clients_fingerprint ON oauth_clients (fingerprint, created_at);

-- One grant per user + client + agent.
CREATE TABLE oauth_grants (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id    text NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    agent_id     uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    scope        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX oauth_grants_live ON oauth_grants (user_id, client_id, agent_id) WHERE revoked_at IS NULL;
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

CREATE TABLE oauth_denials (
    user_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id text NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    until     timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE oauth_codes (
    code_hash      text PRIMARY KEY,
    grant_id       uuid NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    client_id      text NOT NULL,
    redirect_uri   text NOT NULL,
    code_challenge text NOT NULL,
    resource       text NOT NULL,
    scope          text NOT NULL,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    chain_id       uuid          -- the token chain this code started
);

-- Access and refresh tokens.  chain_id groups everything one code exchange
-- started (revoked together on replay); parent_id links a rotated refresh
-- token to its successor's predecessor.  successor is the sealed successor
-- pair, kept for the grace window so concurrent refreshes agree.
CREATE TABLE oauth_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind         text NOT NULL CHECK (kind IN ('access', 'refresh')),
    token_hash   text NOT NULL UNIQUE,
    grant_id     uuid NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    chain_id     uuid NOT NULL,
    parent_id    uuid,
    scope        text NOT NULL,
    resource     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    successor    text,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX oauth_tokens_chain ON oauth_tokens (chain_id);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);

CREATE TABLE pats (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    agent_id     uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,
    token_hash   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX pats_user ON pats (user_id);
