-- Single sign-on with one OpenID Connect provider, set by an administrator
-- at /admin/sso.  The client secret is sealed under the server key.
CREATE TABLE sso_provider (
    id              smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    name            text NOT NULL,
    issuer          text NOT NULL,
    client_id       text NOT NULL,
    client_secret   text NOT NULL,
    allowed_domains text NOT NULL DEFAULT '',   -- comma-separated; empty: any
    create_accounts boolean NOT NULL DEFAULT false,
    password_off    boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per sign-in started: state (SHA-256), nonce, PKCE verifier
-- (sealed), where to go after; deleted when the callback uses it.
CREATE TABLE sso_states (
    state_hash text PRIMARY KEY,
    nonce      text NOT NULL,
    verifier   text NOT NULL,
    next       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The provider's subject of an account that signed in with it: such an
-- account may have its password sign-in turned off.
ALTER TABLE users ADD COLUMN sso_subject text;
