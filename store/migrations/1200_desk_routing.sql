-- Topics, routing and capacity of the chat desk (issue 17): the topics a resident picks before a chat, each
-- mapped to a department (the §4.3 opinion of that department's head); the topic stored with the chat;
-- consultants' skills (topics) and their maximum of concurrent chats; a re-queued chat's place at the front.
CREATE TABLE chat_topics (
    id              INTEGER PRIMARY KEY,
    label_pl        TEXT NOT NULL,
    label_en        TEXT NOT NULL,
    department_id   INTEGER REFERENCES departments(id),
    position        INTEGER NOT NULL DEFAULT 0,     -- order in the widget's list
    active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),  -- 0: no longer offered, kept for old chats
    updated_at      TEXT NOT NULL
);

ALTER TABLE conversations ADD COLUMN topic_id INTEGER REFERENCES chat_topics(id);
-- A chat returned to the queue (its consultant dropped, signed out, declined it) waits at the front:
-- the moment it came back; NULL for a chat waiting for its first consultant.
ALTER TABLE conversations ADD COLUMN queue_front TEXT;
CREATE INDEX conversations_open_chats ON conversations(status, channel) WHERE status IN ('queued', 'active');

-- Consultants' skills: the topics a consultant answers in auto mode (none listed: every topic).
CREATE TABLE staff_topics (
    staff_id    INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    topic_id    INTEGER NOT NULL REFERENCES chat_topics(id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, topic_id)
);
-- The most chats a consultant handles at once; NULL: the setting chat_max_concurrent (default 3).
ALTER TABLE staff ADD COLUMN max_chats INTEGER CHECK (max_chats IS NULL OR max_chats BETWEEN 1 AND 50);
-- The estimated wait (median wait of the chats accepted in the last hour) reads the accepted lines by time.
CREATE INDEX messages_event_at ON messages(event, at) WHERE event IS NOT NULL;
-- The idle check finds each active chat's last "are you still there?" line (system lines only: no cost per message).
CREATE INDEX messages_conversation_event ON messages(conversation_id, event) WHERE event IS NOT NULL;
