-- Issue 8: every model call a host's agent metered, committed once by its host-made id.
-- owner_kind is '' for a bot pmd no longer knew when its usage arrived (deleted since): the
-- call is kept for the record, never debited. Costs are in millionths of a credit.

-- +goose Up
CREATE TABLE usage_records (
    id                 TEXT PRIMARY KEY,
    host_id            TEXT NOT NULL,
    bot_id             TEXT NOT NULL,
    owner_kind         TEXT NOT NULL CHECK (owner_kind IN ('', 'operator', 'customer')),
    owner_id           TEXT NOT NULL,
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    api                TEXT NOT NULL,
    stream             INTEGER NOT NULL CHECK (stream IN (0, 1)),
    status             INTEGER NOT NULL,
    outcome            TEXT NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    estimated          INTEGER NOT NULL CHECK (estimated IN (0, 1)),
    byok               INTEGER NOT NULL CHECK (byok IN (0, 1)),
    cost               INTEGER NOT NULL,
    debited            INTEGER NOT NULL,
    at                 TEXT NOT NULL,
    ms                 INTEGER NOT NULL,
    recorded_at        TEXT NOT NULL
) STRICT;

-- Reports: the whole fleet over a period, one bot by day, one customer since a time.
CREATE INDEX usage_records_at ON usage_records (at);
CREATE INDEX usage_records_bot ON usage_records (bot_id, at);
CREATE INDEX usage_records_owner ON usage_records (owner_kind, owner_id, at);

-- +goose Down
DROP TABLE usage_records;
