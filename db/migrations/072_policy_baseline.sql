-- Adding a connector to a trusted agent seeds a visible, editable
-- baseline for it: tools whose annotations say destructive (and do not
-- say read-only) are refused, with a message.  It reads the hints the tool
-- states (resource.annotations), not MCP's defaults, so a tool without
-- annotations is not refused by it.  Untrusted agents have no agent-wide
-- policies: their members' sets start empty.
CREATE FUNCTION connectors_seed_baseline() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE pid uuid;
BEGIN
    IF (SELECT untrusted FROM agents WHERE id = NEW.agent_id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO policies (agent_id, name) VALUES (NEW.agent_id, 'baseline-' || NEW.name)
        ON CONFLICT DO NOTHING RETURNING id INTO pid;
    IF pid IS NULL THEN
        RETURN NULL;   -- a policy of that name is there already: it stays as it is
    END IF;
    INSERT INTO policy_versions (policy_id, version, text, created_by) VALUES (pid, 1,
        concat_ws(E'\n',
            '// Seeded with connector ' || NEW.name || ': its tools whose annotations say',
            '// destructive (and not read-only) are refused.  Edit or disable it freely.',
            '@message("Tools of ' || NEW.name || ' that are marked destructive are not allowed on this agent.")',
            'forbid (principal, action == Action::"tools/call", resource in Connector::"' || NEW.name || '")',
            '  when { resource.annotations has destructiveHint && resource.annotations.destructiveHint &&',
            '         !(resource.annotations has readOnlyHint && resource.annotations.readOnlyHint) };', ''),
        'gatehouse');
    RETURN NULL;
END $$;
CREATE TRIGGER connectors_seed_baseline AFTER INSERT ON connectors
    FOR EACH ROW EXECUTE FUNCTION connectors_seed_baseline();
