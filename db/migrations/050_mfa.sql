-- The second factor (TOTP, RFC 6238) and the browser sessions list.
-- users.totp_secret (001) holds the confirmed secret, sealed under the
-- server key; totp_enrolling the one being set up until a code confirms it.
ALTER TABLE users ADD COLUMN totp_enrolling text;
-- The last time step a code was accepted for: a code is good once.
ALTER TABLE users ADD COLUMN totp_last_step bigint;

-- Ten single-use recovery codes per enrolment, SHA-256 only.
CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash text NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- What the sessions list shows; ref names a session in a form without
-- revealing the hash of its cookie.
ALTER TABLE web_sessions ADD COLUMN ref uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE web_sessions ADD COLUMN ip text;
ALTER TABLE web_sessions ADD COLUMN user_agent text;
CREATE UNIQUE INDEX web_sessions_ref ON web_sessions (ref);
