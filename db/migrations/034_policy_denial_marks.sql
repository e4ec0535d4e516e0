-- A session's denial count (policy_session_counts.denials, migration 070)
-- is kept in each process's memory; every denial also bumps its agent's
-- mark here, in the same statement.  Each call reads its agent's mark
-- with the policy generation (one read shared by concurrent calls,
-- gateway/policy_facts.c), and a process reads a session's denials again
-- only when the mark moved since: a denial committed on any process before
-- a call began counts in that call, with no per-call write.
CREATE TABLE policy_denial_marks (
    agent_id uuid PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    mark     bigint NOT NULL
);
