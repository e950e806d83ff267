-- Every entity is one JSON document per (kind, id); `version` makes updates compare-and-swap, and
-- `expiry` (Unix nanoseconds) lets garbage collection find expired requests and codes by index.
-- Keys are VARBINARY so that they compare byte for byte, as on the other databases (a _ci or PAD SPACE
-- collation would make "Alice" and "alice " one key); 3032 bytes fit InnoDB's 3072-byte key limit.
CREATE TABLE tessera_objects (
    kind    VARBINARY(32)   NOT NULL,
    id      VARBINARY(3000) NOT NULL,
    version BIGINT          NOT NULL,
    expiry  BIGINT,
    data    LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (kind, id),
    INDEX tessera_objects_expiry (kind, expiry)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
