-- Phone traffic (issue [traffic]): consultants' category and note on a call, and the callback worklist.

-- What a call was about, set by the consultant during or after it. Keyed by the PBX's linkedid
-- (the call) with the uniqueid of the consultant's leg; linked to the call record when its CDR is
-- ingested (before that conversation_id is NULL and the note waits). Same retention as the call.
CREATE TABLE call_notes (
    id              INTEGER PRIMARY KEY,
    linkedid        TEXT NOT NULL UNIQUE,
    uniqueid        TEXT,
    conversation_id INTEGER REFERENCES conversations(id) ON DELETE CASCADE,
    staff_id        INTEGER REFERENCES staff(id) ON DELETE SET NULL,
    category        TEXT NOT NULL,
    note            TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    purge_after     TEXT NOT NULL
);
CREATE INDEX call_notes_unlinked ON call_notes(linkedid) WHERE conversation_id IS NULL;
CREATE INDEX call_notes_conversation ON call_notes(conversation_id);

-- Missed and abandoned calls from identifiable numbers (§4.7), one item per number and office day.
CREATE TABLE callbacks (
    id              INTEGER PRIMARY KEY,
    number          TEXT NOT NULL,           -- normalised +48...
    day             TEXT NOT NULL,           -- office-local date of the first missed call
    first_missed_at TEXT NOT NULL,
    last_missed_at  TEXT NOT NULL,
    missed          INTEGER NOT NULL DEFAULT 1,
    queue           TEXT,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'taken', 'done')),
    taken_by        INTEGER REFERENCES staff(id) ON DELETE SET NULL,
    taken_at        TEXT,
    outcome         TEXT CHECK (outcome IN ('reached', 'no_answer', 'wrong_number', 'resolved_otherwise')),
    closed_by       INTEGER REFERENCES staff(id) ON DELETE SET NULL,
    closed_at       TEXT,
    conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL,  -- the outgoing call back
    purge_after     TEXT NOT NULL,
    UNIQUE (number, day)
);
CREATE INDEX callbacks_status ON callbacks(status, first_missed_at);
CREATE INDEX callbacks_purge ON callbacks(purge_after);
-- Missed calls already looked at, so a call is put on the worklist once (a closed item is not reopened).
CREATE TABLE callback_sources (
    source      TEXT PRIMARY KEY,            -- 'stay:<queue_calls.id>' or 'call:<conversations.id>'
    callback_id INTEGER REFERENCES callbacks(id) ON DELETE CASCADE,
    purge_after TEXT NOT NULL
);

ALTER TABLE service_daily ADD COLUMN callbacks_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE service_daily ADD COLUMN callbacks_open INTEGER NOT NULL DEFAULT 0;
