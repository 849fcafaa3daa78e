package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Certificate kinds.
const (
	KindRoot         = "root"
	KindIntermediate = "intermediate"
	KindServer       = "server"
	KindAdmin        = "admin"
	KindAgent        = "agent"
)

var certKinds = []string{KindRoot, KindIntermediate, KindServer, KindAdmin, KindAgent}

// Certificate records a certificate the CA issued. Rows outlive their host
// so that revocation and audit keep working.
type Certificate struct {
	Serial      string // hex
	Kind        string // one of the Kind constants
	Subject     string
	HostID      string // "" when none
	Fingerprint string // sha-256 hex
	NotBefore   time.Time
	NotAfter    time.Time
	RevokedAt   *time.Time
}

const certCols = `serial, kind, subject, host_id, fingerprint, not_before, not_after, revoked_at`

func scanCert(r rowScanner) (Certificate, error) {
	var (
		c    Certificate
		host sql.NullString
	)
	err := r.Scan(&c.Serial, &c.Kind, &c.Subject, &host, &c.Fingerprint,
		timeCol{&c.NotBefore}, timeCol{&c.NotAfter}, nullTimeCol{&c.RevokedAt})
	if err != nil {
		return Certificate{}, err
	}
	c.HostID = host.String
	return c, nil
}

// InsertCert inserts c. It returns ErrConflict if the serial is taken and
// ErrNotFound if c.HostID names no host.
func (s *Store) InsertCert(ctx context.Context, c Certificate) error {
	if !slices.Contains(certKinds, c.Kind) {
		return fmt.Errorf("insert cert %s: unknown kind %q", c.Serial, c.Kind)
	}
	_, err := s.exec(ctx, `INSERT INTO certificates (`+certCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Serial, c.Kind, c.Subject, nullString(c.HostID), c.Fingerprint, c.NotBefore, c.NotAfter, c.RevokedAt)
	if isForeignKey(err) {
		return fmt.Errorf("insert cert %s: host %s: %w", c.Serial, c.HostID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("insert cert %s: %w", c.Serial, dbErr(err))
	}
	return nil
}

// GetCert returns the certificate with the given serial, or ErrNotFound.
func (s *Store) GetCert(ctx context.Context, serial string) (Certificate, error) {
	c, err := scanCert(s.queryRow(ctx, `SELECT `+certCols+` FROM certificates WHERE serial = ?`, serial))
	if err != nil {
		return Certificate{}, fmt.Errorf("get cert %s: %w", serial, dbErr(err))
	}
	return c, nil
}

// ListCerts returns all certificates, newest NotBefore first.
func (s *Store) ListCerts(ctx context.Context) ([]Certificate, error) {
	rows, err := s.query(ctx, `SELECT `+certCols+` FROM certificates ORDER BY not_before DESC, serial`)
	if err != nil {
		return nil, fmt.Errorf("list certs: %w", dbErr(err))
	}
	defer rows.Close()
	var certs []Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("list certs: %w", err)
		}
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list certs: %w", err)
	}
	return certs, nil
}

// RevokeCert marks the certificate revoked at at and returns it. It is
// idempotent: an already revoked certificate keeps its first revoked_at. It
// returns ErrNotFound for an unknown serial.
func (s *Store) RevokeCert(ctx context.Context, serial string, at time.Time) (Certificate, error) {
	var c Certificate
	err := s.InTx(ctx, func(tx *Store) error {
		if err := mustAffect(tx.execCount(ctx, `UPDATE certificates SET revoked_at = COALESCE(revoked_at, ?) WHERE serial = ?`, at, serial)); err != nil {
			return err
		}
		var err error
		c, err = scanCert(tx.queryRow(ctx, `SELECT `+certCols+` FROM certificates WHERE serial = ?`, serial))
		return dbErr(err)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("revoke cert %s: %w", serial, err)
	}
	return c, nil
}

// SetHostCert records serial as the host's newest certificate, after a
// renewal. The serial is not checked against the certificates table. It
// returns ErrNotFound for an unknown host.
func (s *Store) SetHostCert(ctx context.Context, hostID, serial string) error {
	if err := mustAffect(s.execCount(ctx, `UPDATE hosts SET cert_serial = ? WHERE id = ?`, nullString(serial), hostID)); err != nil {
		return fmt.Errorf("set cert of host %s: %w", hostID, err)
	}
	return nil
}
