-- Sign-in codes sent by mail: six digits, SHA-256 of "<user id>:<code>"
-- only, single use, short-lived.  Rows also count the codes an account was
-- sent lately (the per-account limit), so used ones stay until they age out.
CREATE TABLE signin_codes (
    id         bigserial PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX signin_codes_user ON signin_codes (user_id, created_at);
