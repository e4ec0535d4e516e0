-- The audit pages filter by policy id (one of the comma list policy_ids):
-- `string_to_array(policy_ids, ',') @> ARRAY[id]` is answered by this index
-- instead of a scan of the whole log.
CREATE INDEX audit_events_policy ON audit_events USING gin (string_to_array(policy_ids, ','));
