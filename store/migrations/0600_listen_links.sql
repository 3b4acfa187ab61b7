-- Listening links (issue [listening]): short-lived, single-use capabilities to hear one recording in
-- the staff member's own browser. Only hashes of the token and of the browser pin are kept.
-- No foreign key to conversations: a purge must not be blocked by a link, and a link whose
-- recording was purged must still be found to say so (recording_sha256 tells a reused id apart).
CREATE TABLE listen_links (
    id                  INTEGER PRIMARY KEY,
    token_hash          TEXT NOT NULL UNIQUE,   -- SHA-256 of the 128-bit token; the token itself is never stored
    kind                TEXT NOT NULL CHECK (kind IN ('archive', 'session')),   -- §3.2/§5 archive, or §4.6 session
    code                TEXT NOT NULL,          -- short code shown in the TUI and on the page, to compare
    staff_id            INTEGER REFERENCES staff(id),   -- NULL: the host's service account (cim listen-link)
    actor_name          TEXT NOT NULL,
    session_hash        TEXT,                   -- the staff session the link lives and dies with
    conversation_id     INTEGER NOT NULL,
    recording_id        INTEGER NOT NULL,
    recording_sha256    TEXT NOT NULL,
    purpose             TEXT NOT NULL,
    request_id          INTEGER REFERENCES access_requests(id),
    created_at          TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    pin_hash            TEXT,                   -- SHA-256 of the cookie of the browser that opened it first
    opened_at           TEXT,
    revoked_at          TEXT,
    revoked_reason      TEXT
);
CREATE INDEX listen_links_actor ON listen_links(actor_name, expires_at);
CREATE INDEX listen_links_conversation ON listen_links(conversation_id);
-- The §4.6 session record: who else was present (names), and the outcome of the session.
ALTER TABLE access_requests ADD COLUMN session_others TEXT;
ALTER TABLE access_requests ADD COLUMN session_outcome TEXT;
