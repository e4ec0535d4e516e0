-- The sealed vault (DESIGN.md 5, docs/VAULT.md): members' upstream tokens
-- that neither the database nor the server key can open.
--
-- Each membership (agent, user) has an X25519 key pair.  The public key is
-- here in the clear: a connection's tokens are sealed to it at once.  The
-- private key is kept only wrapped (AES-256-GCM) under keys derived from
-- the member's own secrets; a wrap is found by the SHA-256 of its secret,
-- which the credential tables already hold, so it tells nothing new.
CREATE TABLE vault_keys (
    agent_id   uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, user_id)
);

-- kind: pat | access | refresh | code (an OAuth grant's current secrets),
-- password (the account's argon2id-derived key, one per membership),
-- cred_hash: SHA-256 hex of the secret (for password: the user id).
-- wrapped: base64url(iv | tag | private key) under HKDF(secret, salt).
CREATE TABLE vault_wraps (
    agent_id   uuid NOT NULL,
    user_id    uuid NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('pat', 'access', 'refresh', 'code', 'password')),
    cred_hash  text NOT NULL,
    salt       bytea NOT NULL CHECK (length(salt) = 16),
    wrapped    text NOT NULL,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, cred_hash, agent_id),
    FOREIGN KEY (agent_id, user_id) REFERENCES vault_keys ON DELETE CASCADE
);
CREATE INDEX vault_wraps_member ON vault_wraps (agent_id, user_id);

-- The password-derived key of an account: argon2id(password, salt) with
-- these parameters.  Only the salt and parameters are stored.
CREATE TABLE vault_users (
    user_id    uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    salt       bytea NOT NULL CHECK (length(salt) = 16),
    params     text NOT NULL,               -- "t=3,m=65536,p=1"
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A browser signed in with the password carries the account's
-- password-derived key, sealed under a key derived from a random cookie
-- (gh_vault) set at that sign-in; the database holds only the cookie's
-- SHA-256.  The console can so wrap a new PAT or authorization code
-- without asking for the password again.  Gone at sign-out and expiry.
CREATE TABLE vault_browsers (
    id_hash    text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kek_sealed text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX vault_browsers_user ON vault_browsers (user_id);

-- One member's authorized account at one connector: the tokens sealed to
-- the membership's public key.  What the connections page shows (account,
-- times, needs_reconnect) is in the clear.
CREATE TABLE vault_connections (
    agent_id        uuid NOT NULL,
    user_id         uuid NOT NULL,
    connector_id    uuid NOT NULL REFERENCES connectors(id) ON DELETE CASCADE,
    sealed          text NOT NULL,
    account         text,
    expires_at      timestamptz,
    needs_reconnect boolean NOT NULL DEFAULT false,
    connected_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    PRIMARY KEY (agent_id, user_id, connector_id),
    FOREIGN KEY (agent_id, user_id) REFERENCES vault_keys ON DELETE CASCADE
);

-- A member rejected or removed loses the key pair, its wraps and the
-- sealed connections, in the state change's transaction, whatever code
-- path made it.
CREATE FUNCTION agent_members_drop_vault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM vault_keys WHERE agent_id = NEW.agent_id AND user_id = NEW.user_id;
    RETURN NULL;
END $$;

CREATE TRIGGER agent_members_vault AFTER UPDATE ON agent_members FOR EACH ROW
    WHEN (NEW.state IN ('rejected', 'removed') AND OLD.state IS DISTINCT FROM NEW.state
          AND NEW.user_id IS NOT NULL)
    EXECUTE FUNCTION agent_members_drop_vault();
