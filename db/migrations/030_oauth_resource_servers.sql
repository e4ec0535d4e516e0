-- Resource servers: a confidential client an administrator designated
-- (`gatehouse client introspection --client-id ID on`) may introspect
-- (RFC 7662) every access token and PAT of this server, not only its own.
-- Registration is open, so this is never something a client can ask for.
ALTER TABLE oauth_clients ADD COLUMN resource_server boolean NOT NULL DEFAULT false;
