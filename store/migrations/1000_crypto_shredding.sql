-- Crypto-shredding (store/keys.py): each conversation's data key is named by a random id; the key itself
-- (wrapped by the master key) lives in the key ring outside the data directory. messages.text holds a
-- sealed BLOB from now on (a TEXT value is a line not yet sealed by `cim keys encrypt-existing`).
ALTER TABLE conversations ADD COLUMN key_id BLOB;
CREATE UNIQUE INDEX conversations_key_id ON conversations(key_id) WHERE key_id IS NOT NULL;

-- The blind index for request matching: HMAC(data key, normalised word) of residents' lines, per
-- conversation; without the data key a token says nothing, and the purge deletes the rows with the key.
CREATE TABLE message_words (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    token           BLOB NOT NULL,
    PRIMARY KEY (conversation_id, token)
) WITHOUT ROWID;
