package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Refusals of Enroll and RenewCert besides the token's own.
var (
	// ErrHostEnrolled means the token's host has already enrolled (with this token or
	// another one), so the token can enroll nothing.
	ErrHostEnrolled = errors.New("host already enrolled")
	// ErrHostRevoked means the host was revoked.
	ErrHostRevoked = errors.New("host revoked")
)

// Token is a one-time enrollment token for a host. Only the hash of its
// secret part is stored.
type Token struct {
	ID        string // public part of the token
	HostID    string
	Hash      []byte // sha-256 of the secret part
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
	// InvalidatedAt is when another token of the host enrolled it; nil otherwise.
	InvalidatedAt *time.Time
	// ForBot is the bot whose dedicated host the token enrolls, "" for a shared host. The
	// token goes when the bot does.
	ForBot string
}

const tokenCols = `id, host_id, hash, created_at, expires_at, used_at, invalidated_at, for_bot`

func scanToken(r rowScanner) (Token, error) {
	var t Token
	var forBot sql.NullString
	err := r.Scan(&t.ID, &t.HostID, &t.Hash, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, nullTimeCol{&t.UsedAt}, nullTimeCol{&t.InvalidatedAt}, &forBot)
	t.ForBot = forBot.String
	return t, err
}

// CreateToken inserts t. It returns ErrConflict if the ID is taken and
// ErrNotFound if the host, or the bot it is for, does not exist.
func (s *Store) CreateToken(ctx context.Context, t Token) error {
	_, err := s.exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.HostID, t.Hash, t.CreatedAt, t.ExpiresAt, t.UsedAt, t.InvalidatedAt, nullString(t.ForBot))
	if isForeignKey(err) {
		return fmt.Errorf("create token %s: host %s or bot %q: %w", t.ID, t.HostID, t.ForBot, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, dbErr(err))
	}
	return nil
}

// GetToken returns the token with the given ID, or ErrNotFound.
func (s *Store) GetToken(ctx context.Context, id string) (Token, error) {
	t, err := s.getToken(ctx, id)
	if err != nil {
		return Token{}, fmt.Errorf("get token %s: %w", id, dbErr(err))
	}
	return t, nil
}

func (s *Store) getToken(ctx context.Context, id string) (Token, error) {
	return scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id))
}

// ListTokens returns the host's tokens, oldest first.
func (s *Store) ListTokens(ctx context.Context, hostID string) ([]Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE host_id = ? ORDER BY created_at, id`, hostID)
	if err != nil {
		return nil, fmt.Errorf("list tokens of host %s: %w", hostID, dbErr(err))
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens of host %s: %w", hostID, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens of host %s: %w", hostID, dbErr(err))
	}
	return out, nil
}

// Enroll redeems token tokenID at now for the certificate cert, atomically:
// it marks the token used, invalidates every other token of the host, sets
// the host's enrolled_at to now and its cert_serial to cert.Serial, and
// inserts cert (whose HostID, if empty, is taken from the token). A token made for a bot
// makes the host that bot's dedicated host.
//
// It returns ErrNotFound if the token does not exist, ErrTokenUsed if it was
// already used, ErrHostEnrolled if its host has enrolled already (with it or
// another token), ErrHostRevoked if the host was revoked, ErrTokenExpired if
// now is not before its expiry, and ErrConflict if the serial is taken; on
// any error nothing changes. Of concurrent calls for one host, with one token
// or several, at most one succeeds: each first takes the host's row, and
// only a host that has not enrolled can be taken.
func (s *Store) Enroll(ctx context.Context, tokenID string, now time.Time, cert Certificate) error {
	err := s.InTx(ctx, func(tx *Store) error {
		t, err := tx.getToken(ctx, tokenID)
		if err != nil {
			return dbErr(err)
		}
		if err := tokenUsable(t, now); err != nil {
			return err
		}
		if cert.HostID == "" {
			cert.HostID = t.HostID
		} else if cert.HostID != t.HostID {
			return fmt.Errorf("certificate is for host %s, token for host %s", cert.HostID, t.HostID)
		}
		// The host's row first, so that every enrollment of one host queues here: on
		// PostgreSQL a second transaction waits for the row lock and then matches no row.
		n, err := tx.execCount(ctx, `UPDATE hosts SET enrolled_at = ?, cert_serial = ?, dedicated_bot = ?
			WHERE id = ? AND enrolled_at IS NULL AND revoked_at IS NULL`, now, cert.Serial, nullString(t.ForBot), t.HostID)
		if err != nil {
			return dbErr(err)
		}
		if n == 0 {
			return tx.whyNotEnrollable(ctx, tokenID, t.HostID, now)
		}
		n, err = tx.execCount(ctx, `UPDATE tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND invalidated_at IS NULL`, now, tokenID)
		if err != nil {
			return dbErr(err)
		}
		if n == 0 {
			return ErrTokenUsed
		}
		if _, err := tx.exec(ctx, `UPDATE tokens SET invalidated_at = ?
			WHERE host_id = ? AND id <> ? AND used_at IS NULL AND invalidated_at IS NULL`, now, t.HostID, tokenID); err != nil {
			return dbErr(err)
		}
		return tx.InsertCert(ctx, cert)
	})
	if err != nil {
		return fmt.Errorf("enroll with token %s: %w", tokenID, err)
	}
	return nil
}

// tokenUsable says why t cannot enroll at now, if it cannot by itself.
func tokenUsable(t Token, now time.Time) error {
	switch {
	case t.UsedAt != nil:
		return ErrTokenUsed
	case t.InvalidatedAt != nil:
		return ErrHostEnrolled
	case !now.Before(t.ExpiresAt):
		return ErrTokenExpired
	}
	return nil
}

// whyNotEnrollable reads again, after the host's row turned out not to be enrollable, why:
// another transaction may have used the token or enrolled the host meanwhile.
func (s *Store) whyNotEnrollable(ctx context.Context, tokenID, hostID string, now time.Time) error {
	t, err := s.getToken(ctx, tokenID)
	if err != nil {
		return dbErr(err)
	}
	if err := tokenUsable(t, now); err != nil {
		return err
	}
	h, err := scanHost(s.queryRow(ctx, selectHosts+` WHERE h.id = ?`, hostID))
	switch {
	case err != nil:
		return dbErr(err)
	case h.RevokedAt != nil:
		return ErrHostRevoked
	default:
		return ErrHostEnrolled
	}
}
