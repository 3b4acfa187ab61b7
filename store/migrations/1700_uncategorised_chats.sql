-- The chats a resident ended while a consultant had them are closed without a category until the
-- consultant gives one (F8). The chat server lists a consultant's such chats at every (re)connect
-- (store/sqlite/chats.py left_uncategorised_of): a partial index of exactly those terms, so that read does
-- not walk the consultant's whole archive.
CREATE INDEX conversations_uncategorised ON conversations(consultant_id, id)
    WHERE status = 'closed' AND close_category IS NULL AND channel = 'chat';
