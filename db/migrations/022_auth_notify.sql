-- Invalidation of the in-process credential and agent caches
-- (authz/credcache.c): every change that can make a cached credential
-- wrong raises NOTIFY authz_credentials, whatever process or code path made
-- it (the CLI, another instance, a future page).  Each process flushes
-- both caches on it.
--
-- Row triggers with a WHEN clause, so the hot writes stay silent: issuing
-- and rotating tokens (INSERT, rotated_at), last-used times, logins.
-- NOTIFY folds identical notifications within one transaction, so a
-- statement revoking a whole chain sends one.

CREATE FUNCTION authz_credentials_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authz_credentials', '');
    RETURN NULL;
END $$;

CREATE TRIGGER oauth_tokens_revoked AFTER UPDATE ON oauth_tokens FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.scope IS DISTINCT FROM NEW.scope OR OLD.grant_id IS DISTINCT FROM NEW.grant_id)
    EXECUTE FUNCTION authz_credentials_notify();
-- deleting an expired or revoked token changes nothing a cache may hold
CREATE TRIGGER oauth_tokens_deleted AFTER DELETE ON oauth_tokens FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > now())
    EXECUTE FUNCTION authz_credentials_notify();

CREATE TRIGGER oauth_grants_revoked AFTER UPDATE ON oauth_grants FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.client_id IS DISTINCT FROM NEW.client_id OR OLD.agent_id IS DISTINCT FROM NEW.agent_id)
    EXECUTE FUNCTION authz_credentials_notify();
CREATE TRIGGER oauth_grants_deleted AFTER DELETE ON oauth_grants FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL)
    EXECUTE FUNCTION authz_credentials_notify();

CREATE TRIGGER pats_revoked AFTER UPDATE ON pats FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.agent_id IS DISTINCT FROM NEW.agent_id
          OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION authz_credentials_notify();
CREATE TRIGGER pats_deleted AFTER DELETE ON pats FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL)
    EXECUTE FUNCTION authz_credentials_notify();

CREATE TRIGGER users_changed AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.disabled IS DISTINCT FROM NEW.disabled OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION authz_credentials_notify();
CREATE TRIGGER users_deleted AFTER DELETE ON users FOR EACH ROW
    EXECUTE FUNCTION authz_credentials_notify();

CREATE TRIGGER oauth_clients_changed AFTER UPDATE ON oauth_clients FOR EACH ROW
    WHEN (OLD.client_name IS DISTINCT FROM NEW.client_name)
    EXECUTE FUNCTION authz_credentials_notify();

-- agents are few and rarely change: any change at all (slug, name, trust
-- mode, and the kill switch and membership columns to come)
CREATE TRIGGER agents_changed AFTER UPDATE OR DELETE ON agents FOR EACH STATEMENT
    EXECUTE FUNCTION authz_credentials_notify();
