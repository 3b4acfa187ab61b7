-- What residents see (issue 16): a system line of a chat is also stored as a structured event (a code and
-- its parameters as JSON) so the widget renders it in the resident's language, while `text` keeps the Polish
-- line for staff, letters and exports; and the name a consultant is shown to residents by (never the log-in
-- name; NULL = the first word of the full name, or a generic "konsultant").
ALTER TABLE messages ADD COLUMN event TEXT;
ALTER TABLE messages ADD COLUMN params TEXT;
ALTER TABLE staff ADD COLUMN display_name TEXT;
