-- The resident's side of the desk (issue 17): offline messages, the receipt of a chat, satisfaction ratings,
-- and the §4.2 annex form's fields in the request register.

-- An offline message is a conversation like a chat (channel 'chat') in status 'offline_message' until a
-- consultant records the answer (it is then 'closed'). The status list is a CHECK constraint of the
-- table; SQLite changes a CHECK in place through writable_schema (its documented procedure for constraints
-- that do not change the stored format), which keeps every column other migrations added.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql, 'CHECK (status IN (''queued'', ''active'', ''closed'', ''ended''))',
                          'CHECK (status IN (''queued'', ''active'', ''closed'', ''ended'', ''offline_message''))')
 WHERE type = 'table' AND name = 'conversations';
PRAGMA writable_schema = RESET;

-- §6: an unanswered offline message is purged at its purge_after like any ended conversation.
DROP INDEX IF EXISTS conversations_purge;
CREATE INDEX conversations_purge ON conversations(purge_after) WHERE status IN ('closed', 'ended', 'offline_message');

-- What the resident left with the message; purged with the conversation (the purge deletes rows of
-- tables whose foreign key to conversations does not cascade).
CREATE TABLE offline_messages (
    conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id),
    name            TEXT,
    contact         TEXT NOT NULL,
    contact_kind    TEXT NOT NULL CHECK (contact_kind IN ('email', 'phone')),
    answered_at     TEXT,
    answered_by     INTEGER REFERENCES staff(id),
    answered_how    TEXT CHECK (answered_how IN ('phone', 'email', 'letter')),
    answer_note     TEXT
);
CREATE INDEX offline_messages_waiting ON offline_messages(conversation_id) WHERE answered_at IS NULL;

-- The receipt (§4.1, §4.2): a reference the resident can quote and, for chats, an HMAC-SHA256 of the
-- secret shown once (key in store_keys); both go with the conversation at its purge.
ALTER TABLE conversations ADD COLUMN receipt_reference TEXT;
ALTER TABLE conversations ADD COLUMN receipt_secret_hash TEXT;
CREATE UNIQUE INDEX conversations_receipt ON conversations(receipt_reference) WHERE receipt_reference IS NOT NULL;
INSERT OR IGNORE INTO store_keys(name, value) VALUES ('receipt', randomblob(32));

-- Wrong receipt secrets, for the rate limit (per reference and per staff member); kept a day.
CREATE TABLE receipt_failures (
    id          INTEGER PRIMARY KEY,
    reference   TEXT NOT NULL,
    staff_id    INTEGER,
    at          TEXT NOT NULL
);
CREATE INDEX receipt_failures_reference ON receipt_failures(reference, at);
CREATE INDEX receipt_failures_staff ON receipt_failures(staff_id, at);

-- Satisfaction: apart from the conversation. conversation_id (no foreign key) only refuses a second
-- rating while the chat exists; the purge of the chat clears it and the comment (free text may carry
-- personal data), leaving the office day, consultant, topic and the figure.
CREATE TABLE chat_ratings (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER UNIQUE,
    day             TEXT NOT NULL,
    consultant_id   INTEGER REFERENCES staff(id),
    consultant      TEXT NOT NULL DEFAULT '',
    topic           TEXT,
    rating          INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment         TEXT
);
CREATE INDEX chat_ratings_day ON chat_ratings(day);
CREATE TRIGGER chat_ratings_unlink AFTER DELETE ON conversations
BEGIN
    UPDATE chat_ratings SET conversation_id = NULL, comment = NULL WHERE conversation_id = OLD.id;
END;

-- §4.2: the annex form's "the chat concerned, its number or reference" and when a receipt pair proved
-- that the requester took part in it (§4.1).
ALTER TABLE access_requests ADD COLUMN conversation_reference TEXT;
ALTER TABLE access_requests ADD COLUMN receipt_verified_at TEXT;
