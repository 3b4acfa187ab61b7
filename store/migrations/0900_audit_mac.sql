-- Anchored audit (docs/SECURITY.md): each entry's HMAC-SHA256 under a key kept outside the database,
-- and the generation of that key. NULL in both for entries written before the key existed (legacy).
ALTER TABLE audit ADD COLUMN mac TEXT;
ALTER TABLE audit ADD COLUMN key_gen INTEGER;
