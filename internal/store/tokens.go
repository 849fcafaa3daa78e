package store

import (
	"context"
	"fmt"
	"time"
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
}

// CreateToken inserts t. It returns ErrConflict if the ID is taken and
// ErrNotFound if the host does not exist.
func (s *Store) CreateToken(ctx context.Context, t Token) error {
	_, err := s.exec(ctx, `INSERT INTO tokens (id, host_id, hash, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.HostID, t.Hash, t.CreatedAt, t.ExpiresAt, t.UsedAt)
	if isForeignKey(err) {
		return fmt.Errorf("create token %s: host %s: %w", t.ID, t.HostID, ErrNotFound)
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
	var t Token
	err := s.queryRow(ctx, `SELECT id, host_id, hash, created_at, expires_at, used_at FROM tokens WHERE id = ?`, id).
		Scan(&t.ID, &t.HostID, &t.Hash, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, nullTimeCol{&t.UsedAt})
	return t, err
}

// Enroll redeems token tokenID at now for the certificate cert, atomically:
// it marks the token used, sets the host's enrolled_at to now and its
// cert_serial to cert.Serial, and inserts cert (whose HostID, if empty, is
// taken from the token). It returns ErrNotFound if the token does not exist,
// ErrTokenUsed if it was already used, ErrTokenExpired if now is not before
// its expiry, and ErrConflict if the serial is taken; on any error nothing
// changes. Concurrent calls with the same token succeed at most once.
func (s *Store) Enroll(ctx context.Context, tokenID string, now time.Time, cert Certificate) error {
	err := s.InTx(ctx, func(tx *Store) error {
		t, err := tx.getToken(ctx, tokenID)
		if err != nil {
			return dbErr(err)
		}
		if t.UsedAt != nil {
			return ErrTokenUsed
		}
		if !now.Before(t.ExpiresAt) {
			return ErrTokenExpired
		}
		if cert.HostID == "" {
			cert.HostID = t.HostID
		} else if cert.HostID != t.HostID {
			return fmt.Errorf("certificate is for host %s, token for host %s", cert.HostID, t.HostID)
		}
		// The used_at condition settles a race on Postgres: a second
		// transaction blocks on the row lock, then matches no row.
		n, err := tx.execCount(ctx, `UPDATE tokens SET used_at = ? WHERE id = ? AND used_at IS NULL`, now, tokenID)
		if err != nil {
			return dbErr(err)
		}
		if n == 0 {
			return ErrTokenUsed
		}
		err = mustAffect(tx.execCount(ctx, `UPDATE hosts SET enrolled_at = ?, cert_serial = ? WHERE id = ?`,
			now, cert.Serial, t.HostID))
		if err != nil {
			return fmt.Errorf("host %s: %w", t.HostID, err)
		}
		return tx.InsertCert(ctx, cert)
	})
	if err != nil {
		return fmt.Errorf("enroll with token %s: %w", tokenID, err)
	}
	return nil
}
