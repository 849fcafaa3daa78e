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
    stream             BOOLEAN NOT NULL,
    status             INTEGER NOT NULL,
    outcome            TEXT NOT NULL,
    input_tokens       BIGINT  NOT NULL,
    output_tokens      BIGINT  NOT NULL,
    cache_read_tokens  BIGINT  NOT NULL,
    cache_write_tokens BIGINT  NOT NULL,
    estimated          BOOLEAN NOT NULL,
    byok               BOOLEAN NOT NULL,
    cost               BIGINT  NOT NULL,
    debited            BIGINT  NOT NULL,
    at                 TIMESTAMPTZ NOT NULL,
    ms                 BIGINT  NOT NULL,
    recorded_at        TIMESTAMPTZ NOT NULL
);

-- Reports: the whole fleet over a period, one bot by day, one customer since a time.
CREATE INDEX usage_records_at ON usage_records (at);
CREATE INDEX usage_records_bot ON usage_records (bot_id, at);
CREATE INDEX usage_records_owner ON usage_records (owner_kind, owner_id, at);

-- +goose Down
DROP TABLE usage_records;
