-- Consultants' availability on the chat desk (available / away), kept across a reconnect and a restart of
-- the chat server. No row: available (a consultant starts available). Not personal data of residents.
CREATE TABLE staff_availability (
    staff_id    INTEGER PRIMARY KEY REFERENCES staff(id) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('available', 'away')),
    updated_at  TEXT NOT NULL
);
