-- Requests: how a withdrawal reached the office (phone, letter...), kept apart from the session notes.
ALTER TABLE access_requests ADD COLUMN withdrawal_note TEXT;
