-- The queue and the active chats are read every second by the chat server (routing, idle chats, capacity).
-- 1200's index on `status IN ('queued', 'active')` is not used by SQLite for `status = 'queued'` (a partial
-- index serves a query only when the query's terms imply the index's WHERE, and an IN list is not matched):
-- partial indexes of exactly `status = 'queued'` / `status = 'active'`, so the reads do not scan the archive
-- (tests/test_desk_store.py checks the plans).
DROP INDEX IF EXISTS conversations_open_chats;
CREATE INDEX conversations_queued ON conversations(created_at, id) WHERE status = 'queued';
CREATE INDEX conversations_active ON conversations(consultant_id) WHERE status = 'active';
