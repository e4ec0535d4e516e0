-- How a connector authenticates upstream (issue 17, docs/VAULT.md):
--   none       nothing is sent;
--   static     the sealed headers, one service account for every member;
--   oauth-app  each member's own account, through the provider's OAuth app:
--              client id, the client secret (AES-256-GCM under the server key,
--              associated data bound to the connector id; write-only), the
--              authorization, token and (optional) user info endpoints, scopes.
ALTER TABLE connectors ADD COLUMN auth_mode text NOT NULL DEFAULT 'static'
    CHECK (auth_mode IN ('none', 'static', 'oauth-app'));
ALTER TABLE connectors ADD COLUMN oauth_preset text;
ALTER TABLE connectors ADD COLUMN oauth_client_id text;
ALTER TABLE connectors ADD COLUMN oauth_secret_sealed text;
ALTER TABLE connectors ADD COLUMN oauth_authorize_url text;
ALTER TABLE connectors ADD COLUMN oauth_token_url text;
ALTER TABLE connectors ADD COLUMN oauth_userinfo_url text;
ALTER TABLE connectors ADD COLUMN oauth_scopes text;
ALTER TABLE connectors ADD CONSTRAINT connectors_oauth_app CHECK (auth_mode <> 'oauth-app' OR
    (oauth_client_id IS NOT NULL AND oauth_secret_sealed IS NOT NULL AND oauth_authorize_url IS NOT NULL
     AND oauth_token_url IS NOT NULL));

UPDATE connectors SET auth_mode = 'none' WHERE headers_sealed IS NULL;
