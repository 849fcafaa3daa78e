-- +goose Up
-- Customers: their accounts and web sessions, what they chose for their assistant, their
-- subscriptions, their credits, and the Stripe events already processed.
CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    email              TEXT NOT NULL UNIQUE,
    password_hash      TEXT NOT NULL,
    disabled           BOOLEAN NOT NULL DEFAULT FALSE,
    stripe_customer_id TEXT UNIQUE,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

-- A web session is known by the SHA-256 of its cookie, so a copy of the database logs no one in.
CREATE TABLE web_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX web_sessions_user_id ON web_sessions (user_id);

CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE INDEX password_resets_user_id ON password_resets (user_id);

-- What a customer chose for their assistant at onboarding; secrets (their own model key, a
-- Telegram token) are sealed by the caller.
CREATE TABLE assistants (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    plan_id    TEXT NOT NULL,
    model      TEXT NOT NULL,
    telegram   BOOLEAN NOT NULL DEFAULT FALSE,
    whatsapp   TEXT UNIQUE,
    web_chat   BOOLEAN NOT NULL DEFAULT FALSE,
    key_mode   TEXT NOT NULL CHECK (key_mode IN ('credits', 'byok')),
    key_last4  TEXT NOT NULL DEFAULT '',
    secrets    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE subscriptions (
    id                     TEXT PRIMARY KEY,
    user_id                TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_id                TEXT NOT NULL,
    source                 TEXT NOT NULL CHECK (source IN ('stripe', 'grant', 'test')),
    status                 TEXT NOT NULL,
    stripe_subscription_id TEXT UNIQUE,
    period_start           TIMESTAMPTZ,
    period_end             TIMESTAMPTZ,
    cancel_at_period_end   BOOLEAN NOT NULL DEFAULT FALSE,
    past_due_since         TIMESTAMPTZ,
    ended_at               TIMESTAMPTZ,
    bot_id                 TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);

CREATE INDEX subscriptions_user_id ON subscriptions (user_id);

-- The checkout a customer was last sent to, so a second click on Subscribe finds it.
CREATE TABLE checkouts (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    plan_id    TEXT NOT NULL,
    stripe_id  TEXT NOT NULL,
    url        TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Append-only: amounts in millionths of a credit; a grant expires at its period's end.
CREATE TABLE credit_ledger (
    id              BIGSERIAL PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('grant', 'adjust', 'debit', 'expire')),
    amount          BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    expires_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX credit_ledger_user_id ON credit_ledger (user_id, id);

CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE stripe_events;
DROP TABLE credit_ledger;
DROP TABLE checkouts;
DROP TABLE subscriptions;
DROP TABLE assistants;
DROP TABLE password_resets;
DROP TABLE web_sessions;
DROP TABLE users;
