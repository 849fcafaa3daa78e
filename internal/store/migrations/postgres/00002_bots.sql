-- +goose Up
-- A bot is one customer's gateway: its spec (JSON), its secrets (sealed by the caller), what
-- it should be (desired) and what its host last reported (observed, JSON).
CREATE TABLE bots (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    host_id      TEXT NOT NULL REFERENCES hosts (id) ON DELETE RESTRICT,
    spec         BYTEA NOT NULL,
    secrets      TEXT NOT NULL,
    spec_version BIGINT NOT NULL,
    desired      TEXT NOT NULL CHECK (desired IN ('running', 'stopped', 'deleted')),
    purge        BOOLEAN NOT NULL DEFAULT FALSE,
    observed     BYTEA,
    observed_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX bots_host_id ON bots (host_id);

-- +goose Down
DROP TABLE bots;
