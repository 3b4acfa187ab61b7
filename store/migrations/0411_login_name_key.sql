-- Failed sign-ins are keyed by an HMAC of the typed name, never the typed text: a password typed
-- into the name field must not be stored (audit entries name an unknown name only by this hash).
CREATE TABLE store_keys (
    name    TEXT PRIMARY KEY,
    value   BLOB NOT NULL
);
INSERT INTO store_keys(name, value) VALUES ('login_name', randomblob(32));
-- Rows written before this version hold typed names in the clear (perhaps a password): dropped.
DELETE FROM login_failures;
