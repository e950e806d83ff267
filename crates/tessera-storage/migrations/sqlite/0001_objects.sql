-- Every entity is one JSON document per (kind, id); `version` makes updates compare-and-swap, and
-- `expiry` (Unix nanoseconds) lets garbage collection find expired requests and codes by index.
CREATE TABLE tessera_objects (
    kind    TEXT   NOT NULL,
    id      TEXT   NOT NULL,
    version INTEGER NOT NULL,
    expiry  INTEGER,
    data    TEXT   NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX tessera_objects_expiry ON tessera_objects (kind, expiry) WHERE expiry IS NOT NULL;
