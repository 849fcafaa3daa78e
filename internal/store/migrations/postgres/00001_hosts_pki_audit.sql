-- Empty strings are stored as NULL.

-- +goose Up
CREATE TABLE hosts (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    enrolled_at  TIMESTAMPTZ,
    last_seen_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    draining     BOOLEAN NOT NULL DEFAULT FALSE,
    facts        BYTEA,
    session_id   TEXT,
    cert_serial  TEXT
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    host_id    TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    hash       BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE INDEX tokens_host_id ON tokens (host_id);

CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('root', 'intermediate', 'server', 'admin', 'agent')),
    subject     TEXT NOT NULL,
    host_id     TEXT REFERENCES hosts (id) ON DELETE SET NULL,
    fingerprint TEXT NOT NULL,
    not_before  TIMESTAMPTZ NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX certificates_host_id ON certificates (host_id);
CREATE INDEX certificates_not_before ON certificates (not_before);

CREATE TABLE key_pairs (
    name       TEXT PRIMARY KEY,
    cert_pem   BYTEA NOT NULL,
    key_sealed TEXT NOT NULL
);

CREATE TABLE audit_log (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE key_pairs;
DROP TABLE certificates;
DROP TABLE tokens;
DROP TABLE hosts;
