-- Issue 6: renewals supersede certificates, enrolling invalidates a host's other tokens.

-- +goose Up
-- When a renewal replaced this agent certificate; it is refused at handshakes once pmd's
-- overlap has passed, and revoked as soon as the host connects with the newer one.
ALTER TABLE certificates ADD COLUMN superseded_at TEXT;
-- When another token of the same host enrolled it; such a token never enrolls.
ALTER TABLE tokens ADD COLUMN invalidated_at TEXT;
CREATE INDEX certificates_kind ON certificates (kind, revoked_at);

-- +goose Down
DROP INDEX certificates_kind;
ALTER TABLE tokens DROP COLUMN invalidated_at;
ALTER TABLE certificates DROP COLUMN superseded_at;
