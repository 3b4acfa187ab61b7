-- Letters a city hall can send (issue 19): the signatory's title on the account (the full name is already
-- there), whether each letter went out sealed (PAdES) and by which seal certificate, and how the register
-- says the requester is addressed ('pani' / 'pan'; NULL = it does not say, and letters use neutral forms).
ALTER TABLE staff ADD COLUMN job_title TEXT NOT NULL DEFAULT '';
ALTER TABLE letters ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1));
ALTER TABLE letters ADD COLUMN sealed_by TEXT;
ALTER TABLE access_requests ADD COLUMN addressed_as TEXT CHECK (addressed_as IN ('pani', 'pan'));
