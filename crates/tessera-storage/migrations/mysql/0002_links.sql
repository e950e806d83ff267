-- The key of the one document an object names (a refresh token's offline session), so that the
-- refresh grant reads both in one statement. A string column (not VARBINARY) so that it reads back as
-- text; compared with `id` it is compared byte for byte.
ALTER TABLE tessera_objects ADD COLUMN link VARCHAR(3000) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
