-- Agents and members (DESIGN.md 2): who may use an agent, decided by its
-- owners (admins act as owners of every agent).
--
-- One row per (agent, person).  A person is known by the invited email
-- until they accept; user_id is set from then on (and for the holders this
-- migration admits).  state: invited -> pending -> approved | rejected, and
-- removed (left, removed by an owner, or an invite revoked before use).
-- Only the SHA-256 of the invite link's token is kept, and it stays after
-- use so a reused link is told apart from a forged one.
CREATE TABLE agent_members (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id          uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    email             text NOT NULL,
    user_id           uuid REFERENCES users(id) ON DELETE CASCADE,
    state             text NOT NULL CHECK (state IN ('invited', 'pending', 'approved', 'rejected', 'removed')),
    role              text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    approve_on_accept boolean NOT NULL DEFAULT false,
    invite_hash       text UNIQUE,
    invite_expires_at timestamptz,
    invited_by        uuid REFERENCES users(id) ON DELETE SET NULL,
    invited_at        timestamptz,
    accepted_at       timestamptz,
    decided_by        uuid REFERENCES users(id) ON DELETE SET NULL,   -- approved or rejected
    decided_at        timestamptz,
    removed_by        uuid REFERENCES users(id) ON DELETE SET NULL,
    removed_at        timestamptz,
    role_by           uuid REFERENCES users(id) ON DELETE SET NULL,
    role_at           timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX agent_members_email ON agent_members (agent_id, lower(email));
CREATE UNIQUE INDEX agent_members_user ON agent_members (agent_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX agent_members_user_state ON agent_members (user_id, state);

-- Settings and the kill switch.  disabled keeps every credential: the
-- gateway refuses the agent's calls until it is enabled again.
ALTER TABLE agents ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE agents ADD COLUMN disabled boolean NOT NULL DEFAULT false;
ALTER TABLE agents ADD COLUMN disabled_by uuid REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE agents ADD COLUMN disabled_at timestamptz;

-- Nothing that works today stops working: whoever holds a live PAT or
-- OAuth grant for an agent becomes an approved member of it.
INSERT INTO agent_members (agent_id, email, user_id, state, decided_at)
SELECT h.agent_id, u.email, u.id, 'approved', now()
  FROM (SELECT user_id, agent_id FROM pats
         WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
        UNION
        SELECT user_id, agent_id FROM oauth_grants WHERE revoked_at IS NULL) h
  JOIN users u ON u.id = h.user_id;

-- The credential caches hold only approved members' credentials
-- (authz/mcp.c): a member leaving that state flushes them everywhere
-- (migration 022's function).
CREATE TRIGGER agent_members_changed AFTER UPDATE ON agent_members FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION authz_credentials_notify();
CREATE TRIGGER agent_members_deleted AFTER DELETE ON agent_members FOR EACH ROW
    WHEN (OLD.state = 'approved')
    EXECUTE FUNCTION authz_credentials_notify();
