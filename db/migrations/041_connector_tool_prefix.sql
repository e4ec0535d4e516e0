-- The prefix a connector's tools and prompts carry in the lists clients see
-- ("<prefix>__<name>").  NULL: the connector's name (the default, the names
-- of earlier builds, stable when connectors are added); '': none, the
-- upstream's own names.  Policies and audit rows name tools by connector,
-- whatever the prefix.
ALTER TABLE connectors ADD COLUMN tool_prefix text
    CHECK (tool_prefix IS NULL OR tool_prefix ~ '^[A-Za-z0-9_.-]{0,32}$');
