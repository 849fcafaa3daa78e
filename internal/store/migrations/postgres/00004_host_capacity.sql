-- +goose Up
-- What bounds the capacity a host may declare: the memory it reported when it enrolled (NULL
-- until pmd knows it), and an operator's limit (NULL: none).
ALTER TABLE hosts ADD COLUMN memory_bytes BIGINT CHECK (memory_bytes > 0);
ALTER TABLE hosts ADD COLUMN capacity_bots INTEGER CHECK (capacity_bots > 0);
ALTER TABLE hosts ADD COLUMN capacity_memory_bytes BIGINT CHECK (capacity_memory_bytes > 0);

-- +goose Down
ALTER TABLE hosts DROP COLUMN capacity_memory_bytes;
ALTER TABLE hosts DROP COLUMN capacity_bots;
ALTER TABLE hosts DROP COLUMN memory_bytes;
