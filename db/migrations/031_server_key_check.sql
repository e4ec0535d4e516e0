-- The server key check: one row holding HMAC-SHA256 of a fixed label under
-- the server key (hex), stored by the first `gatehouse serve` or sealing CLI
-- run.  A process whose key gives another value refuses to start or to seal,
-- instead of sealing secrets that the others cannot open.  The value says
-- nothing about the key itself.
CREATE TABLE server_key_check (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),   -- at most one row
    check_value text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
