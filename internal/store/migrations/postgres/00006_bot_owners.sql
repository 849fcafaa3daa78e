-- Issue 7: bots belong to someone (an operator or a customer), carry the caller's idempotency
-- key, say how they are placed, and may wait for room with no host; a token may be made for
-- one bot's dedicated host, and the host enrolled with it runs that bot alone.

-- +goose Up
-- NULL while the bot waits for a host with room.
ALTER TABLE bots ALTER COLUMN host_id DROP NOT NULL;
-- Who the bot belongs to: an operator (owner_id their admin name, '' for bots made before
-- owners were recorded) or a customer (owner_id their user id).
ALTER TABLE bots ADD COLUMN owner_kind TEXT NOT NULL DEFAULT 'operator' CHECK (owner_kind IN ('operator', 'customer'));
ALTER TABLE bots ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';
-- The creator's key for this bot (a webhook's subscription, a job): a retry finds the bot it
-- made. NULL when the creator gave none.
ALTER TABLE bots ADD COLUMN idempotency_key TEXT UNIQUE;
ALTER TABLE bots ADD COLUMN placement TEXT NOT NULL DEFAULT 'shared' CHECK (placement IN ('shared', 'dedicated'));
-- Why the bot has no host yet; '' once it is placed.
ALTER TABLE bots ADD COLUMN waiting TEXT NOT NULL DEFAULT '';
ALTER TABLE bots ADD CONSTRAINT bots_placed_not_waiting CHECK (host_id IS NULL OR waiting = '');
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
-- its record goes (with any token made for it).
ALTER TABLE hosts DROP COLUMN dedicated_bot;
ALTER TABLE tokens DROP COLUMN for_bot;
DELETE FROM bots WHERE host_id IS NULL;
DROP INDEX bots_waiting;
DROP INDEX bots_owner;
ALTER TABLE bots DROP CONSTRAINT bots_placed_not_waiting;
ALTER TABLE bots DROP COLUMN waiting;
ALTER TABLE bots DROP COLUMN placement;
ALTER TABLE bots DROP COLUMN idempotency_key;
ALTER TABLE bots DROP COLUMN owner_id;
ALTER TABLE bots DROP COLUMN owner_kind;
ALTER TABLE bots ALTER COLUMN host_id SET NOT NULL;
