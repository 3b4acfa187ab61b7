-- Crypto-shredding of staff notes (store/keys.py). A supervisor's whisper (chat_staff_notes.text) is sealed
-- with its chat's data key and a consultant's call note (call_notes.note) with the data key named here:
-- the call's own key when its record existed as the note was written, else a key made for the note and
-- adopted by the call when the note is linked to it (the purge destroys it with the call). A TEXT value in
-- either column is a note not yet sealed by `cim keys encrypt-existing`.
ALTER TABLE call_notes ADD COLUMN key_id BLOB;
CREATE INDEX call_notes_key ON call_notes(key_id) WHERE key_id IS NOT NULL;
