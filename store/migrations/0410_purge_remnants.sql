-- A purge whose final checkpoint could not truncate the WAL (another connection held a read
-- transaction) leaves purged text in cim.sqlite3/-wal: the run is marked here until a later
-- scrub (the next purge retries it first) truncates the WAL.
ALTER TABLE purge_runs ADD COLUMN remnants_pending INTEGER NOT NULL DEFAULT 0 CHECK (remnants_pending IN (0, 1));
