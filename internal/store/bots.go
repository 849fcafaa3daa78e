package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Bot desired states.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
	// DesiredDeleted marks a bot whose removal is recorded but not yet confirmed by its host.
	DesiredDeleted = "deleted"
)

// Owner kinds.
const (
	// OwnerOperator is a bot an operator made (pmctl); its owner ID is the admin's name.
	OwnerOperator = "operator"
	// OwnerCustomer is a customer's bot; its owner ID is the customer's user id.
	OwnerCustomer = "customer"
)

// Placements.
const (
	// PlacementShared bots go on any shared host with room.
	PlacementShared = "shared"
	// PlacementDedicated bots go only on a host enrolled for them (Host.DedicatedBot), and
	// that host runs no other bot.
	PlacementDedicated = "dedicated"
)

// Owner is who a bot belongs to.
type Owner struct {
	Kind string // OwnerOperator or OwnerCustomer
	ID   string
}

// Bot is one customer's gateway.
type Bot struct {
	ID   string
	Name string // unique
	// HostID is "" while the bot waits for a host with room (see Waiting).
	HostID string
	Owner  Owner
	// IdempotencyKey is the creator's key for the bot, unique when not ""; a retried creation
	// finds the bot by it.
	IdempotencyKey string
	Placement      string // PlacementShared or PlacementDedicated
	// Waiting says why the bot has no host yet; "" once it is placed.
	Waiting string
	// Spec is the caller's JSON description of the bot (image, model, resources…).
	Spec []byte
	// Secrets is sealed by the caller; the store never sees the plaintext.
	Secrets     string
	SpecVersion int64
	Desired     string
	Purge       bool
	// Observed is the host's last report (JSON), nil until it reported.
	Observed   []byte
	ObservedAt *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

const botCols = `id, name, host_id, owner_kind, owner_id, idempotency_key, placement, waiting,
	spec, secrets, spec_version, desired, purge, observed, observed_at, created_at, updated_at`

func scanBot(r rowScanner) (Bot, error) {
	var b Bot
	var observed []byte
	var host, key sql.NullString
	err := r.Scan(&b.ID, &b.Name, &host, &b.Owner.Kind, &b.Owner.ID, &key, &b.Placement, &b.Waiting,
		&b.Spec, &b.Secrets, &b.SpecVersion, &b.Desired, &b.Purge,
		&observed, nullTimeCol{&b.ObservedAt}, timeCol{&b.CreatedAt}, timeCol{&b.UpdatedAt})
	if len(observed) > 0 {
		b.Observed = observed
	}
	b.HostID, b.IdempotencyKey = host.String, key.String
	return b, err
}

// CreateBot inserts b. An empty Owner.Kind is OwnerOperator and an empty Placement is
// PlacementShared; a bot with no HostID waits for one. ErrConflict if the id, name or
// idempotency key is taken; ErrNotFound if its host is unknown.
func (s *Store) CreateBot(ctx context.Context, b Bot) error {
	if b.Owner.Kind == "" {
		b.Owner.Kind = OwnerOperator
	}
	if b.Placement == "" {
		b.Placement = PlacementShared
	}
	_, err := s.exec(ctx, `INSERT INTO bots (`+botCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.Name, nullString(b.HostID), b.Owner.Kind, b.Owner.ID, nullString(b.IdempotencyKey), b.Placement, b.Waiting,
		b.Spec, b.Secrets, b.SpecVersion, b.Desired, b.Purge,
		nullBytes(b.Observed), b.ObservedAt, b.CreatedAt, b.UpdatedAt)
	if isForeignKey(err) {
		return fmt.Errorf("create bot %s: host %s: %w", b.Name, b.HostID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("create bot %s: %w", b.Name, dbErr(err))
	}
	return nil
}

// GetBot returns the bot with the given id, or ErrNotFound.
func (s *Store) GetBot(ctx context.Context, id string) (Bot, error) {
	b, err := scanBot(s.queryRow(ctx, `SELECT `+botCols+` FROM bots WHERE id = ?`, id))
	if err != nil {
		return Bot{}, fmt.Errorf("get bot %s: %w", id, dbErr(err))
	}
	return b, nil
}

// GetBotByName returns the bot with the given name, or ErrNotFound.
func (s *Store) GetBotByName(ctx context.Context, name string) (Bot, error) {
	b, err := scanBot(s.queryRow(ctx, `SELECT `+botCols+` FROM bots WHERE name = ?`, name))
	if err != nil {
		return Bot{}, fmt.Errorf("get bot by name %s: %w", name, dbErr(err))
	}
	return b, nil
}

// GetBotByIdempotencyKey returns the bot created with key, or ErrNotFound.
func (s *Store) GetBotByIdempotencyKey(ctx context.Context, key string) (Bot, error) {
	b, err := scanBot(s.queryRow(ctx, `SELECT `+botCols+` FROM bots WHERE idempotency_key = ?`, key))
	if err != nil {
		return Bot{}, fmt.Errorf("get bot by idempotency key: %w", dbErr(err))
	}
	return b, nil
}

// ListBots returns every bot, ordered by name.
func (s *Store) ListBots(ctx context.Context) ([]Bot, error) {
	return s.listBots(ctx, `SELECT `+botCols+` FROM bots ORDER BY name`)
}

// ListBotsByHost returns the bots placed on a host, ordered by name.
func (s *Store) ListBotsByHost(ctx context.Context, hostID string) ([]Bot, error) {
	return s.listBots(ctx, `SELECT `+botCols+` FROM bots WHERE host_id = ? ORDER BY name`, hostID)
}

// ListBotsByOwner returns an owner's bots, ordered by name.
func (s *Store) ListBotsByOwner(ctx context.Context, o Owner) ([]Bot, error) {
	return s.listBots(ctx, `SELECT `+botCols+` FROM bots WHERE owner_kind = ? AND owner_id = ? ORDER BY name`, o.Kind, o.ID)
}

// ListWaitingBots returns the bots that wait for a host, oldest first; bots being deleted are
// left out.
func (s *Store) ListWaitingBots(ctx context.Context) ([]Bot, error) {
	return s.listBots(ctx, `SELECT `+botCols+` FROM bots WHERE host_id IS NULL AND desired <> ? ORDER BY created_at, id`, DesiredDeleted)
}

// PlaceBot puts a waiting bot on a host and clears why it waited. ErrNotFound if the bot or
// the host is gone; ErrConflict if the bot has a host already, so that of two placers only
// one places it.
func (s *Store) PlaceBot(ctx context.Context, id, hostID string, at time.Time) error {
	n, err := s.execCount(ctx, `UPDATE bots SET host_id = ?, waiting = '', updated_at = ? WHERE id = ? AND host_id IS NULL`, hostID, at, id)
	switch {
	case isForeignKey(err):
		return fmt.Errorf("place bot %s: host %s: %w", id, hostID, ErrNotFound)
	case err != nil:
		return fmt.Errorf("place bot %s: %w", id, dbErr(err))
	case n > 0:
		return nil
	}
	if _, err := s.GetBot(ctx, id); err != nil {
		return fmt.Errorf("place bot %s: %w", id, err)
	}
	return fmt.Errorf("place bot %s: it has a host already: %w", id, ErrConflict)
}

// SetBotWaiting records why a bot that has no host still waits. ErrNotFound if the bot is
// gone or has a host.
func (s *Store) SetBotWaiting(ctx context.Context, id, why string, at time.Time) error {
	err := mustAffect(s.execCount(ctx, `UPDATE bots SET waiting = ?, updated_at = ? WHERE id = ? AND host_id IS NULL`, why, at, id))
	if err != nil {
		return fmt.Errorf("set why bot %s waits: %w", id, err)
	}
	return nil
}

func (s *Store) listBots(ctx context.Context, q string, args ...any) ([]Bot, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list bots: %w", dbErr(err))
	}
	defer rows.Close()
	var bots []Bot
	for rows.Next() {
		b, err := scanBot(rows)
		if err != nil {
			return nil, fmt.Errorf("list bots: %w", err)
		}
		bots = append(bots, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bots: %w", err)
	}
	return bots, nil
}

// SetBotDesired records what a bot should be; purge applies to DesiredDeleted.
func (s *Store) SetBotDesired(ctx context.Context, id, desired string, purge bool, at time.Time) error {
	err := mustAffect(s.execCount(ctx, `UPDATE bots SET desired = ?, purge = ?, updated_at = ? WHERE id = ?`,
		desired, purge, at, id))
	if err != nil {
		return fmt.Errorf("set desired state of bot %s: %w", id, err)
	}
	return nil
}

// SetBotSpec replaces a bot's spec without a new spec version: for changes its host applies
// without recreating the container (a disk limit). ErrNotFound if the bot is gone.
func (s *Store) SetBotSpec(ctx context.Context, id string, spec []byte, at time.Time) error {
	err := mustAffect(s.execCount(ctx, `UPDATE bots SET spec = ?, updated_at = ? WHERE id = ?`, spec, at, id))
	if err != nil {
		return fmt.Errorf("set spec of bot %s: %w", id, err)
	}
	return nil
}

// ReplaceBotSpec replaces a bot's spec and sealed secrets and bumps its spec version, so its
// host re-creates the container with them. It returns the new version; ErrNotFound if the bot
// is gone.
func (s *Store) ReplaceBotSpec(ctx context.Context, id string, spec []byte, secrets string, at time.Time) (int64, error) {
	var v int64
	err := s.writeRow(ctx, `UPDATE bots SET spec = ?, secrets = ?, spec_version = spec_version + 1, updated_at = ?
		WHERE id = ? RETURNING spec_version`, spec, secrets, at, id).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("replace spec of bot %s: %w", id, dbErr(err))
	}
	return v, nil
}

// SetBotSecrets replaces a bot's sealed secrets and leaves its spec version as it is: for a
// change its container does not see (a provider key, which only its host's model endpoint
// holds).
func (s *Store) SetBotSecrets(ctx context.Context, id, secrets string, at time.Time) error {
	err := mustAffect(s.execCount(ctx, `UPDATE bots SET secrets = ?, updated_at = ? WHERE id = ?`, secrets, at, id))
	if err != nil {
		return fmt.Errorf("set secrets of bot %s: %w", id, err)
	}
	return nil
}

// LockPlacement serialises placement: within a transaction, it waits for any other
// transaction that places bots — in this process or another pmd on the same database — to
// end, so that no two see the same room on a host. On SQLite every write transaction already
// holds the database's only write lock, so it does nothing there. Outside a transaction it is
// an error.
func (s *Store) LockPlacement(ctx context.Context) error {
	if s.tx == nil {
		return errors.New("lock placement: not in a transaction")
	}
	if s.dialect != DialectPostgres {
		return nil
	}
	if _, err := s.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, placementLock); err != nil {
		return fmt.Errorf("lock placement: %w", dbErr(err))
	}
	return nil
}

// placementLock is the PostgreSQL advisory lock key of placement: "pmplace" in ASCII.
const placementLock int64 = 0x706d706c616365

// SetBotObserved records the host's report about a bot.
func (s *Store) SetBotObserved(ctx context.Context, id string, observed []byte, at time.Time) error {
	err := mustAffect(s.execCount(ctx, `UPDATE bots SET observed = ?, observed_at = ? WHERE id = ?`,
		nullBytes(observed), at, id))
	if err != nil {
		return fmt.Errorf("set observed state of bot %s: %w", id, err)
	}
	return nil
}

// DeleteBot deletes a bot's row; ErrNotFound if it is gone.
func (s *Store) DeleteBot(ctx context.Context, id string) error {
	if err := mustAffect(s.execCount(ctx, `DELETE FROM bots WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete bot %s: %w", id, err)
	}
	return nil
}
