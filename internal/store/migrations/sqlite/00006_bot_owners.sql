-- Issue 7: bots belong to someone (an operator or a customer), carry the caller's idempotency
-- key, say how they are placed, and may wait for room with no host; a token may be made for
-- one bot's dedicated host, and the host enrolled with it runs that bot alone.
--
-- SQLite cannot drop NOT NULL from a column, so the bots table is rebuilt. Nothing references
-- bots yet when this runs (tokens.for_bot is added after the rebuild), so the DROP TABLE's
-- implicit delete touches no other table.

-- +goose Up
CREATE TABLE bots_new (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    -- NULL while the bot waits for a host with room.
    host_id         TEXT REFERENCES hosts (id) ON DELETE RESTRICT,
    -- Who the bot belongs to: an operator (owner_id their admin name, '' for bots made before
    -- owners were recorded) or a customer (owner_id their user id).
    owner_kind      TEXT NOT NULL DEFAULT 'operator' CHECK (owner_kind IN ('operator', 'customer')),
    owner_id        TEXT NOT NULL DEFAULT '',
    -- The creator's key for this bot (a webhook's subscription, a job): a retry finds the bot
    -- it made. NULL when the creator gave none.
    idempotency_key TEXT UNIQUE,
    placement       TEXT NOT NULL DEFAULT 'shared' CHECK (placement IN ('shared', 'dedicated')),
    -- Why the bot has no host yet; '' once it is placed.
    waiting         TEXT NOT NULL DEFAULT '',
    spec            BLOB NOT NULL,
    secrets         TEXT NOT NULL,
    spec_version    INTEGER NOT NULL,
    desired         TEXT NOT NULL CHECK (desired IN ('running', 'stopped', 'deleted')),
    purge           INTEGER NOT NULL DEFAULT 0 CHECK (purge IN (0, 1)),
    observed        BLOB,
    observed_at     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK (host_id IS NULL OR waiting = '')
) STRICT;

INSERT INTO bots_new (id, name, host_id, spec, secrets, spec_version, desired, purge, observed, observed_at, created_at, updated_at)
    SELECT id, name, host_id, spec, secrets, spec_version, desired, purge, observed, observed_at, created_at, updated_at FROM bots;
DROP TABLE bots;
ALTER TABLE bots_new RENAME TO bots;
CREATE INDEX bots_host_id ON bots (host_id);
CREATE INDEX bots_owner ON bots (owner_kind, owner_id);
-- The placer reads the waiting bots, oldest first, every few seconds.
CREATE INDEX bots_waiting ON bots (created_at, id) WHERE host_id IS NULL;

-- A token made for one bot's dedicated host; it goes with the bot.
ALTER TABLE tokens ADD COLUMN for_bot TEXT REFERENCES bots (id) ON DELETE CASCADE;
-- The bot a host runs alone, from the token it enrolled with. Not a foreign key: when the bot
-- is gone the host stays dedicated to it, and so receives no other bot.
ALTER TABLE hosts ADD COLUMN dedicated_bot TEXT;

-- +goose Down
-- A bot with no host cannot be kept by the older schema; it has nothing on any host, so only
-- its record goes. Tokens are rebuilt first: the column refers to bots, whose rebuild below
-- must not cascade into them.
ALTER TABLE hosts DROP COLUMN dedicated_bot;

CREATE TABLE tokens_old (
    id             TEXT PRIMARY KEY,
    host_id        TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    hash           BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    used_at        TEXT,
    invalidated_at TEXT
) STRICT;
INSERT INTO tokens_old (id, host_id, hash, created_at, expires_at, used_at, invalidated_at)
    SELECT id, host_id, hash, created_at, expires_at, used_at, invalidated_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_old RENAME TO tokens;
CREATE INDEX tokens_host_id ON tokens (host_id);

CREATE TABLE bots_old (
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
INSERT INTO bots_old (id, name, host_id, spec, secrets, spec_version, desired, purge, observed, observed_at, created_at, updated_at)
    SELECT id, name, host_id, spec, secrets, spec_version, desired, purge, observed, observed_at, created_at, updated_at
    FROM bots WHERE host_id IS NOT NULL;
DROP TABLE bots;
ALTER TABLE bots_old RENAME TO bots;
CREATE INDEX bots_host_id ON bots (host_id);
