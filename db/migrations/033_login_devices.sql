-- Sign-in lockout that the account's owner survives (OWASP "device
-- cookies"): a browser that signed in keeps a device cookie; only its
-- SHA-256 is stored.  A failure records the device it came from (NULL: no
-- valid device cookie of that account), so failures from unknown browsers
-- lock unknown browsers only, and a known browser only by its own.
CREATE TABLE login_devices (
    token_hash  text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_devices_user ON login_devices (user_id);

ALTER TABLE login_failures ADD COLUMN device_hash text;
