-- +goose Up
-- A bot is one customer's gateway: its spec (JSON), its secrets (sealed by the caller), what
-- it should be (desired) and what its host last reported (observed, JSON).
CREATE TABLE bots (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    host_id      TEXT NOT NULL REFERENCES hosts (id) ON DELETE RESTRICT,
    spec         BLOB NOT NULL,
    secrets      TEXT NOT NULL,
    spec_version INTEGER NOT NULL,
    desired      TEXT NOT NULL CHECK (desired IN ('running', 'stopped', 'deleted')),
    purge        INTEGER NOT NULL DEFAULT 0 CHECK (purge IN (0, 1)),
    observed     BLOB,
    observed_at  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;

CREATE INDEX bots_host_id ON bots (host_id);

-- +goose Down
DROP TABLE bots;
