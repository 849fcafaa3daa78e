package store

import (
	"context"
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

// Bot is one customer's gateway.
type Bot struct {
	ID     string
	Name   string // unique
	HostID string
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

const botCols = `id, name, host_id, spec, secrets, spec_version, desired, purge, observed, observed_at, created_at, updated_at`

func scanBot(r rowScanner) (Bot, error) {
	var b Bot
	var observed []byte
	err := r.Scan(&b.ID, &b.Name, &b.HostID, &b.Spec, &b.Secrets, &b.SpecVersion, &b.Desired, &b.Purge,
		&observed, nullTimeCol{&b.ObservedAt}, timeCol{&b.CreatedAt}, timeCol{&b.UpdatedAt})
	if len(observed) > 0 {
		b.Observed = observed
	}
	return b, err
}

// CreateBot inserts b. ErrConflict if the id or name is taken; ErrNotFound if its host is
// unknown.
func (s *Store) CreateBot(ctx context.Context, b Bot) error {
	_, err := s.exec(ctx, `INSERT INTO bots (`+botCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.Name, b.HostID, b.Spec, b.Secrets, b.SpecVersion, b.Desired, b.Purge,
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

// ListBots returns every bot, ordered by name.
func (s *Store) ListBots(ctx context.Context) ([]Bot, error) {
	return s.listBots(ctx, `SELECT `+botCols+` FROM bots ORDER BY name`)
}

// ListBotsByHost returns the bots placed on a host, ordered by name.
func (s *Store) ListBotsByHost(ctx context.Context, hostID string) ([]Bot, error) {
	return s.listBots(ctx, `SELECT `+botCols+` FROM bots WHERE host_id = ? ORDER BY name`, hostID)
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
