-- Tombstones of purged conversations: the id and when, nothing else (no content, no number).
-- Lets a hold or a lookup on a purged conversation say "already purged" instead of "not found".
-- conversations.id has no AUTOINCREMENT, so an id whose row was the newest can be reused by a
-- later conversation: a live row with the id always wins over its tombstone.
CREATE TABLE purged_conversations (
    id          INTEGER PRIMARY KEY,
    purged_at   TEXT NOT NULL,
    purge_run   INTEGER REFERENCES purge_runs(id)
);
