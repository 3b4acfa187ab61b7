-- The queue and the active chats are read every second by the chat server (routing, idle chats, capacity).
-- 1200's index on `status IN ('queued', 'active')` serves the queries written with that very IN list (the
-- supervision view, store/supervision.py) but not `status = 'queued'` or `status = 'active'` (SQLite uses a
-- partial index only when the query's terms imply its WHERE, and an IN list is not matched by an equality):
-- partial indexes of exactly those terms, so the routing's reads do not scan the archive
-- (tests/test_desk_store.py checks the plans).
CREATE INDEX conversations_queued ON conversations(created_at, id) WHERE status = 'queued';
CREATE INDEX conversations_active ON conversations(consultant_id) WHERE status = 'active';
