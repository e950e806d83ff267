-- The key of the one document an object names (a refresh token's offline session), so that the
-- refresh grant reads both in one statement. NULL for objects written before, which are then read
-- with a second statement.
ALTER TABLE tessera_objects ADD COLUMN link TEXT;
