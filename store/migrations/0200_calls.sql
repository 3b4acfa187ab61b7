-- Calls: PBX legs for idempotent ingestion, department routes, and indexes for the archive search.

-- The resident number's digits reversed, so "ends with 4567" is an index range scan (set by ingestion).
ALTER TABLE conversations ADD COLUMN number_rev TEXT;
CREATE INDEX conversations_number_rev ON conversations(number_rev, created_at);
CREATE INDEX conversations_department_created ON conversations(department_id, created_at);

-- One row per CDR record (leg) registered; several legs (same linkedid) make one call.
-- leg_key is the uniqueid, or uniqueid#sequence when the PBX logs the sequence.
CREATE TABLE call_legs (
    leg_key         TEXT PRIMARY KEY,
    uniqueid        TEXT NOT NULL,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    fingerprint     TEXT NOT NULL,          -- SHA-256 of the leg's fields: same data again is "already present"
    imported_at     TEXT NOT NULL
);
CREATE INDEX call_legs_uniqueid ON call_legs(uniqueid);
CREATE INDEX call_legs_conversation ON call_legs(conversation_id);

-- Which department a dialled number (DID, queue or ring group) concerns.
CREATE TABLE call_routes (
    number          TEXT PRIMARY KEY,
    department_id   INTEGER NOT NULL REFERENCES departments(id) ON DELETE CASCADE
);
