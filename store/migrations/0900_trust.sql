-- Trust (issue 19). Anchored audit (docs/SECURITY.md): each entry's HMAC-SHA256 under a key kept outside the database,
-- and the generation of that key. NULL in both for entries written before the key existed (legacy).
ALTER TABLE audit ADD COLUMN mac TEXT;
ALTER TABLE audit ADD COLUMN key_gen INTEGER;

-- Two people for a copy (GDPR Art. 15): the DPO prepares the export, a second person (a designated
-- employee or the director) confirms it; each conversation's link to the requester rests on the §4.7
-- number match or on a justification recorded by both. One row per request while the export is
-- prepared or confirmed (a cancelled preparation removes it; the audit keeps the history).
CREATE TABLE copy_approvals (
    request_id            INTEGER PRIMARY KEY REFERENCES access_requests(id),
    prepared_by           INTEGER NOT NULL REFERENCES staff(id),
    prepared_at           TEXT NOT NULL,
    basis                 TEXT NOT NULL,        -- JSON {conversation id: "number_match" | "justification"}
    prepare_justification TEXT,
    confirmed_by          INTEGER REFERENCES staff(id),
    confirmed_at          TEXT,
    confirm_justification TEXT,
    CHECK (confirmed_by IS NULL OR confirmed_by <> prepared_by)
);
