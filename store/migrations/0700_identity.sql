-- Directory accounts, forced password changes and the TOTP second factor (issue [identity]).

-- 'local': password checked here (argon2id); 'directory': password checked by binding to the
-- city's directory, roles and department taken from its groups at each sign-in.
ALTER TABLE staff ADD COLUMN source TEXT NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'directory'));
-- The directory entry's DN, and when the account was last checked against the directory.
ALTER TABLE staff ADD COLUMN directory_dn TEXT;
ALTER TABLE staff ADD COLUMN directory_checked_at TEXT;
-- 1: the password was set by someone else (a temporary password); the next sign-in must change it.
ALTER TABLE staff ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1));

-- One TOTP secret per person, encrypted (AES-GCM, key in a file outside the database).
-- confirmed_at NULL: enrolment started and not yet confirmed by a code.
CREATE TABLE staff_totp (
    staff_id        INTEGER PRIMARY KEY REFERENCES staff(id) ON DELETE CASCADE,
    secret_sealed   BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    confirmed_at    TEXT,
    -- the last 30-second time step whose code was accepted: a code of that step or earlier is a replay
    last_step       INTEGER NOT NULL DEFAULT -1
);

-- Single-use recovery codes, stored as SHA-256 of 80-bit random codes.
CREATE TABLE staff_recovery_codes (
    id          INTEGER PRIMARY KEY,
    staff_id    INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL UNIQUE,
    used_at     TEXT
);
CREATE INDEX staff_recovery_codes_staff ON staff_recovery_codes(staff_id);
