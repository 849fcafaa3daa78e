-- Times are TEXT in the fixed-width UTC layout 2006-01-02T15:04:05.000000Z,
-- so text order is time order. Empty strings are stored as NULL.

-- +goose Up
CREATE TABLE hosts (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    enrolled_at  TEXT,
    last_seen_at TEXT,
    revoked_at   TEXT,
    draining     INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1)),
    facts        BLOB,
    session_id   TEXT,
    cert_serial  TEXT
) STRICT;

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    host_id    TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    hash       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;

CREATE INDEX tokens_host_id ON tokens (host_id);

CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('root', 'intermediate', 'server', 'admin', 'agent')),
    subject     TEXT NOT NULL,
    host_id     TEXT REFERENCES hosts (id) ON DELETE SET NULL,
    fingerprint TEXT NOT NULL,
    not_before  TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;

CREATE INDEX certificates_host_id ON certificates (host_id);
CREATE INDEX certificates_not_before ON certificates (not_before);

CREATE TABLE key_pairs (
    name       TEXT PRIMARY KEY,
    cert_pem   BLOB NOT NULL,
    key_sealed TEXT NOT NULL
) STRICT;

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE audit_log;
DROP TABLE key_pairs;
DROP TABLE certificates;
DROP TABLE tokens;
DROP TABLE hosts;
