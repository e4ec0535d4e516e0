-- Policies (DESIGN.md 6, docs/POLICIES.md): Cedar text that decides every
-- tools/call at the gateway.  A policy belongs to an agent; on an untrusted
-- agent to one member of it (member_id), since each member there has a set
-- of their own and one without any is denied everything.  The text is never
-- edited in place: every change is a new row of policy_versions, and
-- policies.version names the one in force, so an audit row's "id@version"
-- always points at the exact text that decided.
CREATE TABLE policies (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id   uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    member_id  uuid REFERENCES agent_members(id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    enabled    boolean NOT NULL DEFAULT true,
    mode       text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow')),
    version    integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- one name per set: the agent's own, or one member's
CREATE UNIQUE INDEX policies_name ON policies
    (agent_id, coalesce(member_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

CREATE TABLE policy_versions (
    policy_id  uuid NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    version    integer NOT NULL,
    text       text NOT NULL,
    created_by text NOT NULL,          -- an email, or "gatehouse" for seeds
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (policy_id, version)
);
CREATE RULE policy_versions_immutable AS ON UPDATE TO policy_versions DO INSTEAD NOTHING;

-- Every process caches the compiled set per agent (gateway/policy.c).  Any
-- change bumps the agent's generation, which each call reads in the round
-- trip it makes anyway, so the very next call on every process sees it; the
-- NOTIFY frees the memory of the sets it replaced.
CREATE TABLE policy_generations (
    agent_id   uuid PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    generation bigint NOT NULL
);
CREATE FUNCTION policies_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE agent uuid := coalesce(NEW.agent_id, OLD.agent_id);
BEGIN
    -- (not when the agent itself is being deleted)
    INSERT INTO policy_generations AS g SELECT agent, 1 WHERE EXISTS (SELECT 1 FROM agents WHERE id = agent)
        ON CONFLICT (agent_id) DO UPDATE SET generation = g.generation + 1;
    PERFORM pg_notify('gw_policies', agent::text);
    RETURN NULL;
END $$;
CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION policies_notify();

-- Today's behaviour stays, and says so: a trusted agent starts with a
-- visible permit of everything (untrusted agents start with nothing).
CREATE FUNCTION policies_seed_agent(agent uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE pid uuid;
BEGIN
    INSERT INTO policies (agent_id, name) VALUES (agent, 'permit-all') RETURNING id INTO pid;
    INSERT INTO policy_versions (policy_id, version, text, created_by) VALUES (pid, 1,
        concat_ws(E'\n',
            '// Seeded with the agent: every call of every member is allowed.',
            '// Disable or narrow it to let the other policies decide.',
            'permit (principal, action, resource);', ''), 'gatehouse');
END $$;
CREATE FUNCTION agents_seed_policies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT NEW.untrusted THEN
        PERFORM policies_seed_agent(NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER agents_seed_policies AFTER INSERT ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_seed_policies();
SELECT policies_seed_agent(id) FROM agents WHERE NOT untrusted;

-- context.session of the Cedar request: calls and denials per MCP session
-- (the SHA-256 of its id; "member:<user id>" on the stateless revision),
-- kept in the database so a circuit breaker holds across processes and
-- restarts.
CREATE TABLE policy_session_counts (
    agent_id   uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    session    text NOT NULL,
    calls      bigint NOT NULL DEFAULT 0,
    denials    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, session)
);
