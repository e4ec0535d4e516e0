-- The fourth connector auth mode (issue 17, docs/VAULT.md):
--   oauth-discovery  the upstream MCP server does MCP authorization itself;
--                    Gatehouse discovered it (RFC 9728 protected resource
--                    metadata, then the authorization server's RFC 8414
--                    metadata) and registered itself there, per connector:
--                    by dynamic client registration (RFC 7591; a client
--                    secret, when one was issued, sealed under the server
--                    key like the oauth-app secret) or by a Client ID
--                    Metadata Document this server serves (disc_kind 'cimd').
-- Kept apart from the oauth_* columns, so switching back to oauth-app
-- needs no retyping.
ALTER TABLE connectors DROP CONSTRAINT connectors_auth_mode_check;
ALTER TABLE connectors ADD CONSTRAINT connectors_auth_mode_check
    CHECK (auth_mode IN ('none', 'static', 'oauth-app', 'oauth-discovery'));
ALTER TABLE connectors ADD COLUMN disc_resource text;
ALTER TABLE connectors ADD COLUMN disc_issuer text;
ALTER TABLE connectors ADD COLUMN disc_kind text CHECK (disc_kind IN ('dcr', 'cimd'));
ALTER TABLE connectors ADD COLUMN disc_client_id text;
ALTER TABLE connectors ADD COLUMN disc_secret_sealed text;
ALTER TABLE connectors ADD COLUMN disc_authorize_url text;
ALTER TABLE connectors ADD COLUMN disc_token_url text;
ALTER TABLE connectors ADD COLUMN disc_scopes text;
ALTER TABLE connectors ADD CONSTRAINT connectors_oauth_discovery CHECK (auth_mode <> 'oauth-discovery' OR
    (disc_resource IS NOT NULL AND disc_client_id IS NOT NULL AND disc_authorize_url IS NOT NULL
     AND disc_token_url IS NOT NULL));
