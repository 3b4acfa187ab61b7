-- §3 supervision (issue 17): a whisper from a supervisor to the consultant of a live chat. It belongs to
-- the chat's stored record (the archive shows it as a staff note after line `after_seq`), but it is kept
-- apart from `messages` so that nothing that serves a resident (the widget's history, a §4 reading, a copy)
-- can ever carry it. Deleted with its conversation (the purge, §6).
CREATE TABLE chat_staff_notes (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    after_seq       INTEGER NOT NULL,       -- the transcript line it follows (the chat's next_seq - 1 then)
    staff_id        INTEGER REFERENCES staff(id),
    to_staff_id     INTEGER REFERENCES staff(id),   -- the consultant who held the chat
    text            TEXT NOT NULL,
    at              TEXT NOT NULL,
    client_msg_id   TEXT,
    UNIQUE (conversation_id, client_msg_id)
);
CREATE INDEX chat_staff_notes_conversation ON chat_staff_notes(conversation_id, after_seq);
